"""The ADC estimators on the fitted voxels, in scaled units (b in 10^3 s/mm^2, ADC in 10^-3 mm^2/s, signal at
most 1): log-linear (closed form), weighted log-linear and damped Gauss-Newton on squared magnitudes, and R^2.

Every estimator works on all voxels at once, one b-value row at a time in place where it can (a whole volume per
temporary costs a short process more than the arithmetic).
"""

from __future__ import annotations

import numpy as np


def _lls(logs: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form log-linear fit: (ADC, ln S0) in the scaled units, for logs of shape (n_b, n_vox)."""
    x = b - b.mean()
    w = x / np.sum(x * x)
    # slope = w . ln S and ln S0 = mean(ln S) - slope * mean(b): both linear in ln S, so one (2, n_b) x (n_b, n_vox)
    # product in one pass. einsum's own loop, not BLAS (a matrix product starts OpenBLAS's worker threads, whose
    # waiting spins cost a whole process more CPU than the product itself)
    coef = np.stack([w, 1.0 / b.size - b.mean() * w]).astype(np.float32)
    slope, ln_s0 = np.einsum("ij,jk->ik", coef, logs)
    return np.negative(slope, out=slope), ln_s0


def _wls(logs: np.ndarray, b: np.ndarray, adc: np.ndarray, ln_s0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted log-linear fit, weights = squared signal predicted by the unweighted fit."""
    bb = b.astype(np.float32)[:, None]
    # weights are scale-free (largest 1 per voxel): subtracting the largest exponent before exp gives the same
    # weights and cannot overflow, however steep the first fit's curve
    w = 2.0 * (ln_s0[None, :] - bb * adc[None, :])
    w -= w.max(axis=0, keepdims=True)
    np.exp(w, out=w)
    sw = w.sum(axis=0)
    sx = (w * bb).sum(axis=0)
    sy = (w * logs).sum(axis=0)
    sxx = (w * bb * bb).sum(axis=0)
    sxy = (w * bb * logs).sum(axis=0)
    det = sw * sxx - sx * sx
    ok = det > np.float32(1e-12) * np.maximum(sw * sxx, np.float32(1e-30))
    det = np.where(ok, det, np.float32(1.0))
    slope = np.where(ok, (sw * sxy - sx * sy) / det, -adc)
    icpt = np.where(ok, (sy - slope * sx) / np.maximum(sw, np.float32(1e-30)), ln_s0)
    return -slope, icpt


def _normal_sums(y: np.ndarray, b: np.ndarray, q0: np.ndarray, q1: np.ndarray, two_s2: float,
                 s2: float) -> tuple[np.ndarray, ...]:
    """Per-voxel weighted Gauss-Newton sums for f_k = S0^2 exp(-2 b_k ADC), one b-value at a time (1-D, in place).

    With J0 = df/dS0 = 2 S0 exp(-2 b_k ADC) and J1 = df/dADC = -b_k S0 J0, every entry of J^T W J and J^T W r is a
    b-moment of t_k = w_k J0_k^2 or u_k = w_k J0_k r_k, so only five accumulators are needed.
    Returns (A0, A1, A2, G0, G1) with A_m = sum b^m t, G_m = sum b^m u.
    """
    n = q0.size
    q0sq = q0 * q0
    acc = [np.zeros(n, np.float32) for _ in range(5)]
    e = np.empty(n, np.float32)
    f = np.empty(n, np.float32)
    w = np.empty(n, np.float32)
    r = np.empty(n, np.float32)
    t = np.empty(n, np.float32)
    for k in range(b.size):
        bk = np.float32(b[k])
        np.multiply(q1, np.float32(-2.0) * bk, out=e)
        np.exp(e, out=e)                      # e = exp(-2 b ADC)
        np.multiply(q0sq, e, out=f)           # model f_k
        np.add(f, s2, out=w)
        np.reciprocal(w, out=w)               # weight 1 / (S^2 + sigma^2)
        np.subtract(y[k], f, out=r)
        r -= two_s2                           # residual
        # with e = exp(-2 b ADC): J0 = 2 S0 e, so w J0^2 = 4 w f e and w J0 r = 2 S0 (w r e)
        np.multiply(w, f, out=t)
        t *= e
        t *= np.float32(4.0)
        acc[0] += t
        t *= bk
        acc[1] += t
        t *= bk
        acc[2] += t
        np.multiply(w, r, out=t)
        t *= e
        acc[3] += t
        t *= bk
        acc[4] += t
    acc[3] *= np.float32(2.0) * q0
    acc[4] *= np.float32(2.0) * q0
    return tuple(acc)


def _nlls(sig: np.ndarray, b: np.ndarray, s0: np.ndarray, adc: np.ndarray, sigma: float,
          iterations: int, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """Damped Gauss-Newton on squared magnitudes, M^2 ~ S0^2 exp(-2 b ADC) + 2 sigma^2, all voxels at once.

    Weights 1/(S^2 + sigma^2) follow the variance of M^2 (re-evaluated each iteration); a small Marquardt
    damping keeps the 2x2 systems regular. Converged voxels (relative step < 1e-3, far below the noise) leave the
    active set, so iterations get cheaper; an unsettled voxel whose weighted cost did not fall keeps its WLS
    estimate. ``sig`` is scaled so that signals are O(1); (S0, ADC) in the same scaled units.

    Absurd inputs cannot overflow the iteration: the ADC is clipped to its bounds before any exp, and a voxel whose
    sums or step are not finite stops iterating and counts as not converged (so it keeps its WLS estimate).
    """
    d_lo, d_hi = np.float32(-1.0), np.float32(10.0)  # scaled ADC bounds during the iterations
    s0 = np.abs(s0).astype(np.float32)
    adc = adc.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return _gauss_newton(sig, b, s0, adc, sigma, iterations, damping, d_lo, d_hi)


def _gauss_newton(sig: np.ndarray, b: np.ndarray, s0: np.ndarray, adc: np.ndarray, sigma: float, iterations: int,
                  damping: float, d_lo: np.float32, d_hi: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The iteration of :func:`_nlls` (called inside ``np.errstate``: non-finite values are handled explicitly)."""
    two_s2 = np.float32(2.0 * sigma * sigma)
    s2 = np.float32(sigma * sigma) + np.float32(1e-12)
    y = sig * sig
    p0 = np.where(np.isfinite(s0), s0, np.float32(0.0)).astype(np.float32)
    p1 = np.clip(np.where(np.isfinite(adc), adc, np.float32(0.0)), d_lo, d_hi).astype(np.float32)
    failed = np.zeros(p0.size, dtype=bool)   # sums or step not finite: left the iteration unconverged
    act = None
    ya = y
    one_l = np.float32(1.0 + damping)
    tol = np.float32(1e-3)
    for _ in range(iterations):
        q0 = p0 if act is None else p0[act]
        q1 = p1 if act is None else p1[act]
        a0, a1, a2, g0, g1 = _normal_sums(ya, b, q0, q1, two_s2, s2)
        # J^T W J = [[A0, -S0 A1], [-S0 A1, S0^2 A2]], J^T W r = [G0, -S0 G1]
        a = a0 * one_l
        c = (q0 * q0) * a2 * one_l
        bx = -q0 * a1
        h1 = -q0 * g1
        det = a * c - bx * bx
        det = np.where(np.abs(det) > np.float32(1e-30), det, np.float32(1e-30))
        d0 = (c * g0 - bx * h1) / det
        d1 = (a * h1 - bx * g0) / det
        broken = ~(np.isfinite(d0) & np.isfinite(d1) & np.isfinite(q0 + d0))
        if broken.any():     # keep the previous iterate; the voxel leaves the iteration as not converged
            d0[broken] = 0.0
            d1[broken] = 0.0
            failed[np.flatnonzero(broken) if act is None else act[broken]] = True
        n0 = np.abs(q0 + d0)
        n1 = np.clip(q1 + d1, d_lo, d_hi)
        if act is None:
            p0, p1 = n0, n1
        else:
            p0[act] = n0
            p1[act] = n1
        moving = ~broken & ((np.abs(d0) > tol * np.abs(q0)) | (np.abs(d1) > tol * (np.abs(q1) + np.float32(1e-3))))
        act = np.flatnonzero(moving) if act is None else act[moving]
        if act.size == 0:
            break
        ya = ya[:, moving]
    # Safety net where Gauss-Newton may have gone astray: voxels still moving, at a bound, or not finite keep the
    # WLS estimate unless they fit the data better (converged voxels solve the estimating equations).
    suspect = failed.copy()
    if act is not None:
        suspect[act] = True
    suspect |= (p1 <= d_lo) | (p1 >= d_hi) | ~np.isfinite(p0) | ~np.isfinite(p1)
    idx = np.flatnonzero(suspect)
    if idx.size:
        end_cost, start_cost = _fixed_weight_costs(y[:, idx], b, (p0[idx], p1[idx]), (s0[idx], adc[idx]),
                                                   two_s2, s2)
        back = idx[~(end_cost <= start_cost)]
        p0[back] = s0[back]
        p1[back] = adc[back]
    return p0, p1


def _fixed_weight_costs(y: np.ndarray, b: np.ndarray, end: tuple[np.ndarray, np.ndarray],
                        start: tuple[np.ndarray, np.ndarray], two_s2: np.float32,
                        s2: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Weighted squared residuals of the end and start parameters, both with the weights of the end point.

    The iteration solves the quasi-likelihood equations (weights re-evaluated, then held fixed), not a minimum
    of a cost whose weights move with the parameters, so the fair comparison holds the weights fixed.
    """
    bb = b.astype(np.float32)[:, None]
    f_end = (end[0] * end[0])[None, :] * np.exp(np.float32(-2.0) * bb * end[1][None, :])
    f_start = (start[0] * start[0])[None, :] * np.exp(np.float32(-2.0) * bb * start[1][None, :])
    w = 1.0 / (f_end + s2)
    with np.errstate(over="ignore", invalid="ignore"):
        return ((y - f_end - two_s2) ** 2 * w).sum(axis=0), ((y - f_start - two_s2) ** 2 * w).sum(axis=0)


def _r_squared(sig: np.ndarray, b_s: np.ndarray, s0_n: np.ndarray, adc_n: np.ndarray,
               drop: np.ndarray) -> np.ndarray:
    """R^2 of the fitted curve against the measured signal (signal domain, scaled units), in place per b."""
    ss_res = np.zeros_like(s0_n)
    d = np.empty_like(s0_n)
    for k in range(len(b_s)):  # in place, one b at a time
        np.multiply(adc_n, np.float32(b_s[k]), out=d)
        np.exp(d, out=d)
        d *= s0_n
        np.subtract(sig[k], d, out=d)
        d *= d
        ss_res += d
    mean = sig[0].copy()   # row by row in place (no strided reduction, no BLAS threads)
    for k in range(1, len(b_s)):
        mean += sig[k]
    mean *= np.float32(1.0 / len(b_s))
    ss_tot = np.zeros_like(s0_n)
    for k in range(len(b_s)):  # deviations first: no cancellation for nearly flat curves; in place
        np.subtract(sig[k], mean, out=d)
        d *= d
        ss_tot += d
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(ss_res, ss_tot, out=ss_res)   # becomes 1 - R^2 (inf/nan where the curve is flat)
    r2 = np.subtract(np.float32(1.0), ss_res, out=ss_res)
    r2[ss_tot <= 0] = 1.0
    np.minimum(r2, np.float32(1.0), out=r2)
    r2[~(r2 >= 0) | drop] = 0.0   # negative or NaN (comparison with NaN is False), and the dropped voxels
    return r2
