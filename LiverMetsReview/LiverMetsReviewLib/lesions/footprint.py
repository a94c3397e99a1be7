"""Which reference-grid voxels of a region a coarser series actually sees inside that region.

Every image is measured on the reference grid the segments are drawn on (``measure.prepare_images``), but a
series acquired with thicker slices or larger pixels averages each of its voxels over its own box, and the linear
resampling onto the reference grid mixes the neighbouring source voxels again. A reference voxel deep in a small
lesion on the mask can so carry liver signal on a 6 mm T2 slice. The *footprint share* of a region at a reference
voxel is the share of the value resampled there that comes from inside the region: the region's indicator is
averaged over each source voxel's box and resampled back exactly as the image was (linear), so it is the weight
the region has in that voxel's value. A voxel with share 1 reads the region's own tissue; one with share s reads
s of it and 1 - s of its surroundings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..maps.resample import same_grid
from .lps import offsets_of, voxel_extent


def _box_kernel(width: float) -> np.ndarray:
    """A centred box of ``width`` voxels (>= 1) on the voxel grid: whole voxels inside weigh 1, the two end voxels
    the part of them the box covers; normalised to sum 1."""
    inner = int(np.floor((width - 1.0) / 2.0 + 1e-6))
    end = (width - (2 * inner + 1)) / 2.0
    k = np.ones(2 * inner + 1)
    if end > 1e-6:
        k = np.r_[end, k, end]
    return k / k.sum()


def source_extent_zyx(reference: sitk.Image, source: sitk.Image) -> np.ndarray:
    """A source voxel's extent along the reference grid's axes (z, y, x), in reference voxels (at least one)."""
    return np.maximum(voxel_extent(reference, source), 1.0)


def _sub_grid(image: sitk.Image, start_xyz: Sequence[int], size_xyz: Sequence[int]) -> sitk.Image:
    out = sitk.Image([int(v) for v in size_xyz], sitk.sitkFloat32)
    out.SetSpacing(image.GetSpacing())
    out.SetDirection(image.GetDirection())
    out.SetOrigin(image.TransformIndexToPhysicalPoint([int(v) for v in start_xyz]))
    return out


def _source_box(ref_box: sitk.Image, source: sitk.Image) -> sitk.Image:
    """The part of the source grid that covers ``ref_box`` (one source voxel of margin), as an empty image."""
    corners = [ref_box.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
               for corner in np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in ref_box.GetSize()])).reshape(3, -1).T]
    idx = np.array([source.TransformPhysicalPointToContinuousIndex(p) for p in corners])
    lo = np.floor(idx.min(axis=0)).astype(int) - 1
    hi = np.ceil(idx.max(axis=0)).astype(int) + 1
    return _sub_grid(source, lo, hi - lo + 1)


def _axis_maps(ref_centres: np.ndarray, ref_step: float, src_first: float, src_step: float, n_src: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis: (W, L). W[i, j] is the share of source voxel i's extent that reference voxel j covers (box
    averaging onto the source grid); L[j, i] the linear-interpolation weight of source voxel i at reference centre
    j (resampling back)."""
    src = src_first + src_step * np.arange(n_src)
    lo = np.maximum(src[:, None] - src_step / 2, ref_centres[None, :] - ref_step / 2)
    hi = np.minimum(src[:, None] + src_step / 2, ref_centres[None, :] + ref_step / 2)
    w = np.clip(hi - lo, 0.0, None) / src_step
    u = (ref_centres - src_first) / src_step
    i0 = np.floor(u).astype(int)
    frac = u - i0
    lin = np.zeros((ref_centres.size, n_src))
    rows = np.arange(ref_centres.size)
    for idx, wt in ((i0, 1.0 - frac), (i0 + 1, frac)):
        ok = (idx >= 0) & (idx < n_src)
        lin[rows[ok], idx[ok]] += wt[ok]
    return w, lin


