"""Fat maps: signal fat fraction from in/opposed-phase magnitudes, and Dixon fat fraction with a swap check.

Chemical shift (two-point, magnitude): with IP = W + F and OP = |W - F|, the signal fat fraction
FF = (IP - OP) / (2 IP) = min(W, F) / (W + F) can only say "the smaller component", i.e. it folds at 50 %: a
value near the fold may just as well be 100 - FF. The signal intensity index SII = (IP - OP) / IP x 100 is the
drop a reader sees. Both in percent. Echo times are checked against the field strength first, because a pair of
two in-phase echoes (e.g. 2.3/4.6 ms at 3 T) gives a meaningless "fat fraction" of about 0.

Dixon: FF = F / (W + F) in percent (0-100, no fold), with a check for fat-water swaps (slices whose fat fraction
mirrors their neighbours', a body that is mostly fat-dominant, or a reference tissue on the wrong side of 50 %),
reported with where (slice index, LPS mm).

Background: a test with a stated false-positive rate for pure noise (:mod:`.noise_mask`) when the noise sigma can be
estimated, else a fraction of the 99th percentile; the summary counts masked voxels by reason.

Flags (uint8): 0 valid, 1 background (at the noise level / outside the mask / outside the grid), 2 invalid
(OP brighter than IP beyond the tolerance), 3 ambiguous (near the 50 % fold). Map values are 0 where flag is 1
or 2. No output holds NaN or inf.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError
from ..physics.fat import dephasing_cycles, fat_water_shift_hz
from .defaults import defaults
from .noise_mask import decide_signal
from .resample import (
    as_float_array,
    describe_grid,
    float_view,
    match_to_reference,
    slice_positions_mm,
    to_image,
    usable_pair,
)
from .summary import stated

FF_UNITS = "percent"
FLAG_VALID, FLAG_BACKGROUND, FLAG_INVALID, FLAG_AMBIGUOUS = 0, 1, 2, 3
FLAG_LEGEND = {"0": "valid", "1": "background / masked", "2": "invalid (opposed brighter than in phase)",
               "3": "ambiguous (near the 50 % fold of magnitude chemical shift)"}


@dataclass
class FatResult:
    """Fat fraction (percent), SII (percent, chemical shift only), flags, and a JSON-able summary (flags and SII:
    None when not asked for)."""

    ff: sitk.Image
    flags: sitk.Image | None
    summary: dict[str, Any]
    sii: sitk.Image | None = None
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def fat_water_frequency_hz(field_strength_t: float) -> float:
    """Fat-water frequency difference (Hz) at a field strength, from the configured shift (ppm) and gamma."""
    cfg = defaults("chemical_shift")
    return fat_water_shift_hz(field_strength_t, cfg["fat_water_shift_ppm"], cfg["gyromagnetic_mhz_per_t"])


def echo_phase(field_strength_t: float, te_ms: float) -> dict[str, Any]:
    """Where an echo sits in the fat-water cycle: {'cycles', 'state': 'in_phase'|'opposed_phase'|'neither'}."""
    cycles = dephasing_cycles(fat_water_frequency_hz(field_strength_t), te_ms)
    tol = float(defaults("chemical_shift")["echo_phase_tolerance_cycles"])
    frac = cycles - np.floor(cycles)
    if min(frac, 1.0 - frac) <= tol and cycles > 0.5:
        state = "in_phase"
    elif abs(frac - 0.5) <= tol:
        state = "opposed_phase"
    else:
        state = "neither"
    return {"te_ms": float(te_ms), "cycles": round(float(cycles), 3), "state": state}


def check_echo_pair(field_strength_t: float, te_in_phase_ms: float, te_opposed_phase_ms: float) -> dict[str, Any]:
    """Confirm that the two echoes are in phase and opposed phase at this field strength; raise otherwise."""
    for name, v in (("field strength", field_strength_t), ("in-phase TE", te_in_phase_ms),
                    ("opposed-phase TE", te_opposed_phase_ms)):
        if v is None or not np.isfinite(v) or v <= 0:
            raise LiverMetsError(f"the {name} must be a positive number (got {v})")
    ip = echo_phase(field_strength_t, te_in_phase_ms)
    op = echo_phase(field_strength_t, te_opposed_phase_ms)
    hz = fat_water_frequency_hz(field_strength_t)
    if ip["state"] != "in_phase" or op["state"] != "opposed_phase":
        raise LiverMetsError(
            f"at {field_strength_t:g} T (fat-water {hz:.0f} Hz) TE {te_in_phase_ms:g} ms is "
            f"{ip['state'].replace('_', ' ')} ({ip['cycles']:.2f} cycles) and TE {te_opposed_phase_ms:g} ms is "
            f"{op['state'].replace('_', ' ')} ({op['cycles']:.2f} cycles), so this is not an in-phase/opposed-phase "
            "pair; give the right echoes (or override with allow_any_echo_times / --allow-any-echo-times)"
        )
    return {"field_strength_t": float(field_strength_t), "fat_water_hz": round(hz, 1), "in_phase": ip,
            "opposed_phase": op}


def _magnitude(image: sitk.Image, what: str, *, own: bool = False) -> np.ndarray:
    """The image as a float32 array (NaN where not finite), refused when negative or all zero: a read-only view of a
    finite float32 image (``image`` must outlive it) unless ``own`` asks for a copy of our own."""
    a = as_float_array(image, what) if own else float_view(image, what)
    finite = np.isfinite(a)
    if finite.all():   # the usual case: two reductions, no copy
        if float(a.min()) < 0:
            raise LiverMetsError(f"the {what} image has negative values; give magnitude images")
        if not float(a.max()) > 0:
            raise LiverMetsError(f"the {what} image is all zero (or not finite); check that the right file was given")
        return a
    if float(np.min(np.where(finite, a, 0.0))) < 0:
        raise LiverMetsError(f"the {what} image has negative values; give magnitude images")
    if not np.any(a[finite] > 0):
        raise LiverMetsError(f"the {what} image is all zero (or not finite); check that the right file was given")
    return np.where(finite, a, np.float32(np.nan))


def _pair_on_grid(ref_img: sitk.Image, other: sitk.Image, ref_name: str, other_name: str,
                  mask: sitk.Image | None, notes: list[str], warnings: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Both magnitudes on ``ref_img``'s grid, a boolean 'usable' array (finite, covered, in mask) and the count of
    unusable voxels per reason. A resampled input is stated in ``notes`` and ``warnings``."""
    a = _magnitude(ref_img, ref_name)
    moved, cover, note = match_to_reference(ref_img, other, f"{other_name} image")
    if note:
        notes.append(note)
        warnings.append(note)
    b = _magnitude(moved, other_name, own=moved is not other)   # a resampled image ends with this function
    usable, reasons = usable_pair(ref_img, a, b, cover, mask, notes, warnings)
    return a, b, usable, reasons


