"""The clues a series' headers give the classifier, read one way for every role family.

Keywords of the description and protocol name (vendors' words, normalised), ImageType tokens, the field
strength, the fat-water phase of an echo time, and the vote itself: ``Vote(role, confidence, reason)`` with the
confidence a named tier of ``resources/role_rules.json``. Shared by :mod:`.families`, :mod:`.dynamic` and the
combiner in :mod:`.classify`; the underscore names are for those modules only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from ..resources import load_json
from .scan import SeriesInfo


@dataclass
class Vote:
    role: str
    confidence: float
    reason: str
    stack_roles: list[str] | None = None


def rules() -> dict:
    return load_json("role_rules.json")


def _conf(vote: str) -> float:
    """Confidence of one kind of vote: ``role_rules.json`` confidence.votes names its tier, the tier its value."""
    conf = rules()["confidence"]
    return float(conf["tiers"][conf["votes"][vote]]["value"])


_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_text(text: str) -> str:
    """Lower case with '_', '-' and runs of white space as one space: vendors join words either way
    ('mDIXON-Quant_BH', 'Ax LAVA-Flex', 'ep2d_diff'), so keywords and descriptions are compared in this form."""
    return _SEPARATORS.sub(" ", text.lower()).strip()


@cache
def _pattern(word: str) -> re.Pattern:
    """A keyword as a regex: it starts a word; short words (<= 3 letters) must also end one ('art' not 'artefact')."""
    word = normalise_text(word)
    tail = r"(?![a-z0-9])" if len(word) <= 3 or not word[-1].isalnum() else ""
    return re.compile(r"(?<![a-z0-9])" + re.escape(word) + tail)


def _text(s: SeriesInfo) -> str:
    return normalise_text(f"{s.description} {s.protocol_name}")


def keyword(s: SeriesInfo, family: str) -> str | None:
    """The first keyword of ``family`` found in the description or protocol name, or None."""
    text = _text(s)
    for word in rules()["keywords"][family]:
        if _pattern(word).search(text):
            return word
    return None


def _tokens(image_type: Sequence[str]) -> set[str]:
    # the first two values are ORIGINAL/DERIVED and PRIMARY/SECONDARY
    return {t.upper() for t in list(image_type)[2:]} | ({t.upper() for t in image_type} & {"ADC", "WATER", "FAT"})


def _has_type(image_type: Sequence[str], family: str) -> str | None:
    tokens = _tokens(image_type)
    for value in rules()["image_type"][family]:
        if value in tokens:
            return value
    return None


def field_strength(s: SeriesInfo) -> tuple[float | None, str]:
    """B0 in tesla and where it came from (the tag, or the imaging frequency)."""
    if s.field_strength_t:
        return s.field_strength_t, "(0018,0087)"
    if s.imaging_frequency_mhz:
        gamma = rules()["physics"]["gyromagnetic_mhz_per_t"]
        return round(s.imaging_frequency_mhz / gamma, 2), "imaging frequency"
    return None, ""


def echo_phase(te_ms: float, b0_t: float) -> tuple[str | None, float]:
    """'in' / 'opposed' / None for one echo time, and the fat-water phase in cycles.

    Fat precesses ``Δf = γ·B0·δ`` slower than water (δ ≈ 3.4 ppm): in phase at TE = n/Δf (n ≥ 1),
    opposed at TE = (n + ½)/Δf, within ``phase_tolerance_cycles``.
    """
    phys = rules()["physics"]
    df_hz = phys["gyromagnetic_mhz_per_t"] * 1e6 * b0_t * phys["fat_water_shift_ppm"] * 1e-6
    cycles = te_ms * 1e-3 * df_hz
    tol = phys["phase_tolerance_cycles"]
    frac = cycles - math.floor(cycles)
    if abs(frac - 0.5) <= tol:
        return "opposed", cycles
    if round(cycles) >= 1 and min(frac, 1 - frac) <= tol:
        return "in", cycles
    return None, cycles


def _is_diffusion_like(s: SeriesInfo) -> str | None:
    if s.b_values:
        return "b-values in the header"
    hit = _has_type(s.image_type, "diffusion")
    if hit:
        return f"ImageType {hit}"
    word = keyword(s, "dwi")
    return f"description '{word}'" if word else None


def _dixon_role(image_type: Sequence[str]) -> str | None:
    for role in ("dixon_water", "dixon_fat", "t1_in_phase", "t1_opposed_phase"):
        if _has_type(image_type, role):
            return role
    return None


def _same_grid(a: SeriesInfo, b: SeriesInfo) -> bool:
    fa, fb = a.stacks[0].frames, b.stacks[0].frames
    if (fa[0].rows, fa[0].cols, len(fa)) != (fb[0].rows, fb[0].cols, len(fb)):
        return False
    if fa[0].orientation is None or fb[0].orientation is None or fa[0].position is None or fb[0].position is None:
        return False
    ori = max(abs(x - y) for x, y in zip(fa[0].orientation, fb[0].orientation, strict=True))
    pa = sorted(f.position for f in fa)[0]
    pb = sorted(f.position for f in fb)[0]
    return ori < 1e-3 and max(abs(x - y) for x, y in zip(pa, pb, strict=True)) < 1.0

