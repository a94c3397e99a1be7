"""A click whose tissue is not the liver's bulk: on a metastasis (a reader aiming at the liver hits one; in a liver
full of metastases often) or on a sliver of parenchyma by the capsule that the leak control cuts off. Its region
grows to less than any liver; the liver is the calm tissue around it (parameters in
``resources/liver_segmentation.json``, section ``lesion_click``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from .liver_grid import _value, deepest_points, parameters


def _within(mask: np.ndarray, mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Voxels within ``mm`` of ``mask`` (Euclidean, physical)."""
    if not mask.any():
        return mask.copy()
    return ndi.distance_transform_edt(~mask, sampling=spacing_zyx) <= mm


def seeds_around(arr: np.ndarray, edge: np.ndarray, region: np.ndarray, spacing_zyx: Sequence[float],
                 body: np.ndarray) -> list[tuple[int, int, int]]:
    """Seeds in the calm tissue around a clicked ``region`` too small to be the liver: the deepest calm points
    (signal change over a working voxel below ``edge_fraction`` of the local signal) beyond the region's boundary
    band and within ``lesion_click.ring_mm`` of it, each outside a ball of twice the previous ones' depth, up to
    ``lesion_click.candidates``; voxel indices (z, y, x), deepest first."""
    p = parameters()["lesion_click"]
    calm = body & (edge < float(_value("edge_fraction")) * np.maximum(arr, 1e-12)) & ~region
    calm &= ~_within(region, float(_value("boundary_mm")), spacing_zyx)
    depth = ndi.distance_transform_edt(calm, sampling=spacing_zyx)
    depth = np.where(_within(region, float(p["ring_mm"]), spacing_zyx), depth, 0.0)
    return deepest_points(depth, spacing_zyx, int(p["candidates"]))
