"""Multi-echo PDFF / R2*: analytic multi-peak signals (noise-free and Rician), the phantom's multi_echo_gre against
its ground truth, real complex multi-echo data (plausibility), properties and bad input."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from conftest import shared_path
from LiverMetsReviewLib.cli import pdff_cmd
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.io.images import get_metadata, write_image
from LiverMetsReviewLib.maps.pdff import FLAG_AMBIGUOUS, fit_pdff, pdff_defaults
from LiverMetsReviewLib.physics.fat import default_fat_spectrum, fat_phasor
from LiverMetsReviewLib.physics.signal import spoiled_gre_factor

TE = {1.5: np.array([1.2 + 1.2 * k for k in range(6)]), 3.0: np.array([1.0 + 0.8 * k for k in range(6)])}


def _signal(ff: np.ndarray, r2s: np.ndarray, b0: float, te: np.ndarray, s0: float = 1000.0) -> np.ndarray:
    """Noise-free magnitudes |W + F c(TE)| exp(-R2* TE), last axis = echo (the model's own equation)."""
    spec = default_fat_spectrum()
    c = fat_phasor(te, b0, spec["ppm"], spec["amplitudes"], spec["gamma_mhz_per_t"])
    return s0 * np.abs((1 - ff)[..., None] + ff[..., None] * c) * np.exp(-r2s[..., None] * te / 1000.0)


def _images(sig: np.ndarray) -> list[sitk.Image]:
    """One float32 image per echo from a (..., n_echo) array of 2-D planes (z = 1)."""
    sig = sig if sig.ndim == 4 else sig[None]
    return [sitk.GetImageFromArray(np.ascontiguousarray(sig[..., k], dtype=np.float32)) for k in range(sig.shape[-1])]


def _arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


# --- analytic truth ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("b0", [1.5, 3.0])
def test_noise_free_pdff_r2star_exact_over_0_to_100_percent(b0):
    ff = np.linspace(0.0, 1.0, 101)
    r2 = np.array([0.0, 30.0, 100.0, 200.0, 300.0])
    FF, R2 = np.meshgrid(ff, r2, indexing="ij")
    res = fit_pdff(_images(_signal(FF, R2, b0, TE[b0]).astype(np.float64)), TE[b0], field_strength_t=b0,
                   noise_floor=0.0)
    p, r = _arr(res.pdff)[0], _arr(res.r2star)[0]
    assert np.all(_arr(res.mask)[0] == 1)
    np.testing.assert_allclose(p, FF * 100, atol=1e-3)          # includes > 50 %: the ambiguity resolved
    np.testing.assert_allclose(r, R2, atol=1e-3)
    np.testing.assert_allclose(_arr(res.water)[0] + _arr(res.fat)[0], 1000.0, rtol=1e-5)
    assert res.summary["ambiguous_voxels"] == 0
    assert res.summary["units"]["pdff"] == "percent" and res.summary["units"]["r2star"] == "1/s"
    assert res.summary["fat_model"]["source"] == default_fat_spectrum()["source"]


def test_default_fat_model_is_the_phantom_spectrum():
    """One spectrum for simulation and fit: the accessor returns phantom_protocol.json's peaks, normalised."""
    from LiverMetsReviewLib.resources import load_json

    phys = load_json("phantom_protocol.json")["physics"]
    spec = default_fat_spectrum()
    assert spec["ppm"] == phys["fat_spectrum"]["ppm_relative_to_water"]
    amps = np.array(phys["fat_spectrum"]["relative_amplitudes"])
    np.testing.assert_allclose(spec["amplitudes"], amps / amps.sum(), rtol=1e-12)
    assert spec["gamma_mhz_per_t"] == phys["gyromagnetic_ratio_mhz_per_t"]
    spec["ppm"].append(99.0)                                   # a copy: callers cannot alter the shared data
    assert 99.0 not in default_fat_spectrum()["ppm"]


def test_single_peak_model_is_used_when_given():
    """A one-peak fat model fits one-peak data exactly; the default six-peak model does not (it is not ignored)."""
    te, b0 = TE[1.5], 1.5
    one = {"ppm": [-3.4], "amplitudes": [1.0], "source": "single peak (test)"}
    df = default_fat_spectrum()["gamma_mhz_per_t"] * b0 * -3.4
    ff = np.linspace(0.05, 0.95, 19)[None, :]
    c = np.exp(2j * np.pi * df * te / 1000.0)
    sig = 1000 * np.abs((1 - ff)[..., None] + ff[..., None] * c) * np.exp(-40.0 * te / 1000.0)
    res = fit_pdff(_images(sig), te, field_strength_t=b0, fat_model=one, noise_floor=0.0)
    assert res.summary["fat_model"]["source"] == "single peak (test)"
    low = ff[0] < 0.5  # one peak: magnitude is symmetric in W <-> F, so only the folded value is identifiable
    np.testing.assert_allclose(np.minimum(_arr(res.pdff)[0, 0], 100 - _arr(res.pdff)[0, 0]),
                               np.where(low, ff[0], 1 - ff[0]) * 100, atol=1e-2)
    res6 = fit_pdff(_images(sig), te, field_strength_t=b0, noise_floor=0.0)
    assert np.max(_arr(res6.quality)) > 10 * np.max(_arr(res.quality))


def _patches(values, size):
    """Block image: one homogeneous size x size patch per value (tissue-like, so the neighbourhood vote applies)."""
    return np.kron(np.asarray(values, float)[None, :], np.ones((size, size)))


@pytest.mark.parametrize("b0,snr", [(1.5, 40.0), (3.0, 30.0)])
def test_rician_noise_bias_within_stated_limits(b0, snr):
    """SNR (first-echo total signal / sigma) 30-50: median PDFF within 1.5 points and median R2* within 8 1/s of
    the truth in each patch's interior; fat-water swaps (> 20 points off) in fewer than 2 % of interior voxels."""
    rng = np.random.default_rng(7)
    ffs = [0.0, 2.0, 10.0, 18.0, 35.0, 65.0, 82.0, 95.0, 100.0]
    size = 24
    FF = _patches(ffs, size) / 100.0
    R2 = np.full_like(FF, 45.0)
    sig = _signal(FF, R2, b0, TE[b0])
    sigma = 1000.0 / snr
    noisy = np.abs(sig + rng.normal(0, sigma, sig.shape) + 1j * rng.normal(0, sigma, sig.shape))
    res = fit_pdff(_images(noisy), TE[b0], field_strength_t=b0, noise_floor=0.0, noise_sigma=sigma)
    p, r = _arr(res.pdff)[0], _arr(res.r2star)[0]
    inner = np.zeros((size, size), bool)
    inner[3:-3, 3:-3] = True
    inner = np.tile(inner, (1, len(ffs)))
    for k, f in enumerate(ffs):
        m = inner & (np.arange(p.shape[1])[None, :] // size == k)
        assert abs(np.median(p[m]) - f) < 1.5, (f, np.median(p[m]))
        assert abs(np.median(r[m]) - 45.0) < 8.0, (f, np.median(r[m]))
        assert np.mean(np.abs(p[m] - f) > 20) < 0.02, (f, np.mean(np.abs(p[m] - f) > 20))
    assert np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 100


def test_decided_alone_a_noisy_voxel_can_swap_and_is_flagged():
    """Without the neighbourhood (window 1x1x1), magnitude data at SNR 40 (1.5 T, PDFF 15 %) swap in several % of
    voxels and at least 40 % of those are flagged; with the default neighbourhood fewer than 1 % swap."""
    rng = np.random.default_rng(3)
    FF = np.full((40, 40), 0.15)
    sig = _signal(FF, np.full_like(FF, 45.0), 1.5, TE[1.5])
    sigma = 1000 / 40
    noisy = np.abs(sig + rng.normal(0, sigma, sig.shape) + 1j * rng.normal(0, sigma, sig.shape))
    alone = fit_pdff(_images(noisy), TE[1.5], field_strength_t=1.5, noise_floor=0.0, noise_sigma=sigma,
                     vote_window=(1, 1, 1))
    voted = fit_pdff(_images(noisy), TE[1.5], field_strength_t=1.5, noise_floor=0.0, noise_sigma=sigma)
    pa, pv = _arr(alone.pdff)[0], _arr(voted.pdff)[0]
    swapped = np.abs(pa - 15) > 20
    assert swapped.mean() > 0.03
    assert np.mean(_arr(alone.flags)[0][swapped] == FLAG_AMBIGUOUS) > 0.4
    assert np.mean(np.abs(pv[4:-4, 4:-4] - 15) > 20) < 0.01
    assert "neighbourhood" in voted.summary["ambiguity_resolution"]


def _block_phantom(rng, n_blocks=(6, 6), block=20, lo=0.0, hi=100.0):
    """Piecewise-constant tissue: blocks (3 cm at 1.5 mm voxels) of PDFF drawn in [lo, hi] % and R2* in 20-200 1/s."""
    ffb = rng.uniform(lo, hi, n_blocks) / 100.0
    r2b = rng.uniform(20.0, 200.0, n_blocks)
    grow = np.ones((block, block))
    return np.kron(ffb, grow), np.kron(r2b, grow)


@pytest.mark.parametrize("lo,hi,median_limit", [(0.0, 100.0, 1.5), (10.0, 30.0, 1.7)])
def test_block_tissue_few_fat_water_swaps(lo, hi, median_limit):
    """Piecewise-constant tissue (three drawn phantoms of 36 blocks each, pooled), 6 echoes at 1.5 T (1.2 ms +
    1.2 ms k), Rician SNR 40 on the first echo's total signal: fat-water swaps (> 20 points off) in <= 1 % of the
    voxels of each draw, also in the 10-30 % range, edges included (a neighbour across a tissue edge must not decide a
    voxel's side); median |error| <= 1.5 points over PDFF 0-100 % (issue 11's goal). With PDFF 10-30 % only, the
    per-voxel noise alone gives a median near 1.55 (no swaps needed): limit 1.7. The draws are seeded (0, 1, 2) so
    the test is reproducible; one draw alone scatters its median by about +-0.1 point (36 blocks of R2* 20-200)."""
    errors = []
    for rng_seed in (0, 1, 2):
        rng = np.random.default_rng(rng_seed)
        FF, R2 = _block_phantom(rng, lo=lo, hi=hi)
        sig = _signal(FF, R2, 1.5, TE[1.5])
        sigma = 1000.0 / 40.0
        noisy = np.abs(sig + rng.normal(0, sigma, sig.shape) + 1j * rng.normal(0, sigma, sig.shape))
        res = fit_pdff(_images(noisy), TE[1.5], field_strength_t=1.5, noise_floor=0.0, noise_sigma=sigma)
        err = np.abs(_arr(res.pdff)[0] - FF * 100)
        mid = (FF >= 0.10) & (FF <= 0.30)
        assert np.mean(err > 20) <= 0.01, (rng_seed, np.mean(err > 20))
        if mid.sum() > 400:
            assert np.mean(err[mid] > 20) <= 0.01, (rng_seed, np.mean(err[mid] > 20))
        errors.append(err.ravel())
    assert np.median(np.concatenate(errors)) <= median_limit, np.median(np.concatenate(errors))


def test_progress_is_reported_up_to_one():
    calls = []
    FF, R2 = _block_phantom(np.random.default_rng(0), n_blocks=(2, 3))
    fit_pdff(_images(_signal(FF, R2, 1.5, TE[1.5])), TE[1.5], field_strength_t=1.5, noise_floor=0.0,
             progress=lambda f, msg: calls.append((f, msg)))
    fractions = [f for f, _ in calls]
    assert fractions and fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    assert all(isinstance(m, str) and m for _, m in calls)


def _complex_signal(ff, r2s, psi_hz, phi, b0, te, s0=1000.0):
    """Noise-free complex echoes (W + F c(TE)) exp(-R2* TE) exp(i (2 pi psi TE + phi)), last axis = echo."""
    spec = default_fat_spectrum()
    c = fat_phasor(te, b0, spec["ppm"], spec["amplitudes"], spec["gamma_mhz_per_t"])
    return s0 * ((1 - ff)[..., None] + ff[..., None] * c) * np.exp(
        -r2s[..., None] * te / 1000.0 + 1j * (2 * np.pi * psi_hz[..., None] * te / 1000.0 + phi[..., None]))


def _complex_images(sig: np.ndarray) -> list[sitk.Image]:
    sig = sig if sig.ndim == 4 else sig[None]
    return [sitk.RealAndImaginaryToComplex(sitk.GetImageFromArray(np.ascontiguousarray(sig[..., k].real)),
                                           sitk.GetImageFromArray(np.ascontiguousarray(sig[..., k].imag)))
            for k in range(sig.shape[-1])]


@pytest.mark.parametrize("b0", [1.5, 3.0])
def test_complex_noise_free_exact_with_field_map(b0):
    FF, R2 = np.meshgrid(np.linspace(0.0, 1.0, 101), [0.0, 30.0, 100.0, 300.0], indexing="ij")
    psi = np.linspace(-150.0, 150.0, FF.size).reshape(FF.shape)       # Hz, within +-1/(2 dTE)
    phi = np.linspace(-3.0, 3.0, FF.size).reshape(FF.shape)[::-1]
    res = fit_pdff(_complex_images(_complex_signal(FF, R2, psi, phi, b0, TE[b0])), TE[b0], field_strength_t=b0,
                   method="complex", noise_floor=0.0)
    np.testing.assert_allclose(_arr(res.pdff)[0], FF * 100, atol=1e-3)
    np.testing.assert_allclose(_arr(res.r2star)[0], R2, atol=1e-3)
    np.testing.assert_allclose(_arr(res.field_map)[0], psi, atol=1e-3)
    assert res.summary["method"] == "complex" and res.metadata["field_map"]["units"] == "Hz"


@pytest.mark.parametrize("b0,snr", [(1.5, 40.0), (3.0, 30.0)])
def test_complex_noise_resolves_fat_water_per_voxel_better_than_magnitude(b0, snr):
    """Deciding every voxel alone (window 1x1x1) at SNR 30-40: the complex fit (phase of water and fat tied
    together) swaps in fewer than 5 % of voxels of any PDFF with median bias < 1 point, and fewer voxels than the
    magnitude fit of the same data."""
    rng = np.random.default_rng(11)
    vals = [0.0, 5.0, 18.0, 35.0, 65.0, 90.0, 100.0]
    FF = _patches(vals, 20) / 100.0
    yy, xx = np.mgrid[: FF.shape[0], : FF.shape[1]]
    sig = _complex_signal(FF, np.full_like(FF, 45.0), 30 + 40 * np.sin(xx / 40.0), 0.5 + 0.01 * yy, b0, TE[b0])
    sigma = 1000.0 / snr
    sig = sig + rng.normal(0, sigma, sig.shape) + 1j * rng.normal(0, sigma, sig.shape)
    swaps = {}
    for method in ("complex", "magnitude"):
        res = fit_pdff(_complex_images(sig), TE[b0], field_strength_t=b0, method=method, noise_floor=0.0,
                       noise_sigma=sigma, vote_window=(1, 1, 1))
        p = _arr(res.pdff)[0]
        err = p - FF * 100
        swaps[method] = float(np.mean(np.abs(err) > 20))
        if method == "complex":
            for k, v in enumerate(vals):
                e = err[:, 20 * k:20 * (k + 1)]
                assert np.mean(np.abs(e) > 20) < 0.05, (v, np.mean(np.abs(e) > 20))
                assert abs(np.median(e)) < 1.0, (v, np.median(e))
    assert swaps["complex"] < swaps["magnitude"], swaps


@pytest.mark.parametrize("theta_max", [0.0, 0.25])
def test_complex_odd_even_phase_error_is_warned(theta_max):
    """A bipolar readout adds +theta to odd and -theta to even echoes (theta drawn, varying along the readout):
    the complex fit warns (and says to fit the magnitudes), the magnitude fit of the same data stays within 1.5
    points; consistent data raise no such warning."""
    rng = np.random.default_rng(13)
    te, b0 = TE[1.5], 1.5
    FF = np.tile(np.linspace(0.0, 0.4, 50), (30, 1))
    yy, xx = np.mgrid[:30, :50]
    sig = _complex_signal(FF, np.full_like(FF, 45.0), 30 + 0.5 * xx, 0.3 + 0.01 * yy, b0, te)
    theta = theta_max * rng.uniform(0.6, 1.0) * (0.3 + 0.7 * xx / 50.0)
    sig = sig * np.exp(1j * np.where(np.arange(te.size) % 2 == 0, 1.0, -1.0) * theta[..., None])
    sigma = 1000.0 / 40.0
    sig = sig + rng.normal(0, sigma, sig.shape) + 1j * rng.normal(0, sigma, sig.shape)
    res = fit_pdff(_complex_images(sig), te, field_strength_t=b0, method="complex", noise_floor=0.0,
                   noise_sigma=sigma)
    warned = [w for w in res.summary["warnings"] if "odd and even echoes" in w]
    assert bool(warned) == (theta_max > 0), res.summary["odd_even_phase_check"]
    if warned:
        assert "method 'magnitude'" in warned[0]
        mag = fit_pdff(_complex_images(sig), te, field_strength_t=b0, noise_floor=0.0, noise_sigma=sigma)
        assert np.median(np.abs(_arr(mag.pdff)[0] - FF * 100)) < 1.5
        assert not [w for w in mag.summary["warnings"] if "odd and even" in w]


def test_complex_method_needs_complex_images():
    echoes, tes = _good()
    with pytest.raises(LiverMetsError, match="needs complex echo images"):
        fit_pdff(echoes, tes, field_strength_t=1.5, method="complex")


# --- the phantom ---------------------------------------------------------------------------------------------------

def _apparent_pdff(ff_percent: float, t1_water_ms: float, study) -> float:
    """PDFF the fit should see: the protocol's spoiled-GRE T1 weighting of water and fat (not corrected by the fit)."""
    me = study.series_by_role("multi_echo_gre").meta
    from LiverMetsReviewLib.resources import load_json

    table = load_json("phantom_protocol.json")["physics"]["fat_relaxation"]["by_field_strength"]
    fat_t1 = next(v["t1_ms"] for k, v in table.items() if abs(float(k) - study.truth["field_strength_t"]) < 1e-6)
    gw = spoiled_gre_factor(1000.0 / t1_water_ms, me["repetition_time_ms"], me["flip_angle_deg"])
    gf = spoiled_gre_factor(1000.0 / fat_t1, me["repetition_time_ms"], me["flip_angle_deg"])
    f = ff_percent / 100.0
    return float(100.0 * f * gf / (f * gf + (1 - f) * gw))


def _compartment(study, key: str, name: str) -> dict:
    for item in study.truth[key]:
        if item["id"] == name:
            return item
    raise KeyError(name)


@pytest.fixture(scope="module")
def small_steatosis():
    from LiverMetsReviewLib.phantom import generate_phantom

    study = generate_phantom(seed=5, scenario="steatosis", size="small")
    s = study.series_by_role("multi_echo_gre")
    res = fit_pdff(s.stacks, s.echo_times_ms, field_strength_t=s.meta["field_strength_t"])
    return study, res


@pytest.mark.parametrize("organ", ["liver", "spleen", "subcutaneous_fat", "abdominal_wall_muscle"])
def test_phantom_organ_pdff_and_r2star(small_steatosis, organ):
    """Median over the eroded organ: PDFF within 1.0 point of the T1-weighted truth, R2* within 10 % of 1/T2*."""
    study, res = small_steatosis
    item = _compartment(study, "organs", organ)
    params = item["compartments"][0]["params"]
    lab = _arr(study.labelmap_on("multi_echo_gre"))
    m = ndimage.binary_erosion(lab == item["label"], structure=np.ones((1, 3, 3)))
    assert m.sum() > 100
    p, r = _arr(res.pdff)[m], _arr(res.r2star)[m]
    expected = _apparent_pdff(params["pdff_percent"], params["t1_ms"], study)
    assert abs(np.median(p) - expected) < 1.0, (organ, np.median(p), expected)
    assert abs(np.median(r) - 1000.0 / params["t2star_ms"]) < 0.10 * 1000.0 / params["t2star_ms"], np.median(r)
    assert np.all(_arr(res.mask)[m] == 1)


def test_phantom_background_masked_and_maps_finite(small_steatosis):
    study, res = small_steatosis
    lab = _arr(study.labelmap_on("multi_echo_gre"))
    outside = ndimage.binary_erosion(lab == 0, iterations=2)
    assert np.mean(_arr(res.mask)[outside] == 0) > 0.95
    for img in (res.pdff, res.r2star, res.water, res.fat, res.quality):
        assert np.all(np.isfinite(_arr(img)))
    assert res.summary["masked_voxels"] == int(np.count_nonzero(_arr(res.mask) == 0))


def test_phantom_liver_at_3t():
    """The 3 T protocol (other echo times, fat T1): liver PDFF within 1.0 point of the T1-weighted truth, R2*
    within 10 % of 1/T2*, on a masked liver (the fit's cost stays small)."""
    from LiverMetsReviewLib.phantom import generate_phantom

    study = generate_phantom(seed=8, scenario="steatosis", size="small", field_strength_t=3.0)
    s = study.series_by_role("multi_echo_gre")
    item = _compartment(study, "organs", "liver")
    params = item["compartments"][0]["params"]
    lab = _arr(study.labelmap_on("multi_echo_gre"))
    m = ndimage.binary_erosion(lab == item["label"], structure=np.ones((1, 3, 3)))
    mask = sitk.GetImageFromArray(ndimage.binary_dilation(m, iterations=2).astype(np.uint8))
    mask.CopyInformation(s.image)
    res = fit_pdff(s.stacks, s.echo_times_ms, field_strength_t=3.0, mask=mask)
    assert res.summary["echo_times_ms"] == pytest.approx([1.0 + 0.8 * k for k in range(6)])
    expected = _apparent_pdff(params["pdff_percent"], params["t1_ms"], study)
    assert abs(np.median(_arr(res.pdff)[m]) - expected) < 1.0, (np.median(_arr(res.pdff)[m]), expected)
    r2 = 1000.0 / params["t2star_ms"]
    assert abs(np.median(_arr(res.r2star)[m]) - r2) < 0.10 * r2


@pytest.fixture(scope="module")
def standard_lesions():
    from LiverMetsReviewLib.phantom import generate_phantom

    study = generate_phantom(seed=2, scenario="steatosis", size="standard")
    s = study.series_by_role("multi_echo_gre")
    lab = _arr(study.labelmap_on("multi_echo_gre"))
    ids = {name: _compartment(study, "lesions", name) for name in ("fat_met", "hypersteatosis", "fat_sparing")}
    roi = ndimage.binary_dilation(np.isin(lab, [v["label"] for v in ids.values()]), np.ones((1, 3, 3)), iterations=4)
    mask = sitk.GetImageFromArray(roi.astype(np.uint8))
    mask.CopyInformation(s.image)
    res = fit_pdff(s.stacks, s.echo_times_ms, field_strength_t=s.meta["field_strength_t"], mask=mask)
    return study, lab, ids, res


@pytest.mark.parametrize("lesion", ["fat_met", "hypersteatosis", "fat_sparing"])
def test_phantom_fat_containing_lesions(standard_lesions, lesion):
    """Standard-size phantom, eroded lesion: median PDFF within 2.5 points of the T1-weighted truth."""
    study, lab, ids, res = standard_lesions
    item = ids[lesion]
    params = item["compartments"][-1]["params"]
    m = ndimage.binary_erosion(lab == item["label"], structure=np.ones((1, 3, 3)))
    assert m.sum() >= 20
    expected = _apparent_pdff(params["pdff_percent"], params["t1_ms"], study)
    assert abs(np.median(_arr(res.pdff)[m]) - expected) < 2.5, (lesion, np.median(_arr(res.pdff)[m]), expected)


# --- real data -----------------------------------------------------------------------------------------------------

def _load_mat(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    from scipy.io import loadmat

    d = loadmat(str(shared_path("data", "multiecho-fatwater-mat", name)))
    return np.abs(d["data"]).astype(np.float32), d["te"].ravel().astype(float) * 1000.0, float(d["Tesla"].ravel()[0])


def test_real_16_echo_phantom_three_vials():
    """1.5 T oil/water vials (no published truth): three separated vials with distinct fat levels, low spread."""
    data, te, b0 = _load_mat("phantom_16echo_bipolar.mat")
    res = fit_pdff(_images(data[None]), te, field_strength_t=b0)
    p, r = _arr(res.pdff)[0], _arr(res.r2star)[0]
    assert np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 100
    lab, n = ndimage.label(ndimage.binary_erosion(_arr(res.mask)[0] == 1, iterations=3))
    sizes = ndimage.sum(np.ones_like(p), lab, range(1, n + 1))
    vials = [i + 1 for i in np.argsort(sizes)[::-1][:3]]
    assert n >= 3 and min(sizes[np.array(vials) - 1]) > 500
    med = np.array([np.median(p[lab == v]) for v in vials])
    iqr = np.array([np.subtract(*np.percentile(p[lab == v], [75, 25])) for v in vials])
    assert np.all(iqr < 3.0), iqr                                  # homogeneous vials read homogeneously
    order = np.argsort(med)                                          # three distinct fat levels: the
    q = [np.percentile(p[lab == vials[i]], [25, 75]) for i in order]  # interquartile ranges do not overlap
    assert q[0][1] < q[1][0] and q[1][1] < q[2][0], q
    assert med.min() < 5 and med.max() > 15
    rv = np.concatenate([r[lab == v] for v in vials])
    assert 0 <= np.median(rv) < 150 and np.percentile(rv, 95) < 300   # doped water / oil at 1.5 T
    # the first 8 echoes alone rank the vials the same way (values move by a few points: the oil's spectrum and
    # relaxation are not exactly the liver-fat model's, so the fit depends somewhat on the echo sampling)
    half = fit_pdff(_images(data[None, ..., :8]), te[:8], field_strength_t=b0)
    med8 = np.array([np.median(_arr(half.pdff)[0][lab == v]) for v in vials])
    assert list(np.argsort(med8)) == list(order)
    assert np.all(np.diff(med8[order]) > 1.0)


def test_real_bipolar_phantom_complex_fit_is_warned():
    """The 16-echo vial phantom was acquired with a bipolar readout: fitted with its phase, the odd/even
    inconsistency is detected and warned about."""
    from scipy.io import loadmat

    d = loadmat(str(shared_path("data", "multiecho-fatwater-mat", "phantom_16echo_bipolar.mat")))
    data = d["data"].astype(np.complex128)[None]
    te, b0 = d["te"].ravel() * 1000.0, float(d["Tesla"].ravel()[0])
    res = fit_pdff(_complex_images(data), te, field_strength_t=b0, method="complex")
    assert any("odd and even echoes" in w for w in res.summary["warnings"]), res.summary["odd_even_phase_check"]


@pytest.fixture(scope="module")
def invivo_magnitude():
    data, te, b0 = _load_mat("invivo.mat")
    return fit_pdff(_images(data[None]), te, field_strength_t=b0)


def test_real_invivo_low_field_is_finite_and_plausible(invivo_magnitude):
    """0.35 T body, 6 echoes, SNR about 5, no truth: finite maps in range, R2* plausible for soft tissue at low
    field. Fat- versus water-dominant cannot be asserted per region: at 0.35 T the fat peaks dephase too little
    within 21 ms for magnitude data at this SNR (the flags say so for many voxels)."""
    res = invivo_magnitude
    p, r, m = _arr(res.pdff)[0], _arr(res.r2star)[0], _arr(res.mask)[0] == 1
    assert m.mean() > 0.5
    assert np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 100
    assert np.all(np.isfinite(r)) and r.min() >= 0 and r.max() <= pdff_defaults()["r2star_max_per_s"]
    assert 5 < np.median(r[m]) < 100
    assert np.percentile(r[m], 95) < 250
    assert res.summary["noise_sigma"] is None or res.summary["noise_sigma"] > 0
    assert res.summary["ambiguous_voxels"] == int(np.count_nonzero(_arr(res.flags) == FLAG_AMBIGUOUS))


def test_real_invivo_complex_fit_gives_a_smooth_field_map(invivo_magnitude):
    """The same data fitted with their phase: maps finite and in range, fewer fat-water ambiguous voxels than the
    magnitude fit, and a field map that is spatially smooth as B0 is (median neighbour difference under a quarter
    of that of the same values shuffled)."""
    from scipy.io import loadmat

    d = loadmat(str(shared_path("data", "multiecho-fatwater-mat", "invivo.mat")))
    crop = (slice(40, 200), slice(30, 190))                    # central 160 x 160 (keeps the test short)
    data = d["data"].astype(np.complex128)[crop][None]
    te, b0 = d["te"].ravel() * 1000.0, float(d["Tesla"].ravel()[0])
    res = fit_pdff(_complex_images(data), te, field_strength_t=b0, method="complex")
    mag_flags = _arr(invivo_magnitude.flags)[0][crop]
    p, m, fm = _arr(res.pdff)[0], _arr(res.mask)[0] == 1, _arr(res.field_map)[0]
    assert m.mean() > 0.5
    for img in (res.pdff, res.r2star, res.field_map, res.quality):
        assert np.all(np.isfinite(_arr(img)))
    assert p.min() >= 0 and p.max() <= 100
    assert res.summary["ambiguous_voxels"] < np.count_nonzero(mag_flags == FLAG_AMBIGUOUS)
    assert not [w for w in res.summary["warnings"] if "odd and even echoes" in w]    # consistent phases
    both = m[:, 1:] & m[:, :-1]
    rough = np.median(np.abs(np.diff(fm, axis=1))[both])
    shuffled = fm.copy()
    shuffled[m] = np.random.default_rng(0).permutation(fm[m])
    assert rough < 0.25 * np.median(np.abs(np.diff(shuffled, axis=1))[both]), rough


# --- properties and errors -----------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 1e-3, 1.0, 1e4, 1e30]), st.integers(3, 8),
       st.sampled_from([0.35, 1.5, 3.0]))
def test_property_never_nan_or_inf(seed, amp, n_echo, b0):
    rng = np.random.default_rng(seed)
    te = np.cumsum(rng.uniform(0.3, 3.0, n_echo))
    data = rng.uniform(0, 1, (1, 6, 7, n_echo)) * amp
    data[0, rng.integers(0, 6), :, :] = 0.0                    # a row of zero voxels
    if amp == 0.0:
        data[0, 0, 0, 0] = 1.0
    res = fit_pdff(_images(data), te, field_strength_t=b0)
    for img in (res.pdff, res.r2star, res.water, res.fat, res.quality):
        a = _arr(img)
        assert np.all(np.isfinite(a))
    p = _arr(res.pdff)
    assert p.min() >= 0 and p.max() <= 100
    assert _arr(res.r2star).min() >= 0
    assert set(np.unique(_arr(res.flags))) <= {0, 1, 2, 3}
    assert res.summary["masked_voxels"] + res.summary["voxels_fitted"] == res.summary["voxels_total"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from([1e-3, 1.0, 1e4, 1e30]), st.integers(3, 7))
def test_property_complex_never_nan_or_inf(seed, amp, n_echo):
    rng = np.random.default_rng(seed)
    te = np.cumsum(rng.uniform(0.5, 2.5, n_echo))
    data = (rng.normal(size=(1, 5, 6, n_echo)) + 1j * rng.normal(size=(1, 5, 6, n_echo))) * amp
    data[0, 0] = 0.0                                           # a row of zero voxels
    res = fit_pdff(_complex_images(data), te, field_strength_t=3.0, method="complex")
    for img in (res.pdff, res.r2star, res.water, res.fat, res.quality, res.field_map):
        assert np.all(np.isfinite(_arr(img)))
    assert 0 <= _arr(res.pdff).min() and _arr(res.pdff).max() <= 100


def _good(n=6):
    FF = np.array([[0.2, 0.7]])
    return _images(_signal(FF, np.full_like(FF, 40.0), 1.5, TE[1.5][:n])), list(TE[1.5][:n])


@pytest.mark.parametrize("mutate,match", [
    (lambda e, t: (e[:2], t[:2]), "at least 3 echoes"),
    (lambda e, t: (e, t[:-1]), "one echo time"),
    (lambda e, t: (e, t[::-1]), "increasing"),
    (lambda e, t: (e, [t[0]] * len(t)), "increasing"),
    (lambda e, t: (e, [0.0, *t[1:]]), "positive"),
    (lambda e, t: ([sitk.GetImageFromArray(-sitk.GetArrayFromImage(e[0])), *e[1:]], t), "negative"),
    (lambda e, t: ([sitk.GetImageFromArray(sitk.GetArrayFromImage(e[0]) * np.nan), *e[1:]], t), "NaN"),
    (lambda e, t: ([sitk.GetImageFromArray(np.zeros((1, 1, 2), np.float32))] * len(e), t), "all zero"),
    (lambda e, t: (e[0], t), "list of images"),
])
def test_bad_input_is_refused_with_a_reason(mutate, match):
    echoes, tes = _good()
    e, t = mutate(echoes, tes)
    with pytest.raises(LiverMetsError, match=match):
        fit_pdff(e, t, field_strength_t=1.5)


# (echo index, (y, x)) of corrupt voxels: NaN, +inf and -inf, one voxel hit in two echoes
_BAD_VOXELS = [(1, (2, 3), np.nan), (3, (2, 3), np.inf), (0, (5, 1), -np.inf), (5, (0, 7), np.nan)]


def _corrupt(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """planes (1, y, x, n_echo) with _BAD_VOXELS written in; also the (y, x) mask of corrupt voxels."""
    bad = np.zeros(planes.shape[1:3], dtype=bool)
    for k, (y, x), v in _BAD_VOXELS:
        planes[0, y, x, k] = v
        bad[y, x] = True
    return planes, bad


@pytest.mark.parametrize("method", ["magnitude", "complex"])
def test_non_finite_voxels_are_masked_and_counted_not_refused(method):
    """NaN/inf in some voxels of some echoes: those voxels are masked (0, flag 1) and counted; every other voxel
    keeps its exact analytic PDFF and R2*; no map holds NaN or inf."""
    rng = np.random.default_rng(3)
    FF = rng.uniform(0.0, 0.45, (1, 8, 9))
    R2 = rng.uniform(20.0, 120.0, FF.shape)
    te = TE[1.5]
    if method == "complex":
        sig = _complex_signal(FF, R2, np.full_like(FF, 30.0), np.full_like(FF, 0.4), 1.5, te)
        planes, bad = _corrupt(sig.astype(np.complex128))
        echoes = _complex_images(planes)
    else:
        planes, bad = _corrupt(_signal(FF, R2, 1.5, te))
        echoes = _images(planes)
    res = fit_pdff(echoes, te, field_strength_t=1.5, method=method, noise_floor=0.0, vote_window=(1, 1, 1))
    assert res.summary["masked_reasons"]["non_finite_input"] == int(bad.sum()) == 3
    assert any("NaN or infinite" in w for w in res.summary["warnings"])
    for img in (res.pdff, res.r2star, res.water, res.fat, res.quality):
        assert np.all(np.isfinite(_arr(img)))
    mask, flags, pdff, r2 = (_arr(i)[0] for i in (res.mask, res.flags, res.pdff, res.r2star))
    assert np.all(mask[bad] == 0) and np.all(flags[bad] == 1) and np.all(pdff[bad] == 0)
    assert np.all(mask[~bad] == 1)
    np.testing.assert_allclose(pdff[~bad], FF[0][~bad] * 100, atol=1e-2)
    np.testing.assert_allclose(r2[~bad], R2[0][~bad], atol=1e-2)
    assert res.summary["masked_voxels"] == 3


def test_an_echo_without_any_finite_voxel_is_refused():
    echoes, tes = _good()
    z = np.full((1, 1, 2), np.inf, dtype=np.complex128)
    cx = _complex_images(np.stack([np.ones((1, 1, 2), np.complex128)] * 3 + [z] * 3, axis=-1))
    with pytest.raises(LiverMetsError, match="echo 4 image holds only NaN or infinite"):
        fit_pdff(cx, tes, field_strength_t=1.5, method="complex")
    inf = sitk.GetImageFromArray(np.full((1, 1, 2), np.inf, np.float32))
    with pytest.raises(LiverMetsError, match="echo 3 image holds only NaN or infinite"):
        fit_pdff([*echoes[:2], inf, *echoes[3:]], tes, field_strength_t=1.5)


@pytest.mark.parametrize("kwargs,match", [
    ({"field_strength_t": None}, "field strength"),
    ({"field_strength_t": 0.0}, "field strength"),
    ({"field_strength_t": float("nan")}, "field strength"),
    ({"field_strength_t": 1.5, "method": "dixon"}, "unknown PDFF method"),
    ({"field_strength_t": 1.5, "fat_model": {"ppm": [-3.4, 1.0], "amplitudes": [1.0]}}, "fat model"),
    ({"field_strength_t": 1.5, "fat_model": {"ppm": [-3.4], "amplitudes": [-1.0]}}, "fat model"),
    ({"field_strength_t": 1.5, "noise_floor": -1.0}, "noise floor"),
    ({"field_strength_t": 1.5, "noise_sigma": float("inf")}, "noise sigma"),
    ({"field_strength_t": 1.5, "vote_window": (0, 5, 5)}, "vote_window"),
])
def test_bad_options_are_refused(kwargs, match):
    echoes, tes = _good()
    with pytest.raises(LiverMetsError, match=match):
        fit_pdff(echoes, tes, **kwargs)


def test_echo_on_another_grid_is_resampled_with_a_note():
    FF = np.full((1, 12, 12), 0.25)
    sig = _signal(FF, np.full_like(FF, 40.0), 1.5, TE[1.5])
    echoes = _images(sig)
    moved = sitk.Image(echoes[2])
    moved.SetOrigin((1.5, 0.0, 0.0))                      # 1.5 voxels: column 0 lies outside this echo
    echoes[2] = moved
    res = fit_pdff(echoes, TE[1.5], field_strength_t=1.5, noise_floor=0.0)
    assert any("resampled" in n for n in res.summary["notes"])
    inner = _arr(res.pdff)[0, 2:-2, 2:-2]
    np.testing.assert_allclose(inner, 25.0, atol=1e-3)
    assert res.summary["masked_reasons"]["outside_input_grid"] > 0


def test_few_cycles_spanned_warns():
    te = [1.0, 1.2, 1.4]
    FF = np.full((1, 4, 4), 0.1)
    res = fit_pdff(_images(_signal(FF, np.full_like(FF, 40.0), 1.5, np.array(te))), te, field_strength_t=1.5,
                   noise_floor=0.0)
    assert any("cycles of fat-water" in w for w in res.summary["warnings"])


# --- CLI -----------------------------------------------------------------------------------------------------------

def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="livermets")
    pdff_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_files_and_json(tmp_path, capsys):
    FF = np.linspace(0, 1, 21)[None, None, :].repeat(3, axis=1)
    sig = _signal(FF, np.full_like(FF, 60.0), 3.0, TE[3.0])
    paths = []
    for k, img in enumerate(_images(sig)):
        paths.append(str(write_image(img, tmp_path / f"e{k + 1}.nrrd")))
    out, r2 = tmp_path / "pdff.nrrd", tmp_path / "r2.nrrd"
    rc = _run_cli(["pdff", *paths, "--echo-times", *[str(t) for t in TE[3.0]], "--field-strength", "3",
                   "-o", str(out), "--r2star", str(r2), "--noise-floor", "0", "--json"])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["units"]["pdff"] == "percent" and payload["inputs"]["field_strength_t"] == 3.0
    pd = sitk.ReadImage(str(out))
    np.testing.assert_allclose(_arr(pd)[0, 1], FF[0, 1] * 100, atol=1e-3)
    np.testing.assert_allclose(_arr(sitk.ReadImage(str(r2)))[0, 1], 60.0, atol=1e-3)
    meta = get_metadata(pd)
    assert meta["units"] == "percent" and meta["echo_times_ms"] == pytest.approx(list(TE[3.0]))


def test_cli_study_folder_and_errors(tmp_path, small_steatosis, capsys):
    from LiverMetsReviewLib.io.study_folder import write_study_folder

    study, res = small_steatosis
    write_study_folder([study.series_by_role("multi_echo_gre")], tmp_path / "study")
    out = tmp_path / "p.nrrd"
    assert _run_cli(["pdff", str(tmp_path / "study"), "-o", str(out)]) == 0
    np.testing.assert_allclose(_arr(sitk.ReadImage(str(out))), _arr(res.pdff), atol=1e-4)
    e1 = str(tmp_path / "study" / "multi_echo_gre_e1.nrrd")
    # the study folder's files carry their field strength: used when --field-strength is not given
    assert get_metadata(sitk.ReadImage(e1))["field_strength_t"] == pytest.approx(1.5)
    capsys.readouterr()
    assert _run_cli(["pdff", e1, e1, e1, "--echo-times", "1", "2", "3", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"]["field_strength_t"] == 1.5
    read = sitk.ReadImage(e1)
    bare_img = sitk.GetImageFromArray(sitk.GetArrayFromImage(read))
    bare_img.CopyInformation(read)                          # geometry only, no field strength
    bare = str(write_image(bare_img, tmp_path / "bare.nrrd"))
    with pytest.raises(LiverMetsError, match="field strength"):
        _run_cli(["pdff", bare, bare, bare, "--echo-times", "1", "2", "3", "-o", str(out)])
    with pytest.raises(LiverMetsError, match="also an input"):
        _run_cli(["pdff", e1, e1, e1, "--echo-times", "1", "2", "3", "--field-strength", "1.5", "-o", e1])
    with pytest.raises(LiverMetsError, match="no multi_echo_gre"):
        write_study_folder([study.series_by_role("t2")], tmp_path / "other")
        _run_cli(["pdff", str(tmp_path / "other"), "-o", str(out)])


def test_cli_nan_voxels_are_masked_not_refused(tmp_path, capsys):
    """The command line keeps a map when some voxels are NaN/inf: exit 0, those voxels 0 and counted."""
    planes, bad = _corrupt(_signal(np.full((1, 8, 9), 0.2), np.full((1, 8, 9), 50.0), 1.5, TE[1.5]))
    paths = [str(write_image(img, tmp_path / f"e{k}.nrrd")) for k, img in enumerate(_images(planes))]
    out = tmp_path / "p.nrrd"
    assert _run_cli(["pdff", *paths, "--echo-times", *map(str, TE[1.5]), "--field-strength", "1.5",
                     "--noise-floor", "0", "-o", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["masked_reasons"]["non_finite_input"] == int(bad.sum())
    p = _arr(sitk.ReadImage(str(out)))[0]
    assert np.all(np.isfinite(p)) and np.all(p[bad] == 0)
    np.testing.assert_allclose(p[~bad], 20.0, atol=1e-2)


def test_cli_magnitude_and_phase_files_give_the_complex_fit(tmp_path, capsys):
    """Phase stored as raw scanner integers (-4096..4096 for -pi..pi): with --phase-range the complex fit recovers
    PDFF, R2* and the field map; without it the raw values are refused."""
    FF = np.linspace(0, 1, 21)[None, :].repeat(3, axis=0)
    psi = np.full_like(FF, 55.0)
    sig = _complex_signal(FF, np.full_like(FF, 40.0), psi, np.full_like(FF, -1.0), 1.5, TE[1.5])[None]
    mags, phases = [], []
    for k in range(sig.shape[-1]):
        mags.append(str(write_image(sitk.GetImageFromArray(np.abs(sig[..., k])), tmp_path / f"m{k}.nrrd")))
        raw = np.angle(sig[..., k]) / np.pi * 4096.0
        phases.append(str(write_image(sitk.GetImageFromArray(raw), tmp_path / f"p{k}.nrrd")))
    out, fmap = tmp_path / "pdff.nrrd", tmp_path / "fm.nrrd"
    common = ["pdff", *mags, "--echo-times", *map(str, TE[1.5]), "--field-strength", "1.5", "--noise-floor", "0",
              "-o", str(out), "--phase", *phases]
    with pytest.raises(LiverMetsError, match="phase-range"):
        _run_cli(common)
    assert _run_cli([*common, "--phase-range", "-4096", "4096", "--field-map", str(fmap), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "complex"
    np.testing.assert_allclose(_arr(sitk.ReadImage(str(out)))[0], FF * 100, atol=1e-2)
    np.testing.assert_allclose(_arr(sitk.ReadImage(str(fmap)))[0], psi, atol=1e-2)


def test_livermets_main_dispatches_pdff_and_reports_errors(tmp_path, capsys):
    from LiverMetsReviewLib.cli import main

    echoes, tes = _good()
    paths = [str(write_image(img, tmp_path / f"e{k}.nrrd")) for k, img in enumerate(echoes)]
    rc = main(["pdff", *paths, "--echo-times", *map(str, tes[::-1]), "--field-strength", "1.5",
               "-o", str(tmp_path / "p.nrrd")])
    assert rc == 2
    assert "increasing" in capsys.readouterr().err
    assert main(["pdff", *paths, "--echo-times", *map(str, tes), "--field-strength", "1.5", "--noise-floor", "0",
                 "-o", str(tmp_path / "p.nrrd")]) == 0
    np.testing.assert_allclose(_arr(sitk.ReadImage(str(tmp_path / "p.nrrd")))[0, 0], [20.0, 70.0], atol=1e-3)


def test_start_search_finds_the_two_largest_local_maxima_of_drawn_profiles():
    """The branch-free peak search of the start grid against its definition, column by column: a local maximum is
    >= its lower and > its upper neighbour; the largest and the second largest (first PDFF on ties), -inf when a
    profile has a single one. Drawn profiles, with ties from a coarse value grid."""
    from LiverMetsReviewLib.maps.pdff_starts import _top_two_peaks

    rng = np.random.default_rng(5)
    for n_ff in (1, 2, 3, 12, 13):
        prof = (rng.integers(0, 6, (n_ff, 400)) / 5.0).astype(np.float32)
        (i1, v1), (i2, v2) = _top_two_peaks(prof)
        for col in range(prof.shape[1]):
            p = prof[:, col]
            peaks = [k for k in range(n_ff) if (k == 0 or p[k] >= p[k - 1]) and (k == n_ff - 1 or p[k] > p[k + 1])]
            order = sorted(peaks, key=lambda k: (-p[k], k))
            assert (i1[col], v1[col]) == (order[0], p[order[0]])
            if len(order) > 1:
                assert (i2[col], v2[col]) == (order[1], p[order[1]])
            else:
                assert v2[col] == -np.inf


@pytest.mark.parametrize("b0", [1.5, 3.0])
def test_levenberg_marquardt_reaches_the_least_squares_minimum_of_its_start(b0):
    """Every start (both sides, drawn tissue PDFF 0-100 %, R2* 20-200 1/s, Rician SNR 40) refined by our vectorized
    LM ends where a per-voxel trust-region least squares (scipy, tight tolerances) started at the same point ends:
    its stopping rules (next step promising under 0.01 residual variances; a first step promising under 0.25 taken
    as the last) leave at most a few hundredths of sigma^2 of cost, far below the 2-9 sigma^2 that decide fat
    against water. Runs that cross 50 % (in either fit) are left out: from there the two methods' paths may reach
    different basins of the other side, whose own start competes for it."""
    from scipy.optimize import least_squares

    from LiverMetsReviewLib.maps.pdff_fit import levenberg_marquardt, side_starts, start_grid

    te = TE[b0]
    spec = default_fat_spectrum()
    c = fat_phasor(te, b0, spec["ppm"], spec["amplitudes"], spec["gamma_mhz_per_t"])
    rng = np.random.default_rng(int(b0 * 10) + 17)
    n, sigma = 150, 1000.0 / 40.0
    sig = _signal(rng.uniform(0.0, 1.0, n), rng.uniform(20.0, 200.0, n), b0, te)
    y = np.abs(sig + rng.normal(0, sigma, sig.shape) + 1j * rng.normal(0, sigma, sig.shape)).T
    scale = y.max(axis=0)
    ys = (y / scale).astype(np.float32)
    cfg = pdff_defaults()
    a, b = np.abs(c) ** 2, c.real
    r_hi = cfg["r2star_max_per_s"] / 1000.0
    runs = side_starts(ys, start_grid(te, c, cfg), a, b, float(cfg["second_start_cost_margin"]))
    excess, crossed = [], 0
    for p0, cols in (runs[0], runs[2]):                 # the first start of each side, every voxel
        p, cost = levenberg_marquardt(ys[:, cols], p0, te, a, b, 0.0, r_hi, cfg)
        for i, col in enumerate(cols):
            yv = ys[:, col].astype(np.float64)

            def resid(q: np.ndarray, yv: np.ndarray = yv) -> np.ndarray:
                return np.abs(q[0] + q[1] * c) * np.exp(-q[2] * te) - yv

            ref = least_squares(resid, p0[:, i].astype(np.float64), bounds=([0, 0, 0], [np.inf, np.inf, r_hi]),
                                xtol=1e-12, ftol=1e-12, gtol=1e-12)
            if len({p0[1, i] > p0[0, i], p[1, i] > p[0, i], ref.x[1] > ref.x[0]}) > 1:
                crossed += 1
                continue
            excess.append((cost[i] - 2.0 * ref.cost) / (sigma / scale[col]) ** 2)
    excess = np.array(excess)
    assert crossed <= n / 2                         # at least three quarters of the runs are compared
    assert np.percentile(excess, 95) <= 0.05, np.percentile(excess, [50, 95, 100])
    assert excess.max() <= 0.25, np.percentile(excess, [50, 95, 100])


@pytest.mark.parametrize("te", [TE[1.5], TE[3.0], np.array([1.1, 2.3, 3.2, 4.6, 5.5, 7.0])],
                         ids=["t0=dt", "t0=1.25dt", "uneven"])
def test_start_profile_sums_equal_their_definition(te):
    """The start profile's projection sums (Horner's rule in exp(-R dt) for evenly spaced echoes, one exponential
    per echo otherwise) against their definition in float64: sum_n y_n m_n and sum_n m_n^2 with
    m_n = |m0_n| exp(-R t_n), on drawn signals, mixture magnitudes and R2* 0-2000 1/s."""
    from LiverMetsReviewLib.maps.pdff_starts import _projections

    rng = np.random.default_rng(23)
    y = rng.uniform(0.0, 1.0, (te.size, 500)).astype(np.float32)
    r = rng.uniform(0.0, 2.0, (26, 500)).astype(np.float32)
    mags = rng.uniform(0.05, 1.0, (26, te.size)).astype(np.float32)
    num, den = _projections(y, r, te.astype(np.float32), mags)
    m = mags.astype(np.float64)[:, :, None] * np.exp(-r.astype(np.float64)[:, None, :] * te[None, :, None])
    np.testing.assert_allclose(num, np.einsum("fen,en->fn", m, y.astype(np.float64)), rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(den, np.einsum("fen,fen->fn", m, m), rtol=2e-5, atol=1e-7)
