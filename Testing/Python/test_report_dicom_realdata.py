"""DICOM SEG + SR exported against real scanner DICOM from ../shared/data (skipped when absent).

Real data: the CHAOS Philips 1.5 T T1 dual-echo slices (classic MR Image Storage, one slice per echo, in- and
opposed phase in one series, anonymised: PatientID, StudyDate, Manufacturer empty; SpacingBetweenSlices 5.5 but
SliceThickness 5) and the Siemens XA30 DWI (Enhanced MR Image Storage, one 39-frame file per volume, pixel measures
and orientation repeated per frame instead of shared). The CHAOS T2-SPIR with the expert liver label is NIfTI only
(no DICOM to reference), so it cannot serve here. The segmentations are SYNTHETIC: a liver disc/sphere and a lesion
inside it drawn at random positions on the real grids (the XA30 data is a brain); what is tested is the export
against the scanners' files, not the outlines. Truth: the DICOM files themselves (SOP UIDs, positions, frame numbers),
the .seg.nrrd (slicerio), measurements.json, and dciodvfy run on the source files (what the scanner's own files
already carry is not ours)."""

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

from conftest import shared_path
from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.io.images import write_image
from LiverMetsReviewLib.lesions.review import terminology_for
from LiverMetsReviewLib.lesions.seg_file import write_layered_segmentation
from LiverMetsReviewLib.report import ReportInputs
from LiverMetsReviewLib.report.dicom_export import UTF8, write_dicom

hd = pytest.importorskip("highdicom", reason="highdicom (test extra) builds and reads the DICOM SEG/SR")
slicerio = pytest.importorskip("slicerio", reason="slicerio (test extra) is the reference .seg.nrrd reader")

DRAW = 11 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else random.SystemRandom().randrange(10**6)
CHAOS_SETS = ("set10", "set3")


