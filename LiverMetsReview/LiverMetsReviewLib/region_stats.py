"""Median of a map inside labelled regions, on the map's own grid.

Labels defined on another grid (the phantom's truth grid, a segmentation) are brought onto the map's grid
by nearest neighbour, optionally displaced (breath-hold shift), and eroded by one voxel so that partial
volume at the region's edge does not pull the median. A region too small to survive erosion keeps its
un-eroded voxels and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .maps.resample import resample_to


@dataclass
class RegionValue:
    median: float | None
    voxels: int
    eroded: bool


def resample_labels(labels: sitk.Image, grid: sitk.Image, shift_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> sitk.Image:
    """``labels`` as seen on ``grid`` (nearest neighbour); a grid point p shows the label found at p − shift."""
    return resample_to(grid, labels, label=True, transform=sitk.TranslationTransform(3, [-float(v) for v in shift_mm]))


def labels_on_grid(labels: sitk.Image, grid: sitk.Image, shift_mm: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """:func:`resample_labels` as an int32 array (z, y, x).

    The resampled image is held in a name while its buffer is read: a numpy view of a temporary SimpleITK
    image points into memory that is freed as soon as the image is.
    """
    on_grid = resample_labels(labels, grid, shift_mm)
    return sitk.GetArrayFromImage(on_grid).astype(np.int32, copy=False)


def region_medians(values: sitk.Image, labels_zyx: np.ndarray, wanted: Iterable[int],
                   valid: np.ndarray | None = None) -> dict[int, RegionValue]:
    """Median of ``values`` per wanted label (eroded by one voxel where the region allows), finite voxels only."""
    arr = sitk.GetArrayViewFromImage(values).astype(np.float64)
    ok = np.isfinite(arr) if valid is None else (np.isfinite(arr) & valid)
    out: dict[int, RegionValue] = {}
    for label in wanted:
        region = labels_zyx == label
        core = ndi.binary_erosion(region)
        use, eroded = (core, True) if core.sum() >= 3 else (region, False)
        sel = use & ok
        n = int(sel.sum())
        out[int(label)] = RegionValue(float(np.median(arr[sel])) if n else None, n, eroded)
    return out
