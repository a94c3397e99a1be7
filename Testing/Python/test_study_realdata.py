"""The study scanner and loader on real scanner files from ../shared/data (skipped when absent).

Ground truth: each set's reference .bval (dcm2niix) compared per stack, the READMEs' statements (trace
label, tags present or absent, non-image objects) and reference measurements (GE phantom ADC ≈ 750,
Siemens XA30 scanner ADC vs ln(b0/TRACEW)/b within ~1 %), and SimpleITK/GDCM's own geometry.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from conftest import shared_path
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.study.classify import classify_folder
from LiverMetsReviewLib.study.csa import csa_floats, parse_csa
from LiverMetsReviewLib.study.load import combine_trace, load_dwi, load_series


def _bval(path: Path) -> list[float]:
    return [0.0 if v < 1.0 else v for v in (float(x) for x in path.read_text().split())]


@cache
def _classified(folder: Path):
    return classify_folder(folder)  # scans are read-only in these tests: share them


def _dwi(folder: Path):
    scan = _classified(folder)
    dwi = [s for s in scan.series if s.role == "dwi"]
    assert len(dwi) == 1, [(s.label, s.role, s.reason) for s in scan.series]
    return scan, dwi[0]


@pytest.mark.parametrize("folder,bval", [
    ("ge-signa-pioneer-dwi/In", "ge-signa-pioneer-dwi/Ref/Ax_DWI_TENSOR_R2_1.bval"),
    ("siemens-xa30-dwi-pa/In/10_DWI_dir80_PA", "siemens-xa30-dwi-pa/Ref/10_DWI_dir80_PA.bval"),
    ("philips-elition-dwi/In", "philips-elition-dwi/Ref/701_DTI_Biobank_2mm_MB3S2_EPI_cl.bval"),
    ("header-only-dwi-tags/dicom2nifti/ge/dti/001", "header-only-dwi-tags/dicom2nifti/ge/dti/001_ground_truth.bval"),
    ("header-only-dwi-tags/dicom2nifti/ge/dti/001_implicit",
     "header-only-dwi-tags/dicom2nifti/ge/dti/001_implicit_ground_truth.bval"),
    ("header-only-dwi-tags/dicom2nifti/siemens/dti_classic/001",
     "header-only-dwi-tags/dicom2nifti/siemens/dti_classic/001_ground_truth.bval"),
    ("header-only-dwi-tags/dicom2nifti/siemens/dti_classic/001_implicit",
     "header-only-dwi-tags/dicom2nifti/siemens/dti_classic/001_implicit_ground_truth.bval"),
    ("header-only-dwi-tags/dicom2nifti/philips/dti/001",
     "header-only-dwi-tags/dicom2nifti/philips/dti/001_ground_truth.bval"),
    ("header-only-dwi-tags/dicom2nifti/philips/dti/002",
     "header-only-dwi-tags/dicom2nifti/philips/dti/002_ground_truth.bval"),
    ("header-only-dwi-tags/dicom2nifti/philips_enhanced/dti/001",
     "header-only-dwi-tags/dicom2nifti/philips_enhanced/dti/001_ground_truth.bval"),
])
def test_stack_b_values_equal_reference_bval(folder, bval):
    """One stack per acquired volume, each with the reference b-value (tiny Philips b count as 0)."""
    _, s = _dwi(shared_path("data", *folder.split("/")))
    ref = sorted(_bval(shared_path("data", *bval.split("/"))))
    assert sorted(st.b_value for st in s.stacks) == ref


def test_philips_isotropic_trace_recognised():
    _, s = _dwi(shared_path("data", "philips-achieva-dwi-2018", "Vanderbilt_2018_subset"))
    ref = set(_bval(shared_path("data", "philips-achieva-dwi-2018", "Ref", "WIP_dti_ax_601.bval")))
    assert set(s.b_values) == ref  # the subset holds b0, I, M, P, S of the full series
    got = sorted((st.b_value, st.label, st.is_trace) for st in s.stacks)
    assert got == [(0.0, None, False), (2000.0, "I", True), (2000.0, "M", False), (2000.0, "P", False),
                   (2000.0, "S", False)]
    assert all(len(st.frames) == 40 for st in s.stacks)


def test_philips_trace_is_geometric_mean_of_axes():
    """README reference: I / cbrt(M·P·S) has median 1.00 - checks our pixel loading and stack split."""
    _, s = _dwi(shared_path("data", "philips-achieva-dwi-2018", "Vanderbilt_2018_subset"))
    series = load_series(s, "dwi")
    by = {m.get("diffusion_label"): sitk.GetArrayFromImage(img) for img, m in
          zip(series.stacks, series.stack_meta, strict=True) if m["b_value"] > 0}
    mid = by["I"].shape[0] // 2
    i, m, p, sl = (by[k][mid].astype(float) for k in ("I", "M", "P", "S"))
    mask = (m > 20) & (p > 20) & (sl > 20) & (i > 20)
    ratio = np.median(i[mask] / np.cbrt(m[mask] * p[mask] * sl[mask]))
    assert ratio == pytest.approx(1.0, abs=0.02)


def test_ge_b0_without_standard_tag_read_from_private():
    scan, s = _dwi(shared_path("data", "ge-mr750-dwi-phantom", "In"))
    b0 = [st for st in s.stacks if st.b_value == 0.0]
    assert len(b0) == 1 and b0[0].b_source == "GE (0043,1039)"
    assert all(st.b_source == "(0018,9087)" for st in s.stacks if st.b_value)
    assert sorted({st.b_value for st in s.stacks}) == [0.0, 100.0, 750.0, 1500.0]
    assert sum(st.b_value == 750.0 for st in s.stacks) == 5  # 5 repeats/directions per shell (README)


def test_ge_phantom_adc_from_loaded_volumes():
    """README reference: log-linear ADC over 0/100/750/1500 on the geometric mean of repeats = 749-753."""
    series = combine_trace(load_dwi(shared_path("data", "ge-mr750-dwi-phantom", "In")))
    assert series.b_values == [0.0, 100.0, 750.0, 1500.0]
    arr = np.stack([sitk.GetArrayFromImage(img).astype(float) for img in series.stacks])
    b = np.array(series.b_values)
    mask = arr[0] > 0.3 * np.percentile(arr[0], 99)
    logs = np.log(np.maximum(arr[:, mask], 1e-3))
    slope = np.polyfit(b, logs, 1)[0]
    assert -np.median(slope) * 1e6 == pytest.approx(750, rel=0.02)


def test_ge_geometry_matches_gdcm():
    folder = shared_path("data", "ge-mr750-dwi-phantom", "In", "mr_0003")
    _, s = _dwi(folder.parent)
    b0 = [st for st in s.stacks if st.b_value == 0.0][0]
    series = load_series(s, "dwi", stack_indices=[s.stacks.index(b0)])
    reader = sitk.ImageSeriesReader()
    files = [f.path for f in b0.frames]
    reader.SetFileNames(sorted(files, key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True)
                                                           .ImagePositionPatient[2])))
    ref = reader.Execute()
    img = series.stacks[0]
    assert np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    assert np.allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-3)
    assert np.allclose(img.GetDirection(), ref.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref).astype(np.float32))


def test_siemens_xa_enhanced_without_csa():
    folder = shared_path("data", "siemens-xa30-dwi-pa", "In")
    scan = _classified(folder)
    by_num = {s.series_number: s for s in scan.series}
    assert by_num[10].role == "dwi" and by_num[10].b_sources == ["per-frame (0018,9087)"]
    assert by_num[11].role == "adc_scanner"
    assert by_num[12].b_values == [2500.0] and all(st.is_trace for st in by_num[12].stacks)
    assert by_num[12].role == "unassigned"  # a single-b trace series is not a DWI set on its own


def test_siemens_xa_scanner_adc_matches_b0_and_tracew():
    """README reference: ln(b0/TRACEW)/2500 vs the scanner's ADC, median relative difference 0.3 % (< 1 %)."""
    scan = _classified(shared_path("data", "siemens-xa30-dwi-pa", "In"))
    by_num = {s.series_number: s for s in scan.series}
    b0 = sitk.GetArrayFromImage(load_series(by_num[10], "dwi", stack_indices=[0]).image).astype(float)
    trace = sitk.GetArrayFromImage(load_series(by_num[12], "dwi").image).astype(float)
    adc = sitk.GetArrayFromImage(load_series(by_num[11], "adc_scanner").image).astype(float)
    mask = (b0 > 0.3 * np.percentile(b0, 99)) & (trace > 0) & (adc > 0)
    est = np.log(b0[mask] / trace[mask]) / 2500 * 1e6
    assert np.median(np.abs(est - adc[mask]) / adc[mask]) < 0.01


