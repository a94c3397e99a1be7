"""Enhancement and HBP liver function against analytic truth, with resampling, masking and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import GeometryError, LiverMetsError, MissingDataError
from LiverMetsReviewLib.maps import liver_function, relative_enhancement


def _img(arr, origin=(0.0, 0.0, 0.0), spacing=(1.5, 1.5, 3.0), dtype=np.float32) -> sitk.Image:
    img = sitk.GetImageFromArray(np.asarray(arr, dtype=dtype))
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    return img


def test_relative_enhancement_and_subtraction_exact():
    rng = np.random.default_rng(3)
    pre = rng.uniform(200.0, 900.0, (4, 12, 16))
    re_true = rng.uniform(-40.0, 250.0, pre.shape)  # percent
    post = pre * (1 + re_true / 100)
    res = relative_enhancement(_img(pre), _img(post), noise_floor=0.0, phase="t1_arterial")
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.re), re_true, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.subtraction), post - pre, rtol=1e-4, atol=1e-3)
    assert res.summary["units"]["re"] == "percent" and res.summary["phase"] == "t1_arterial"
    assert res.summary["masked_voxels"] == 0
    assert res.metadata["re"]["units"] == "percent"


def test_pre_contrast_background_is_masked_and_counted():
    pre = np.full((2, 10, 10), 500.0)
    pre[:, :, :4] = 0.0  # 80 voxels without signal
    post = np.full(pre.shape, 800.0)
    res = relative_enhancement(_img(pre), _img(post))
    re = sitk.GetArrayFromImage(res.re)
    assert res.summary["masked_voxels"] == 80
    assert np.all(re[:, :, :4] == 0) and np.all(np.isfinite(re))
    np.testing.assert_allclose(re[:, :, 4:], 60.0, rtol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(res.mask)[:, :, 4:], 1)


def test_post_on_another_grid_is_resampled():
    """Post image with half the spacing over the same region: linear resampling of a linear ramp is exact."""
    x = np.arange(16) * 1.5
    pre = np.broadcast_to(300 + 10 * x, (3, 8, 16))
    xf = np.arange(31) * 0.75
    post = np.broadcast_to(2 * (300 + 10 * xf), (3, 8, 31))
    post_img = _img(post, spacing=(0.75, 1.5, 3.0))
    res = relative_enhancement(_img(pre), post_img, noise_floor=0.0)
    assert any("resampled" in n for n in res.summary["notes"])
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.re), 100.0, rtol=1e-4)


def test_liver_function_figures():
    labels = np.zeros((4, 20, 20), np.uint8)
    labels[:, 2:12, 2:18] = 1   # liver
    labels[:, 14:19, 5:15] = 2  # spleen
    pre = np.where(labels == 1, 400.0, np.where(labels == 2, 300.0, 50.0))
    hbp = np.where(labels == 1, 720.0, np.where(labels == 2, 360.0, 60.0))
    hbp[0, 3, 3] = 5000.0  # one bright vessel voxel: the median ignores it
    out = liver_function(_img(pre), _img(hbp), _img(labels, dtype=np.uint8), 1, 2)
    assert out["liver_relative_enhancement_percent"] == pytest.approx(80.0)
    assert out["spleen_relative_enhancement_percent"] == pytest.approx(20.0)
    assert out["liver_to_spleen_ratio_hbp"] == pytest.approx(2.0)
    assert out["liver_to_spleen_ratio_pre"] == pytest.approx(400 / 300)
    assert out["liver_spleen_contrast_index"] == pytest.approx(2.0 / (400 / 300))
    assert out["regions"]["liver"]["voxels"] == 4 * 10 * 16
    with pytest.raises(MissingDataError, match="label"):
        liver_function(_img(pre), _img(hbp), _img(labels, dtype=np.uint8), 1, 7)


def test_bad_inputs():
    good = _img(np.full((2, 4, 4), 100.0))
    with pytest.raises(LiverMetsError, match="all zero"):
        relative_enhancement(good, _img(np.zeros((2, 4, 4))))
    with pytest.raises(LiverMetsError, match="negative"):
        relative_enhancement(_img(np.full((2, 4, 4), -2.0)), good)
    with pytest.raises(GeometryError, match="does not overlap"):
        relative_enhancement(good, _img(np.full((2, 4, 4), 100.0), origin=(500.0, 0.0, 0.0)))
