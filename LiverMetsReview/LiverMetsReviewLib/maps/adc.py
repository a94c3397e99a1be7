"""Apparent diffusion coefficient from DWI: mono-exponential S(b) = S0 * exp(-b * ADC), every voxel at once.

Methods (``method=``):

* ``lls``  - log-linear least squares, closed form: one weighted sum of log signals per voxel (fastest).
* ``wls``  - log-linear, weighted by the squared predicted signal (Veraart 2013): low-signal high-b points count
  less, which limits the noise bias the log transform causes.
* ``nlls`` - damped Gauss-Newton over all voxels at once, started from WLS, fitting the squared magnitude to
  S0^2 exp(-2 b ADC) + 2 sigma^2 (the exact second moment of Rician data): the least biased at low SNR.

Voxels at the noise level of the lowest-b image (a test with a stated false-positive rate for pure Rician noise,
see :mod:`.noise_mask`; isolated speckle removed), outside a given mask or with non-finite input are masked (map
value 0) and counted by reason; a negative fitted ADC is masked, one above the physical maximum is clipped, both
counted.
Maps are float32 on the first input's grid; ADC in 10^-6 mm^2/s. No output ever holds NaN or inf.
The b-value handling lives in :mod:`.adc_bvalues`, the estimators in :mod:`.adc_fit`; this module picks the voxels,
runs the fit and packages the maps.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError, MissingDataError
from .adc_bvalues import _normalise_b, _select, combine_directions, repeated_b_values
from .adc_fit import _lls, _nlls, _r_squared, _wls
from .adc_floor import high_b_at_floor
from .defaults import defaults
from .noise import no_background_reason
from .noise_mask import decide_signal
from .resample import apply_user_mask, describe_grid, float_view, match_to_reference, to_image
from .summary import stated

ADC_UNITS = "1e-6 mm2/s"
METHODS = ("lls", "wls", "nlls")
__all__ = ["ADC_UNITS", "METHODS", "AdcResult", "combine_directions", "fit_adc", "repeated_b_values"]
_B_SCALE = 1e-3  # b is handled in 10^3 s/mm^2 and ADC in 10^-3 mm^2/s inside the fits (float32 conditioning)


@dataclass
class AdcResult:
    """The maps (on the first input's grid) and a JSON-able summary.

    ``mask`` is 1 where the fit is reported, 0 where masked (``s0``, ``mask``: None when not asked for).
    ``computed`` maps each requested b to its computed DWI.
    ``metadata[name]`` holds the key/value pairs to attach to each output (file keys, Slicer node attributes).
    """

    adc: sitk.Image
    s0: sitk.Image | None
    quality: sitk.Image | None
    mask: sitk.Image | None
    computed: dict[float, sitk.Image]
    summary: dict[str, Any]
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def _check_selection(images: Sequence[sitk.Image], b_values: Sequence[float], method: str,
                     include: Sequence[float] | None, exclude_below: float | None
                     ) -> tuple[list[float], list[int], list[float], np.ndarray]:
    """(all b-values, indices of the used images in increasing b, excluded b-values, used b-values), or a clear
    refusal."""
    if method not in METHODS:
        raise LiverMetsError(f"unknown ADC method '{method}': choose one of {', '.join(METHODS)}")
    if len(images) != len(b_values):
        raise LiverMetsError(f"{len(images)} images but {len(b_values)} b-values: give one b-value per image")
    if len(images) < 2:
        raise MissingDataError("an ADC needs at least two b-values; give images for two or more b-values")
    bs = _normalise_b(b_values)
    dups = repeated_b_values(bs)
    if dups:
        raise LiverMetsError(
            f"b-value(s) {', '.join(f'{b:g}' for b in dups)} s/mm^2 appear more than once (diffusion directions or "
            "repeats): combine each into one trace image per b-value first ('livermets adc --trace' does this) or "
            "leave the repeats out"
        )
    keep, excluded = _select(bs, include, exclude_below)
    if len(keep) < 2:
        raise MissingDataError(
            f"only {len(keep)} b-value(s) left after selection (from {bs}): an ADC needs at least two"
        )
    sel_b = np.array([bs[i] for i in keep], dtype=np.float64)
    order = np.argsort(sel_b, kind="stable")
    return bs, [keep[i] for i in order], excluded, sel_b[order]


def _b_stack(images: Sequence[sitk.Image], keep: list[int], bs: list[float], notes: list[str],
             warnings: list[str]) -> tuple[list[np.ndarray], list[sitk.Image], np.ndarray, np.ndarray]:
    """(signal of each used b-value: flat float32 arrays on the first image's grid, the images they view, covered
    voxels, finite voxels); refuses negative or all-zero images.

    A float32 image on the reference grid is used through a view of its own buffer (no copy of a volume; the
    caller keeps the returned images alive while it uses the arrays); other pixel types are converted once. The
    arrays are only read.
    """
    ref = images[0]
    n_vox = int(np.prod(ref.GetSize()))
    planes: list[np.ndarray] = []
    owners: list[sitk.Image] = []
    cover = np.ones(n_vox, dtype=bool)
    for i in keep:
        img, cov, note = match_to_reference(ref, images[i], f"b={bs[i]:g} image")
        if note:  # a b-image on another grid is worth a look (wrong series?): a warning, not only a note
            notes.append(note)
            warnings.append(note)
        if cov is not None:
            cover &= cov.reshape(-1)
        owners.append(img)
        planes.append(float_view(img, f"b={bs[i]:g} image").reshape(-1))
    lo = np.array([p.min() for p in planes])
    hi = np.array([p.max() for p in planes])
    # NaN and +-inf reach min or max: finite extremes mean every voxel is finite (no pass of its own); otherwise
    # the exact per-voxel check
    finite_all = np.ones(n_vox, dtype=bool)
    if not np.all(np.isfinite(lo) & np.isfinite(hi)):
        for k, p in enumerate(planes):
            finite = np.isfinite(p)
            finite_all &= finite
            lo[k], hi[k] = (p[finite].min(), p[finite].max()) if finite.any() else (np.nan, np.nan)
    for k, i in enumerate(keep):
        if lo[k] < 0:
            raise LiverMetsError(
                f"the b={bs[i]:g} image has negative values (min {float(lo[k]):g}); "
                "DWI must be magnitude images: give magnitudes, not phase or difference images"
            )
        if not hi[k] > 0:
            raise LiverMetsError(
                f"the b={bs[i]:g} image is all zero (or not finite); check that the right file was given"
            )
    return planes, owners, cover, finite_all


@dataclass
class _Voxels:
    """The voxels to fit (``valid``), the masked counts by reason, and the noise decision."""

    valid: np.ndarray
    reasons: dict[str, int]
    floor: float
    sigma: float | None
    rule: dict[str, Any]
    why_no_sigma: str = ""   # why the noise level could not be measured (sigma None)


def _select_voxels(planes: Sequence[np.ndarray], cover: np.ndarray, finite_all: np.ndarray, sel_b: np.ndarray,
                   ref: sitk.Image, mask: sitk.Image | None, noise_floor: float | None, noise_sigma: float | None,
                   cfg: dict[str, Any], notes: list[str], warnings: list[str]) -> _Voxels:
    """Mask non-finite input, voxels outside the grids or the user's mask, background (noise test on the lowest-b
    image, :mod:`.noise_mask`) and voxels without measurable signal at high b; count each reason."""
    n_vox = planes[0].size
    reasons: dict[str, int] = {}
    valid = finite_all & cover
    reasons["non_finite_input"] = int(n_vox - np.count_nonzero(finite_all))
    reasons["outside_input_grid"] = int(n_vox - np.count_nonzero(cover))
    apply_user_mask(ref, mask, valid, notes, reasons, warnings)
    low = planes[0] if reasons["non_finite_input"] == 0 else np.where(finite_all, planes[0], np.float32(0.0))
    shape = ref.GetSize()[::-1]
    dec = decide_signal(low.reshape(shape), (finite_all & cover).reshape(shape), cfg["noise_floor_fraction_of_p99"],
                        noise_floor=noise_floor, noise_sigma=noise_sigma,
                        min_background_voxels=int(cfg["min_background_voxels_for_sigma"]))
    reasons.update(dec.reasons(valid.reshape(shape)))
    valid &= dec.keep.reshape(-1)
    sigma = float(noise_sigma) if noise_sigma is not None else dec.sigma
    floor_high = high_b_at_floor(planes, sel_b, sigma, shape, valid, cfg)
    reasons["high_b_at_noise_floor"] = 0
    if floor_high is not None:
        lost = valid & floor_high
        reasons["high_b_at_noise_floor"] = int(np.count_nonzero(lost))
        valid &= ~floor_high
        if reasons["high_b_at_noise_floor"]:
            notes.append(f"{reasons['high_b_at_noise_floor']} voxels have no measurable signal at any b >= "
                         f"{cfg['high_b_floor_min_b_s_mm2']:g} s/mm2 (consistent with noise alone): their ADC "
                         "cannot be measured and they were masked, not clipped")
    why_no_sigma = no_background_reason(low) if dec.sigma is None else ""
    return _Voxels(valid, reasons, float(dec.floor), dec.sigma, dec.rule, why_no_sigma)


@dataclass
class _Fit:
    """Fitted voxels ``idx`` (before dropping), their ADC (10^-6 mm^2/s), S0, R^2, dropped and clipped ones."""

    idx: np.ndarray
    adc: np.ndarray
    s0: np.ndarray
    r2: np.ndarray | None
    drop: np.ndarray
    high: np.ndarray
    sigma_used: float | None


def _fit(planes: Sequence[np.ndarray], vox: _Voxels, sel_b: np.ndarray, method: str, noise_sigma: float | None,
         cfg: dict[str, Any], notes: list[str], reasons: dict[str, int], quality: bool = True) -> _Fit:
    """The fit itself on the valid voxels; drops non-finite and negative ADCs (counted), clips the high ones.
    ``quality``: also the R^2 of each fitted curve (one pass over the data more)."""
    # absurd inputs (e.g. 1e-30 next to 3e38) may overflow intermediate products: such voxels end up non-finite
    # and are masked as fit_failed below, so numpy's overflow warnings carry no information here
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        idx = np.flatnonzero(vox.valid)
        sig = np.empty((len(planes), idx.size), dtype=np.float32)
        for k, plane in enumerate(planes):   # the indices are in range: 'clip' only spares take() a bounds buffer
            np.take(plane, idx, out=sig[k], mode="clip")
        # every signal at most 1 after scaling (the largest may sit at any b when the input is absurd)
        scale = float(np.max(sig)) if sig.size else 1.0
        scale = scale if 0 < scale < np.inf else 1.0
        sig *= np.float32(1.0 / scale)  # a fresh copy from take(): scale in place
        tiny = np.float32(max(vox.floor / scale * 1e-2, 1e-6))
        # the scaled signal itself is needed again only by nlls and R^2: otherwise its logs replace it in place
        logs = np.maximum(sig, tiny, out=sig if method != "nlls" and not quality else None)
        np.log(logs, out=logs)
        b_s = sel_b * _B_SCALE
        adc_s, ln_s0 = _lls(logs, b_s)
        if method in ("wls", "nlls"):
            adc_s, ln_s0 = _wls(logs, b_s, adc_s, ln_s0)
        s0_s = np.exp(np.minimum(ln_s0, np.float32(80.0)))
        sigma_used = None
        if method == "nlls":
            sigma_used = float(noise_sigma) if noise_sigma is not None else (vox.sigma or 0.0)
            if noise_sigma is None and vox.sigma is None:
                notes.append(f"noise level unknown ({vox.why_no_sigma}): nlls was fitted without the Rician "
                             "noise-floor correction instead; the map is complete")
            s0_s, adc_s = _nlls(sig, b_s, s0_s, adc_s, sigma_used / scale, int(cfg["nlls_iterations"]),
                                float(cfg["nlls_damping"]))

        with np.errstate(over="ignore", invalid="ignore"):
            adc_v = adc_s * np.float32(_B_SCALE * 1e6)  # scaled units -> 10^-6 mm^2/s
            s0_v = s0_s * np.float32(scale)  # may overflow float32 for absurd inputs: such voxels are masked below
        bad = ~np.isfinite(adc_v) | ~np.isfinite(s0_v)
        neg = ~bad & (adc_v < 0)
        high = ~bad & (adc_v > cfg["adc_max_1e6_mm2_s"])
        reasons["fit_failed"] = int(np.count_nonzero(bad))
        reasons["negative_adc"] = int(np.count_nonzero(neg))
        drop = bad | neg
        np.minimum(adc_v, np.float32(cfg["adc_max_1e6_mm2_s"]), out=adc_v)
        adc_v[drop] = 0.0
        s0_v[drop] = 0.0
        r2 = (_r_squared(sig, b_s, s0_v * np.float32(1.0 / scale), adc_v * np.float32(-1e-6 / _B_SCALE), drop)
              if quality else None)
    return _Fit(idx, adc_v, s0_v, r2, drop, high, sigma_used)


def _outputs(ref: sitk.Image, fit: _Fit, computed_b: Sequence[float], maps: Collection[str]
             ) -> tuple[sitk.Image, sitk.Image | None, sitk.Image | None, sitk.Image | None, dict[float, sitk.Image],
                        np.ndarray]:
    """(ADC, S0, R^2, mask images, computed DWI by b, fitted voxel indices) on the reference grid; S0 and mask
    only when ``maps`` names them, R^2 only when it was computed (else None)."""
    n_vox = int(np.prod(ref.GetSize()))
    grid_shape = ref.GetSize()[::-1]
    fitted = fit.idx[~fit.drop]
    scratch = np.zeros(n_vox, dtype=np.float32)  # one buffer: only the fitted positions are ever written

    def full(values: np.ndarray) -> np.ndarray:
        scratch[fit.idx] = values      # to_image copies, so the buffer can be reused for the next map
        return scratch.reshape(grid_shape)

    adc_img = to_image(full(fit.adc), ref)
    s0_img = to_image(full(fit.s0), ref) if "s0" in maps else None
    q_img = to_image(full(fit.r2), ref) if fit.r2 is not None else None
    mask_img = None
    if "mask" in maps:
        mask_arr = np.zeros(n_vox, dtype=np.uint8)
        mask_arr[fitted] = 1
        mask_img = to_image(mask_arr.reshape(grid_shape), ref, np.uint8)
    computed: dict[float, sitk.Image] = {}
    for cb in computed_b:
        cbf = float(cb)
        if not np.isfinite(cbf) or cbf < 0:
            raise LiverMetsError(f"computed b-value must be finite and >= 0 (got {cb})")
        vals = np.multiply(fit.adc, np.float32(-cbf * 1e-6))
        np.exp(vals, out=vals)
        vals *= fit.s0                # s0 is 0 where dropped
        computed[cbf] = to_image(full(vals), ref)
    return adc_img, s0_img, q_img, mask_img, computed, fitted


_METHOD_TEXT = {
    "lls": "log-linear least squares (closed form)",
    "wls": "log-linear weighted least squares (weights: predicted signal squared)",
    "nlls": "damped Gauss-Newton on squared magnitude with Rician noise-floor correction, started from WLS",
}


def fit_adc(images: Sequence[sitk.Image], b_values: Sequence[float], *, method: str = "lls",
            exclude_below: float | None = None, include: Sequence[float] | None = None,
            mask: sitk.Image | None = None, noise_floor: float | None = None, noise_sigma: float | None = None,
            computed_b: Sequence[float] = (), quality: bool = True,
            maps: Collection[str] = ("s0", "mask")) -> AdcResult:
    """Fit the mono-exponential ADC over the selected b-values (>= 2 distinct), every voxel at once.

    ``images``: one magnitude image per b-value (several directions per b: use :func:`combine_directions` first).
    ``include``: keep only these b-values; ``exclude_below``: drop b below this (e.g. 100-200 for a
    perfusion-insensitive ADC). ``mask``: nonzero voxels are fitted. ``noise_floor``: signal of the lowest b below
    which a voxel is background (default: from the image, see :mod:`.noise`). ``noise_sigma``: Rician sigma for
    ``nlls`` and for the high-b noise-floor test (default: estimated from the background; none when there is
    none). ``computed_b``: b-values of computed DWI to return. ``quality``: also compute the R^2 map (False:
    ``quality`` is None, for callers that do not keep it, e.g. the CLI without --quality: one pass less).
    ``maps``: which of the S0 and mask images to build (the CLI builds those it writes); one left out is None in the
    result, and no value, count or summary changes.
    """
    bs, keep, excluded, sel_b = _check_selection(images, b_values, method, include, exclude_below)
    cfg = defaults("adc")
    ref = images[0]
    notes: list[str] = []
    warnings: list[str] = []
    planes, owners, cover, finite_all = _b_stack(images, keep, bs, notes, warnings)
    vox = _select_voxels(planes, cover, finite_all, sel_b, ref, mask, noise_floor, noise_sigma, cfg, notes, warnings)
    reasons = vox.reasons
    fit = _fit(planes, vox, sel_b, method, noise_sigma, cfg, notes, reasons, quality)
    del planes, owners   # the fitted voxels are all the outputs need: free any converted volumes before building them
    adc_img, s0_img, q_img, mask_img, computed, fitted = _outputs(ref, fit, computed_b, maps)

    n_vox = int(np.prod(ref.GetSize()))
    masked = n_vox - int(fitted.size)
    n_high = int(np.count_nonzero(fit.high))
    if n_high:
        warnings.append(f"{n_high} voxels had an ADC above {cfg['adc_max_1e6_mm2_s']:g} x10^-6 mm2/s and were clipped")
    if masked > 0.9 * n_vox:
        warnings.append(f"{masked} of {n_vox} voxels were masked: check the noise floor or the mask")
    summary: dict[str, Any] = {
        "map": "adc",
        "model": "S(b) = S0 * exp(-b * ADC)",
        "units": {"adc": ADC_UNITS, "s0": "signal units of the input", "quality": "R2 (signal domain, 0..1)",
                  "b_values": "s/mm2"},
        "method": method,
        "method_description": _METHOD_TEXT[method],
        "b_values_given": bs,
        "b_values_used": [float(b) for b in sel_b],
        "b_values_excluded": excluded,
        "noise_floor": vox.floor,
        "noise_sigma": fit.sigma_used if method == "nlls" else vox.sigma,
        "noise_rule": vox.rule,
        "voxels_total": int(n_vox),
        "voxels_fitted": int(fitted.size),
        "masked_voxels": int(masked),
        "masked_reasons": reasons,
        "clipped_high_voxels": n_high,
        "computed_b_values": [float(b) for b in computed_b],
        "coordinate_system": "LPS",
        "grid": describe_grid(ref),
        "notes": notes,
        "warnings": warnings,
    }
    return AdcResult(adc_img, s0_img, q_img, mask_img, computed, summary, _metadata(method, summary, computed))


def _metadata(method: str, summary: dict[str, Any], computed: dict[float, sitk.Image]) -> dict[str, dict[str, Any]]:
    """Key/value pairs for each output image."""
    common = {"method": method, "b_values_used": summary["b_values_used"], "masked_voxels": summary["masked_voxels"],
              "coordinate_system": "LPS", **stated(summary)}
    metadata = {
        "adc": {"quantity": "apparent diffusion coefficient", "units": ADC_UNITS, **common},
        "s0": {"quantity": "S0 (signal extrapolated to b=0)", "units": "signal units of the input", **common},
        "quality": {"quantity": "fit quality R2", "units": "1", **common},
        "mask": {"quantity": "fitted voxels (1) / masked (0)", "units": "1", **common},
    }
    for cb in computed:
        metadata[f"computed_b{cb:g}"] = {"quantity": f"computed DWI at b={cb:g} s/mm2",
                                         "units": "signal units of the input", "b_value": cb, **common}
    return metadata
