"""DICOM SEG + SR of a review (``livermets report --format dicom``): the small phantom written as DICOM, loaded
with ``livermets load`` (which records dicom_sources.json), lesions drawn from its truth measured and reviewed,
then exported. Every check reads the exported files with an independent reader (pydicom, highdicom, dcmqi,
dciodvfy) and compares with independent truth: the DICOM files themselves, the ``.seg.nrrd`` read by slicerio,
``measurements.json`` and ``review.json``."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.demo import _reader_kind
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.lesions.markups import Seed, write_seeds
from LiverMetsReviewLib.report import ReportInputs, write_report
from LiverMetsReviewLib.report.dicom_export import NO_HIGHDICOM, source_stack, write_dicom
from LiverMetsReviewLib.study.sources import patient_identifiers

hd = pytest.importorskip("highdicom", reason="highdicom (test extra) builds and reads the DICOM SEG/SR")
slicerio = pytest.importorskip("slicerio", reason="slicerio (test extra) is the reference .seg.nrrd reader")

# CI replays one draw; a developer's run draws new lesions each time (the seed is in every failure message)
DRAW = 7 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else random.SystemRandom().randrange(10**6)


def _code(item) -> str:
    return f"{item.CodingSchemeDesignator}^{item.CodeValue}^{item.CodeMeaning}"


@pytest.fixture(scope="module")
def export(phantom_dicom, tmp_path_factory):
    root = tmp_path_factory.mktemp("report_dicom")
    truth = json.loads((phantom_dicom.parent / "ground_truth.json").read_text())
    big = [les for les in truth["lesions"] if les["diameter_mm"] >= 14]
    picked = random.Random(DRAW).sample(big, 3)
    assert main(["load", str(phantom_dicom), "-o", str(root / "study")]) == 0
    write_seeds(root / "seeds.mrk.json", [Seed(les["id"], tuple(les["centre_mm"]), f"type={_reader_kind(les['type'])}")
                                          for les in picked])
    assert main(["measure", "--study", str(root / "study"), "--seeds", str(root / "seeds.mrk.json"), "-o",
                 str(root / "lesions")]) == 0
    assert main(["review", "--study", str(root / "study"), "--lesions", str(root / "lesions"), "-o",
                 str(root / "review")]) == 0
    assert main(["report", "--review", str(root / "review"), "--lesions", str(root / "lesions"), "--study",
                 str(root / "study"), "-o", str(root / "report"), "--format", "txt", "dicom"]) == 0
    return root


def _nrrd_segments(root: Path) -> tuple[dict, dict]:
    seg = slicerio.read_segmentation(str(root / "lesions" / "lesions.seg.nrrd"))
    masks = {s["id"]: slicerio.segment_mask(seg, s["id"]).transpose(2, 1, 0).astype(bool) for s in seg["segments"]}
    return seg, masks


def test_sources_are_the_dicom_files_in_nrrd_slice_order(export):
    doc = json.loads((export / "study" / "dicom_sources.json").read_text())
    first = pydicom.dcmread(doc["series"][0]["stacks"][0]["slices"][0]["path"], stop_before_pixels=True)
    assert doc["header"]["study_date"] == first.StudyDate
    text = (export / "study" / "dicom_sources.json").read_text()
    assert str(first.PatientID) not in text and str(first.PatientName) not in text  # identifiers stay in DICOM
    assert patient_identifiers(doc)["patient_id"] == first.PatientID
    for series in doc["series"]:
        for stack in series["stacks"]:
            img = sitk.ReadImage(str(export / "study" / stack["file"]))
            d = np.array(img.GetDirection()).reshape(3, 3)
            assert len(stack["slices"]) == img.GetSize()[2]
            for k, sl in enumerate(stack["slices"]):
                ds = pydicom.dcmread(sl["path"], stop_before_pixels=True)
                assert ds.SOPInstanceUID == sl["sop_instance_uid"] and ds.SOPClassUID == sl["sop_class_uid"]
                assert ds.SeriesInstanceUID == series["series_uid"]
                assert ds.FrameOfReferenceUID == series["frame_of_reference_uid"]
                want = np.array(img.GetOrigin()) + k * img.GetSpacing()[2] * d[:, 2]
                assert np.allclose([float(v) for v in ds.ImagePositionPatient], want, atol=1e-3), (stack["file"], k)


def test_seg_voxels_geometry_and_codes_equal_the_seg_nrrd(export):
    nrrd, masks = _nrrd_segments(export)
    ijk = np.array(nrrd["ijkToLPS"])
    spacing = np.linalg.norm(ijk[:3, :3], axis=0)
    normal = ijk[:3, 2] / spacing[2]
    ds = pydicom.dcmread(export / "report" / "seg.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.SegmentationType == "BINARY"
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert np.allclose([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
                       np.concatenate([ijk[:3, 0] / spacing[0], ijk[:3, 1] / spacing[1]]), atol=1e-5)
    measures = shared.PixelMeasuresSequence[0]
    assert np.allclose([float(v) for v in measures.PixelSpacing], [spacing[1], spacing[0]], atol=1e-5)
    assert float(measures.SpacingBetweenSlices) == pytest.approx(spacing[2])
    labels = {s.SegmentNumber: s.SegmentLabel for s in ds.SegmentSequence}
    assert sorted(labels.values()) == sorted(masks)
    # rebuild every segment from the frames with pydicom alone: slice index from each frame's position
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    got = {label: np.zeros_like(masks[label]) for label in labels.values()}
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pos = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        k = (pos - ijk[:3, 3]) @ normal / spacing[2]
        assert abs(k - round(k)) < 1e-3
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        got[labels[number]][int(round(k))] |= frames[f].astype(bool)
    for label, mask in masks.items():
        assert mask.any() and (got[label] == mask).all(), label
    by_id = {s["id"]: s["terminology"] for s in nrrd["segments"]}
    for s in ds.SegmentSequence:
        term = by_id[s.SegmentLabel]
        assert _code(s.SegmentedPropertyCategoryCodeSequence[0]) == "^".join(term["category"])
        assert _code(s.SegmentedPropertyTypeCodeSequence[0]) == "^".join(term["type"])
        if "anatomicRegion" in term:
            assert _code(s.AnatomicRegionSequence[0]) == "^".join(term["anatomicRegion"])
        assert s.SegmentAlgorithmType == "SEMIAUTOMATIC"
        assert s.SegmentAlgorithmName == "LiverMetsReview"


def test_seg_opens_with_highdicom_and_references_the_source_slices(export):
    _, masks = _nrrd_segments(export)
    seg = hd.seg.segread(export / "report" / "seg.dcm")
    sources = json.loads((export / "study" / "dicom_sources.json").read_text())
    source_uids = [sl["sop_instance_uid"] for sl in source_stack_of(sources, seg)["slices"]]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=source_uids,
                                               segment_numbers=seg.get_segment_numbers())
    for n in seg.get_segment_numbers():
        label = seg.get_segment_description(n).segment_label
        assert (pixels[..., n - 1].astype(bool) == masks[label]).all(), label


def source_stack_of(sources: dict, seg) -> dict:
    """The recorded stack the SEG's frames reference (found by the referenced series UID)."""
    ref_series = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    series = next(s for s in sources["series"] if s["series_uid"] == ref_series)
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    return next(st for st in series["stacks"] if {sl["sop_instance_uid"] for sl in st["slices"]} == referenced)


