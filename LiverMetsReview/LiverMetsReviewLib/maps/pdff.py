"""Proton-density fat fraction (PDFF, percent 0-100) and R2* (1/s) from a multi-echo gradient echo, all voxels at once.

Model (method 'magnitude', one R2* for water and fat):

    |S(TE_n)| = |W + F * c(TE_n)| * exp(-R2* TE_n),   c(TE) = sum_p a_p exp(i 2 pi f_p TE),  W, F >= 0

with the multi-peak fat spectrum ``c`` (by default the project's one spectrum, the same the phantom simulates:
:func:`..physics.fat.default_fat_spectrum`). PDFF = F / (W + F) x 100. From magnitudes, (W, F) and roughly
(F, W) explain the data almost equally well (the fat-water ambiguity); only the multi-peak spectrum tells them apart.
It is resolved explicitly: a grid search over (PDFF, R2*) gives the two deepest starts below 50 % and the two above,
Levenberg-Marquardt refines them, and the best solution of each side is kept. Their residual difference in noise
variances (chi-square) decides; where one voxel's evidence is weak, the summed evidence of a small neighbourhood
decides (tissue is locally homogeneous). Voxels whose evidence stays weak while the two PDFFs differ are flagged
ambiguous (the value is reported but should not be trusted).

Method 'complex' (complex echo images): both sides' solutions are refined on the complex signal
S_n = (W + F c_n) exp(-R2* TE_n) exp(i (2 pi psi TE_n + phi)) with a field map psi (Hz) and one phase phi for water
and fat per voxel; tying the two phases together makes most voxels decide alone. psi must lie within
+-1/(2 echo spacing) (no unwrapping, no spatial smoothness imposed).

Levenberg-Marquardt runs on all voxels of a chunk at once (numpy; per-voxel damping, accept/reject and convergence;
converged voxels leave the active set): no per-voxel Python loop. Signals are scaled per voxel so that the largest
echo is 1. Background (mean over echoes below the noise floor), voxels outside the mask or the grid of an echo and
voxels that are NaN or infinite in any echo are masked (0 in every map) and counted. No map ever holds NaN or inf.
Not corrected: T1 weighting (low flip angles assumed), noise bias of magnitude data at very low SNR, bipolar-readout
phase errors, T2* differences between fat peaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import uniform_filter

from ..errors import LiverMetsError, MissingDataError
from ..physics.fat import default_fat_spectrum, fat_phasor
from ..resources import load_json
from .noise import no_background_reason, robust_max
from .noise import noise_floor as estimate_noise_floor
from .resample import apply_user_mask, describe_grid, match_to_reference, to_image

DEFAULTS_FILE = "pdff_defaults.json"
PDFF_UNITS = "percent"
R2STAR_UNITS = "1/s"
METHODS = ("magnitude", "complex")
FLAG_VALID, FLAG_BACKGROUND, FLAG_AMBIGUOUS, FLAG_R2STAR_BOUND = 0, 1, 2, 3
FLAG_LEGEND = {"0": "valid", "1": "background / masked",
               "2": "fat-water ambiguous (the other solution fits almost as well)",
               "3": "R2* at the bound of its allowed range"}
_COMPLEX_IDS = (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64)


def pdff_defaults() -> dict[str, Any]:
    """The ``pdff`` section of ``resources/pdff_defaults.json``."""
    return load_json(DEFAULTS_FILE)["pdff"]


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


# --- inputs --------------------------------------------------------------------------------------------------------

def _fat_model(fat_model: Mapping[str, Any] | None) -> dict[str, Any]:
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


def _on_reference(ref: sitk.Image, img: sitk.Image, what: str, notes: list[str], cover: np.ndarray) -> np.ndarray:
    """``img``'s values on ``ref``'s grid (flat float64); a resampling note goes to ``notes`` (the caller also
    raises it as a warning) and the reference voxels the image does not cover leave ``cover`` (in place)."""
    moved, cov, note = match_to_reference(ref, img, what)
    if note:
        notes.append(note)
    if cov is not None:
        cover &= cov.reshape(-1)
    return sitk.GetArrayViewFromImage(moved).reshape(-1).astype(np.float64)


def _finite_voxels(values: np.ndarray, what: str, kind: str) -> np.ndarray:
    """Where ``values`` is finite. NaN/inf voxels are masked and counted by the caller, not refused: one corrupt
    voxel must not cost the whole map. An echo without a single finite voxel is unusable and refused."""
    ok = np.isfinite(values)
    if values.size and not ok.any():
        raise LiverMetsError(f"the {what} holds only NaN or infinite values; give finite {kind} images")
    return ok


def _echo_stack(echoes: Sequence[sitk.Image], notes: list[str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, sitk.Image]:
    """(magnitudes (n_echo, n_vox) float64, covered voxels, finite voxels, reference image) on the first echo's
    grid. Non-finite input voxels are 0 in the stack and False in the finite mask."""
    mags: list[sitk.Image] = []
    took_abs = False
    for k, img in enumerate(echoes):
        if _check_echo(img, k, need_complex=False):
            img = sitk.ComplexToModulus(img)
            took_abs = True
        mags.append(img)
    ref = mags[0]
    n_vox = _check_reference(ref)
    stack = np.empty((len(mags), n_vox), dtype=np.float64)
    cover = np.ones(n_vox, dtype=bool)
    finite = np.ones(n_vox, dtype=bool)
    for k, img in enumerate(mags):
        what = f"echo {k + 1} image"
        a = _on_reference(ref, img, what, notes, cover)
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


def _complex_stack(echoes: Sequence[sitk.Image], notes: list[str]
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


# --- the fit -------------------------------------------------------------------------------------------------------

def _start_grid(te: np.ndarray, c: np.ndarray, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate (ff, R2* in 1/ms) pairs and their unit-amplitude magnitude curves (n_echo, n_grid)."""
    step = float(cfg["start_grid_ff_percent_step"])
    ffs = np.arange(0.0, 100.0 + 1e-9, step) / 100.0
    ffs = ffs[np.abs(ffs - 0.5) > 1e-9]  # 50 % belongs to neither side: starts there stall on the ridge
    rs = np.asarray(cfg["start_grid_r2star_per_s"], dtype=np.float64) / 1000.0
    ff_g, r_g = (v.ravel() for v in np.meshgrid(ffs, rs, indexing="ij"))
    curves = np.abs((1.0 - ff_g)[None, :] + ff_g[None, :] * c[:, None]) * np.exp(-te[:, None] * r_g[None, :])
    return ff_g, r_g, curves


