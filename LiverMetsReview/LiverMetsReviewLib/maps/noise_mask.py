"""Which voxels of a magnitude image hold signal, decided with a stated false-positive rate for pure noise.

Background of a magnitude image is Rayleigh distributed with the noise sigma: P(M > k sigma) = exp(-k^2 / 2), and
the sum of M^2 / sigma^2 over n independent background voxels is chi-square with 2n degrees of freedom. One
threshold on one voxel cannot both keep tissue at SNR 5 (needs k about 2.5) and reject noise at 1e-4 (needs
k about 4.3), so the decision pools a small neighbourhood, where tissue and noise separate widely:

* a voxel is kept when it alone exceeds ``k_single`` sigma (single-voxel rate ``false_positive_rate_single``), or
* when it exceeds ``tissue_threshold_sigmas`` sigma *and* its neighbourhood's sum of squares exceeds the chi-square
  quantile of rate ``false_positive_rate_pooled`` (edges of the volume: fewer neighbours, their own quantile);
* kept voxels in a connected group smaller than ``min_component_voxels`` are dropped (isolated speckle).

For a background voxel whose neighbourhood is all background, the rate of being kept is at most the sum of the two
rates (union bound). Background voxels touching tissue are decided by the tissue threshold alone (partial volume).
Settings and sources: the ``noise_mask`` section of ``resources/maps_defaults.json``.

numpy only at import time: chi-square quantiles of even degrees of freedom (every case here: 2 per magnitude) come
from the closed-form Poisson sum, and connected groups from a vectorized union-find, so a whole ``livermets``
process does not pay for importing ``scipy.stats`` (about a second) for a handful of quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import LiverMetsError
from .defaults import defaults
from .noise import distinct_values


@dataclass
class NoiseMask:
    """``keep`` (bool, the image's shape), the deciding rule per voxel and how many voxels each rule removed.

    ``stage`` (uint8): 0 not usable, 1 below the tissue threshold, 2 failed the neighbourhood test, 3 isolated
    group, 4 kept - so a caller can count the reasons inside its own region (``np.bincount(stage[region])``).
    """

    keep: np.ndarray
    stage: np.ndarray
    counts: dict[str, int]
    settings: dict[str, Any]


def k_for_rayleigh_rate(rate: float) -> float:
    """The k with P(Rayleigh > k sigma) = rate, i.e. sqrt(-2 ln rate)."""
    if not 0.0 < rate < 1.0:
        raise LiverMetsError(f"a false-positive rate must lie strictly between 0 and 1 (got {rate})")
    return float(np.sqrt(-2.0 * np.log(rate)))


def chi2_isf(rate: float, dof: int | np.ndarray) -> np.ndarray:
    """The x with P(chi-square(dof) > x) = rate (scipy.stats.chi2.isf), for each of ``dof`` (array or int).

    Even dof = 2n: P(chi2 > x) = exp(-x/2) sum_{j<n} (x/2)^j / j! (the Poisson sum, all terms positive, so accurate
    to rounding), inverted by bisection to machine precision. Odd dof fall back to ``scipy.special.chdtri``.
    """
    if not 0.0 < rate < 1.0:
        raise LiverMetsError(f"a false-positive rate must lie strictly between 0 and 1 (got {rate})")
    k = np.asarray(dof, dtype=np.int64)
    if np.any(k < 1):
        raise LiverMetsError(f"chi-square degrees of freedom must be positive (got {dof})")
    if np.any(k % 2):
        from scipy.special import chdtri  # odd degrees of freedom: not needed by the maps' own callers

        return np.asarray(chdtri(k.astype(np.float64), rate), dtype=np.float64)
    n = (k // 2).reshape(-1)
    j = np.arange(int(n.max()), dtype=np.float64)
    log_fact = np.array([math.lgamma(v + 1.0) for v in j])
    inside = j[None, :] < n[:, None]

    def survival(y: np.ndarray) -> np.ndarray:   # P(Poisson(y) < n) = P(chi2(2n) > 2y), y > 0
        terms = np.exp(j[None, :] * np.log(y)[:, None] - y[:, None] - log_fact[None, :])
        return np.where(inside, terms, 0.0).sum(axis=1)

    hi = n + 10.0 * np.sqrt(n) - math.log(rate) + 10.0      # above the quantile for any rate (checked below)
    while np.any(survival(hi) > rate):
        hi = np.where(survival(hi) > rate, 2.0 * hi, hi)
    lo = np.zeros_like(hi)
    for _ in range(1100):   # bisection; stops once every bracket is a few ulps wide (about 60 halvings)
        mid = 0.5 * (lo + hi)
        above = survival(mid) > rate
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        if np.all(hi - lo <= 4.0 * np.finfo(np.float64).eps * hi):
            break
    return (lo + hi).reshape(k.shape)  # 2 * y at the midpoint


def _edge_counts(n: int, size: int) -> np.ndarray:
    """How many of a centred window of ``size`` voxels fall inside an axis of length ``n``, per position."""
    half = size // 2
    pos = np.arange(n)
    return (np.minimum(pos + half, n - 1) - np.maximum(pos - half, 0) + 1).astype(np.int32)


def box_sum(values: np.ndarray, size: tuple[int, ...], *, consume: bool = False) -> np.ndarray:
    """Sum over a centred box of odd ``size`` per axis, zeros outside the volume (separable shifted adds: several
    times faster than a uniform filter, and exact in the sense that only voxels inside the volume count).

    Two buffers alternate between the axes, so a volume costs at most two new arrays; ``consume=True`` lets the
    function use ``values`` itself as one of them (the caller's array is then overwritten), one new array in all.
    """
    src, spare = values, (values if consume else None)
    for axis, s in enumerate(size):
        half = s // 2
        if half == 0:
            continue
        res = np.empty_like(src) if spare is None or spare is src else spare
        n = src.shape[axis]
        for d in range(1, min(half, n - 1) + 1):
            lo = [slice(None)] * src.ndim
            hi = [slice(None)] * src.ndim
            lo[axis], hi[axis] = slice(0, n - d), slice(d, None)
            if d == 1:   # res = src shifted plus src, written at once: no pass to copy src first
                np.add(src[tuple(hi)], src[tuple(lo)], out=res[tuple(hi)])
                first = [slice(None)] * src.ndim
                first[axis] = slice(0, 1)
                res[tuple(first)] = src[tuple(first)]
            else:
                res[tuple(hi)] += src[tuple(lo)]
            res[tuple(lo)] += src[tuple(hi)]
        if n == 1:
            np.copyto(res, src)
        spare = src if (src is not values or consume) else None
        src = res
    return src if src is not values or consume else values.copy()


def _pooled_pass(values: np.ndarray, sigma: float, size: tuple[int, ...], rate: float, dof: int) -> np.ndarray:
    """Neighbourhood sum of (M/sigma)^2 above the chi-square(dof n) quantile of ``rate`` (n: neighbours inside).

    The interior (full windows) is compared with one threshold; only the slabs along the volume's faces, where
    windows are cut, get per-position thresholds.
    """
    total = box_sum(np.square(values, dtype=np.float32), size, consume=True)
    s2 = float(sigma) * float(sigma)
    window = int(np.prod(size))
    quantiles = chi2_isf(rate, dof * np.arange(1, window + 1))    # one per possible neighbour count
    passed = total > np.float32(quantiles[window - 1] * s2)
    per_axis = [_edge_counts(n, s) for n, s in zip(values.shape, size, strict=True)]
    lut = {c: np.float32(quantiles[c - 1] * s2) for c in range(1, window + 1)}
    for axis, (n, s) in enumerate(zip(values.shape, size, strict=True)):
        half = min(s // 2, n)
        for sl in (slice(0, half), slice(max(n - half, half), n)):
            if sl.stop <= sl.start:
                continue
            region = [slice(None)] * values.ndim
            region[axis] = sl
            counts = np.ones((1,) * values.ndim, np.int32)
            for ax2 in range(values.ndim):
                shape = [1] * values.ndim
                c = per_axis[ax2][sl] if ax2 == axis else per_axis[ax2]
                shape[ax2] = c.size
                counts = counts * c.reshape(shape)
            table = np.zeros(window + 1, np.float32)
            for c in distinct_values(counts):
                table[int(c)] = lut[int(c)]
            passed[tuple(region)] = total[tuple(region)] > table[counts]
    return passed


_HALF_NEIGHBOURS = np.array([(dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                             if (dz, dy, dx) > (0, 0, 0)])  # 13 offsets: each 26-neighbour pair once


def _point_groups(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """26-connected group index of each of a sparse set of voxels (sorted flat indices), without scanning the
    volume: neighbour pairs are found by binary search among the points, groups by sparse graph components."""
    n = points.size
    coords = np.stack(np.unravel_index(points, shape))           # (3, n)
    rows, cols = [], []
    limits = np.asarray(shape)[:, None]
    for off in _HALF_NEIGHBOURS:
        nb = coords + off[:, None]
        inside = np.all((nb >= 0) & (nb < limits), axis=0)
        src = np.flatnonzero(inside)
        lin = np.ravel_multi_index(tuple(nb[:, inside]), shape)
        pos = np.minimum(np.searchsorted(points, lin), n - 1)
        hit = points[pos] == lin
        rows.append(src[hit])
        cols.append(pos[hit])
    return _components(n, np.concatenate(rows), np.concatenate(cols))


def _components(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Connected-component index (0..groups-1) of each of ``n`` nodes joined by the edges (rows[i], cols[i]).

    Vectorized union-find: each round hooks the larger root of every edge that joins two trees onto the smaller
    one, then jumps pointers until every node points at its root. Parents only ever decrease, so the forest stays
    acyclic, and every round merges at least one pair of trees.
    """
    parent = np.arange(n)
    r, c = rows, cols
    while r.size:
        pr, pc = parent[r], parent[c]
        cross = pr != pc
        if not cross.any():
            break
        r, c, pr, pc = r[cross], c[cross], pr[cross], pc[cross]   # edges within one tree stay so: drop them
        np.minimum.at(parent, np.maximum(pr, pc), np.minimum(pr, pc))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    return np.unique(parent, return_inverse=True)[1].reshape(-1)


def _drop_small_groups(keep: np.ndarray, min_voxels: int) -> np.ndarray:
    """Kept voxels in 26-connected groups smaller than ``min_voxels`` (bool).

    A voxel with at least ``min_voxels`` kept voxels in its 3x3x3 box is certainly in a large group (every box
    voxel touches it), and so is every group of the remaining voxels that touches such a voxel; only the remaining
    voxels (a sparse set at edges and in speckle) are grouped, as points.
    """
    cube = (3, 3, 3)
    certain = keep & (box_sum(keep.astype(np.uint8), cube, consume=True) >= min_voxels)
    rest = keep & ~certain
    points = np.flatnonzero(rest)
    drop = np.zeros(keep.shape, bool)
    if points.size == 0:
        return drop
    touches = (box_sum(certain.astype(np.uint8), cube, consume=True) > 0).reshape(-1)[points]
    if points.size * 50 < keep.size:   # sparse: group the points
        group = _point_groups(points, keep.shape)
    else:                              # dense: one labelling pass over the volume is cheaper
        from scipy import ndimage as ndi  # only for dense speckle: most volumes never get here

        labels = ndi.label(rest, structure=np.ones(cube, bool))[0]
        group = labels.reshape(-1)[points] - 1
    sizes = np.bincount(group)
    large = np.zeros(sizes.size, bool)
    large[group[touches]] = True
    small = (sizes < min_voxels) & ~large
    if small.any():
        drop.reshape(-1)[points[small[group]]] = True
    return drop


def noise_mask(values: np.ndarray, sigma: float, usable: np.ndarray | None = None,
               settings: dict[str, Any] | None = None, dof: int = 2) -> NoiseMask:
    """Voxels of ``values`` (magnitude, z,y,x) that hold signal above Rayleigh noise of ``sigma``.

    ``dof``: Gaussian noise components behind each value: 2 for one magnitude image (Rayleigh background), 4 for
    the root-sum-of-squares of two independent magnitudes (e.g. Dixon water and fat), and so on.

    ``usable`` (bool) marks voxels whose value can be trusted (finite, inside the grid); others count as zero and
    are never kept. The result's counts: ``below_tissue_threshold``, ``failed_neighbourhood_test``,
    ``isolated_component`` (each among usable voxels, exclusive). ``settings`` overrides the JSON section.
    """
    cfg = dict(defaults("noise_mask") if settings is None else settings)
    if not (np.isfinite(sigma) and sigma > 0):
        raise LiverMetsError(f"the noise sigma must be a positive number (got {sigma}); give it or leave it estimated")
    if int(dof) < 1:
        raise LiverMetsError(f"dof must be a positive number of noise components (got {dof})")
    size = tuple(int(s) for s in cfg["neighbourhood_voxels"])
    if len(size) != 3 or any(s < 1 or s % 2 == 0 for s in size):
        raise LiverMetsError(f"neighbourhood_voxels must be three odd sizes (z, y, x), got {list(size)}")
    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 2:
        v = v[None]
    use = None if usable is None else np.asarray(usable, bool).reshape(v.shape)
    if use is not None:
        v = np.where(use, v, np.float32(0.0))
    rate_single = float(cfg["false_positive_rate_single"])
    k_single = k_for_rayleigh_rate(rate_single) if dof == 2 else float(np.sqrt(chi2_isf(rate_single, int(dof))))
    k_tissue = float(cfg["tissue_threshold_sigmas"])
    strong = v > np.float32(k_single * sigma)
    above = v > np.float32(k_tissue * sigma)
    keep = above & _pooled_pass(v, sigma, size, float(cfg["false_positive_rate_pooled"]), int(dof))
    keep |= strong
    if use is not None:
        keep &= use
    above |= strong
    # stage: 1 below the tissue threshold, 2 failed the neighbourhood test, 4 kept (3 isolated, 0 unusable below)
    stage = above.astype(np.uint8)
    stage += np.uint8(1)
    stage += keep.view(np.uint8) * np.uint8(2)
    min_comp = int(cfg["min_component_voxels"])
    if min_comp > 1 and keep.any():
        drop = _drop_small_groups(keep, min_comp)
        keep &= ~drop
        stage -= drop.view(np.uint8)
    if use is not None:
        stage *= use.view(np.uint8)
    tally = _tally(stage)
    counts = {"below_tissue_threshold": int(tally[1]), "failed_neighbourhood_test": int(tally[2]),
              "isolated_component": int(tally[3])}
    used = {"sigma": float(sigma), "k_single": k_single, "k_tissue": k_tissue,
            "false_positive_rate_single": float(cfg["false_positive_rate_single"]),
            "false_positive_rate_pooled": float(cfg["false_positive_rate_pooled"]),
            "false_positive_rate_background": float(cfg["false_positive_rate_single"])
            + float(cfg["false_positive_rate_pooled"]),
            "neighbourhood_voxels": list(size), "min_component_voxels": min_comp, "noise_components": int(dof)}
    shape = np.shape(values)
    return NoiseMask(keep.reshape(shape), stage.reshape(shape), counts, used)


def _tally(stage: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """``np.bincount`` of the stage codes 0..5 (within ``region``), by one comparison per code: bincount would
    first widen every uint8 code to a 64-bit integer, a volume-sized copy."""
    counts = np.zeros(6, np.int64)
    for k in range(1, 6):
        hit = stage == k
        if region is not None:
            hit &= region
        counts[k] = np.count_nonzero(hit)
    counts[0] = stage.size - counts[1:].sum()   # as bincount of stage * region: outside counts as 0
    return counts


_REASONS = {1: "below_noise_floor", 2: "noise_like_neighbourhood", 3: "isolated_voxels", 5: "below_min_snr"}


@dataclass
class SignalDecision:
    """Which voxels hold signal (``keep``), the deciding stage per voxel (as :class:`NoiseMask`), the floor and
    sigma used and the rule (JSON-able)."""

    keep: np.ndarray
    stage: np.ndarray
    floor: float
    sigma: float | None
    rule: dict[str, Any]
    tally: np.ndarray | None = None  # bincount of ``stage`` over the whole image, when already known

    def reasons(self, region: np.ndarray | None = None) -> dict[str, int]:
        """Voxels removed per reason, among ``region`` (default: all usable voxels)."""
        if region is not None and not np.all(region):
            tally = _tally(self.stage, np.asarray(region, bool).reshape(self.stage.shape))
        elif self.tally is not None:
            tally = self.tally
        else:
            tally = _tally(self.stage)
        keys = [1] if self.rule.get("k_single") is None else [1, 2, 3]
        if self.rule.get("min_snr") is not None:
            keys.append(5)
        return {_REASONS[k]: int(tally[k]) for k in keys}


def decide_signal(values: np.ndarray, usable: np.ndarray, fraction_of_p99: float, *, noise_floor: float | None = None,
                  noise_sigma: float | None = None, sigma_values: np.ndarray | None = None, dof: int = 2,
                  min_background_voxels: int = 500, min_snr: float | None = None) -> SignalDecision:
    """The one signal/background decision every map uses.

    In order of precedence: a given ``noise_floor`` (values <= floor are background); the statistical test of
    :func:`noise_mask` when a noise sigma is given or can be estimated from the background (of ``sigma_values``,
    default ``values``; Rayleigh); otherwise ``fraction_of_p99`` of the 99th percentile. ``min_snr`` (with a known
    sigma): signal that is real but too weak for the map (e.g. the denominator of a ratio) is also masked, counted
    as ``below_min_snr``.
    """
    from .noise import noise_floor as estimate_noise_floor

    usable = np.asarray(usable, bool)
    everywhere = bool(usable.all())
    base = np.asarray(values, dtype=np.float32) if everywhere else np.where(usable, values, np.float32(0.0))
    if sigma_values is None:
        probe = base
    else:
        probe = sigma_values if everywhere else np.where(usable, sigma_values, np.float32(0.0))
    floor, sigma = estimate_noise_floor(probe, fraction_of_p99, min_background_voxels, noise_sigma)

    def simple(threshold: float, rule: dict[str, Any]) -> SignalDecision:
        keep = usable & (base > threshold)
        stage = np.where(keep, np.uint8(4), np.uint8(1))
        stage[~usable] = 0
        return SignalDecision(keep, stage, float(threshold), sigma, rule)

    if noise_floor is not None:
        if not np.isfinite(noise_floor) or noise_floor < 0:
            raise LiverMetsError(f"noise floor must be a finite number >= 0 (got {noise_floor})")
        return simple(float(noise_floor), {"rule": "given floor: signal <= floor is background"})
    if sigma is not None and sigma > 0:
        nm = noise_mask(base, sigma, usable=None if everywhere else usable, dof=dof)
        rule = {"rule": "chi-square test with a stated false-positive rate for pure noise: single voxel or "
                        "neighbourhood, isolated groups removed", **nm.settings}
        keep, stage = nm.keep, nm.stage
        if min_snr is not None:
            weak = keep & (base <= np.float32(float(min_snr) * sigma))
            keep = keep & ~weak
            stage[weak] = 5
            rule["min_snr"] = float(min_snr)
        tally = None
        if min_snr is None:
            tally = np.zeros(6, np.int64)
            for k, key in ((1, "below_tissue_threshold"), (2, "failed_neighbourhood_test"), (3, "isolated_component")):
                tally[k] = nm.counts[key]
        return SignalDecision(keep, stage, nm.settings["k_tissue"] * sigma, sigma, rule, tally)
    from .noise import no_background_reason

    return simple(floor, {"rule": f"noise sigma unknown ({no_background_reason(probe)}): instead, signal <= "
                                  f"{fraction_of_p99:g} x its 99th percentile is background"})
