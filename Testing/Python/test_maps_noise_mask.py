"""Signal/noise decision of magnitude images against the Rayleigh/Rician statistics it claims.

Every expected figure comes from the noise distribution: Rayleigh P(M > k sigma) = exp(-k^2/2), chi-square(2n) for
the neighbourhood sum, Rician for tissue. Noise is drawn from complex Gaussians, so the test does not reuse the
phantom's noise code.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.stats import rice

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.maps.adc import fit_adc
from LiverMetsReviewLib.maps.defaults import defaults
from LiverMetsReviewLib.maps.noise_mask import k_for_rayleigh_rate, noise_mask

SIGMA = 10.0
SHAPE = (24, 128, 160)  # 491 520 voxels


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    re = signal + rng.normal(0.0, sigma, signal.shape)
    im = rng.normal(0.0, sigma, signal.shape)
    return np.hypot(re, im).astype(np.float32)


@pytest.fixture(scope="module")
def volume():
    """Background (signal 0) with a tissue slab at SNR 5 and one at SNR 8; returns (magnitude, tissue snr map)."""
    rng = np.random.default_rng(2026)
    snr = np.zeros(SHAPE)
    snr[4:20, 40:90, 30:80] = 5.0
    snr[4:20, 40:90, 80:130] = 8.0
    return _rician(snr * SIGMA, SIGMA, rng), snr


def _away_from_tissue(snr: np.ndarray, margin: int = 1) -> np.ndarray:
    from scipy import ndimage as ndi

    return ~ndi.binary_dilation(snr > 0, iterations=margin, structure=np.ones((3, 3, 3), bool))


def test_k_is_the_rayleigh_quantile():
    assert k_for_rayleigh_rate(1e-4) == pytest.approx(np.sqrt(2 * np.log(1e4)), rel=1e-12)
    rng = np.random.default_rng(1)
    m = _rician(np.zeros(2_000_000), 1.0, rng)
    k = k_for_rayleigh_rate(1e-2)
    assert np.mean(m > k) == pytest.approx(1e-2, rel=0.05)  # 20 000 expected exceedances: 0.7 % standard error
    with pytest.raises(LiverMetsError):
        k_for_rayleigh_rate(0.0)


def test_background_rate_below_stated_and_tissue_at_snr5_kept(volume):
    values, snr = volume
    res = noise_mask(values, SIGMA)
    stated = res.settings["false_positive_rate_background"]
    assert stated == pytest.approx(1e-4)  # the rate maps_defaults.json states
    bg = _away_from_tissue(snr)
    assert bg.sum() > 350_000
    assert np.count_nonzero(res.keep & bg) / bg.sum() < stated
    for level in (5.0, 8.0):
        tissue = snr == level
        assert np.mean(res.keep[tissue]) >= 0.99, level
    # SNR 5 tissue is lost only below the tissue threshold: Rician P(M < 2 sigma | S = 5 sigma)
    lost = 1.0 - np.mean(res.keep[snr == 5.0])
    assert lost < 3 * rice.cdf(res.settings["k_tissue"], 5.0) + 1e-3
    # the counts cover exactly the removed usable voxels
    assert sum(res.counts.values()) == values.size - int(res.keep.sum())


def test_without_pooling_or_groups_the_single_voxel_rate_is_what_rayleigh_says():
    """The rule's parts in isolation: single-voxel threshold alone passes noise at its nominal rate."""
    rng = np.random.default_rng(5)
    noise = _rician(np.zeros(SHAPE), SIGMA, rng)
    cfg = dict(defaults("noise_mask"), false_positive_rate_single=1e-3, false_positive_rate_pooled=1e-12,
               min_component_voxels=1)
    frac = np.mean(noise_mask(noise, SIGMA, settings=cfg).keep)
    assert frac == pytest.approx(1e-3 + 1e-12, rel=0.1)  # 491 expected: 4.5 % standard error


def test_neighbourhood_test_passes_noise_at_its_chi_square_rate():
    """Pooled test alone (tissue threshold 0): the per-voxel pass rate equals the chi-square tail, edges included."""
    rng = np.random.default_rng(6)
    noise = _rician(np.zeros(SHAPE), SIGMA, rng)
    cfg = dict(defaults("noise_mask"), false_positive_rate_single=1e-12, false_positive_rate_pooled=1e-3,
               tissue_threshold_sigmas=0.0, min_component_voxels=1)
    keep = noise_mask(noise, SIGMA, settings=cfg).keep
    assert np.mean(keep) == pytest.approx(1e-3, rel=0.25)  # exceedances come in clusters: wider band
    # the faces of the volume (fewer neighbours, their own quantile) pass at the same rate
    faces = np.zeros(SHAPE, bool)
    faces[[0, -1]] = True
    faces[:, [0, -1]] = True
    faces[:, :, [0, -1]] = True
    assert np.mean(keep[faces]) < 3e-3