def _grid_starts(y: np.ndarray, ff_g: np.ndarray, r_g: np.ndarray, curves: np.ndarray) -> list[np.ndarray]:
    """Up to four starts (W, F, R), each (3, n): the two deepest local minima of the grid cost over PDFF (each
    PDFF with its best R2* and amplitude) below 50 %, and the two deepest above 50 %.

    Magnitude data at clinical echo spacings can have two minima on the same side of 50 % (e.g. 52 % and 59 % at
    1.5 T): a single start per side may stall in the shallower one.
    """
    n = y.shape[1]
    # cost(g) = |y|^2 - (y.u_g)^2 with u_g the unit-norm curve: the best grid points maximise y.u_g (>= 0)
    norm = np.sqrt(np.sum(curves * curves, axis=0))
    unit = (curves / norm).astype(np.float32)
    ffs = np.unique(ff_g)
    n_r = ff_g.size // ffs.size                            # grid is ff-major: (n_ff, n_r)
    c3 = (unit.T @ y.astype(np.float32)).reshape(ffs.size, n_r, n)
    r_idx = np.argmax(c3, axis=1)                          # (n_ff, n): best R2* per PDFF
    best_proj = np.take_along_axis(c3, r_idx[:, None, :], axis=1)[:, 0, :]
    r_best = np.ascontiguousarray(r_idx.T)                 # (n, n_ff)
    prof = -np.ascontiguousarray(best_proj.T)              # minus the best projection per PDFF (a cost)
    rows = np.arange(n)
    starts = []
    for side in (ffs < 0.5, ffs > 0.5):
        cols = np.flatnonzero(side)
        pc = prof[:, cols]
        left = np.concatenate([np.full((n, 1), np.inf), pc[:, :-1]], axis=1)
        right = np.concatenate([pc[:, 1:], np.full((n, 1), np.inf)], axis=1)
        local = np.where((pc <= left) & (pc <= right), pc, np.inf)
        order = np.argsort(local, axis=1)[:, :2]
        first = order[:, 0]
        second = np.where(np.isfinite(local[rows, order[:, 1]]), order[:, 1], first)
        for j in (first, second):
            fi = cols[j]
            k = fi * n_r + r_best[rows, fi]
            rho = -prof[rows, fi].astype(np.float64) / norm[k]
            starts.append(np.stack([rho * (1.0 - ff_g[k]), rho * ff_g[k], r_g[k]]))
    return starts


