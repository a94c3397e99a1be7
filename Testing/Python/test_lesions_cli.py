"""``livermets measure`` end to end on a phantom study folder, touching lesions, and bad input: one sentence,
exit status 2, nothing written."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
import SimpleITK as sitk
from lesion_fixtures import dice, liver_image, phantom

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.io.images import write_image
from LiverMetsReviewLib.lesions.markups import Seed, read_lines, read_seeds, write_seeds
from LiverMetsReviewLib.lesions.review import review_lesions
from LiverMetsReviewLib.lesions.seg_file import read_layered_segmentation
from LiverMetsReviewLib.lesions.tables import read_measurements_tsv
from LiverMetsReviewLib.phantom import write_phantom
from LiverMetsReviewLib.series import Series

PICK = ("crc_met", "cyst", "fnh_like")


@cache
def _study_folder(tmp_root: str):
    from pathlib import Path

    root = Path(tmp_root)
    study = phantom(5, "normal", "small")
    write_phantom(study, root / "study")
    write_image(liver_image(study), root / "liver.nrrd")
    picked = [les for les in study.truth["lesions"] if les["id"] in PICK]
    write_seeds(root / "seeds.mrk.json", [Seed(les["id"], tuple(les["centre_mm"]), "type=metastasis")
                                          for les in picked])
    return root, picked


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _study_folder(str(tmp_path_factory.mktemp("measure")))


def test_measure_writes_every_file(folder, capsys):
    root, picked = folder
    out = root / "out"
    code = main(["measure", "--study", str(root / "study"), "--seeds", str(root / "seeds.mrk.json"), "-o", str(out),
                 "--liver-mask", str(root / "liver.nrrd"), "--couinaud", str(root / "study" / "couinaud.seg.nrrd")])
    assert code == 0, capsys.readouterr().err
    ref, segs = read_layered_segmentation(out / "lesions.seg.nrrd")
    assert [s["id"] for s in segs] == ["liver"] + [les["id"] for les in picked]
    assert all(s["mask"].any() for s in segs)
    assert [s.label for s in read_seeds(out / "lesions.mrk.json")] == [les["id"] for les in picked]
    lines = read_lines(out / "diameters.mrk.json")
    assert len(lines) == 2 * len(picked)
    rows = read_measurements_tsv(out / "measurements.tsv")
    doc = json.loads((out / "measurements.json").read_text())
    assert doc["coordinate_system"] == "LPS" and len(doc["lesions"]) == len(picked)
    assert len(rows) == sum(len(les["measurements"]) for les in doc["lesions"])
    for les, truth in zip(doc["lesions"], picked, strict=True):
        assert les["couinaud_segment"] == truth["couinaud_segment"]
        long_axis = next(r for r in rows if r["lesion_id"] == les["id"] and r["quantity"] == "long_axis")
        assert long_axis["unit_ucum"] == "mm" and long_axis["quantity_code"] == "SCT^103339001^Long axis"
        # the small phantom has 3 mm pixels: the diameter within one of them
        assert long_axis["value"] == pytest.approx(truth["diameter_mm"], abs=3.0)
    assert all(r["value"] is not None or r["why"] for r in rows)


def test_measure_json_output(folder, capsys):
    root, picked = folder
    code = main(["measure", "--study", str(root / "study"), "--seeds", str(root / "seeds.mrk.json"), "-o",
                 str(root / "out_json"), "--json", "--no-maps", "--series", "t1_hepatobiliary", "t1_arterial", "t2"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert [les["id"] for les in doc["lesions"]] == [les["id"] for les in picked]
    assert doc["lesions"][0]["segmentation"]["channels"] == ["hbp", "arterial", "t2"]


@pytest.mark.parametrize("how", ["automatic", "liver_seed"])
def test_measure_segments_the_liver_and_its_couinaud_segments(folder, capsys, how):
    """Without a mask the liver is segmented (automatically or from a click in it) on a named series, Couinaud
    segments come from landmarks found on a contrast phase (never the truth), and the liver figures are written."""
    root, picked = folder
    study = phantom(5, "normal", "small")
    out = root / f"out_liver_{how}"
    args = ["measure", "--study", str(root / "study"), "--seeds", str(root / "seeds.mrk.json"), "-o", str(out),
            "--no-maps"]
    if how == "liver_seed":  # a click in the liver: the centroid of the truth liver is deep inside it
        liver = sitk.GetArrayFromImage(liver_image(study))
        centre = np.argwhere(liver > 0).mean(axis=0)[::-1]
        args += ["--liver-seed", *[str(v) for v in study.labelmap.TransformContinuousIndexToPhysicalPoint(centre)]]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert ("from the liver seed" if how == "liver_seed" else "automatically") in said and " on t1_" in said
    ref, segs = read_layered_segmentation(out / "lesions.seg.nrrd")
    ours = next(s["mask"] for s in segs if s["id"] == "liver")
    # the whole liver (parenchyma, vessels and lesions: the Couinaud truth) on the reference (HBP) grid
    truth = sitk.GetArrayFromImage(study.couinaud_on("t1_hepatobiliary", ref)) > 0
    assert dice(ours, truth) >= 0.95
    doc = json.loads((out / "measurements.json").read_text())
    for les, truth_lesion in zip(doc["lesions"], picked, strict=True):
        assert les["couinaud_segment"] == truth_lesion["couinaud_segment"], les["id"]
    figures = json.loads((out / "liver_figures.json").read_text())
    assert figures["format"] == "livermets-liver-figures" and figures["figures"]["liver_volume"]["value"] > 0
    assert figures["couinaud_landmarks_lps_mm"]  # found on a contrast phase


@pytest.mark.parametrize("problem,expect", [
    ("outside", "outside the image"),
    ("liver_seed", "outside the"),
    ("missing_series", "cannot be used"),
])
def test_measure_bad_input(folder, capsys, problem, expect):
    root, picked = folder
    seeds = root / f"seeds_{problem}.mrk.json"
    write_seeds(seeds, [Seed("far", (0.0, 0.0, 999.0))] if problem == "outside" else
                [Seed(picked[0]["id"], tuple(picked[0]["centre_mm"]))])
    out = root / f"out_{problem}"
    args = ["measure", "--study", str(root / "study"), "--seeds", str(seeds), "-o", str(out), "--no-maps"]
    if problem == "liver_seed":
        args += ["--liver-seed", "0", "0", "999"]
    if problem == "missing_series":
        args += ["--series", "t1_hepatobiliary", "t1_arterial_late"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and expect in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing written, nothing half-written


def test_touching_lesions_are_separated_between_the_seeds():
    """Two equal spheres touching: each gets its own voxels, split at the half-way point, and the review says so."""
    rng = np.random.default_rng(3)
    z, y, x = np.mgrid[:30, :80, :80]
    spacing = np.array([3.0, 1.5, 1.5])
    pos = np.stack([z, y, x], axis=-1) * spacing
    a_c, b_c = np.array([45.0, 60.0, 48.0]), np.array([45.0, 60.0, 72.0])  # (z, y, x) mm, 24 mm apart
    a = np.linalg.norm(pos - a_c, axis=-1) <= 12.5
    b = np.linalg.norm(pos - b_c, axis=-1) <= 12.5
    series = []
    for role, k in (("t1_hepatobiliary", 0.5), ("t2", 2.0)):
        arr = 1000.0 * np.where(a | b, k, 1.0) + rng.normal(0, 30, a.shape)
        img = sitk.GetImageFromArray(arr.astype(np.float32))
        img.SetSpacing(spacing[::-1].tolist())
        series.append(Series(role, [img]))
    ref = series[0].image
    seeds = [Seed(n, ref.TransformContinuousIndexToPhysicalPoint((c / spacing)[::-1].tolist()))
             for n, c in (("left", a_c), ("right", b_c))]
    rv = review_lesions(series, seeds)
    left, right = rv.lesions
    assert not (left.mask & right.mask).any()
    assert dice(left.mask, a) >= 0.85 and dice(right.mask, b) >= 0.85
    assert any("touches right" in n for n in left.notes)


def test_drawn_lesion_is_measured_like_a_segmented_one():
    """A reader-drawn labelmap (on another grid) gets the same measurements; its diameter is the drawn disc's."""
    study = phantom(5, "normal", "small")
    les = next(x for x in study.truth["lesions"] if x["id"] == "cyst")
    drawn = sitk.Cast(study.labelmap == les["label"], sitk.sitkUInt8)  # on the fine truth grid
    rv = review_lesions(study.series, [], drawn=[("cyst drawn", drawn)], liver_mask=liver_image(study))
    (it,) = rv.lesions
    assert it.segmentation.info["method"] == "drawn by the reader"
    assert it.measures.value("long_axis") == pytest.approx(les["diameter_mm"], abs=3.0)  # 3 mm pixels
    assert it.measures.value("signal", "t2", "lesion", "median") > it.measures.value("signal", "t2", "reference",
                                                                                      "median")


def test_measure_cli_re_measures_a_drawn_segmentation(folder, capsys):
    """The lesions.seg.nrrd a review wrote (or the reader edited) is measured again with --drawn."""
    root, picked = folder
    first = root / "out_first"
    assert main(["measure", "--study", str(root / "study"), "--seeds", str(root / "seeds.mrk.json"), "-o",
                 str(first), "--no-maps", "--liver-mask", str(root / "liver.nrrd")]) == 0
    again = root / "out_again"
    assert main(["measure", "--study", str(root / "study"), "--drawn", str(first / "lesions.seg.nrrd"), "-o",
                 str(again), "--no-maps", "--liver-mask", str(root / "liver.nrrd")]) == 0
    a = {(r["lesion_id"], r["quantity"]): r["value"] for r in read_measurements_tsv(first / "measurements.tsv")}
    b = {(r["lesion_id"], r["quantity"]): r["value"] for r in read_measurements_tsv(again / "measurements.tsv")}
    for les in picked:
        assert b[(les["id"], "volume")] == pytest.approx(a[(les["id"], "volume")])
    capsys.readouterr()
