"""Voxel index <-> LPS on oblique, anisotropic grids agrees with SimpleITK's own index-to-physical mapping (the
independent reference), and the two directions invert each other."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from LiverMetsReviewLib.lesions.lps import index_of, offsets_lps, points_lps


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
