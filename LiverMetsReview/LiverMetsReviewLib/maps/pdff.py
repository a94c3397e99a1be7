"""Proton-density fat fraction (PDFF, percent 0-100) and R2* (1/s) from a multi-echo gradient echo, all voxels at once.

Model (method 'magnitude', one R2* for water and fat):

    |S(TE_n)| = |W + F * c(TE_n)| * exp(-R2* TE_n),   c(TE) = sum_p a_p exp(i 2 pi f_p TE),  W, F >= 0

with the multi-peak fat spectrum ``c`` (by default the project's one spectrum, the same the phantom simulates:
:func:`..physics.fat.default_fat_spectrum`). PDFF = F / (W + F) x 100. From magnitudes, (W, F) and roughly
(F, W) explain the data almost equally well (the fat-water ambiguity); only the multi-peak spectrum tells them apart.
It is resolved explicitly: a variable-projection search over a PDFF grid (R2* per PDFF in closed form) gives a
start below 50 % and one above
(two on a side whose cost has two close minima), Levenberg-Marquardt refines them, and the best solution of each side
is kept (:mod:`.pdff_fit`). Their residual difference in noise variances (chi-square) decides; where one voxel's
evidence is weak, the evidence of the neighbours of the same tissue decides, each neighbour weighted by how similar
its pair of solutions is to the voxel's (tissue is locally homogeneous; a neighbour across a tissue edge must not
vote: :mod:`.pdff_choice`). Voxels whose evidence stays weak while the two PDFFs differ are flagged ambiguous (the
value is reported but should not be trusted).

Method 'complex' (complex echo images): both sides' solutions are refined on the complex signal
S_n = (W + F c_n) exp(-R2* TE_n) exp(i (2 pi psi TE_n + phi)) with a field map psi (Hz) and one phase phi for water
and fat per voxel; tying the two phases together makes most voxels decide alone. psi must lie within
+-1/(2 echo spacing) (no unwrapping, no spatial smoothness imposed).

Levenberg-Marquardt runs on all voxels of a chunk at once (numpy; per-voxel damping, accept/reject and convergence;
converged voxels leave the active set), chunks on a few threads: no per-voxel Python loop. Complex fits also check
that odd and even echoes agree in phase (a bipolar readout's error) and warn when not (:mod:`.pdff_bipolar`).
Signals are scaled per voxel so that the largest echo is 1. Background (mean over echoes below the noise floor),
voxels outside the mask or the grid of an echo and voxels that are NaN or infinite in any echo are masked (0 in
every map) and counted. No map ever holds NaN or inf.
Not corrected: T1 weighting (low flip angles assumed), noise bias of magnitude data at very low SNR, bipolar-readout
phase errors (detected in complex data and warned about, see :mod:`.pdff_bipolar`), T2* differences between fat
peaks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError
from ..physics.fat import fat_phasor
from .noise import median, no_background_reason, robust_max
from .noise import noise_floor as estimate_noise_floor
from .pdff_bipolar import bipolar_warnings
from .pdff_choice import fat_side_evidence
from .pdff_fit import complex_model, complex_sides, ff_of, fit_sides, start_grid
from .pdff_inputs import METHODS, check_options, complex_stack, echo_stack, fat_model_spectrum, pdff_defaults
from .resample import apply_user_mask, describe_grid, to_image

__all__ = ["FLAG_AMBIGUOUS", "FLAG_BACKGROUND", "FLAG_LEGEND", "FLAG_R2STAR_BOUND", "FLAG_VALID", "METHODS",
           "PDFF_UNITS", "R2STAR_UNITS", "PdffResult", "fit_pdff", "pdff_defaults"]

PDFF_UNITS = "percent"
R2STAR_UNITS = "1/s"
FLAG_VALID, FLAG_BACKGROUND, FLAG_AMBIGUOUS, FLAG_R2STAR_BOUND = 0, 1, 2, 3
FLAG_LEGEND = {"0": "valid", "1": "background / masked",
               "2": "fat-water ambiguous (the other solution fits almost as well)",
               "3": "R2* at the bound of its allowed range"}


@dataclass
class PdffResult:
    """Maps on the first echo's grid, and a JSON-able summary.

    ``pdff`` percent (0..100), ``r2star`` 1/s, ``water``/``fat`` signal units of the input (at TE = 0),
    ``quality`` RMS residual in percent of the voxel's mean echo signal, ``mask`` 1 where the fit is reported,
    ``flags`` uint8 (see ``FLAG_LEGEND``), ``field_map`` Hz (method 'complex' only). ``metadata[name]`` holds the
    key/value pairs for each output.
    """

    pdff: sitk.Image
    r2star: sitk.Image
    water: sitk.Image
    fat: sitk.Image
    quality: sitk.Image
    mask: sitk.Image
    flags: sitk.Image
    summary: dict[str, Any]
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    field_map: sitk.Image | None = None


@dataclass
class _Voxels:
    """Which voxels are fitted (``idx``), why the others are not, the noise level used, and the fitted voxels' mean
    echo signal (for the quality map)."""

    idx: np.ndarray
    reasons: dict[str, int]
    floor: float
    sigma: float | None
    mean_signal: np.ndarray


def _select_voxels(stack: np.ndarray, cover: np.ndarray, finite_in: np.ndarray, ref: sitk.Image,
                   mask: sitk.Image | None, noise_floor: float | None, noise_sigma: float | None,
                   cfg: dict[str, Any], notes: list[str], warnings: list[str]) -> _Voxels:
    """Mask the voxels outside the input grid, non-finite, outside the user's mask or below the noise floor."""
    n_vox = stack.shape[1]
    reasons: dict[str, int] = {"outside_input_grid": int(n_vox - np.count_nonzero(cover)),
                               "non_finite_input": int(np.count_nonzero(cover & ~finite_in))}
    valid = cover & finite_in
    if reasons["non_finite_input"]:
        warnings.append(f"{reasons['non_finite_input']} voxels hold NaN or infinite values in at least one echo: "
                        "they were masked (0 in every map)")
    apply_user_mask(ref, mask, valid, notes, reasons, warnings)
    mean_sig = stack.mean(axis=0)
    first_echo = np.where(cover & finite_in, stack[0], 0.0)
    floor, sigma_est = estimate_noise_floor(first_echo, cfg["noise_floor_fraction_of_p99"],
                                            int(cfg["min_background_voxels_for_sigma"]), noise_sigma)
    if noise_floor is not None:
        if not np.isfinite(noise_floor) or noise_floor < 0:
            raise LiverMetsError(f"noise floor must be a finite number >= 0 (got {noise_floor})")
        floor = float(noise_floor)
    if noise_sigma is not None and (not np.isfinite(noise_sigma) or noise_sigma < 0):
        raise LiverMetsError(f"noise sigma must be a finite number >= 0 (got {noise_sigma})")
    if noise_floor is None and noise_sigma is None and sigma_est is not None and np.count_nonzero(
            valid & (mean_sig <= floor)) > float(cfg["max_background_fraction"]) * max(np.count_nonzero(valid), 1):
        # no real background (body fills the field of view): the "noise" found was dim tissue
        floor0 = float(cfg["noise_floor_fraction_of_p99"]) * robust_max(first_echo)
        notes.append(f"noise level not measurable ({no_background_reason(first_echo)}; the dim voxels found would "
                     f"have masked most of the image): instead the floor is {cfg['noise_floor_fraction_of_p99']:g} x "
                     "the 99th percentile and sigma comes from the fit residuals; the map is complete")
        floor, sigma_est = floor0, None
    bg = valid & (mean_sig <= floor)
    reasons["below_noise_floor"] = int(np.count_nonzero(bg))
    valid &= ~bg & (stack.max(axis=0) > 0)
    sigma = float(noise_sigma) if noise_sigma is not None else sigma_est
    idx = np.flatnonzero(valid)
    return _Voxels(idx, reasons, float(floor), sigma, mean_sig[idx])


