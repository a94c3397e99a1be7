"""The per-voxel numerics of the multi-echo PDFF/R2* fit: both fat-water solutions of every voxel, all voxels at once.

Magnitude model, one R2* for water and fat, multi-peak fat phasor ``c_n = sum_p a_p exp(i 2 pi f_p TE_n)``:

    |S_n| = |W + F c_n| exp(-R TE_n) = rho * m_n(ff, R),   m_n(ff, R) = |1 - ff + ff c_n| exp(-R TE_n)

For fixed (ff, R) the model is linear in the amplitude rho (variable projection): the least-squares rho is
``y . m / |m|^2`` and the residual ``|y|^2 - (y . u)^2`` with the unit curve ``u = m / |m|``. For fixed ff the
R2* that maximises the projection follows to first order in closed form (weighted log-linear slope, see
:func:`_profile`), so each side's PDFF profile costs two small products and one exponential per grid PDFF and echo,
and the best PDFF *on each side of 50 %* is the start of that side's solution. From magnitudes, (W, F) and
roughly (F, W) explain the data almost equally well (the fat-water ambiguity), so both sides are kept; the caller
chooses between them (:mod:`.pdff_choice`). Each start is refined by a bounded Levenberg-Marquardt on (W, F, R)
over all voxels of a chunk at once (per-voxel damping, accept/reject, converged voxels leave the active set), in
float32: at any SNR a scanner delivers, the noise is far above float32's rounding (fits of almost noise-free data
are finished in float64).

Complex data add a field map psi and one phase phi per voxel: both magnitude solutions are refined on
S_n = (W + F c_n) exp(-R TE_n) exp(i (2 pi psi TE_n + phi)).

Times in ms, rates in 1/ms, psi in kHz inside this module; signals scaled so that a voxel's largest echo is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StartGrid:
    """The variable-projection search grid: the PDFF values of both sides (water ff < 0.5, then fat ff > 0.5;
    ``n_water`` of them on the water side) and the magnitudes ``|1 - ff + ff c_n|`` of the mixture at every echo
    (float32 (n_ff, n_echo)), with their logarithms; the echo times (ms) and the R2* bounds (1/ms)."""

    ffs: np.ndarray
    n_water: int
    mags: np.ndarray
    logs: np.ndarray
    te: np.ndarray
    r_lo: float
    r_hi: float


def start_grid(te: np.ndarray, c: np.ndarray, cfg: dict[str, Any]) -> StartGrid:
    """The PDFF grid of ``pdff_defaults.json`` and its mixture magnitudes. 50 % belongs to neither side (a start
    there sits on the ridge between the two solutions); the grid is finer near 50 %, where the magnitude cost has
    the most structure (the two species nearly cancel at the opposed-phase echoes). R2* needs no grid: for a given
    PDFF it follows in closed form (:func:`_profile`)."""
    ffs = np.asarray(cfg["start_grid_ff_percent"], dtype=np.float64) / 100.0
    water, fat = ffs[ffs < 0.5 - 1e-9], ffs[ffs > 0.5 + 1e-9]
    both = np.concatenate([np.sort(water), np.sort(fat)])
    mags = np.abs((1.0 - both)[:, None] + both[:, None] * c[None, :]).astype(np.float32)
    return StartGrid(both, int(water.size), mags, np.log(np.maximum(mags, np.float32(1e-6))),
                     np.asarray(te, dtype=np.float64),  # type: ignore[arg-type]
                     float(cfg["r2star_min_per_s"]) / 1000.0, float(cfg["r2star_max_per_s"]) / 1000.0)


def _profile(y32: np.ndarray, grid: StartGrid) -> tuple[np.ndarray, np.ndarray]:
    """For every grid PDFF (both sides): the best R2* and its projection ``y . u`` (the PDFF profile), (n_ff, n)
    each, float32.

    For a fixed PDFF the model is ``rho |m0_n| exp(-R t_n)``, so ``log y_n - log |m0_n|`` is linear in t with
    slope -R. Its least squares with weights ``y_n^2`` is the Gauss-Newton linearisation of the magnitude
    least squares (a residual d in the log domain is d / y in signal), so the weighted log-linear slope is the
    least-squares R2* of that PDFF to first order in the noise, in closed form: two (n_ff x n_echo) products per
    voxel instead of a search over an R2* grid. The projection is then evaluated exactly at that R2* (a curve of
    the model, so the profile never overstates how well a PDFF fits); Levenberg-Marquardt removes the remaining
    second-order difference.
    """
    t = grid.te.astype(np.float32)
    w = y32 * y32                                             # weights y_n^2 and their moments
    wt = w * t[:, None]
    logy = np.log(np.maximum(y32, np.float32(1e-6)))
    a0 = w.sum(axis=0) + np.float32(1e-30)
    a1 = wt.sum(axis=0)
    var = np.maximum(np.einsum("en,en->n", wt, np.broadcast_to(t[:, None], y32.shape)) - a1 * a1 / a0,
                     np.float32(1e-30))
    # slope of z_n = log y_n - log|m0_n| on t: (a1/a0 sum w z - sum w t z) / var = (k - sum_n log|m0_n| u_n) / var
    # with u_n = w_n (a1/a0 - t_n): one (n_ff x n_echo) product per voxel
    mean_t = a1 / a0
    u = w * (mean_t[None, :] - t[:, None])
    k = np.einsum("en,en->n", u, logy)
    u /= var
    r = np.matmul(grid.logs, u)                              # BLAS: (n_ff x n_echo) @ (n_echo x n)
    np.subtract(k / var, r, out=r)
    np.clip(r, grid.r_lo, grid.r_hi, out=r)
    num, den = _projections(y32, r, t, grid.mags)
    return num / np.sqrt(np.maximum(den, np.float32(1e-30), out=den), out=den), r


def _projections(y32: np.ndarray, r: np.ndarray, t: np.ndarray, mags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_n y_n m_n`` and ``sum_n m_n^2`` of the grid curves m_n = |m0_n| exp(-R t_n), (n_ff, n) each.

    For evenly spaced echoes t_n = t_0 + n dt, exp(-R t_n) = exp(-R t_0) s^n with s = exp(-R dt): both sums are
    polynomials in s, summed by Horner's rule (one exponential in all when t_0 is a multiple of dt, no decay array)."""
    dt = np.diff(t)
    j = float(t[0] / dt[0]) if dt.size else 0.0
    if not dt.size or np.any(np.abs(dt - dt[0]) > 1e-6 * dt[0]):
        return _projections_any(y32, r, t, mags)
    s = np.exp(np.multiply(r, -dt[0]))
    s2 = s * s
    num = np.multiply(mags[:, -1:], y32[-1])
    den = np.repeat(np.square(mags[:, -1:]), r.shape[1], axis=1)
    tmp = np.empty_like(r)
    for e in range(t.size - 2, -1, -1):
        num *= s
        num += np.multiply(mags[:, e:e + 1], y32[e], out=tmp)
        den *= s2
        den += np.square(mags[:, e:e + 1])
    if abs(j - round(j)) <= 1e-6 and 0 <= round(j) <= 4:       # exp(-R t_0) = s^j
        for _ in range(round(j)):
            num *= s
            den *= s2
    else:
        d0 = np.exp(np.multiply(r, -t[0], out=tmp), out=tmp)
        num *= d0
        den *= np.square(d0, out=d0)
    return num, den


