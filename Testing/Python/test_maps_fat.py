"""Fat maps against analytic truth: chemical-shift FF and SII from W/F built voxels, Dixon FF, the echo-time
check from the fat-water frequency, flags, the swap check's "where", geometry and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import GeometryError, LiverMetsError
from LiverMetsReviewLib.maps import check_echo_pair, chemical_shift_fat, dixon_fat, echo_phase


def _img(arr, origin=(0.0, 0.0, 0.0), spacing=(2.0, 2.0, 5.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    return img


@pytest.fixture(scope="module")
def water_fat():
    """W and F with true fat fraction 0..49 % along x (water-dominant everywhere) and 1000 total signal."""
    ff_true = np.broadcast_to(np.linspace(0.0, 0.49, 50), (3, 8, 50)).copy()
    w = 1000.0 * (1 - ff_true)
    f = 1000.0 * ff_true
    return w, f, ff_true


def test_chemical_shift_ff_and_sii_exact(water_fat):
    w, f, ff_true = water_fat
    res = chemical_shift_fat(_img(w + f), _img(np.abs(w - f)), field_strength_t=1.5, echo_times_ms=(4.6, 2.3),
                             noise_floor=0.0)
    ff = sitk.GetArrayFromImage(res.ff)
    sii = sitk.GetArrayFromImage(res.sii)
    np.testing.assert_allclose(ff, 100 * ff_true, atol=1e-4 * 50, rtol=1e-4)
    np.testing.assert_allclose(sii, 200 * ff_true, atol=1e-4 * 100, rtol=1e-4)
    flags = sitk.GetArrayFromImage(res.flags)
    assert set(np.unique(flags[ff_true <= 0.44])) == {0}
    assert set(np.unique(flags[ff_true > 0.455])) == {3}  # near the 50 % fold: ambiguous
    assert res.summary["echo_check"]["in_phase"]["state"] == "in_phase"
    assert res.summary["units"] == {"ff": "percent", "sii": "percent"}
    assert res.ff.GetSpacing() == (2.0, 2.0, 5.0)
    assert any("underestimated" in n for n in res.summary["notes"])  # OP echo first at 1.5 T


def test_magnitude_fold_fat_dominant_reads_as_its_complement():
    """A 70 % fat voxel reads 30 % from magnitudes: the documented limit of two-point chemical shift."""
    w, f = np.full((1, 2, 2), 300.0), np.full((1, 2, 2), 700.0)
    res = chemical_shift_fat(_img(w + f), _img(np.abs(w - f)), noise_floor=0.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.ff), 30.0, rtol=1e-5)


def test_dixon_ff_exact_over_0_to_100():
    ff_true = np.broadcast_to(np.linspace(0.0, 1.0, 41), (2, 5, 41))
    w, f = 800.0 * (1 - ff_true), 800.0 * ff_true
    res = dixon_fat(_img(w), _img(f), noise_floor=0.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.ff), 100 * ff_true, rtol=1e-4, atol=1e-4)
    assert res.summary["units"]["ff"] == "percent" and res.summary["masked_voxels"] == 0


@pytest.mark.parametrize("field, te_ip, te_op", [(1.5, 4.6, 2.3), (3.0, 2.3, 1.15), (3.0, 4.6, 3.45), (1.5, 9.2, 6.9)])
def test_echo_pairs_that_are_in_and_opposed_phase(field, te_ip, te_op):
    out = check_echo_pair(field, te_ip, te_op)
    # fat-water frequency = 3.4 ppm x 42.577 MHz/T x B0
    assert out["fat_water_hz"] == pytest.approx(3.4 * 42.577 * field, rel=1e-3)
    assert out["in_phase"]["state"] == "in_phase" and out["opposed_phase"]["state"] == "opposed_phase"


def test_both_in_phase_at_3t_is_refused_and_can_be_overridden():
    ip = _img(np.full((1, 3, 3), 1000.0))
    op = _img(np.full((1, 3, 3), 700.0))
    assert echo_phase(3.0, 2.3)["state"] == "in_phase" and echo_phase(3.0, 4.6)["state"] == "in_phase"
    with pytest.raises(LiverMetsError, match="not an in-phase/opposed-phase pair"):
        chemical_shift_fat(ip, op, field_strength_t=3.0, echo_times_ms=(4.6, 2.3))
    res = chemical_shift_fat(ip, op, field_strength_t=3.0, echo_times_ms=(4.6, 2.3), allow_any_echo_times=True,
                             noise_floor=0.0)
    assert res.summary["warnings"] and res.summary["echo_check"] == "overridden"
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.ff), 15.0, rtol=1e-5)


def test_exchanged_echo_labels_are_refused():
    with pytest.raises(LiverMetsError, match="opposed phase"):
        check_echo_pair(1.5, 2.3, 4.6)  # the "in-phase" echo is the opposed one


def test_opposed_brighter_than_in_phase_everywhere_is_refused():
    with pytest.raises(LiverMetsError, match="swapped"):
        chemical_shift_fat(_img(np.full((1, 4, 4), 600.0)), _img(np.full((1, 4, 4), 1000.0)), noise_floor=0.0)


def test_background_and_invalid_voxels_flagged_and_counted():
    ip = np.full((1, 10, 10), 1000.0)
    op = np.full((1, 10, 10), 800.0)
    ip[0, :2] = 0.0            # 20 background voxels
    op[0, 5, :3] = 1300.0      # 3 voxels with OP >> IP: invalid (FF = -15 %)
    res = chemical_shift_fat(_img(ip), _img(op))
    flags = sitk.GetArrayFromImage(res.flags)
    assert np.count_nonzero(flags == 1) == 20 and np.count_nonzero(flags == 2) == 3
    assert res.summary["masked_voxels"] == 23 and res.summary["invalid_voxels"] == 3
    ff = sitk.GetArrayFromImage(res.ff)
    assert np.all(ff[(flags == 1) | (flags == 2)] == 0)
    np.testing.assert_allclose(ff[flags == 0], 10.0, rtol=1e-5)


def test_other_grid_is_resampled_and_stated(water_fat):
    w, f, ff_true = water_fat
    ip = _img(w + f)
    op = _img(np.abs(w - f)[:, :, 5:], origin=(10.0, 0.0, 0.0))  # same physical positions, 5 columns missing
    res = chemical_shift_fat(ip, op, noise_floor=0.0)
    assert any("resampled" in n for n in res.summary["notes"])
    ff = sitk.GetArrayFromImage(res.ff)
    flags = sitk.GetArrayFromImage(res.flags)
    assert np.all(flags[:, :, :5] == 1)
    np.testing.assert_allclose(ff[:, :, 5:], 100 * ff_true[:, :, 5:], rtol=1e-4, atol=5e-3)


def test_pair_that_does_not_overlap_is_refused(water_fat):
    w, f, _ = water_fat
    with pytest.raises(GeometryError, match="does not overlap"):
        chemical_shift_fat(_img(w + f), _img(np.abs(w - f), origin=(900.0, 0.0, 0.0)))


def test_all_zero_and_negative_inputs_are_refused():
    good = _img(np.full((1, 3, 3), 100.0))
    with pytest.raises(LiverMetsError, match="all zero"):
        chemical_shift_fat(good, _img(np.zeros((1, 3, 3))))
    with pytest.raises(LiverMetsError, match="negative"):
        dixon_fat(good, _img(np.full((1, 3, 3), -1.0)))


# ------------------------------------------------------------------ Dixon swap check
def _abdomen(n_slices: int = 8, fat_outer_radius: float = 28.0):
    """Slices of a body: a water-dominant liver disc (FF 5 %) inside a fat-dominant ring (FF 90 %), air outside."""
    y, x = np.mgrid[:80, :80]
    r = np.hypot(y - 40, x - 40)
    liver = r < 20
    ring = (r >= 24) & (r < fat_outer_radius)
    w = np.where(liver, 950.0, 0.0) + np.where(ring, 100.0, 0.0)
    f = np.where(liver, 50.0, 0.0) + np.where(ring, 900.0, 0.0)
    return np.repeat(w[None], n_slices, 0), np.repeat(f[None], n_slices, 0), np.repeat(liver[None], n_slices, 0)


def test_swap_check_finds_the_swapped_slices():
    w, f, liver = _abdomen()
    w2, f2 = w.copy(), f.copy()
    w2[[3, 4]], f2[[3, 4]] = f[[3, 4]], w[[3, 4]]
    res = dixon_fat(_img(w2), _img(f2))
    swap = res.summary["swap_check"]
    assert swap["suspected"] and swap["body_check_slices"] == [3, 4]
    # slice k is at z = 5 k mm (LPS)
    assert [p[2] for p in swap["body_check_positions_mm_lps"]] == [15.0, 20.0]
    assert any("slice(s) [3, 4]" in w_ for w_ in res.summary["warnings"])
    clean = dixon_fat(_img(w), _img(f))
    assert not clean.summary["swap_check"]["suspected"] and not clean.summary["warnings"]


def test_swap_check_with_a_reference_tissue():
    w, f, liver = _abdomen()
    w2, f2 = w.copy(), f.copy()
    w2[6], f2[6] = np.where(liver[6], f[6], w[6]), np.where(liver[6], w[6], f[6])  # only the liver swapped
    ref = sitk.GetImageFromArray(liver.astype(np.uint8))
    ref.CopyInformation(_img(w))
    res = dixon_fat(_img(w2), _img(f2), reference_mask=ref, reference_kind="water")
    swap = res.summary["swap_check"]
    assert swap["reference_check_slices"] == [6]
    assert swap["reference_wrong_fraction"] == pytest.approx(1 / 8, rel=1e-6)


def test_whole_volume_swap_says_inputs_exchanged():
    w, f, _ = _abdomen()
    res = dixon_fat(_img(f), _img(w))
    assert any("water and fat inputs look exchanged" in w_ for w_ in res.summary["warnings"])
    assert res.summary["swap_check"]["body_check_slices"] == list(range(8))


def _with_end_cap(w, f, liver):
    """The abdomen plus a top slice that is only a smaller disc of subcutaneous fat (the body's end cap): between
    the last organ slice and the cap the anatomy changes, so voxel by voxel they look mirrored."""
    y, x = np.mgrid[:80, :80]
    cap = np.hypot(y - 40, x - 40) < 17
    return (np.concatenate([w, np.where(cap, 100.0, 0.0)[None]]), np.concatenate([f, np.where(cap, 900.0, 0.0)[None]]),
            np.concatenate([liver, np.zeros_like(cap)[None]]))


def test_body_end_cap_is_neither_a_false_swap_nor_left_out_of_a_whole_swap():
    """Review B L4: on the phantom the top slice (a fat cap) was called swapped in a normal study, and left out
    when the whole volume was swapped. Neighbours are compared only where they share most of their body."""
    w, f, liver = _with_end_cap(*_abdomen())
    clean = dixon_fat(_img(w), _img(f))
    assert not clean.summary["swap_check"]["suspected"] and not clean.summary["warnings"]
    swapped = dixon_fat(_img(f), _img(w))
    assert swapped.summary["swap_check"]["body_check_slices"] == list(range(9))     # the cap included
    assert any("water and fat inputs look exchanged" in m for m in swapped.summary["warnings"])
    w2, f2 = w.copy(), f.copy()
    w2[[3, 4]], f2[[3, 4]] = f[[3, 4]], w[[3, 4]]          # a local swap is still found with the cap present
    assert dixon_fat(_img(w2), _img(f2)).summary["swap_check"]["body_check_slices"] == [3, 4]


def test_swap_of_most_slices_says_inputs_exchanged():
    w, f, _ = _abdomen()
    w2, f2 = w.copy(), f.copy()
    w2[:6], f2[:6] = f[:6], w[:6]
    res = dixon_fat(_img(w2), _img(f2))
    assert res.summary["swap_check"]["body_check_slices"] == [0, 1, 2, 3, 4, 5]
    assert any("look exchanged in most slices (6 of 8" in m for m in res.summary["warnings"])


def test_a_fat_rich_body_is_not_called_swapped():
    """Obese anatomy (fat ring much larger than the liver) is mostly fat-dominant but not upside down."""
    w, f, _ = _abdomen(fat_outer_radius=39.0)
    assert np.mean(f[w + f > 0] > w[w + f > 0]) > 0.6
    clean = dixon_fat(_img(w), _img(f))
    assert not clean.summary["swap_check"]["suspected"]
    w2, f2 = w.copy(), f.copy()
    w2[5:], f2[5:] = f[5:], w[5:]
    res = dixon_fat(_img(w2), _img(f2))
    assert res.summary["swap_check"]["body_check_slices"] == [5, 6, 7]
    assert any("inputs look exchanged" in m for m in dixon_fat(_img(f), _img(w)).summary["warnings"])
