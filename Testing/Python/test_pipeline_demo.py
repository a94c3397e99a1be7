"""Roles → maps → per-lesion table on the phantom, checked against the phantom's ground truth."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from LiverMetsReviewLib.demo import lesion_table, run_demo
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.phantom import generate_phantom
from LiverMetsReviewLib.pipeline import compute_study_maps
from LiverMetsReviewLib.region_stats import labels_on_grid, region_medians


@pytest.fixture(scope="module")
def study():
    return generate_phantom(3, "steatosis", size="small", liver_fat_percent=20.0)


@pytest.fixture(scope="module")
def maps(study):
    return compute_study_maps(study.series)


@pytest.fixture(scope="module")
def table(study, maps):
    return {(r["lesion"], r["compartment"]): r for r in lesion_table(study, maps)}


def test_every_map_family_is_computed(maps):
    assert maps.skipped == {}
    for name in ("adc", "adc_s0", "dwi_computed_b1500", "ff_chemical_shift", "sii", "ff_dixon", "pdff", "r2star",
                 "re_arterial", "re_portal_venous", "re_transitional", "re_hepatobiliary", "sub_hepatobiliary"):
        assert name in maps.images, name
        assert maps.metadata[name].get("units"), f"{name} carries no units"
    assert maps.metadata["adc"]["units"] == "1e-6 mm2/s"


def test_masked_voxels_are_known_and_hold_zero(maps):
    """Every measured map says which voxels it masked; masked voxels carry 0, measured ones are finite."""
    import numpy as np
    import SimpleITK as sitk

    for name in ("adc", "ff_chemical_shift", "ff_dixon", "pdff", "re_arterial", "re_hepatobiliary"):
        valid = sitk.GetArrayViewFromImage(maps.valid[name]).astype(bool)
        values = sitk.GetArrayViewFromImage(maps.images[name])
        assert valid.shape == values.shape, name
        assert 0 < valid.mean() < 1, name  # some background is masked, some tissue measured
        assert np.isfinite(values).all(), name
        if name.startswith(("adc", "re_", "pdff")):
            assert not values[~valid].any(), name


def test_liver_background_matches_truth(study, table):
    liver = table[("liver", "parenchyma")]
    truth = study.truth["liver_background"]["params"]
    assert liver["adc"] == pytest.approx(truth["adc_1e6_mm2_s"], rel=0.06)
    # multi-echo PDFF models the fat spectrum and R2*: close to the truth
    assert liver["pdff"] == pytest.approx(truth["pdff_percent"], abs=2.5)
    # two-point chemical shift: the truth predicts its noise-free value (multi-peak spectrum, T2*, T1 weighting);
    # the median over thousands of liver voxels has a standard error far below 1 point. Dixon against its
    # T1-weighted expectation is checked per compartment in test_maps_phantom.py.
    expected_cs = study.truth["liver_background"]["expected_noise_free"]["two_point_ff_percent"]
    assert liver["ff_chemical_shift"] == pytest.approx(expected_cs, abs=1.0)


def test_lesion_adc_within_tolerance_where_large_enough():
    """Standard-size study: compartments with interior voxels on the DWI grid recover their ADC."""
    study = generate_phantom(5, "steatosis")
    adc = compute_study_maps(study.series, which=["adc"]).images["adc"]
    labels = labels_on_grid(study.compartment_labels(), adc, study.shift_mm("dwi"))
    comps = [(lesion["id"], c) for lesion in study.truth["lesions"] for c in lesion["compartments"]]
    stats = region_medians(adc, labels, [c["compartment_label"] for _, c in comps])
    checked = 0
    for lesion_id, comp in comps:
        st = stats[comp["compartment_label"]]
        if not st.eroded or st.voxels < 8:
            continue  # partial volume dominates compartments without interior voxels on the coarse DWI grid
        assert st.median == pytest.approx(comp["params"]["adc_1e6_mm2_s"], rel=0.08), (lesion_id, comp["name"])
        checked += 1
    assert checked >= 6


def test_hbp_hypointense_lesions_are_darker_than_liver(study):
    """On the HBP series itself (signal, not enhancement): lesions without hepatocytes read below the liver."""
    hbp = study.series_by_role("t1_hepatobiliary").image
    labels = labels_on_grid(study.labelmap, hbp, study.shift_mm("t1_hepatobiliary"))
    liver = next(s["label"] for s in study.segments if s["id"] == "liver")
    lesions = [x for x in study.truth["lesions"] if x["diameter_mm"] >= 12]
    stats = region_medians(hbp, labels, [liver, *[x["label"] for x in lesions]])
    checked = 0
    for lesion in lesions:
        ratio = stats[lesion["label"]].median / stats[liver].median
        if "hbp_hypointense" in lesion["expected_hallmarks"]:
            assert ratio < 0.95, (lesion["id"], ratio)  # darker than liver beyond noise
            checked += 1
        elif lesion["type"] == "fnh_like_nodule":
            assert ratio > 0.9, (lesion["id"], ratio)
    assert checked >= 3


def test_missing_roles_are_reported_not_dropped(study):
    only_dwi = [s for s in study.series if s.role == "dwi"]
    maps = compute_study_maps(only_dwi)
    assert "adc" in maps.images
    assert maps.skipped["fat_chemical_shift"] == "no series with role t1_in_phase, t1_opposed_phase"
    assert "t1_pre" in maps.skipped["enhancement_hepatobiliary"]


def test_demo_writes_its_outputs(tmp_path):
    summary = run_demo(tmp_path, seed=1, scenario="normal", size="small", dicom=True, figures=False,
                       log=lambda *_: None)
    assert (tmp_path / "phantom" / "roles.json").exists()
    assert (tmp_path / "phantom" / "ground_truth.seg.nrrd").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["lesions"] == summary["lesions"]
    rows = list(csv.DictReader((tmp_path / "lesion_table.csv").open()))
    assert {r["lesion"] for r in rows} >= {"liver", *summary["lesions"]}
    assert (tmp_path / "maps" / "adc.nrrd").exists()
    review = json.loads((tmp_path / "review" / "review.json").read_text())
    truth = {les["id"]: les["expected_impression"] for les in
             json.loads((tmp_path / "phantom" / "ground_truth.json").read_text())["lesions"]}
    compared = {r["id"]: r["expected"] for r in review["truth_comparison"]}
    assert set(compared) | set(review["not_measured"]) == set(truth)
    assert all(truth[k] == v for k, v in compared.items())  # the truth beside each impression is the phantom's
    assert summary["review"]["agree"] == sum(r["got"] == r["expected"] for r in review["truth_comparison"])
    assert "ground truth" in (tmp_path / "review" / "review.md").read_text()
    # the review names the study its lesions were measured on, so 'livermets report --review' alone finds it
    assert Path(review["inputs"]["study"]) == (tmp_path / "lesions" / "study_unshifted").resolve()
    assert Path(review["inputs"]["lesions"]) == (tmp_path / "lesions").resolve()
    # the report stage: HTML, PDF (PySide6 is in the test extra) and text, one section per reviewed lesion
    html = (tmp_path / "report" / "report.html").read_text()
    assert {les["id"] for les in review["lesions"]} == set(re.findall(r'<section data-lesion="([^"]+)">', html))
    assert (tmp_path / "report" / "report.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "report" / "report.txt").read_text().startswith("IMPRESSION")
    assert sorted(summary["report"]["files"]) == sorted([*(str(tmp_path / "report" / f"report.{x}")
                                                           for x in ("html", "pdf", "txt")),
                                                         str(tmp_path / "report" / "seg.dcm"),
                                                         str(tmp_path / "report" / "sr.dcm")])
    # DICOM SEG + SR reference the DICOM copy of the study the lesions were measured on (the unshifted phantom)
    import pydicom

    sources = json.loads((tmp_path / "lesions" / "study_unshifted" / "dicom_sources.json").read_text())
    seg = pydicom.dcmread(tmp_path / "report" / "seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID in {s["series_uid"] for s in sources["series"]}
    assert {s.SegmentLabel for s in seg.SegmentSequence} >= {les["id"] for les in review["lesions"]}


def test_demo_lesion_stage_outlines_every_lesion(tmp_path):
    """The lesion stage (seeds at the truth's lesions, as a reader's clicks) writes the Slicer files and the
    liver figures; the outlines match the truth. On the small phantom (3 mm pixels, 6 mm slices: a 20 mm lesion
    is 7 pixels across) the bar is the issue's for small lesions (0.7); the full bar is checked at standard size
    (test_lesions_segment, benchmarks/validate_lesions.py)."""
    from LiverMetsReviewLib.demo import _lesions_stage
    from LiverMetsReviewLib.lesions.seg_file import read_layered_segmentation
    from LiverMetsReviewLib.phantom import generate_phantom
    from LiverMetsReviewLib.pipeline import compute_study_maps

    study = generate_phantom(2, "normal", size="small")
    maps = compute_study_maps(study.series, which=("enhancement",))
    result = _lesions_stage(tmp_path, study, maps, figures=True, log=lambda *_: None)
    out = tmp_path / "lesions"
    for name in ("lesions.seg.nrrd", "lesions.mrk.json", "diameters.mrk.json", "measurements.tsv",
                 "measurements.json", "liver.seg.nrrd", "liver_figures.json", "outlines.png"):
        assert (out / name).stat().st_size > 0, name
    _, segments = read_layered_segmentation(out / "lesions.seg.nrrd")
    assert {s["id"] for s in segments} >= {"liver", *(r["id"] for r in result["lesions"])}
    truth = {les["id"]: les for les in study.truth["lesions"]}
    assert {r["id"] for r in result["lesions"]} | set(result["refused"]) == set(truth)
    for row in result["lesions"]:
        if truth[row["id"]]["diameter_mm"] >= 10 and row["type"] != "focal_hypersteatosis":
            assert row["dice"] >= 0.7, row
        assert row["couinaud"] == row["truth_couinaud"], row


def test_dixon_dynamic_pre_contrast_water_serves_as_dixon_water(study):
    """When the pre-contrast image of a Dixon dynamic is the only water image, it still yields the Dixon FF."""
    from LiverMetsReviewLib.series import Series

    water = study.series_by_role("dixon_water")
    renamed = [s for s in study.series if s.role not in ("dixon_water", "t1_pre")]
    renamed.append(Series("t1_pre", water.stacks, water.stack_meta, water.meta))
    maps = compute_study_maps(renamed, which=["fat_dixon"])
    assert "ff_dixon" in maps.images
    reference = compute_study_maps(study.series, which=["fat_dixon"]).images["ff_dixon"]
    import SimpleITK as sitk

    assert (sitk.GetArrayViewFromImage(maps.images["ff_dixon"]) == sitk.GetArrayViewFromImage(reference)).all()
    # a non-Dixon pre-contrast series is never taken for water
    no_water = [s for s in study.series if s.role != "dixon_water"]
    assert "fat_dixon" in compute_study_maps(no_water, which=["fat_dixon"]).skipped


def test_dynamic_phases_registered_to_pre_recover_the_breath_hold_shifts():
    """With shifted breath-holds, registration finds each phase's displacement relative to pre-contrast."""
    from LiverMetsReviewLib.demo import registration_table

    shifted = generate_phantom(6, "normal", size="small", breath_hold_shift_mm=8.0)
    maps = compute_study_maps(shifted.series, which=["enhancement"], register_dynamic=True)
    rows = registration_table(shifted, maps)
    assert [r["phase"] for r in rows] == ["t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"]
    spacing = shifted.series_by_role("t1_pre").image.GetSpacing()
    half_voxel = 0.5 * min(spacing)
    assert any(max(abs(v) for v in r["truth_mm"]) > 2 * half_voxel for r in rows), "the phases must really move"
    for r in rows:
        assert r["error_mm"] < half_voxel, r
        assert max(abs(v) for v in r["rotation_deg"]) < 1.0, r


def test_write_phantom_both_formats_in_one_folder(study, tmp_path):
    from LiverMetsReviewLib.io.study_folder import read_study_folder
    from LiverMetsReviewLib.phantom import write_phantom

    manifest = write_phantom(study, tmp_path, ("nrrd", "dicom"))
    assert manifest["format"] == "nrrd+dicom"
    assert [s.role for s in read_study_folder(tmp_path)] == [s.role for s in study.series]
    assert len(manifest["files"]["dicom"]) == len(study.series)
    assert (tmp_path / "ground_truth.json").exists() and (tmp_path / "ground_truth.seg.nrrd").exists()
    with pytest.raises(LiverMetsError, match="'png' is unknown"):
        write_phantom(study, tmp_path, ("nrrd", "png"))