def _draw_masks(ref: sitk.Image, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic lesion (ball, radius 5-10 mm) at a random place of the central image, in the lower half of the
    slices, and a liver ball three times as wide around it (clipped to the grid)."""
    size = ref.GetSize()
    centre = [rng.uniform(0.35, 0.65) * size[0], rng.uniform(0.35, 0.65) * size[1],
              rng.uniform(0.25, 0.4) * (size[2] - 1)]  # off the middle slice: a slice order mix-up shows
    radius = rng.uniform(5.0, 10.0)
    zz, yy, xx = np.indices(size[::-1])
    sp = ref.GetSpacing()
    d2 = ((xx - centre[0]) * sp[0]) ** 2 + ((yy - centre[1]) * sp[1]) ** 2 + ((zz - centre[2]) * sp[2]) ** 2
    return d2 <= radius**2, d2 <= (3 * radius) ** 2


def _pipeline(root: Path, dicom: Path, ref_file: str, rng: random.Random, roles: Path | None = None) -> Path:
    """load -> drawn lesion + liver on ``ref_file``'s grid -> measure --drawn -> review -> report --format dicom."""
    args = ["load", str(dicom), "-o", str(root / "study")] + (["--roles", str(roles)] if roles else [])
    assert main(args) == 0
    ref = sitk.ReadImage(str(root / "study" / ref_file))
    lesion, liver = _draw_masks(ref, rng)
    write_layered_segmentation(ref, [{"id": "L1", "name": "L1", "mask": lesion, "color": [1, 0, 0],
                                      "terminology": terminology_for("metastasis")[0], "tags": {}}],
                               root / "drawn.seg.nrrd")
    mask = sitk.GetImageFromArray(liver.astype(np.uint8))
    mask.CopyInformation(ref)
    write_image(mask, root / "liver.nrrd")
    assert main(["measure", "--study", str(root / "study"), "--drawn", str(root / "drawn.seg.nrrd"), "--liver-mask",
                 str(root / "liver.nrrd"), "-o", str(root / "lesions")]) == 0
    assert main(["review", "--study", str(root / "study"), "--lesions", str(root / "lesions"), "-o",
                 str(root / "review")]) == 0
    assert main(["report", "--review", str(root / "review"), "--lesions", str(root / "lesions"), "--study",
                 str(root / "study"), "-o", str(root / "report"), "--format", "txt", "dicom"]) == 0
    return root


_BUILT: dict[str, tuple[Path, Path]] = {}


def _export(case: str, factory) -> tuple[Path, Path]:
    """The exported case, built once per run: a CHAOS set (classic Philips) or the XA30 DWI (enhanced Siemens)."""
    if case not in _BUILT:
        root = factory.mktemp(case)
        if case == "xa30":
            dicom = shared_path("data", "siemens-xa30-dwi-pa", "In")
            _pipeline(root, dicom, "adc_scanner.nrrd", random.Random(DRAW))
        else:
            dicom = shared_path("data", "chaos-abdomen-mr", "t1dual", case)
            # the reader's roles: the unenhanced T1 dual-echo series is the pre-contrast T1 (a lesion series)
            number = int(pydicom.dcmread(next(dicom.glob("*.dcm")), stop_before_pixels=True).SeriesNumber)
            (root / "roles.json").write_text(json.dumps({"overrides": {str(number): "t1_pre"}}))
            _pipeline(root, dicom, "t1_pre_e1.nrrd", random.Random(f"{DRAW}{case}"), root / "roles.json")
        _BUILT[case] = (root, dicom)
    return _BUILT[case]


@pytest.fixture(scope="module", params=[*CHAOS_SETS, "xa30"])
def exported(request, tmp_path_factory):
    return _export(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=CHAOS_SETS)
def chaos(request, tmp_path_factory):
    return _export(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def xa30(tmp_path_factory):
    return _export("xa30", tmp_path_factory)


def _nrrd_masks(root: Path) -> tuple[dict, dict]:
    seg = slicerio.read_segmentation(str(root / "lesions" / "lesions.seg.nrrd"))
    masks = {s["id"]: slicerio.segment_mask(seg, s["id"]).transpose(2, 1, 0).astype(bool) for s in seg["segments"]}
    return seg, masks


def _source_frames(dicom: Path, sop_uids: set[str]) -> dict[tuple[str, int | None], np.ndarray]:
    """(SOP instance UID, frame number or None) -> ImagePositionPatient, read from the scanner's files."""
    out = {}
    for path in dicom.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.SOPInstanceUID not in sop_uids:
            continue
        if "PerFrameFunctionalGroupsSequence" in ds:
            for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence, 1):
                out[(ds.SOPInstanceUID, f)] = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        else:
            out[(ds.SOPInstanceUID, None)] = np.array(ds.ImagePositionPatient, float)
    return out


def test_seg_frames_reference_the_scanner_images_at_their_positions(exported):
    """Every SEG frame names a scanner image (and frame) that exists, lies where the frame lies, and the frames
    rebuilt from their positions alone are the .seg.nrrd voxels."""
    root, dicom = exported
    nrrd, masks = _nrrd_masks(root)
    ijk = np.array(nrrd["ijkToLPS"])
    spacing = np.linalg.norm(ijk[:3, :3], axis=0)
    normal = ijk[:3, 2] / spacing[2]
    ds = pydicom.dcmread(root / "report" / "seg.dcm")
    referenced = {i.ReferencedSOPInstanceUID for s in ds.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    positions = _source_frames(dicom, referenced)
    assert {uid for uid, _ in positions} == referenced, f"draw {DRAW}"
    labels = {s.SegmentNumber: s.SegmentLabel for s in ds.SegmentSequence}
    assert sorted(labels.values()) == sorted(masks)
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    got = {label: np.zeros_like(m) for label, m in masks.items()}
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pos = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        source = item.DerivationImageSequence[0].SourceImageSequence
        assert len(source) == 1
        frame = source[0].get("ReferencedFrameNumber")
        key = (source[0].ReferencedSOPInstanceUID, None if frame is None else int(frame))
        assert np.allclose(positions[key], pos, atol=1e-3), (DRAW, key)
        k = (pos - ijk[:3, 3]) @ normal / spacing[2]
        assert abs(k - round(k)) < 1e-3
        got[labels[item.SegmentIdentificationSequence[0].ReferencedSegmentNumber]][int(round(k))] |= frames[f] > 0
    for label, mask in masks.items():
        assert mask.any() and (got[label] == mask).all(), (DRAW, label)


def test_enhanced_source_is_one_multiframe_image_with_frame_numbers(xa30):
    root, _ = xa30
    doc = json.loads((root / "study" / "dicom_sources.json").read_text())
    ds = pydicom.dcmread(root / "report" / "seg.dcm", stop_before_pixels=True)
    refs = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert len(refs) == 1 and refs[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    stack = next(st for s in doc["series"] for st in s["stacks"]
                 if {sl["sop_instance_uid"] for sl in st["slices"]} == {refs[0].ReferencedSOPInstanceUID})
    source = pydicom.dcmread(stack["slices"][0]["path"], stop_before_pixels=True)
    assert [sl["frame"] for sl in stack["slices"]] and len(stack["slices"]) == int(source.NumberOfFrames)
    for sl in stack["slices"]:
        assert sl["sop_instance_uid"] == source.SOPInstanceUID and 1 <= sl["frame"] <= int(source.NumberOfFrames)


def test_seg_reads_back_with_highdicom(exported):
    root, _ = exported
    _, masks = _nrrd_masks(root)
    seg = hd.seg.segread(root / "report" / "seg.dcm")
    doc = json.loads((root / "study" / "dicom_sources.json").read_text())
    refs = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    stack = next(st for s in doc["series"] for st in s["stacks"]
                 if {sl["sop_instance_uid"] for sl in st["slices"]} == refs)
    numbers = seg.get_segment_numbers()
    if stack["slices"][0]["frame"] is None:
        pixels = seg.get_pixels_by_source_instance([sl["sop_instance_uid"] for sl in stack["slices"]],
                                                   segment_numbers=numbers, assert_missing_frames_are_empty=True)
    else:
        pixels = seg.get_pixels_by_source_frame(stack["slices"][0]["sop_instance_uid"],
                                                [sl["frame"] for sl in stack["slices"]], segment_numbers=numbers,
                                                assert_missing_frames_are_empty=True)  # empty frames are omitted
    for n in numbers:
        label = seg.get_segment_description(n).segment_label
        assert (pixels[..., n - 1].astype(bool) == masks[label]).all(), (DRAW, label)


def _tool(name: str) -> str:
    tool = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(tool).exists():
        pytest.skip(f"dcmqi's {name} is not installed (pip install dcmqi, in the test extra)")
    return tool


def test_seg_converts_back_with_dcmqi(exported, tmp_path):
    root, _ = exported
    _, masks = _nrrd_masks(root)
    ref = sitk.ReadImage(str(root / "lesions" / "lesions.seg.nrrd"))
    grid = sitk.Image(ref.GetSize()[-3:], sitk.sitkUInt8)
    grid.SetOrigin(ref.GetOrigin())
    grid.SetSpacing(ref.GetSpacing()[-3:])
    grid.SetDirection(ref.GetDirection()[-9:] if ref.GetDimension() == 3 else ref.GetDirection())
    subprocess.run([_tool("segimage2itkimage"), "--inputDICOM", str(root / "report" / "seg.dcm"), "--outputDirectory",
                    str(tmp_path), "-t", "nrrd"], check=True, capture_output=True)
    meta = json.loads((tmp_path / "meta.json").read_text())
    seen = set()
    for k, group in enumerate(meta["segmentAttributes"], 1):
        img = sitk.ReadImage(str(tmp_path / f"{k}.nrrd"))
        on_ref = sitk.GetArrayFromImage(sitk.Resample(img, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
        for attrs in group:
            assert (on_ref == attrs["labelID"]).tolist() == masks[attrs["SegmentLabel"]].tolist(), (DRAW, attrs)
            seen.add(attrs["SegmentLabel"])
    assert seen == set(masks)


def test_sr_numbers_are_measurements_json(exported, tmp_path):
    root, _ = exported
    sr = hd.sr.srread(root / "report" / "sr.dcm")
    groups = hd.sr.MeasurementReport.from_sequence([sr]).get_volumetric_roi_measurement_groups()
    lesions = {les["id"]: les for les in json.loads((root / "lesions" / "measurements.json").read_text())["lesions"]}
    assert sorted(g.tracking_identifier for g in groups) == sorted(lesions)
    for g in groups:
        rows = lesions[g.tracking_identifier]["measurements"]
        got = g.get_measurements()
        assert got, (DRAW, g.tracking_identifier)
        for m in got:  # each SR number is a measurements.json value of that quantity and unit
            hits = [r for r in rows if r["quantity_code"].split("^")[1] == m.name.value and r["value"] is not None
                    and r["value"] == pytest.approx(m.value, rel=1e-12, abs=1e-12)]
            assert hits and hits[0]["unit_ucum"].lower() == m.unit.value.lower(), (DRAW, m.name.meaning, m.value)
        volume = next(r["value"] for r in rows if r["quantity"] == "volume" and not r["statistic"])
        assert [m.value for m in got if m.name.meaning.lower() == "volume"] == [pytest.approx(volume, rel=1e-12)]
    out = tmp_path / "sr.json"
    subprocess.run([_tool("tid1500reader"), "--inputDICOM", str(root / "report" / "sr.dcm"), "--outputMetadata",
                    str(out)], check=True, capture_output=True)
    assert sorted(g["TrackingIdentifier"] for g in json.loads(out.read_text())["Measurements"]) == sorted(lesions)


def _dciodvfy(path: Path) -> list[str]:
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; .ci/run installs it with apt")
    run = subprocess.run([tool, str(path)], capture_output=True, text=True)
    return [line.strip() for line in (run.stdout + run.stderr).splitlines()]


@pytest.mark.parametrize("name", ["seg.dcm", "sr.dcm"])
def test_dciodvfy_finds_no_error_and_only_the_scanners_warnings(exported, name):
    """No error in our objects; every warning is either about our declared private scheme or one dciodvfy also
    gives on the scanner's own file (e.g. the empty PatientID / StudyDate of the anonymised CHAOS files)."""
    root, _ = exported
    ours = _dciodvfy(root / "report" / name)
    assert not [line for line in ours if line.startswith("Error")], (DRAW, ours)
    seg = pydicom.dcmread(root / "report" / "seg.dcm", stop_before_pixels=True)
    doc = json.loads((root / "study" / "dicom_sources.json").read_text())
    uid = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    path = next(sl["path"] for s in doc["series"] for st in s["stacks"] for sl in st["slices"]
                if sl["sop_instance_uid"] == uid)
    theirs = set(_dciodvfy(Path(path)))
    extra = [line for line in ours if line.startswith("Warning") and "99LMR" not in line and line not in theirs]
    assert not extra, extra


def _copy_with_headers(src: Path, dst: Path, **changes) -> Path:
    """The scanner's files with some patient/study attributes changed or removed (None), in a temporary folder."""
    dst.mkdir(parents=True)
    for path in sorted(src.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(dst / path.name)
    return dst


def test_absent_patient_attributes_and_a_name_outside_the_character_set(tmp_path):
    """Real Philips files without PatientBirthDate / StudyID / AccessionNumber (left out, not empty) and a lesion
    named outside the files' ISO_IR 100: the objects are written, valid, and keep every character (UTF-8)."""
    src = shared_path("data", "chaos-abdomen-mr", "t1dual", "set10")
    dicom = _copy_with_headers(src, tmp_path / "dcm", PatientName="Müller^Jörg", PatientBirthDate=None, StudyID=None,
                               AccessionNumber=None)
    (tmp_path / "roles.json").write_text(json.dumps({"overrides": {"601": "t1_pre"}}))
    assert main(["load", str(dicom), "-o", str(tmp_path / "study"), "--roles", str(tmp_path / "roles.json")]) == 0
    ref = sitk.ReadImage(str(tmp_path / "study" / "t1_pre_e1.nrrd"))
    lesion, liver = _draw_masks(ref, random.Random(DRAW))
    name = "Läsion-病変"
    write_layered_segmentation(ref, [{"id": name, "name": name, "mask": lesion, "color": [1, 0, 0],
                                      "terminology": terminology_for("metastasis")[0], "tags": {}}],
                               tmp_path / "drawn.seg.nrrd")
    mask = sitk.GetImageFromArray(liver.astype(np.uint8))
    mask.CopyInformation(ref)
    write_image(mask, tmp_path / "liver.nrrd")
    assert main(["measure", "--study", str(tmp_path / "study"), "--drawn", str(tmp_path / "drawn.seg.nrrd"),
                 "--liver-mask", str(tmp_path / "liver.nrrd"), "--no-maps", "-o", str(tmp_path / "lesions")]) == 0
    assert main(["review", "--study", str(tmp_path / "study"), "--lesions", str(tmp_path / "lesions"), "-o",
                 str(tmp_path / "review")]) == 0
    seg_path, sr_path = write_dicom(ReportInputs(tmp_path / "review", tmp_path / "lesions", tmp_path / "study"),
                                    tmp_path / "out")
    seg, sr = pydicom.dcmread(seg_path), pydicom.dcmread(sr_path)
    assert seg.SpecificCharacterSet == UTF8 == sr.SpecificCharacterSet
    assert str(seg.PatientName) == "Müller^Jörg" == str(sr.PatientName)
    assert name in [s.SegmentLabel for s in seg.SegmentSequence]
    assert [g.tracking_identifier for g in hd.sr.MeasurementReport.from_sequence([hd.sr.srread(sr_path)])
            .get_volumetric_roi_measurement_groups()] == [name]
    for ds in (seg, sr):
        assert ds.PatientBirthDate == "" and ds.StudyID == "" and ds.AccessionNumber == ""
    for path in (seg_path, sr_path):
        assert not [line for line in _dciodvfy(path) if line.startswith("Error")]


def _tampered(root: Path, tmp_path: Path, edit) -> ReportInputs:
    study = tmp_path / "study"
    shutil.copytree(root / "study", study)
    doc = json.loads((study / "dicom_sources.json").read_text())
    seg = pydicom.dcmread(root / "report" / "seg.dcm", stop_before_pixels=True)
    uid = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    stack = next(st for s in doc["series"] for st in s["stacks"] if st["slices"][0]["sop_instance_uid"] == uid)
    edit(stack, doc)
    (study / "dicom_sources.json").write_text(json.dumps(doc))
    return ReportInputs(root / "review", root / "lesions", study)


def _other_file(stack: dict, doc: dict) -> None:
    other = next(st for s in doc["series"] for st in s["stacks"]
                 if st["slices"][0]["sop_instance_uid"] != stack["slices"][0]["sop_instance_uid"])
    stack["slices"][::2] = other["slices"][::2]  # half the slices from another enhanced file


def _part_of_file(stack: dict, doc: dict) -> None:
    stack["slices"][1]["frame"] = stack["slices"][0]["frame"]  # one frame of the file left out


@pytest.mark.parametrize(("edit", "words"), [(_other_file, "2 enhanced (multi-frame) files"),
                                             (_part_of_file, "holds 39 frames of which")])
def test_an_enhanced_stack_a_seg_cannot_reference_is_one_sentence(xa30, tmp_path, edit, words):
    root, _ = xa30
    inputs = _tampered(root, tmp_path, edit)
    with pytest.raises(LiverMetsError) as err:
        write_dicom(inputs, tmp_path / "out")
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out" / "seg.dcm").exists()


def test_liver_on_a_single_slice_series_is_one_sentence(chaos, capsys):
    """The CHAOS dual-echo series is one slice: 'livermets liver' refuses it in one sentence (no N4 traceback) and
    points to the drawn liver that 'measure --liver-mask' takes, as the pipeline above did."""
    root, _ = chaos
    ref = sitk.ReadImage(str(root / "study" / "t1_pre_e1.nrrd"))
    seed = ref.TransformContinuousIndexToPhysicalPoint([v / 2 for v in ref.GetSize()[:2]] + [0.0])
    assert main(["liver", "--study", str(root / "study"), "-o", str(root / "liver"), "--seed",
                 *[str(v) for v in seed]]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 slice(s)" in err[0] and "--liver-mask" in err[0], err
