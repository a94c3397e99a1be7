"""ADC maps on synthetic data with analytic truth: exact noise-free fits, Rician-noise bias limits per method,
b-value selection, direction combination, masking and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import GeometryError, LiverMetsError, MissingDataError
from LiverMetsReviewLib.maps import combine_directions, fit_adc

B3 = (0.0, 400.0, 800.0)


def _img(arr: np.ndarray, spacing=(1.5, 1.2, 4.0), origin=(-100.0, -80.0, 20.0),
         direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def _mono(s0: np.ndarray, adc_1e6: np.ndarray, bs) -> list[sitk.Image]:
    return [_img(s0 * np.exp(-b * adc_1e6 * 1e-6)) for b in bs]


@pytest.fixture(scope="module")
def truth():
    """Noise-free volume: ADC 300..3500 x10^-6 mm^2/s and S0 200..2000 over the grid."""
    z, y, x = np.mgrid[:6, :20, :30].astype(np.float64)
    adc = 300.0 + 3200.0 * x / 29.0
    s0 = 200.0 + 1800.0 * y / 19.0 + 10 * z
    return s0, adc


@pytest.mark.parametrize("method", ["lls", "wls", "nlls"])
@pytest.mark.parametrize("bs", [B3, (50.0, 400.0, 800.0, 1000.0), (0.0, 1000.0)])
def test_noise_free_fit_is_exact(truth, method, bs):
    s0, adc = truth
    res = fit_adc(_mono(s0, adc, bs), bs, method=method, noise_floor=0.0, computed_b=(1500.0,))
    got = sitk.GetArrayFromImage(res.adc)
    np.testing.assert_allclose(got, adc, rtol=1e-4)
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.s0), s0, rtol=1e-4)
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.computed[1500.0]), s0 * np.exp(-1500e-6 * adc), rtol=2e-4)
    q = sitk.GetArrayFromImage(res.quality)
    assert q.min() > 0.9999 and q.max() <= 1.0
    assert res.summary["masked_voxels"] == 0
    assert res.summary["units"]["adc"] == "1e-6 mm2/s"
    assert res.summary["b_values_used"] == sorted(bs)
    for out in (res.adc, res.s0, res.quality, res.mask, res.computed[1500.0]):
        assert out.GetSpacing() == (1.5, 1.2, 4.0) and out.GetOrigin() == (-100.0, -80.0, 20.0)
    assert res.adc.GetPixelID() == sitk.sitkFloat32
    assert res.metadata["adc"]["units"] == "1e-6 mm2/s" and res.metadata["adc"]["method"] == method


def test_excluding_low_b_removes_perfusion():
    """IVIM-like signal: with f = 10 %, D* = 0.05 mm^2/s, only b >= 200 gives back D (perfusion term < 5e-5)."""
    d, f, dstar = 1100.0, 0.10, 0.05
    bs = (0.0, 50.0, 200.0, 500.0, 800.0)
    s = [_img(np.full((2, 4, 4), 1000.0 * ((1 - f) * np.exp(-b * d * 1e-6) + f * np.exp(-b * dstar))))
         for b in bs]
    all_b = fit_adc(s, bs, noise_floor=0.0)
    high_b = fit_adc(s, bs, exclude_below=200.0, noise_floor=0.0)
    assert high_b.summary["b_values_used"] == [200.0, 500.0, 800.0]
    assert high_b.summary["b_values_excluded"] == [0.0, 50.0]
    np.testing.assert_allclose(sitk.GetArrayFromImage(high_b.adc), d, rtol=1e-4)
    assert sitk.GetArrayFromImage(all_b.adc).min() > 1.05 * d  # perfusion inflates the all-b ADC
    only = fit_adc(s, bs, include=(200.0, 800.0), noise_floor=0.0)
    assert only.summary["b_values_used"] == [200.0, 800.0]
    np.testing.assert_allclose(sitk.GetArrayFromImage(only.adc), d, rtol=1e-4)


def test_directions_combine_by_geometric_mean_and_trace_is_used_as_is():
    """Three orthogonal directions with different ADC: the geometric mean gives the mean diffusivity exactly."""
    s0 = np.full((3, 5, 6), 800.0)
    dx, dy, dz = 700.0, 1300.0, 2200.0
    imgs = [_img(s0)] + [_img(s0 * np.exp(-600e-6 * d)) for d in (dx, dy, dz)]
    comb, bs, notes = combine_directions(imgs, [0, 600, 600, 600])
    assert bs == [0.0, 600.0] and len(comb) == 2 and any("geometric mean" in n for n in notes)
    res = fit_adc(comb, bs, noise_floor=0.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.adc), (dx + dy + dz) / 3, rtol=1e-4)
    trace = _img(s0 * np.exp(-600e-6 * 1000.0))
    comb, bs, notes = combine_directions(imgs + [trace], [0, 600, 600, 600, 600], is_trace=[0, 0, 0, 0, 1])
    res = fit_adc(comb, bs, noise_floor=0.0)
    np.testing.assert_allclose(sitk.GetArrayFromImage(res.adc), 1000.0, rtol=1e-4)
    assert any("trace image was used" in n for n in notes)


def test_background_and_mask_are_masked_and_counted():
    s0 = np.full((4, 10, 10), 1000.0)
    s0[:, :3, :] = 0.0          # 4*3*10 = 120 background voxels (signal 0)
    adc = np.full(s0.shape, 1500.0)
    imgs = _mono(s0, adc, B3)
    mask = np.ones(s0.shape, np.uint8)
    mask[0] = 0                 # 100 voxels, 30 of them already background
    res = fit_adc(imgs, B3, mask=_mask_like(imgs[0], mask))
    got = sitk.GetArrayFromImage(res.adc)
    m = sitk.GetArrayFromImage(res.mask)
    assert res.summary["masked_voxels"] == 120 + 70
    assert res.summary["masked_reasons"]["outside_mask"] == 100
    assert res.summary["masked_reasons"]["below_noise_floor"] == 90
    assert np.all(got[m == 0] == 0) and np.all(sitk.GetArrayFromImage(res.s0)[m == 0] == 0)
    np.testing.assert_allclose(got[m == 1], 1500.0, rtol=1e-4)
    assert int(m.sum()) == s0.size - 190


def _mask_like(ref: sitk.Image, arr: np.ndarray) -> sitk.Image:
    m = sitk.GetImageFromArray(arr.astype(np.uint8))
    m.CopyInformation(ref)
    return m


def test_signal_rising_with_b_never_gives_negative_adc():
    s0 = np.full((2, 3, 4), 500.0)
    imgs = [_img(s0), _img(s0 * 1.2), _img(s0 * 1.3)]
    res = fit_adc(imgs, B3, noise_floor=0.0)
    assert res.summary["masked_reasons"]["negative_adc"] == s0.size
    assert np.all(sitk.GetArrayFromImage(res.adc) == 0)


def test_zero_signal_at_high_b_is_clipped_not_infinite():
    s0 = np.full((2, 3, 4), 500.0)
    high = s0 * np.exp(-800 * 1e-3)
    high[0, 0, :3] = 0.0  # signal lost at b=800 in three voxels
    imgs = [_img(s0), _img(s0 * np.exp(-400 * 1e-3)), _img(high)]
    res = fit_adc(imgs, B3, noise_floor=0.0)
    got = sitk.GetArrayFromImage(res.adc)
    assert np.all(np.isfinite(got)) and got.max() <= 5000.0
    assert res.summary["clipped_high_voxels"] == 3 and res.summary["warnings"]
    np.testing.assert_allclose(got[1], 1000.0, rtol=1e-4)


# ------------------------------------------------------------------ Rician noise
def _rician(s: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.abs(s + sigma * rng.standard_normal(s.shape) + 1j * sigma * rng.standard_normal(s.shape))


def _rician_study(snr: float, seed: int = 1234):
    """SNR ``snr`` at b=0 (sigma 1), ADC 1000/2000/3000 in three bands of 12,000 voxels, b = 0/400/800."""
    rng = np.random.default_rng(seed)
    adc = np.repeat(np.array([1000.0, 2000.0, 3000.0]), 12000).reshape(3, 60, 200)
    s0 = np.full(adc.shape, float(snr))
    imgs = [_img(_rician(s0 * np.exp(-b * adc * 1e-6), 1.0, rng)) for b in B3]
    return imgs, adc


@pytest.fixture(scope="module")
def rician_study():
    return _rician_study(20.0)


# Stated bias limits, |median ADC / true - 1| in percent over 12,000 voxels, b 0/400/800, by SNR at b=0.
# The nonlinear fit with the Rician correction stays within 3 % for ADC 1.0-3.0 x10^-3 mm^2/s at SNR >= 20 and
# within 5 % at SNR 10; the log-linear fits are biased low where the b=800 signal nears the noise floor (ADC 3.0
# at SNR 10: about 1 sigma).
LIMITS = {
    10: {"lls": (4.0, 10.0, 25.0), "wls": (4.0, 9.0, 16.0), "nlls": (5.0, 5.0, 5.0)},
    20: {"lls": (2.5, 2.5, 8.0), "wls": (2.5, 2.5, 6.0), "nlls": (3.0, 3.0, 3.0)},
    50: {"lls": (1.0, 1.0, 2.0), "wls": (1.0, 1.0, 1.5), "nlls": (1.0, 1.0, 1.0)},
}


@pytest.mark.parametrize("snr", [10, 20, 50])
@pytest.mark.parametrize("method", ["lls", "wls", "nlls"])
def test_rician_bias_within_stated_limits(snr, method):
    imgs, adc = _rician_study(float(snr), seed=1000 + snr)
    res = fit_adc(imgs, B3, method=method, noise_floor=0.0, noise_sigma=1.0)
    got = sitk.GetArrayFromImage(res.adc)
    fitted = sitk.GetArrayFromImage(res.mask) == 1
    for k, d in enumerate((1000, 2000, 3000)):
        band = got[k][fitted[k]]
        assert band.size > 0.95 * got[k].size
        bias = 100 * (np.median(band) / d - 1)
        assert abs(bias) < LIMITS[snr][method][k], f"{method} SNR {snr} ADC {d}: median bias {bias:.2f} %"
    assert np.all(np.isfinite(got))


def test_nlls_is_less_biased_than_lls_at_low_snr(rician_study):
    imgs, adc = rician_study
    lls = sitk.GetArrayFromImage(fit_adc(imgs, B3, noise_floor=0.0).adc)[2]
    nlls = sitk.GetArrayFromImage(fit_adc(imgs, B3, method="nlls", noise_floor=0.0, noise_sigma=1.0).adc)[2]
    assert abs(np.median(nlls) / 3000 - 1) < abs(np.median(lls) / 3000 - 1) / 2


B_LIVER = [50.0, 400.0, 800.0]


def _liver_protocol_study(rng: np.random.Generator, air: bool):
    """b = 50/400/800, SNR 20 on the b=50 image (sigma 1), ADC drawn in 1.0-3.0 x10^-3 mm^2/s in five bands of
    6,000 voxels; optionally as much air (pure Rician noise) beside it, for the background estimate of sigma."""
    adcs = np.sort(rng.uniform(1000.0, 3000.0, 5))
    adcs[0], adcs[-1] = 1000.0, 3000.0                      # the ends of the stated range always included
    adc = np.repeat(adcs, 6000).reshape(5, 30, 200)
    s0 = 20.0 / np.exp(-50.0 * adc * 1e-6)
    imgs = []
    for b in B_LIVER:
        m = _rician(s0 * np.exp(-b * adc * 1e-6), 1.0, rng)
        if air:
            m = np.concatenate([m, _rician(np.zeros_like(m), 1.0, rng)], axis=2)
        imgs.append(_img(m))
    return imgs, adcs


@pytest.mark.parametrize("air", [False, True])
def test_nlls_rician_bias_within_3_percent_at_snr_20_liver_b_values(air):
    """The issue's low-SNR case: median bias within 3 % for ADC 1.0-3.0 x10^-3 mm^2/s at SNR 20 on the lowest b
    (b 50/400/800; at ADC 3.0 the b=800 signal is about 2 sigma), with sigma given or estimated from the air."""
    rng = np.random.default_rng(11)
    imgs, adcs = _liver_protocol_study(rng, air)
    res = fit_adc(imgs, B_LIVER, method="nlls", **({} if air else {"noise_floor": 0.0, "noise_sigma": 1.0}))
    got = sitk.GetArrayFromImage(res.adc)[:, :, :200]
    fitted = sitk.GetArrayFromImage(res.mask)[:, :, :200] == 1
    if air:
        assert res.summary["noise_sigma"] == pytest.approx(1.0, rel=0.1)
    for k, d in enumerate(adcs):
        band = got[k][fitted[k]]
        assert band.size > 0.98 * got[k].size, (d, band.size)
        bias = 100 * (np.median(band) / d - 1)
        assert abs(bias) < 3.0, f"ADC {d:.0f}: median bias {bias:.2f} %"


def test_voxels_without_signal_at_high_b_are_masked_and_counted_not_clipped():
    """A voxel whose b=400 and b=800 images hold only noise (S0 20 sigma at b=50, but an ADC far beyond free
    water) has no measurable slope: masked as high_b_at_noise_floor (>= 95 % of them), while tissue with ADC
    3.0 x10^-3 mm^2/s at the same SNR is kept (>= 99 %)."""
    rng = np.random.default_rng(12)
    adc = np.concatenate([np.full((3, 40, 100), 30000.0), np.full((3, 40, 100), 3000.0)], axis=2)
    s0 = 20.0 / np.exp(-50.0 * adc * 1e-6)
    imgs = [_img(_rician(s0 * np.exp(-b * adc * 1e-6), 1.0, rng)) for b in B_LIVER]
    for method in ("lls", "nlls"):
        res = fit_adc(imgs, B_LIVER, method=method, noise_floor=0.0, noise_sigma=1.0)
        m = sitk.GetArrayFromImage(res.mask)
        empty, tissue = m[:, :, :100], m[:, :, 100:]
        assert empty.mean() <= 0.05, empty.mean()
        assert tissue.mean() >= 0.99, tissue.mean()
        n_floor = res.summary["masked_reasons"]["high_b_at_noise_floor"]
        assert n_floor >= 0.95 * empty.size and n_floor <= int((m == 0).sum())
        assert res.summary["masked_voxels"] == int((m == 0).sum())
        assert any("no measurable signal" in n for n in res.summary["notes"])


def test_chi_square_quantile_closed_form():
    """The closed-form even-dof quantile against known values (chi-square tables): 4 dof 0.99 -> 13.277,
    2 dof 0.95 -> 5.991, 6 dof 0.5 -> 5.348."""
    from LiverMetsReviewLib.maps.adc_floor import chi2_quantile_even_dof

    assert chi2_quantile_even_dof(0.99, 4) == pytest.approx(13.2767, abs=1e-3)
    assert chi2_quantile_even_dof(0.95, 2) == pytest.approx(5.9915, abs=1e-3)
    assert chi2_quantile_even_dof(0.5, 6) == pytest.approx(5.3481, abs=1e-3)


def test_noise_level_estimated_from_background():
    """Half the field of view is air (pure Rician noise, sigma 2): sigma found, air masked, nlls still unbiased."""
    rng = np.random.default_rng(7)
    s0 = np.zeros((4, 80, 100))
    s0[:, :, 50:] = 40.0  # SNR 20
    adc = np.full(s0.shape, 2000.0)
    imgs = [_img(_rician(s0 * np.exp(-b * adc * 1e-6), 2.0, rng)) for b in B3]
    res = fit_adc(imgs, B3, method="nlls")
    assert res.summary["noise_sigma"] == pytest.approx(2.0, rel=0.15)
    m = sitk.GetArrayFromImage(res.mask)
    assert m[:, :, :50].mean() < 0.02          # air masked (a few noise spikes may pass)
    assert m[:, :, 50:].mean() > 0.99          # tissue kept
    got = sitk.GetArrayFromImage(res.adc)[:, :, 50:]
    assert abs(np.median(got) / 2000 - 1) < 0.03
    assert res.summary["masked_voxels"] == int((m == 0).sum())


# ------------------------------------------------------------------ geometry
def test_image_on_another_grid_is_resampled_onto_the_first():
    s0 = np.full((4, 10, 10), 1000.0)
    imgs = _mono(s0, np.full(s0.shape, 1200.0), B3)
    shifted = _img(sitk.GetArrayFromImage(imgs[2]), origin=(-100.0 + 3.0, -80.0, 20.0))  # 2 voxel columns lost
    res = fit_adc([imgs[0], imgs[1], shifted], B3, noise_floor=0.0)
    assert any("resampled" in n for n in res.summary["notes"])
    assert res.summary["masked_reasons"]["outside_input_grid"] == 4 * 10 * 2
    got = sitk.GetArrayFromImage(res.adc)
    np.testing.assert_allclose(got[sitk.GetArrayFromImage(res.mask) == 1], 1200.0, rtol=1e-4)


def test_grids_that_do_not_overlap_are_refused():
    s0 = np.full((4, 10, 10), 1000.0)
    imgs = _mono(s0, np.full(s0.shape, 1200.0), B3)
    far = _img(sitk.GetArrayFromImage(imgs[2]), origin=(400.0, 400.0, 400.0))
    with pytest.raises(GeometryError, match="does not overlap"):
        fit_adc([imgs[0], imgs[1], far], B3)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("images, bs, exc, match", [
    ("one", [0], MissingDataError, "at least two b-values"),
    ("three", [0, 400, 400], LiverMetsError, "more than once"),
    ("three", [0, 400], LiverMetsError, "one b-value per image"),
    ("three", [0, -5, 800], LiverMetsError, ">= 0"),
])
def test_bad_b_values(images, bs, exc, match):
    s0 = np.full((2, 3, 4), 100.0)
    imgs = _mono(s0, np.full(s0.shape, 1000.0), B3)[: 1 if images == "one" else 3]
    with pytest.raises(exc, match=match):
        fit_adc(imgs, bs)


def test_selection_leaving_one_b_value_is_refused():
    s0 = np.full((2, 3, 4), 100.0)
    imgs = _mono(s0, np.full(s0.shape, 1000.0), B3)
    with pytest.raises(MissingDataError, match="only 1 b-value"):
        fit_adc(imgs, B3, exclude_below=500)
    with pytest.raises(MissingDataError, match="not among the inputs"):
        fit_adc(imgs, B3, include=(0, 1000))


def test_all_zero_and_negative_images_are_refused():
    s0 = np.full((2, 3, 4), 100.0)
    imgs = _mono(s0, np.full(s0.shape, 1000.0), B3)
    with pytest.raises(LiverMetsError, match="all zero"):
        fit_adc([imgs[0], imgs[1], _img(np.zeros_like(s0))], B3)
    neg = sitk.GetArrayFromImage(imgs[1])
    neg[0, 0, 0] = -3
    with pytest.raises(LiverMetsError, match="negative values"):
        fit_adc([imgs[0], _img(neg), imgs[2]], B3)
    with pytest.raises(LiverMetsError, match="unknown ADC method"):
        fit_adc(imgs, B3, method="ivim")


def test_shapes_that_cannot_be_matched_are_refused():
    s0 = np.full((2, 3, 4), 100.0)
    imgs = _mono(s0, np.full(s0.shape, 1000.0), B3)
    two_d = sitk.GetImageFromArray(np.ones((3, 4), np.float32))
    with pytest.raises(GeometryError, match="2-D"):
        fit_adc([imgs[0], imgs[1], two_d], B3)


def test_non_finite_input_voxels_are_masked_and_counted():
    s0 = np.full((2, 3, 4), 100.0)
    imgs = _mono(s0, np.full(s0.shape, 1000.0), B3)
    a = sitk.GetArrayFromImage(imgs[1])
    a[0, 0, :2] = np.nan
    a[1, 2, 3] = np.inf
    res = fit_adc([imgs[0], _img(a), imgs[2]], B3, noise_floor=0.0)
    assert res.summary["masked_reasons"]["non_finite_input"] == 3
    got = sitk.GetArrayFromImage(res.adc)
    assert np.all(np.isfinite(got)) and np.count_nonzero(got == 0) == 3


def _raise_on_runtime_warnings(fn, *args, **kwargs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # the same as running pytest with -W error::RuntimeWarning
        return fn(*args, **kwargs)


@pytest.mark.parametrize("method", ["lls", "wls", "nlls"])
@pytest.mark.parametrize("arrays", [
    [np.full((2, 3, 4), 1.0), np.full((2, 3, 4), 1e30), np.full((2, 3, 4), 3e38)],      # rising by 38 decades
    [np.full((2, 3, 4), 1e-30), np.full((2, 3, 4), 1e30), np.full((2, 3, 4), 2e30)],    # tiny first b, huge later
])
def test_absurd_signals_raise_no_floating_point_warning_and_stay_finite(method, arrays):
    """Signals that rise by tens of decades overflow naive intermediate products (exp of the WLS weights, the
    Gauss-Newton sums, the residuals); the fit must neither warn nor leak NaN/inf, and a rising signal is a
    negative ADC: masked and counted."""
    res = _raise_on_runtime_warnings(fit_adc, [_img(a) for a in arrays], B3, method=method, noise_floor=0.0)
    for img in (res.adc, res.s0, res.quality):
        assert np.all(np.isfinite(sitk.GetArrayFromImage(img)))
    assert res.summary["masked_reasons"]["negative_adc"] == 24 and res.summary["voxels_fitted"] == 0


def test_nlls_voxel_with_non_finite_sums_is_not_converged_and_keeps_its_start():
    """A start whose S0 overflows S0^2 makes the Gauss-Newton sums non-finite: that voxel leaves the iteration
    unconverged and keeps its (WLS) start, while a normal voxel beside it converges to the analytic truth."""
    from LiverMetsReviewLib.maps.adc import _nlls

    b = np.array([0.0, 0.4, 0.8])                      # scaled units (10^3 s/mm^2)
    truth_s0, truth_adc = 0.9, 1.2                     # scaled ADC 1.2 = 1200 x10^-6 mm^2/s
    sig = np.stack([np.full(2, truth_s0 * np.exp(-bk * truth_adc)) for bk in b]).astype(np.float32)
    s0_start = np.array([1e30, 0.8], np.float32)
    adc_start = np.array([1.0, 1.0], np.float32)
    p0, p1 = _raise_on_runtime_warnings(_nlls, sig, b, s0_start, adc_start, 0.0, 30, 1e-3)
    assert p0[0] == np.float32(1e30) and p1[0] == np.float32(1.0)
    assert p0[1] == pytest.approx(truth_s0, rel=1e-4) and p1[1] == pytest.approx(truth_adc, rel=1e-4)
