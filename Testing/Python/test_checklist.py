"""The checklist: data validated on load, applicability by context, evidence and overrides, study items.

Values are drawn from the published ranges (lesion-parameter-ranges.md), never copied from our output.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from LiverMetsReviewLib.checklist import categories, load_checklist, review, validate_checklist
from LiverMetsReviewLib.checklist.report import review_markdown
from LiverMetsReviewLib.checklist.store import review_document
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.resources import load_json

BASE_CONTEXT = {"format": "livermets-clinical-context", "version": 1, "study_date": "2026-03-10",
                "primary_tumour": "colorectal", "systemic_therapies": [], "locoregional_therapies": [],
                "bilirubin_umol_l": 10.0, "known_steatosis": False, "prior_study_date": None}


def ctx(**kw):
    c = copy.deepcopy(BASE_CONTEXT)
    c.update(kw)
    return c


def solid_metastasis(rng: np.random.Generator, lid: str = "m1") -> dict:
    """A hypovascular metastasis drawn from the published ranges (ADC 800-1100 vs liver 1200-1500; HBP 0.3-0.7)."""
    liver_adc = rng.uniform(1200, 1500)
    adc = rng.uniform(800, 1100)
    v = {"lesion.adc.lesion.median": adc, "lesion.adc.rim.median": adc * 0.95,
         "lesion.adc.reference.median": liver_adc, "lesion.dwi_high_b.ratio": rng.uniform(1.3, 2.5),
         "lesion.t1_hepatobiliary.ratio": rng.uniform(0.3, 0.7), "lesion.t2.ratio": rng.uniform(1.3, 2.0),
         "lesion.re_portal_venous.lesion.median": rng.uniform(40, 80), "lesion.long_axis": rng.uniform(12, 40)}
    return {"id": lid, "values": v}


def fnh_like(rng: np.random.Generator, lid: str = "n1") -> dict:
    """Arterial hyperenhancement without washout, HBP iso/hyperintense (brief section 4; S25)."""
    v = {"lesion.re_arterial.lesion.median": rng.uniform(90, 150), "lesion.re_arterial.reference.median": 25.0,
         "lesion.t1_portal_venous.ratio": rng.uniform(1.02, 1.2),
         "lesion.t1_hepatobiliary.ratio": rng.uniform(1.05, 1.3),
         "lesion.adc.lesion.median": rng.uniform(1300, 1600), "lesion.adc.reference.median": 1200.0,
         "lesion.dwi_high_b.ratio": 1.05, "lesion.t2.ratio": rng.uniform(1.0, 1.3),
         "lesion.re_portal_venous.lesion.median": 70.0, "lesion.long_axis": rng.uniform(8, 41)}
    return {"id": lid, "values": v}


def item(result: dict, lesion: str, item_id: str) -> dict:
    scope = result["study"]["items"] if lesion == "study" else next(
        les for les in result["lesions"] if les["id"] == lesion)["items"]
    return next(r for r in scope if r["id"] == item_id)


def test_checklist_loads_and_shares_the_phantom_vocabulary():
    doc = load_checklist()
    assert set(categories(doc)) == set(load_json("phantom_lesions.json")["impressions"])
    assert {it["group"] for it in doc["items"]} == {"hallmark", "pitfall", "clinical context", "technical"}


@pytest.mark.parametrize("breakage, words", [
    (lambda d: d["items"][0]["evidence"]["all"][0].__setitem__(1, "=="), "operator"),
    (lambda d: d["items"][0]["evidence"]["all"][0].__setitem__(2, "nowhere"), "threshold 'nowhere'"),
    (lambda d: d["items"][0].__setitem__("sources", ["my opinion"]), "unknown sources"),
    (lambda d: d["items"][0].__setitem__("applies", ["washout=yes"]), "must come earlier"),
    (lambda d: d["thresholds"]["adc_malignant_max"].__setitem__("uncertainty", 0), "positive 'uncertainty'"),
    (lambda d: d["impression"]["precedence"].pop(), "default"),
    (lambda d: d["borderline_confidence"].__setitem__("value", 1.2), "borderline_confidence"),
    (lambda d: d["items"][2]["evidence"]["of"].__setitem__(2, ["item:hbp_uptake", "=", "yes"]), "earlier item"),
    (lambda d: d["value_names"].pop("lesion.hbp_ratio"), "readable name"),
])
def test_broken_checklist_is_one_sentence(breakage, words):
    doc = load_checklist()
    breakage(doc)
    with pytest.raises(LiverMetsError, match=words) as exc:
        validate_checklist(doc)
    assert "\n" not in str(exc.value)


def test_ablation_items_only_with_an_ablation_history():
    rng = np.random.default_rng(1)
    les = solid_metastasis(rng, "zone")
    without = review([les], {}, ctx())
    assert not item(without, "zone", "ablation_zone")["applicable"]
    assert not item(without, "zone", "ablation_nodular_enhancement")["applicable"]
    rfa = [{"id": "rfa_1", "type": "RFA", "date": "2025-10-01", "target": None, "lesion": "zone"}]
    with_rfa = review([les], {}, ctx(locoregional_therapies=rfa))
    assert item(with_rfa, "zone", "ablation_zone")["suggested"] == "yes"
    assert item(with_rfa, "zone", "ablation_nodular_enhancement")["applicable"]
    tace = [{"id": "t1", "type": "TACE", "date": "2025-10-01", "target": None, "lesion": "zone"}]
    assert not item(review([les], {}, ctx(locoregional_therapies=tace)), "zone", "ablation_zone")["applicable"]


def test_pseudocirrhosis_only_after_chemotherapy_and_fires_on_pseudocirrhotic_figures():
    rng = np.random.default_rng(2)
    folfox = [{"regimen": "FOLFOX", "agents": ["oxaliplatin", "fluorouracil"], "start": "2025-01-01",
               "end": "2025-06-01"}]
    for _ in range(20):  # draws: LSN (lesion-parameter-ranges.md section 5: normal 2.0-2.5, pseudocirrhotic
        # 2.8-4.0) as the excess over the normal mean 2.26 in mm, the scale of the 'livermets liver' figure; Harbin's
        # C/RL (Harbin 1980: normal 0.37 +/- 0.16, cirrhosis 0.88 +/- 0.20; cirrhotic draws above 0.70)
        pseudo = {"study.surface_nodularity": (rng.uniform(2.9, 4.0) - 2.26) / 10, "study.caudate_right_lobe_ratio":
                  rng.uniform(0.70, 1.18), "study.hbp_liver_re": rng.uniform(20, 120)}
        normal = {"study.surface_nodularity": (rng.uniform(2.0, 2.5) - 2.26) / 10, "study.caudate_right_lobe_ratio":
                  rng.uniform(0.2, 0.55), "study.hbp_liver_re": rng.uniform(70, 130)}
        les = [solid_metastasis(rng)]
        chemo = ctx(systemic_therapies=folfox)
        assert item(review(les, pseudo, chemo), "study", "pseudocirrhosis")["suggested"] == "yes"
        assert item(review(les, normal, chemo), "study", "pseudocirrhosis")["suggested"] == "no"
        assert not item(review(les, pseudo, ctx()), "study", "pseudocirrhosis")["applicable"]


def test_fnh_like_named_only_after_platinum_or_transplant_but_benign_for_everyone():
    rng = np.random.default_rng(3)
    folfox = [{"regimen": "FOLFOX", "agents": ["oxaliplatin"], "start": "2025-01-01", "end": "2025-06-01"}]
    for _ in range(10):
        les = [fnh_like(rng)]
        plain = review(les, {}, ctx())
        assert not item(plain, "n1", "fnh_like_nodule")["applicable"]
        assert plain["lesions"][0]["impression"]["category"] == "probably benign: FNH-like nodule"
        for c in (ctx(systemic_therapies=folfox), ctx(stem_cell_transplant_date="2024-01-01")):
            r = review(les, {}, c)
            assert item(r, "n1", "fnh_like_nodule")["suggested"] == "yes"
            assert "after platinum" in r["lesions"][0]["impression"]["wording"]


def test_melanoma_items_only_for_melanoma():
    rng = np.random.default_rng(4)
    les = solid_metastasis(rng)
    les["values"].update({"lesion.t1_pre.ratio": 1.4, "lesion.t2.ratio": 0.8})
    assert not item(review([les], {}, ctx()), "m1", "melanoma_pattern")["applicable"]
    assert item(review([les], {}, ctx(primary_tumour="melanoma")), "m1", "melanoma_pattern")["suggested"] == "yes"


def test_metastasis_then_overrides_move_the_impression_as_the_rules_say():
    rng = np.random.default_rng(5)
    for _ in range(10):
        les = [solid_metastasis(rng)]
        auto = review(les, {}, ctx())
        assert auto["lesions"][0]["impression"]["category"] == "typical metastasis"
        r = review(les, {}, ctx(), {"m1": {"diffusion_restriction": "no", "hbp_hypointense": {"answer": "no"}}})
        imp = r["lesions"][0]["impression"]
        assert imp["category"] == "indeterminate"
        assert [s["matched"] for s in imp["steps"]][-1] is True
        r = review(les, {}, ctx(), {"m1": {"diffusion_restriction": "not assessed"}})
        assert r["lesions"][0]["impression"]["category"] == "typical metastasis"  # not assessed keeps the suggestion
        reasons = {x["item"]: x["by"] for x in auto["lesions"][0]["impression"]["reasons"]}
        assert {"diffusion_restriction", "hbp_hypointense"} <= set(reasons)
        assert set(reasons.values()) == {"suggestion"}
        r = review(les, {}, ctx(), {"m1": {"diffusion_restriction": "no"}})
        by = {x["item"]: x["by"] for x in r["lesions"][0]["impression"]["reasons"]}
        assert "diffusion_restriction" not in by and set(by.values()) == {"suggestion"}


def test_missing_values_are_not_assessable_with_the_reason():
    r = review([{"id": "x", "values": {}, "why": {"lesion.adc.lesion.median": "no DWI"}}], {}, ctx())
    row = item(r, "x", "diffusion_restriction")
    assert row["suggested"] == "not assessable" and row["confidence"] is None
    assert "no DWI" in row["explanation"]
    assert r["lesions"][0]["impression"]["category"] == "indeterminate"


def test_confidence_follows_the_stated_formula():
    doc = load_checklist()
    t = doc["thresholds"]["hbp_hypointense_ratio_max"]
    rng = np.random.default_rng(6)
    for _ in range(10):
        ratio = rng.uniform(0.3, 0.85)
        r = review([{"id": "a", "values": {"lesion.t1_hepatobiliary.ratio": ratio}}], {}, ctx())
        z = abs(ratio - t["value"]) / t["uncertainty"]
        expect = 0.5 * (1 + __import__("math").erf(z / 2 ** 0.5))
        assert item(r, "a", "hbp_hypointense")["confidence"] == pytest.approx(expect, abs=1e-3)


def test_t2_time_ratio_inverts_the_t2_signal_model():
    """T2 lesion/liver from a T2w signal ratio: drawn T2s, echo times and fields against the mono-exponential model."""
    import math

    from LiverMetsReviewLib.checklist.inputs import t2_figures
    from LiverMetsReviewLib.checklist.values import add_derived

    doc = load_checklist()
    by_field = doc["physics"]["liver_t2_ms_by_field"]["value"]
    rng = np.random.default_rng(7)
    for _ in range(20):
        field, te, r = rng.choice([1.5, 3.0]), rng.uniform(60, 120), rng.uniform(0.8, 4.0)
        study = t2_figures({"echo_time_ms": te, "field_strength_t": field}, by_field)
        t2_liver = by_field[str(field)]
        signal = math.exp(te / t2_liver - te / (r * t2_liver))
        vals = {**study, "lesion.t2.ratio": signal}
        add_derived(vals, {}, doc["derived"])
        assert vals["lesion.t2_time_ratio"] == pytest.approx(r, rel=1e-4)
    mid = t2_figures({"echo_time_ms": 85.0, "field_strength_t": 2.25}, by_field)["study.liver_t2_ms"]
    assert mid == pytest.approx((by_field["1.5"] + by_field["3.0"]) / 2)
    assert t2_figures({"echo_time_ms": 85.0}, by_field) == {}  # no field strength: not guessed


def test_liver_spleen_ratio_with_the_fat_signal_restored():
    """A fat-suppressed HBP darkens a fatty liver by its water fraction; the study ratio undoes it."""
    fat, function_ratio = 30.0, 1.8
    figures = {"study.liver_spleen_ratio": function_ratio * (1 - fat / 100), "study.liver_fat_median": fat,
               "study.hbp_liver_re": 95.0}
    out = review([], figures, None)
    assert out["study"]["values"]["study.liver_spleen_ratio_fat_free"] == pytest.approx(function_ratio)
    assert next(r for r in out["study"]["items"] if r["id"] == "low_hbp_function")["suggested"] == "no"


def _zone_values(rng: np.random.Generator, shell: str, nodular_z: float, adc_z: float | None,
                 pv_z: float | None, inner_adc_z: float | None = None) -> dict[str, float]:
    """A drawn ablation zone: an enhancing rim round a non-enhancing core (the segment's median voxel necrosis: no
    arterial enhancement, dark on the portal venous phase), no whole-lesion restriction, the
    arterial sector outlier in ``shell`` (rim or margin; the other shells weaker) and, in its direction, that
    shell's ADC and portal venous figures and the whole lesion's ADC (``inner_adc_z``)."""
    vals = {"lesion.re_arterial.rim.median": rng.uniform(40, 80), "lesion.re_arterial.core.median": 0.0,
            "lesion.re_arterial.reference.median": 20.0, "lesion.adc.lesion.median": rng.uniform(1500, 1800),
            "lesion.adc.reference.median": 1200.0, "lesion.dwi_high_b.ratio": 0.9, "lesion.long_axis": 30.0,
            "lesion.re_arterial.lesion.median": rng.uniform(-10, 10),
            "lesion.t1_portal_venous.ratio": rng.uniform(0.6, 0.85)}
    for region in ("rim", "margin", "lesion"):
        vals[f"lesion.re_arterial.{region}.asymmetry_z"] = (nodular_z if region == shell else
                                                           rng.uniform(0, min(nodular_z, 1.0)))
    if adc_z is not None:
        vals[f"lesion.adc.{shell}.outlier_excess_z"] = adc_z
    if pv_z is not None:
        vals[f"lesion.t1_portal_venous.{shell}.outlier_excess_z"] = pv_z
    if inner_adc_z is not None:
        vals["lesion.adc.lesion.outlier_excess_z"] = inner_adc_z
    return vals


def test_ablation_zone_recurrence_needs_tumour_like_tissue_at_the_margin():
    """Recurrence after ablation is nodular tissue at the margin that behaves like tumour (brief section 4, S27):
    the arterial sector outlier (noise units) with a low ADC or washout in its direction is suspicious for
    recurrence; an outlier that keeps its contrast and does not restrict (granulation tissue, a partial-volume step)
    is expected change, like a uniform rim; an outlier whose behaviour is not measured is indeterminate. The
    restriction may show deeper in the same direction (the whole lesion's sector) than in the margin. An outlier
    beyond the strong level (family-wise 0.1 %) is nodular enhancement by itself: suspicious whatever its behaviour."""
    rng = np.random.default_rng(5)
    rfa = [{"id": "rfa_1", "type": "RFA", "date": "2025-10-01", "target": None, "lesion": "zone"}]
    t = load_checklist()["thresholds"]
    z0 = t["sector_outlier_z_min"]
    lo, hi = z0["value"] - 3 * z0["uncertainty"], z0["value"] + 3 * z0["uncertainty"]
    zs = t["sector_outlier_z_strong"]
    strong = zs["value"] + 3 * zs["uncertainty"]
    # a moderate outlier: beyond the 5 % level, below the 0.1 % one, each by more than the borderline band
    mid_lo, mid_hi = z0["value"] + 0.3 * z0["uncertainty"], zs["value"] - 0.3 * zs["uncertainty"]
    w = t["outlier_washout_z_max"]
    tumour, benign = w["value"] - 3 * w["uncertainty"], w["value"] + 3 * w["uncertainty"]
    for _ in range(10):
        shell = str(rng.choice(["rim", "margin"]))
        cases = [
            (rng.uniform(0, lo), rng.uniform(benign, 3), rng.uniform(benign, 3), None,
             "treated lesion: expected change"),
            (rng.uniform(hi, 20), rng.uniform(tumour - 5, tumour), rng.uniform(benign, 3), None,
             "suspicious for recurrence"),
            (rng.uniform(hi, 20), rng.uniform(benign, 3), rng.uniform(tumour - 5, tumour), None,
             "suspicious for recurrence"),
            (rng.uniform(mid_lo, mid_hi), rng.uniform(benign, 3), rng.uniform(benign, 3),
             rng.uniform(tumour - 5, tumour), "suspicious for recurrence"),
            (rng.uniform(mid_lo, mid_hi), rng.uniform(benign, 3), rng.uniform(benign, 3), rng.uniform(benign, 3),
             "treated lesion: expected change"),
            (rng.uniform(mid_lo, mid_hi), None, None, None, "indeterminate"),
            # nodular enhancement by itself: suspicious even when the tissue neither restricts nor washes out
            (rng.uniform(strong, 40), rng.uniform(benign, 3), rng.uniform(benign, 3), rng.uniform(benign, 3),
             "suspicious for recurrence"),
            (rng.uniform(strong, 40), None, None, None, "suspicious for recurrence"),
            # a weak outlier whose tissue both restricts and washes out: two of the three tumour features
            (rng.uniform(0, lo), rng.uniform(tumour - 5, tumour), rng.uniform(tumour - 5, tumour), None,
             "suspicious for recurrence"),
        ]
        for nz, adc_z, pv_z, inner, want in cases:
            out = review([{"id": "zone", "values": _zone_values(rng, shell, nz, adc_z, pv_z, inner)}], {},
                         ctx(locoregional_therapies=rfa))
            les = out["lesions"][0]
            assert les["impression"]["category"] == want, (shell, nz, adc_z, pv_z, inner, les["impression"]["rule"])
            rim = next(r for r in les["items"] if r["id"] == "post_ablation_rim")
            assert rim["suggested"] == ("yes" if want == "treated lesion: expected change" else
                                        "no" if want == "suspicious for recurrence" else "not assessable")


def test_evidence_reads_in_words_beside_the_machine_fields():
    rng = np.random.default_rng(11)
    for _ in range(10):
        les = solid_metastasis(rng)
        r = review([les], {}, ctx())
        hbp = item(r, "m1", "hbp_hypointense")["evidence"][0]
        ratio = les["values"]["lesion.t1_hepatobiliary.ratio"]
        assert hbp["value_key"] == "lesion.hbp_ratio" and hbp["value"] == pytest.approx(ratio, abs=1e-4)
        assert hbp["text"] == f"HBP lesion-to-liver ratio {ratio:.2f} < 0.90"  # the unit "1" is left out
        adc = item(r, "m1", "fluid_like_adc")["evidence"][0]  # fails: the relation as measured, unit kept
        assert adc["text"] == f"ADC, lowest of lesion and rim median {adc['value']:.0f} < 1500 ×10⁻⁶ mm²/s"
        assert hbp["text"] in item(r, "m1", "hbp_hypointense")["explanation"]


def test_partial_volume_of_edge_voxels_is_undone():
    from LiverMetsReviewLib.lesions.measure import interior_fraction
    cube = np.zeros((9, 9, 9), bool)
    cube[2:7, 2:7, 2:7] = True
    assert interior_fraction(cube) == pytest.approx(27 / 125)  # a 5-voxel cube: the inner 3 x 3 x 3
    rng = np.random.default_rng(12)
    for _ in range(10):
        raw, interior = rng.uniform(0.3, 0.95), rng.uniform(0.0, 0.5)
        les = solid_metastasis(rng)
        les["values"].update({"lesion.t1_hepatobiliary.ratio": raw, "lesion.interior_fraction": interior})
        # the median voxel's lesion share m: interior + (1 - interior)(1 - m)/(1 - 0.5) = 1/2
        m = 1.0 - 0.5 * (0.5 - interior) / (1.0 - interior)
        value = item(review([les], {}, ctx()), "m1", "hbp_hypointense")["evidence"][0]["value"]
        assert value == pytest.approx(1.0 + (raw - 1.0) / m, abs=1e-3)
        les["values"]["lesion.interior_fraction"] = rng.uniform(0.5, 1.0)  # interior voxels hold the median
        assert item(review([les], {}, ctx()), "m1", "hbp_hypointense")["evidence"][0]["value"] == \
            pytest.approx(raw, abs=1e-4)


def test_pseudocirrhosis_reads_the_low_hbp_function_item():
    folfox = [{"regimen": "FOLFOX", "agents": ["oxaliplatin"], "start": "2025-01-01", "end": "2025-06-01"}]
    rng = np.random.default_rng(13)
    for _ in range(10):  # nodular contour (LSN 3.2-4.0), normal caudate, liver RE above 50 % but liver-to-spleen
        figures = {"study.surface_nodularity": (rng.uniform(3.2, 4.0) - 2.26) / 10,  # below 1.5 (S21)
                   "study.caudate_right_lobe_ratio": rng.uniform(0.2, 0.5), "study.hbp_liver_re": rng.uniform(70, 120),
                   "study.liver_spleen_ratio": rng.uniform(1.0, 1.3), "study.liver_fat_median": 3.0}
        r = review([solid_metastasis(rng)], figures, ctx(systemic_therapies=folfox))
        assert item(r, "study", "low_hbp_function")["suggested"] == "yes"
        pc = item(r, "study", "pseudocirrhosis")
        assert pc["suggested"] == "yes"
        assert any(c["value_key"] == "item:low_hbp_function" and c["holds"] for c in pc["evidence"])


def test_fnh_like_rim_retention_is_read_and_a_dark_rim_is_not():
    rng = np.random.default_rng(14)
    folfox = [{"regimen": "FOLFOX", "agents": ["oxaliplatin"], "start": "2025-01-01", "end": "2025-06-01"}]
    for _ in range(10):  # S25: rim retention around a darker centre; the whole lesion below the liver
        les = fnh_like(rng)
        liver = 2000.0
        rim, core = liver * rng.uniform(0.97, 1.15), liver * rng.uniform(0.6, 0.8)
        les["values"].update({"lesion.t1_hepatobiliary.ratio": rng.uniform(0.7, 0.85),
                              "lesion.t1_hepatobiliary.rim.median": rim, "lesion.t1_hepatobiliary.core.median": core,
                              "lesion.t1_hepatobiliary.reference.median": liver})
        r = review([les], {}, ctx(systemic_therapies=folfox))
        assert item(r, "n1", "hbp_rim_retention")["suggested"] == "yes"
        assert r["lesions"][0]["impression"]["category"] == "probably benign: FNH-like nodule"
        les["values"]["lesion.t1_hepatobiliary.rim.median"] = liver * rng.uniform(0.3, 0.7)  # a metastasis's rim
        r = review([les], {}, ctx(systemic_therapies=folfox))
        assert item(r, "n1", "hbp_rim_retention")["suggested"] == "no"
        assert r["lesions"][0]["impression"]["category"] != "probably benign: FNH-like nodule"


def test_a_borderline_measurement_is_indeterminate_and_keeps_its_side():
    doc = load_checklist()
    t = doc["thresholds"]["hbp_hypointense_ratio_max"]
    rng = np.random.default_rng(15)
    for _ in range(10):
        z = rng.uniform(-0.2, 0.2)  # within a quarter uncertainty: confidence Phi(|z|) < 0.6
        les = solid_metastasis(rng)
        les["values"]["lesion.t1_hepatobiliary.ratio"] = t["value"] + z * t["uncertainty"]
        row = item(review([les], {}, ctx()), "m1", "hbp_hypointense")
        assert row["suggested"] == "indeterminate" and row["borderline"] == ("yes" if z < 0 else "no")
        les["values"]["lesion.t1_hepatobiliary.ratio"] = t["value"] - rng.uniform(0.3, 3.0) * t["uncertainty"]
        assert item(review([les], {}, ctx()), "m1", "hbp_hypointense")["suggested"] == "yes"


def test_pitfalls_in_play_are_those_that_fired_or_moved_an_impression():
    """Issue 9 'the pitfalls in play', per lesion and per study. In a fatty liver a metastasis holds less fat than
    the liver, so the fat-sparing item says yes for it too; that is a feature, not the pitfall: only the area whose
    reading it makes fat sparing (S20: sparing 1-34 % fat against liver 25 %, ADC within +-10 % of the liver, no
    restriction, HBP not dark) has fat sparing in play. A reading caution no rule reads (T1-bright ablation debris)
    is in play wherever it fires. The study lists its own pitfalls that hold and each lesion's."""
    rng = np.random.default_rng(21)
    for _ in range(10):
        liver_fat = rng.uniform(15, 30)
        met = solid_metastasis(rng, "m1")
        met["values"].update({"lesion.pdff.lesion.median": rng.uniform(0, 3),
                              "lesion.pdff.reference.median": liver_fat})
        liver_adc, fat = rng.uniform(1100, 1400), rng.uniform(1, liver_fat - 8)
        water = (100 - fat) / (100 - liver_fat)  # a fat-suppressed series shows the water: the spared area is brighter
        spared = {"id": "s1", "values": {
            "lesion.pdff.lesion.median": fat, "lesion.pdff.reference.median": liver_fat,
            "lesion.adc.lesion.median": liver_adc * rng.uniform(0.97, 1.08), "lesion.adc.reference.median": liver_adc,
            "lesion.dwi_high_b.ratio": rng.uniform(0.95, 1.05),
            "lesion.t1_hepatobiliary.ratio": water * rng.uniform(1.0, 1.15),
            "lesion.t2.ratio": rng.uniform(0.95, 1.1), "lesion.long_axis": rng.uniform(10, 30)}}
        zone = {"id": "zone", "values": {"lesion.t1_pre.ratio": rng.uniform(1.5, 2.5), "lesion.long_axis": 30.0}}
        rfa = [{"id": "rfa_1", "type": "RFA", "date": "2025-10-01", "target": None, "lesion": "zone"}]
        out = review([met, spared, zone], {"study.liver_fat_median": liver_fat}, ctx(locoregional_therapies=rfa))
        les = {x["id"]: x for x in out["lesions"]}
        assert item(out, "m1", "focal_fat_sparing")["suggested"] == "yes"  # fired as a feature ...
        assert les["m1"]["impression"]["category"] == "typical metastasis"
        assert "focal_fat_sparing" not in [p["item"] for p in les["m1"]["pitfalls_in_play"]]  # ... not in play
        assert les["s1"]["impression"]["category"] == "probably benign: focal fat sparing"
        sparing = next(p for p in les["s1"]["pitfalls_in_play"] if p["item"] == "focal_fat_sparing")
        assert "moved the impression" in sparing["how"]
        assert [p["item"] for p in les["zone"]["pitfalls_in_play"]] == ["ablation_debris"]
        in_play = out["study"]["summary"]["pitfalls_in_play"]
        assert "background_steatosis" in in_play and "s1: focal_fat_sparing" in in_play
        assert "zone: ablation_debris" in in_play and not [p for p in in_play if p.startswith("m1:")]
        saved = review_document(out, {}, {}, [])  # review.json keeps them, and review.md shows them
        assert [x["pitfalls_in_play"] for x in saved["lesions"]] == [x["pitfalls_in_play"] for x in out["lesions"]]
        assert "Pitfalls in play: T1-bright" in review_markdown(saved).split("## Lesion zone")[1]


def test_review_markdown_writes_the_couinaud_segment_and_border_as_the_report_does():
    """The measured segment travels through the engine and review.json into review.md in Roman numerals, with
    the border call when the lesion's centre lies at a plane (the same wording as the report's)."""
    lesions = [{"id": "a", "values": {"lesion.long_axis": 21.0}, "why": {}, "couinaud_segment": 7,
                "couinaud_border": "VII/VIII border"},
               {"id": "b", "values": {"lesion.long_axis": 9.0}, "why": {}, "couinaud_segment": 4},
               {"id": "c", "values": {}, "why": {}}]
    saved = review_document(review(lesions), {}, {}, [])
    assert [x["couinaud_border"] for x in saved["lesions"]] == ["VII/VIII border", None, None]
    md = review_markdown(saved)
    assert "Segment VII (VII/VIII border), long axis 21.0 mm" in md.split("## Lesion a")[1]
    assert "Segment IV, long axis 9.0 mm" in md.split("## Lesion b")[1]
    assert "Segment not known" in md.split("## Lesion c")[1]
    assert "- Segments involved: IV, VII" in md


def _dwi_ratio(t2_factor: float, adc: float, liver_adc: float, b: float = 800.0) -> float:
    """High-b lesion-to-liver signal from the mono-exponential model (brief section 5): T2 factor x exp(-b dADC)."""
    return t2_factor * float(np.exp(-b * (adc - liver_adc) * 1e-6))


def test_fnh_like_is_vetoed_only_by_restriction_against_the_lesion_s_own_liver():
    """Brief section 3: restriction is bright on high-b DWI with a low ADC. In a liver whose own ADC lies below the
    absolute malignant cut-off (liver 1000-1500, lesion-parameter-ranges.md section 1), a lesion with the liver's
    ADC and about its T2 (DWI within a few percent of the liver) does not restrict against it (the absolute reading,
    diffusion_restriction, still serves the metastasis rules); up to checklist 1.5.1 the FNH-like rule read the
    absolute one, which turned an FNH-like nodule with hepatocyte uptake into a metastasis."""
    doc = load_checklist()
    cut = doc["thresholds"]["adc_malignant_max"]
    rng = np.random.default_rng(19)
    for _ in range(12):
        liver_adc = rng.uniform(1000.0, cut["value"] - 2 * cut["uncertainty"])
        adc = liver_adc * rng.uniform(0.97, 1.0)          # iso on the ADC map
        les = fnh_like(rng)
        les["values"].update({"lesion.adc.lesion.median": adc, "lesion.adc.rim.median": adc,
                              "lesion.adc.reference.median": liver_adc,
                              "lesion.dwi_high_b.ratio": _dwi_ratio(rng.uniform(1.03, 1.06), adc, liver_adc)})
        r = review([les], {}, ctx())
        assert r["lesions"][0]["impression"]["category"] == "probably benign: FNH-like nodule"
        assert item(r, "n1", "restriction_against_liver")["suggested"] != "yes"
        # the same nodule truly restricting (ADC 0.6-0.85 of the liver's, DWI bright) is not called benign, unless
        # the reader answers that it does not restrict
        low = liver_adc * rng.uniform(0.6, 0.85)
        les["values"].update({"lesion.adc.lesion.median": low, "lesion.adc.rim.median": low,
                              "lesion.dwi_high_b.ratio": _dwi_ratio(rng.uniform(1.03, 1.06), low, liver_adc)})
        assert review([les], {}, ctx())["lesions"][0]["impression"]["category"] != "probably benign: FNH-like nodule"
        r = review([les], {}, ctx(), {"n1": {"diffusion_restriction": "no"}})
        assert item(r, "n1", "restriction_against_liver")["suggested"] == "no"
        assert r["lesions"][0]["impression"]["category"] == "probably benign: FNH-like nodule"
        # a metastasis in the same liver: ADC below the liver's by the published contrast (800-1100 vs 1200: S1, S7)
        # restricts whether its DWI is clearly bright or diluted toward the liver by its T2 (T2 factor 0.8-1.0)
        met = solid_metastasis(rng)
        met_adc = liver_adc * rng.uniform(0.6, 0.85)
        met["values"].update({"lesion.adc.lesion.median": met_adc, "lesion.adc.rim.median": met_adc,
                              "lesion.adc.reference.median": liver_adc})
        for t2_factor in (rng.uniform(1.3, 2.0), rng.uniform(0.85, 0.95)):
            dwi = _dwi_ratio(t2_factor, met_adc, liver_adc)
            if dwi < doc["thresholds"]["dwi_not_dark_ratio"]["value"] + 0.03:
                continue  # a DWI darker than the liver is not read as restriction (unchanged)
            met["values"]["lesion.dwi_high_b.ratio"] = dwi
            r = review([met], {}, ctx())
            assert item(r, "m1", "diffusion_restriction")["suggested"] == "yes"
            assert item(r, "m1", "restriction_against_liver")["suggested"] == "yes"
            assert r["lesions"][0]["impression"]["category"] == "typical metastasis"


def test_ablation_zone_whose_segment_enhances_and_washes_out_is_suspicious():
    """Brief sections 3-4: the expected ablation zone is non-enhancing necrosis with a thin rim that keeps its
    contrast; tissue that hyperenhances in the arterial phase and washes out behaves like tumour. When the
    segment's median voxel is such tissue (the segment holds the nodule, its rim too thin for sector figures), the
    zone is suspicious for recurrence; up to checklist 1.5.1 it was expected change. A segment of necrosis, or one
    dominated by a thick granulation rim that keeps its contrast on the portal venous phase, stays expected change."""
    rng = np.random.default_rng(23)
    rfa = [{"id": "rfa_1", "type": "RFA", "date": "2025-10-01", "target": None, "lesion": "zone"}]
    t = load_checklist()["thresholds"]
    art, wash = t["arterial_excess_min"], t["washout_ratio_max"]
    for _ in range(10):
        liver_re = rng.uniform(15, 40)   # the liver gains some tens of percent in the late arterial phase
        hyper = liver_re + rng.uniform(art["value"] + 2 * art["uncertainty"], 150)
        cases = [  # (segment's arterial relative enhancement %, portal venous lesion-to-liver ratio, impression)
            (hyper, rng.uniform(0.6, wash["value"] - 2 * wash["uncertainty"]), "suspicious for recurrence"),
            (rng.uniform(-10, 10), rng.uniform(0.6, 0.85), "treated lesion: expected change"),
            (hyper, rng.uniform(1.05, 1.25), "treated lesion: expected change"),
        ]
        for re_art, pv, want in cases:
            vals = {"lesion.re_arterial.lesion.median": re_art, "lesion.re_arterial.reference.median": liver_re,
                    "lesion.t1_portal_venous.ratio": pv, "lesion.long_axis": rng.uniform(8, 30)}
            why = {f"lesion.re_arterial.{s}.asymmetry_z": "too few rim voxels for 8 sectors"
                   for s in ("rim", "margin", "lesion")}
            out = review([{"id": "zone", "values": vals, "why": why}], {}, ctx(locoregional_therapies=rfa))
            assert out["lesions"][0]["impression"]["category"] == want, (re_art - liver_re, pv)
            if want == "suspicious for recurrence":  # its rim is not named the expected post-ablation rim
                assert item(out, "zone", "post_ablation_rim")["suggested"] != "yes"


def test_ablation_zone_with_nothing_read_is_not_called_expected_change():
    """Checklist 1.5.3: expected change needs read evidence (a margin without nodular enhancement, an outlier that
    behaves like granulation tissue, or a segment that is not hypervascular with washout). A zone whose margin has
    too few voxels for sectors and whose arterial or portal venous values are missing shows neither recurrence nor
    expected change: indeterminate (up to 1.5.2 the reassuring expected change). With the values present the same
    zone is expected change again."""
    rng = np.random.default_rng(31)
    rfa = [{"id": "rfa_1", "type": "RFA", "date": "2025-10-01", "target": None, "lesion": "zone"}]
    why = {f"lesion.re_arterial.{s}.asymmetry_z": "too few rim voxels for 8 sectors"
           for s in ("rim", "margin", "lesion")}
    for _ in range(10):
        vals = {"lesion.long_axis": rng.uniform(8, 30)}
        out = review([{"id": "zone", "values": vals, "why": why}], {}, ctx(locoregional_therapies=rfa))
        impression = out["lesions"][0]["impression"]
        assert impression["category"] == "indeterminate", impression["rule"]
        assert impression["rule"] == "treated_margin_unread"
        vals.update({"lesion.re_arterial.lesion.median": rng.uniform(-10, 10),
                     "lesion.re_arterial.reference.median": rng.uniform(15, 40),
                     "lesion.t1_portal_venous.ratio": rng.uniform(0.6, 0.85)})
        out = review([{"id": "zone", "values": vals, "why": why}], {}, ctx(locoregional_therapies=rfa))
        assert out["lesions"][0]["impression"]["category"] == "treated lesion: expected change"


def test_a_rule_with_all_and_any_parts_needs_every_part():
    """checklist.json 'confidence': several parts hold when every part holds (the weakest part's confidence) and
    fail when one fails (the most certain failing part); a part that cannot be decided leaves the rule undecided."""
    from LiverMetsReviewLib.checklist.rules import combine

    rng = np.random.default_rng(29)
    for _ in range(20):
        a, b, c = rng.uniform(0.5, 1.0, 3)
        rule = {"all": [0], "any": [0, 0]}
        cond = [{"holds": True, "confidence": a}, {"holds": False, "confidence": b}, {"holds": True, "confidence": c}]
        assert combine(rule, cond) == (True, min(a, c))
        cond[2]["holds"] = False
        assert combine(rule, cond) == (False, min(b, c))
        cond[0]["holds"] = False
        assert combine(rule, cond) == (False, max(a, min(b, c)))
        cond = [{"holds": None, "confidence": None}, {"holds": True, "confidence": b}, {"holds": None, "confidence": c}]
        assert combine(rule, cond) == (None, None)


def persistent_fnh_like_draws(rng: np.random.Generator, n: int = 12):
    """``n`` drawn FNH-like nodules of 15 mm or more with arterial hyperenhancement, no washout, gadoxetate uptake
    and persistent portal venous enhancement, each on a drawn field strength and echo time: yields (echo time, the
    liver's T2 at that field, the study's T2 figures, the lesion); the caller sets the lesion's T2 (see
    ``t2_signal_ratio``)."""
    from LiverMetsReviewLib.checklist.inputs import t2_figures

    by_field = load_checklist()["physics"]["liver_t2_ms_by_field"]["value"]
    for _ in range(n):
        field, te = str(rng.choice(["1.5", "3.0"])), rng.uniform(70, 110)
        figures = t2_figures({"echo_time_ms": te, "field_strength_t": float(field)}, by_field)
        les = fnh_like(rng)
        les["values"].update({"lesion.long_axis": rng.uniform(16, 41),
                              "lesion.t1_portal_venous.ratio": rng.uniform(1.12, 1.25),
                              "lesion.re_portal_venous.lesion.median": rng.uniform(110, 150),
                              "lesion.re_portal_venous.reference.median": rng.uniform(50, 70)})
        yield te, by_field[field], figures, les


def t2_signal_ratio(te: float, t2_liver: float, t2_ms: float) -> float:
    """Lesion-to-liver T2 signal ratio at echo time ``te`` of a lesion with T2 ``t2_ms`` (mono-exponential decay,
    the same proton density)."""
    return math.exp(te / t2_liver - te / t2_ms)


def test_a_t2_iso_fnh_like_nodule_that_stays_bright_on_portal_venous_is_not_left_indeterminate():
    """Persistent portal venous enhancement is a haemangioma's sign only for a T2-bright lesion: haemangioma T2
    >= 82 ms against the liver's 41-74 ms (S10-S13), FNH near the liver's. A nodule of 15 mm or more with arterial
    hyperenhancement, no washout, gadoxetate uptake and the liver's T2 is FNH-like (indeterminate up to checklist
    1.5.1); the same nodule with a haemangioma's T2 is not."""
    rng = np.random.default_rng(31)
    for te, t2_liver, figures, les in persistent_fnh_like_draws(rng):
        for t2_ms, benign in ((t2_liver * rng.uniform(0.97, 1.02), True), (rng.uniform(82, 249), False)):
            les["values"]["lesion.t2.ratio"] = t2_signal_ratio(te, t2_liver, t2_ms)
            r = review([les], figures, ctx())
            assert item(r, "n1", "persistent_enhancement")["suggested"] == "yes"
            assert item(r, "n1", "t2_very_bright")["suggested"] in ("yes", "no", "indeterminate")  # T2 time read
            got = r["lesions"][0]["impression"]["category"]
            assert (got == "probably benign: FNH-like nodule") is benign, (t2_ms, t2_liver, got)


def test_a_hypervascular_metastasis_that_washes_out_is_not_set_aside_by_a_liver_level_adc():
    """Brief section 3: arterial hyperenhancement, washout and HBP hypointensity make a hypervascular metastasis;
    in a liver whose own ADC lies at the top of its range (1000-1500, lesion-parameter-ranges.md section 1) such a
    lesion at its liver's ADC reads as fluid-like (>= 1500), which set it aside as indeterminate up to 1.5.1. A
    haemangioma (keeps its contrast) and an FNH-like nodule (takes up gadoxetate) with the same ADC are not called
    metastasis."""
    rng = np.random.default_rng(37)
    for _ in range(12):
        liver_adc = rng.uniform(1400, 1500)
        adc = rng.uniform(1560, 1680)  # 4-20 % above its liver: beyond the fluid-like level, not a cyst's ADC
        liver_re = rng.uniform(15, 40)
        v = {"lesion.re_arterial.lesion.median": liver_re + rng.uniform(80, 150),
             "lesion.re_arterial.reference.median": liver_re, "lesion.t1_portal_venous.ratio": rng.uniform(0.7, 0.88),
             "lesion.re_portal_venous.lesion.median": rng.uniform(60, 90),
             "lesion.t1_hepatobiliary.ratio": rng.uniform(0.3, 0.7), "lesion.t2.ratio": rng.uniform(1.3, 2.2),
             "lesion.adc.lesion.median": adc, "lesion.adc.reference.median": liver_adc,
             "lesion.dwi_high_b.ratio": _dwi_ratio(rng.uniform(1.3, 2.2), adc, liver_adc),
             "lesion.long_axis": rng.uniform(15, 40)}
        r = review([{"id": "h", "values": v}], {}, ctx(primary_tumour="neuroendocrine"))
        assert item(r, "h", "fluid_like_adc")["suggested"] == "yes"
        assert r["lesions"][0]["impression"]["category"] == "typical metastasis"
        kept = dict(v, **{"lesion.t1_portal_venous.ratio": rng.uniform(1.1, 1.3)})   # retains: no washout
        took_up = dict(v, **{"lesion.t1_hepatobiliary.ratio": rng.uniform(1.0, 1.2)})  # hepatocytes
        for other in (kept, took_up):
            r = review([{"id": "h", "values": other}], {}, ctx(primary_tumour="neuroendocrine"))
            assert r["lesions"][0]["impression"]["category"] != "typical metastasis"