# --- the fit -------------------------------------------------------------------------------------------------------

@dataclass
class _Sides:
    """Both solutions of every fitted voxel: params (n_par, n), costs (signal units^2), the scales, and the PDFFs
    (percent, float32) of both solutions."""

    pw: np.ndarray
    pf: np.ndarray
    cw: np.ndarray
    cf: np.ndarray
    scales: np.ndarray
    ff_w: np.ndarray
    ff_f: np.ndarray


def _workers(cfg: dict[str, Any], n_chunks: int) -> int:
    """Threads for the chunks: numpy releases the GIL inside its loops, so chunks overlap on several cores."""
    limit = int(cfg["max_threads"])
    return max(1, min(limit if limit > 0 else (os.cpu_count() or 1), os.cpu_count() or 1, n_chunks))


def _fit_voxels(stack: np.ndarray, stack_c: np.ndarray | None, idx: np.ndarray, te: np.ndarray, c: np.ndarray,
                cfg: dict[str, Any], progress: Callable[[float, str], None] | None) -> _Sides:
    """Both fat-water solutions of the voxels ``idx``, chunk by chunk (each chunk vectorized, chunks on a few
    threads; ``progress`` is called from the calling thread)."""
    n_par = 5 if stack_c is not None else 3
    out = _Sides(np.zeros((n_par, idx.size)), np.zeros((n_par, idx.size)), np.zeros(idx.size), np.zeros(idx.size),
                 np.zeros(idx.size), np.zeros(idx.size, np.float32), np.zeros(idx.size, np.float32))
    grid = start_grid(te, c, cfg)
    r_lo = float(cfg["r2star_min_per_s"]) / 1000.0
    r_hi = float(cfg["r2star_max_per_s"]) / 1000.0
    chunk = max(1024, int(cfg["chunk_voxels"] if stack_c is None else cfg["complex_chunk_voxels"]))

    def one(s: int) -> int:
        sel = idx[s:s + chunk]
        y = stack[:, sel]
        scale = y.max(axis=0)
        pw, cw, pf, cf = fit_sides(y / scale, te, c, grid, r_lo, r_hi, cfg)
        if stack_c is not None:
            pw, cw, pf, cf = complex_sides(stack_c[:, sel] / scale, pw, pf, te, c, r_lo, r_hi, cfg)
        part = slice(s, s + sel.size)                       # chunks write disjoint columns
        out.pw[:, part], out.pf[:, part] = pw, pf
        out.ff_w[part], out.ff_f[part] = ff_of(pw), ff_of(pf)
        scale2 = scale.astype(np.float64) ** 2               # float64: a float32 square overflows above ~1e19
        out.cw[part], out.cf[part] = cw * scale2, cf * scale2        # signal units^2
        out.scales[part] = scale
        return sel.size

    starts = range(0, idx.size, chunk)
    done = 0
    with ThreadPoolExecutor(max_workers=_workers(cfg, len(starts))) as pool:
        for n_done in pool.map(one, starts):
            done += n_done
            if progress is not None:
                progress(done / max(idx.size, 1), f"fitted {done} of {idx.size} voxels")
    return out


