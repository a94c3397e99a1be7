"""Starts of the multi-echo PDFF/R2* fit: for every voxel the best PDFF on each side of 50 %, by variable projection.

Magnitude model, one R2* for water and fat, multi-peak fat phasor ``c_n = sum_p a_p exp(i 2 pi f_p TE_n)``:

    |S_n| = |W + F c_n| exp(-R TE_n) = rho * m_n(ff, R),   m_n(ff, R) = |1 - ff + ff c_n| exp(-R TE_n)

For fixed (ff, R) the model is linear in the amplitude rho (variable projection): the least-squares rho is
``y . m / |m|^2`` and the residual ``|y|^2 - (y . u)^2`` with the unit curve ``u = m / |m|``. For fixed ff the
R2* that maximises the projection follows to first order in closed form (weighted log-linear slope, see
:func:`_profile`), so each side's PDFF profile costs two small products and one exponential per grid PDFF and echo,
and the best PDFF *on each side of 50 %* is the start of that side's solution (refined by :mod:`.pdff_lm`).

Times in ms, rates in 1/ms inside this module; signals scaled so that a voxel's largest echo is 1.
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


def block_starts(y32: np.ndarray, grid: StartGrid, a: np.ndarray, b: np.ndarray, margin: float, block: int
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

