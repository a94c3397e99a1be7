"""Diameters of a lesion a couple of voxels across, from its partial-volume pattern.

Each voxel reads the average of its box (pixel x slice thickness), so round a lesion of two voxels or less the
mask has no interior: its chord between voxel centres understates the lesion by about a voxel, its outer
edges overstate it, and the half-way crossing (edge.py) has no lesion level to be half-way to. Here an
ellipsoid (axial axes at any angle, a third along the slice axis) is fitted to the voxels round the mask on
the series sampled on the mask's own grid: each voxel's share inside the ellipsoid times a contrast solved
in closed form per image, the image whose fit stands out most from its background noise kept. The axial
axes are its in-plane diameters; the slices' thickness is part of the model, so an equator between two
slices is not lost. Used only where the mask's chord spans two voxels or less (diameters.refined_diameters).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.optimize import minimize

from .lps import offsets_lps

SUBSAMPLES = (6, 4, 4)  # points per voxel along z, y, x: the share inside is counted on this sub-grid


def _sub_points(spacing_zyx: np.ndarray) -> np.ndarray:
    axes = [((np.arange(n) + 0.5) / n - 0.5) * s for n, s in zip(SUBSAMPLES, spacing_zyx, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def _share(p: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Share of each voxel (sub-points ``pts``: n, s, 3 mm) inside the ellipsoid ``p`` = cz, cy, cx, a, b, c, angle."""
    cz, cy, cx, a, b, c, th = p
    a, b, c = abs(a) + 1e-3, abs(b) + 1e-3, abs(c) + 1e-3
    co, si = np.cos(th), np.sin(th)
    dz, dy, dx = pts[..., 0] - cz, pts[..., 1] - cy, pts[..., 2] - cx
    u, v, w = (co * dx + si * dy) / a, (-si * dx + co * dy) / b, dz / c
    return (u * u + v * v + w * w <= 1.0).mean(axis=-1)


def _fit_one(y: np.ndarray, pts: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, float]:
    """Ellipsoid explaining ``y`` (values minus background) best, its contrast free; (parameters, |contrast| *
    norm of the share pattern: the fit's signal)."""
    yy = float(y @ y)

    def cost(p: np.ndarray) -> float:
        s = _share(p, pts)
        ss = float(s @ s)
        return yy if ss <= 0 else yy - float(y @ s) ** 2 / ss

    fits = [minimize(cost, np.r_[start, th], method="Nelder-Mead",
                     options={"xatol": 1e-2, "fatol": 1e-6 * max(yy, 1e-12), "maxiter": 1500})
            for th in (0.0, 0.5 * np.pi)]
    best = min(fits, key=lambda r: r.fun)
    s = _share(best.x, pts)
    ss = float(s @ s)
    return best.x, (abs(float(y @ s)) / np.sqrt(ss) if ss > 0 else 0.0)


def fit_axes(mask: np.ndarray, images: list[tuple[np.ndarray, float, float]], reference: sitk.Image
             ) -> tuple[float, np.ndarray, float, np.ndarray] | None:
    """(long, long ends, short, short ends) in mm and LPS of the ellipsoid fitted round ``mask`` (z, y, x on
    ``reference``); ``images``: (values, background median, robust background SD) on that grid. None when no
    image shows the lesion."""
    if not images or not mask.any():
        return None
    sp = np.array(reference.GetSpacing(), float)[::-1]
    window = ndi.binary_dilation(mask, structure=np.ones((3, 3, 3), bool))
    window = ndi.binary_dilation(window, structure=ndi.generate_binary_structure(2, 1)[None])  # in-plane room
    idx = np.argwhere(window)
    pts = (idx * sp)[:, None, :] + _sub_points(sp)[None]
    m = np.argwhere(mask) * sp
    half = 0.5 * np.ptp(m, axis=0) + 0.5 * sp  # the mask's outer extent: where the search starts
    start = np.r_[m.mean(axis=0), max(half[1], half[2]), 0.9 * max(half[1], half[2]), half[0]]
    best = None
    for values, background, sd in images:
        p, signal = _fit_one(values[window].astype(float) - background, pts, start)
        if best is None or signal / sd > best[1]:
            best = (p, signal / sd)
    if best is None:
        return None
    return _ends(best[0], reference, sp)


def _ends(p: np.ndarray, reference: sitk.Image, sp: np.ndarray) -> tuple[float, np.ndarray, float, np.ndarray]:
    cz, cy, cx, a, b, _, th = p
    a, b = abs(a), abs(b)
    e1 = np.array([0.0, np.sin(th), np.cos(th)])
    e2 = np.array([0.0, np.cos(th), -np.sin(th)])
    if b > a:
        a, b, e1, e2 = b, a, e2, e1
    centre = np.array([np.round(cz / sp[0]) * sp[0], cy, cx])  # on the nearest slice: a line the reader sees
    long_ = offsets_lps(reference, np.stack([centre - a * e1, centre + a * e1]))
    short = offsets_lps(reference, np.stack([centre - b * e2, centre + b * e2]))
    return 2.0 * a, long_, 2.0 * b, short
