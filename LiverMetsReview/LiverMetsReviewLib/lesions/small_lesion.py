"""A lesion of a few voxels: its outline from the partial-volume pattern, not from a threshold.

A voxel's signal is the average of what its box holds (the scanner integrates over the voxel and the slice),
so around a small lesion each voxel reads liver + contrast x (the share of the voxel the lesion covers). When
a lesion is no thicker than two voxels no voxel is pure lesion: the classifier's lesion centre is itself a
partial-volume value, and "half-way to it" takes in voxels a third covered (a 4 mm metastasis came out at five
or six voxels for the two it half covers). Here a ball (centre and radius, sub-voxel) is fitted to that
pattern on the channels sampled on the reference grid itself, the contrast of each channel solved in closed
form; the segment is then the voxels whose own signal reads at least half that contrast (connected to the ball's
centre) -- the same half-way rule as for any lesion, with the lesion's level taken from the fit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _sub_points(spacing_zyx: np.ndarray, n: int) -> np.ndarray:
    """Offsets (m, 3) in mm of n x n x n points spread evenly inside a voxel (centred on 0)."""
    t = (np.arange(n) + 0.5) / n - 0.5
    g = np.stack(np.meshgrid(t, t, t, indexing="ij"), axis=-1).reshape(-1, 3)
    return g * spacing_zyx


def _coverage(centres: np.ndarray, radii: np.ndarray, vox_mm: np.ndarray, sub: np.ndarray) -> np.ndarray:
    """Share of each voxel (n, 3 mm positions) inside each ball (m centres, m radii): (m, n)."""
    pts = (vox_mm[:, None, :] + sub[None, :, :]).astype(np.float32)   # (n, s, 3)
    d2 = ((pts[None] - centres.astype(np.float32)[:, None, None, :]) ** 2).sum(-1)   # (m, n, s)
    return (d2 <= (radii.astype(np.float32) ** 2)[:, None, None]).mean(axis=-1)


def _best(y: np.ndarray, cover: np.ndarray) -> tuple[int, float]:
    """Index of the coverage pattern that explains y (k channels, n voxels) best, each channel's contrast free."""
    ff = (cover ** 2).sum(axis=1)
    fy = cover @ y.T                                                    # (m, k)
    gain = np.where(ff > 0, (fy ** 2).sum(axis=1) / np.maximum(ff, 1e-12), -np.inf)
    i = int(np.argmax(gain))
    return i, float((y ** 2).sum() - gain[i])


def _best_ball(y: np.ndarray, centres: np.ndarray, radii: np.ndarray, vox_mm: np.ndarray,
               sub: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The ball (centre, radius) of every centre x radius whose coverage pattern explains y best, and its residual.
    Distances are computed once per centre and compared with every radius (memory: centres x voxels x points)."""
    pts = (vox_mm[:, None, :] + sub[None, :, :]).astype(np.float32)
    d2 = ((pts[None] - centres.astype(np.float32)[:, None, None, :]) ** 2).sum(-1)          # (m, n, s)
    best = (centres[0], float(radii[0]), np.inf)
    for r in radii:
        i, res = _best(y, (d2 <= np.float32(r * r)).mean(axis=-1))
        if res < best[2]:
            best = (centres[i], float(r), res)
    return best


def _own_fraction(y: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Each voxel's lesion fraction read from its own signal (y: k channels x n voxels, liver 0): the projection
    of its values onto the lesion's contrast, that contrast being the fitted ball's amplitude per channel.

    The ball sets the contrast (no voxel of so small a lesion is pure, so no voxel shows it); which voxels the lesion
    covers at least half is then read from each voxel, as the classifier does for any lesion, not from the ball's
    outline: a small lesion need not be a ball. On drawn 4-5 mm metastases (digitised on a 1.5 mm grid) the best
    ball put 0.3-0.5 of its coverage on voxels the lesion covers a quarter (Dice 0.67), while their own signal read
    a quarter to a third of the contrast (8101, 8111 of validate_lesions.py)."""
    contrast = (y @ cover) / max(float(cover @ cover), 1e-12)
    return (contrast @ y) / max(float(contrast @ contrast), 1e-12)


def fit_ball(z: np.ndarray, region: np.ndarray, allowed: np.ndarray, spacing_zyx: np.ndarray,
             sharp: np.ndarray, subsamples: int, max_radius_mm: float) -> tuple[np.ndarray, dict] | None:
    """The voxels reading at least half the contrast of a ball fitted to the partial-volume pattern around ``region``.

    ``z``: channels (k, z, y, x) in the liver's units (liver 0); ``sharp``: channels sampled on the reference
    grid itself (their voxel is the reference's: the coverage model holds for them); None when none is.
    """
    if not sharp.any() or not region.any():
        return None
    step = np.ones((3, 3, 3), bool)
    window = ndi.binary_dilation(region, structure=step) & allowed  # beyond one voxel a ball this small is absent
    idx = np.argwhere(window)
    vox_mm = idx * spacing_zyx
    y = z[sharp][:, window]
    centre0 = np.argwhere(region).mean(axis=0) * spacing_zyx
    sub = _sub_points(spacing_zyx, subsamples)
    # Centres on quarter-voxel steps within half a voxel of the region's centre and radii on quarter-voxel steps,
    # every combination (a coarse grid of centres with a local refinement of the radius missed the best ball: a
    # centre half a voxel off favours a smaller ball, and the refinement never reached the right radius); then a
    # finer pass of eighth-voxel centres and radii around the best.
    r_step = 0.25 * float(spacing_zyx.min())
    best_c, best_r = centre0, 0.0
    for offsets, radii in ((np.arange(-0.5, 0.51, 0.25), np.arange(r_step, max_radius_mm + 1e-6, r_step)),
                           (np.array([-0.125, 0.0, 0.125]), None)):
        if radii is None:
            radii = best_r + np.array([-0.5, 0.0, 0.5]) * r_step
            radii = radii[radii > 0]
        o = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), -1).reshape(-1, 3) * spacing_zyx
        c, r, residual = _best_ball(y, best_c + o, radii, vox_mm, sub)
        best_c, best_r = c, r
    # Model choice: the ball only when its pattern explains the channels better than the classifier's own
    # outline read as a pattern (a lesion with pure voxels, or not round, keeps its outline).
    as_is = _best(y, region[window].astype(float)[None])[1]
    if residual >= as_is:
        return None
    cover = _coverage(best_c[None], np.array([best_r]), vox_mm, sub)[0]
    # A voxel wholly inside (every sample point): the classifier's lesion centre was pure and its outline stands.
    # (Sample points, not the voxel's exact corners: with the corners nearly every 5-7 mm ball counted as having
    # no pure voxel and lost 0.1-0.2 Dice to a radius fitted a little short; with 4 x 4 x 4 points only the
    # balls of about two voxels across are fitted.)
    if cover.max() >= 1.0:
        return None
    # The lesion: the voxels reading at least half the contrast that connect to the ball's most covered voxel
    # (none there: None, and the classifier's outline stands).
    out = np.zeros_like(region)
    out[tuple(idx[_own_fraction(y, cover) >= 0.5].T)] = True
    lab, _ = ndi.label(out, structure=np.ones((3, 3, 3), bool))
    top = lab[tuple(idx[np.argmax(cover)])]
    if top == 0:
        return None
    return lab == top, {"ball_radius_mm": round(best_r, 2)}
