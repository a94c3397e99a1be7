"""Series -> roles (the brief's section 1 table), each with a confidence and a reason a reader can check.

One small function per role family (diffusion, scanner ADC, Dixon, chemical shift, multi-echo, T2,
dynamic phases) looks at one series (the dynamic family at all of them) and either abstains or votes
``Vote(role, confidence, reason)``. The combiner keeps the strongest vote, leaves conflicting or weak
ones ``unassigned`` *with the reason*, and resolves two series claiming one role the same way.
A series whose stacks play different roles (a dual-echo series holding opposed and in phase, a Dixon
series holding W/F/IP/OP) carries one role per stack in ``stack_roles``; its ``role`` is those roles
joined by '+'. Rules, keywords and constants are data: ``resources/role_rules.json``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..resources import load_json, read_json_file
from ..roles import DYNAMIC_ROLES, UNASSIGNED, role_ids, role_label
from .bvalues import describe_b_values
from .scan import SeriesInfo, StudyScan, scan_folder

_PRIVATE_B_TAGS = ("(0018,9087) incl. per-frame", "Siemens (0019,100C)/CSA", "GE (0043,1039)", "Philips (2001,1003)",
                   "UIH (0065,1009)")


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


# ----------------------------------------------------------------------------------------- helpers
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


def _fmt_time(seconds: float) -> str:
    seconds = float(seconds)
    if abs(seconds) < 120:
        return f"{seconds:+.0f} s"
    return f"{seconds / 60:+.1f} min".replace(".0 min", " min")


def _is_diffusion_like(s: SeriesInfo) -> str | None:
    if s.b_values:
        return "b-values in the header"
    hit = _has_type(s.image_type, "diffusion")
    if hit:
        return f"ImageType {hit}"
    word = keyword(s, "dwi")
    return f"description '{word}'" if word else None


# ----------------------------------------------------------------------------------------- families
def vote_ignore(s: SeriesInfo) -> Vote | None:
    """Localizers, derived maps we do not use (FA, subtraction, MPR...): unassigned, said so."""
    hit = _has_type(s.image_type, "ignore")
    if hit:
        return Vote(UNASSIGNED, _conf("ignore_image_type"),
                    f"ImageType {hit}: a derived or localizer image, not a reading series")
    word = keyword(s, "not_liver")
    if word:
        return Vote(UNASSIGNED, _conf("ignore_keyword"), f"description '{word}': localizer/calibration/derived series")
    return None


def vote_adc(s: SeriesInfo) -> Vote | None:
    if _has_type(s.image_type, "adc_scanner"):
        return Vote("adc_scanner", _conf("adc_image_type"), "ImageType contains ADC: the scanner's ADC map")
    word = keyword(s, "adc")
    if word and len(s.b_values) < 2:
        return Vote("adc_scanner", _conf("adc_keyword"), f"description '{word}' (no ADC in ImageType)")
    return None


def vote_dwi(s: SeriesInfo) -> Vote | None:
    bvals = s.b_values
    sources = ", ".join(s.b_sources)
    min_b = rules()["physics"]["dwi_min_b_values"]
    if len(bvals) >= min_b:
        trace = " (scanner trace images present)" if any(st.is_trace for st in s.stacks) else ""
        return Vote("dwi", _conf("dwi_b_values"), f"b-values {describe_b_values(bvals)} s/mm² from {sources}{trace}")
    if len(bvals) == 1:
        return Vote(UNASSIGNED, _conf("dwi_single_b"),
                    f"diffusion series with a single b-value ({bvals[0]:g} s/mm² from {sources}): "
                    "not a DWI set on its own; set its role if it belongs with another series")
    why = _is_diffusion_like(s)
    if why and not _has_type(s.image_type, "adc_scanner") and not keyword(s, "adc"):
        return Vote(UNASSIGNED, _conf("dwi_no_b_value"),
                    f"looks like diffusion ({why}) but no b-value is readable in "
                    f"{', '.join(_PRIVATE_B_TAGS)}; set the role and b-values by hand")
    return None


def _dixon_role(image_type: Sequence[str]) -> str | None:
    for role in ("dixon_water", "dixon_fat", "t1_in_phase", "t1_opposed_phase"):
        if _has_type(image_type, role):
            return role
    return None


def vote_dixon(s: SeriesInfo) -> Vote | None:
    """Dixon reconstructions by ImageType (W/F/IP/OP), per stack when a series holds several."""
    per_stack = [_dixon_role(st.image_type) for st in s.stacks]
    if not any(per_stack):
        return None
    if any(r is None for r in per_stack):
        return Vote(UNASSIGNED, _conf("dixon_partial_image_type"),
                    "some images carry Dixon ImageType values and some do not")
    if len(s.echo_times_ms) > 2:
        return None  # a multi-echo acquisition tagged IP/OP is handled by the multi-echo family
    if s.contrast_agent and len(set(per_stack)) == 1:
        if per_stack[0] == "dixon_water":
            return None  # a post-contrast Dixon water series is a dynamic phase (Dixon-based dynamics)
        return Vote(UNASSIGNED, _conf("dixon_post_contrast_not_water"),
                    f"post-contrast Dixon {role_label(per_stack[0]).lower()} image "
                    "(ContrastBolusAgent present): the dynamic phases use the water images")
    labels = sorted({"\\".join(st.image_type[2:]) for st in s.stacks})
    is_dixon = "DIXON" in _tokens(s.image_type) or keyword(s, "dixon") or any(r.startswith("dixon") for r in per_stack)
    kind = "Dixon" if is_dixon else "chemical-shift"
    if len(set(per_stack)) == 1:
        role = per_stack[0]
        conf = _conf("dixon_water_fat_image_type" if role.startswith("dixon") else "in_opposed_image_type")
        physics = ""
        if not role.startswith("dixon"):
            check = _physics_check(s, role)
            if check is False:
                return Vote(UNASSIGNED, _conf("in_opposed_physics_contradicts"),
                            f"ImageType says {role_label(role).lower()} but " + _physics_text(s))
            if check:
                physics = "; " + _physics_text(s)
        name = role_label(role) if role.startswith("dixon") else f"{kind} {role_label(role)}"
        return Vote(role, conf, f"{name} image (ImageType {labels[0]}){physics}")
    return Vote("+".join(dict.fromkeys(per_stack)), _conf("dixon_stacks_image_type"),
                f"{kind} reconstructions by ImageType ({', '.join(labels)})",
                stack_roles=list(per_stack))


def _physics_text(s: SeriesInfo) -> str:
    b0, _ = field_strength(s)
    tes = s.echo_times_ms
    if b0 is None or not tes:
        return "echo time or field strength is missing"
    states = [echo_phase(te, b0)[0] or "neither" for te in tes]
    return f"TE {'/'.join(f'{t:g}' for t in tes)} ms at {b0:g} T is {'/'.join(states)} phase"


def _physics_check(s: SeriesInfo, role: str) -> bool | None:
    b0, _ = field_strength(s)
    if b0 is None or len(s.echo_times_ms) != 1:
        return None
    state = echo_phase(s.echo_times_ms[0], b0)[0]
    return state == ("in" if role == "t1_in_phase" else "opposed")


def vote_chemical_shift(s: SeriesInfo) -> Vote | None:
    """In/opposed phase by physics: the fat-water phase at each TE for the series' field strength."""
    phys = rules()["physics"]
    tes = s.echo_times_ms
    if not tes or max(tes) > phys["chemical_shift_max_te_ms"] or s.b_values or _dixon_role(s.image_type):
        return None
    if s.repetition_time_ms and s.repetition_time_ms > phys["gre_max_tr_ms"] * 20:
        return None
    b0, b0_source = field_strength(s)
    word = keyword(s, "chemical_shift")
    if len(tes) == 2:
        if b0 is None:
            return Vote(UNASSIGNED, _conf("dual_echo_no_field"),
                        f"two echoes (TE {tes[0]:g}/{tes[1]:g} ms) but the field strength is "
                        "missing: cannot tell opposed from in phase")
        states = [echo_phase(te, b0)[0] for te in tes]
        text = f"TE {tes[0]:g}/{tes[1]:g} ms at {b0:g} T ({b0_source})"
        if sorted(states, key=str) != ["in", "opposed"]:
            names = "/".join(st or "neither" for st in states)
            return Vote(UNASSIGNED, _conf("dual_echo_not_a_pair"),
                        f"two echoes but {text} are {names} phase, not an opposed/in-phase pair")
        role_of = {te: ("t1_in_phase" if st == "in" else "t1_opposed_phase")
                   for te, st in zip(tes, states, strict=True)}
        stack_roles = [role_of.get(round(st.echo_time_ms, 3), UNASSIGNED) if st.echo_time_ms is not None
                       else UNASSIGNED for st in s.stacks]
        names = "/".join("opposed" if st == "opposed" else "in" for st in states)
        conf = _conf("dual_echo_physics_and_word" if word else "dual_echo_physics")
        extra = f"; description '{word}'" if word else ""
        return Vote("+".join(dict.fromkeys(stack_roles)), conf, f"{text}: {names} phase{extra}",
                    stack_roles=stack_roles)
    if len(tes) == 1:
        wants_ip, wants_op = keyword(s, "t1_in_phase"), keyword(s, "t1_opposed_phase")
        if not (word or wants_ip or wants_op):
            return None
        if b0 is None:
            return None
        state = echo_phase(tes[0], b0)[0]
        text = f"TE {tes[0]:g} ms at {b0:g} T ({b0_source})"
        said = "opposed" if wants_op and not wants_ip else ("in" if wants_ip and not wants_op else None)
        if state is None:
            return Vote(UNASSIGNED, _conf("single_echo_word_neither_phase"),
                        f"description '{word or wants_ip or wants_op}' suggests chemical shift but "
                        f"{text} is neither in nor opposed phase")
        if said and said != state:
            return Vote(UNASSIGNED, _conf("single_echo_word_contradicts"),
                        f"description says {said} phase but {text} is {state} phase")
        role = "t1_in_phase" if state == "in" else "t1_opposed_phase"
        return Vote(role, _conf("single_echo_physics_and_word"),
                    f"{text}: {state} phase; description '{word or wants_ip or wants_op}'")
    return None


