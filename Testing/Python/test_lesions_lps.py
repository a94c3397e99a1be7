"""Voxel index <-> LPS on oblique, anisotropic grids agrees with SimpleITK's own index-to-physical mapping (the
independent reference), and the two directions invert each other."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from LiverMetsReviewLib.lesions.lps import ijk_to_lps, index_of, offsets_lps, points_lps, set_grid, voxel_extent


def _grid(seed: int, sheared: bool) -> sitk.Image:
    """An oblique anisotropic grid; ``sheared``: its axes moved by an affine registration (scaling and shear), so
    the direction matrix (unit columns) is no rotation."""
    rng = np.random.default_rng(seed)
    img = sitk.Image(7, 9, 5, sitk.sitkUInt8)
    img.SetSpacing(tuple(rng.uniform(0.5, 8.0, 3)))
    img.SetOrigin(tuple(rng.uniform(-200, 200, 3)))
    d = Rotation.random(random_state=seed).as_matrix()
    if sheared:
        d = d @ (np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3)))
        d /= np.linalg.norm(d, axis=0)
        assert np.abs(d.T @ d - np.eye(3)).max() > 1e-3
    img.SetDirection(tuple(d.ravel()))
    return img


@pytest.mark.parametrize("sheared", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_points_lps_is_simpleitks_physical_point(seed, sheared):
    img = _grid(seed, sheared)
    idx_zyx = np.random.default_rng(seed + 100).uniform(-2, 10, (20, 3))
    expected = np.array([img.TransformContinuousIndexToPhysicalPoint(tuple(p[::-1])) for p in idx_zyx])
    np.testing.assert_allclose(points_lps(img, idx_zyx), expected, atol=1e-9)
    np.testing.assert_allclose(index_of(img, expected), idx_zyx, atol=1e-9)
    mm = idx_zyx * np.array(img.GetSpacing())[::-1]
    np.testing.assert_allclose(offsets_lps(img, mm), expected, atol=1e-9)


def _voxel_box_in(reference: sitk.Image, other: sitk.Image) -> np.ndarray:
    """SimpleITK's answer: one voxel of ``other`` (its eight corners) in ``reference``'s continuous indices, the
    span per axis (z, y, x)."""
    corners = [other.TransformContinuousIndexToPhysicalPoint(tuple(3.0 + c for c in corner))
               for corner in np.array(np.meshgrid(*[(-0.5, 0.5)] * 3)).reshape(3, -1).T]
    idx = np.array([reference.TransformPhysicalPointToContinuousIndex(p) for p in corners])
    return (idx.max(axis=0) - idx.min(axis=0))[::-1]


@pytest.mark.parametrize("sheared", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_a_voxels_reach_on_another_grid_is_simpleitks(seed, sheared):
    """A coarser series' voxel seen on the reference grid (footprint's box averaging, the liver confirmation's search
    reach): the span of its corners mapped by SimpleITK, also when the reference is sheared by an affine
    registration (the transposed direction was up to 10 % off there)."""
    from LiverMetsReviewLib.lesions.footprint import source_extent_zyx
    from LiverMetsReviewLib.lesions.liver_confirm import _voxel_extent_along_axes

    reference, other = _grid(seed, sheared), _grid(seed + 50, False)
    truth = _voxel_box_in(reference, other)
    np.testing.assert_allclose(voxel_extent(reference, other), truth, rtol=0, atol=1e-9)
    np.testing.assert_allclose(source_extent_zyx(reference, other), np.maximum(truth, 1.0), rtol=0, atol=1e-9)
    spacing_zyx = np.array(reference.GetSpacing())[::-1]
    np.testing.assert_allclose(_voxel_extent_along_axes(reference, other), np.maximum(truth, 1.0) * spacing_zyx,
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_footprint_shares_do_not_change_when_both_grids_are_registered_alike(seed):
    """The share a thick-slice series has of a region depends on where its voxels lie in the reference's voxels
    only: one affine map (rotation, scaling, shear: a registration kept as a Slicer transform) applied to both grids
    leaves every share as it was. Checked on the separable path (both grids share their axes), whose source offset
    was read with the transposed direction."""
    from LiverMetsReviewLib.lesions.footprint import footprint_shares

    rng = np.random.default_rng(seed)
    reference = sitk.Image(24, 24, 16, sitk.sitkUInt8)
    reference.SetSpacing((1.5, 1.5, 2.0))
    source = sitk.Image(12, 12, 6, sitk.sitkUInt8)
    source.SetSpacing((3.0, 3.0, 6.0))
    source.SetOrigin(tuple(rng.uniform(-2.5, 2.5, 3)))
    z, y, x = np.indices((16, 24, 24))
    region = (((z - 8) * 2.0) ** 2 + ((y - 12) * 1.5) ** 2 + ((x - 11) * 1.5) ** 2) <= rng.uniform(6, 10) ** 2
    before = footprint_shares([region], reference, (0, 0, 0), source)[0]

    affine = Rotation.random(random_state=seed).as_matrix() @ (np.eye(3) + rng.uniform(-0.1, 0.1, (3, 3)))
    origin = rng.uniform(-100, 100, 3)
    for img in (reference, source):
        set_grid(img, affine @ ijk_to_lps(img), origin + affine @ np.array(img.GetOrigin()))
    after = footprint_shares([region], reference, (0, 0, 0), source)[0]
    assert 0.05 < before[region].mean() < 0.95  # the thick slices mix: the shares say something
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-4)
