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


def test_overflow_near_the_float32_limit_is_masked_and_counted():
    """A corrupt rescale slope can put signals near float32's limit: the percentage overflows there, and those
    voxels are masked and counted, never written as inf."""
    rng = np.random.default_rng(11)
    pre = rng.uniform(200.0, 900.0, (2, 8, 8)).astype(np.float32)
    post = pre * np.float32(1.5)
    huge = np.zeros(pre.shape, bool)
    huge[0, :3, :3] = True  # 9 voxels: the percentage (post - pre) / pre x 100 overflows
    pre[huge], post[huge] = 1.0, 3.0e38
    res = relative_enhancement(_img(pre), _img(post), noise_floor=0.0)
    re, sub = sitk.GetArrayFromImage(res.re), sitk.GetArrayFromImage(res.subtraction)
    assert np.isfinite(re).all() and np.isfinite(sub).all()
    assert res.summary["masked_reasons"]["overflow"] == 9
    np.testing.assert_allclose(re[~huge], 50.0, rtol=1e-5)
    assert np.all(re[huge] == 0)
    np.testing.assert_allclose(sub[huge], 3.0e38, rtol=1e-6)  # the subtraction itself is finite and kept


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


# ------------------------------------------------------------------ one user-mask helper for every map (review B, D1)
def test_apply_user_mask_counts_only_voxels_the_mask_removed():
    from LiverMetsReviewLib.maps.resample import apply_user_mask

    ref = _img(np.zeros((2, 4, 6)))
    mask = np.zeros((2, 4, 6), np.uint8)
    mask[:, :, :3] = 1
    valid = np.ones((2, 4, 6), bool)
    valid[0, 0, :] = False                     # already invalid: 3 of these are outside the mask, not counted again
    expected = valid & (mask == 1)
    notes, warnings, reasons = [], [], {}
    apply_user_mask(ref, _img(mask, dtype=np.uint8), valid, notes, reasons, warnings)
    assert reasons == {"outside_mask": 2 * 4 * 3 - 3} and not notes and not warnings
    assert np.array_equal(valid, expected)
    # a mask on another grid (origin one column = 1.5 mm further): nearest neighbour, stated as note and warning;
    # a flat 'valid' works as well
    flat = np.ones(2 * 4 * 6, bool)
    apply_user_mask(ref, _img(mask, origin=(1.5, 0.0, 0.0), dtype=np.uint8), flat, notes, reasons, warnings)
    shifted = np.zeros((2, 4, 6), bool)
    shifted[:, :, 1:4] = True                  # the mask's columns 0..2 lie on the reference's columns 1..3
    assert np.array_equal(flat.reshape(2, 4, 6), shifted) and reasons["outside_mask"] == 2 * 4 * 3
    assert len(notes) == 1 and "mask was resampled" in notes[0] and warnings == notes


def test_every_map_counts_the_user_mask_the_same_way():
    """ADC, both fat maps, enhancement and PDFF mask through one helper: the same mask gives the same
    'outside_mask' count, and the reasons add up to the masked voxels."""
    from LiverMetsReviewLib.maps import chemical_shift_fat, dixon_fat, fit_adc
    from LiverMetsReviewLib.maps.pdff import fit_pdff

    shape = (2, 6, 8)
    mask = np.zeros(shape, np.uint8)
    mask[:, 1:5, 2:7] = 1
    m = _img(mask, dtype=np.uint8)
    sig = np.full(shape, 500.0)
    runs = {
        "adc": fit_adc([_img(sig), _img(sig * 0.5)], [0.0, 800.0], mask=m, noise_floor=0.0),
        "chemical_shift": chemical_shift_fat(_img(sig), _img(sig * 0.8), mask=m, noise_floor=0.0),
        "dixon": dixon_fat(_img(sig), _img(sig * 0.1), mask=m, noise_floor=0.0),
        "enhancement": relative_enhancement(_img(sig), _img(sig * 1.5), mask=m, noise_floor=0.0),
        "pdff": fit_pdff([_img(sig * f) for f in (1.0, 0.9, 0.8)], [1.2, 2.4, 3.6], field_strength_t=1.5, mask=m,
                         noise_floor=0.0),
    }
    outside = int(np.count_nonzero(mask == 0))
    for name, res in runs.items():
        reasons = res.summary["masked_reasons"]
        assert reasons["outside_mask"] == outside, name
        assert sum(reasons.values()) == res.summary["masked_voxels"], name