def vote_multi_echo(s: SeriesInfo) -> Vote | None:
    phys = rules()["physics"]
    tes = s.echo_times_ms
    if len(tes) < phys["multi_echo_min_echoes"] or max(tes) > phys["multi_echo_max_te_ms"] or s.b_values:
        return None
    conf = _conf("multi_echo_many" if len(tes) >= phys["multi_echo_confident_echoes"] else "multi_echo_few")
    word = keyword(s, "multi_echo_gre")
    extra = f"; description '{word}'" if word else ""
    return Vote("multi_echo_gre", conf, f"{len(tes)} echoes, TE {tes[0]:g}-{tes[-1]:g} ms: multi-echo GRE for "
                                        f"PDFF/R2*{extra}")


def vote_t2(s: SeriesInfo) -> Vote | None:
    phys = rules()["physics"]
    if _is_diffusion_like(s) or _has_type(s.image_type, "adc_scanner") or len(s.echo_times_ms) > 1:
        return None
    word = keyword(s, "t2")
    te = s.echo_times_ms[0] if s.echo_times_ms else None
    if te is not None and te > phys["t2_max_te_ms"]:
        return Vote(UNASSIGNED, _conf("t2_very_long_te"),
                    f"very long echo time (TE {te:g} ms): heavily T2-weighted (MRCP-like), not the "
                    "T2 series of the liver protocol")
    if te is not None and te >= phys["t2_min_te_ms"]:
        extra = f"; description '{word}'" if word else ""
        return Vote("t2", _conf("t2_long_te_and_word" if word else "t2_long_te"),
                    f"long echo time (TE {te:g} ms): T2-weighted{extra}")
    if word and te is None:
        return Vote("t2", _conf("t2_word_no_te"), f"description '{word}' (echo time missing)")
    if word and te is not None:
        return Vote(UNASSIGNED, _conf("t2_word_short_te"), f"description '{word}' says T2 but TE {te:g} ms is short")
    return None


