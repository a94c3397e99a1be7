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

import numpy as np


def _offsets(window: Sequence[int], shape: tuple[int, ...]) -> tuple[list[tuple[int, ...]], list[int]]:
    """Neighbour offsets of a centred (z,) y, x window (the centre excluded), and the half-widths per axis."""
    size = [max(1, min(int(w), n)) for w, n in zip(window, shape, strict=False)]
    size += [1] * (len(shape) - len(size))
    half = [s // 2 for s in size]
    grids = np.meshgrid(*[np.arange(-h, s - h) for h, s in zip(half, size, strict=True)], indexing="ij")
    offs = [tuple(int(g.flat[i]) for g in grids) for i in range(grids[0].size)]
    return [o for o in offs if any(o)], half


def fat_side_evidence(delta: np.ndarray, features: Sequence[np.ndarray], scales: Sequence[float],
                      window: Sequence[int], strong: float, fitted: np.ndarray, passes: int = 1) -> np.ndarray:
    """Evidence for the fat-side solution per voxel (grid shape; positive: fat side).

    ``delta``: chi-square difference (grid shape, 0 where not fitted); ``features``: per-voxel fingerprints of the
    solution pair (grid shape), compared in units of ``scales``; ``window``: (z,) y, x neighbourhood in voxels;
    voxels with ``|delta| >= strong`` keep their own evidence; ``fitted``: voxels that take part; ``passes``: the
    summed evidence is summed again this many times in all (each pass reaches one window further, along voxels of
    the same tissue only).
    """
    shape = delta.shape
    offs, half = _offsets(window, shape)
    out = delta.astype(np.float32)
    weak = np.flatnonzero((np.abs(delta) < strong) & fitted)
    if not offs or weak.size == 0:
        return out
    pad = [(h, h) for h in half]
    dp = np.pad(np.where(fitted, delta, 0.0).astype(np.float32), pad).reshape(-1)
    fp = [np.pad((f / s).astype(np.float32), pad).reshape(-1) for f, s in zip(features, scales, strict=True)]
    pshape = tuple(n + 2 * h for n, h in zip(shape, half, strict=True))
    strides = np.cumprod((1,) + pshape[::-1])[:-1][::-1]
    centre = np.ravel_multi_index(np.unravel_index(weak, shape), pshape, mode="raise") + int(
        np.dot(half, strides))
    own = [f[centre] for f in fp]
    flat = out.reshape(-1)
    neighbours, weights = [], []
    for off in offs:
        j = centre + int(np.dot(off, strides))
        d2 = np.zeros(weak.size, np.float32)
        for f, o in zip(fp, own, strict=True):
            diff = f[j] - o
            d2 += diff * diff
        keep = np.flatnonzero(d2 < 1.0)
        neighbours.append((keep, j[keep]))
        weights.append(np.float32(1.0) - d2[keep])
    for _ in range(max(1, int(passes))):
        acc = dp[centre].copy()
        for (keep, j), w in zip(neighbours, weights, strict=True):
            acc[keep] += w * dp[j]
        dp[centre] = acc
    flat[weak] = acc
    return out
