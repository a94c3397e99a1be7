"""Messages a new user meets on imperfect scanner data, skipped files in every record, studies kept apart,
no patient identifiers in any output, and a killed command that leaves no partial file (issue 12)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.io.atomic import TEMP_PREFIX
from LiverMetsReviewLib.io.images import get_metadata
from LiverMetsReviewLib.maps import fit_adc
from LiverMetsReviewLib.maps.noise_mask import decide_signal
from LiverMetsReviewLib.study.load import _read_pixels


def _series(phantom_dicom: Path, prefix_words: str) -> Path:
    hits = [p for p in sorted(phantom_dicom.iterdir()) if prefix_words in p.name]
    assert hits, f"no phantom series named *{prefix_words}*"
    return hits[0]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _rewrite(path: Path, **values) -> None:
    ds = pydicom.dcmread(path)
    for key, value in values.items():
        setattr(ds, key, value)
    ds.save_as(path)


# ------------------------------------------------------------------------------------ truncated vs compressed
def test_truncated_file_is_skipped_with_its_name_and_no_decompression_advice(capsys, tmp_path, phantom_dicom):
    folder = _copy(_series(phantom_dicom, "t2_tse"), tmp_path / "t2")
    victim = sorted(folder.iterdir())[3]
    data = victim.read_bytes()
    rng = np.random.default_rng(12)
    victim.write_bytes(data[:int(rng.integers(len(data) // 3, len(data) - 10))])
    code, out, _ = _run(capsys, ["classify", str(folder), "--json"])
    assert code == 0
    reasons = {s["path"]: s["reason"] for s in json.loads(out)["skipped"]}
    assert "truncated" in reasons[str(victim)] and "copy it again" in reasons[str(victim)]
    assert "gdcmconv" not in reasons[str(victim)]
    with pytest.raises(ValueError) as err:  # read directly (the scan would skip it): the loader names it too
        _read_pixels(str(victim), "series 8")
    assert str(victim) in str(err.value) and "truncated" in str(err.value) and "gdcmconv" not in str(err.value)


def test_compressed_file_that_cannot_be_decoded_gets_the_decompression_advice(tmp_path, phantom_dicom):
    folder = _copy(_series(phantom_dicom, "t2_tse"), tmp_path / "t2")
    victim = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(victim)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"  # JPEG baseline, but the bytes are not JPEG
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8not a jpeg"])
    ds.save_as(victim, enforce_file_format=True)
    with pytest.raises(ValueError) as err:
        _read_pixels(str(victim), "series 8")
    assert "compressed" in str(err.value) and "gdcmconv" in str(err.value) and str(victim) in str(err.value)


# ------------------------------------------------------------------------------------ no-background notes
def _zero_background_dwi(rng: np.random.Generator) -> tuple[list[sitk.Image], list[float]]:
    shape = (6, 40, 40)
    zz, yy, xx = np.indices(shape)
    body = (yy - 20) ** 2 + (xx - 20) ** 2 < rng.uniform(60, 150)
    s0 = rng.uniform(300, 900)
    adc = rng.uniform(0.8e-3, 1.6e-3)
    images, bs = [], [0.0, 500.0, 1000.0]
    for b in bs:
        arr = np.where(body, s0 * np.exp(-b * adc) + rng.normal(0, 3, shape), 0.0)   # exact zeros outside
        images.append(sitk.GetImageFromArray(np.abs(arr).astype(np.float32)))
    return images, bs


def test_exact_zero_background_notes_say_what_was_done(tmp_path):
    rng = np.random.default_rng(5)
    images, bs = _zero_background_dwi(rng)
    res = fit_adc(images, bs, method="nlls")
    text = " ".join(res.summary["notes"]) + " " + json.dumps(res.summary["noise_rule"])
    assert "exact zeros" in text and "instead" in text
    assert "would mask most" not in text
    assert not any("exact zeros" in w for w in res.summary["warnings"])   # information, not a warning
    values = sitk.GetArrayFromImage(images[0])
    dec = decide_signal(values, np.ones(values.shape, bool), 0.05)
    assert "exact zeros" in dec.rule["rule"] and "instead" in dec.rule["rule"]


# ------------------------------------------------------------------------------------ skipped inputs travel
def test_skipped_files_are_in_every_json_and_map_record(capsys, tmp_path, phantom_dicom):
    dwi = _copy(_series(phantom_dicom, "ep2d_diff"), tmp_path / "dwi")
    files = sorted(dwi.iterdir())
    (dwi / "notes.txt").write_text("not DICOM")
    shutil.copy(files[0], dwi / "copy_of_first.dcm")           # duplicate SOP instance
    expected = {str(dwi / "notes.txt"), str(dwi / "copy_of_first.dcm")}
    out_map = tmp_path / "adc.nrrd"
    code, out, err = _run(capsys, ["adc", str(dwi), "-o", str(out_map), "--json"])
    assert code == 0, err
    assert {s["path"] for s in json.loads(out)["skipped"]} == expected
    assert {s["path"] for s in get_metadata(sitk.ReadImage(str(out_map)))["skipped_inputs"]} == expected
    # load -> study folder -> adc from the folder, and from its files: still listed
    study = tmp_path / "study"
    code, out, err = _run(capsys, ["load", str(dwi), "-o", str(study), "--json"])
    assert code == 0, err
    assert {s["path"] for s in json.loads(out)["skipped"]} == expected
    code, out, err = _run(capsys, ["adc", str(study), "-o", str(tmp_path / "adc2.nrrd"), "--json"])
    assert code == 0, err
    assert {s["path"] for s in json.loads(out)["skipped"]} == expected
    nrrds = sorted(str(p) for p in study.glob("dwi_b*.nrrd"))
    code, out, err = _run(capsys, ["adc", *nrrds, "-o", str(tmp_path / "adc3.nrrd"), "--json"])
    assert code == 0, err
    assert {s["path"] for s in json.loads(out)["skipped"]} == expected
    assert get_metadata(sitk.ReadImage(str(tmp_path / "adc3.nrrd")))["skipped_inputs_count"] == 2


# ------------------------------------------------------------------------------------ several studies
def _two_studies(tmp_path: Path, phantom_dicom: Path, **second) -> tuple[Path, Path, Path]:
    root = tmp_path / "mixed"
    a = _copy(_series(phantom_dicom, "ep2d_diff"), root / "visit_a")
    b = _copy(_series(phantom_dicom, "ep2d_diff"), root / "visit_b")
    for k, f in enumerate(sorted(b.iterdir())):
        _rewrite(f, SOPInstanceUID=f"2.25.{9000 + k}", SeriesInstanceUID="2.25.777", **second)
    return root, a, b


def test_several_studies_are_listed_and_commands_say_how_to_choose(capsys, tmp_path, phantom_dicom):
    root, a, b = _two_studies(tmp_path, phantom_dicom, StudyInstanceUID="2.25.555")
    code, out, _ = _run(capsys, ["classify", str(root), "--json"])
    listed = json.loads(out)["study_list"]
    assert code == 0 and len(listed) == 2
    assert {row["folder"] for row in listed} == {str(a), str(b)}
    for argv in (["load", str(root), "-o", str(tmp_path / "o")], ["adc", str(root), "-o", str(tmp_path / "x.nrrd")]):
        code, out, err = _run(capsys, argv)
        assert code == 2 and "2.25.555" in err and len(err.strip().splitlines()) == 1
        assert "--study" in err and str(b) in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "x.nrrd").exists()
    code, _, err = _run(capsys, ["load", str(root), "--study", "2.25.555", "-o", str(tmp_path / "o")])
    assert code == 0, err


def test_two_patients_under_one_study_uid_are_split(capsys, tmp_path, phantom_dicom):
    root, _, _ = _two_studies(tmp_path, phantom_dicom, PatientID="OTHER-PATIENT-7", PatientName="Other^Person")
    code, out, _ = _run(capsys, ["classify", str(root), "--json"])
    payload = json.loads(out)
    assert code == 0 and len(payload["study_list"]) == 2
    assert "OTHER-PATIENT-7" not in out and "Other^Person" not in out
    code, out, _ = _run(capsys, ["classify", str(root), "--json", "--show-identifiers"])
    assert "OTHER-PATIENT-7" in out    # shown when asked


# ------------------------------------------------------------------------------------ identifiers
MARKERS = {"PatientName": "Zyxmarker^Qwerty", "PatientID": "PIDMARK-48151623", "PatientBirthDate": "19111111",
           "OtherPatientIDs": "OTHERMARK-42", "AccessionNumber": "ACCMARK-99"}


def test_no_patient_identifier_in_any_output(capsys, tmp_path, phantom_dicom):
    root = tmp_path / "marked"
    for words in ("ep2d_diff", "fl2d_in", "fl2d_opp"):
        _copy(_series(phantom_dicom, words), root / words)
    for f in root.rglob("*.dcm"):
        _rewrite(f, **MARKERS)
    (root / "ep2d_diff" / "broken.dcm").write_bytes((root / "ep2d_diff" / "IM00001.dcm").read_bytes()[:900])
    study = tmp_path / "study"
    texts = []
    for argv in (["classify", str(root)], ["classify", str(root), "--json"],
                 ["load", str(root), "-o", str(study)], ["load", str(root), "-o", str(study), "--json"],
                 ["adc", str(root / "ep2d_diff"), "-o", str(tmp_path / "adc.nrrd"), "--json"],
                 ["adc", str(study), "-o", str(tmp_path / "adc2.nrrd")],
                 ["fat", "--study", str(study), "-o", str(tmp_path / "ff.nrrd"), "--json"]):
        code, out, err = _run(capsys, argv)
        assert code == 0, err
        texts += [out, err]
    texts += [p.read_bytes().decode("latin-1") for p in [*study.iterdir(), *tmp_path.glob("*.nrrd")] if p.is_file()]
    blob = "\n".join(texts)
    for value in MARKERS.values():
        assert value not in blob and value.split("^")[0] not in blob


# ------------------------------------------------------------------------------------ killed while writing
def test_killed_livermets_leaves_the_old_output_or_none(tmp_path):
    """SIGKILL `livermets enhancement` while it writes a large map: the output name never holds a partial file."""
    rng = np.random.default_rng(int(time.time()) % 1000)
    shape = (160, 256, 256)                                     # ~40 MB of float32: the write takes a while
    pre = rng.uniform(100, 200, shape).astype(np.float32)
    for name, arr in (("pre.nrrd", pre), ("post.nrrd", pre * 1.5)):
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / name), False)
    out = tmp_path / "re.nrrd"
    out.write_bytes(b"old")
    livermets = Path(sys.executable).with_name("livermets")
    cmd = [str(livermets) if livermets.exists() else sys.executable, *([] if livermets.exists() else
           ["-m", "LiverMetsReviewLib.cli"]), "enhancement", "--pre", str(tmp_path / "pre.nrrd"),
           "--post", str(tmp_path / "post.nrrd"), "-o", str(out), "--noise-floor", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
        if partial and partial[0].stat().st_size > 0:
            os.kill(proc.pid, signal.SIGKILL)
            seen = True
            break
        time.sleep(0.002)
    proc.wait()
    assert seen, "the command finished before it was seen writing; the test proves nothing"
    if out.exists() and out.read_bytes() != b"old":      # the rename won the race: then it is the whole map
        got = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
        np.testing.assert_allclose(got[:2], 50.0, atol=1e-3)
        assert got.shape == shape
