"""The varied phantom (``vary=True``): what the seed draws stays inside the ranges data, lands inside the
liver, shows in the images as drawn, and comes with a clinical context that fits the lesions.

References: the ranges file (phantom_lesion_ranges.json, with its sources), the catalogue templates (what a
lesion type *is*), the liver/vessel labels of the truth grid and the mono-exponential DWI physics.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.context import has_agent_class, read_clinical_context, validate_clinical_context
from LiverMetsReviewLib.phantom import generate_phantom
from LiverMetsReviewLib.phantom.lesions import catalogue
from LiverMetsReviewLib.phantom.scenarios import scenario_names
from LiverMetsReviewLib.phantom.tissues import organ_table
from LiverMetsReviewLib.phantom.vary import lesion_ranges

# One small study per scenario, two seeds each; noise-free so image values can be compared with parameters.
CASES = [(seed, sc) for sc in scenario_names() for seed in (11, 12)]


@pytest.fixture(scope="module")
def studies():
    return {(seed, sc): generate_phantom(seed, sc, size="small", snr=math.inf, vary=True) for seed, sc in CASES}


def _organ_label(name: str) -> int:
    return next(i + 1 for i, o in enumerate(organ_table()) if o["id"] == name)


def _in(value: float, spec: dict, slack: float = 1e-3) -> bool:
    lo, hi = spec["range"]
    return lo - slack * max(1.0, abs(lo)) <= value <= hi + slack * max(1.0, abs(hi))


def test_same_seed_identical_other_seed_draws_differently(studies):
    a = studies[(11, "normal")]
    again = generate_phantom(11, "normal", size="small", snr=math.inf, vary=True)
    assert json.dumps(a.truth) == json.dumps(again.truth)
    assert np.array_equal(sitk.GetArrayViewFromImage(a.labelmap), sitk.GetArrayViewFromImage(again.labelmap))
    for s, t in zip(a.series, again.series, strict=True):
        assert np.array_equal(sitk.GetArrayViewFromImage(s.image), sitk.GetArrayViewFromImage(t.image)), s.role
    b = studies[(12, "normal")]

    def signature(st):
        return [(les["type"], round(les["diameter_mm"], 2), les["centre_mm"]) for les in st.truth["lesions"]]

    assert signature(a) != signature(b)
    assert a.truth["vary"]["liver"] != b.truth["vary"]["liver"]
    # and not the fixed catalogue
    fixed = {tuple(les["centre_mm"]) for les in catalogue()["lesions"]}
    assert not fixed & {tuple(les["centre_mm"]) for les in a.truth["lesions"]}


def test_drawn_values_inside_the_ranges(studies):
    rng = lesion_ranges()
    st, types = rng["study"], rng["lesion_types"]
    for (_seed, sc), study in studies.items():
        v = study.truth["vary"]
        assert v["enabled"] and v["ranges"]["file"] == "phantom_lesion_ranges.json"
        assert str(v["field_strength_t"]) in st["field_strength_t"]["choices"]
        assert v["vendor"] in st["vendor"]["choices"] and _in(v["snr_scale"], st["snr_scale"])
        for key in ("pdff_percent", "hepatocyte_uptake_factor", "bilirubin_umol_l"):
            assert _in(v["liver"][key], st["liver"][key][sc]), (sc, key)
        assert _in(v["liver"]["adc_1e6_mm2_s"], st["liver"]["adc_1e6_mm2_s"])
        assert study.truth["liver_background"]["params"]["adc_1e6_mm2_s"] == pytest.approx(v["liver"]["adc_1e6_mm2_s"])
        n = len(study.truth["lesions"]) + len(v["dropped"])
        assert st["lesion_count"]["range"][0] <= n <= st["lesion_count"]["range"][1]
        for les in study.truth["lesions"]:
            spec, drawn = types[les["type"]], les["drawn"]
            assert _in(drawn["diameter_mm"], spec["diameter_mm"]), les["id"]
            assert drawn["shape"] in spec["shapes"]
            for comp, values in drawn["compartments"].items():
                for key, value in values.items():
                    if key in spec["compartments"][comp] and not values.get("thickness_limited_by_size"):
                        assert _in(value, spec["compartments"][comp][key]), (les["id"], comp, key, value)


def test_truth_records_the_drawn_parameters(studies):
    for study in studies.values():
        liver = study.truth["liver_background"]["params"]
        for les in study.truth["lesions"]:
            comps = {c["name"]: c for c in les["compartments"]}
            assert les["expected_impression"] == next(
                t["expected_impression"] for t in catalogue()["lesions"] if t["id"] == les["template"])
            for name, values in les["drawn"]["compartments"].items():
                p = comps[name]["params"]  # the middle patch keeps the compartment's name and the drawn value
                if "adc_1e6_mm2_s" in values:
                    assert p["adc_1e6_mm2_s"] == pytest.approx(values["adc_1e6_mm2_s"], rel=1e-4)
                if "t2_to_liver" in values:
                    assert p["t2_ms"] / liver["t2_ms"] == pytest.approx(values["t2_to_liver"], rel=1e-3)
                if "t1_to_liver" in values:
                    assert p["t1_ms"] / liver["t1_ms"] == pytest.approx(values["t1_to_liver"], rel=1e-3)
            patches = les["drawn"].get("patches")
            if patches:
                names = [c["name"] for c in les["compartments"] if c.get("patch_of") == patches["split"]]
                assert len(names) == 3 and patches["split"] in names


def test_lesions_inside_the_liver_clear_of_vessels_and_each_other(studies):
    liver, vessels = _organ_label("liver"), [_organ_label("portal_vein"), _organ_label("hepatic_veins")]
    clearance = lesion_ranges()["study"]["clearance_mm"]
    for study in studies.values():
        lab = sitk.GetArrayFromImage(study.labelmap)
        sp = study.labelmap.GetSpacing()[0]
        grow = max(1, int(clearance["parenchyma"] // sp))
        assert study.truth["lesions"], "every study holds lesions"
        for les in study.truth["lesions"]:
            m = lab == les["label"]
            assert m.sum() > 0, les["id"]
            ring = ndi.binary_dilation(m, iterations=grow) & ~m
            ok = [liver] + (vessels if les["type"] == "focal_hypersteatosis" else [])
            assert np.isin(lab[ring], ok).all(), (les["id"], np.unique(lab[ring]))
            assert study.couinaud.GetPixel(*study.labelmap.TransformPhysicalPointToIndex(les["centre_mm"])) \
                == les["couinaud_segment"], les["id"]


def _longest_axial_diameter_mm(mask: np.ndarray, spacing: float) -> float:
    best = 0.0
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        pts = np.argwhere(mask[k] & ~ndi.binary_erosion(mask[k])).astype(float) * spacing
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max() if len(pts) > 1 else 0.0
        best = max(best, d + spacing)
    return best


def test_outlines_vary_and_their_diameter_is_what_the_truth_says(studies):
    shapes = set()
    for study in studies.values():
        lab = sitk.GetArrayFromImage(study.labelmap)
        sp = study.labelmap.GetSpacing()[0]
        for les in study.truth["lesions"]:
            shapes.add(les["shape"])
            if les["diameter_mm"] >= 12:
                measured = _longest_axial_diameter_mm(lab == les["label"], sp)
                assert abs(measured - les["diameter_mm"]) <= 1.5 * sp, (les["id"], measured, les["diameter_mm"])
    assert {"lobulated", "irregular"} <= shapes


def _pure_on(study, role: str, label: int) -> np.ndarray:
    """Voxels of a series whose whole acquisition box (pixel x slice thickness) overlaps only truth-grid voxels
    of one compartment: the image there is that compartment's signal, without partial volume."""
    img = study.series_by_role(role).image
    assert np.allclose(img.GetDirection(), np.eye(3).ravel()), "the phantom's series grids are axial"
    facts = study.truth["acquisition"]["series"][role]
    half = np.array([img.GetSpacing()[0], img.GetSpacing()[1], facts["slice_thickness_mm"]]) / 2.0
    truth = sitk.GetArrayFromImage(study.compartment_labels())
    t_origin, sp = np.array(study.labelmap.GetOrigin()), study.labelmap.GetSpacing()[0]
    seen = sitk.GetArrayFromImage(study.compartments_on(role)) == label
    pure = np.zeros_like(seen)
    for k, j, i in np.argwhere(seen):
        c = np.array(img.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))) - np.array(study.shift_mm(role))
        lo = np.ceil((c - half - sp / 2 - t_origin) / sp + 1e-6).astype(int)  # fine voxels overlapping the box
        hi = np.floor((c + half + sp / 2 - t_origin) / sp - 1e-6).astype(int)
        block = truth[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]
        pure[k, j, i] = block.size > 0 and bool(np.all(block == label))
    return pure


