"""Registration recovers known rigid and affine transforms of a synthetic abdomen-like volume."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import GeometryError, LiverMetsError
from LiverMetsReviewLib.maps import register


@pytest.fixture(scope="module")
def fixed() -> sitk.Image:
    """Body ellipsoid with an off-centre 'liver' and a small bright 'lesion' (anisotropic voxels, LPS origin)."""
    z, y, x = np.mgrid[:36, :64, :64].astype(np.float64)
    body = ((z - 18) / 16) ** 2 + ((y - 32) / 26) ** 2 + ((x - 32) / 28) ** 2 < 1
    liver = ((z - 16) / 9) ** 2 + ((y - 28) / 12) ** 2 + ((x - 24) / 14) ** 2 < 1
    lesion = ((z - 20) / 3) ** 2 + ((y - 36) / 4) ** 2 + ((x - 40) / 4) ** 2 < 1
    vol = 60.0 * body + 80.0 * liver + 120.0 * lesion + 4.0 * np.sin(x / 4.0) * body
    img = sitk.GetImageFromArray(vol.astype(np.float32))
    img.SetSpacing((1.6, 1.6, 3.0))
    img.SetOrigin((-50.0, -40.0, 100.0))
    return sitk.SmoothingRecursiveGaussian(img, 1.0)


def _centre(img: sitk.Image):
    return img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in img.GetSize()])


def _moved(fixed: sitk.Image, truth: sitk.Transform) -> sitk.Image:
    """moving(x) = fixed(truth^-1(x)), so the registration (fixed -> moving points) must find ``truth``."""
    return sitk.Resample(fixed, fixed, truth.GetInverse(), sitk.sitkLinear, 0.0)


def _max_displacement(a: sitk.Transform, b: sitk.Transform, img: sitk.Image) -> float:
    """Largest distance (mm) between the two transforms' images of the grid's corner and centre points."""
    size = img.GetSize()
    pts = [img.TransformContinuousIndexToPhysicalPoint([c[0] * (size[0] - 1), c[1] * (size[1] - 1),
                                                         c[2] * (size[2] - 1)])
           for c in [(0.2, 0.2, 0.2), (0.8, 0.2, 0.2), (0.2, 0.8, 0.2), (0.2, 0.2, 0.8), (0.5, 0.5, 0.5),
                     (0.8, 0.8, 0.8)]]
    return max(float(np.linalg.norm(np.subtract(a.TransformPoint(p), b.TransformPoint(p)))) for p in pts)


def test_rigid_breath_hold_shift_is_recovered(fixed):
    truth = sitk.Euler3DTransform()
    truth.SetCenter(_centre(fixed))
    truth.SetRotation(0.0, 0.02, 0.06)
    truth.SetTranslation((4.0, -3.0, 9.0))  # a typical breath-hold shift, mostly cranio-caudal
    res = register(fixed, _moved(fixed, truth))
    assert _max_displacement(res.transform, truth, fixed) < 1.0
    s = res.summary
    assert s["metric_after"] < s["metric_before"] and s["ncc_after"] > 0.99 > s["ncc_before"]
    assert s["transform_type"] == "rigid" and len(s["transform_parameters"]) == 6
    assert res.resampled.GetSize() == fixed.GetSize() and res.resampled.GetOrigin() == fixed.GetOrigin()


def test_affine_scaling_is_recovered(fixed):
    truth = sitk.AffineTransform(3)
    truth.SetCenter(_centre(fixed))
    truth.SetMatrix((1.06, 0.0, 0.0, 0.0, 0.95, 0.0, 0.0, 0.0, 1.0))
    truth.SetTranslation((2.0, 1.0, -3.0))
    res = register(fixed, _moved(fixed, truth), affine=True)
    assert res.summary["transform_type"] == "affine" and len(res.summary["transform_parameters"]) == 12
    assert _max_displacement(res.transform, truth, fixed) < 1.5
    assert res.summary["ncc_after"] > 0.98


def test_transform_is_saveable(fixed, tmp_path):
    truth = sitk.TranslationTransform(3, (3.0, 0.0, 0.0))
    res = register(fixed, _moved(fixed, truth))
    path = tmp_path / "t.tfm"
    sitk.WriteTransform(res.transform, str(path))
    back = sitk.ReadTransform(str(path))
    p = _centre(fixed)
    np.testing.assert_allclose(back.TransformPoint(p), res.transform.TransformPoint(p), atol=1e-6)
    np.testing.assert_allclose(np.subtract(back.TransformPoint(p), p), (3.0, 0.0, 0.0), atol=0.5)


def test_bad_registration_inputs(fixed):
    far = sitk.Image(fixed)
    far.SetOrigin((900.0, 900.0, 900.0))
    with pytest.raises(GeometryError, match="does not overlap"):
        register(fixed, far)
    flat = sitk.Image(fixed.GetSize(), sitk.sitkFloat32)
    flat.CopyInformation(fixed)
    with pytest.raises(LiverMetsError, match="constant"):
        register(fixed, flat)
