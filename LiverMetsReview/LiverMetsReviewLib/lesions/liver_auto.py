"""Where the liver is without a click: candidate seeds at the deepest calm points of the patient's right, and the
anatomy a region grown from one must have to be taken for the liver (parameters in
``resources/liver_segmentation.json``, sections ``auto_seed`` and ``liver_like``).

On real abdomens the deepest calm tissue on the right is as often a muscle (the paraspinal muscles, the
abdominal wall), a poorly suppressed subcutaneous fat layer or a kidney as the liver; the largest region grown
from such seeds is then not the liver. Every candidate's region is therefore checked against where the liver
lies: mostly right of the body's midline, inside the abdominal wall, in front of the retroperitoneum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .liver_grid import deepest_points, morph, parameters

EDGE_BAND = 3  # voxels: the body mask's in-plane closing (5 x 5) reaches 2 voxels from the image edge


def auto_seed_candidates(arr: np.ndarray, body: np.ndarray, work: sitk.Image, grad: np.ndarray, *,
                         side: str = "right", exclude: np.ndarray | None = None, fat_bright: bool = False,
                         count: int | None = None) -> list[tuple[int, int, int]]:
    """Deep points of the parenchyma-like map on the patient's ``side`` ("right", "left", "left_posterior"), deepest
    first (voxel indices z, y, x), up to ``count`` (default ``auto_seed.candidates``); voxels in ``exclude`` (an
    organ already found, a region anatomy rules out) do not count, nor fat when ``fat_bright`` (no fat
    suppression). ``grad``: the caller's ``liver_grid.edges(work, body)`` (its noise level costs a convolution of the
    whole volume: computed once)."""
    p = parameters()["auto_seed"]
    spacing = work.GetSpacing()[::-1]
    background = np.percentile(arr[body], 25)
    smooth = (grad < p["edge_fraction"] * np.maximum(arr, 1e-6)) & (arr > background) & body
    if exclude is not None:
        smooth &= ~exclude
    if fat_bright:
        smooth &= ~_fat_like(arr, body, spacing)
    depth = ndi.distance_transform_edt(smooth, sampling=spacing)
    # Patient's right: world x (LPS) below the body's centre; left: above it.
    zz, yy, xx = np.nonzero(body)
    centre = np.array(work.TransformContinuousIndexToPhysicalPoint(
        [float(xx.mean()), float(yy.mean()), float(zz.mean())]))
    world_x = _world_axis(work, 0)
    on_side = world_x < centre[0] if side == "right" else world_x > centre[0]
    if side == "left_posterior":  # the spleen: against the left posterolateral wall
        on_side &= _world_axis(work, 1) > centre[1]
    depth = np.where(on_side, depth, 0.0)
    # the next candidate lies outside this one's vertical cylinder of twice its depth: another organ (the spine and
    # the great vessels run cranio-caudally, so a ball would leave them candidates at every level)
    return deepest_points(depth, spacing, int(count or p["candidates"]), axes=(1, 2))


def _fat_like(arr: np.ndarray, body: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Voxels with the signal of the subcutaneous layer on an image without fat suppression (in/opposed phase):
    there fat is the largest homogeneous tissue and no organ."""
    p = parameters()["auto_seed"]
    shell = body & ~morph("erode", body, float(p["fat_shell_mm"]), [1e9, *spacing_zyx[1:]])
    fat = float(np.median(arr[shell])) if shell.any() else 0.0
    return np.abs(arr - fat) <= float(p["fat_tolerance"]) * fat


def _world_axis(img: sitk.Image, axis: int) -> np.ndarray:
    """World coordinate ``axis`` (0 = x, LPS) of every voxel, as a (z, y, x) array."""
    nx, ny, nz = img.GetSize()
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    sp = np.asarray(img.GetSpacing())
    o = np.asarray(img.GetOrigin())
    return o[axis] + d[axis, 0] * sp[0] * i + d[axis, 1] * sp[1] * j + d[axis, 2] * sp[2] * k


# ---------------------------------------------------------------- is a grown region the liver?

