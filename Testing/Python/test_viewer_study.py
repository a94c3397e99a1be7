"""The study a viewer shows (3D Slicer's volumes) written as a study folder with ``dicom_sources.json``.

Truth: what ``livermets load`` writes for the same phantom DICOM (its roles.json and dicom_sources.json) and the
DICOM files themselves, read here with pydicom. The viewer's volumes are the load's NRRD stacks (as Slicer's DICOM
plugins read them) with the SOP instance UIDs of their files gathered from the files, in a drawn order; drawn
series are resampled, cropped or run backwards to check what is refused and what is reordered."""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.io.study_folder import read_study_folder, read_study_index
from LiverMetsReviewLib.report.dicom_export import source_stack
from LiverMetsReviewLib.study.sources import read_dicom_sources
from LiverMetsReviewLib.study.viewer_study import NO_DICOM, ViewerVolume, group_volumes, write_viewer_study

DRAW = 5 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else random.SystemRandom().randrange(10**6)


@pytest.fixture(scope="module")
def loaded(phantom_dicom, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("viewer_study") / "study"
    assert main(["load", str(phantom_dicom), "-o", str(out)]) == 0
    return out


def _instances(dicom: Path) -> dict[tuple[str, float | None, float | None], list[tuple[str, str]]]:
    """(series UID, b-value, echo time) -> [(SOP instance UID, file)], read from the files with pydicom."""
    out = defaultdict(list)
    for path in sorted(p for p in dicom.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        b = float(ds.DiffusionBValue) if "DiffusionBValue" in ds else None
        out[(ds.SeriesInstanceUID, b, float(ds.EchoTime))].append((ds.SOPInstanceUID, str(path)))
    return out


def _volumes(study: Path, dicom: Path, rng: random.Random) -> list[ViewerVolume]:
    """The load's stacks as a viewer's volumes: the DICOM images of each stack found by series UID, b-value and
    echo time, handed over in a drawn order."""
    found = _instances(dicom)
    _, index = read_study_index(study)
    vols = []
    for entry, series in zip(index["series"], read_study_folder(study), strict=True):
        uid = entry["meta"]["series_uid"]
        for img, meta in zip(series.stacks, series.stack_meta, strict=True):
            keys = [k for k in found if k[0] == uid and (k[1] == meta.get("b_value") or "b_value" not in meta)
                    and ("echo_time_ms" not in meta or abs(k[2] - meta["echo_time_ms"]) < 0.01)]
            assert len(keys) == 1, (entry["role"], meta, keys)
            instances = list(found[keys[0]])
            rng.shuffle(instances)
            vols.append(ViewerVolume(img, entry["role"], b_value=meta.get("b_value"),
                                     echo_time_ms=meta.get("echo_time_ms") if len(series.stacks) > 1 else None,
                                     description=entry["meta"].get("description", ""), instances=instances))
    rng.shuffle(vols)
    return vols


def _by_file(doc: dict) -> dict:
    return {(s["role"], st["file"]): st for s in doc["series"] for st in s["stacks"]}


def test_viewer_study_records_what_load_records(loaded, phantom_dicom, tmp_path):
    rng = random.Random(DRAW)
    index_path, notes = write_viewer_study(_volumes(loaded, phantom_dicom, rng), tmp_path / "study")
    assert notes == [], f"draw {DRAW}: {notes}"
    mine, theirs = read_dicom_sources(tmp_path / "study"), read_dicom_sources(loaded)
    assert mine["header"] == theirs["header"]
    assert {s["role"]: s["series_uid"] for s in mine["series"]} == {s["role"]: s["series_uid"]
                                                                      for s in theirs["series"]}
    want = _by_file(theirs)
    assert set(_by_file(mine)) == set(want), f"draw {DRAW}"
    for key, st in _by_file(mine).items():
        assert [sl["sop_instance_uid"] for sl in st["slices"]] == [sl["sop_instance_uid"]
                                                                   for sl in want[key]["slices"]], (DRAW, key)
        for name in ("spacing", "origin", "direction"):
            assert np.allclose(st["geometry"][name], want[key]["geometry"][name], atol=1e-4), (DRAW, key, name)
        img = sitk.ReadImage(str(tmp_path / "study" / st["file"]))
        assert list(img.GetSize()) == st["geometry"]["size"]
    assert json.loads(index_path.read_text())["written_by"].startswith("LiverMetsReview")


def test_a_volume_run_backwards_keeps_the_nrrd_slice_order(loaded, phantom_dicom, tmp_path):
    rng = random.Random(DRAW + 1)
    vols = _volumes(loaded, phantom_dicom, rng)
    single = [v for v in vols if sum(w.role == v.role for w in vols) == 1]
    flipped = rng.choice(single)
    flipped.image = sitk.Flip(flipped.image, [False, False, True])  # k = 0 is now the last slice; same voxels
    write_viewer_study(vols, tmp_path / "study")
    stack = next(st for (role, _), st in _by_file(read_dicom_sources(tmp_path / "study")).items()
                 if role == flipped.role)
    img = sitk.ReadImage(str(tmp_path / "study" / stack["file"]))
    d = np.array(img.GetDirection()).reshape(3, 3)
    for k, sl in enumerate(stack["slices"]):
        ds = pydicom.dcmread(sl["path"], stop_before_pixels=True)
        want = np.array(img.GetOrigin()) + k * img.GetSpacing()[2] * d[:, 2]
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], want, atol=1e-3), (DRAW, flipped.role, k)