def test_image_adc_of_a_compartment_is_its_drawn_adc(studies):
    """Noise-free DWI: exact in the physics table for every compartment, and on the image in pure voxels."""
    checked = 0
    for study in studies.values():
        dwi = study.series_by_role("dwi")
        b = dwi.b_values
        lo, hi = int(np.argmin(b)), int(np.argmax(b))
        facts = study.truth["acquisition"]["series"]["dwi"]["noise_free_signal_by_label"]
        s_lo, s_hi = (sitk.GetArrayFromImage(dwi.stacks[i]) for i in (lo, hi))
        for les in study.truth["lesions"]:
            for c in les["compartments"]:
                adc = c["params"]["adc_1e6_mm2_s"]
                nf = facts[str(c["compartment_label"])]
                assert math.log(nf[lo] / nf[hi]) / (b[hi] - b[lo]) * 1e6 == pytest.approx(adc, rel=1e-3)
                if c["volume_ml"] < 2.0:
                    continue  # no voxel of the coarse small-size DWI grid (6 x 6 x 12 mm) lies wholly inside
                pure = _pure_on(study, "dwi", c["compartment_label"])
                if pure.any():
                    img = np.median(np.log(s_lo[pure] / s_hi[pure])) / (b[hi] - b[lo]) * 1e6
                    assert img == pytest.approx(adc, rel=0.01), (les["id"], c["name"])
                    checked += 1
        # the drawn liver ADC, read on the image in the parenchyma
        liver = next(c for c in study.model.compartments if c.name == "liver")
        pure = _pure_on(study, "dwi", liver.label)
        img = np.median(np.log(s_lo[pure] / s_hi[pure])) / (b[hi] - b[lo]) * 1e6
        assert img == pytest.approx(study.truth["vary"]["liver"]["adc_1e6_mm2_s"], rel=0.01)
    assert checked >= 1, checked


