"""Voxel index <-> LPS world position on a reference grid (SimpleITK: origin, spacing, direction), for points
given as (n, 3) arrays in numpy's (z, y, x) order. One definition for the lesion modules that place ends,
centroids and contested voxels in the world, and for the grids they compare.

A grid's index-to-LPS matrix is ``direction * spacing`` (columns: one voxel step along x, y, z). Its inverse is
solved, never taken as the transposed direction: a series registered by an affine transform (Slicer: a linear
parent transform with scaling or shear) has a direction matrix that is no rotation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk


def _direction(reference: sitk.Image) -> np.ndarray:
    return np.array(reference.GetDirection()).reshape(3, 3)


def ijk_to_lps(reference: sitk.Image) -> np.ndarray:
    """3x3 matrix: a voxel step along (x, y, z) as an LPS vector (mm); columns are the grid's axes."""
    return _direction(reference) * np.array(reference.GetSpacing())


def set_grid(image: sitk.Image, ijk_to_lps_3x3: np.ndarray, origin: Sequence[float]) -> sitk.Image:
    """Give ``image`` the grid of an index-to-LPS matrix and origin (spacing: the columns' lengths, as
    ``vtkMRMLVolumeNode::SetIJKToRASMatrix`` and a NRRD's space directions split it). Returns ``image``."""
    m = np.asarray(ijk_to_lps_3x3, float)
    spacing = np.linalg.norm(m, axis=0)
    image.SetSpacing([float(v) for v in spacing])
    image.SetOrigin([float(v) for v in origin])
    image.SetDirection([float(v) for v in (m / spacing).ravel()])
    return image


def offsets_lps(reference: sitk.Image, zyx_mm: np.ndarray) -> np.ndarray:
    """LPS positions (n, 3) of points given as mm along the grid's own axes from its origin, (n, 3) z, y, x."""
    return np.array(reference.GetOrigin()) + np.asarray(zyx_mm)[:, ::-1] @ _direction(reference).T


def offsets_of(reference: sitk.Image, pts_lps: np.ndarray) -> np.ndarray:
    """mm along the grid's own axes from its origin (n, 3) z, y, x of LPS points (n, 3): the inverse of
    :func:`offsets_lps` (solved on the direction: grids that share their axes give exact differences)."""
    shifts = np.asarray(pts_lps, float) - np.array(reference.GetOrigin())
    return np.linalg.solve(_direction(reference), shifts.T).T[:, ::-1]


def points_lps(reference: sitk.Image, idx_zyx: np.ndarray) -> np.ndarray:
    """LPS positions (n, 3) of voxel indices (whole or continuous) given as (n, 3) z, y, x."""
    return offsets_lps(reference, np.asarray(idx_zyx) * np.array(reference.GetSpacing())[::-1])


def index_steps(reference: sitk.Image, vectors_lps: np.ndarray) -> np.ndarray:
    """LPS displacement vectors (n, 3) as continuous index steps (n, 3) z, y, x of ``reference`` (solved)."""
    return np.linalg.solve(ijk_to_lps(reference), np.asarray(vectors_lps, float).T).T[:, ::-1]


def index_of(reference: sitk.Image, pts_lps: np.ndarray) -> np.ndarray:
    """Continuous (z, y, x) indices (n, 3) of LPS points (n, 3): the inverse of :func:`points_lps`."""
    return index_steps(reference, np.asarray(pts_lps, float) - np.array(reference.GetOrigin()))


def voxel_extent_mm(reference: sitk.Image, other: sitk.Image) -> np.ndarray:
    """How far one voxel of ``other`` reaches along each axis of ``reference`` (z, y, x), in mm of those axes: the
    voxel's edge vectors expressed on the reference's axes (solved), their lengths summed per axis (the box its
    corners span). Grids that share their axes give the other's spacing exactly."""
    along = np.abs(np.linalg.solve(_direction(reference), _direction(other))) @ np.array(other.GetSpacing())
    return along[::-1]


def voxel_extent(reference: sitk.Image, other: sitk.Image) -> np.ndarray:
    """:func:`voxel_extent_mm` in reference voxels (z, y, x)."""
    return voxel_extent_mm(reference, other) / np.array(reference.GetSpacing())[::-1]