def chemical_shift_fat(ip: sitk.Image, op: sitk.Image, *, field_strength_t: float | None = None,
                       echo_times_ms: tuple[float, float] | None = None, allow_any_echo_times: bool = False,
                       mask: sitk.Image | None = None, noise_floor: float | None = None,
                       maps: Collection[str] = ("flags", "sii")) -> FatResult:
    """Signal fat fraction and SII (percent) from in-phase and opposed-phase magnitudes, on the IP grid.

    ``echo_times_ms`` = (TE in phase, TE opposed phase). With the field strength they are checked and a pair that
    is not in/opposed phase is refused unless ``allow_any_echo_times``. ``noise_floor``: IP signal below which a
    voxel is background (default from the image). ``maps``: which of the flags and SII images to build (the CLI
    builds those it writes); the others are None, and no value, count or summary changes.
    """
    cfg = defaults("chemical_shift")
    notes: list[str] = []
    warnings: list[str] = []
    echo_check: dict[str, Any] | None = None
    if field_strength_t is not None and echo_times_ms is not None:
        try:
            echo_check = check_echo_pair(field_strength_t, echo_times_ms[0], echo_times_ms[1])
        except LiverMetsError as exc:
            if not allow_any_echo_times:
                raise
            warnings.append(f"echo times not an in/opposed-phase pair, computed anyway on request: {exc}")
        te_ip, te_op = echo_times_ms
        if te_op < te_ip:
            notes.append("opposed-phase echo first: T2* decay lowers the in-phase signal, so FF is underestimated")
        elif te_op > te_ip:
            notes.append("in-phase echo first: T2* decay lowers the opposed-phase signal, so FF is overestimated")
    else:
        notes.append("echo times not checked (field strength or echo times unknown)")

    a_ip, a_op, usable, unusable = _pair_on_grid(ip, op, "in-phase", "opposed-phase", mask, notes, warnings)
    dec = decide_signal(a_ip, usable, cfg["noise_floor_fraction_of_p99"], noise_floor=noise_floor)
    floor, body = dec.floor, dec.keep
    with np.errstate(divide="ignore", invalid="ignore"):   # (IP - OP) / IP x 100 in place: float32 throughout
        sii = np.subtract(a_ip, a_op)
        np.divide(sii, a_ip, out=sii, where=body)
        sii *= np.float32(100.0)
        sii[~body] = 0.0
    ff = sii * np.float32(0.5)                  # 0 outside the body too
    flags = np.full(a_ip.shape, FLAG_BACKGROUND, dtype=np.uint8)
    flags[body] = FLAG_VALID
    invalid = body & (ff < cfg["invalid_below_percent"])
    ambiguous = body & (ff > cfg["ambiguous_above_percent"])
    flags[invalid] = FLAG_INVALID
    flags[ambiguous] = FLAG_AMBIGUOUS
    ff[invalid] = 0.0
    sii[invalid] = 0.0
    n_body = int(np.count_nonzero(body))
    n_invalid = int(np.count_nonzero(invalid))
    if n_body and n_invalid > 0.5 * n_body:
        raise LiverMetsError(
            f"the opposed-phase image is brighter than the in-phase image in {100 * n_invalid / n_body:.0f} % of "
            "the body: the two inputs look swapped or are not an in/opposed-phase pair"
        )
    if np.count_nonzero(ambiguous):
        warnings.append(f"{int(np.count_nonzero(ambiguous))} voxels are near the 50 % fold "
                        f"(FF > {cfg['ambiguous_above_percent']:g} %): fat- or water-dominant cannot be told apart")
    n = int(a_ip.size)
    summary = {
        "map": "chemical_shift_fat",
        "formula": {"ff": "(IP - OP) / (2 IP) x 100", "sii": "(IP - OP) / IP x 100"},
        "units": {"ff": FF_UNITS, "sii": FF_UNITS},
        "valid_range_percent": [0.0, 50.0],
        "field_strength_t": field_strength_t,
        "echo_times_ms": {"in_phase": echo_times_ms[0], "opposed_phase": echo_times_ms[1]} if echo_times_ms else None,
        "echo_check": echo_check if echo_check else ("overridden" if warnings and allow_any_echo_times else None),
        "noise_floor": float(floor),
        "noise_sigma": dec.sigma,
        "noise_rule": dec.rule,
        "masked_reasons": {**unusable, **dec.reasons(), "opposed_phase_brighter": n_invalid},
        "voxels_total": n,
        "masked_voxels": int(n - n_body + n_invalid),
        "invalid_voxels": n_invalid,
        "ambiguous_voxels": int(np.count_nonzero(ambiguous)),
        "flags": FLAG_LEGEND,
        "coordinate_system": "LPS",
        "grid": describe_grid(ip),
        "notes": notes,
        "warnings": warnings,
    }
    common = {"method": "two-point chemical shift (magnitude)", "masked_voxels": summary["masked_voxels"],
              "coordinate_system": "LPS", **stated(summary)}
    if echo_times_ms:
        common["echo_times_ms"] = [float(echo_times_ms[0]), float(echo_times_ms[1])]
    metadata = {
        "ff": {"quantity": "signal fat fraction", "units": FF_UNITS, **common},
        "sii": {"quantity": "signal intensity index", "units": FF_UNITS, **common},
        "flags": {"quantity": "flags", "units": "1", "legend": FLAG_LEGEND, **common},
    }
    return FatResult(to_image(ff, ip), to_image(flags, ip, np.uint8) if "flags" in maps else None, summary,
                     to_image(sii, ip) if "sii" in maps else None, metadata)


