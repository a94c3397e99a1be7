"""The project's phantom written as DICOM by the project's writer, read back by the study loader.

Ground truth: the role, b-values, echo times and geometry of every phantom series (the phantom knows
what it wrote). Several seeds, scenarios, field strengths and vendor header conventions.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

generate = pytest.importorskip("LiverMetsReviewLib.phantom.generate", reason="phantom generator not available yet")
writer = pytest.importorskip("LiverMetsReviewLib.io.dicom_writer", reason="DICOM writer not available yet")

from LiverMetsReviewLib.study.classify import classify_folder  # noqa: E402
from LiverMetsReviewLib.study.load import load_dwi, load_study  # noqa: E402

CASES = [(0, "normal", 1.5, "siemens"), (1, "steatosis", 3.0, "ge"), (2, "reduced_hbp", 1.5, "philips"),
         (3, "pseudocirrhosis", 3.0, "siemens")]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"seed{c[0]}-{c[1]}-{c[2]}T-{c[3]}")
def written(request, tmp_path_factory):
    seed, scenario, b0, vendor = request.param
    study = generate.generate_phantom(seed=seed, scenario=scenario, field_strength_t=b0, size="small")
    out = tmp_path_factory.mktemp(f"phantom{seed}")
    writer.write_series_dicom(study.series, out, vendor=vendor, seed=seed)
    return study, out, classify_folder(out)


def test_every_phantom_series_classified(written):
    study, _, scan = written
    expected = {s.meta["series_number"]: s.role for s in study.series}
    got = {s.series_number: s.role for s in scan.series}
    assert got == expected, {n: (got.get(n), r) for n, r in expected.items() if got.get(n) != r}
    assert not scan.skipped
    assert all(s.confidence >= 0.75 for s in scan.series)


def test_phantom_b_values_and_echo_times(written):
    study, _, scan = written
    by_num = {s.series_number: s for s in scan.series}
    for ser in study.series:
        info = by_num[ser.meta["series_number"]]
        if ser.role == "dwi":
            assert [st.b_value for st in info.stacks] == pytest.approx(ser.b_values)
        if ser.role == "multi_echo_gre":
            assert info.echo_times_ms == pytest.approx(ser.echo_times_ms, abs=1e-3)


def test_loaded_volumes_match_the_phantom(written):
    study, _, scan = written
    loaded = {s.role: s for s in load_study(scan, dwi_trace=False)}
    assert set(loaded) == {s.role for s in study.series}
    infos = {s.role: s for s in scan.series}
    for ser in study.series:
        got = loaded[ser.role]
        assert len(got.stacks) == len(ser.stacks)
        for k, (img, ref) in enumerate(zip(got.stacks, ser.stacks, strict=True)):
            assert img.GetSize() == ref.GetSize()
            assert np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-3)
            assert np.allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-4)
            assert np.allclose(img.GetDirection(), ref.GetDirection(), atol=1e-5)
            a, b = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref).astype(np.float32)
            # the writer quantises to integers x RescaleSlope: rounding error at most slope/2
            slope = max(float(pydicom.dcmread(f.path, stop_before_pixels=True).get("RescaleSlope", 1.0))
                        for f in infos[ser.role].stacks[k].frames)
            float32_eps = 4 * np.finfo(np.float32).eps * float(np.abs(b).max())
            assert np.abs(a - b).max() <= slope / 2 + float32_eps


def test_load_dwi_on_the_phantom_dwi_folder(written):
    study, out, scan = written
    dwi = next(s for s in scan.series if s.role == "dwi")
    folder = {p.parent for p in map(__import__("pathlib").Path, dwi.files)}
    assert len(folder) == 1
    series = load_dwi(folder.pop())
    assert series.role == "dwi"
    assert series.b_values == pytest.approx(study.series_by_role("dwi").b_values)