def test_isolated_groups_are_removed_and_counted():
    values = np.zeros((9, 30, 30), np.float32)
    values[4, 5, 5:8] = 1000.0                # 3 bright voxels alone: speckle
    values[2:7, 15:20, 15:20] = 1000.0        # 125 voxels: anatomy
    res = noise_mask(values, SIGMA)
    assert not res.keep[4, 5, 5:8].any()
    assert res.keep[2:7, 15:20, 15:20].all()
    assert res.counts["isolated_component"] == 3
    assert int(res.keep.sum()) == 125


def test_bad_sigma_is_refused():
    with pytest.raises(LiverMetsError, match="sigma"):
        noise_mask(np.ones((3, 3, 3)), 0.0)


def test_adc_masks_background_at_the_stated_rate_with_estimated_sigma(volume):
    """Through fit_adc: sigma estimated from the background, reasons counted, background left at < 1e-4."""
    values, snr = volume
    rng = np.random.default_rng(11)
    bs = (50.0, 400.0, 800.0)
    s0 = snr * SIGMA / np.exp(-50e-6 * 1000.0)  # SNR 5 / 8 at the lowest b, ADC 1.0e-3 mm2/s
    imgs = []
    for b in bs:
        a = values if b == 50.0 else _rician(s0 * np.exp(-b * 1e-3), SIGMA, rng)
        imgs.append(sitk.GetImageFromArray(a))
    res = fit_adc(imgs, bs)
    assert res.summary["noise_sigma"] == pytest.approx(SIGMA, rel=0.05)
    m = sitk.GetArrayFromImage(res.mask).astype(bool)
    bg = _away_from_tissue(snr)
    assert np.count_nonzero(m & bg) / bg.sum() < res.summary["noise_rule"]["false_positive_rate_background"]
    reasons = res.summary["masked_reasons"]
    tissue = snr > 0
    # tissue lost to the noise decision (negative-ADC fits at SNR 5 are a separate, counted reason)
    noise_lost = np.count_nonzero(tissue & ~m) - reasons["negative_adc"] - reasons["fit_failed"]
    assert noise_lost <= 0.01 * tissue.sum()
    # high_b_at_noise_floor: background voxels that passed the lowest-b test but hold no signal at b >= 400
    noise_keys = ("below_noise_floor", "noise_like_neighbourhood", "isolated_voxels", "high_b_at_noise_floor")
    assert sum(reasons[k] for k in noise_keys) + reasons["negative_adc"] + reasons["fit_failed"] == \
        res.summary["masked_voxels"]


def test_four_component_background_passes_at_the_chi_square_rate():
    """sqrt(W^2 + F^2) of two independent magnitudes: chi-square with 4 degrees of freedom per voxel."""
    rng = np.random.default_rng(8)
    w, f = _rician(np.zeros(SHAPE), SIGMA, rng), _rician(np.zeros(SHAPE), SIGMA, rng)
    cfg = dict(defaults("noise_mask"), false_positive_rate_single=1e-3, false_positive_rate_pooled=1e-12,
               min_component_voxels=1)
    res = noise_mask(np.hypot(w, f), SIGMA, settings=cfg, dof=4)
    x = res.settings["k_single"] ** 2
    assert np.exp(-x / 2) * (1 + x / 2) == pytest.approx(1e-3, rel=1e-6)  # chi-square(4) tail in closed form
    assert np.mean(res.keep) == pytest.approx(1e-3, rel=0.1)