def _body_swap_check(ff: np.ndarray, body: np.ndarray, spacing_zyx: tuple[float, float, float],
                     cfg: dict[str, Any]) -> tuple[list[int], bool, list[int]]:
    """Slices whose fat fraction looks mirrored (swapped), without any reference tissue.

    Neighbouring slices show nearly the same anatomy, so between a normal and a swapped slice most voxels agree
    better with 100 - FF of the neighbour than with its FF. Such "flips" between consecutive slices split the
    volume into two groups; the group whose anatomy looks upside down (:func:`_anatomy_score`) is reported.
    Without flips, the whole volume is reported when its anatomy looks upside down.
    Returns (slices, whole_volume, flip boundaries: k for a flip between slices k and k+1).
    """
    margin = float(cfg["swap_margin_percent"])
    min_vox = int(cfg["swap_min_voxels_per_slice"])
    shared = float(cfg["swap_min_shared_body_fraction"])
    n = ff.shape[0]
    decisive = body & (np.abs(ff - 50.0) > margin)
    per_slice = decisive.reshape(n, -1).sum(axis=1)
    flips: list[int] = []
    for k in range(n - 1):  # one comparison per pair of slices
        both = decisive[k] & decisive[k + 1]
        n_both = np.count_nonzero(both)
        # only slices showing largely the same cross-section are comparable (not the body's end cap)
        if n_both < min_vox or n_both < shared * max(per_slice[k], per_slice[k + 1]):
            continue
        a, b = ff[k][both], ff[k + 1][both]
        if np.mean(np.abs(a + b - 100.0) < np.abs(a - b)) > cfg["swap_neighbour_mirror_fraction"]:
            flips.append(k)
    usable = body.reshape(n, -1).sum(axis=1) >= min_vox
    if not usable.any():
        return [], False, flips
    # the anatomy score is an aggregate: every second voxel in-plane is plenty and keeps the distance map cheap
    ff2, body2 = ff[:, ::2, ::2], body[:, ::2, ::2]
    shell, inner = _shell_and_inner(body2, (spacing_zyx[0], 2 * spacing_zyx[1], 2 * spacing_zyx[2]), cfg)
    if flips:
        group = np.zeros(n, dtype=int)
        for k in flips:
            group[k + 1:] ^= 1
        scores = [_anatomy_score(ff2, shell, inner, (group == g) & usable) for g in (0, 1)]
        swapped = int(np.argmin([s if s is not None else 0.0 for s in scores]))
        if scores[0] == scores[1]:  # undecidable: report the smaller group
            swapped = int(np.count_nonzero(group[usable] == 1) < np.count_nonzero(group[usable] == 0))
        return [int(k) for k in np.flatnonzero((group == swapped) & usable)], False, flips
    score = _anatomy_score(ff2, shell, inner, usable)
    if score is not None and score < cfg["swap_shell_minus_inner_limit"]:
        return [int(k) for k in np.flatnonzero(usable)], True, flips
    return [], False, flips