def _is_t1_gre(s: SeriesInfo, allow_phases: bool = False, dixon_pre: frozenset[str] = frozenset()) -> bool:
    phys = rules()["physics"]
    if s.b_values or _is_diffusion_like(s) or len(s.echo_times_ms) > 1:
        return False
    if len(s.stacks) > 1 and not (allow_phases and _phase_units(s)):
        return False
    dixon = _dixon_role(s.image_type)
    if _has_type(s.image_type, "adc_scanner") or vote_ignore(s):
        return False
    if dixon and not (dixon == "dixon_water" and (s.contrast_agent or s.series_uid in dixon_pre)):
        return False
    if keyword(s, "chemical_shift") and not keyword(s, "t1_dynamic"):
        return False
    te = s.echo_times_ms[0] if s.echo_times_ms else None
    tr = s.repetition_time_ms
    if te is None:
        return bool(keyword(s, "t1_dynamic") or any(keyword(s, r) for r in DYNAMIC_ROLES[1:]))
    return te <= phys["t1_gre_max_te_ms"] and (tr is None or tr <= phys["gre_max_tr_ms"])


def _signature(s: SeriesInfo) -> tuple:
    st = s.stacks[0]
    f = st.frames[0]
    return (round(s.repetition_time_ms or 0, 1), round(st.echo_time_ms or 0, 1), round(s.flip_angle_deg or 0),
            f.rows, f.cols)


def _keyword_phase(s: SeriesInfo) -> str | None:
    """The phase named in the description; the longest matching word wins ('late art' over 'late')."""
    text = _text(s)
    best, best_len = None, 0
    for role in ("t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"):
        for word in rules()["keywords"][role]:
            if len(word) > best_len and _pattern(word).search(text):
                best, best_len = role, len(word)
    return best


def _phase_word(s: SeriesInfo, role: str) -> str:
    text = _text(s)
    words = [w for w in rules()["keywords"][role] if _pattern(w).search(text)]
    return max(words, key=len) if words else role


def _window_role(dt: float, windows: Mapping[str, Sequence[float]]) -> str | None:
    for role, (lo, hi) in windows.items():
        if lo <= dt < hi:
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