def _separable_shares(regions: Sequence[np.ndarray], reference: sitk.Image, start_zyx: Sequence[int],
                      source: sitk.Image) -> list[np.ndarray]:
    """Exact shares when both grids share their axes: box averaging and linear interpolation are products of
    one-dimensional maps, applied axis by axis (z, y, x)."""
    offset = offsets_of(reference, np.array([source.GetOrigin()]))[0][::-1]  # source origin: mm on ref axes x, y, z
    maps: list[tuple[np.ndarray, np.ndarray] | None] = []
    for axis_xyz in range(3):
        n = regions[0].shape[2 - axis_xyz]
        rs, ss = reference.GetSpacing()[axis_xyz], source.GetSpacing()[axis_xyz]
        phase = offset[axis_xyz] / rs - np.round(offset[axis_xyz] / rs)
        if abs(ss - rs) <= 1e-3 * rs and abs(phase) <= 1e-3:  # the same voxels along this axis: nothing mixes
            maps.append(None)
            continue
        centres = (int(start_zyx[2 - axis_xyz]) + np.arange(n)) * rs
        first = int(np.floor((centres[0] - rs / 2 - ss - offset[axis_xyz]) / ss)) - 1
        last = int(np.ceil((centres[-1] + rs / 2 + ss - offset[axis_xyz]) / ss)) + 1
        maps.append(_axis_maps(centres, rs, offset[axis_xyz] + first * ss, ss, last - first + 1))
    out = []
    for region in regions:
        arr = region.astype(np.float32)
        for stage in (0, 1):  # onto the source grid, then back
            for axis_zyx in range(3):
                pair = maps[2 - axis_zyx]
                if pair is not None:
                    m = pair[stage].astype(np.float32)
                    arr = np.moveaxis(np.tensordot(m, arr, axes=([1], [axis_zyx])), 0, axis_zyx)
        out.append(np.clip(arr, 0.0, 1.0).astype(np.float32))
    return out


def footprint_shares(regions: Sequence[np.ndarray], reference: sitk.Image, start_zyx: Sequence[int],
                     source: sitk.Image | None) -> list[np.ndarray]:
    """Footprint share of each region as seen by a series on ``source``'s grid. A region is z, y, x on one box
    of the reference grid starting at index ``start_zyx``: bool, or the share of each voxel it fills. Same grid
    as the reference (or unknown source): the regions themselves. Grids with the same axes: exact (separable);
    oblique grids: the source box approximated by a box filter on the reference grid, resampled with SimpleITK."""
    if source is None or same_grid(reference, source):
        return [r.astype(np.float32) for r in regions]
    # Only the regions' box (plus the reach of a source voxel) can hold a share above 0: work on that crop.
    shape = regions[0].shape
    nz = np.argwhere(np.any([np.asarray(r) > 0 for r in regions], axis=0))
    out = [np.zeros(shape, np.float32) for _ in regions]
    if not nz.size:
        return out
    pad = np.ceil(2 * source_extent_zyx(reference, source)).astype(int) + 1
    lo, hi = np.maximum(nz.min(axis=0) - pad, 0), np.minimum(nz.max(axis=0) + pad + 1, shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    start = np.asarray(start_zyx, int) + lo
    parts = [np.asarray(r)[crop] for r in regions]
    if np.allclose(reference.GetDirection(), source.GetDirection(), atol=1e-4):
        shares = _separable_shares(parts, reference, start, source)
    else:
        shares = _oblique_shares(parts, reference, start, source)
    for o, sh in zip(out, shares, strict=True):
        o[crop] = sh
    return out


def _oblique_shares(regions: Sequence[np.ndarray], reference: sitk.Image, start_zyx: Sequence[int],
                    source: sitk.Image) -> list[np.ndarray]:
    shape = regions[0].shape
    pad = np.ceil(source_extent_zyx(reference, source)).astype(int) + 1
    start = np.asarray(start_zyx, int) - pad
    ref_box = _sub_grid(reference, start[::-1], (np.asarray(shape) + 2 * pad)[::-1])
    src_box = _source_box(ref_box, source)
    kernels = [_box_kernel(w) for w in source_extent_zyx(reference, source)]
    out = []
    for region in regions:
        arr = np.pad(region.astype(np.float32), [(p, p) for p in pad])
        for axis, k in enumerate(kernels):
            if k.size > 1:
                arr = ndi.convolve1d(arr, k, axis=axis, mode="constant")
        img = sitk.GetImageFromArray(arr)
        img.CopyInformation(ref_box)
        on_source = sitk.Resample(img, src_box, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        back = sitk.Resample(on_source, ref_box, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        share = sitk.GetArrayFromImage(back)[tuple(slice(p, p + n) for p, n in zip(pad, shape, strict=True))]
        out.append(np.clip(share, 0.0, 1.0))
    return out