def test_header_only_sets_parsed():
    root = shared_path("data", "header-only-dwi-tags")
    scan = classify_folder(root)
    assert len(scan.study_uids) == 8
    assert all(s.role == "dwi" for s in scan.series)
    sources = {s.b_sources[0] for s in scan.series}
    assert {"GE (0043,1039)", "Siemens (0019,100C)", "(0018,9087)", "per-frame (0018,9087)"} <= sources


def test_implicit_vr_private_tags_decoded_from_raw_bytes():
    folder = shared_path("data", "header-only-dwi-tags", "dicom2nifti", "ge", "dti", "001_implicit")
    raw = pydicom.dcmread(sorted(folder.iterdir())[-1], stop_before_pixels=True)[0x0043, 0x1039].value
    assert isinstance(raw, bytes)  # the test is only meaningful when pydicom hands over raw bytes
    _, s = _dwi(folder)
    assert [st.b_value for st in s.stacks] == [0.0, 1000.0]


def test_siemens_mosaic_csa_header():
    folder = shared_path("data", "header-only-dwi-tags", "nibabel")
    for name, b in (("siemens_dwi_0.dcm.gz", 0.0), ("siemens_dwi_1000.dcm.gz", 1000.0)):
        ds = pydicom.dcmread(gzip.open(folder / name), stop_before_pixels=True)
        csa = parse_csa(ds[0x0029, 0x1010].value)
        assert csa_floats(csa, "B_value") == [b]
        assert csa_floats(csa, "NumberOfImagesInMosaic")[0] > 1
    _, s = _dwi(folder)
    assert s.b_values == [0.0, 1000.0]
    with pytest.raises(LiverMetsError, match="mosaic"):
        load_series(s, "dwi")


