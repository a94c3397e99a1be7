"""Loading classified series into LPS volumes, trace combination and resampling, against analytic truth.

Synthetic series are written with known geometry (oblique included, files shuffled) and known stored
values with a rescale slope/intercept; SimpleITK's own DICOM reader (GDCM) is a second reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from test_study_classify import write_series

from LiverMetsReviewLib.errors import GeometryError, LiverMetsError, MissingDataError
from LiverMetsReviewLib.series import Series
from LiverMetsReviewLib.study.classify import classify_folder
from LiverMetsReviewLib.study.load import combine_trace, load_dwi, load_series, load_study, resample_to_reference

ROT = (0.8660254, 0.5, 0.0, -0.1227878, 0.2126706, 0.9693797)  # oblique: rows 30° in-plane, columns tilted


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _oblique():
    row = _unit(ROT[:3])
    col = _unit(np.asarray(ROT[3:]) - np.dot(ROT[3:], row) * row)
    return tuple(np.round(np.concatenate([row, col]), 6))


def test_oblique_geometry_and_rescale(tmp_path):
    ori = _oblique()
    spacing = (0.8, 1.25, 3.5)  # column spacing (x), row spacing (y), slice gap
    origin = (12.5, -40.0, 77.0)

    def pixels(k, b, te):
        yy, xx = np.mgrid[0:7, 0:9]
        return (10 * xx + 100 * yy + 1000 * k).astype(np.uint16)

    folder = write_series(tmp_path, study_uid=generate_uid(), description="t2 tse", te=90.0, tr=2000.0, n_slices=4,
                          rows=7, cols=9, orientation=ori, spacing=spacing, origin=origin, slope=0.5, intercept=-3.0,
                          pixels=pixels)
    files = sorted(folder.iterdir())
    for k, f in enumerate(files[::-1]):  # file order says nothing about slice order
        f.rename(folder / f"z{k}.dcm")
    info = classify_folder(tmp_path).series[0]
    img = load_series(info).image
    row, col = np.asarray(ori[:3]), np.asarray(ori[3:])
    normal = np.cross(row, col)
    assert img.GetSize() == (9, 7, 4)
    assert np.allclose(img.GetSpacing(), spacing, atol=1e-4)
    assert np.allclose(img.GetOrigin(), origin, atol=1e-3)
    assert np.allclose(np.reshape(img.GetDirection(), (3, 3)), np.column_stack([row, col, normal]), atol=1e-5)
    arr = sitk.GetArrayFromImage(img)
    zz, yy, xx = np.mgrid[0:4, 0:7, 0:9]
    assert np.array_equal(arr, (10 * xx + 100 * yy + 1000 * zz) * 0.5 - 3.0)
    # a voxel's world position (LPS) is origin + i·dx·row + j·dy·col + k·dz·normal
    p = img.TransformIndexToPhysicalPoint((2, 3, 1))
    assert np.allclose(p, np.asarray(origin) + 2 * 0.8 * row + 3 * 1.25 * col + 1 * 3.5 * normal, atol=1e-3)
    # GDCM agrees on geometry and values
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    ref = reader.Execute()
    assert np.allclose(ref.GetOrigin(), img.GetOrigin(), atol=1e-3)
    assert np.allclose(ref.GetDirection(), img.GetDirection(), atol=1e-5)
    assert np.allclose(sitk.GetArrayFromImage(ref), arr)


def test_dual_echo_series_splits_into_two_roles(tmp_path):
    def pixels(k, b, te):
        return np.full((6, 5), 200 if te > 3 else 120, np.uint16)

    write_series(tmp_path, study_uid=generate_uid(), description="in/opp", te=[2.3, 4.6], tr=150.0, pixels=pixels)
    series = {s.role: s for s in load_study(classify_folder(tmp_path))}
    assert set(series) == {"t1_opposed_phase", "t1_in_phase"}
    assert float(sitk.GetArrayFromImage(series["t1_opposed_phase"].image).mean()) == 120
    assert float(sitk.GetArrayFromImage(series["t1_in_phase"].image).mean()) == 200
    assert series["t1_in_phase"].stack_meta[0]["echo_time_ms"] == 4.6


def test_dwi_trace_is_geometric_mean_of_directions(tmp_path):
    """Three directions with ADC 1.0/1.5/2.0e-3 at b 800: trace = S0·exp(-b·mean ADC)."""
    s0, b = 1000.0, 800.0
    adcs = [1.0e-3, 1.5e-3, 2.0e-3]
    imgs, metas = [], []
    for d, adc in enumerate(adcs):
        img = sitk.GetImageFromArray(np.full((2, 3, 4), s0 * np.exp(-b * adc), np.float32))
        imgs.append(img)
        metas.append({"b_value": b, "diffusion_direction": list(np.eye(3)[d])})
    b0 = sitk.GetImageFromArray(np.full((2, 3, 4), s0, np.float32))
    out = combine_trace(Series("dwi", [b0, *imgs], [{"b_value": 0.0}, *metas]))
    assert out.b_values == [0.0, 800.0]
    trace = sitk.GetArrayFromImage(out.stacks[1])
    assert np.allclose(trace, s0 * np.exp(-b * np.mean(adcs)), rtol=1e-5)
    assert out.stack_meta[1]["is_trace"] and "diffusion_direction" not in out.stack_meta[1]


def test_dwi_scanner_trace_preferred(tmp_path):
    def pixels(k, b, te):
        return np.full((6, 5), 50 if b else 400, np.uint16)

    write_series(tmp_path, study_uid=generate_uid(), description="dwi", te=60.0, tr=4000.0, b_values=[0.0, 600.0],
                 vendor="philips", trace_label="I", pixels=pixels)
    series = load_dwi(tmp_path)
    assert series.b_values == [0.0, 600.0]
    assert series.stack_meta[1]["is_trace"] is True
    assert series.stack_meta[1]["b_value_source"] == "(0018,9087)"


def test_load_dwi_errors(tmp_path):
    write_series(tmp_path / "t2", study_uid=generate_uid(), description="t2", te=90.0, tr=2000.0)
    with pytest.raises(MissingDataError, match="no DWI series"):
        load_dwi(tmp_path / "t2")
    study = generate_uid()
    for n in (1, 2):
        write_series(tmp_path / "two", study_uid=study, number=n, description="dwi", te=60.0, tr=4000.0,
                     b_values=[0.0, 800.0])
    with pytest.raises(LiverMetsError, match="2 DWI series"):
        load_dwi(tmp_path / "two")


def test_missing_position_is_a_clear_error(tmp_path):
    write_series(tmp_path, study_uid=generate_uid(), description="t2", te=90.0, tr=2000.0,
                 omit=("ImagePositionPatient",))
    info = classify_folder(tmp_path).series[0]
    with pytest.raises(MissingDataError, match="ImagePositionPatient"):
        load_series(info)


def test_uneven_slices_are_a_clear_error(tmp_path):
    import pydicom

    folder = write_series(tmp_path, study_uid=generate_uid(), description="t2", te=90.0, tr=2000.0, n_slices=4)
    last = sorted(folder.iterdir())[-1]
    ds = pydicom.dcmread(last)
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                               float(ds.ImagePositionPatient[2]) + 6.0]
    ds.save_as(last)
    with pytest.raises(GeometryError, match="not evenly spaced"):
        load_series(classify_folder(tmp_path).series[0])


def test_resample_to_reference_linear_ramp():
    """A linear ramp resampled onto a shifted, finer grid equals the ramp evaluated there (LPS, mm)."""
    arr = np.tile(np.arange(20, dtype=np.float32) * 2.0, (6, 10, 1))  # value = 2·i = 2·(x - x0)/dx
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 2.0))
    img.SetOrigin((-5.0, 0.0, 0.0))
    ref = sitk.Image(12, 5, 3, sitk.sitkFloat32)
    ref.SetSpacing((0.5, 1.0, 2.0))
    ref.SetOrigin((0.25, 1.0, 2.0))
    out = resample_to_reference(Series("t2", [img], [{}], {"description": "x"}), ref)
    got = sitk.GetArrayFromImage(out.image)
    x = 0.25 + 0.5 * np.arange(12)
    assert np.allclose(got, np.broadcast_to(2.0 * (x + 5.0), got.shape), atol=1e-4)
    assert out.meta["resampled_to"]["spacing"] == [0.5, 1.0, 2.0]


def test_load_study_refuses_mixed_studies(tmp_path):
    for sub in ("a", "b"):
        write_series(tmp_path / sub, study_uid=generate_uid(), number=1, description="t2", te=90.0, tr=2000.0)
    with pytest.raises(LiverMetsError, match="several studies"):
        load_study(classify_folder(tmp_path))


def test_acquisition_offsets_relative_to_first_series(tmp_path):
    study = generate_uid()
    write_series(tmp_path, study_uid=study, number=1, description="t2 haste", te=90.0, tr=1500.0, acq_time="100000")
    write_series(tmp_path, study_uid=study, number=2, description="dwi", te=60.0, tr=4000.0, acq_time="100230",
                 b_values=[50.0, 800.0])
    by_role = {s.role: s for s in load_study(classify_folder(tmp_path))}
    assert by_role["t2"].meta["acquisition_offset_s"] == 0.0
    assert by_role["dwi"].meta["acquisition_offset_s"] == 150.0
    assert by_role["dwi"].meta["coordinate_system"] == "LPS"