def vote_chemical_shift_pairs(series: Sequence[SeriesInfo]) -> dict[str, Vote]:
    """Two single-echo GRE series on one grid, acquired together, one opposed and one in phase by physics.

    Some scanners export the two echoes of a dual-echo acquisition as two series without a telling
    ImageType or description; the echo times decide.
    """
    phys = rules()["physics"]
    pair_s = phys["pair_max_time_difference_s"]
    singles = [s for s in series if len(s.echo_times_ms) == 1 and len(s.stacks) == 1 and not s.b_values
               and s.echo_times_ms[0] <= phys["chemical_shift_max_te_ms"] and not _dixon_role(s.image_type)
               and field_strength(s)[0] is not None and not s.contrast_agent]
    votes: dict[str, Vote] = {}
    for a in singles:
        for b in singles:
            if a is b or a.series_uid in votes or b.series_uid in votes or a.echo_times_ms[0] >= b.echo_times_ms[0]:
                continue
            if field_strength(a)[0] != field_strength(b)[0] or not _same_grid(a, b):
                continue
            if (a.repetition_time_ms or 0) and abs((a.repetition_time_ms or 0) - (b.repetition_time_ms or 0)) > \
                    phys["pair_max_tr_relative_difference"] * (a.repetition_time_ms or 0):
                continue
            if a.acquisition_s is not None and b.acquisition_s is not None and \
                    abs(a.acquisition_s - b.acquisition_s) > pair_s:
                continue
            b0 = field_strength(a)[0]
            sa, sb = echo_phase(a.echo_times_ms[0], b0)[0], echo_phase(b.echo_times_ms[0], b0)[0]
            if {sa, sb} != {"in", "opposed"}:
                continue
            for me, other, state in ((a, b, sa), (b, a, sb)):
                role = "t1_in_phase" if state == "in" else "t1_opposed_phase"
                votes[me.series_uid] = Vote(role, _conf("echo_pair_series"),
                                            f"TE {me.echo_times_ms[0]:g} ms at {b0:g} T is {state} phase; "
                                            f"paired with {other.label} (TE {other.echo_times_ms[0]:g} ms, "
                                            "same grid, acquired together)")
    return votes


@dataclass
class _Unit:
    """One dynamic acquisition: a whole series, or one temporal phase (stack) of a multi-phase series."""

    s: SeriesInfo
    k: int | None
    t: float | None

    @property
    def label(self) -> str:
        return self.s.label if self.k is None else f"{self.s.label} phase {self.k + 1}"


def _phase_units(s: SeriesInfo) -> list[_Unit] | None:
    """Stacks of a multi-phase T1 series (one TE, stacks at distinct times) as units, else None."""
    if len(s.stacks) < 2 or len(s.echo_times_ms) > 1 or s.b_values or any(_dixon_role(st.image_type)
                                                                            for st in s.stacks):
        return None
    times = [st.acquisition_s for st in s.stacks]
    if any(t is None for t in times) or len({round(t, 1) for t in times}) != len(times):
        return None
    if len({len(st.frames) for st in s.stacks}) != 1:
        return None
    return [_Unit(s, k, t) for k, t in enumerate(times)]


def dixon_dynamic_pre(series: Sequence[SeriesInfo]) -> frozenset[str]:
    """Pre-contrast Dixon water series that belong to a Dixon-based dynamic.

    A water image without contrast is the dynamic's pre-contrast series when a post-contrast water series has
    the same sequence (TR, TE, flip angle, matrix) on the same grid and was acquired later; a Dixon acquired
    for fat quantification with other parameters stays ``dixon_water``.
    """
    def water(s: SeriesInfo) -> bool:
        return len(s.stacks) == 1 and _dixon_role(s.image_type) == "dixon_water" and \
            all(_dixon_role(st.image_type) == "dixon_water" for st in s.stacks)

    posts = [s for s in series if water(s) and s.contrast_agent]
    out = set()
    for s in series:
        if not water(s) or s.contrast_agent:
            continue
        for p in posts:
            later = s.acquisition_s is None or p.acquisition_s is None or p.acquisition_s > s.acquisition_s
            if later and _signature(p) == _signature(s) and _same_grid(p, s):
                out.add(s.series_uid)
                break
    return frozenset(out)


def vote_dynamic(series: Sequence[SeriesInfo], exclude: frozenset[str] = frozenset(),
                 dixon_pre: frozenset[str] = frozenset()) -> dict[str, Vote]:
    """Pre-contrast and post-contrast phases of the repeated fat-suppressed 3-D T1 GRE, by timing and words.

    Separate series are the usual case; a multi-phase series (one stack per temporal position) is split
    into its phases and gets one role per stack. ``dixon_pre``: pre-contrast Dixon water series that take part
    (see :func:`dixon_dynamic_pre`).
    """
    units: list[_Unit] = []
    for s in series:
        if s.series_uid in exclude or not _is_t1_gre(s, allow_phases=True, dixon_pre=dixon_pre):
            continue
        units.extend(_phase_units(s) or ([_Unit(s, None, s.acquisition_s)] if len(s.stacks) == 1 else []))
    unit_votes = _vote_units(units)
    votes: dict[str, Vote] = {}
    for s in series:
        mine = [(u, v) for u, v in unit_votes if u.s is s]
        if not mine:
            continue
        if mine[0][0].k is None:
            votes[s.series_uid] = mine[0][1]
            continue
        stack_roles = [UNASSIGNED] * len(s.stacks)
        for u, v in mine:
            stack_roles[u.k] = v.role
        reason = "multi-phase series: " + "; ".join(f"phase {u.k + 1}: {v.role} ({v.reason})" for u, v in mine)
        votes[s.series_uid] = Vote("+".join(dict.fromkeys(stack_roles)), min(v.confidence for _, v in mine), reason,
                                   stack_roles=stack_roles)
    return votes


