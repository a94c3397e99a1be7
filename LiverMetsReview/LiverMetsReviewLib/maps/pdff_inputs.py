"""Checks of the PDFF fit's inputs (echo images, echo times, field strength, fat model, options) and the echo stack
on the first echo's grid: each bad input is named in one sentence saying what to give instead. Kept apart from
:mod:`.pdff` so that the fit's module holds the fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError, MissingDataError
from ..physics.fat import default_fat_spectrum
from ..resources import load_json
from .resample import match_to_reference

DEFAULTS_FILE = "pdff_defaults.json"
METHODS = ("magnitude", "complex")
_COMPLEX_IDS = (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64)


def pdff_defaults() -> dict[str, Any]:
    """The ``pdff`` section of ``resources/pdff_defaults.json``."""
    return load_json(DEFAULTS_FILE)["pdff"]


def fat_model_spectrum(fat_model: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fat spectrum to fit with: the project default, or a dict with ``ppm`` and ``amplitudes``."""
    if fat_model is None:
        return default_fat_spectrum()
    try:
        ppm = [float(v) for v in fat_model["ppm"]]
        amps = [float(v) for v in fat_model["amplitudes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise LiverMetsError("a fat model needs numeric 'ppm' and 'amplitudes' lists of equal length; "
                             "leave fat_model out for the default multi-peak spectrum") from exc
    if not ppm or len(ppm) != len(amps) or not all(np.isfinite(ppm + amps)) or min(amps) < 0 or sum(amps) <= 0:
        raise LiverMetsError("a fat model needs equal-length 'ppm' and non-negative 'amplitudes' with a positive "
                             "sum; leave fat_model out for the default multi-peak spectrum")
    gamma = float(fat_model.get("gamma_mhz_per_t", default_fat_spectrum()["gamma_mhz_per_t"]))
    return {"model": str(fat_model.get("model", f"{len(ppm)}-peak fat spectrum (given)")), "ppm": ppm,
            "amplitudes": [a / sum(amps) for a in amps], "gamma_mhz_per_t": gamma,
            "source": str(fat_model.get("source", "given by the caller"))}


def _check_times(echo_times_ms: Sequence[float], n_images: int, min_echoes: int) -> np.ndarray:
    try:
        te = np.array([float(t) for t in echo_times_ms], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise LiverMetsError(f"echo times must be numbers in ms (got {list(echo_times_ms)!r})") from exc
    if te.size != n_images:
        raise LiverMetsError(f"{n_images} echo images but {te.size} echo times: give one echo time (ms) per image")
    if n_images < min_echoes:
        raise MissingDataError(f"a PDFF/R2* fit needs at least {min_echoes} echoes (got {n_images}); "
                               "give all echoes of the multi-echo series")
    if not np.all(np.isfinite(te)) or np.any(te <= 0):
        raise LiverMetsError(f"echo times must be finite and positive, in ms (got {te.tolist()})")
    if np.any(np.diff(te) <= 0):
        raise LiverMetsError(f"echo times must be distinct and increasing (got {te.tolist()} ms); "
                             "give the echoes in acquisition order, each once")
    return te


def _check_field(field_strength_t: float | None, cfg: dict[str, Any]) -> float:
    try:
        b0 = float(field_strength_t)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise MissingDataError("the field strength (T) is needed for the fat spectrum's frequencies; "
                               "give it (e.g. 1.5 or 3)") from exc
    lo, hi = cfg["field_strength_plausible_t"]
    if not np.isfinite(b0) or not lo <= b0 <= hi:
        raise LiverMetsError(f"field strength {field_strength_t} T is outside {lo}-{hi} T; give the scanner's "
                             "field strength in tesla (e.g. 1.5 or 3)")
    return b0


def _check_echo(img: Any, k: int, *, need_complex: bool) -> bool:
    """Refuse what cannot be an echo image (with a reason); True if ``img`` is complex."""
    if not isinstance(img, sitk.Image):
        raise LiverMetsError(f"echo {k + 1} is not an image (got {type(img).__name__})")
    is_complex = img.GetPixelID() in _COMPLEX_IDS
    if need_complex and not is_complex:
        raise LiverMetsError(f"method 'complex' needs complex echo images (echo {k + 1} is not complex); "
                             "combine magnitude and phase first, or use method 'magnitude'")
    if not is_complex and img.GetNumberOfComponentsPerPixel() != 1:
        raise LiverMetsError(f"the echo {k + 1} image has several components per voxel; "
                             "give one magnitude image per echo")
    return is_complex


def _check_reference(ref: sitk.Image) -> int:
    """Number of voxels of the first echo's grid, which must be 2-D or 3-D."""
    if ref.GetDimension() not in (2, 3):
        raise LiverMetsError(f"echo images must be 2-D or 3-D (got {ref.GetDimension()}-D)")
    return int(np.prod(ref.GetSize()))


def _on_reference(ref: sitk.Image, img: sitk.Image, what: str, notes: list[str], cover: np.ndarray,
                  dtype: type = np.float64) -> np.ndarray:
    """``img``'s values on ``ref``'s grid (flat ``dtype``); a resampling note goes to ``notes`` (the caller also
    raises it as a warning) and the reference voxels the image does not cover leave ``cover`` (in place)."""
    moved, cov, note = match_to_reference(ref, img, what)
    if note:
        notes.append(note)
    if cov is not None:
        cover &= cov.reshape(-1)
    return sitk.GetArrayViewFromImage(moved).reshape(-1).astype(dtype)


def _stack_dtype(images: Sequence[sitk.Image]) -> type:
    """float32 when every echo fits it exactly (float32 or integers up to 16 bits, the usual case: half the memory
    and time of float64), else float64."""
    exact32 = {sitk.sitkFloat32, sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16}
    return np.float32 if all(img.GetPixelID() in exact32 for img in images) else np.float64


def _finite_voxels(values: np.ndarray, what: str, kind: str) -> np.ndarray:
    """Where ``values`` is finite. NaN/inf voxels are masked and counted by the caller, not refused: one corrupt
    voxel must not cost the whole map. An echo without a single finite voxel is unusable and refused."""
    ok = np.isfinite(values)
    if values.size and not ok.any():
        raise LiverMetsError(f"the {what} holds only NaN or infinite values; give finite {kind} images")
    return ok


def echo_stack(echoes: Sequence[sitk.Image], notes: list[str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, sitk.Image]:
    """(magnitudes (n_echo, n_vox) float32 or float64 (:func:`_stack_dtype`), covered voxels, finite voxels,
    reference image) on the first echo's grid. Non-finite input voxels are 0 in the stack and False in the finite
    mask."""
    mags: list[sitk.Image] = []
    took_abs = False
    for k, img in enumerate(echoes):
        if _check_echo(img, k, need_complex=False):
            img = sitk.ComplexToModulus(img)
            took_abs = True
        mags.append(img)
    ref = mags[0]
    n_vox = _check_reference(ref)
    dtype = _stack_dtype(mags)
    stack = np.empty((len(mags), n_vox), dtype=dtype)
    cover = np.ones(n_vox, dtype=bool)
    finite = np.ones(n_vox, dtype=bool)
    for k, img in enumerate(mags):
        what = f"echo {k + 1} image"
        a = _on_reference(ref, img, what, notes, cover, dtype)
        ok = _finite_voxels(a, what, "magnitude")
        a[~ok] = 0.0
        if a.size and float(a.min()) < 0:
            raise LiverMetsError(f"the {what} has negative values (min {float(a.min()):g}); give magnitude "
                                 "images, not phase, real-part or difference images")
        finite &= ok
        stack[k] = a
    if not np.any(stack > 0):
        raise LiverMetsError("every echo image is all zero; check that the right files were given")
    if took_abs:
        notes.append("complex echo images were given: their magnitudes were fitted (method 'magnitude')")
    return stack, cover, finite, ref


def complex_stack(echoes: Sequence[sitk.Image], notes: list[str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, sitk.Image]:
    """(complex echoes (n_echo, n_vox), covered voxels, finite voxels, magnitude reference image) on the first
    echo's grid. Non-finite input voxels are 0 in the stack and False in the finite mask.

    Echoes on another grid are resampled part by part (real and imaginary, linear), which keeps the phase.
    """
    for k, img in enumerate(echoes):
        _check_echo(img, k, need_complex=True)
    ref = sitk.ComplexToModulus(echoes[0])
    n_vox = _check_reference(ref)
    stack = np.empty((len(echoes), n_vox), dtype=np.complex128)
    cover = np.ones(n_vox, dtype=bool)
    finite = np.ones(n_vox, dtype=bool)
    for k, img in enumerate(echoes):
        what = f"echo {k + 1} image"
        re = _on_reference(ref, sitk.ComplexToReal(img), what, notes, cover)
        im = _on_reference(ref, sitk.ComplexToImaginary(img), what, [], cover)   # one note per echo
        z = re + 1j * im
        ok = _finite_voxels(z, what, "complex")
        z[~ok] = 0.0
        finite &= ok
        stack[k] = z
    if not np.any(np.abs(stack) > 0):
        raise LiverMetsError("every echo image is all zero; check that the right files were given")
    return stack, cover, finite, ref


# --- options and voxels --------------------------------------------------------------------------------------------

def check_options(echoes: Any, echo_times_ms: Sequence[float], field_strength_t: float, method: str,
                   vote_window: Sequence[int] | None) -> tuple[dict[str, Any], np.ndarray, float]:
    """(defaults, echo times in ms, field strength in T), or a clear refusal."""
    if method not in METHODS:
        raise LiverMetsError(f"unknown PDFF method '{method}': choose one of {', '.join(METHODS)}")
    cfg = pdff_defaults()
    if vote_window is not None and (len(vote_window) not in (2, 3) or not all(
            isinstance(v, (int, np.integer)) and v >= 1 for v in vote_window)):
        raise LiverMetsError(f"vote_window must be 2 or 3 positive whole numbers of voxels, (z,) y, x "
                             f"(got {vote_window!r})")
    if isinstance(echoes, sitk.Image) or not isinstance(echoes, Sequence):
        raise LiverMetsError("give the echoes as a list of images, one per echo time")
    te = _check_times(echo_times_ms, len(echoes), int(cfg["min_echoes"]))
    return cfg, te, _check_field(field_strength_t, cfg)
