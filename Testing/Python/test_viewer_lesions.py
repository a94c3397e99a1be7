"""A viewer's lesion review (segments as the reader left them) written as the lesions folder of ``livermets measure``.

Truth: the phantom's lesions (truth masks on the reference grid, one edited by a drawn cut), their voxel counts, and
``livermets measure --drawn`` run on the same masks (the command line's numbers); then the report built on the
folders holds those numbers and a key-image strip per lesion."""

from __future__ import annotations

import json
import os
import random
import re

import numpy as np
import pytest
import SimpleITK as sitk
from lesion_fixtures import LIVER_LABEL, phantom, truth_mask

from LiverMetsReviewLib.checklist.values import lesion_values
from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.demo import _reader_kind
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.io.images import write_image
from LiverMetsReviewLib.io.study_folder import write_study_folder
from LiverMetsReviewLib.lesions.channels import lesion_channels
from LiverMetsReviewLib.lesions.review import OutlinedLesion, terminology_for
from LiverMetsReviewLib.lesions.seg_file import read_layered_segmentation, write_layered_segmentation
from LiverMetsReviewLib.lesions.viewer_lesions import checklist_values, write_viewer_lesions
from LiverMetsReviewLib.report import ReportInputs, write_report

DRAW = 9 if os.environ.get("CI", "").lower() in ("1", "true", "yes") else random.SystemRandom().randrange(10**6)


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    rng = random.Random(DRAW)
    root = tmp_path_factory.mktemp("viewer_lesions")
    study = phantom(rng.choice([3, 5, 8]), "normal", "small")
    write_study_folder(study.series, root / "study")
    ref = lesion_channels(study.series).reference
    big = [les for les in study.truth["lesions"] if les["diameter_mm"] >= 12]
    outlines = []
    for les in rng.sample(big, 2):
        label = next(s["label"] for s in study.segments if s["id"] == les["id"])
        mask = truth_mask(study, label, ref)
        outlines.append(OutlinedLesion(les["id"], _reader_kind(les["type"]), mask, tuple(les["centre_mm"])))
    edited = outlines[0].mask  # the reader's edit: the top slice of the first lesion cut away
    edited[np.nonzero(edited.any(axis=(1, 2)))[0].max()] = False
    liver = sitk.GetImageFromArray(truth_mask(study, LIVER_LABEL, ref).astype(np.uint8))
    liver.CopyInformation(ref)
    written = write_viewer_lesions(study.series, outlines, root / "mine", liver_mask=liver, study_dir=root / "study")
    return root, ref, outlines, liver, written


def _rows(folder) -> dict:
    doc = json.loads((folder / "measurements.json").read_text())
    return {les["id"]: {(r["image"], r["region"], r["statistic"], r["quantity"]): r["value"]
                        for r in les["measurements"]} for les in doc["lesions"]}, doc


def test_segments_are_the_outlines_with_their_types(viewer):
    root, ref, outlines, _, _ = viewer
    grid, segments = read_layered_segmentation(root / "mine" / "lesions.seg.nrrd")
    assert grid.GetSize() == ref.GetSize() and np.allclose(grid.GetOrigin(), ref.GetOrigin())
    by_id = {s["id"]: s for s in segments}
    assert "liver" in by_id, f"draw {DRAW}"
    for les in outlines:
        np.testing.assert_array_equal(by_id[les.id]["mask"], les.mask, err_msg=f"draw {DRAW} {les.id}")
        code = terminology_for(les.kind)[0]["type"][1]
        assert f"^{code}^" in by_id[les.id]["tags"]["TerminologyEntry"], (DRAW, les.id)


def test_volumes_are_the_voxel_counts(viewer):
    root, ref, outlines, _, _ = viewer
    rows, doc = _rows(root / "mine")
    voxel_ml = float(np.prod(ref.GetSpacing())) / 1000.0
    for les in outlines:
        volume = next(v for k, v in rows[les.id].items() if k[3] == "volume")
        assert volume == pytest.approx(les.mask.sum() * voxel_ml, rel=1e-9), (DRAW, les.id)
        record = next(r for r in doc["lesions"] if r["id"] == les.id)
        assert record["seed_lps"] == pytest.approx(list(les.seed_lps)) and record["type"] == les.kind


def test_numbers_are_those_of_livermets_measure_on_the_same_masks(viewer):
    root, ref, outlines, liver, _ = viewer
    write_layered_segmentation(ref, [{"id": les.id, "name": les.id, "mask": les.mask, "color": [1, 0, 0],
                                      "terminology": terminology_for(les.kind)[0], "tags": {}} for les in outlines],
                               root / "drawn.seg.nrrd")
    write_image(liver, root / "liver.nrrd")
    assert main(["measure", "--study", str(root / "study"), "--drawn", str(root / "drawn.seg.nrrd"), "--liver-mask",
                 str(root / "liver.nrrd"), "--no-maps", "-o", str(root / "cli")]) == 0
    mine, _ = _rows(root / "mine")
    theirs, _ = _rows(root / "cli")
    for les in outlines:
        assert mine[les.id].keys() == theirs[les.id].keys(), (DRAW, les.id)
        for key, value in theirs[les.id].items():
            if value is None:  # not measurable (e.g. a rim too thin for a series' voxels): the same in both
                assert mine[les.id][key] is None, (DRAW, les.id, key)
                continue
            assert mine[les.id][key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), (DRAW, les.id, key)
    figures = [json.loads((root / f / "liver_figures.json").read_text())["figures"] for f in ("mine", "cli")]
    assert figures[0] == figures[1], f"draw {DRAW}"


def test_checklist_values_are_the_written_measurements(viewer):
    root, _, outlines, _, written = viewer
    rows = json.loads((root / "mine" / "measurements.json").read_text())
    values = checklist_values(written.review)
    for les in rows["lesions"]:
        want, why = lesion_values(les["measurements"])
        assert values[les["id"]]["values"] == want and values[les["id"]]["why"] == why, (DRAW, les["id"])
        assert values[les["id"]]["couinaud_segment"] == les["couinaud_segment"]


def test_report_on_the_folders_holds_the_lesions_and_their_key_images(viewer):
    root, _, outlines, _, _ = viewer
    assert main(["review", "--study", str(root / "study"), "--lesions", str(root / "mine"), "-o",
                 str(root / "review")]) == 0
    write_report(ReportInputs(root / "review", root / "mine", root / "study"), root / "report", ("html",))
    html = (root / "report" / "report.html").read_text(encoding="utf-8")
    rows, _ = _rows(root / "mine")
    for les in outlines:
        row = re.search(rf'<tr data-lesion="{les.id}">(.*?)</tr>', html, re.S).group(1)
        shown = float(re.search(r'data-quantity="volume" data-value="([^"]+)"', row).group(1))
        assert shown == next(v for k, v in rows[les.id].items() if k[3] == "volume"), (DRAW, les.id)
        section = re.search(rf'<section data-lesion="{les.id}">(.*?)</section>', html, re.S).group(1)
        assert section.count("<img data-series=") == 6, (DRAW, les.id)


def test_an_empty_or_misplaced_outline_is_one_sentence(viewer, tmp_path):
    _, ref, outlines, _, _ = viewer
    study = phantom(3, "normal", "small")
    for bad in (np.zeros_like(outlines[0].mask), outlines[0].mask[1:]):
        with pytest.raises(LiverMetsError) as err:
            write_viewer_lesions(study.series, [OutlinedLesion("L9", "metastasis", bad)], tmp_path / "x")
        assert "L9" in str(err.value) and "\n" not in str(err.value)