def _vote_units(units: list[_Unit]) -> list[tuple[_Unit, Vote]]:
    if not units:
        return []
    units.sort(key=lambda u: (u.t is None, u.t or 0.0, u.s.series_number or 0, u.k or 0))
    injection = next((u.s.contrast_start_s for u in units if u.s.contrast_start_s is not None), None)

    def has_agent(u: _Unit) -> bool:
        if not u.s.contrast_agent:
            return False
        return injection is None or u.t is None or u.t >= injection

    with_agent = [u for u in units if has_agent(u)]
    # some sites fill ContrastBolusAgent for the whole exam: on every T1 and without an injection time it says
    # nothing about which series came before the contrast
    exam_wide = bool(with_agent) and len(with_agent) == len(units) > 1 and injection is None
    out: dict[int, Vote] = {}
    if with_agent and not exam_wide:
        pre_c = [u for u in units if not has_agent(u)]
        posts = with_agent
        how_post = "ContrastBolusAgent present"
        clue_of = {id(u): "no ContrastBolusAgent" for u in pre_c}
    else:
        note = ("; ContrastBolusAgent is on every T1 series and no injection time is recorded, so it was not used"
                if exam_wide else " (no ContrastBolusAgent in the headers)")
        pre_c = [u for u in units if keyword(u.s, "pre") and u.k is None]
        clue_of = {id(u): f"description '{keyword(u.s, 'pre')}'" for u in pre_c}
        if not pre_c and len(units) >= 2 and units[0].t is not None and not _keyword_phase(units[0].s):
            evidence = _pre_evidence(units)
            if evidence is None:
                return _undecided_start(units, note)
            pre_c, clue_of = [units[0]], {id(units[0]): evidence}
        posts = [u for u in units if u not in pre_c]
        how_post = ("after the pre-contrast series" if pre_c else "no pre-contrast series identified") + note
    pre = None
    if pre_c:
        first_post_t = min((p.t for p in posts if p.t is not None), default=None)
        before = [p for p in pre_c if first_post_t is None or p.t is None or p.t <= first_post_t]
        same = [p for p in before if posts and _signature(p.s) == _signature(posts[0].s)] or before
        if same:
            pre = same[-1]
            clue = clue_of[id(pre)]
            if _dixon_role(pre.s.image_type) == "dixon_water":
                clue += "; Dixon water image with the sequence and grid of the post-contrast water series"
            strong = with_agent and not exam_wide or keyword(pre.s, "pre")
            which = ("pre_contrast_tagged" if strong else "pre_contrast_inferred") if posts else "pre_contrast_alone"
            conf = _conf(which)
            out[id(pre)] = Vote("t1_pre", conf, f"T1 GRE before contrast ({clue}); {len(posts)} post-contrast "
                                                "T1 acquisitions follow")
        for p in pre_c:
            if p is not pre:
                other = pre.label if pre else "another series"
                out[id(p)] = Vote(UNASSIGNED, _conf("pre_contrast_second"),
                                  f"T1 GRE without contrast; {other} was taken as the pre-contrast series")
    out.update(_post_votes(posts, pre, injection, how_post))
    return [(u, out[id(u)]) for u in units if id(u) in out]


def _pre_evidence(units: list[_Unit]) -> str | None:
    """Why the earliest T1 GRE (no 'pre' or phase word, no usable contrast tag) is pre-contrast, or None.

    Either the next acquisition is named arterial, or the earliest stands apart in time: post-contrast phases
    follow the injection at growing intervals (arterial -> portal venous ~40 s, -> transitional minutes later),
    so a first gap longer than the second (and at least ``min_gap_s``) does not fit an arterial first series.
    """
    ev = rules()["dynamic"]["pre_evidence"]
    nxt = units[1]
    if nxt.k is None and _keyword_phase(nxt.s) == "t1_arterial":
        return f"the next T1 GRE, {nxt.label}, is named arterial ('{_phase_word(nxt.s, 't1_arterial')}')"
    timed = [u for u in units if u.t is not None]
    if len(timed) < 3:
        return None
    g0, g1 = timed[1].t - timed[0].t, timed[2].t - timed[1].t
    if g0 >= ev["min_gap_s"] and g0 > ev["gap_ratio"] * g1:
        return (f"acquired {_fmt_time(g0).lstrip('+')} before the next T1 GRE, a longer gap than the "
                f"{_fmt_time(g1).lstrip('+')} between the next two: post-contrast phases follow at growing intervals")
    return None


def _undecided_start(units: list[_Unit], note: str) -> list[tuple[_Unit, Vote]]:
    """The earliest T1 may be pre-contrast or already arterial: keep only what both readings agree on."""
    first = units[0]
    as_pre = _post_votes(units[1:], first, None, "if the earliest is pre-contrast" + note)
    as_post = _post_votes(units, None, None, "if the earliest is already post-contrast" + note)
    out: dict[int, Vote] = {id(first): Vote(
        UNASSIGNED, _conf("pre_or_arterial_undecided"),
        f"earliest T1 GRE: pre-contrast or already arterial cannot be told{note}; no 'pre' or phase word in the "
        "description and no clear gap before the next T1 GRE; set the role by hand")}
    for u in units[1:]:
        a, b = as_pre[id(u)], as_post[id(u)]
        if a.role == b.role:
            out[id(u)] = Vote(a.role, min(a.confidence, b.confidence),
                              f"{a.reason} (the same whether or not {first.label} is pre-contrast)")
        else:
            out[id(u)] = Vote(UNASSIGNED, _conf("phase_depends_on_pre"),
                              f"{role_label(a.role).lower()} if {first.label} is pre-contrast, "
                              f"{role_label(b.role).lower()} if it is already arterial; set the role "
                              "by hand")
    return [(u, out[id(u)]) for u in units]


