"""``livermets phantom`` end to end into a temporary folder (small size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.context import read_clinical_context
from LiverMetsReviewLib.io.segmentation import read_segmentation
from LiverMetsReviewLib.io.study_folder import read_study_folder
from LiverMetsReviewLib.phantom.lesions import catalogue
from LiverMetsReviewLib.phantom.scenarios import scenario_names
from LiverMetsReviewLib.roles import role_ids


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    rc = main(["phantom", "-o", str(out), "--small", "--seed", "5", "--scenario", "steatosis", "--liver-fat", "22",
               "--breath-hold-shift", "5"])
    return rc, out


def test_cli_writes_study_and_ground_truth(written, capsys):
    rc, out = written
    assert rc == 0
    series = read_study_folder(out)
    assert {s.role for s in series} == set(role_ids()) - {"unassigned"}
    dwi = next(s for s in series if s.role == "dwi")
    assert sorted(dwi.b_values) == [50.0, 400.0, 800.0]
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["seed"] == 5 and truth["scenario"]["id"] == "steatosis"
    assert truth["liver_background"]["pdff_percent"] == 22.0  # --liver-fat wins over the scenario's 18 %
    assert len(truth["lesions"]) == len(catalogue()["lesions"])  # steatosis: every lesion present
    # the clinical context beside the truth: the format --context takes, equal to the truth's copy
    assert read_clinical_context(out / "clinical_context.json") == truth["clinical_context"]
    # the seg file: one named segment per organ and lesion, the labelmap as written
    lab, segs = read_segmentation(out / "ground_truth.seg.nrrd")
    names = {s["id"]: s["name"] for s in segs}
    assert all(names[les["id"]] == les["name"] for les in truth["lesions"])
    assert "liver" in names and "spleen" in names
    plain = sitk.ReadImage(str(out / "ground_truth_labels.nrrd"))
    assert np.array_equal(sitk.GetArrayFromImage(plain), sitk.GetArrayFromImage(lab))
    assert set(np.unique(sitk.GetArrayFromImage(lab)).tolist()) - {0} == {s["label"] for s in segs}
    _c, csegs = read_segmentation(out / "couinaud.seg.nrrd")
    assert [s["name"] for s in csegs][:2] == ["Couinaud segment I", "Couinaud segment II"] and len(csegs) == 8
    # geometry of a written series equals the truth's record of it
    t2 = sitk.ReadImage(str(out / "t2.nrrd"))
    facts = truth["acquisition"]["series"]["t2"]
    assert list(t2.GetSize()) == facts["size"]
    assert np.allclose(t2.GetOrigin(), facts["origin_mm"], atol=1e-4)


def test_cli_slicerio_opens_the_segmentation(written):
    slicerio = pytest.importorskip("slicerio", reason="slicerio (test extra) is the reference .seg.nrrd reader")
    _rc, out = written
    truth = json.loads((out / "ground_truth.json").read_text())
    seg = slicerio.read_segmentation(str(out / "ground_truth.seg.nrrd"))
    by_id = {s["id"]: s for s in seg["segments"]}
    for les in truth["lesions"]:
        s = by_id[les["id"]]
        assert s["labelValue"] == les["label"] and s["name"] == les["name"]
        assert s["terminology"]["anatomicRegion"][2] == "Liver"
    assert by_id["liver"]["terminology"]["type"] == ["SCT", "10200004", "Liver"]


def test_list_scenarios(capsys):
    assert main(["phantom", "--list-scenarios"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in scenario_names())


def test_cli_errors_are_one_sentence(tmp_path, capsys):
    assert main(["phantom", "-o", str(tmp_path / "x"), "--small", "--scenario", "cirrhosis"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("livermets phantom: error: scenario 'cirrhosis' is unknown") and "\n" not in err
    assert main(["phantom", "--small"]) == 2
    assert "-o DIR" in capsys.readouterr().err
    assert main(["phantom", "-o", str(tmp_path / "y"), "--small", "--field-strength", "2"]) == 2
    assert "field strength 2 T" in capsys.readouterr().err


def test_cli_dicom_one_folder_per_series(tmp_path, capsys):
    pydicom = pytest.importorskip("pydicom")
    out = tmp_path / "dcm"
    assert main(["phantom", "-o", str(out), "--small", "--format", "dicom"]) == 0
    folders = sorted(p for p in (out / "dicom").iterdir() if p.is_dir())
    assert len(folders) == len(role_ids()) - 1
    truth = json.loads((out / "ground_truth.json").read_text())
    t2_desc = truth["acquisition"]["series"]["t2"]["description"]
    descs = {pydicom.dcmread(next(f.iterdir()), stop_before_pixels=True).SeriesDescription for f in folders}
    assert t2_desc in descs
    assert (out / "ground_truth.seg.nrrd").exists()
    assert "13 series" in capsys.readouterr().out