def test_seg_converts_back_with_dcmqi(export, tmp_path):
    tool = shutil.which("segimage2itkimage") or str(Path(sys.executable).parent / "segimage2itkimage")
    if not Path(tool).exists():
        pytest.skip("dcmqi's segimage2itkimage is not installed (pip install dcmqi, in the test extra)")
    _, masks = _nrrd_segments(export)
    ref = sitk.ReadImage(str(export / "lesions" / "lesions.seg.nrrd"))
    subprocess.run([tool, "--inputDICOM", str(export / "report" / "seg.dcm"), "--outputDirectory", str(tmp_path),
                    "-t", "nrrd"], check=True, capture_output=True)
    meta = json.loads((tmp_path / "meta.json").read_text())
    seen = set()
    for k, group in enumerate(meta["segmentAttributes"], 1):
        img = sitk.ReadImage(str(tmp_path / f"{k}.nrrd"))
        on_ref = sitk.GetArrayFromImage(sitk.Resample(img, ref if ref.GetDimension() == 3 else img, sitk.Transform(),
                                                      sitk.sitkNearestNeighbor, 0))
        assert np.allclose(img.GetSpacing(), ref.GetSpacing()[-3:], atol=1e-4)
        for attrs in group:
            got = on_ref == attrs["labelID"]
            assert (got == masks[attrs["SegmentLabel"]]).all(), attrs["SegmentLabel"]
            seen.add(attrs["SegmentLabel"])
    assert seen == set(masks)


def _sr_groups(export):
    sr = hd.sr.srread(export / "report" / "sr.dcm")
    report = hd.sr.MeasurementReport.from_sequence([sr])
    return sr, report.get_volumetric_roi_measurement_groups()