def _model(p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray, with_jac: bool = True):
    """Magnitude model and Jacobian for parameters p = (W, F, R [1/ms]) of shape (3, n); a = |c|^2, b = Re c."""
    w, f, r = p
    q = w * w + (f * f) * a[:, None] + (2.0 * w * f) * b[:, None]
    m = np.sqrt(np.maximum(q, 1e-300))
    e = np.exp(-te[:, None] * r)
    model = m * e
    if not with_jac:
        return model, None
    inv = e / np.maximum(m, 1e-150)
    jw = (w + f * b[:, None]) * inv
    jf = (f * a[:, None] + w * b[:, None]) * inv
    jr = -te[:, None] * model
    return model, (jw, jf, jr)


def _solve3(h: list[np.ndarray], g: list[np.ndarray]) -> list[np.ndarray]:
    """Solve symmetric 3x3 systems H d = g for every voxel (Cramer's rule); h = (h00, h01, h02, h11, h12, h22)."""
    a, b, c, d, e, f = h
    c00 = d * f - e * e
    c01 = c * e - b * f
    c02 = b * e - c * d
    c11 = a * f - c * c
    c12 = b * c - a * e
    c22 = a * d - b * b
    det = a * c00 + b * c01 + c * c02
    det = np.where(np.abs(det) > 1e-300, det, 1e-300)
    g0, g1, g2 = g
    return [(c00 * g0 + c01 * g1 + c02 * g2) / det,
            (c01 * g0 + c11 * g1 + c12 * g2) / det,
            (c02 * g0 + c12 * g1 + c22 * g2) / det]


