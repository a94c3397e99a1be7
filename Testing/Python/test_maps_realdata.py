"""ADC on real scanner data (../shared/data) against the data's reference values.

The DICOM files are read here with pydicom (pixels, slice positions, b-values from the tags the READMEs name), so
these tests do not depend on the study loader:
- GE MR750 phantom: b in (0043,1039)[0] (1e9 offset stripped); ADC 750 +- 2 % x10^-6 mm^2/s on every slice
  for any b subset (README: 748-753).
- Siemens XA30 enhanced DWI: b in the per-frame MR Diffusion sequence; ADC from b0 and the geometric mean of 20
  directions vs the scanner's ADC map (series 11): median relative difference < 1 % (README: 0.08 %).
- OSIPI synthetic IVIM "Liver" curve: ADC over b >= 200 approaches D; over all b it is inflated by perfusion
  as the curve's own (D, f, D*) predict.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from conftest import shared_path
from LiverMetsReviewLib.maps import combine_directions, fit_adc


def _ge_b_value(ds: pydicom.Dataset) -> float:
    raw = ds[0x0043, 0x1039].value
    if isinstance(raw, bytes):  # implicit VR private tag: backslash-separated text
        raw = raw.decode("ascii", "ignore").strip("\x00 ").split("\\")
    first = raw[0] if isinstance(raw, (list, tuple, pydicom.multival.MultiValue)) else raw
    return float(int(float(first)) % 1_000_000_000)


@pytest.fixture(scope="module")
def ge_phantom():
    """{b: [volumes (z, y, x) of every repeat]} of the GE phantom, slices sorted along the normal."""
    folder = shared_path("data", "ge-mr750-dwi-phantom", "In", "mr_0003")
    by_key: dict[tuple[float, int], list[np.ndarray]] = defaultdict(list)
    positions: set[float] = set()
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        z = float(ds.ImagePositionPatient[2])
        positions.add(z)
        arr = ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
            getattr(ds, "RescaleIntercept", 0) or 0)
        by_key[(_ge_b_value(ds), round(z, 2))].append(arr)
    zs = sorted({round(z, 2) for z in positions})
    bvals = sorted({b for b, _ in by_key})
    n_rep = {b: len(by_key[(b, zs[0])]) for b in bvals}
    vols = {b: [np.stack([by_key[(b, z)][r] for z in zs]) for r in range(n_rep[b])] for b in bvals}
    return vols


def test_ge_headers_give_the_documented_b_values(ge_phantom):
    assert sorted(ge_phantom) == [0.0, 100.0, 750.0, 1500.0]
    assert [len(ge_phantom[b]) for b in sorted(ge_phantom)] == [1, 5, 5, 5]


@pytest.mark.parametrize("subset", [(0, 100, 750, 1500), (0, 1500), (0, 750), (100, 750), (750, 1500),
                                    (100, 1500)])
@pytest.mark.parametrize("method", ["lls", "wls", "nlls"])
def test_ge_phantom_adc_750_for_any_b_subset(ge_phantom, subset, method):
    images, bs = [], []
    for b in subset:
        for rep in ge_phantom[float(b)]:
            images.append(sitk.GetImageFromArray(rep))
            bs.append(float(b))
    comb, cb, _ = combine_directions(images, bs)
    res = fit_adc(comb, cb, method=method)
    adc = sitk.GetArrayFromImage(res.adc)
    b0 = ge_phantom[0.0][0]
    phantom = b0 > 0.3 * np.percentile(b0, 99)
    for k in range(adc.shape[0]):
        med = float(np.median(adc[k][phantom[k]]))
        assert abs(med / 750.0 - 1) < 0.02, f"slice {k}, b {subset}, {method}: median ADC {med:.1f}"
    assert res.summary["b_values_used"] == [float(b) for b in subset]


def _enhanced_volume(path: Path) -> tuple[np.ndarray, list[float]]:
    """Frames of an enhanced MR file sorted by slice position, with their per-frame b-values."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.astype(np.float32)
    per_frame = ds.PerFrameFunctionalGroupsSequence
    z = [float(fg.PlanePositionSequence[0].ImagePositionPatient[2]) for fg in per_frame]
    order = np.argsort(z)
    bvals = []
    for fg in per_frame:
        diff = getattr(fg, "MRDiffusionSequence", None)
        elem = diff[0].get((0x0018, 0x9087)) if diff else None
        bvals.append(float(elem.value) if elem is not None else float("nan"))
        pvt = getattr(fg, "PixelValueTransformationSequence", None)
        if pvt and (float(pvt[0].RescaleSlope) != 1 or float(pvt[0].RescaleIntercept) != 0):
            raise AssertionError("unexpected rescale in the XA30 test data")
    return frames[order], [bvals[i] for i in order]


