"""One vote per role family for a single series: localizers, scanner ADC, diffusion, Dixon, chemical shift,
multi-echo GRE, T2; and the two single-echo series of a dual-echo acquisition paired by their echo times.

Each family abstains (None) or casts a :class:`~.clues.Vote`; the combiner in :mod:`.classify` weighs them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..roles import UNASSIGNED, role_label
from .bvalues import describe_b_values
from .clues import (
    Vote,
    _conf,
    _dixon_role,
    _has_type,
    _is_diffusion_like,
    _same_grid,
    _tokens,
    echo_phase,
    field_strength,
    keyword,
    rules,
)
from .scan import SeriesInfo

_PRIVATE_B_TAGS = ("(0018,9087) incl. per-frame", "Siemens (0019,100C)/CSA", "GE (0043,1039)", "Philips (2001,1003)",
                   "UIH (0065,1009)")


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