def _shell_and_inner(body: np.ndarray, spacing_zyx: tuple[float, float, float],
                     cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The body's outer layer (where subcutaneous fat lies, by in-plane depth in mm) and its interior."""
    from scipy import ndimage  # Dixon swap check only: the chemical-shift map does not pay for the import

    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    filled = ndimage.binary_fill_holes(body, structure=in_plane)
    depth = ndimage.distance_transform_edt(filled, sampling=(1e6, spacing_zyx[1], spacing_zyx[2]))
    lo, hi = cfg["swap_shell_depth_mm"]
    return body & (depth >= lo) & (depth <= hi), body & (depth > hi)


def _anatomy_score(ff: np.ndarray, shell: np.ndarray, inner: np.ndarray, slices: np.ndarray) -> float | None:
    """Fat-dominant fraction of the outer layer minus that of the interior, over the given slices.

    Normal anatomy: subcutaneous fat makes the outer layer the fattier part (score > 0). Water and fat
    exchanged: the outer layer reads water-dominant, the organs inside fat-dominant (score < 0). A patient
    without subcutaneous fat cannot be judged this way. None when either region is empty.
    """
    sh, inn = shell[slices], inner[slices]
    f = ff[slices]
    if not sh.any() or not inn.any():
        return None
    return float(np.mean(f[sh] > 50.0) - np.mean(f[inn] > 50.0))


def _swap_slices(wrong: np.ndarray, region: np.ndarray, limit: float, min_vox: int) -> list[int]:
    """Slices (last index axis) where more than ``limit`` of ``region`` is ``wrong``."""
    n_region = region.reshape(region.shape[0], -1).sum(axis=1)
    n_wrong = (wrong & region).reshape(region.shape[0], -1).sum(axis=1)
    frac = np.where(n_region > 0, n_wrong / np.maximum(n_region, 1), 0.0)
    return [int(k) for k in np.flatnonzero((n_region >= min_vox) & (frac > limit))]


def _swap_check(water: sitk.Image, ff: np.ndarray, body: np.ndarray, reference_mask: sitk.Image | None,
                reference_kind: str, cfg: dict[str, Any], notes: list[str], warnings: list[str]) -> dict[str, Any]:
    """The Dixon map's fat-water swap check (the summary's ``swap_check``): slices whose body mirrors its
    neighbours, then, with a ``reference_mask``, slices where that tissue is on the wrong side of 50 %; each
    finding is a warning with slice indices and LPS positions."""
    swap: dict[str, Any] = {"body_check_slices": [], "reference_check_slices": []}
    _body_swap(water, ff, body, cfg, swap, warnings)
    if reference_mask is not None:
        _reference_swap(water, ff, body, reference_mask, reference_kind, cfg, swap, notes, warnings)
    swap["suspected"] = bool(swap["body_check_slices"] or swap["reference_check_slices"])
    return swap


def _body_swap(water: sitk.Image, ff: np.ndarray, body: np.ndarray, cfg: dict[str, Any], swap: dict[str, Any],
               warnings: list[str]) -> None:
    """Slices that mirror (100 - FF) their neighbours (:func:`_body_swap_check`), worded by how many there are:
    all (inputs exchanged), most, or a few; recorded in ``swap``."""
    body_slices, whole, flips = _body_swap_check(ff, body, water.GetSpacing()[::-1], cfg)
    swap["neighbour_flips_between_slices"] = flips
    if body_slices:
        swap["body_check_slices"] = body_slices
        swap["body_check_positions_mm_lps"] = slice_positions_mm(water, body_slices)
        n_usable = int(np.count_nonzero(body.reshape(body.shape[0], -1).sum(axis=1)
                                        >= int(cfg["swap_min_voxels_per_slice"])))
        z_mm = [p[2] for p in swap["body_check_positions_mm_lps"]]
        if whole:
            warnings.append(
                f"the water and fat inputs look exchanged: in all {len(body_slices)} slices with enough body "
                "(z = {:g} to {:g} mm LPS) the outer layer reads water-dominant and the interior fat-dominant; "
                "check which file is water and which is fat".format(min(z_mm), max(z_mm)))
        elif len(body_slices) > n_usable / 2:
            warnings.append(
                f"the water and fat inputs look exchanged in most slices ({len(body_slices)} of {n_usable}: "
                f"{body_slices}, z = {z_mm} mm LPS); the other slices mirror these, so check which file is water "
                "and which is fat, and those slices")
        else:
            warnings.append(
                f"possible fat-water swap in slice(s) {body_slices} (z = {z_mm} mm LPS): their fat fraction "
                "mirrors (100 - FF) that of the neighbouring slices")


def _reference_swap(water: sitk.Image, ff: np.ndarray, body: np.ndarray, reference_mask: sitk.Image,
                    reference_kind: str, cfg: dict[str, Any], swap: dict[str, Any], notes: list[str],
                    warnings: list[str]) -> None:
    """Slices where most of the reference tissue (in the body) reads on the wrong side of 50 % for its kind;
    recorded in ``swap``."""
    ref, _, rnote = match_to_reference(water, reference_mask, "reference mask", label=True)
    if rnote:
        notes.append(rnote)
    region = body & (sitk.GetArrayViewFromImage(ref) != 0)
    if not region.any():
        raise LiverMetsError("the reference mask has no voxel inside the body; give a mask of the reference tissue")
    wrong = ff > 50.0 if reference_kind == "water" else ff < 50.0
    ref_slices = _swap_slices(wrong, region, cfg["swap_reference_wrong_fraction"], 1)
    frac = float(np.count_nonzero(wrong & region) / np.count_nonzero(region))
    swap["reference_kind"] = reference_kind
    swap["reference_wrong_fraction"] = round(frac, 4)
    if ref_slices:
        swap["reference_check_slices"] = ref_slices
        swap["reference_check_positions_mm_lps"] = slice_positions_mm(water, ref_slices)
        warnings.append(
            f"possible fat-water swap: the {reference_kind}-dominant reference tissue reads "
            f"{'fat' if reference_kind == 'water' else 'water'}-dominant in slice(s) {ref_slices} (z = "
            f"{[p[2] for p in swap['reference_check_positions_mm_lps']]} mm LPS)"
        )


def dixon_fat(water: sitk.Image, fat: sitk.Image, *, reference_mask: sitk.Image | None = None,
              reference_kind: str = "water", mask: sitk.Image | None = None,
              noise_floor: float | None = None, maps: Collection[str] = ("flags",)) -> FatResult:
    """Dixon fat fraction FF = F / (W + F) in percent, on the water image's grid, with a fat-water swap check.

    The swap check warns (never silently fixes) when slices mirror their neighbours (see :func:`_body_swap_check`),
    or most of a ``reference_mask`` tissue in a slice is on the wrong side of 50 % (``reference_kind`` 'water'
    for liver/spleen/muscle, 'fat' for subcutaneous fat). Warnings give the slice indices and LPS positions.
    ``maps``: ("flags",) to build the flags image too (else None).
    """
    if reference_kind not in ("water", "fat"):
        raise LiverMetsError(f"reference_kind must be 'water' or 'fat' (got '{reference_kind}')")
    cfg = defaults("dixon")
    notes: list[str] = []
    warnings: list[str] = []
    a_w, a_f, usable, unusable = _pair_on_grid(water, fat, "water", "fat", mask, notes, warnings)
    total = a_w + a_f
    # background test on sqrt(W^2 + F^2): four Gaussian noise components (chi-square, 4 degrees of freedom per
    # voxel) when the two images' noise is independent; sigma from the water image's Rayleigh background
    dec = decide_signal(np.hypot(a_w, a_f), usable, cfg["noise_floor_fraction_of_p99"], noise_floor=noise_floor,
                        sigma_values=a_w, dof=4)
    floor, body = dec.floor, dec.keep
    with np.errstate(divide="ignore", invalid="ignore"):
        ff = np.where(body, a_f / np.where(body, total, 1.0) * 100.0, 0.0).astype(np.float32)
    flags = np.where(body, FLAG_VALID, FLAG_BACKGROUND).astype(np.uint8)

    swap = _swap_check(water, ff, body, reference_mask, reference_kind, cfg, notes, warnings)
    n = int(ff.size)
    summary = {
        "map": "dixon_fat",
        "formula": {"ff": "F / (W + F) x 100"},
        "units": {"ff": FF_UNITS},
        "valid_range_percent": [0.0, 100.0],
        "noise_floor": float(floor),
        "noise_sigma": dec.sigma,
        "noise_rule": dec.rule,
        "masked_reasons": {**unusable, **dec.reasons()},
        "voxels_total": n,
        "masked_voxels": int(n - np.count_nonzero(body)),
        "swap_check": swap,
        "flags": {k: v for k, v in FLAG_LEGEND.items() if k in ("0", "1")},
        "coordinate_system": "LPS",
        "grid": describe_grid(water),
        "notes": notes,
        "warnings": warnings,
    }
    common = {"method": "Dixon F / (W + F)", "masked_voxels": summary["masked_voxels"], "coordinate_system": "LPS",
              "swap_suspected": swap["suspected"], **stated(summary)}
    metadata = {
        "ff": {"quantity": "Dixon fat fraction", "units": FF_UNITS, **common},
        "flags": {"quantity": "flags", "units": "1", "legend": summary["flags"], **common},
    }
    return FatResult(to_image(ff, water), to_image(flags, water, np.uint8) if "flags" in maps else None, summary,
                     None, metadata)
