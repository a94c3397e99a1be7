"""Voxels without measurable DWI signal at high b: the slope cannot be measured there (no fit to the ADC ceiling).

Rician magnitudes with no signal: M^2 / sigma^2 is chi-square with 2 degrees of freedom, and a sum over K images
(or voxels) with 2K; the chi-square quantile for an even number of degrees of freedom has a closed-form CDF, so no
scipy.stats is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .defaults import defaults
from .noise import distinct_values


def chi2_quantile_even_dof(p: float, dof: int) -> float:
    """Quantile of the chi-square distribution with an even number of degrees of freedom (closed-form CDF:
    P(X > x) = exp(-x/2) sum_{j < dof/2} (x/2)^j / j!), by bisection; no scipy.stats needed."""
    k = dof // 2

    def upper_tail(x: float) -> float:
        term, total = 1.0, 1.0
        for j in range(1, k):
            term *= (x / 2.0) / j
            total += term
        return float(np.exp(-x / 2.0) * total)

    lo, hi = 0.0, 10.0 * dof + 100.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if upper_tail(mid) > 1.0 - p else (lo, mid)
    return 0.5 * (lo + hi)


def high_b_at_floor(stack: Sequence[np.ndarray], sel_b: np.ndarray, sigma: float | None, shape: tuple[int, ...],
                     valid: np.ndarray, cfg: dict[str, Any]) -> np.ndarray | None:
    """Voxels whose signal at every b >= ``high_b_floor_min_b_s_mm2`` is consistent with noise alone.

    With no signal, sum_k M_k^2 / sigma^2 over K magnitude images is chi-square with 2K degrees of freedom
    (Rician with S = 0). A voxel is at the floor when that sum is below its ``high_b_floor_probability`` quantile
    both for the voxel alone and pooled over its neighbourhood (the background test's, ``noise_mask``): the pooled
    test keeps weak but real tissue (a cyst at 2 sigma at b = 800 adds up over its neighbours), the voxel's own
    test keeps a small bright structure in a noisy neighbourhood. Such a voxel has no measurable slope and would
    be fitted to the ADC ceiling. None when the rule does not apply (no sigma, or no b-values on both sides of the
    limit).
    """
    b_min = float(cfg["high_b_floor_min_b_s_mm2"])
    high = np.flatnonzero(sel_b >= b_min)
    if sigma is None or sigma <= 0 or high.size == 0 or high.size == sel_b.size:
        return None
    p = float(cfg["high_b_floor_probability"])
    energy = np.square(stack[high[0]])                   # in place from here: one pass per high b
    tmp = np.empty_like(energy)
    for k in high[1:]:
        np.square(stack[k], out=tmp)
        energy += tmp
    own_limit = np.float32(chi2_quantile_even_dof(p, 2 * high.size) * sigma * sigma)
    cand = np.flatnonzero(np.less_equal(energy, own_limit) & valid)
    out = np.zeros(energy.size, dtype=bool)
    if cand.size == 0:
        return out
    # the pooled sums only where the voxel alone is at the floor (usually few voxels): gather the neighbours
    size = tuple(int(v) for v in defaults("noise_mask")["neighbourhood_voxels"])[-len(shape):]
    coords = np.unravel_index(cand, shape)
    pooled = np.zeros(cand.size, dtype=np.float64)
    count = np.zeros(cand.size, dtype=np.int64)
    for off in np.ndindex(*size):
        nb = [c + o - s // 2 for c, o, s in zip(coords, off, size, strict=True)]
        inside = np.ones(cand.size, dtype=bool)
        for c, n in zip(nb, shape, strict=True):
            inside &= (c >= 0) & (c < n)
        flat = np.ravel_multi_index([np.clip(c, 0, n - 1) for c, n in zip(nb, shape, strict=True)], shape)
        e = energy[flat].astype(np.float64)
        pooled += np.where(inside & np.isfinite(e), e, np.where(inside, np.inf, 0.0))
        count += inside
    limit = np.zeros(cand.size, dtype=np.float64)
    for n in distinct_values(count):
        limit[count == n] = chi2_quantile_even_dof(p, 2 * high.size * int(n)) * sigma * sigma
    out[cand[pooled <= limit]] = True
    return out