def _projections_any(y32: np.ndarray, r: np.ndarray, t: np.ndarray, mags: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_projections` for any echo times: one exponential per echo."""
    num = np.zeros_like(r)
    den = np.zeros_like(r)
    m, tmp, decay = np.empty_like(r), np.empty_like(r), np.empty_like(r)
    for e in range(t.size):
        np.exp(np.multiply(r, -t[e], out=decay), out=decay)      # exp(-R TE_e)
        np.multiply(decay, mags[:, e:e + 1], out=m)
        den += np.multiply(m, m, out=tmp)
        m *= y32[e]
        num += m
    return num, den


def _parabola(vm: np.ndarray, v0: np.ndarray, vp: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Vertex offset (grid steps) of the parabola through (-1, vm), (0, v0), (+1, vp) where ``inner`` and it opens
    downwards (|offset| <= 0.5 at a grid maximum); elsewhere 0."""
    curv = 2.0 * v0 - vm - vp
    ok = inner & (curv > 0)
    return np.where(ok, 0.5 * (vp - vm) / np.where(ok, curv, 1.0), 0.0)


_NOT_A_PEAK = np.float32(1e30)   # subtracted from profile values that are no local maximum (|y| <= sqrt(n_echo))


def _first_argmax(values: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Row index of the first maximum ``top`` in every column of a (k, n) array, branch-free (``np.argmax(axis=0)``
    transposes and loops per column: ~10x slower on short columns)."""
    rank = np.arange(values.shape[0], 0, -1, dtype=np.uint8 if values.shape[0] < 256 else np.int32)[:, None]
    return values.shape[0] - np.multiply(values == top, rank).max(axis=0).astype(np.intp)


def _top_two_peaks(prof: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two largest local maxima over PDFF of a (n_ff, n) profile (values far below 1e29): ((index, value), (index,
    value)); value -inf where there is no second one (ties: the lower PDFF). Arithmetic masks, no branches: the
    peak pattern differs from voxel to voxel."""
    cols = np.arange(prof.shape[1])
    peaks = prof.copy()
    peaks[:-1] -= _NOT_A_PEAK * (prof[:-1] <= prof[1:])      # a peak is above its upper neighbour
    peaks[1:] -= _NOT_A_PEAK * (prof[1:] < prof[:-1])        # and not below its lower one
    v1 = peaks.max(axis=0)
    i1 = _first_argmax(peaks, v1)
    peaks[i1, cols] = -_NOT_A_PEAK * 4
    v2 = peaks.max(axis=0)
    i2 = _first_argmax(peaks, v2)
    return (i1, v1), (i2, np.where(v2 > -_NOT_A_PEAK / 2, v2, -np.inf))


def _refined_start(y: np.ndarray, prof: np.ndarray, r_at: np.ndarray, fi: np.ndarray, cols: np.ndarray,
                   edges: tuple[np.ndarray, np.ndarray], ffs: np.ndarray, te: np.ndarray, a: np.ndarray,
                   b: np.ndarray) -> np.ndarray:
    """(W, F, R) ((3, len(cols)), in y's precision) of the voxels ``cols`` at profile maximum ``fi`` (rows of
    ``prof``), its PDFF refined by a parabola through the neighbouring PDFFs of the same side (``edges``: the first
    and last row of each entry's side) and the amplitude the least-squares one of that curve, rho = y . m / |m|^2
    (|1 - ff + ff c_n|^2 = (1 - ff)^2 + ff^2 |c_n|^2 + 2 ff (1 - ff) Re c_n)."""
    n_ff, n = prof.shape
    lo, hi = fi > edges[0], fi < edges[1]
    at = fi * n + cols                                   # flat positions: np.take is much faster than prof[fi, cols]
    flat = prof.reshape(-1)
    v0, vm, vp = np.take(flat, at), np.take(flat, at - n * lo), np.take(flat, at + n * hi)
    ff = np.interp(fi + _parabola(vm, v0, vp, lo & hi), np.arange(n_ff), ffs).astype(y.dtype)
    r = np.take(r_at.reshape(-1), at)
    wf = 1 - ff
    m = np.sqrt(wf * wf + (ff * ff) * a.astype(y.dtype)[:, None] + (2 * ff * wf) * b.astype(y.dtype)[:, None])
    m *= np.exp(te.astype(y.dtype)[:, None] * -r)
    yc = y if cols.size == y.shape[1] else np.take(y, cols, axis=1)
    rho = np.maximum(np.einsum("en,en->n", yc, m), 0) / np.maximum(np.einsum("en,en->n", m, m), np.float32(1e-30))
    return np.stack([rho * wf, rho * ff, r])


def side_starts(y32: np.ndarray, grid: StartGrid, a: np.ndarray, b: np.ndarray, margin: float
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Starts of both sides (water, then fat): a list of (params (3, k), the k voxels that get it).

    The first start of a side is the maximum of its PDFF profile (:func:`_profile`), refined between grid points.
    At clinical echo spacings the magnitude cost can have two minima on one side (e.g. 52 % and 59 % at 1.5 T) and
    a start in the shallower basin stays there, so where the profile has a second local maximum whose cost
    ``|y|^2 - (y . u)^2`` is within ``margin`` x ``|y|^2`` of the first, it is a second start. All starts are
    refined in one call (fewer, larger numpy operations).
    """
    n = y32.shape[1]
    prof, r_at = _profile(y32, grid)
    energy = np.einsum("en,en->n", y32, y32).astype(np.float64)
    every = np.arange(n)
    rows, cols, lows, highs = [], [], [], []
    for first, last in ((0, grid.n_water - 1), (grid.n_water, grid.ffs.size - 1)):
        (i1, v1), (i2, v2) = _top_two_peaks(prof[first:last + 1])
        v1, v2 = v1.astype(np.float64), v2.astype(np.float64)
        need2 = np.flatnonzero(np.isfinite(v2) & (v1 * v1 - v2 * v2 <= margin * energy))
        for fi, vox in ((i1, every), (i2[need2], need2)):
            rows.append(fi + first)
            cols.append(vox)
            lows.append(np.full(vox.size, first))
            highs.append(np.full(vox.size, last))
    p = _refined_start(y32, prof, r_at, np.concatenate(rows), np.concatenate(cols),
                       (np.concatenate(lows), np.concatenate(highs)), grid.ffs, grid.te, a, b)
    bounds = np.cumsum([0] + [v.size for v in cols])
    return [(p[:, i:j], v) for i, j, v in zip(bounds[:-1], bounds[1:], cols, strict=True)]


def _curve(p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: type
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parts of the magnitude model of p = (W, F, R [1/ms]) (3, n) in ``dtype``: (|W + F c_n|, exp(-R t_n),
    W + F b_n, F a_n + W b_n), the last two the halves of d|W + F c|^2 / dW and / dF; a = |c|^2, b = Re c."""
    w, f, r = (v.astype(dtype, copy=False) for v in p)
    e = np.exp(te.astype(dtype)[:, None] * -r)
    wb = w + f * b.astype(dtype)[:, None]
    fa = f * a.astype(dtype)[:, None] + w * b.astype(dtype)[:, None]
    q = w * wb + f * fa
    return np.sqrt(np.maximum(q, 0, out=q), out=q), e, wb, fa


_MIXTURE_FLOOR = np.float32(1e-12)


def _evaluate(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Cost (residual sum of squares) and the normal equations of the magnitude model at p = (W, F, R), every
    column, in one pass and in the precision of ``y``: (cost (m,), rows h00, h01, h02, h11, h12, h22 of J^T J and
    g0, g1, g2 of J^T r (9, m))."""
    m, e, wb, fa = _curve(p, te, a, b, y.dtype.type)
    model = m * e
    # d|W + F c|/dW is singular where the two cancel; a floor far below any signal (the largest echo is 1) keeps
    # the Jacobian's squares inside float32's range
    floor = _MIXTURE_FLOOR if y.dtype == np.float32 else 1e-150
    inv = np.divide(e, np.maximum(m, floor, out=m), out=e)
    jw, jf, jr = np.multiply(wb, inv, out=wb), np.multiply(fa, inv, out=fa), model * (-te.astype(y.dtype))[:, None]
    res = np.subtract(y, model, out=model)
    pairs = ((jw, jw), (jw, jf), (jw, jr), (jf, jf), (jf, jr), (jr, jr), (jw, res), (jf, res), (jr, res))
    hg = np.empty((9, y.shape[1]), dtype=y.dtype)
    for k, (u, v) in enumerate(pairs):
        np.einsum("en,en->n", u, v, out=hg[k])
    return np.einsum("en,en->n", res, res), hg


def _cost(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cost (residual sum of squares) alone of the magnitude model at p = (W, F, R), every column, in the precision
    of ``y``: |W + F c_n|^2 = W^2 + 2 W F Re c_n + F^2 |c_n|^2 from three numbers per column, no Jacobian."""
    dt = y.dtype.type
    w, f, r = (v.astype(dt, copy=False) for v in p)
    q = np.multiply(b.astype(dt)[:, None], (2 * w) * f)
    q += np.multiply(a.astype(dt)[:, None], f * f)
    q += w * w
    model = np.sqrt(np.maximum(q, 0, out=q), out=q)
    model *= np.exp(te.astype(dt)[:, None] * -r)
    res = np.subtract(y, model, out=model)
    return np.einsum("en,en->n", res, res)


def _solve3(h: list[np.ndarray], g: list[np.ndarray]) -> list[np.ndarray]:
    """Solve symmetric positive definite 3x3 systems H d = g for every column (LDL^T; an LM step, whose rounding
    the accept/reject test absorbs); h = (h00, h01, h02, h11, h12, h22)."""
    h00, h01, h02, h11, h12, h22 = h
    tiny = np.finfo(h00.dtype).tiny
    d0 = np.maximum(h00, tiny)
    l10, l20 = h01 / d0, h02 / d0
    d1 = np.maximum(h11 - l10 * h01, tiny)
    u12 = h12 - l20 * h01
    l21 = u12 / d1
    d2 = np.maximum(h22 - l20 * h02 - l21 * u12, tiny)
    z1 = g[1] - l10 * g[0]
    x2 = (g[2] - l20 * g[0] - l21 * z1) / d2
    x1 = z1 / d1 - l21 * x2
    x0 = g[0] / d0 - l10 * x1 - l20 * x2
    return [x0, x1, x2]


def _propose(p: np.ndarray, hg: np.ndarray, lam: np.ndarray, r_lo: float, r_hi: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The damped, bounded Gauss-Newton step of every column: (new params, the step taken, the decrease of the cost
    it promises, d.g: the linearised model's decrease 2 d.g - d.H d is d.g + lam d.D d for the damped step, so d.g
    understates it by the damping's small share)."""
    h, g = list(hg[:6]), list(hg[6:])
    scale = np.float32(1e-12) * (h[0] + h[3] + h[5]) + np.finfo(hg.dtype).tiny
    damp = 1 + lam
    hs = [h[0] * damp + scale, h[1], h[2], h[3] * damp + scale, h[4], h[5] * damp + scale]
    gs = list(g)
    # a parameter at its bound whose gradient points outwards stays there: drop it from this step's system
    # (projected Gauss-Newton crawls along a bound otherwise; pure water, pure fat and R2* 0 are common)
    held = [(p[0] <= 0.0) & (g[0] < 0), (p[1] <= 0.0) & (g[1] < 0),
            ((p[2] <= r_lo) & (g[2] < 0)) | ((p[2] >= r_hi) & (g[2] > 0))]
    for k, (i_diag, offs) in enumerate(((0, (1, 2)), (3, (1, 4)), (5, (2, 4)))):
        if held[k].any():
            gs[k] = np.where(held[k], 0.0, gs[k])
            hs[i_diag] = np.where(held[k], 1.0, hs[i_diag])
            for o in offs:
                hs[o] = np.where(held[k], 0.0, hs[o])
    d = _solve3(hs, gs)
    new = np.empty_like(p)
    np.maximum(np.add(p[0], d[0], out=new[0]), 0.0, out=new[0])
    np.maximum(np.add(p[1], d[1], out=new[1]), 0.0, out=new[1])
    np.clip(np.add(p[2], d[2], out=new[2]), r_lo, r_hi, out=new[2])
    step = new - p                                      # the step actually taken (bounds clip it)
    return new, step, step[0] * g[0] + step[1] * g[1] + step[2] * g[2]


def levenberg_marquardt(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray,
                        r_lo: float, r_hi: float, cfg: dict[str, Any], iterations: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Bounded LM (W, F >= 0; R in [r_lo, r_hi]) on all columns of y at once; returns (params float64, cost).

    The model, its cost and its normal equations are evaluated in one pass, in the precision of ``y`` (float32 for
    speed; float64 where the last digits matter); the 3x3 systems are solved in float64. A column stops when the
    step it would take next is not worth taking: it promises to lower the cost by at most ``lm_stop_chi2_gain``
    times the residual variance per degree of freedom (cost / (n_echo - 3)) - a decrease that small means the step
    moves the parameters by at most sqrt(lm_stop_chi2_gain) of their noise standard deviation. That needs no new
    model evaluation (the normal equations at the current parameters are at hand). A first step that promises at
    most ``lm_one_step_max_chi2_gain`` variances is the column's last (:func:`_small_steps`): it costs one full
    evaluation and one of the cost alone. A step that moves the parameters by less than ``relative_step_tolerance`` is
    taken and is the column's last (converged to rounding). The columns still moving
    continue, compacted into contiguous arrays, up to ``iterations`` (default from ``cfg``). Noise-free data have no
    residual and iterate to the step tolerance.
    """
    # a wild proposal (data unlike the model) may overflow float32: its cost is then not finite and it is rejected
    with np.errstate(over="ignore", invalid="ignore"):
        return _lm_loop(y, p, te, a, b, r_lo, r_hi, cfg, iterations)


def _lm_loop(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray, r_lo: float, r_hi: float,
             cfg: dict[str, Any], iterations: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The iterations of :func:`levenberg_marquardt`."""
    p_out = np.asarray(p, dtype=y.dtype).copy()
    p_out[2] = np.clip(p_out[2], r_lo, r_hi)
    cost_out, hg = _evaluate(y, p_out, te, a, b)
    tol = float(cfg["relative_step_tolerance"])
    gain_per_var = float(cfg["lm_stop_chi2_gain"]) / max(y.shape[0] - 3, 1)
    ids, ya, pa, ca = np.arange(y.shape[1]), y, p_out.copy(), cost_out.copy()
    la = np.full(y.shape[1], float(cfg["initial_damping"]), dtype=y.dtype)
    last = np.zeros(y.shape[1], dtype=bool)       # took a step below the tolerance: converged to rounding
    small_per_var = float(cfg["lm_one_step_max_chi2_gain"]) / max(y.shape[0] - 3, 1)
    for it in range(int(cfg["iterations"]) if iterations is None else int(iterations)):
        new, step, gain = _propose(pa, hg, la, r_lo, r_hi)
        go = (gain > gain_per_var * ca) & (ca > 1e-28) & (la <= 1e10) & ~last
        if it == 0 and small_per_var > 0:
            go &= ~_small_steps(ya, pa, ca, new, go & (gain <= small_per_var * ca), te, a, b)
        if not go.all():
            done, keep = np.flatnonzero(~go), np.flatnonzero(go)
            p_out[:, ids[done]], cost_out[ids[done]] = np.take(pa, done, axis=1), ca[done]
            ids, ya, pa, ca, hg, la, new, step = (ids[keep], *(np.take(v, keep, axis=v.ndim - 1)
                                                                for v in (ya, pa, ca, hg, la, new, step)))
        if ids.size == 0:
            break
        # relative to the amplitude W + F: a tolerance of 1e-4 is 0.01 PDFF points; R (1/ms) enters as R2* / 100 in
        # 1/s, so the same tolerance is 0.01 1/s. Such a step is still taken, and is the last.
        np.abs(step, out=step)
        last = np.maximum(np.maximum(step[0], step[1]) / (np.abs(pa[0]) + np.abs(pa[1]) + 1e-30), step[2] * 10.0) < tol
        c_new, hg_new = _evaluate(ya, new, te, a, b)
        ok = np.isfinite(c_new) & (c_new < ca)
        np.copyto(pa, new, where=ok)
        np.copyto(ca, c_new, where=ok)
        np.copyto(hg, hg_new, where=ok)
        # a rejected step keeps the column with more damping: the next, shorter step may succeed
        la = np.where(ok, np.maximum(la * np.float32(0.3), np.float32(1e-12)), la * np.float32(10.0))
    p_out[:, ids], cost_out[ids] = pa, ca
    return p_out.astype(np.float64), cost_out.astype(np.float64)


def _small_steps(y: np.ndarray, p: np.ndarray, cost: np.ndarray, new: np.ndarray, small: np.ndarray,
                 te: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Take the first step of the columns ``small`` (their step promises at most ``lm_one_step_max_chi2_gain``
    residual variances) as their last: from that close to the minimum the model is linear enough that one
    Gauss-Newton step lands on it, so only the new cost is needed, not the normal equations for another step.
    Accepted steps are written into ``p`` and ``cost`` (in place); returns which columns finished (a step that does
    not lower the cost is left to the ordinary iterations)."""
    sel = np.flatnonzero(small)
    done = np.zeros(small.shape, dtype=bool)
    if sel.size == 0:
        return done
    c_new = _cost(np.take(y, sel, axis=1), np.take(new, sel, axis=1), te, a, b)
    ok = np.isfinite(c_new) & (c_new < np.take(cost, sel))
    fin = sel[ok]
    p[:, fin], cost[fin] = np.take(new, fin, axis=1), c_new[ok]
    done[fin] = True
    return done


def _polish(y: np.ndarray, cols: np.ndarray, p: np.ndarray, cost: np.ndarray, te: np.ndarray, a: np.ndarray,
            b: np.ndarray, r_lo: float, r_hi: float, cfg: dict[str, Any]) -> None:
    """Float64 refinement, in place, of the fits (columns ``cols`` of ``y``) whose float32 residual is near
    float32's rounding (almost noise-free data): there float32 cannot resolve digits that noisy data never need.
    Without noise there is no gain to compare a step with, so these iterate to a finer step tolerance (a flat
    valley, e.g. a one-peak fat model at 50 %, converges slowly)."""
    energy = np.take(np.einsum("en,en->n", y, y), cols)
    few = np.flatnonzero(cost <= float(cfg["lm_float64_below_relative_cost"]) * energy)
    if few.size:
        fine = {**cfg, "lm_stop_chi2_gain": 0.0, "lm_one_step_max_chi2_gain": 0.0,
                "relative_step_tolerance": float(cfg["lm_float64_step_tolerance"])}
        yc = np.take(y, cols[few], axis=1).astype(np.float64)
        p[:, few], cost[few] = levenberg_marquardt(yc, p[:, few], te, a, b, r_lo, r_hi, fine,
                                                   int(cfg["lm_float64_iterations"]))


def ff_of(p: np.ndarray) -> np.ndarray:
    """PDFF in percent of parameters (W, F, ...) (0 where W + F is 0)."""
    tot = p[0] + p[1]
    return np.where(tot > 0, p[1] / np.where(tot > 0, tot, 1.0), 0.0) * 100.0


def _block_starts(y32: np.ndarray, grid: StartGrid, a: np.ndarray, b: np.ndarray, margin: float, block: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`side_starts` of blocks of ``block`` columns, laid end to end: the PDFF profile's (n_ff x block) arrays
    stay in the processor's cache, while Levenberg-Marquardt runs on all columns at once (its later iterations
    carry few columns, and a numpy call costs the same for few columns as for many)."""
    n = y32.shape[1]
    if n <= block:
        return side_starts(y32, grid, a, b, margin)
    parts = [side_starts(y32[:, s:s + block], grid, a, b, margin) for s in range(0, n, block)]
    offsets = range(0, n, block)
    return [(np.concatenate([part[k][0] for part in parts], axis=1),
             np.concatenate([part[k][1] + s for part, s in zip(parts, offsets, strict=True)]))
            for k in range(len(parts[0]))]


def fit_sides(y: np.ndarray, te: np.ndarray, c: np.ndarray, grid: StartGrid, r_lo: float, r_hi: float,
              cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both fat-water solutions of every column of ``y`` (scaled magnitudes, float32 or float64): (water-side
    params, cost, fat-side params, cost), float64.

    Every start of :func:`side_starts` is refined (float32 model, :func:`_polish` where that is not enough); a
    side's solution is the lowest-residual refinement that ended on that side of 50 % (a refinement may cross over).
    A side that no refinement ended on has none: cost inf and the other side's parameters.
    """
    a, b = np.abs(c) ** 2, c.real
    n = y.shape[1]
    y32 = y.astype(np.float32, copy=False)
    runs = _block_starts(y32, grid, a, b, float(cfg["second_start_cost_margin"]), int(cfg["start_block_voxels"]))
    vv = np.concatenate([v for _, v in runs])
    p_run, c_run = levenberg_marquardt(np.take(y32, vv, axis=1), np.concatenate([p0 for p0, _ in runs], axis=1), te,
                                       a, b, r_lo, r_hi, cfg)
    _polish(y, vv, p_run, c_run, te, a, b, r_lo, r_hi, cfg)
    return _best_per_side(runs, p_run, c_run, n)


def _best_per_side(runs: list[tuple[np.ndarray, np.ndarray]], p_run: np.ndarray, c_run: np.ndarray, n: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per side of 50 %, the lowest-cost refinement that ended on it (``runs``' voxel lists, their refined params
    and costs laid end to end); a side no refinement ended on takes the other side's solution, cost inf."""
    fat = p_run[1] > p_run[0]                                # PDFF > 50 %: the side each refinement ended on
    ends = np.cumsum([v.size for _, v in runs])
    sol = {}
    for side in (False, True):
        c_side = np.where(fat == side, c_run, np.inf)
        pb, cb = np.zeros((3, n)), np.full(n, np.inf)
        for (_, v), end in zip(runs, ends, strict=True):
            p, c = p_run[:, end - v.size:end], c_side[end - v.size:end]
            if v.size == n:                                  # a start of every voxel (v is 0..n-1): masked copies
                better = c < cb
                np.copyto(cb, c, where=better)
                np.copyto(pb, p, where=better)
            else:
                better = np.flatnonzero(c < cb[v])
                pb[:, v[better]], cb[v[better]] = p[:, better], c[better]
        sol[side] = (pb, cb)
    (pw, cw), (pf, cf) = sol[False], sol[True]
    pw = np.where(np.isfinite(cw), pw, pf)
    pf = np.where(np.isfinite(cf), pf, pw)
    return pw, cw, pf, cf


# --- complex data --------------------------------------------------------------------------------------------------

def complex_model(p: np.ndarray, te: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The complex signal of parameters p = (W, F, R, psi, phi) (scaled units, t in ms, R in 1/ms, psi in kHz)."""
    w, f, r, psi, phi = p
    return (w + f * c[:, None]) * np.exp(-te[:, None] * r + 1j * (2.0 * np.pi * te[:, None] * psi + phi))


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
    for _ in range(int(cfg["complex_iterations"])):
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


def complex_sides(yc: np.ndarray, pw: np.ndarray, pf: np.ndarray, te: np.ndarray, c: np.ndarray, r_lo: float,
                  r_hi: float, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both magnitude solutions refined on the complex data: (water-side params, cost, fat-side params, cost)."""
    n = yc.shape[1]
    y2 = np.concatenate([yc, yc], axis=1)
    start = _complex_start(y2, np.concatenate([pw, pf], axis=1), te, c)
    p, cost = _complex_lm(y2, start, te, c, r_lo, r_hi, cfg)
    return p[:, :n], cost[:n], p[:, n:], cost[n:]