def test_a_resampled_volume_is_not_referenced_and_seg_export_says_why(loaded, phantom_dicom, tmp_path):
    rng = random.Random(DRAW + 2)
    vols = _volumes(loaded, phantom_dicom, rng)
    single = [v for v in vols if sum(w.role == v.role for w in vols) == 1]
    changed = rng.choice(single)
    img = changed.image
    how = rng.choice(["resampled", "cropped"])
    if how == "resampled":
        spacing = [s * rng.uniform(1.2, 1.6) for s in img.GetSpacing()]
        size = [max(2, int(n * s / t)) for n, s, t in zip(img.GetSize(), img.GetSpacing(), spacing, strict=True)]
        changed.image = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), spacing,
                                      img.GetDirection())
    else:
        changed.image = img[:, :, 1:]
    _, notes = write_viewer_study(vols, tmp_path / "study")
    assert len(notes) == 1 and changed.role in notes[0], (DRAW, how, notes)
    doc = read_dicom_sources(tmp_path / "study")
    assert changed.role not in {s["role"] for s in doc["series"]} and doc["not_recorded"] == notes
    with pytest.raises(LiverMetsError) as err:
        source_stack(doc, changed.image, [], Path("lesions.seg.nrrd"))
    assert changed.role in str(err.value) and "\n" not in str(err.value)


def test_volumes_not_from_dicom_write_no_sources(loaded, tmp_path):
    series = read_study_folder(loaded, {"t2", "t1_hepatobiliary"})
    vols = [ViewerVolume(s.image, s.role) for s in series]
    index_path, notes = write_viewer_study(vols, tmp_path / "study")
    assert read_dicom_sources(tmp_path / "study") is None and notes == [NO_DICOM]
    assert {s.role for s in read_study_folder(index_path)} == {"t2", "t1_hepatobiliary"}