def test_dixon_and_enhancement_backgrounds_at_the_stated_rate(volume):
    """The other maps use the same decision: Dixon on sqrt(W^2 + F^2), enhancement on the pre-contrast image."""
    from LiverMetsReviewLib.maps.enhancement import relative_enhancement
    from LiverMetsReviewLib.maps.fat import dixon_fat

    values, snr = volume
    rng = np.random.default_rng(12)
    bg = _away_from_tissue(snr)
    water = values
    fat = _rician(0.3 * snr * SIGMA, SIGMA, rng)       # 23 % fat fraction in the slabs
    res = dixon_fat(sitk.GetImageFromArray(water), sitk.GetImageFromArray(fat))
    valid = sitk.GetArrayFromImage(res.flags) == 0
    assert res.summary["noise_sigma"] == pytest.approx(SIGMA, rel=0.05)
    assert np.count_nonzero(valid & bg) / bg.sum() < res.summary["noise_rule"]["false_positive_rate_background"]
    assert valid[snr > 0].mean() >= 0.99
    post = _rician(1.5 * snr * SIGMA, SIGMA, rng)     # 50 % enhancement
    enh = relative_enhancement(sitk.GetImageFromArray(values), sitk.GetImageFromArray(post))
    m = sitk.GetArrayFromImage(enh.mask).astype(bool)
    assert np.count_nonzero(m & bg) / bg.sum() < enh.summary["noise_rule"]["false_positive_rate_background"]
    # SNR 8 pre-contrast: kept unless the noise pushed it under the 5-sigma ratio limit (Rician P(M < 5 | 8) ~ 1 %)
    assert m[snr == 8.0].mean() > 1.0 - 3 * rice.cdf(5.0, 8.0)
    # SNR 5 pre-contrast sits at the ratio limit: about half is masked, counted as too weak, not as noise
    assert 0.3 < m[snr == 5.0].mean() < 0.7
    assert enh.summary["masked_reasons"]["below_min_snr"] >= np.count_nonzero(~m[snr == 5.0])


@pytest.mark.parametrize("size", [(3, 3, 3), (1, 5, 3), (5, 3, 7)])
def test_box_sum_equals_the_windowed_sum(size):
    """The fast separable box sum against a direct uniform filter (zeros outside, edges included)."""
    from scipy import ndimage as ndi

    from LiverMetsReviewLib.maps.noise_mask import box_sum

    rng = np.random.default_rng(3)
    a = rng.random((4, 9, 6)).astype(np.float32)
    expected = ndi.uniform_filter(a.astype(np.float64), size=size, mode="constant") * np.prod(size)
    np.testing.assert_allclose(box_sum(a, size), expected, rtol=1e-5, atol=1e-5)


def test_small_group_removal_equals_full_labelling():
    """The shortcut (certain voxels, then labelling only the rest) drops exactly the groups a full 26-connected
    labelling finds smaller than the limit - including thin lines that are long but never locally dense."""
    from scipy import ndimage as ndi

    from LiverMetsReviewLib.maps.noise_mask import _drop_small_groups

    rng = np.random.default_rng(4)
    keep = rng.random((12, 40, 40)) < 0.08
    keep[6, 5, 5:30] = True              # a long 1-voxel line: 25 voxels, at most 3 per 3x3x3 box
    keep[2:6, 20:30, 20:30] = True       # a dense block
    labels, n = ndi.label(keep, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())
    for limit in (2, 5, 9):
        expected = keep & (sizes[labels] < limit)
        np.testing.assert_array_equal(_drop_small_groups(keep, limit), expected)


def test_small_group_removal_on_sparse_speckle_uses_the_point_grouping():
    """Sparse speckle (the usual case: edges and a few noise spikes) goes through the point grouping; it must
    agree with a full labelling, also for groups touching the volume's faces."""
    from scipy import ndimage as ndi

    from LiverMetsReviewLib.maps.noise_mask import _drop_small_groups

    rng = np.random.default_rng(9)
    keep = np.zeros((20, 64, 64), bool)
    keep[5:15, 10:50, 10:50] = True                    # body
    keep.flat[rng.choice(keep.size, 300, replace=False)] = True
    keep[0, 0, 0:3] = True                             # a 3-voxel group in a corner
    keep[19, 63, 60:64] = True                         # a 4-voxel group on the opposite corner
    labels, _ = ndi.label(keep, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())
    np.testing.assert_array_equal(_drop_small_groups(keep, 5), keep & (sizes[labels] < 5))


def test_chi_square_quantiles_equal_scipys():
    """The closed-form (Poisson sum) quantiles that replace scipy.stats at import time equal scipy's chi2.isf,
    for drawn rates and every neighbourhood size up to 7x7x7, with 2 and 4 noise components, and odd dof too."""
    from scipy.stats import chi2

    from LiverMetsReviewLib.maps.noise_mask import chi2_isf

    rng = np.random.default_rng(11)
    dof = np.concatenate([2 * np.arange(1, 344), 4 * np.arange(1, 28), [1, 3, 7, 51]])
    for rate in np.concatenate([10.0 ** rng.uniform(-9, -1, 4), [5e-5, 0.5]]):
        np.testing.assert_allclose(chi2_isf(rate, dof), chi2.isf(rate, dof), rtol=1e-12)
        # the thresholds as the mask uses them (float32 after scaling by sigma^2) are the same numbers
        s2 = rng.uniform(1.0, 1e4)
        assert np.array_equal(np.float32(chi2_isf(rate, dof[:343]) * s2), np.float32(chi2.isf(rate, dof[:343]) * s2))
    assert float(chi2_isf(0.1, 2)) == pytest.approx(-2 * np.log(0.1), rel=1e-14)   # dof 2: exponential, closed form
    with pytest.raises(LiverMetsError):
        chi2_isf(0.0, 4)