def test_siemens_xa30_adc_matches_the_scanner_map():
    base = shared_path("data", "siemens-xa30-dwi-pa", "In")
    ref_bvals = [float(v) for v in
                 (base.parent / "Ref" / "10_DWI_dir80_PA.bval").read_text().split()]
    images, bs = [], []
    for path in sorted((base / "10_DWI_dir80_PA").glob("*.dcm")):
        vol, frame_b = _enhanced_volume(path)
        assert len(set(frame_b)) == 1
        images.append(sitk.GetImageFromArray(vol))
        bs.append(frame_b[0])
    assert sorted(bs) == sorted(ref_bvals)  # 0 and 20 x 2500, as dcm2niix's .bval says
    comb, cb, _ = combine_directions(images, bs)
    res = fit_adc(comb, cb)
    ours = sitk.GetArrayFromImage(res.adc)
    scanner, _ = _enhanced_volume(next((base / "11_DWI_dir80_PA").glob("*.dcm")))
    b0 = sitk.GetArrayFromImage(comb[0])
    brain = (b0 > 0.3 * np.percentile(b0, 99)) & (scanner > 0)
    assert brain.sum() > 10_000
    rel = np.abs(ours[brain] - scanner[brain]) / scanner[brain]
    assert float(np.median(rel)) < 0.01
    assert res.summary["units"]["adc"] == "1e-6 mm2/s"  # same unit as the scanner's map


def test_osipi_liver_curve_high_b_adc_approaches_d():
    path = shared_path("data", "osipi-ivim-synthetic", "generic.json")
    data = json.loads(path.read_text())
    liver = data["Liver"]
    bvals = [float(b) for b in data["config"]["bvalues"]]
    sig = np.asarray(liver["data"], dtype=np.float64)
    images = [sitk.GetImageFromArray(np.full((1, 1, 1), s, np.float32)) for s in sig]
    d_1e6 = float(liver["D"]) * 1e6
    high = fit_adc(images, bvals, exclude_below=200, noise_floor=0.0)
    allb = fit_adc(images, bvals, noise_floor=0.0)
    adc_high = float(sitk.GetArrayFromImage(high.adc).ravel()[0])
    adc_all = float(sitk.GetArrayFromImage(allb.adc).ravel()[0])
    assert abs(adc_high / d_1e6 - 1) < 0.03
    # all b: the bi-exponential truth (D, f, D*) seen through a log-linear fit, computed independently with polyfit
    b = np.array(bvals)
    model = (1 - liver["f"]) * np.exp(-b * liver["D"]) + liver["f"] * np.exp(-b * liver["Dp"])
    expected_all = -np.polyfit(b, np.log(model), 1)[0] * 1e6
    assert expected_all > d_1e6 and abs(adc_all / expected_all - 1) < 0.02


def _philips_label(ds: pydicom.Dataset) -> str:
    v = ds[0x2001, 0x1004].value
    return (v.decode("ascii", "ignore") if isinstance(v, bytes) else str(v)).strip("\x00 ")


def test_philips_trace_equals_geometric_mean_of_directions():
    """Philips stores an isotropic image 'I' beside the M/P/S directions: the ADC from the scanner's trace image
    (used as such) and from our geometric mean of M, P, S agree (README: I / cbrt(M P S) median 1.0001)."""
    folder = shared_path("data", "philips-achieva-dwi-2018", "Vanderbilt_2018_subset")
    slices: dict[tuple[float, str], dict[float, np.ndarray]] = defaultdict(dict)
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        b = float(ds[0x0018, 0x9087].value)
        arr = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slices[(b, _philips_label(ds))][float(ds.ImagePositionPatient[2])] = arr

    def vol(key):
        by_z = slices[key]
        return sitk.GetImageFromArray(np.stack([by_z[z] for z in sorted(by_z)]))

    assert sorted(slices) == [(0.0, "I"), (2000.0, "I"), (2000.0, "M"), (2000.0, "P"), (2000.0, "S")]
    b0, trace = vol((0.0, "I")), vol((2000.0, "I"))
    dirs = [vol((2000.0, d)) for d in "MPS"]
    comb_t, bt, _ = combine_directions([b0, *dirs, trace], [0, 2000, 2000, 2000, 2000], is_trace=[0, 0, 0, 0, 1])
    comb_g, bg, _ = combine_directions([b0, *dirs], [0, 2000, 2000, 2000])
    adc_t = sitk.GetArrayFromImage(fit_adc(comb_t, bt).adc)
    adc_g = sitk.GetArrayFromImage(fit_adc(comb_g, bg).adc)
    b0a = sitk.GetArrayFromImage(b0)
    brain = (b0a > 0.3 * np.percentile(b0a, 99)) & (adc_t > 0) & (adc_g > 0)
    assert brain.sum() > 20_000
    rel = (adc_g[brain] - adc_t[brain]) / adc_t[brain]
    assert abs(float(np.median(rel))) < 0.01