def test_grouping_keeps_the_latest_volume_and_every_b_value():
    rng = random.Random(DRAW + 3)
    img = sitk.Image([4, 4, 3], sitk.sitkFloat32)
    bs = rng.sample([0.0, 50.0, 400.0, 800.0, 1000.0], 3)
    vols = [ViewerVolume(img, "t2", name="first"), *(ViewerVolume(img, "dwi", b_value=b, name=f"b{b}") for b in bs),
            ViewerVolume(img, "t2", name="second"), ViewerVolume(img, "dwi", b_value=bs[0], name="again")]
    groups = dict(group_volumes(vols))
    assert [v.name for v in groups["t2"]] == ["second"]
    assert [v.b_value for v in groups["dwi"]] == sorted(bs)
    assert "again" in [v.name for v in groups["dwi"]]
    with pytest.raises(LiverMetsError):
        write_viewer_study([ViewerVolume(img, "unassigned")], Path("/nonexistent/never"))


@pytest.mark.parametrize("flip", [False, True], ids=["as-dicom", "slices-reversed"])
def test_seg_of_a_viewer_study_puts_each_frame_on_the_image_it_was_drawn_on(loaded, phantom_dicom, tmp_path, flip):
    """Slicer reverses a left-handed stack's slices; the SEG of a lesion outlined on it must still reference, per
    frame, the DICOM image at that frame's position, with that slice's voxels."""
    pytest.importorskip("highdicom", reason="highdicom (test extra) builds the DICOM SEG")
    from LiverMetsReviewLib.lesions.channels import lesion_channels
    from LiverMetsReviewLib.lesions.review import OutlinedLesion
    from LiverMetsReviewLib.lesions.viewer_lesions import write_viewer_lesions
    from LiverMetsReviewLib.report import ReportInputs
    from LiverMetsReviewLib.report.dicom_export import write_dicom

    rng = random.Random(DRAW + 4)
    vols = _volumes(loaded, phantom_dicom, rng)
    for v in vols:
        if flip and v.role == "t1_hepatobiliary":
            v.image = sitk.Flip(v.image, [False, False, True])
    write_viewer_study(vols, tmp_path / "study")
    series = read_study_folder(tmp_path / "study")
    ref = lesion_channels(series).reference
    truth = json.loads((phantom_dicom.parent / "ground_truth.json").read_text())
    les = rng.choice([t for t in truth["lesions"] if t["diameter_mm"] >= 12])
    idx = np.indices(ref.GetSize()[::-1]).reshape(3, -1)[::-1].T  # (x, y, z) index of every voxel, z-major order
    d = np.array(ref.GetDirection()).reshape(3, 3)
    pts = np.array(ref.GetOrigin()) + (idx * np.array(ref.GetSpacing())) @ d.T
    mask = (np.linalg.norm(pts - np.array(les["centre_mm"]), axis=1) <= les["diameter_mm"] / 2).reshape(
        ref.GetSize()[::-1])
    write_viewer_lesions(series, [OutlinedLesion("L1", "metastasis", mask)], tmp_path / "lesions",
                         study_dir=tmp_path / "study")
    assert main(["review", "--study", str(tmp_path / "study"), "--lesions", str(tmp_path / "lesions"), "-o",
                 str(tmp_path / "review")]) == 0
    write_dicom(ReportInputs(tmp_path / "review", tmp_path / "lesions", tmp_path / "study"), tmp_path / "dicom")
    seg = pydicom.dcmread(str(tmp_path / "dicom" / "seg.dcm"))
    files = {uid: path for v in vols for uid, path in v.instances}
    pixels = seg.pixel_array.reshape(-1, *seg.pixel_array.shape[-2:])
    per_slice = {}
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        pos = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        src = pydicom.dcmread(files[uid], stop_before_pixels=True)
        assert np.allclose(pos, [float(v) for v in src.ImagePositionPatient], atol=1e-3), (DRAW, flip)
        ident = item if "SegmentIdentificationSequence" in item else seg.SharedFunctionalGroupsSequence[0]
        if ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1:
            per_slice[tuple(np.round(pos, 2))] = int(frame.sum())
    want = {tuple(np.round(ref.TransformIndexToPhysicalPoint((0, 0, k)), 2)): int(mask[k].sum())
            for k in range(mask.shape[0]) if mask[k].any()}
    assert per_slice == want, (DRAW, flip)