def test_stripped_csa_falls_back_to_private_tag():
    folder = shared_path("data", "header-only-dwi-tags", "dicom2nifti", "siemens", "dti_classic", "001")
    ds = pydicom.dcmread(sorted(folder.iterdir())[0], stop_before_pixels=True)
    assert (0x0029, 0x1010) not in ds  # README: the image CSA header is stripped
    _, s = _dwi(folder)
    assert s.b_sources == ["Siemens (0019,100C)"]


def test_philips_gzip_private_objects_and_tiny_b():
    folder = shared_path("data", "philips-elition-dwi", "In")
    scan, s = _dwi(folder)
    reasons = {Path(x.path).name: x.reason for x in scan.skipped}
    assert "Philips private object" in reasons["XX_0546.gz"] and "Philips private object" in reasons["XX_0547.gz"]
    assert "presentation state" in reasons["PS_0545.gz"]
    assert "DICOMDIR" in reasons["DICOMDIR"]
    assert s.n_instances == 544  # the private object sharing the SeriesInstanceUID is not counted
    assert sum(st.b_value == 0.0 for st in s.stacks) == 5  # b=0 and four b≈0.001-0.004 volumes


def test_enhanced_multiframe_volume_matches_gdcm():
    """An XA30 enhanced file (39 frames, per-frame geometry) loads like GDCM's multi-frame reader."""
    scan = _classified(shared_path("data", "siemens-xa30-dwi-pa", "In"))
    adc = next(s for s in scan.series if s.series_number == 11)
    img = load_series(adc, "adc_scanner").image
    ref = sitk.ReadImage(adc.files[0])
    assert img.GetSize() == ref.GetSize() == (72, 72, 39)
    assert np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    assert np.allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-4)
    assert np.allclose(img.GetDirection(), ref.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref).astype(np.float32))
