"""Property tests (hypothesis): whatever the (valid) input, maps hold no NaN/inf, masked voxels are 0 and
counted, the user's mask is honoured, and units are stated."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from LiverMetsReviewLib.maps import chemical_shift_fat, dixon_fat, fit_adc, relative_enhancement

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _img(arr) -> sitk.Image:
    return sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))


def _mask_img(arr) -> sitk.Image:
    return sitk.GetImageFromArray(np.asarray(arr, dtype=np.uint8))


@st.composite
def dwi_cases(draw):
    """2-4 distinct b-values, magnitudes mixing tissue, zeros, huge and tiny values and pure noise, a random mask."""
    n_b = draw(st.integers(2, 4))
    bs = sorted(draw(st.lists(st.sampled_from([0.0, 10.0, 50.0, 100.0, 400.0, 800.0, 1000.0, 1500.0, 3000.0]),
                              min_size=n_b, max_size=n_b, unique=True)))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    shape = (2, draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    kind = draw(st.sampled_from(["tissue", "noise", "mixed", "extreme"]))
    s0 = rng.uniform(0.0, 1e4, shape)
    adc = rng.uniform(-1000.0, 6000.0, shape)  # includes rising signal and very fast decay
    imgs = []
    for b in bs:
        if kind == "noise":
            a = rng.rayleigh(5.0, shape)
        elif kind == "extreme":
            a = rng.choice([0.0, 1e-30, 1e-3, 1.0, 3e38], shape)
        else:
            a = s0 * np.exp(-b * adc * 1e-6)
            a = np.abs(a + rng.normal(0, 20.0, shape))
            if kind == "mixed":
                a[rng.random(shape) < 0.3] = 0.0
        a = np.minimum(a, 3e38)
        a.flat[0] = max(float(a.flat[0]), 1.0)  # never an all-zero image (that is refused, tested elsewhere)
        imgs.append(a)
    mask = rng.random(shape) < draw(st.floats(0.0, 1.0))
    method = draw(st.sampled_from(["lls", "wls", "nlls"]))
    return imgs, bs, mask, method


@SETTINGS
@given(dwi_cases())
def test_adc_never_nan_and_mask_honoured(case):
    arrays, bs, mask, method = case
    res = fit_adc([_img(a) for a in arrays], bs, method=method, mask=_mask_img(mask), computed_b=(1500.0,))
    outs = {"adc": res.adc, "s0": res.s0, "quality": res.quality, "computed": res.computed[1500.0]}
    fitted = sitk.GetArrayFromImage(res.mask).astype(bool)
    for name, img in outs.items():
        a = sitk.GetArrayFromImage(img)
        assert np.all(np.isfinite(a)), name
        assert np.all(a[~fitted] == 0), name
    adc = sitk.GetArrayFromImage(res.adc)
    assert adc.min() >= 0 and adc.max() <= 5000.0
    q = sitk.GetArrayFromImage(res.quality)
    assert q.min() >= 0 and q.max() <= 1
    assert not np.any(fitted & ~mask)  # nothing outside the user's mask is fitted
    assert res.summary["masked_voxels"] == int(np.count_nonzero(~fitted))
    assert res.summary["units"]["adc"] == "1e-6 mm2/s" and res.metadata["adc"]["units"] == "1e-6 mm2/s"
    assert res.summary["b_values_used"] == bs


@st.composite
def pair_cases(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    shape = (2, draw(st.integers(2, 6)), draw(st.integers(2, 6)))
    a = rng.choice([0.0, 1e-20, 0.5, 10.0, 1e3, 1e30], shape) * rng.uniform(0.5, 1.5, shape)
    b = rng.choice([0.0, 1e-20, 0.5, 10.0, 1e3, 1e30], shape) * rng.uniform(0.5, 1.5, shape)
    a.flat[0] = max(float(a.flat[0]), 1.0)
    b.flat[0] = max(float(b.flat[0]), 1.0)
    return a, b, rng.random(shape) < 0.7


@SETTINGS
@given(pair_cases())
def test_fat_and_enhancement_never_nan_and_mask_honoured(case):
    a, b, mask = case
    dx = dixon_fat(_img(a), _img(b), mask=_mask_img(mask))
    ff = sitk.GetArrayFromImage(dx.ff)
    assert np.all(np.isfinite(ff)) and ff.min() >= 0 and ff.max() <= 100
    assert np.all(ff[~mask] == 0) and np.all(sitk.GetArrayFromImage(dx.flags)[~mask] == 1)
    assert dx.summary["units"]["ff"] == "percent"
    ip, op = np.maximum(a, b), np.minimum(a, b)  # a physically possible pair: OP <= IP
    cs = chemical_shift_fat(_img(ip), _img(op), mask=_mask_img(mask))
    for img in (cs.ff, cs.sii):
        v = sitk.GetArrayFromImage(img)
        assert np.all(np.isfinite(v)) and v.min() >= 0 and v.max() <= 100
        assert np.all(v[~mask] == 0)
    assert cs.summary["masked_voxels"] == int(np.count_nonzero(sitk.GetArrayFromImage(cs.flags) == 1)) + int(
        cs.summary["invalid_voxels"])
    en = relative_enhancement(_img(a), _img(b), mask=_mask_img(mask))
    for img in (en.re, en.subtraction):
        v = sitk.GetArrayFromImage(img)
        assert np.all(np.isfinite(v)) and np.all(v[~mask] == 0)
    assert en.summary["units"]["re"] == "percent"
