"""Fat-water choice: which of a voxel's two solutions (below / above 50 %) to report, with spatial consistency.

Each voxel has a water-side and a fat-side solution and their chi-square difference
``delta = (cost_water - cost_fat) / sigma^2`` (positive: the data prefer fat). At SNR 30-50 one voxel's delta is
often too weak to decide (the two magnitude solutions fit almost equally well), but tissue is locally homogeneous:
neighbours *of the same tissue* see the same pair of solutions, and their summed evidence decides.

The neighbours of another tissue must not vote: at the edge of a 20 % region next to an 80 % region, the 80 %
voxels' strong fat evidence says nothing about the 20 % voxel. The pair of solutions is a fingerprint of the
tissue (PDFF and R2* of both solutions), so each neighbour's delta is weighted by how close its pair is to the
voxel's own pair, ``w = max(0, 1 - d^2)`` with ``d^2`` the squared differences of the two PDFFs and the two R2*s
in units of their similarity scales (a bilateral filter on the evidence). A voxel whose own evidence is strong keeps
it, so boundaries stay sharp.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_KEEP_WEIGHTS_MAX = 1 << 22   # float32 values (16 MiB): pair weights kept between passes up to this size


def _half_widths(window: Sequence[int], shape: tuple[int, ...]) -> list[int]:
    """Half-widths per axis of a centred (z,) y, x window, clipped to the grid (an even size is centred by widening
    it to the next odd one)."""
    size = [max(1, min(int(w), n)) for w, n in zip(window, shape, strict=False)]
    size += [1] * (len(shape) - len(size))
    return [s // 2 for s in size]


def _half_offsets(half: Sequence[int]) -> list[tuple[int, ...]]:
    """One of each pair (o, -o) of the window's neighbour offsets: a neighbour's weight is symmetric, so each pair is
    computed once and serves both voxels."""
    grids = np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij")
    offs = [tuple(int(g.flat[i]) for g in grids) for i in range(grids[0].size)]
    return [o for o in offs if o > tuple(0 for _ in o)]


def _pair_views(o: tuple[int, ...], shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices (at p, at p + o) of all positions p of a grid of ``shape`` for which both p and p + o lie inside."""
    lo = tuple(slice(max(0, -d), n - max(0, d)) for d, n in zip(o, shape, strict=True))
    hi = tuple(slice(max(0, d), n - max(0, -d)) for d, n in zip(o, shape, strict=True))
    return lo, hi


def _similarity(fp: Sequence[np.ndarray], lo: tuple[slice, ...], hi: tuple[slice, ...], buf: np.ndarray,
                tmp: np.ndarray) -> np.ndarray:
    """Weights ``max(0, 1 - d^2)`` of the voxel pairs (p, p + o) into ``buf`` (float32, in place)."""
    buf.fill(1.0)
    for f in fp:
        np.subtract(f[hi], f[lo], out=tmp)
        tmp *= tmp
        buf -= tmp
    return np.maximum(buf, 0.0, out=buf)


def fat_side_evidence(delta: np.ndarray, features: Sequence[np.ndarray], scales: Sequence[float],
                      window: Sequence[int], strong: float, fitted: np.ndarray, passes: int = 1,
                      workers: int = 1) -> np.ndarray:
    """Evidence for the fat-side solution per voxel (grid shape; positive: fat side).

    ``delta``: chi-square difference (grid shape, 0 where not fitted); ``features``: per-voxel fingerprints of the
    solution pair (grid shape), compared in units of ``scales``; ``window``: (z,) y, x neighbourhood in voxels;
    voxels with ``|delta| >= strong`` keep their own evidence; ``fitted``: voxels that take part; ``passes``: the
    summed evidence is summed again this many times in all (each pass reaches one window further, along voxels of
    the same tissue only); ``workers``: threads for independent slices (numpy releases the GIL in its loops).

    Computed on the whole box around the fitted voxels with shifted views (float32, no gathers): for each pair of
    opposite offsets, the pair weight once, added into both voxels' sums.
    """
    shape = delta.shape
    half = _half_widths(window, shape)
    if len(shape) == 3 and half[0] == 0 and shape[0] > 1:
        # slices do not interact: one at a time keeps the working arrays in the processor's cache
        def one(k: int) -> np.ndarray:
            return fat_side_evidence(delta[k:k + 1], [f[k:k + 1] for f in features], scales, window, strong,
                                     fitted[k:k + 1], passes)

        if workers <= 1:
            return np.concatenate([one(k) for k in range(shape[0])])
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return np.concatenate(list(pool.map(one, range(shape[0]))))
    out = delta.astype(np.float32)
    weak = (np.abs(delta) < strong) & fitted
    offs = _half_offsets(half)
    if not offs or not weak.any():
        return out
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(fitted))
    pad = [(h, h) for h in half]
    dp = np.pad(np.where(fitted[box], delta[box], 0.0).astype(np.float32), pad)
    fp = [np.pad((f[box] / s).astype(np.float32), pad) for f, s in zip(features, scales, strict=True)]
    weak_p = np.pad(weak[box], pad)
    acc = np.empty_like(dp)
    keep = len(offs) * dp.size <= _KEEP_WEIGHTS_MAX     # the next pass reuses the weights when they are small
    kept: dict[tuple[int, ...], np.ndarray] = {}
    for _ in range(max(1, int(passes))):
        acc[...] = dp
        for o in offs:
            lo, hi = _pair_views(o, dp.shape)
            tmp = np.empty(acc[lo].shape, np.float32)
            w = kept.get(o)
            if w is None:
                w = _similarity(fp, lo, hi, np.empty_like(tmp), tmp)
                if keep:
                    kept[o] = w
            acc[lo] += np.multiply(w, dp[hi], out=tmp)
            acc[hi] += np.multiply(w, dp[lo], out=tmp)
        np.copyto(dp, acc, where=weak_p)
    inner = tuple(slice(h, d - h) for h, d in zip(half, dp.shape, strict=True))
    region = out[box]
    np.copyto(region, dp[inner], where=weak[box])
    return out