@dataclass
class _Choice:
    """The reported side per fitted voxel and its evidence (chi-square units)."""

    fat_wins: np.ndarray
    vote: np.ndarray
    delta: np.ndarray
    s2: float
    window: list[int]


def _choose_sides(sides: _Sides, sigma: float | None, idx: np.ndarray, grid_shape: tuple[int, ...], n_dof: int,
                  vote_window: Sequence[int] | None, cfg: dict[str, Any], notes: list[str]) -> _Choice:
    """Fat- or water-side per voxel: its own chi-square difference when strong, else the similarity-weighted
    evidence of its neighbourhood (:func:`.pdff_choice.fat_side_evidence`)."""
    if sigma is None or sigma <= 0:
        s2 = median(np.minimum(sides.cw, sides.cf) / max(n_dof, 1)) if idx.size else 0.0
        notes.append("noise sigma taken from the fit residuals (no noise-only background was measured)")
    else:
        s2 = sigma * sigma
    s2 = max(s2, 1e-30 * float(np.max(sides.scales) ** 2) if idx.size else 1e-30)
    clip = float(cfg["vote_clip_sigma2"])
    with np.errstate(invalid="ignore"):
        delta = np.nan_to_num(np.clip((sides.cw - sides.cf) / s2, -clip, clip), nan=0.0)
    n_vox = int(np.prod(grid_shape))
    window = list(vote_window if vote_window is not None else cfg["vote_window_zyx"])[-len(grid_shape):]

    def on_grid(values: np.ndarray) -> np.ndarray:
        full = np.zeros(n_vox, dtype=np.float32)
        full[idx] = values
        return full.reshape(grid_shape)

    fitted = np.zeros(n_vox, dtype=bool)
    fitted[idx] = True
    features = [on_grid(sides.ff_w), on_grid(sides.ff_f), on_grid(sides.pw[2] * 1000.0),
                on_grid(sides.pf[2] * 1000.0)]
    p_scale, r_scale = float(cfg["choice_similarity_pdff_points"]), float(cfg["choice_similarity_r2star_per_s"])
    vote = fat_side_evidence(on_grid(delta), features, [p_scale, p_scale, r_scale, r_scale], window,
                             float(cfg["vote_strong_sigma2"]), fitted.reshape(grid_shape),
                             int(cfg["choice_passes"]), _workers(cfg, grid_shape[0])).reshape(-1)[idx]
    return _Choice(vote > 0, vote, delta, s2, window)


