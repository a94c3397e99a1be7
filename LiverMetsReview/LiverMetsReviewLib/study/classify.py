"""Series -> roles (the brief's section 1 table), each with a confidence and a reason a reader can check.

One small function per role family (diffusion, scanner ADC, Dixon, chemical shift, multi-echo, T2:
:mod:`.families`; dynamic phases: :mod:`.dynamic`) looks at one series (the dynamic family at all of them) and
either abstains or votes ``Vote(role, confidence, reason)`` (:mod:`.clues`). The combiner here keeps the strongest
vote, leaves conflicting or weak ones ``unassigned`` *with the reason*, and resolves two series claiming one role
the same way. A series whose stacks play different roles (a dual-echo series holding opposed and in phase, a Dixon
series holding W/F/IP/OP) carries one role per stack in ``stack_roles``; its ``role`` is those roles joined by
'+'. Rules, keywords and constants are data: ``resources/role_rules.json``. The reader's roles: :mod:`.overrides`
(its names are importable from here too).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..roles import UNASSIGNED, role_label
from .clues import Vote, echo_phase, field_strength, keyword, normalise_text, rules
from .dynamic import dixon_dynamic_pre, vote_dynamic
from .families import (
    vote_adc,
    vote_chemical_shift,
    vote_chemical_shift_pairs,
    vote_dixon,
    vote_dwi,
    vote_ignore,
    vote_multi_echo,
    vote_t2,
)
from .overrides import Override, apply_overrides, load_overrides, overrides_from_study_index, stack_roles_of
from .scan import SeriesInfo, StudyScan, scan_folder

__all__ = [
    "Override", "Vote", "apply_overrides", "classification_table", "classify_folder", "classify_scan",
    "classify_series", "echo_phase", "field_strength", "keyword", "load_overrides", "normalise_text",
    "overrides_from_study_index", "rules", "stack_roles_of",
]


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


def classification_table(scan: StudyScan) -> list[dict[str, Any]]:
    """JSON-able rows for every series."""
    return [s.summary() for s in scan.series]