def _post_votes(posts: list[_Unit], pre: _Unit | None, injection: float | None, how_post: str) -> dict[int, Vote]:
    """Phase of each post-contrast acquisition from its time after the injection (or the first post) and words."""
    dyn = rules()["dynamic"]
    out: dict[int, Vote] = {}
    timed = [p for p in posts if p.t is not None]
    if injection is not None:
        ref_t, windows, ref_name = injection, dyn["after_injection_s"], "injection"
    elif timed:
        ref_t, windows, ref_name = timed[0].t, dyn["after_first_post_s"], "the first post-contrast acquisition"
    else:
        ref_t, windows, ref_name = None, {}, ""
    for k, p in enumerate(posts):
        word_role = _keyword_phase(p.s) if p.k is None else None
        time_role = None
        timing = ""
        if ref_t is not None and p.t is not None:
            dt = p.t - ref_t
            time_role = _window_role(dt, windows)
            parts = [f"{_ordinal(k + 1)} post-contrast T1 ({how_post})"]
            if pre is not None and pre.t is not None:
                parts.append(f"{_fmt_time(p.t - pre.t)} after pre-contrast")
            parts.append(f"{_fmt_time(dt)} after {ref_name}")
            timing = ", ".join(parts)
        if time_role and word_role and time_role != word_role:
            out[id(p)] = Vote(UNASSIGNED, _conf("phase_time_contradicts_word"),
                              f"{timing} suggests {role_label(time_role).lower()} but the "
                              f"description says {role_label(word_role).lower()}")
        elif time_role:
            conf = _conf("phase_time_and_word" if word_role else ("phase_time_from_injection" if injection is not None
                                                                    else "phase_time_from_first_post"))
            extra = f"; description '{_phase_word(p.s, word_role)}'" if word_role else ""
            out[id(p)] = Vote(time_role, conf, f"{timing}: {role_label(time_role).lower()}{extra}")
        elif word_role:
            why = f"{timing}; " if timing else "no acquisition time; "
            out[id(p)] = Vote(word_role, _conf("phase_word_only"), f"{why}description '{_phase_word(p.s, word_role)}'")
        else:
            why = timing or "no acquisition time and no phase word in the description"
            out[id(p)] = Vote(UNASSIGNED, _conf("phase_unclear"),
                              f"post-contrast T1 GRE but the phase is unclear ({why})")
    return out


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


# ----------------------------------------------------------------------------------------- combiner
_FAMILIES = (vote_ignore, vote_adc, vote_dwi, vote_dixon, vote_chemical_shift, vote_multi_echo, vote_t2)


def _close(a: float, b: float, margin: float) -> bool:
    """Whether confidences ``a`` >= ``b`` are within ``margin`` (decimal, so 0.9 vs 0.8 is exactly 0.1 apart)."""
    return round(a - b, 9) < margin


def _assign(s: SeriesInfo, vote: Vote) -> None:
    s.role, s.confidence, s.reason = vote.role, vote.confidence, vote.reason
    s.stack_roles = list(vote.stack_roles) if vote.stack_roles else [vote.role] * len(s.stacks)


def _unassign(s: SeriesInfo, reason: str, confidence: float = 0.0) -> None:
    _assign(s, Vote(UNASSIGNED, confidence, reason))


def classify_series(series: Sequence[SeriesInfo]) -> list[SeriesInfo]:
    """Give every series of ONE study a role, a confidence (0..1) and a reason; returns the same objects."""
    conf_rules = rules()["confidence"]
    margin, min_conf = conf_rules["conflict_margin"], conf_rules["min_confidence"]
    pairs = vote_chemical_shift_pairs(series)
    dixon_pre = dixon_dynamic_pre(series)
    dynamic = vote_dynamic(series, exclude=frozenset(pairs), dixon_pre=dixon_pre)
    for s in series:
        # the pre-contrast water image of a Dixon dynamic is the dynamic's t1_pre, not the fat-map water image
        families = [f for f in _FAMILIES if not (f is vote_dixon and s.series_uid in dixon_pre)]
        votes = [v for v in (fam(s) for fam in families) if v is not None]
        for extra in (pairs, dynamic):
            if s.series_uid in extra:
                votes.append(extra[s.series_uid])
        if not votes:
            te = "/".join(f"{t:g}" for t in s.echo_times_ms) or "?"
            _unassign(s, f"no role matches (TE {te} ms, TR {s.repetition_time_ms or '?'} ms, ImageType "
                         f"{'/'.join(s.image_type) or '?'}, description '{s.description}')")
            continue
        votes.sort(key=lambda v: -v.confidence)
        best = votes[0]
        rivals = [v for v in votes[1:] if v.role != best.role and _close(best.confidence, v.confidence, margin)]
        if rivals:
            _unassign(s, f"conflicting clues: {best.reason} vs {rivals[0].reason}")
        elif best.role != UNASSIGNED and best.confidence < min_conf:
            _unassign(s, f"too uncertain ({best.confidence:.2f}): {best.reason}")
        else:
            _assign(s, best)
    _resolve_duplicates(series, margin)
    return list(series)


