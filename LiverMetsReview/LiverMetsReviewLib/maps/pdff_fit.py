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
over all voxels of a chunk at once (per-voxel damping, accept/reject, converged voxels leave the active set).

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
    """The variable-projection search grid: per side (water ff < 0.5, fat ff > 0.5) its PDFF values and the
    magnitudes ``|1 - ff + ff c_n|`` of the mixture at every echo (float32 (n_ff, n_echo)), with their logarithms;
    the echo times (ms) and the R2* bounds (1/ms)."""

    sides: tuple[np.ndarray, np.ndarray]
    mags: tuple[np.ndarray, np.ndarray]
    logs: tuple[np.ndarray, np.ndarray]
    te: np.ndarray
    r_lo: float
    r_hi: float


def start_grid(te: np.ndarray, c: np.ndarray, cfg: dict[str, Any]) -> StartGrid:
    """The PDFF grid of ``pdff_defaults.json`` and its mixture magnitudes. 50 % belongs to neither side (a start
    there sits on the ridge between the two solutions); the grid is finer near 50 %, where the magnitude cost has
    the most structure (the two species nearly cancel at the opposed-phase echoes). R2* needs no grid: for a given
    PDFF it follows in closed form (:func:`_profile`)."""
    ffs = np.asarray(cfg["start_grid_ff_percent"], dtype=np.float64) / 100.0
    sides = (ffs[ffs < 0.5 - 1e-9], ffs[ffs > 0.5 + 1e-9])
    mags = tuple(np.abs((1.0 - f)[:, None] + f[:, None] * c[None, :]).astype(np.float32) for f in sides)
    logs = tuple(np.log(np.maximum(m, np.float32(1e-6))) for m in mags)
    return StartGrid(sides, mags, logs, np.asarray(te, dtype=np.float64),  # type: ignore[arg-type]
                     float(cfg["r2star_min_per_s"]) / 1000.0, float(cfg["r2star_max_per_s"]) / 1000.0)


class _LogMoments:
    """Per-voxel weighted moments of the log-magnitudes, shared by both sides' profiles: weights ``w_n = y_n^2``,
    sums of w, w t, w t^2, w log y, w t log y (float32)."""

    def __init__(self, y32: np.ndarray, te: np.ndarray) -> None:
        t = te.astype(np.float32)[:, None]
        self.w = y32 * y32
        self.wt = self.w * t
        logy = np.log(np.maximum(y32, np.float32(1e-6)))
        self.a0 = self.w.sum(axis=0) + np.float32(1e-30)
        self.a1 = self.wt.sum(axis=0)
        self.b0 = np.einsum("en,en->n", self.w, logy)
        self.b1 = np.einsum("en,en->n", self.wt, logy)
        self.var = np.maximum(np.einsum("en,en->n", self.wt, np.broadcast_to(t, y32.shape)) - self.a1 * self.a1
                              / self.a0, np.float32(1e-30))


def _profile(y32: np.ndarray, mom: _LogMoments, mag: np.ndarray, log_mag: np.ndarray, grid: StartGrid
             ) -> tuple[np.ndarray, np.ndarray]:
    """For every PDFF of one side: the best R2* and its projection ``y . u`` (the PDFF profile), (n_ff, n) each.

    For a fixed PDFF the model is ``rho |m0_n| exp(-R t_n)``, so ``log y_n - log |m0_n|`` is linear in t with
    slope -R. Its least squares with weights ``y_n^2`` is the Gauss-Newton linearisation of the magnitude
    least squares (a residual d in the log domain is d / y in signal), so the weighted log-linear slope is the
    least-squares R2* of that PDFF to first order in the noise, in closed form: two (n_ff x n_echo) products per
    voxel instead of a search over an R2* grid. The projection is then evaluated exactly at that R2* (a curve of
    the model, so the profile never overstates how well a PDFF fits); Levenberg-Marquardt removes the remaining
    second-order difference.
    """
    swz = mom.b0[None, :] - np.einsum("fe,en->fn", log_mag, mom.w)
    swtz = mom.b1[None, :] - np.einsum("fe,en->fn", log_mag, mom.wt)
    r = np.clip((mom.a1 * swz / mom.a0 - swtz) / mom.var, grid.r_lo, grid.r_hi).astype(np.float32)
    num = np.zeros_like(r)
    den = np.zeros_like(r)
    for e, t in enumerate(grid.te.astype(np.float32)):
        m = np.exp(r * -t)
        m *= mag[:, e:e + 1]
        den += m * m
        m *= y32[e]
        num += m
    return num / np.sqrt(np.maximum(den, np.float32(1e-30))), r


