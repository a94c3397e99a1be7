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


# ---------------------------------------------------------------- phantom series with known breath-hold shifts

@pytest.fixture(scope="module")
def shifted_study():
    from LiverMetsReviewLib.phantom import generate_phantom

    return generate_phantom(2, "normal", size="small", breath_hold_shift_mm=10.0)


_REGISTERED: dict = {}


def _registered(study, fixed_role: str, moving_role: str):
    """One registration per pair of roles in this module (the phantom fixture is module-scoped)."""
    key = (id(study), fixed_role, moving_role)
    if key not in _REGISTERED:
        _REGISTERED[key] = register(_image(study, fixed_role), _image(study, moving_role))
    return _REGISTERED[key]


def _image(study, role: str) -> sitk.Image:
    s = study.series_by_role(role)
    return s.stacks[0] if role == "dwi" else s.image  # DWI: the lowest b (b=50), closest to the anatomy contrast


@pytest.mark.parametrize("fixed_role,moving_role", [("t1_pre", "t1_hepatobiliary"), ("t1_pre", "t1_arterial"),
                                                    ("t2", "dwi")])
def test_phantom_breath_hold_shift_is_recovered(shifted_study, fixed_role, moving_role):
    """The truth displaces each series by a known vector; fixed -> moving points must move by the difference."""
    fixed_img = _image(shifted_study, fixed_role)
    expected = np.subtract(shifted_study.shift_mm(moving_role), shifted_study.shift_mm(fixed_role))
    assert np.linalg.norm(expected) > 3.0  # a real displacement to find (seed 2, up to 10 mm)
    res = _registered(shifted_study, fixed_role, moving_role)
    centre = _centre(fixed_img)
    found = np.subtract(res.transform.TransformPoint(centre), centre)
    spacing = np.asarray(fixed_img.GetSpacing())
    assert np.all(np.abs(found - expected) <= 0.5 * spacing), (found, expected, spacing)  # within half a voxel
    # a pure translation: no spurious rotation (Euler angles, radians)
    assert np.all(np.abs(res.summary["transform_parameters"][:3]) < 0.02)
    s = res.summary
    assert s["metric_after"] < s["metric_before"] and s["ncc_after"] > s["ncc_before"]


def test_registration_restores_the_lesion_enhancement(shifted_study):
    """Arterial RE of the (non-enhancing) cyst: misaligned, liver and cyst are mixed; after registration it equals
    the RE computed with the true shift (nearest-neighbour truth labels on the pre-contrast grid)."""
    from LiverMetsReviewLib.maps.enhancement import relative_enhancement
    from LiverMetsReviewLib.region_stats import labels_on_grid

    st = shifted_study
    pre, art = st.series_by_role("t1_pre").image, st.series_by_role("t1_arterial").image
    truth_tx = sitk.TranslationTransform(3, list(np.subtract(st.shift_mm("t1_arterial"), st.shift_mm("t1_pre"))))
    exact = sitk.Resample(art, pre, truth_tx, sitk.sitkLinear, 0.0)
    labels = labels_on_grid(st.labelmap, pre, st.shift_mm("t1_pre"))
    cyst = labels == next(les["label"] for les in st.truth["lesions"] if les["id"] == "cyst")

    def cyst_re(post: sitk.Image) -> float:
        return float(np.median(sitk.GetArrayFromImage(relative_enhancement(pre, post).re)[cyst]))

    registered = cyst_re(_registered(st, "t1_pre", "t1_arterial").resampled)
    raw, reference = cyst_re(art), cyst_re(exact)
    assert abs(raw - reference) > 30.0          # the misalignment matters for this lesion
    assert abs(registered - reference) < 0.1 * abs(raw - reference)