def wall_distance(body: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """In-plane distance (mm) of every voxel to the body's outline on its own axial slice. The image's edge is no
    outline: a field of view narrower than the patient cuts the body (and often the liver) there, and the
    abdominal wall lies beyond it; nor is the band of ``EDGE_BAND`` voxels along it, where the body mask's closing
    (``liver_grid.body_mask``) pulls the body back from the edge."""
    outside = ~body
    outside[:, :EDGE_BAND] = outside[:, -EDGE_BAND:] = False
    outside[:, :, :EDGE_BAND] = outside[:, :, -EDGE_BAND:] = False
    # distance to the nearest outside voxel; a huge z spacing keeps it in the voxel's own slice (a slice without
    # any outline gets a huge distance: no wall in it)
    return ndi.distance_transform_edt(~outside, sampling=(1e6, *spacing_zyx[1:]))


def wall_spacing(work: sitk.Image) -> tuple[float, float]:
    """In-plane spacing (y, x) of the working grid."""
    return float(work.GetSpacing()[1]), float(work.GetSpacing()[0])


def section_solidity(region: np.ndarray, spacing_yx: Sequence[float], min_voxels: int = 10) -> float:
    """How much of its convex outline a region's axial sections fill, averaged over the sections weighted by their
    area (1 for convex sections). Each voxel counts as its square, so a one-voxel-wide line is not a zero-area
    hull. A solid organ fills most of it; loops of bowel and wall glued along narrow contacts leave it half empty."""
    from scipy.spatial import ConvexHull  # noqa: PLC0415  (only the automatic mode needs it)

    sy, sx = (float(v) for v in spacing_yx)
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]) - 0.5
    filled = hull = 0.0
    for z in np.nonzero(region.reshape(region.shape[0], -1).sum(axis=1) >= min_voxels)[0]:
        pts = np.argwhere(region[z]).astype(float)
        outline = (pts[:, None, :] + corners[None]).reshape(-1, 2) * (sy, sx)
        filled += len(pts) * sy * sx
        hull += ConvexHull(outline).volume  # in 2-D, ConvexHull.volume is the area
    return filled / hull if hull > 0 else 0.0


def not_liver_like(region: np.ndarray, body: np.ndarray, work: sitk.Image, wall: np.ndarray) -> list[str]:
    """Why a region grown without a click is not where the liver lies (empty when it is), from anatomy
    (``liver_like``): mostly on the patient's right of the body's midline, mostly deeper than the abdominal wall,
    thick (broad axial sections, unlike a muscle, the kidney or the spleen), its bulk in front of the
    retroperitoneum (kidney, psoas and paraspinal muscles) and behind the anterior wall. Positions are taken
    relative to the image's own body outline (a cropped image's world origin need not be the patient's), on the
    working grid whose axes are the patient's (index y grows posteriorly)."""
    p = parameters()["liver_like"]
    n = int(region.sum())
    if n == 0:
        return ["empty"]
    why = []
    zz, yy, xx = np.nonzero(body)
    centre = work.TransformContinuousIndexToPhysicalPoint([float(xx.mean()), float(yy.mean()), float(zz.mean())])
    right = float(np.mean(_world_axis(work, 0)[region] < centre[0]))
    if right < float(p["min_right_fraction"]):
        why.append(f"{100 * right:.0f} % on the patient's right")
    near = float(np.mean(wall[region] < float(p["wall_mm"])))
    if near > float(p["max_wall_fraction"]):
        why.append(f"{100 * near:.0f} % within {float(p['wall_mm']):.0f} mm of the body's outline")
    # in-plane depth inside the region itself (the image's edge is no boundary: a field of view may cut the liver)
    depth = float(np.median(ndi.distance_transform_edt(region, sampling=(1e6, *wall_spacing(work)))[region]))
    if depth < float(p["min_median_depth_mm"]):
        why.append(f"half of it within {depth:.0f} mm of its own outline (a thin organ or muscle)")
    solid = section_solidity(region, wall_spacing(work))
    if solid < float(p["min_solidity"]):
        why.append(f"its axial sections fill {100 * solid:.0f} % of their convex outline (loops glued together, "
                   "not one solid organ)")
    rows = np.nonzero(body.any(axis=2))  # (z, y) of every body row
    first = np.full(body.shape[0], np.inf)
    last = np.full(body.shape[0], -np.inf)
    np.minimum.at(first, rows[0], rows[1])
    np.maximum.at(last, rows[0], rows[1])
    rz, ry, _ = np.nonzero(region)
    ap = float(np.median((ry - first[rz]) / np.maximum(last[rz] - first[rz], 1.0)))
    lo, hi = (float(v) for v in p["ap_position"])
    if not lo <= ap <= hi:
        why.append(f"its bulk at {ap:.2f} of the body's front-to-back depth")
    return why