def _levenberg_marquardt(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray,
                         r_lo: float, r_hi: float, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bounded LM (W, F >= 0; R in [r_lo, r_hi]) on all columns of y at once; returns (params, cost)."""
    p = p.copy()
    p[2] = np.clip(p[2], r_lo, r_hi)
    model, _ = _model(p, te, a, b, with_jac=False)
    cost = np.sum((y - model) ** 2, axis=0)
    lam = np.full(y.shape[1], float(cfg["initial_damping"]))
    tol = float(cfg["relative_cost_tolerance"])
    act = np.arange(y.shape[1])
    for _ in range(int(cfg["iterations"])):
        if act.size == 0:
            break
        ya, pa, ca, la = y[:, act], p[:, act], cost[act], lam[act]
        model, (jw, jf, jr) = _model(pa, te, a, b)
        res = ya - model
        h = [np.sum(jw * jw, 0), np.sum(jw * jf, 0), np.sum(jw * jr, 0), np.sum(jf * jf, 0), np.sum(jf * jr, 0),
             np.sum(jr * jr, 0)]
        g = [np.sum(jw * res, 0), np.sum(jf * res, 0), np.sum(jr * res, 0)]
        scale = 1e-12 * (h[0] + h[3] + h[5]) + 1e-300
        for i in (0, 3, 5):
            h[i] = h[i] * (1.0 + la) + scale
        d = _solve3(h, g)
        new = np.stack([np.maximum(pa[0] + d[0], 0.0), np.maximum(pa[1] + d[1], 0.0),
                        np.clip(pa[2] + d[2], r_lo, r_hi)])
        new_model, _ = _model(new, te, a, b, with_jac=False)
        new_cost = np.sum((ya - new_model) ** 2, axis=0)
        ok = np.isfinite(new_cost) & (new_cost < ca)
        gain = np.where(ok, ca - new_cost, 0.0)
        p[:, act] = np.where(ok, new, pa)
        cost[act] = np.where(ok, new_cost, ca)
        lam[act] = np.where(ok, np.maximum(la * 0.3, 1e-12), la * 10.0)
        step = np.maximum.reduce([np.abs(d[0]), np.abs(d[1]), np.abs(d[2]) * 1e3]) / (
            np.abs(pa[0]) + np.abs(pa[1]) + 1.0)            # relative step; R in 1/ms weighs like 1e-3 of signal
        done = (ok & (gain <= tol * ca + 1e-28)) | (lam[act] > 1e10) | (cost[act] <= 1e-28) | (step < 1e-10)
        act = act[~done]
    return p, cost


def _fit_chunk(y: np.ndarray, te: np.ndarray, c: np.ndarray, grid: tuple, r_lo: float, r_hi: float,
               cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All starts refined at once: (water-side params, cost, fat-side params, cost) in scaled units.

    A side's solution is the lowest-residual fit that ended with PDFF <= 50 % (water side) or > 50 % (fat side);
    a side that no fit ended on gets cost inf and the other side's parameters.
    """
    a, b = np.abs(c) ** 2, c.real
    starts = _grid_starts(y, *grid)
    n, k = y.shape[1], len(starts)
    ps = np.stack(starts, axis=1)                          # (3, k, n); starts 1 and 3 often repeat 0 and 2
    run = np.ones((k, n), dtype=bool)
    for j in (1, 3):
        run[j] = np.any(ps[:, j] != ps[:, j - 1], axis=0)
    jj, vv = np.nonzero(run)
    p_run, c_run = _levenberg_marquardt(y[:, vv], ps[:, jj, vv], te, a, b, r_lo, r_hi, cfg)
    cs = np.full((k, n), np.inf)
    ps[:, jj, vv] = p_run
    cs[jj, vv] = c_run
    for j in (1, 3):
        ps[:, j] = np.where(run[j], ps[:, j], ps[:, j - 1])
        cs[j] = np.where(run[j], cs[j], cs[j - 1])
    fat_side = np.stack([_ff(ps[:, j]) > 50.0 for j in range(k)])
    rows = np.arange(n)
    out = []
    for side in (~fat_side, fat_side):
        cc = np.where(side, cs, np.inf)
        i = np.argmin(cc, axis=0)
        out += [ps[:, i, rows], cc[i, rows]]
    pw, cw, pf, cf = out
    pw = np.where(np.isfinite(cw), pw, pf)
    pf = np.where(np.isfinite(cf), pf, pw)
    return pw, cw, pf, cf


def _complex_model(p: np.ndarray, te: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """S_n = (W + F c_n) exp(-R t_n) exp(i (2 pi psi t_n + phi)) and its derivatives; p = (W, F, R, psi, phi),
    t in ms, R in 1/ms, psi (field map) in kHz."""
    w, f, r, psi, phi = p
    e = np.exp(-te[:, None] * r + 1j * (2.0 * np.pi * te[:, None] * psi + phi))
    model = (w + f * c[:, None]) * e
    return model, [e, c[:, None] * e, -te[:, None] * model, 2j * np.pi * te[:, None] * model, 1j * model]


def _complex_start(yc: np.ndarray, p: np.ndarray, te: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(W, F, R) plus the field map and initial phase that best explain the measured phase given that mixture."""
    a = (p[0] + p[1] * c[:, None]) * np.exp(-te[:, None] * p[2])
    z = yc * np.conj(a)                                    # phase left: phi + 2 pi psi t
    pairs = z[1:] * np.conj(z[:-1])
    dt = np.diff(te)[:, None]
    wts = np.abs(pairs)
    psi = np.sum(wts * np.angle(pairs) / (2.0 * np.pi * dt), axis=0) / np.maximum(np.sum(wts, axis=0), 1e-300)
    phi = np.angle(np.sum(z * np.exp(-2j * np.pi * te[:, None] * psi), axis=0))
    return np.concatenate([p[:3], psi[None], phi[None]])


def _complex_lm(yc: np.ndarray, p: np.ndarray, te: np.ndarray, c: np.ndarray, r_lo: float, r_hi: float,
                cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bounded LM on the complex residual (W, F >= 0 real with one phase), all columns at once."""
    p = p.copy()
    model, _ = _complex_model(p, te, c)
    cost = np.sum(np.abs(yc - model) ** 2, axis=0)
    lam = np.full(yc.shape[1], float(cfg["initial_damping"]))
    tol = float(cfg["relative_cost_tolerance"])
    act = np.arange(yc.shape[1])
    eye = np.eye(5)
    for _ in range(int(cfg["iterations"])):
        if act.size == 0:
            break
        ya, pa, ca, la = yc[:, act], p[:, act], cost[act], lam[act]
        model, jac = _complex_model(pa, te, c)
        res = ya - model
        jj = np.stack(jac)                                 # (5, n_echo, n)
        h = np.einsum("aen,ben->nab", jj.conj(), jj).real
        g = np.einsum("aen,en->na", jj.conj(), res).real
        diag = np.einsum("naa->na", h)
        h = h + (la[:, None, None] * diag[:, :, None] + 1e-12 * diag.sum(1)[:, None, None] + 1e-300) * eye
        d = np.linalg.solve(h, g[:, :, None])[:, :, 0].T
        new = pa + d
        new[0] = np.maximum(new[0], 0.0)
        new[1] = np.maximum(new[1], 0.0)
        new[2] = np.clip(new[2], r_lo, r_hi)
        new[4] = np.angle(np.exp(1j * new[4]))
        new_model, _ = _complex_model(new, te, c)
        new_cost = np.sum(np.abs(ya - new_model) ** 2, axis=0)
        ok = np.isfinite(new_cost) & (new_cost < ca)
        gain = np.where(ok, ca - new_cost, 0.0)
        p[:, act] = np.where(ok, new, pa)
        cost[act] = np.where(ok, new_cost, ca)
        lam[act] = np.where(ok, np.maximum(la * 0.3, 1e-12), la * 10.0)
        step = np.max(np.abs(d) * np.array([[1.0], [1.0], [1e3], [1e3], [1.0]]), axis=0) / (
            np.abs(pa[0]) + np.abs(pa[1]) + 1.0)
        done = (ok & (gain <= tol * ca + 1e-28)) | (lam[act] > 1e10) | (cost[act] <= 1e-28) | (step < 1e-10)
        act = act[~done]
    return p, cost


def _complex_sides(yc: np.ndarray, pw: np.ndarray, pf: np.ndarray, te: np.ndarray, c: np.ndarray, r_lo: float,
                   r_hi: float, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both magnitude solutions refined on the complex data: (water-side params, cost, fat-side params, cost)."""
    n = yc.shape[1]
    y2 = np.concatenate([yc, yc], axis=1)
    start = _complex_start(y2, np.concatenate([pw, pf], axis=1), te, c)
    p, cost = _complex_lm(y2, start, te, c, r_lo, r_hi, cfg)
    return p[:, :n], cost[:n], p[:, n:], cost[n:]


def _vote(delta: np.ndarray, window: Sequence[int], strong: float) -> np.ndarray:
    """Fat-side evidence per voxel: its own chi-square difference when strong, else the sum over its neighbourhood.

    ``delta`` (grid shape, 0 outside the fitted voxels) = (water-side cost - fat-side cost) / sigma^2, clipped.
    Tissue is locally homogeneous, so summing the weak evidence of a few neighbours separates fat from water where
    one voxel's noise cannot; a voxel with strong evidence of its own keeps it (boundaries stay sharp).
    """
    size = [max(1, min(int(w), n)) for w, n in zip(window, delta.shape, strict=False)]
    size += [1] * (delta.ndim - len(size))
    neigh = uniform_filter(delta, size=size, mode="constant") * float(np.prod(size))
    return np.where(np.abs(delta) >= strong, delta, neigh)


def _ff(p: np.ndarray) -> np.ndarray:
    tot = p[0] + p[1]
    return np.where(tot > 0, p[1] / np.where(tot > 0, tot, 1.0), 0.0) * 100.0


def fit_pdff(echoes: Sequence[sitk.Image], echo_times_ms: Sequence[float], *, field_strength_t: float,
             fat_model: Mapping[str, Any] | None = None, method: str = "magnitude", mask: sitk.Image | None = None,
             noise_floor: float | None = None, noise_sigma: float | None = None,
             vote_window: Sequence[int] | None = None) -> PdffResult:
    """Fit PDFF (percent) and R2* (1/s) to magnitude echoes (>= 3, increasing TE in ms) at ``field_strength_t`` T.

    ``fat_model``: dict with ``ppm`` (relative to water) and ``amplitudes`` (optional ``gamma_mhz_per_t``,
    ``source``); default the project's multi-peak spectrum. ``mask``: nonzero voxels are fitted. ``noise_floor``:
    mean echo signal below which a voxel is background (default from the first echo's background).
    ``noise_sigma``: Rician sigma of the magnitudes for the fat-water evidence (default estimated from the
    background, else from the median fit residual). Echoes on other grids are resampled onto the first echo's
    grid (stated in the notes). ``method``: only 'magnitude' is available; complex echo images are fitted by
    their magnitudes.
    ``vote_window``: (z, y, x) neighbourhood, in voxels, whose evidence decides fat- versus water-dominant where a
    voxel's own evidence is weak (default from ``pdff_defaults.json``; (1, 1, 1) decides every voxel alone).
    """
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
    b0 = _check_field(field_strength_t, cfg)
    fm = _fat_model(fat_model)
    notes: list[str] = []
    warnings: list[str] = []
    stack_c = None
    grid_notes: list[str] = []
    if method == "complex":
        stack_c, cover, finite_in, ref = _complex_stack(echoes, grid_notes)
        stack = np.abs(stack_c)
    else:
        stack, cover, finite_in, ref = _echo_stack(echoes, grid_notes)
    notes += grid_notes
    warnings += [n for n in grid_notes if n.startswith("the echo")]   # echoes on another grid: worth a look
    n_echo, n_vox = stack.shape

    c = np.asarray(fat_phasor(te, b0, fm["ppm"], fm["amplitudes"], fm["gamma_mhz_per_t"]), dtype=np.complex128)
    main_hz = fm["gamma_mhz_per_t"] * b0 * fm["ppm"][int(np.argmax(fm["amplitudes"]))]
    cycles = abs(main_hz) * (te[-1] - te[0]) * 1e-3
    if cycles < float(cfg["min_fat_water_cycles_spanned"]):
        warnings.append(f"the echoes span only {cycles:.2f} cycles of fat-water precession ({abs(main_hz):.0f} Hz "
                        f"at {b0:g} T): fat and water are poorly separated, PDFF is unreliable")

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
    sigma = float(noise_sigma) if noise_sigma is not None else sigma_est
    bg = valid & (mean_sig <= floor)
    reasons["below_noise_floor"] = int(np.count_nonzero(bg))
    valid &= ~bg & (stack.max(axis=0) > 0)

    idx = np.flatnonzero(valid)
    n_par = 5 if stack_c is not None else 3
    sides = {k: np.zeros((n_par, idx.size)) for k in ("pw", "pf")}
    costs = {k: np.zeros(idx.size) for k in ("cw", "cf")}
    scales = np.zeros(idx.size)
    grid = _start_grid(te, c, cfg)
    r_lo = float(cfg["r2star_min_per_s"]) / 1000.0
    r_hi = float(cfg["r2star_max_per_s"]) / 1000.0
    chunk = max(1024, int(cfg["chunk_voxels"]))
    for s in range(0, idx.size, chunk):
        sel = idx[s:s + chunk]
        y = stack[:, sel]
        scale = y.max(axis=0)
        pw, cw, pf, cf = _fit_chunk(y / scale, te, c, grid, r_lo, r_hi, cfg)
        if stack_c is not None:
            pw, cw, pf, cf = _complex_sides(stack_c[:, sel] / scale, pw, pf, te, c, r_lo, r_hi, cfg)
        part = slice(s, s + sel.size)
        sides["pw"][:, part], sides["pf"][:, part] = pw, pf
        costs["cw"][part], costs["cf"][part] = cw * scale**2, cf * scale**2   # signal units^2
        scales[part] = scale

    # fat-water choice: chi-square difference of the two sides, own evidence or neighbourhood vote
    best_cost = np.minimum(costs["cw"], costs["cf"])
    if sigma is None or sigma <= 0:
        s2_res = best_cost / (max(2 * n_echo - 5, 1) if stack_c is not None else max(n_echo - 3, 1))
        s2 = float(np.median(s2_res)) if idx.size else 0.0
        notes.append("noise sigma taken from the fit residuals (no noise-only background was measured)")
    else:
        s2 = sigma * sigma
    s2 = max(s2, 1e-30 * float(np.max(scales) ** 2) if idx.size else 1e-30)
    clip = float(cfg["vote_clip_sigma2"])
    with np.errstate(invalid="ignore"):
        delta = np.clip((costs["cw"] - costs["cf"]) / s2, -clip, clip)
    delta = np.nan_to_num(delta, nan=0.0)
    grid_shape = ref.GetSize()[::-1]
    dfull = np.zeros(n_vox)
    dfull[idx] = delta
    window = list(vote_window if vote_window is not None else cfg["vote_window_zyx"])[-len(grid_shape):]
    vote = _vote(dfull.reshape(grid_shape), window, float(cfg["vote_strong_sigma2"])).reshape(-1)[idx]
    fat_wins = vote > 0
    best = np.where(fat_wins, sides["pf"], sides["pw"])
    other = np.where(fat_wins, sides["pw"], sides["pf"])
    cost_b = np.where(fat_wins, costs["cf"], costs["cw"])
    ff_b, ff_o = _ff(best), _ff(other)
    amb = (np.abs(vote) < float(cfg["ambiguity_cost_difference_sigma2"])) & (
        np.abs(ff_o - ff_b) > float(cfg["ambiguity_min_pdff_difference_percent"]))
    at_bound = (best[2] >= r_hi * (1 - 1e-9)) | ((best[2] <= r_lo + 1e-12) & (r_lo > 0))
    ms = stack[:, idx].mean(axis=0)
    out = {"pdff": ff_b, "r2star": best[2] * 1000.0, "water": best[0] * scales, "fat": best[1] * scales,
           "quality": np.sqrt(np.maximum(cost_b, 0.0) / n_echo) / np.where(ms > 0, ms, 1.0) * 100.0}
    if stack_c is not None:
        out["field_map"] = best[3] * 1000.0                 # kHz -> Hz
    flags_fit = np.where(amb, FLAG_AMBIGUOUS, np.where(at_bound, FLAG_R2STAR_BOUND, FLAG_VALID)).astype(np.uint8)
    n_neigh = int(np.count_nonzero(np.abs(delta) < float(cfg["vote_strong_sigma2"])))

    finite = np.ones(idx.size, dtype=bool)
    for v in out.values():
        finite &= np.isfinite(v)
    reasons["fit_failed"] = int(np.count_nonzero(~finite))

    def full(values: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        arr = np.zeros(n_vox, dtype=dtype)
        arr[idx[finite]] = values[finite]
        return arr.reshape(grid_shape)

    pdff = np.clip(full(out["pdff"]), 0.0, 100.0)
    flags = np.full(n_vox, FLAG_BACKGROUND, dtype=np.uint8)
    flags[idx[finite]] = flags_fit[finite]
    flags = flags.reshape(grid_shape)
    mask_arr = (flags != FLAG_BACKGROUND).astype(np.uint8)
    n_fit = int(np.count_nonzero(mask_arr))
    n_amb = int(np.count_nonzero(flags == FLAG_AMBIGUOUS))
    n_bound = int(np.count_nonzero(flags == FLAG_R2STAR_BOUND))
    if n_amb:
        warnings.append(f"{n_amb} voxels are fat-water ambiguous: the solution on the other side of 50 % fits "
                        "almost as well (flag 2); their PDFF may be 100 minus the truth")
    if n_bound:
        warnings.append(f"{n_bound} voxels reached the R2* bound ({cfg['r2star_max_per_s']:g} 1/s; flag 3)")
    if n_vox - n_fit > 0.9 * n_vox:
        warnings.append(f"{n_vox - n_fit} of {n_vox} voxels were masked: check the noise floor or the mask")
    notes.append("T1 weighting is not corrected: a low flip angle is assumed (PDFF is overestimated by a few "
                 "percent of its value when the flip angle is high)")
    fm_summary = {"model": fm["model"], "ppm": fm["ppm"], "relative_amplitudes": fm["amplitudes"],
                  "gamma_mhz_per_t": fm["gamma_mhz_per_t"], "source": fm["source"]}
    summary: dict[str, Any] = {
        "map": "pdff",
        "model": ("|S(TE)| = |W + F c(TE)| exp(-R2* TE)" if stack_c is None else
                  "S(TE) = (W + F c(TE)) exp(-R2* TE) exp(i (2 pi psi TE + phi))")
                 + ", c(TE) = sum_p a_p exp(i 2 pi f_p TE), W, F >= 0; PDFF = F/(W+F) x 100",
        "method": method,
        "method_description": (
            "magnitude multi-echo fit, multi-peak fat, single R2*; Levenberg-Marquardt on all voxels at once from "
            "grid-searched starts" + ("" if stack_c is None else "; both sides' solutions then refined on the "
                                      "complex data with a field map psi and one phase phi per voxel (no spatial "
                                      "smoothness of psi is imposed)")),
        "ambiguity_resolution": (
            "up to four fits per voxel, started from the two deepest minima of a grid search over (PDFF, R2*) below "
            "50 % and the two deepest above 50 %; the best fit ending below and the best ending above 50 % are "
            "compared by their chi-square difference (residual difference / sigma^2, clipped at "
            f"{clip:g}); a voxel whose own difference reaches {cfg['vote_strong_sigma2']:g} keeps its lower-residual "
            f"side, otherwise the sum of the differences over a {'x'.join(str(v) for v in window)} "
            f"({'z, y, x' if len(window) == 3 else 'y, x'}) neighbourhood decides; flagged ambiguous when that "
            "evidence is below "
            f"{cfg['ambiguity_cost_difference_sigma2']:g} and the two PDFFs differ by more than "
            f"{cfg['ambiguity_min_pdff_difference_percent']:g} points"),
        "voxels_decided_by_neighbourhood": n_neigh,
        "units": {"pdff": PDFF_UNITS, "r2star": R2STAR_UNITS, "water": "signal units of the input (TE = 0)",
                  "fat": "signal units of the input (TE = 0)", "quality": "percent (RMS residual / mean signal)",
                  "echo_times": "ms", "field_strength": "T", "field_map": "Hz (method complex)"},
        "echo_times_ms": te.tolist(),
        "field_strength_t": b0,
        "fat_water_hz_main_peak": round(float(main_hz), 2),
        "fat_water_cycles_spanned": round(float(cycles), 3),
        "fat_model": fm_summary,
        "r2star_range_per_s": [float(cfg["r2star_min_per_s"]), float(cfg["r2star_max_per_s"])],
        "noise_floor": float(floor),
        "noise_sigma": sigma,
        "voxels_total": int(n_vox),
        "voxels_fitted": n_fit,
        "masked_voxels": int(n_vox - n_fit),
        "masked_reasons": reasons,
        "ambiguous_voxels": n_amb,
        "r2star_at_bound_voxels": n_bound,
        "flags": FLAG_LEGEND,
        "coordinate_system": "LPS",
        "grid": describe_grid(ref),
        "notes": notes,
        "warnings": warnings,
    }
    common = {"method": f"multi-echo {method} fit, multi-peak fat", "echo_times_ms": te.tolist(),
              "field_strength_t": b0, "fat_model_source": fm["source"], "masked_voxels": summary["masked_voxels"],
              "coordinate_system": "LPS"}
    metadata = {
        "pdff": {"quantity": "proton density fat fraction", "units": PDFF_UNITS, **common},
        "r2star": {"quantity": "R2*", "units": R2STAR_UNITS, **common},
        "water": {"quantity": "water signal at TE 0", "units": "signal units of the input", **common},
        "fat": {"quantity": "fat signal at TE 0", "units": "signal units of the input", **common},
        "quality": {"quantity": "RMS residual / mean signal", "units": "percent", **common},
        "mask": {"quantity": "fitted voxels (1) / masked (0)", "units": "1", **common},
        "flags": {"quantity": "flags", "units": "1", "legend": FLAG_LEGEND, **common},
        "field_map": {"quantity": "B0 field map (water off-resonance)", "units": "Hz", **common},
    }
    return PdffResult(
        pdff=to_image(pdff, ref), r2star=to_image(full(out["r2star"]), ref), water=to_image(full(out["water"]), ref),
        fat=to_image(full(out["fat"]), ref), quality=to_image(full(out["quality"]), ref),
        mask=to_image(mask_arr, ref, np.uint8), flags=to_image(flags, ref, np.uint8), summary=summary,
        metadata=metadata, field_map=to_image(full(out["field_map"]), ref) if "field_map" in out else None)
