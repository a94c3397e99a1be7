"""Every quantitative map a study's series allow, in one call: roles → maps.

The CLI's ``demo``, the Slicer module and cohort scripts call :func:`compute_study_maps` with the
study's :class:`~LiverMetsReviewLib.series.Series`; each map is computed when its inputs are there, and
what could not be computed is listed with the reason (never dropped silently). The individual maps
live in :mod:`LiverMetsReviewLib.maps`; this module only chooses inputs by role and names outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import SimpleITK as sitk

from .errors import LiverMetsError
from .roles import DYNAMIC_ROLES
from .series import Series

POST_CONTRAST = DYNAMIC_ROLES[1:]
# The maps a lesion reading measures. PDFF where the study has a multi-echo series: the checklist corrects
# fat-suppressed signals by the lesion's water share (100 - fat), which is a proton-density quantity. The Dixon and
# two-point fat fractions come from T1-weighted gradient echoes (the phantom's Dixon: TR 6.8 ms, 10 degrees), where
# fat's short T1 (about 340 ms at 1.5 T against a metastasis's 1760 +/- 720 ms, lesion-parameter-ranges.md
# section 3) makes fat relatively brighter than water, so they overstate a lesion's fat; the multi-echo fit is
# low-flip (3 degrees) and T2*-corrected. Up to session 20 `measure` left PDFF out.
LESION_MAPS = ("adc", "fat_chemical_shift", "fat_dixon", "pdff", "enhancement")


@dataclass
class StudyMaps:
    """Named output images, their key/value metadata, one summary per map family, and what was skipped."""

    images: dict[str, sitk.Image] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # 1 where the map holds a measurement, 0 where the voxel was masked (background, invalid input)
    valid: dict[str, sitk.Image] = field(default_factory=dict)

    def add(self, name: str, image: sitk.Image, meta: dict[str, Any] | None, valid: sitk.Image | None = None) -> None:
        self.images[name] = image
        self.metadata[name] = dict(meta or {})
        if valid is not None:
            self.valid[name] = valid


def _not_background(flags: sitk.Image) -> sitk.Image:
    """Fat maps flag background as 1; every other flag is still a measured (if caveated) voxel."""
    return sitk.Cast(sitk.NotEqual(flags, 1), sitk.sitkUInt8)


def _by_role(series: Sequence[Series]) -> dict[str, Series]:
    out: dict[str, Series] = {}
    for s in series:
        out.setdefault(s.role, s)  # the first series of a role wins; the reader reassigns roles upstream
    return out


def _field_strength(*series: Series) -> float | None:
    for s in series:
        value = s.meta.get("field_strength_t")
        if value:
            return float(value)
    return None


def _echo_time(s: Series) -> float | None:
    te = s.echo_times_ms or ([float(s.meta["echo_time_ms"])] if s.meta.get("echo_time_ms") else [])
    return te[0] if te else None


def _adc(maps: StudyMaps, dwi: Series, method: str, computed_b: Sequence[float], exclude_below: float | None) -> None:
    from .maps.adc import fit_adc

    if len(dwi.b_values) != len(dwi.stacks):
        raise LiverMetsError("the DWI series lacks a b-value for some of its images; set them before fitting an ADC")
    res = fit_adc(dwi.stacks, dwi.b_values, method=method, exclude_below=exclude_below, computed_b=computed_b)
    maps.add("adc", res.adc, res.metadata.get("adc"), res.mask)
    maps.add("adc_s0", res.s0, res.metadata.get("s0"))
    maps.add("adc_quality", res.quality, res.metadata.get("quality"))
    for b, img in res.computed.items():
        maps.add(f"dwi_computed_b{b:g}", img, res.metadata.get(f"computed_b{b:g}"))
    maps.summaries["adc"] = res.summary


def _chemical_shift(maps: StudyMaps, ip: Series, op: Series) -> None:
    from .maps.fat import chemical_shift_fat

    te_ip, te_op = _echo_time(ip), _echo_time(op)
    echo_times = (te_ip, te_op) if te_ip and te_op else None
    res = chemical_shift_fat(ip.image, op.image, field_strength_t=_field_strength(ip, op), echo_times_ms=echo_times)
    maps.add("ff_chemical_shift", res.ff, res.metadata.get("ff"), _not_background(res.flags))
    if res.sii is not None:
        maps.add("sii", res.sii, res.metadata.get("sii"), _not_background(res.flags))
    maps.summaries["fat_chemical_shift"] = res.summary


def _dixon(maps: StudyMaps, water: Series, fat: Series) -> None:
    from .maps.fat import dixon_fat

    res = dixon_fat(water.image, fat.image)
    maps.add("ff_dixon", res.ff, res.metadata.get("ff"), _not_background(res.flags))
    maps.summaries["fat_dixon"] = res.summary


def _pdff(maps: StudyMaps, me: Series) -> None:
    from .maps.pdff import fit_pdff

    fs = _field_strength(me)
    if fs is None:
        raise LiverMetsError("the multi-echo series has no field strength; set it to fit PDFF")
    if len(me.echo_times_ms) != len(me.stacks):
        raise LiverMetsError("the multi-echo series lacks an echo time for some echoes; set them to fit PDFF")
    res = fit_pdff(me.stacks, me.echo_times_ms, field_strength_t=fs)
    maps.add("pdff", res.pdff, res.metadata.get("pdff"), res.mask)
    maps.add("r2star", res.r2star, res.metadata.get("r2star"), res.mask)
    maps.summaries["pdff"] = res.summary


def _enhancement(maps: StudyMaps, pre: Series, post: Series, register: bool) -> None:
    from .maps.enhancement import relative_enhancement

    short = post.role.removeprefix("t1_")
    moving = post.image
    if register:  # breath-holds differ between phases: align each phase to the pre-contrast image first
        from .maps.registration import register as align

        reg = align(pre.image, post.image)
        moving = reg.resampled
        maps.summaries[f"registration_{short}"] = reg.summary
    res = relative_enhancement(pre.image, moving, phase=post.role)
    maps.add(f"re_{short}", res.re, res.metadata.get("re"), res.mask)
    maps.add(f"sub_{short}", res.subtraction, res.metadata.get("subtraction"))  # defined wherever both are
    maps.summaries[f"enhancement_{short}"] = res.summary


def _dixon_water(roles: dict[str, Series]) -> Series | None:
    """The Dixon water series; in a Dixon-based dynamic the pre-contrast water image carries the role ``t1_pre``."""
    if "dixon_water" in roles:
        return roles["dixon_water"]
    pre = roles.get("t1_pre")
    words = {str(w).upper() for w in (pre.meta.get("image_type") or [])} if pre else set()
    return pre if "WATER" in words else None


def compute_study_maps(series: Sequence[Series], *, adc_method: str = "lls", computed_b: Sequence[float] = (1500,),
                       exclude_below: float | None = None, which: Sequence[str] | None = None,
                       register_dynamic: bool = False) -> StudyMaps:
    """Compute ADC (+ computed DWI), chemical-shift and Dixon fat, PDFF/R2* and enhancement where possible.

    ``which`` restricts the families: any of ``adc``, ``fat_chemical_shift``, ``fat_dixon``, ``pdff``,
    ``enhancement`` (default all). A family whose inputs are missing or invalid is listed in ``skipped`` with
    the reason; the others are still computed. ``register_dynamic`` aligns every post-contrast phase to the
    pre-contrast image (rigid, mutual information) before enhancement and subtraction; the registration
    summaries are kept under ``registration_<phase>``.
    """
    roles = _by_role(series)
    water = _dixon_water(roles)
    if water is not None:
        roles.setdefault("dixon_water", water)
    wanted = set(which or ("adc", "fat_chemical_shift", "fat_dixon", "pdff", "enhancement"))
    maps = StudyMaps()
    jobs: list[tuple[str, tuple[str, ...], Any]] = [
        ("adc", ("dwi",), lambda: _adc(maps, roles["dwi"], adc_method, computed_b, exclude_below)),
        ("fat_chemical_shift", ("t1_in_phase", "t1_opposed_phase"),
         lambda: _chemical_shift(maps, roles["t1_in_phase"], roles["t1_opposed_phase"])),
        ("fat_dixon", ("dixon_water", "dixon_fat"), lambda: _dixon(maps, roles["dixon_water"], roles["dixon_fat"])),
        ("pdff", ("multi_echo_gre",), lambda: _pdff(maps, roles["multi_echo_gre"])),
    ]
    for phase in POST_CONTRAST:
        jobs.append(("enhancement", ("t1_pre", phase),
                     lambda phase=phase: _enhancement(maps, roles["t1_pre"], roles[phase], register_dynamic)))
    for family, needed, run in jobs:
        if family not in wanted:
            continue
        key = family if family != "enhancement" else f"enhancement_{needed[1].removeprefix('t1_')}"
        missing = [r for r in needed if r not in roles]
        if missing:
            maps.skipped[key] = f"no series with role {', '.join(missing)}"
            continue
        try:
            run()
        except LiverMetsError as exc:
            maps.skipped[key] = str(exc)
    return maps