def test_union_find_groups_equal_sparse_graph_components():
    """The numpy union-find gives the same partition as scipy's connected components, on random graphs and on a
    long chain whose node numbers zig-zag (the worst order for hooking onto the smaller root)."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    from LiverMetsReviewLib.maps.noise_mask import _components

    rng = np.random.default_rng(12)
    order = np.argsort(rng.random(3000))
    graphs = [(3000, order[:-1], order[1:])]                          # one long chain in random node order
    for n, m in ((1, 0), (50, 20), (2000, 1500), (2000, 4000)):
        graphs.append((n, rng.integers(0, n, m), rng.integers(0, n, m)))
    for n, r, c in graphs:
        ours = _components(n, np.asarray(r), np.asarray(c))
        ref = connected_components(sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)), directed=False)[1]
        # same partition: a one-to-one map between the two labelings
        pairs = np.unique(np.stack([ours, ref]), axis=1)
        assert pairs.shape[1] == np.unique(ours).size == np.unique(ref).size


def test_truncated_median_sigma_solves_its_equation_and_recovers_drawn_sigma():
    """The Rayleigh sigma from a truncated median (bisection instead of scipy's brentq): the median of the
    truncated distribution is the sample's median to rounding, and drawn noise gives back its sigma."""
    from LiverMetsReviewLib.maps.noise import _sigma_from_truncated_median

    rng = np.random.default_rng(13)
    for _ in range(200):
        m = rng.uniform(0.01, 1e4)
        t = m * rng.uniform(1.45, 40.0)
        s = _sigma_from_truncated_median(m, t)   # t / m >= 1.45 > sqrt(2): a root exists, within 0.8..3 x m
        assert s is not None and m / 20 < s < 1e3 * m
        cdf_m, cdf_t = (1.0 - np.exp(-v * v / (2 * s * s)) for v in (m, t))
        assert cdf_m == pytest.approx(0.5 * cdf_t, rel=1e-12)
    assert _sigma_from_truncated_median(1.0, 1.4) is None          # median above t / sqrt(2): not truncated noise
    for sigma in rng.uniform(0.5, 50.0, 5):
        noise = _rician(np.zeros(400_000), sigma, rng)
        t = 2.5 * sigma
        est = _sigma_from_truncated_median(float(np.median(noise[noise < t])), t)
        assert est == pytest.approx(sigma, rel=0.01)   # ~2.5e5 samples: median standard error well below 1 %


def test_robust_max_percentile_equals_numpy_on_drawn_arrays():
    """The 99th percentile of the noise floor is taken by one partition instead of ``np.percentile`` (which imports
    numpy.ma); it must give numpy's value exactly, in the array's own precision, for any size, scale and q."""
    from LiverMetsReviewLib.maps.noise import _percentile, robust_max

    rng = np.random.default_rng(11)
    for _ in range(400):
        n = int(rng.integers(1, 5000))
        dtype = (np.float32, np.float64)[int(rng.integers(2))]
        v = (rng.gamma(2.0, 1.0, n) * 10.0 ** rng.uniform(-3, 3)).astype(dtype)
        q = float(rng.choice([0.0, 50.0, 99.0, 100.0, rng.uniform(0, 100)]))
        assert _percentile(v, q) == float(np.percentile(v, q)), (n, dtype, q)
    img = rng.rayleigh(5.0, (8, 64, 64)).astype(np.float32)
    img[0, :4, :4] = 0.0
    assert robust_max(img) == float(np.percentile(img[img > 0], 99.0))


def test_median_and_distinct_values_equal_numpy_on_drawn_arrays():
    """The background's median and the distinct neighbourhood counts avoid ``np.median``/``np.unique`` (both import
    numpy.ma); they must give numpy's results exactly, in the array's own precision."""
    from LiverMetsReviewLib.maps.noise import distinct_values, median

    rng = np.random.default_rng(12)
    for _ in range(400):
        n = int(rng.integers(1, 5000))
        dtype = (np.float32, np.float64)[int(rng.integers(2))]
        v = (rng.gamma(2.0, 1.0, n) * 10.0 ** rng.uniform(-3, 3)).astype(dtype)
        assert median(v) == float(np.median(v)), (n, dtype)
        counts = rng.integers(0, int(rng.integers(1, 30)), size=(int(rng.integers(0, 6)), 3))
        np.testing.assert_array_equal(distinct_values(counts), np.unique(counts))