def test_context_fits_the_lesions(studies, tmp_path):
    ablation = set(lesion_ranges()["lesion_types"]) & {"post_ablation_zone", "post_ablation_zone_recurrence"}
    for (seed, sc), study in studies.items():
        ctx = validate_clinical_context(study.truth["clinical_context"], f"seed {seed}")
        study_date = dt.date.fromisoformat(ctx["study_date"])
        loco = {t["id"]: t for t in ctx["locoregional_therapies"]}
        for les in study.truth["lesions"]:
            if les["type"] in ablation:
                th = loco[les["treated_by"]]
                assert th["type"] in ("RFA", "MWA") and th["lesion"] == les["id"]
                months = (study_date - dt.date.fromisoformat(th["date"])).days / 30.44
                assert months == pytest.approx(les["drawn"]["months_since_ablation"], abs=0.1)
            if les["type"] == "fnh_like_nodule":
                assert has_agent_class(ctx, "platinum") or ctx["stem_cell_transplant_date"]
            if les["expected_impression"] == "typical metastasis" and les.get("typical_primary"):
                assert les["typical_primary"] == ctx["primary_tumour"], les["id"]
            if les["type"] == "melanoma_metastasis":
                assert ctx["primary_tumour"] == "melanoma"
        assert ctx["known_steatosis"] == (sc == "steatosis")
        if sc == "pseudocirrhosis":
            assert ctx["primary_tumour"] == "breast" and ctx["systemic_therapies"]
    # written beside the truth by write_phantom, through the CLI
    out = tmp_path / "varied"
    assert main(["phantom", "--vary", "--small", "--seed", "4", "--scenario", "steatosis", "-o", str(out)]) == 0
    truth = json.loads((out / "ground_truth.json").read_text())
    assert read_clinical_context(out / "clinical_context.json") == truth["clinical_context"]
    assert truth["vary"]["enabled"] and truth["vary"]["seed"] == 4


def test_without_vary_the_fixed_catalogue_stays():
    st = generate_phantom(11, "normal", size="small")
    assert st.truth["vary"] == {"enabled": False} and st.truth["field_strength_t"] == 1.5
    ids = {les["id"] for les in catalogue()["lesions"] if not les.get("requires_steatosis")}
    assert {les["id"] for les in st.truth["lesions"]} == ids


def test_every_range_names_its_source():
    doc = lesion_ranges()
    keys = set(doc["sources"])
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            if "range" in node or "choices" in node or "value" in node:
                cited = {s.strip() for s in str(node.get("source", "")).split(",")}
                assert cited and cited <= keys, (path, node.get("source"))
                found.append(path)
            for k, v in node.items():
                walk(v, f"{path}.{k}")

    walk(doc, "")
    assert len(found) > 100
