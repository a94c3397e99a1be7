"""``livermets liver`` on a phantom study folder and on a folder holding only the real CHAOS T2-SPIR; the liver
figures against the phantom's truth (signals from its noise-free physics, volumes from its labels)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import shared_path
from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.io.segmentation import read_segmentation
from LiverMetsReviewLib.io.study_folder import write_study_folder
from LiverMetsReviewLib.phantom.generate import generate_phantom, write_phantom
from LiverMetsReviewLib.series import Series


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["liver", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def pseudocirrhosis(tmp_path_factory):
    study = generate_phantom(seed=41, scenario="pseudocirrhosis", size="small")
    folder = tmp_path_factory.mktemp("pseudo")
    write_phantom(study, folder)
    return study, folder


def truth_signal(study, role: str, organ: str) -> float:
    labels = {c["name"]: c["compartment_label"] for o in study.truth["organs"] for c in o["compartments"]}
    return study.truth["acquisition"]["series"][role]["noise_free_signal_by_label"][str(labels[organ])][0]


def test_cli_on_phantom_folder(pseudocirrhosis, tmp_path, capsys):
    study, folder = pseudocirrhosis
    code, out, _ = run(capsys, "--study", str(folder), "-o", str(tmp_path / "out"), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["series_used"] == "t1_portal_venous"
    labels, segments = read_segmentation(tmp_path / "out" / "liver.seg.nrrd")
    assert [s["name"] for s in segments] == ["Liver"]
    truth_seg = next(s for s in study.segments if s["id"] == "liver")
    assert "^10200004^Liver" in segments[0]["tags"]["TerminologyEntry"]
    assert segments[0]["color"] == pytest.approx(truth_seg["color"])
    truth = sitk.GetArrayFromImage(study.couinaud_on("t1_portal_venous")) > 0
    mask = sitk.GetArrayFromImage(labels) == 1
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) >= 0.95
    slicerio = pytest.importorskip("slicerio", reason="slicerio (test extra) is the reference .seg.nrrd reader")
    seg = slicerio.read_segmentation(str(tmp_path / "out" / "liver.seg.nrrd"))
    assert [s["name"] for s in seg["segments"]] == ["Liver"]
    assert seg["segments"][0]["terminology"]["type"] == ["SCT", "10200004", "Liver"]
    cou, cou_segments = read_segmentation(tmp_path / "out" / "couinaud.seg.nrrd")
    assert len(cou_segments) == 8 and set(np.unique(sitk.GetArrayViewFromImage(cou)).tolist()) <= set(range(9))
    f = summary["figures"]
    re_truth = 100 * (truth_signal(study, "t1_hepatobiliary", "liver") / truth_signal(study, "t1_pre", "liver") - 1)
    assert f["hbp_liver_relative_enhancement"]["value"] == pytest.approx(re_truth, abs=3.0)
    lsr = truth_signal(study, "t1_hepatobiliary", "liver") / truth_signal(study, "t1_hepatobiliary", "spleen")
    assert f["liver_to_spleen_ratio_hbp"]["value"] == pytest.approx(lsr, rel=0.04)
    spleen_ml = next(o["volume_ml"] for o in study.truth["organs"] if o["id"] == "spleen")
    assert f["spleen"]["volume_ml"] == pytest.approx(spleen_ml, rel=0.15)
    truth_ml = truth.sum() * np.prod(labels.GetSpacing()) / 1000.0
    assert f["liver_volume"]["value"] == pytest.approx(truth_ml, rel=0.06)
    assert f["fat_fraction_median"]["value"] is not None and f["fat_fraction_iqr"]["value"] >= 0
    written = json.loads((tmp_path / "out" / "liver_figures.json").read_text())
    assert written["figures"] == f and set(written["couinaud_landmarks_lps_mm"]) >= {"ivc", "portal_bifurcation"}


def test_figures_follow_the_anatomy_and_the_fat():
    """Pseudocirrhosis (enlarged caudate, nodular contour) gives a larger C/RL and nodularity than a normal liver;
    steatosis a higher fat median. Same seed, same pipeline."""
    from LiverMetsReviewLib.lesions.couinaud import couinaud_segments
    from LiverMetsReviewLib.lesions.liver import segment_liver
    from LiverMetsReviewLib.lesions.liver_figures import liver_figures
    from LiverMetsReviewLib.maps.fat import dixon_fat

    figs = {}
    for scenario in ("normal", "steatosis", "pseudocirrhosis"):
        study = generate_phantom(seed=43, scenario=scenario, size="small")
        images = {s.role: s.image for s in study.series}
        liver = segment_liver(images)
        lm = couinaud_segments(images, liver.mask).landmarks
        ff = dixon_fat(images["dixon_water"], images["dixon_fat"]).ff
        figs[scenario] = liver_figures(liver.mask, images, fat_map=ff, landmarks=lm)
        interior = sitk.GetArrayFromImage(sitk.Resample(study.couinaud_on("t1_portal_venous"), ff, sitk.Transform(),
                                                        sitk.sitkNearestNeighbor, 0)) > 0
        ff_truth = float(np.median(sitk.GetArrayFromImage(ff)[interior]))
        assert figs[scenario]["fat_fraction_median"]["value"] == pytest.approx(ff_truth, abs=1.0)
        assert figs[scenario]["liver_to_spleen_ratio_hbp"]["value"] is None  # no spleen given, none looked for
    assert figs["steatosis"]["fat_fraction_median"]["value"] > figs["normal"]["fat_fraction_median"]["value"] + 10
    for key in ("caudate_right_lobe_ratio", "surface_nodularity"):
        assert figs["pseudocirrhosis"][key]["value"] > figs["normal"][key]["value"], key


def test_cli_on_a_folder_with_only_the_chaos_t2(tmp_path, capsys):
    folder = shared_path("data", "chaos-abdomen-mr", "t2spir")
    image = sitk.ReadImage(str(folder / "case1_t2spir.nii.gz"), sitk.sitkFloat32)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "case1_labels.nii.gz"))) == 1
    write_study_folder([Series("t2", [image], meta={"description": "T2 SPIR (CHAOS case 1)",
                                                     "field_strength_t": 1.5})], tmp_path / "study")
    code, out, _ = run(capsys, "--study", str(tmp_path / "study"), "-o", str(tmp_path / "out"), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["series_used"] == "t2"
    assert not (tmp_path / "out" / "couinaud.seg.nrrd").exists()
    assert any("Couinaud segments not computed" in n for n in summary["notes"])
    assert summary["figures"]["hbp_liver_relative_enhancement"]["why"] == "no hepatobiliary phase in the study"
    labels, _ = read_segmentation(tmp_path / "out" / "liver.seg.nrrd")
    mask = sitk.GetArrayFromImage(labels) == 1
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) >= 0.85
    # a seed in the air in front of the abdomen: one sentence, exit 2, nothing half-written
    air = image.TransformIndexToPhysicalPoint([128, 250, 20])
    code, out, err = run(capsys, "--study", str(tmp_path / "study"), "-o", str(tmp_path / "bad"),
                         "--seed", *(str(v) for v in air))
    assert code == 2 and "outside the body" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()
