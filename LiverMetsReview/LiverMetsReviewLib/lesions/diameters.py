"""A lesion's longest axial diameter and the longest diameter perpendicular to it (mm, endpoints in LPS).

From the mask: per slice, the longest chord of the edge voxels and the longest chord across it, each end half-way
from the outermost voxel centre to its corner. Then onto the image: each end moved to where the image's edge shows
(``edge.py``), or, for a lesion two voxels across or less, an ellipsoid fitted to its partial-volume pattern
(``pv_axes.py``). ``images``: the study's :class:`measure.MeasuredImage` entries by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .channels import params
from .edge import backgrounds, refine_chord
from .lps import points_lps
from .pv_axes import fit_axes


def _half_width(direction: np.ndarray, u_axis: np.ndarray, v_axis: np.ndarray, spacing: Sequence[float]) -> float:
    """Half the way from a voxel's centre to its outer corner along an in-plane direction (spacing sx, sy)."""
    return 0.25 * (spacing[0] * abs(float(direction @ u_axis)) + spacing[1] * abs(float(direction @ v_axis)))


def _slice_diameters(pts: np.ndarray, u_axis: np.ndarray, v_axis: np.ndarray, spacing: Sequence[float]
                     ) -> tuple[float, np.ndarray, float, np.ndarray]:
    """Longest chord of one slice's edge voxels and the longest chord perpendicular to it.

    The outline lies between the outermost voxel centres (which understate a diameter) and their outer
    corners (which overstate it): each end is placed half-way from the centre to the corner along the chord,
    the middle of the two. Endpoints are in LPS.
    """
    if len(pts) == 1:
        p, hu, hv = pts[0], 0.25 * spacing[0], 0.25 * spacing[1]
        long_, short = np.array([p - hu * u_axis, p + hu * u_axis]), np.array([p - hv * v_axis, p + hv * v_axis])
        return 2 * hu, long_, 2 * hv, short
    diff = pts[:, None, :] - pts[None, :, :]
    d2 = (diff ** 2).sum(axis=-1)
    a, b = np.unravel_index(int(np.argmax(d2)), d2.shape)
    u = pts[b] - pts[a]
    u = u / max(np.linalg.norm(u), 1e-9)
    v = np.cross(np.cross(u_axis, v_axis), u)
    v = v / max(np.linalg.norm(v), 1e-9)
    pu, pv = pts @ u, pts @ v
    bins = np.round((pu - pu.min()) / min(spacing)).astype(int)
    best, best_bin = -1.0, 0
    for k in np.unique(bins):  # one pass per column across the long axis: at most a few hundred
        sel = bins == k
        ext = float(pv[sel].max() - pv[sel].min())
        if ext > best:
            best, best_bin = ext, k
    sel = bins == best_bin
    p0 = pts[sel][int(np.argmin(pv[sel]))]
    p1 = pts[sel][int(np.argmax(pv[sel]))]
    cu = float(pu[sel].mean())
    hu, hv = _half_width(u, u_axis, v_axis, spacing), _half_width(v, u_axis, v_axis, spacing)
    short = np.array([p0 + (cu - p0 @ u) * u - hv * v, p1 + (cu - p1 @ u) * u + hv * v])  # one line across
    long_ = np.array([pts[a] - hu * u, pts[b] + hu * u])
    return float(np.sqrt(d2[a, b])) + 2 * hu, long_, best + 2 * hv, short


def slice_axes(mask: np.ndarray, reference: sitk.Image) -> list[tuple[float, np.ndarray, float, np.ndarray]]:
    """(long, long endpoints, short, short endpoints) of every slice of the mask (last index axis = axial)."""
    d = np.array(reference.GetDirection()).reshape(3, 3)
    u_axis, v_axis = d[:, 0], d[:, 1]
    spacing = reference.GetSpacing()[:2]
    out = []
    for k in np.unique(np.nonzero(mask)[0]):
        sl = mask[k]
        edge = sl & ~ndi.binary_erosion(sl)
        jj, ii = np.nonzero(edge)
        pts = points_lps(reference, np.stack([np.full_like(jj, k), jj, ii], axis=1))
        out.append(_slice_diameters(pts, u_axis, v_axis, spacing))
    return out


def axial_diameters(mask: np.ndarray, reference: sitk.Image) -> tuple[float, list, float, list] | None:
    """(long, long endpoints, short, short endpoints) over the mask's slices (last index axis = axial)."""
    per_slice = slice_axes(mask, reference)
    if not per_slice:
        return None
    best = max(per_slice, key=lambda r: r[0])
    return best[0], best[1].round(2).tolist(), best[2], best[3].round(2).tolist()


def refined_diameters(reference: sitk.Image, images: Mapping[str, Any], mask: np.ndarray, sl: tuple[slice, ...],
                      ref: np.ndarray) -> tuple[float | None, list | None, float | None, list | None]:
    """Long and short axis from the mask, their ends moved onto the image's edge where it shows (edge.py).

    Every slice's axes are refined and the slice with the longest refined axis kept: on thick slices the
    mask's longest chord can lie on a slice off the lesion's equator (its digitisation reached a voxel
    further), where the image's edge is nearer in."""
    per_slice = slice_axes(mask, reference)
    if not per_slice:
        return None, None, None, None
    p = params("measurement")
    own = 1.01 * float(np.prod(reference.GetSpacing()))  # series sampled as finely as the mask's grid
    sharp = {n: im for n, im in images.items() if im.voxel_mm3 is not None and im.voxel_mm3 <= own}
    imgs = backgrounds(sharp, sl, ref)
    reach = max(reference.GetSpacing()[:2])
    if max(r[0] for r in per_slice) <= 2 * reach:  # no interior to find an edge from: the partial-volume fit
        sub = sitk.RegionOfInterest(reference, [s.stop - s.start for s in sl][::-1], [s.start for s in sl][::-1])
        fit = fit_axes(mask[sl], [(v[sl], b, sd) for v, b, sd in imgs], sub)
        if fit is not None:
            return (round(fit[0], 2), fit[1].round(2).tolist(), round(fit[2], 2), fit[3].round(2).tolist())

    def refined(ends: np.ndarray) -> np.ndarray:
        e = np.asarray(ends, float)
        e = refine_chord(e, imgs, reference, reach, float(p["edge_min_contrast_sd"]))
        return e.round(2)

    longs = [refined(r[1]) for r in per_slice]
    i = int(np.argmax([np.linalg.norm(e[1] - e[0]) for e in longs]))
    long_, short = longs[i], refined(per_slice[i][3])
    if np.linalg.norm(short[1] - short[0]) > np.linalg.norm(long_[1] - long_[0]):  # nearly round: edges decide
        long_, short = short, long_
    return (round(float(np.linalg.norm(long_[1] - long_[0])), 2), long_.tolist(),
            round(float(np.linalg.norm(short[1] - short[0])), 2), short.tolist())