def _expected_rows(export) -> dict[str, list[dict]]:
    spec = json.loads((Path(__file__).parents[2] / "LiverMetsReview" / "LiverMetsReviewLib" / "resources"
                       / "dicom_export.json").read_text())
    stats = spec["statistics"]
    out = {}
    for les in json.loads((export / "lesions" / "measurements.json").read_text())["lesions"]:
        out[les["id"]] = [r for r in les["measurements"] if r["value"] is not None and (
            (r["quantity"] in spec["geometry"] and not r["statistic"])
            or (r["quantity"] in stats["quantities"] and r["region"] == stats["region"]
                and r["statistic"] in stats["statistics"] and r["image"] in spec["methods"]))]
    return out, spec


def test_sr_numbers_codes_and_units_are_the_measurements(export):
    sr, groups = _sr_groups(export)
    expected, spec = _expected_rows(export)
    review = {les["id"]: les for les in json.loads((export / "review" / "review.json").read_text())["lesions"]}
    seg = pydicom.dcmread(export / "report" / "seg.dcm", stop_before_pixels=True)
    numbers = {s.SegmentLabel: s.SegmentNumber for s in seg.SegmentSequence}
    assert sorted(g.tracking_identifier for g in groups) == sorted(review)
    for g in groups:
        lid = g.tracking_identifier
        ref = g.referenced_segment[0]  # the image item naming the SEG and its segment
        assert ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert ref.ReferencedSOPSequence[0].ReferencedSegmentNumber == numbers[lid]
        got = g.get_measurements()
        rows = expected[lid]
        assert len(got) == len(rows) > 3, (DRAW, lid)
        for row in rows:
            name = row["quantity_code"].split("^")
            hits = [m for m in got if m.name.value == name[1] and m.name.scheme_designator == name[0]
                    and (m.derivation.value if m.derivation else "") == (row["statistic_code"].split("^")[1]
                                                                          if row["statistic_code"] else "")
                    and (m.method.value if m.method else None) == (spec["methods"][row["image"]][1]
                                                                   if row["statistic"] else None)]
            assert len(hits) == 1, (DRAW, lid, row)
            assert hits[0].value == pytest.approx(row["value"], rel=1e-12, abs=1e-12)
            assert hits[0].unit.scheme_designator == "UCUM"
            assert hits[0].unit.value.lower() == row["unit_ucum"].lower()  # UCUM: mL and ml are the same unit
        category = review[lid]["impression"]["category"]
        evaluations = g.get_qualitative_evaluations()
        assert [e.value.meaning for e in evaluations] == [category]
        assert evaluations[0].name.value == "121073"
        texts = [i.TextValue for i in g[0].ContentSequence if i.ValueType == "TEXT"]
        assert (review[lid]["impression"].get("wording") or category) in texts


def test_sr_reads_back_with_dcmqi(export, tmp_path):
    tool = shutil.which("tid1500reader") or str(Path(sys.executable).parent / "tid1500reader")
    if not Path(tool).exists():
        pytest.skip("dcmqi's tid1500reader is not installed (pip install dcmqi, in the test extra)")
    subprocess.run([tool, "--inputDICOM", str(export / "report" / "sr.dcm"), "--outputMetadata",
                    str(tmp_path / "sr.json")], check=True, capture_output=True)
    doc = json.loads((tmp_path / "sr.json").read_text())
    expected, _ = _expected_rows(export)
    assert sorted(g["TrackingIdentifier"] for g in doc["Measurements"]) == sorted(expected)
    for g in doc["Measurements"]:
        rows = expected[g["TrackingIdentifier"]]
        assert len(g["measurementItems"]) == len(rows)
        for item in g["measurementItems"]:
            code = item["quantity"]["CodeValue"]
            derivation = item.get("derivationModifier", {}).get("CodeValue", "")
            values = [r["value"] for r in rows if r["quantity_code"].split("^")[1] == code
                      and (r["statistic_code"].split("^")[1] if r["statistic_code"] else "") == derivation]
            assert any(float(item["value"]) == pytest.approx(v, rel=1e-12) for v in values), item


@pytest.mark.parametrize("name", ["seg.dcm", "sr.dcm"])
def test_dciodvfy_finds_no_error(export, name):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; .ci/run installs it with apt")
    run = subprocess.run([tool, str(export / "report" / name)], capture_output=True, text=True)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, errors
    # warnings are only about the private coding scheme, which the files declare
    assert all("99LMR" in line for line in lines if line.startswith("Warning")), lines


