"""The dynamic family: pre-contrast and post-contrast phases of the repeated T1 GRE, by contrast tags, timing
and words, over all series of a study at once (a multi-phase series is split into its phases).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..roles import DYNAMIC_ROLES, UNASSIGNED, role_label
from .clues import (
    Vote,
    _conf,
    _dixon_role,
    _has_type,
    _is_diffusion_like,
    _pattern,
    _same_grid,
    _text,
    keyword,
    rules,
)
from .families import vote_ignore
from .scan import SeriesInfo


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


def _fmt_time(seconds: float) -> str:
    seconds = float(seconds)
    if abs(seconds) < 120:
        return f"{seconds:+.0f} s"
    return f"{seconds / 60:+.1f} min".replace(".0 min", " min")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"