def _is_axial(s: SeriesInfo) -> bool:
    ori = s.stacks[0].frames[0].orientation if s.stacks and s.stacks[0].frames else None
    if ori is None:
        return False
    normal = (ori[1] * ori[5] - ori[2] * ori[4], ori[2] * ori[3] - ori[0] * ori[5], ori[0] * ori[4] - ori[1] * ori[3])
    return abs(normal[2]) >= rules()["preference"]["axial_min_abs_normal_z"]


def _preference(s: SeriesInfo, role: str) -> tuple[int, int]:
    """Tie-break between series claiming one role: axial first, then (for T2) fat-suppressed."""
    fat_sat = int(role == "t2" and bool(keyword(s, "fat_suppressed") or "FS" in s.sequence_variant.upper().split("\\")))
    return int(_is_axial(s)), fat_sat


def _preference_text(s: SeriesInfo, role: str) -> str:
    axial, fs = _preference(s, role)
    return ", ".join([w for w, ok in (("axial", axial), ("fat-suppressed", fs)) if ok]) or "preferred"


def _resolve_duplicates(series: Sequence[SeriesInfo], margin: float) -> None:
    claims: dict[str, list[SeriesInfo]] = {}
    for s in series:
        for role in dict.fromkeys(s.stack_roles):
            if role != UNASSIGNED:
                claims.setdefault(role, []).append(s)
    for role, owners in claims.items():
        if len(owners) < 2:
            continue
        owners = sorted(owners, key=lambda s: -s.confidence)
        top = owners[0]
        name = role_label(role).lower()
        if not _close(top.confidence, owners[1].confidence, margin):
            for s in owners[1:]:
                _drop_role(s, role, f"also looks like {name} but {top.label} is more certain")
            continue
        close = [s for s in owners if _close(top.confidence, s.confidence, margin)]
        prefs = [_preference(s, role) for s in close]
        best = max(prefs)
        if prefs.count(best) == 1:
            winner = close[prefs.index(best)]
            for s in owners:
                if s is not winner:
                    _drop_role(s, role, f"also looks like {name} but {winner.label} is "
                                        f"{_preference_text(winner, role)} and was preferred")
            winner.reason += f" ({_preference_text(winner, role)}, preferred over " + \
                ", ".join(s.label for s in owners if s is not winner) + ")"
        else:
            names = " and ".join(s.label for s in owners)
            for s in owners:
                _drop_role(s, role, f"ambiguous: {names} all look like {name}; set the role by hand ({s.reason})")


def _drop_role(s: SeriesInfo, role: str, reason: str) -> None:
    s.stack_roles = [UNASSIGNED if r == role else r for r in s.stack_roles]
    remaining = [r for r in dict.fromkeys(s.stack_roles) if r != UNASSIGNED]
    if remaining:
        s.role = "+".join(remaining)
        s.reason = f"{s.reason}; {reason}"
    else:
        _unassign(s, reason)


def classify_scan(scan: StudyScan) -> StudyScan:
    """Classify each study of a scan separately (timing and uniqueness only make sense within a study)."""
    for members in scan.by_study().values():
        classify_series(members)
    return scan


def classify_folder(folder: str | Path) -> StudyScan:
    """Scan ``folder`` and classify every series."""
    return classify_scan(scan_folder(folder))


# ----------------------------------------------------------------------------------------- reader's choice
_OVERRIDES_FORMATS = ('an overrides file {"overrides": {"<series UID or number>": "<role>"}} or the roles.json that '
                      "'livermets load' or 'livermets phantom' writes (format livermets-study-folder)")


Override = str | Sequence[str] | Mapping[int, str]