def test_study_without_dicom_sources_refuses_and_keeps_the_text(export, tmp_path):
    study = tmp_path / "nrrd_study"
    shutil.copytree(export / "study", study, ignore=shutil.ignore_patterns("dicom_sources.json"))
    inputs = ReportInputs(export / "review", export / "lesions", study)
    with pytest.raises(LiverMetsError) as err:
        write_report(inputs, tmp_path / "out", ("html", "txt", "dicom"))
    text = str(err.value)
    assert "has no DICOM sources" in text and "livermets load" in text and "\n" not in text
    assert (tmp_path / "out" / "report.html").exists() and (tmp_path / "out" / "report.txt").exists()
    assert not (tmp_path / "out" / "seg.dcm").exists()
    assert main(["report", "--review", str(export / "review"), "--lesions", str(export / "lesions"), "--study",
                 str(study), "-o", str(tmp_path / "cli"), "--format", "dicom"]) != 0


def test_grid_of_no_source_series_is_said(export):
    sources = json.loads((export / "study" / "dicom_sources.json").read_text())
    img = sitk.Image([7, 5, 3], sitk.sitkUInt8)
    with pytest.raises(LiverMetsError, match="none of the DICOM source series"):
        source_stack(sources, img, [], Path("x.seg.nrrd"))


def test_missing_highdicom_is_one_sentence(export, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "highdicom", None)
    with pytest.raises(LiverMetsError) as err:
        write_dicom(ReportInputs(export / "review", export / "lesions", export / "study"), tmp_path)
    assert str(err.value) == NO_HIGHDICOM and "livermetsreview[dicom]" in NO_HIGHDICOM


def test_private_codes_fit_a_code_value_and_every_impression_has_one():
    from LiverMetsReviewLib.resources import load_json

    spec, quantities = load_json("dicom_export.json"), load_json("quantities.json")
    terminology = load_json("lesion_terminology.json")
    triplets = [q["quantity"] for q in quantities["quantities"].values()] + list(quantities["statistics"].values())
    triplets += list(spec["methods"].values())
    triplets += [(t["CodingSchemeDesignator"], t["CodeValue"], t["CodeMeaning"])
                 for c in terminology["SegmentationCodes"]["Category"] for t in c["Type"]]
    triplets += [(spec["impression"]["value_scheme"], v, k) for k, v in spec["impression"]["values"].items()]
    too_long = [t for t in triplets if len(str(t[1])) > 16 or len(str(t[2])) > 64]
    assert not too_long, too_long  # CodeValue is SH (16), CodeMeaning LO (64)
    categories = {r["category"] for r in load_json("checklist.json")["impression"]["precedence"]}
    assert categories <= set(spec["impression"]["values"]), categories - set(spec["impression"]["values"])


def test_phantom_written_with_dicom_records_the_same_sources_as_load(export, tmp_path):
    from LiverMetsReviewLib.phantom import generate_phantom, write_phantom

    write_phantom(generate_phantom(seed=3, size="small"), tmp_path, ("nrrd", "dicom"))  # conftest's phantom_dicom
    mine = json.loads((tmp_path / "dicom_sources.json").read_text())
    loaded = json.loads((export / "study" / "dicom_sources.json").read_text())

    def uids(doc):
        return {(s["role"], st["file"]): [sl["sop_instance_uid"] for sl in st["slices"]]
                for s in doc["series"] for st in s["stacks"]}

    assert uids(mine) == uids(loaded) and mine["header"] == loaded["header"]
    for s in mine["series"]:
        for st in s["stacks"]:
            img = sitk.ReadImage(str(tmp_path / st["file"]))
            assert list(img.GetSize()) == st["geometry"]["size"]
            assert np.allclose(img.GetOrigin(), st["geometry"]["origin"], atol=1e-3)


def test_report_header_shows_the_patient_from_the_dicom_files(export, tmp_path):
    """The identifiers come from the DICOM files at report time (the study folder does not keep them)."""
    doc = json.loads((export / "study" / "dicom_sources.json").read_text())
    first = pydicom.dcmread(doc["series"][0]["stacks"][0]["slices"][0]["path"], stop_before_pixels=True)
    assert main(["report", "--review", str(export / "review"), "--study", str(export / "study"), "-o",
                 str(tmp_path / "r"), "--format", "html"]) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "from the DICOM headers" in html
    assert f"<th>Patient ID</th><td>{first.PatientID}</td>" in html
    assert f"<th>Study date</th><td>{first.StudyDate}</td>" in html
