"""Voxel index <-> LPS world position on a reference grid (SimpleITK: origin, spacing, direction), for points
given as (n, 3) arrays in numpy's (z, y, x) order. One definition for the lesion modules that place ends,
centroids and contested voxels in the world."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def _direction(reference: sitk.Image) -> np.ndarray:
    return np.array(reference.GetDirection()).reshape(3, 3)


def offsets_lps(reference: sitk.Image, zyx_mm: np.ndarray) -> np.ndarray:
    """LPS positions (n, 3) of points given as mm along the grid's own axes from its origin, (n, 3) z, y, x."""
    return np.array(reference.GetOrigin()) + np.asarray(zyx_mm)[:, ::-1] @ _direction(reference).T


def points_lps(reference: sitk.Image, idx_zyx: np.ndarray) -> np.ndarray:
    """LPS positions (n, 3) of voxel indices (whole or continuous) given as (n, 3) z, y, x."""
    return offsets_lps(reference, np.asarray(idx_zyx) * np.array(reference.GetSpacing())[::-1])


def index_of(reference: sitk.Image, pts_lps: np.ndarray) -> np.ndarray:
    """Continuous (z, y, x) indices (n, 3) of LPS points (n, 3): the inverse of :func:`points_lps`. Solved, not
    transposed: a series registered by an affine transform (Slicer: a linear parent transform with scaling or shear)
    has a direction matrix that is not a rotation."""
    ijk_to_lps = _direction(reference) * np.array(reference.GetSpacing())
    offsets = (np.asarray(pts_lps, float) - np.array(reference.GetOrigin())).T
    return np.linalg.solve(ijk_to_lps, offsets).T[:, ::-1]