def _parabola(vm: np.ndarray, v0: np.ndarray, vp: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertex of the parabola through (-1, vm), (0, v0), (+1, vp) where ``inner`` and it opens downwards:
    (offset in grid steps, |offset| <= 0.5 at a grid maximum; value). Elsewhere (0, v0)."""
    curv = 2.0 * v0 - vm - vp
    ok = inner & (curv > 0)
    shift = np.where(ok, 0.5 * (vp - vm) / np.where(ok, curv, 1.0), 0.0)
    return shift, v0 + 0.5 * (vp - vm) * shift * 0.5


def _top_two_peaks(prof: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two largest local maxima over PDFF of a (n_ff, n) profile: ((index, value), (index, value)); value
    -inf where there is no second one."""
    n_ff, n = prof.shape
    ninf = np.full((1, n), -np.inf, dtype=prof.dtype)
    lower = np.concatenate([ninf, prof[:-1]])
    upper = np.concatenate([prof[1:], ninf])
    peaks = np.where((prof >= lower) & (prof > upper), prof, -np.inf)
    i1 = np.zeros(n, dtype=np.intp)
    v1 = peaks[0].copy()
    i2 = np.zeros(n, dtype=np.intp)
    v2 = np.full(n, -np.inf, dtype=prof.dtype)
    for k in range(1, n_ff):
        pk = peaks[k]
        top = pk > v1
        second = ~top & (pk > v2)
        i2 = np.where(top, i1, np.where(second, k, i2))
        v2 = np.where(top, v1, np.where(second, pk, v2))
        i1 = np.where(top, k, i1)
        v1 = np.where(top, pk, v1)
    return (i1, v1), (i2, v2)


def _refined_start(y: np.ndarray, prof: np.ndarray, r_at: np.ndarray, fi: np.ndarray, ffs: np.ndarray,
                   te: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(W, F, R) at profile maximum ``fi``, its PDFF refined by a parabola through the neighbouring PDFFs and the
    amplitude the least-squares one of that curve, rho = y . u (u unit-norm: |W + F c| = rho at TE 0 / |m|)."""
    n_ff, n = prof.shape
    cols = np.arange(n)
    v0 = prof[fi, cols]
    vm = prof[np.maximum(fi - 1, 0), cols]
    vp = prof[np.minimum(fi + 1, n_ff - 1), cols]
    shift, _ = _parabola(vm, v0, vp, (fi > 0) & (fi < n_ff - 1))
    ff = np.interp(fi + shift, np.arange(n_ff), ffs)
    r = r_at[fi, cols].astype(np.float64)
    m = np.abs((1.0 - ff)[None, :] + ff[None, :] * c[:, None]) * np.exp(-te[:, None] * r[None, :])
    rho = np.maximum(np.einsum("en,en->n", y, m), 0.0) / np.maximum(np.einsum("en,en->n", m, m), 1e-300)
    return np.stack([rho * (1.0 - ff), rho * ff, r])


def side_starts(y: np.ndarray, grid: StartGrid, te: np.ndarray, c: np.ndarray,
                margin: float) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Starts per side (water, then fat), each a list of (params (3, n), voxels that need it).

    The first start of a side is the maximum of its PDFF profile (:func:`_profile`), refined between grid points.
    At clinical echo spacings the magnitude cost can have two minima on one side (e.g. 52 % and 59 % at 1.5 T) and
    a start in the shallower basin stays there, so where the profile has a second local maximum whose cost
    ``|y|^2 - (y . u)^2`` is within ``margin`` x ``|y|^2`` of the first, it is a second start.
    """
    n = y.shape[1]
    y32 = y.astype(np.float32)
    mom = _LogMoments(y32, te)
    energy = np.einsum("en,en->n", y, y)
    starts = []
    for ffs, mag, log_mag in zip(grid.sides, grid.mags, grid.logs, strict=True):
        prof, r_at = _profile(y32, mom, mag, log_mag, grid)
        (i1, v1), (i2, v2) = _top_two_peaks(prof)
        v1, v2 = v1.astype(np.float64), v2.astype(np.float64)
        need2 = np.isfinite(v2) & (v1 * v1 - v2 * v2 <= margin * energy)
        starts.append([(_refined_start(y, prof, r_at, i1, ffs, te, c), np.ones(n, dtype=bool)),
                       (_refined_start(y, prof, r_at, np.where(need2, i2, i1), ffs, te, c), need2)])
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


def _normal_equations(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """J^T J (h00, h01, h02, h11, h12, h22) and J^T r of the magnitude model at p = (W, F, R), every column."""
    w, f, r = p
    e = np.exp(-te[:, None] * r)
    wb = w + f * b[:, None]                     # d|.|^2/dW / 2
    fa = f * a[:, None] + w * b[:, None]        # d|.|^2/dF / 2
    m = np.sqrt(np.maximum(w * wb + f * fa, 1e-300))
    inv = e / np.maximum(m, 1e-150)
    model = m * e
    jw, jf, jr = wb * inv, fa * inv, -te[:, None] * model
    res = y - model

    def dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.einsum("en,en->n", u, v)

    return ([dot(jw, jw), dot(jw, jf), dot(jw, jr), dot(jf, jf), dot(jf, jr), dot(jr, jr)],
            [dot(jw, res), dot(jf, res), dot(jr, res)])


def _lm_step(ya: np.ndarray, pa: np.ndarray, la: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray,
             r_lo: float, r_hi: float) -> np.ndarray:
    """One damped Gauss-Newton proposal (bounded) for the given columns: the new parameters."""
    h, g = _normal_equations(ya, pa, te, a, b)
    scale = 1e-12 * (h[0] + h[3] + h[5]) + 1e-300
    for i in (0, 3, 5):
        h[i] = h[i] * (1.0 + la) + scale
    # a parameter at its bound whose gradient points outwards stays there: drop it from this step's system
    # (projected Gauss-Newton crawls along a bound otherwise; pure water, pure fat and R2* 0 are common)
    held = [(pa[0] <= 0.0) & (g[0] < 0), (pa[1] <= 0.0) & (g[1] < 0),
            ((pa[2] <= r_lo) & (g[2] < 0)) | ((pa[2] >= r_hi) & (g[2] > 0))]
    for k, (i_diag, offs) in enumerate(((0, (1, 2)), (3, (1, 4)), (5, (2, 4)))):
        if held[k].any():
            g[k] = np.where(held[k], 0.0, g[k])
            h[i_diag] = np.where(held[k], 1.0, h[i_diag])
            for o in offs:
                h[o] = np.where(held[k], 0.0, h[o])
    d = _solve3(h, g)
    return np.stack([np.maximum(pa[0] + d[0], 0.0), np.maximum(pa[1] + d[1], 0.0),
                     np.clip(pa[2] + d[2], r_lo, r_hi)])


def _cost(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    model, _ = _model(p, te, a, b, with_jac=False)
    d = y - model
    return np.einsum("en,en->n", d, d)


def _lm_iteration(y: np.ndarray, p: np.ndarray, cost: np.ndarray, lam: np.ndarray, te: np.ndarray, a: np.ndarray,
                  b: np.ndarray, r_lo: float, r_hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One accept/reject LM iteration on every column: (params, cost, damping, relative size of the proposed
    step; a tiny rejected step means the minimum is reached to rounding)."""
    new = _lm_step(y, p, lam, te, a, b, r_lo, r_hi)
    new_cost = _cost(y, new, te, a, b)
    ok = np.isfinite(new_cost) & (new_cost < cost)
    moved = np.abs(new - p)                           # the step actually taken (bounds clip it)
    # relative to the amplitude W + F: a tolerance of 1e-4 is 0.01 PDFF points; R (1/ms) enters as R2* / 100 in
    # 1/s, so the same tolerance is 0.01 1/s (converged far below the noise; the last step is of that size)
    amp = np.abs(p[0]) + np.abs(p[1]) + 1e-30
    step = np.maximum(np.maximum(moved[0], moved[1]) / amp, moved[2] * 10.0)
    p = np.where(ok, new, p)
    lam = np.where(ok, np.maximum(lam * 0.3, 1e-12), lam * 10.0)
    return p, np.where(ok, new_cost, cost), lam, step


def levenberg_marquardt(y: np.ndarray, p: np.ndarray, te: np.ndarray, a: np.ndarray, b: np.ndarray,
                        r_lo: float, r_hi: float, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bounded LM (W, F >= 0; R in [r_lo, r_hi]) on all columns of y at once; returns (params, cost).

    The first ``lm_iterations_all_columns`` run on every column without bookkeeping (contiguous arrays, cheap);
    only the columns still moving continue, as an active set, up to ``iterations`` in all. A column also stops when
    its last accepted step lowered the cost by at most ``lm_stop_chi2_gain`` times its residual variance per degree
    of freedom (cost / (n_echo - 3)): a gain ``d^T H d`` that small means the step moved the parameters by at most
    sqrt(lm_stop_chi2_gain) of their noise standard deviation, and Gauss-Newton from there converges quadratically,
    so further steps change nothing that the noise does not swamp. Noise-free data have no residual and iterate
    to the step tolerance.
    """
    p = p.copy()
    p[2] = np.clip(p[2], r_lo, r_hi)
    cost = _cost(y, p, te, a, b)
    lam = np.full(y.shape[1], float(cfg["initial_damping"]))
    tol = float(cfg["relative_step_tolerance"])
    gain_per_var = float(cfg["lm_stop_chi2_gain"]) / max(y.shape[0] - 3, 1)
    step = np.full(y.shape[1], np.inf)
    before = cost
    for _ in range(int(cfg["lm_iterations_all_columns"])):
        before = cost
        p, cost, lam, step = _lm_iteration(y, p, cost, lam, te, a, b, r_lo, r_hi)
    moving = (step >= tol) & (lam <= 1e10) & (cost > 1e-28) & (before - cost > gain_per_var * cost)
    act = np.flatnonzero(moving)
    for _ in range(int(cfg["iterations"]) - int(cfg["lm_iterations_all_columns"])):
        if act.size == 0:
            break
        ca0 = cost[act]
        pa, ca, la, st = _lm_iteration(y[:, act], p[:, act], ca0, lam[act], te, a, b, r_lo, r_hi)
        p[:, act], cost[act], lam[act] = pa, ca, la
        # a rejected step (no gain, damping raised) keeps the column: the next, more damped step may succeed
        act = act[(st >= tol) & (la <= 1e10) & (ca > 1e-28) & ((ca0 - ca > gain_per_var * ca) | (ca >= ca0))]
    return p, cost


def ff_of(p: np.ndarray) -> np.ndarray:
    """PDFF in percent of parameters (W, F, ...) (0 where W + F is 0)."""
    tot = p[0] + p[1]
    return np.where(tot > 0, p[1] / np.where(tot > 0, tot, 1.0), 0.0) * 100.0


def fit_sides(y: np.ndarray, te: np.ndarray, c: np.ndarray, grid: StartGrid, r_lo: float, r_hi: float,
              cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both fat-water solutions of every column of ``y`` (scaled magnitudes): (water-side params, cost,
    fat-side params, cost).

    Every start of :func:`side_starts` is refined; a side's solution is the lowest-residual refinement that ended on
    that side of 50 % (a refinement may cross over). A side that no refinement ended on has none: cost inf and the
    other side's parameters.
    """
    a, b = np.abs(c) ** 2, c.real
    n = y.shape[1]
    cols, params = [], []
    for side in side_starts(y, grid, te, c, float(cfg["second_start_cost_margin"])):
        for p0, need in side:
            v = np.flatnonzero(need)
            cols.append(v)
            params.append(p0[:, v])
    vv = np.concatenate(cols)
    p_run, c_run = levenberg_marquardt(y[:, vv], np.concatenate(params, axis=1), te, a, b, r_lo, r_hi, cfg)
    k = len(cols)
    ps = np.zeros((3, k, n))
    cs = np.full((k, n), np.inf)
    at = 0
    for j, v in enumerate(cols):
        ps[:, j, v] = p_run[:, at:at + v.size]
        cs[j, v] = c_run[at:at + v.size]
        at += v.size
    fat = ff_of(ps) > 50.0                                              # (k, n): the side each refinement ended on
    rows = np.arange(n)
    out = []
    for side in (~fat, fat):
        cc = np.where(side, cs, np.inf)
        i = np.argmin(cc, axis=0)
        out += [ps[:, i, rows], cc[i, rows]]
    pw, cw, pf, cf = out
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