# --- packaging -----------------------------------------------------------------------------------------------------

def _maps(sides: _Sides, choice: _Choice, mean_signal: np.ndarray, n_echo: int, complex_fit: bool,
          cfg: dict[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The reported values per fitted voxel (signal units, percent, 1/s, Hz) and their flags; row by row (the
    reported side's rows only, no copy of both parameter sets)."""
    fat_wins = choice.fat_wins

    def best(k: int) -> np.ndarray:
        return np.where(fat_wins, sides.pf[k], sides.pw[k])

    ff_b = np.where(fat_wins, sides.ff_f, sides.ff_w)
    amb = (np.abs(choice.vote) < float(cfg["ambiguity_cost_difference_sigma2"])) & (
        np.abs(sides.ff_f - sides.ff_w) > float(cfg["ambiguity_min_pdff_difference_percent"]))
    r_lo = float(cfg["r2star_min_per_s"]) / 1000.0
    r_hi = float(cfg["r2star_max_per_s"]) / 1000.0
    r_b = best(2)
    at_bound = (r_b >= r_hi * (1 - 1e-9)) | ((r_b <= r_lo + 1e-12) & (r_lo > 0))
    quality = np.sqrt(np.maximum(np.where(fat_wins, sides.cf, sides.cw), 0.0) / n_echo)
    quality *= 100.0 / np.where(mean_signal > 0, mean_signal, 1.0)
    out = {"pdff": ff_b, "r2star": r_b * 1000.0, "water": best(0) * sides.scales, "fat": best(1) * sides.scales,
           "quality": quality}
    if complex_fit:
        out["field_map"] = best(3) * 1000.0                 # kHz -> Hz
    flags = np.where(amb, FLAG_AMBIGUOUS, np.where(at_bound, FLAG_R2STAR_BOUND, FLAG_VALID)).astype(np.uint8)
    return out, flags


def _summary(*, method: str, complex_fit: bool, te: np.ndarray, b0: float, fm: dict[str, Any], main_hz: float,
             cycles: float, vox: _Voxels, choice: _Choice, counts: dict[str, int], ref: sitk.Image,
             cfg: dict[str, Any], notes: list[str], warnings: list[str]) -> dict[str, Any]:
    """The JSON-able record of the fit: model, method, how the ambiguity was resolved, counts, notes, warnings."""
    window = choice.window
    return {
        "map": "pdff",
        "model": ("|S(TE)| = |W + F c(TE)| exp(-R2* TE)" if not complex_fit else
                  "S(TE) = (W + F c(TE)) exp(-R2* TE) exp(i (2 pi psi TE + phi))")
                 + ", c(TE) = sum_p a_p exp(i 2 pi f_p TE), W, F >= 0; PDFF = F/(W+F) x 100",
        "method": method,
        "method_description": (
            "magnitude multi-echo fit, multi-peak fat, single R2*: variable projection over a PDFF grid "
            "(R2* per PDFF in closed form) gives each side's start, Levenberg-Marquardt refines both "
            "sides on all voxels at once" + ("" if not complex_fit else "; both sides' solutions then refined on "
                                             "the complex data with a field map psi and one phase phi per voxel "
                                             "(no spatial smoothness of psi is imposed)")),
        "ambiguity_resolution": (
            "two fits per voxel, started from the best grid point below and the best above 50 %; they are compared "
            f"by their chi-square difference (residual difference / sigma^2, clipped at {cfg['vote_clip_sigma2']:g})"
            f"; a voxel whose own difference reaches {cfg['vote_strong_sigma2']:g} keeps its lower-residual side, "
            f"otherwise the differences over a {'x'.join(str(v) for v in window)} "
            f"({'z, y, x' if len(window) == 3 else 'y, x'}) neighbourhood decide, each weighted by how similar "
            "that neighbour's pair of solutions is to the voxel's own (same tissue; similarity scales "
            f"{cfg['choice_similarity_pdff_points']:g} PDFF points and {cfg['choice_similarity_r2star_per_s']:g} "
            f"1/s); flagged ambiguous when that evidence is below {cfg['ambiguity_cost_difference_sigma2']:g} and the "
            f"two PDFFs differ by more than {cfg['ambiguity_min_pdff_difference_percent']:g} points"),
        "voxels_decided_by_neighbourhood": counts["neighbourhood"],
        "units": {"pdff": PDFF_UNITS, "r2star": R2STAR_UNITS, "water": "signal units of the input (TE = 0)",
                  "fat": "signal units of the input (TE = 0)", "quality": "percent (RMS residual / mean signal)",
                  "echo_times": "ms", "field_strength": "T", "field_map": "Hz (method complex)"},
        "echo_times_ms": te.tolist(),
        "field_strength_t": b0,
        "fat_water_hz_main_peak": round(float(main_hz), 2),
        "fat_water_cycles_spanned": round(float(cycles), 3),
        "fat_model": {"model": fm["model"], "ppm": fm["ppm"], "relative_amplitudes": fm["amplitudes"],
                      "gamma_mhz_per_t": fm["gamma_mhz_per_t"], "source": fm["source"]},
        "r2star_range_per_s": [float(cfg["r2star_min_per_s"]), float(cfg["r2star_max_per_s"])],
        "noise_floor": vox.floor,
        "noise_sigma": vox.sigma,
        "voxels_total": counts["total"],
        "voxels_fitted": counts["fitted"],
        "masked_voxels": counts["total"] - counts["fitted"],
        "masked_reasons": vox.reasons,
        "ambiguous_voxels": counts["ambiguous"],
        "r2star_at_bound_voxels": counts["bound"],
        "flags": FLAG_LEGEND,
        "coordinate_system": "LPS",
        "grid": describe_grid(ref),
        "notes": notes,
        "warnings": warnings,
    }


def _metadata(method: str, te: np.ndarray, b0: float, fm: dict[str, Any], masked: int) -> dict[str, dict[str, Any]]:
    """Key/value pairs for each output image."""
    common = {"method": f"multi-echo {method} fit, multi-peak fat", "echo_times_ms": te.tolist(),
              "field_strength_t": b0, "fat_model_source": fm["source"], "masked_voxels": masked,
              "coordinate_system": "LPS"}
    return {
        "pdff": {"quantity": "proton density fat fraction", "units": PDFF_UNITS, **common},
        "r2star": {"quantity": "R2*", "units": R2STAR_UNITS, **common},
        "water": {"quantity": "water signal at TE 0", "units": "signal units of the input", **common},
        "fat": {"quantity": "fat signal at TE 0", "units": "signal units of the input", **common},
        "quality": {"quantity": "RMS residual / mean signal", "units": "percent", **common},
        "mask": {"quantity": "fitted voxels (1) / masked (0)", "units": "1", **common},
        "flags": {"quantity": "flags", "units": "1", "legend": FLAG_LEGEND, **common},
        "field_map": {"quantity": "B0 field map (water off-resonance)", "units": "Hz", **common},
    }


def _odd_even_check(stack_c: np.ndarray | None, idx: np.ndarray, sides: _Sides, choice: _Choice, te: np.ndarray,
                    c: np.ndarray, cfg: dict[str, Any], warnings: list[str]) -> dict[str, Any] | None:
    """Complex fits only: is the phase of odd and even echoes consistent (no bipolar-readout error)? Warns if not
    (:mod:`.pdff_bipolar`); returns the check's record for the summary."""
    if stack_c is None:
        return None
    best = np.where(choice.fat_wins, sides.pf, sides.pw)
    model = complex_model(best, te, c) * sides.scales
    found, record = bipolar_warnings(stack_c[:, idx], model, choice.s2, cfg)
    warnings += found
    return record


def _fat_phasor_and_span(te: np.ndarray, b0: float, fm: dict[str, Any], cfg: dict[str, Any],
                         warnings: list[str]) -> tuple[np.ndarray, float, float]:
    """(fat phasor c(TE), main fat peak's offset in Hz, fat-water cycles the echoes span); warns when few."""
    c = np.asarray(fat_phasor(te, b0, fm["ppm"], fm["amplitudes"], fm["gamma_mhz_per_t"]), dtype=np.complex128)
    main_hz = fm["gamma_mhz_per_t"] * b0 * fm["ppm"][int(np.argmax(fm["amplitudes"]))]
    cycles = abs(main_hz) * (te[-1] - te[0]) * 1e-3
    if cycles < float(cfg["min_fat_water_cycles_spanned"]):
        warnings.append(f"the echoes span only {cycles:.2f} cycles of fat-water precession ({abs(main_hz):.0f} Hz "
                        f"at {b0:g} T): fat and water are poorly separated, PDFF is unreliable")
    return c, float(main_hz), float(cycles)


def fit_pdff(echoes: Sequence[sitk.Image], echo_times_ms: Sequence[float], *, field_strength_t: float,
             fat_model: Mapping[str, Any] | None = None, method: str = "magnitude", mask: sitk.Image | None = None,
             noise_floor: float | None = None, noise_sigma: float | None = None,
             vote_window: Sequence[int] | None = None,
             progress: Callable[[float, str], None] | None = None) -> PdffResult:
    """Fit PDFF (percent) and R2* (1/s) to magnitude echoes (>= 3, increasing TE in ms) at ``field_strength_t`` T.

    ``fat_model``: dict with ``ppm`` (relative to water) and ``amplitudes`` (optional ``gamma_mhz_per_t``,
    ``source``); default the project's multi-peak spectrum. ``mask``: nonzero voxels are fitted. ``noise_floor``:
    mean echo signal below which a voxel is background (default from the first echo's background).
    ``noise_sigma``: Rician sigma of the magnitudes for the fat-water evidence (default estimated from the
    background, else from the median fit residual). Echoes on other grids are resampled onto the first echo's
    grid (stated in the notes). ``method``: 'magnitude', or 'complex' for complex echo images (phase kept).
    ``vote_window``: (z, y, x) neighbourhood, in voxels, whose evidence decides fat- versus water-dominant where a
    voxel's own evidence is weak (default from ``pdff_defaults.json``; (1, 1, 1) decides every voxel alone).
    ``progress``: called as ``progress(fraction 0..1, message)`` while the voxels are fitted (e.g. a progress bar).
    """
    cfg, te, b0 = check_options(echoes, echo_times_ms, field_strength_t, method, vote_window)
    fm = fat_model_spectrum(fat_model)
    notes: list[str] = []
    warnings: list[str] = []
    grid_notes: list[str] = []
    stack_c = None
    if method == "complex":
        stack_c, cover, finite_in, ref = complex_stack(echoes, grid_notes)
        stack = np.abs(stack_c)
    else:
        stack, cover, finite_in, ref = echo_stack(echoes, grid_notes)
    notes += grid_notes
    warnings += [n for n in grid_notes if n.startswith("the echo")]   # echoes on another grid: worth a look
    n_echo, n_vox = stack.shape
    c, main_hz, cycles = _fat_phasor_and_span(te, b0, fm, cfg, warnings)
    vox = _select_voxels(stack, cover, finite_in, ref, mask, noise_floor, noise_sigma, cfg, notes, warnings)
    idx = vox.idx
    sides = _fit_voxels(stack, stack_c, idx, te, c, cfg, progress)
    grid_shape = ref.GetSize()[::-1]
    n_dof = 2 * n_echo - 5 if stack_c is not None else n_echo - 3
    choice = _choose_sides(sides, vox.sigma, idx, grid_shape, n_dof, vote_window, cfg, notes)
    odd_even = _odd_even_check(stack_c, idx, sides, choice, te, c, cfg, warnings)
    out, flags_fit = _maps(sides, choice, vox.mean_signal, n_echo, stack_c is not None, cfg)

    finite = np.ones(idx.size, dtype=bool)
    for v in out.values():
        finite &= np.isfinite(v)
    vox.reasons["fit_failed"] = int(np.count_nonzero(~finite))

    all_finite = bool(finite.all())
    at = idx if all_finite else idx[finite]

    def full(values: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        arr = np.zeros(n_vox, dtype=dtype)
        arr[at] = values if all_finite else values[finite]
        return arr.reshape(grid_shape)

    flags = np.full(n_vox, FLAG_BACKGROUND, dtype=np.uint8)
    flags[at] = flags_fit if all_finite else flags_fit[finite]
    flags = flags.reshape(grid_shape)
    mask_arr = (flags != FLAG_BACKGROUND).astype(np.uint8)
    counts = {"total": int(n_vox), "fitted": int(np.count_nonzero(mask_arr)),
              "ambiguous": int(np.count_nonzero(flags == FLAG_AMBIGUOUS)),
              "bound": int(np.count_nonzero(flags == FLAG_R2STAR_BOUND)),
              "neighbourhood": int(np.count_nonzero(np.abs(choice.delta) < float(cfg["vote_strong_sigma2"])))}
    if counts["ambiguous"]:
        warnings.append(f"{counts['ambiguous']} voxels are fat-water ambiguous: the solution on the other side of "
                        "50 % fits almost as well (flag 2); their PDFF may be 100 minus the truth")
    if counts["bound"]:
        warnings.append(f"{counts['bound']} voxels reached the R2* bound ({cfg['r2star_max_per_s']:g} 1/s; flag 3)")
    if n_vox - counts["fitted"] > 0.9 * n_vox:
        warnings.append(f"{n_vox - counts['fitted']} of {n_vox} voxels were masked: check the noise floor or the "
                        "mask")
    notes.append("T1 weighting is not corrected: a low flip angle is assumed (PDFF is overestimated by a few "
                 "percent of its value when the flip angle is high)")
    summary = _summary(method=method, complex_fit=stack_c is not None, te=te, b0=b0, fm=fm, main_hz=main_hz,
                       cycles=cycles, vox=vox, choice=choice, counts=counts, ref=ref, cfg=cfg, notes=notes,
                       warnings=warnings)
    if odd_even is not None:
        summary["odd_even_phase_check"] = odd_even
    return PdffResult(
        pdff=to_image(np.clip(full(out["pdff"]), 0.0, 100.0), ref), r2star=to_image(full(out["r2star"]), ref),
        water=to_image(full(out["water"]), ref), fat=to_image(full(out["fat"]), ref),
        quality=to_image(full(out["quality"]), ref), mask=to_image(mask_arr, ref, np.uint8),
        flags=to_image(flags, ref, np.uint8), summary=summary,
        metadata=_metadata(method, te, b0, fm, summary["masked_voxels"]),
        field_map=to_image(full(out["field_map"]), ref) if "field_map" in out else None)
