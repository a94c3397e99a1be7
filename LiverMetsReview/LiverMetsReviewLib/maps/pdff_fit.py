"""The per-voxel numerics of the multi-echo PDFF/R2* fit: both fat-water solutions of every voxel, all voxels at once.

Magnitude model, one R2* for water and fat, multi-peak fat phasor ``c_n = sum_p a_p exp(i 2 pi f_p TE_n)``:
``|S_n| = |W + F c_n| exp(-R TE_n)``. From magnitudes, (W, F) and roughly (F, W) explain the data almost equally
well (the fat-water ambiguity), so both sides of 50 % are kept; the caller chooses between them
(:mod:`.pdff_choice`). Three steps, one module each:

- :mod:`.pdff_starts`: the best PDFF on each side of 50 % by variable projection (the starts);
- :mod:`.pdff_lm`: each start refined by a bounded Levenberg-Marquardt on (W, F, R), float32 with a float64 polish;
- :mod:`.pdff_complex`: with complex data, both solutions refined with a field map and a phase.

This module joins the first two (:func:`fit_sides`: per side, the best refinement) and re-exports the names the
callers import from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .pdff_complex import complex_model, complex_sides
from .pdff_lm import levenberg_marquardt, polish
from .pdff_starts import StartGrid, block_starts, side_starts, start_grid

__all__ = ["StartGrid", "complex_model", "complex_sides", "ff_of", "fit_sides", "levenberg_marquardt", "side_starts",
           "start_grid"]


def ff_of(p: np.ndarray) -> np.ndarray:
    """PDFF in percent of parameters (W, F, ...) (0 where W + F is 0)."""
    tot = p[0] + p[1]
    return np.where(tot > 0, p[1] / np.where(tot > 0, tot, 1.0), 0.0) * 100.0


def fit_sides(y: np.ndarray, te: np.ndarray, c: np.ndarray, grid: StartGrid, r_lo: float, r_hi: float,
              cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both fat-water solutions of every column of ``y`` (scaled magnitudes, float32 or float64): (water-side
    params, cost, fat-side params, cost), float64.

    Every start of :func:`.pdff_starts.side_starts` is refined (float32 model, :func:`.pdff_lm.polish` where that
    is not enough); a side's solution is the lowest-residual refinement that ended on that side of 50 % (a
    refinement may cross over). A side that no refinement ended on has none: cost inf and the other side's
    parameters.
    """
    a, b = np.abs(c) ** 2, c.real
    n = y.shape[1]
    y32 = y.astype(np.float32, copy=False)
    runs = block_starts(y32, grid, a, b, float(cfg["second_start_cost_margin"]), int(cfg["start_block_voxels"]))
    vv = np.concatenate([v for _, v in runs])
    p_run, c_run = levenberg_marquardt(np.take(y32, vv, axis=1), np.concatenate([p0 for p0, _ in runs], axis=1), te,
                                       a, b, r_lo, r_hi, cfg)
    polish(y, vv, p_run, c_run, te, a, b, r_lo, r_hi, cfg)
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