def load_overrides(path: str | Path) -> dict[str, Override]:
    """The reader's roles, ``{"<SeriesInstanceUID or series number>": role or [role per stack]}``, from either file.

    1. An overrides file ``{"overrides": {key: role}}``. A role is a role id (applied to every stack) or a list
       with one role id per stack (in the order 'livermets classify --json' lists them), e.g.
       ``["t1_opposed_phase", "t1_in_phase"]``; "unassigned" removes a series from the study.
    2. The ``roles.json`` of a study folder (``livermets load``/``phantom``, possibly edited), or that folder:
       see :func:`overrides_from_study_index`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "roles.json"
    data = read_json_file(path, _OVERRIDES_FORMATS)
    if isinstance(data, dict) and data.get("format") == "livermets-study-folder":
        return overrides_from_study_index(data, path)
    overrides = data.get("overrides") if isinstance(data, dict) else None
    if not isinstance(overrides, dict):
        raise LiverMetsError(f"{path} is neither of the two role files: give {_OVERRIDES_FORMATS}")
    return {str(k): v for k, v in overrides.items()}


def _index_key(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return None
    for key in ("series_uid", "series_number"):
        if meta.get(key) not in (None, ""):
            return str(meta[key])
    return None


def overrides_from_study_index(index: Mapping[str, Any], path: str | Path = "roles.json") -> dict[str, Override]:
    """Overrides from a study folder's ``roles.json``: each series entry's ``role`` for the DICOM series it came from.

    An entry names its series by ``meta.series_uid`` (``livermets load``) or ``meta.series_number`` (the phantom,
    whose DICOM export keeps its numbers). Entries of one series that hold different stacks (a dual-echo series
    loaded as opposed and in phase) list them in ``meta.stack_indices``; its other stacks become unassigned. A
    series the index knows from ``classification`` but does not list among ``series`` was not loaded and stays
    out (unassigned); series the file does not mention keep the classifier's role.
    """
    entries = index.get("series")
    if not isinstance(entries, list):
        raise LiverMetsError(f'{path}: a study index needs a "series" list; give {_OVERRIDES_FORMATS}')
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for k, entry in enumerate(entries):
        role = entry.get("role") if isinstance(entry, dict) else None
        key = _index_key(entry.get("meta")) if isinstance(entry, dict) else None
        if not isinstance(role, str) or key is None:
            raise LiverMetsError(f"{path}: series entry {k + 1} lacks a role or a meta.series_uid/series_number, so "
                                 "it cannot be matched to a DICOM series; fix the entry or use an overrides file")
        grouped.setdefault(key, []).append((role, entry["meta"].get("stack_indices")))
    out: dict[str, Override] = {}
    for key, parts in grouped.items():
        if len(parts) == 1 and parts[0][1] is None:
            out[key] = parts[0][0]
            continue
        indices = [ix for _, ix in parts]
        if any(not isinstance(ix, list) or not all(isinstance(i, int) and i >= 0 for i in ix) for ix in indices):
            raise LiverMetsError(f"{path}: series {key} has {len(parts)} entries but not every one lists its "
                                 "meta.stack_indices, so the stacks cannot be told apart; use an overrides file with "
                                 "one role per stack")
        by_stack: dict[int, str] = {}
        for role, ix in parts:
            for i in ix:
                if i in by_stack:
                    raise LiverMetsError(f"{path}: stack {i} of series {key} is listed by two entries; keep one")
                by_stack[i] = role
        out[key] = by_stack
    mentioned = {str(e["meta"][k]) for e in entries for k in ("series_uid", "series_number")
                 if e["meta"].get(k) not in (None, "")}
    for row in index.get("classification") or []:
        ids = {str(row[k]) for k in ("series_uid", "series_number") if isinstance(row, dict) and row.get(k)}
        key = _index_key(row)
        if key is not None and not ids & mentioned:
            out[key] = UNASSIGNED
    return out


def apply_overrides(series: Sequence[SeriesInfo], overrides: Mapping[str, Override]) -> None:
    """Set roles chosen by the reader (confidence 1, reason 'set by the reader', plus the classifier's if it agreed).

    A value is one role for every stack, a list with one role per stack, or {stack index: role} (the stacks
    it does not name become unassigned).
    """
    valid = set(role_ids())
    scan = StudyScan("(study)", list(series), [], 0)
    for key, value in overrides.items():
        s = scan.find(key)
        if isinstance(value, Mapping):
            roles = [UNASSIGNED] * len(s.stacks)
            for i, r in value.items():
                if not str(i).isdigit() or int(i) >= len(s.stacks):
                    raise LiverMetsError(f"{s.label} has stacks 0-{len(s.stacks) - 1}; the override names stack "
                                         f"'{i}', which does not exist")
                roles[int(i)] = r
        elif isinstance(value, str):
            roles = [value] * len(s.stacks)
        elif isinstance(value, list | tuple):
            roles = list(value)
        else:
            raise LiverMetsError(f"the override for {s.label} is {value!r}; give a role, a list of roles (one per "
                                 "stack) or {stack index: role}")
        if len(roles) != len(s.stacks):
            raise LiverMetsError(f"{s.label} has {len(s.stacks)} stacks but the override lists {len(roles)} roles")
        bad = [r for r in roles if r not in valid]
        if bad:
            raise LiverMetsError(f"unknown role '{bad[0]}' for {s.label}; known roles: {', '.join(sorted(valid))}")
        agreed = stack_roles_of(s) == roles and s.reason and not s.reason.startswith("set by the reader")
        s.stack_roles = roles
        s.role = "+".join(dict.fromkeys(roles))
        s.confidence = 1.0
        # a reused roles.json repeats the classifier's choices: keep why, so the reader still sees the evidence
        s.reason = f"set by the reader, as classified ({s.reason})" if agreed else "set by the reader"


def stack_roles_of(s: SeriesInfo) -> list[str]:
    """One role per stack (``unassigned`` when classification has not run)."""
    return s.stack_roles if len(s.stack_roles) == len(s.stacks) else [s.role] * len(s.stacks)


def classification_table(scan: StudyScan) -> list[dict[str, Any]]:
    """JSON-able rows for every series."""
    return [s.summary() for s in scan.series]
