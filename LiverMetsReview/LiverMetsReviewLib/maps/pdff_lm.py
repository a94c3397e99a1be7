"""Bounded Levenberg-Marquardt of the magnitude PDFF model on (W, F, R), all voxels of a chunk at once.

Model ``|S_n| = |W + F c_n| exp(-R TE_n)`` (see :mod:`.pdff_starts`, whose starts it refines). Per-voxel damping,
accept/reject, converged voxels leave the active set, in float32: at any SNR a scanner delivers, the noise is far
above float32's rounding (fits of almost noise-free data are finished in float64, :func:`polish`).

Times in ms, rates in 1/ms inside this module; signals scaled so that a voxel's largest echo is 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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


def polish(y: np.ndarray, cols: np.ndarray, p: np.ndarray, cost: np.ndarray, te: np.ndarray, a: np.ndarray,
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

