"""Checklist 1.6: FNH-like nodules against their mimics. Gadoxetate uptake read as the lesion's gain over the
pre-contrast phase (as a subtraction image); a nodule with FNH-like enhancement and uptake that truly restricts
left indeterminate; an FNH's own T2 (near the liver's) told from a haemangioma's by its T2 time.

Signal model of the fat-suppressed T1 series (brief section 1): a lesion-to-liver ratio p before contrast becomes
p (1 + RE_lesion) / (1 + RE_liver) in the hepatobiliary phase; a fat-suppressed voxel shows only its water, so a
lesion's fat darkens both phases by the same factor.
"""

from __future__ import annotations

import numpy as np
from test_checklist import _dwi_ratio, ctx, fnh_like, item, persistent_fnh_like_draws, t2_signal_ratio

from LiverMetsReviewLib.checklist import load_checklist, review
from LiverMetsReviewLib.checklist.values import add_derived

CARBOPLATIN = [{"regimen": "carboplatin and paclitaxel", "agents": ["carboplatin", "paclitaxel"],
                "start": "2024-01-01", "end": "2024-06-01"}]
FNH = "probably benign: FNH-like nodule"


def _low_function_figures(liver_re: float) -> dict:
    """Study figures of a liver of reduced HBP function (liver RE 10-50 %, lesion-parameter-ranges.md section 1)."""
    return {"study.hbp_liver_re": 100.0 * liver_re, "study.liver_spleen_ratio": 1.2, "study.liver_fat_median": 3.0}


def _hypervascular(rng: np.random.Generator, lid: str, pre: float, hbp: float) -> dict:
    """Arterial hyperenhancement without washout (the enhancement an FNH-like nodule and a hypervascular metastasis
    share), with the given pre-contrast and hepatobiliary lesion-to-liver ratios."""
    liver_pv = rng.uniform(50, 70)
    lesion_pv = liver_pv + rng.uniform(-5, 5)   # portal venous enhancement like the liver's: no washout
    v = {"lesion.re_arterial.lesion.median": rng.uniform(90, 150), "lesion.re_arterial.reference.median": 25.0,
         "lesion.t1_portal_venous.ratio": pre * (1 + lesion_pv / 100) / (1 + liver_pv / 100),
         "lesion.re_portal_venous.lesion.median": lesion_pv, "lesion.re_portal_venous.reference.median": liver_pv,
         "lesion.t1_pre.ratio": pre, "lesion.t1_hepatobiliary.ratio": hbp, "lesion.long_axis": rng.uniform(16, 35)}
    return {"id": lid, "values": v}


def test_a_t1_bright_lesion_at_liver_level_in_a_low_function_liver_has_no_uptake():
    """Melanin shortens T1 (brief section 3: pre-contrast T1 hyperintense). In a liver that gains little gadoxetate
    (RE 35-50 %) a melanoma metastasis without hepatocytes (extracellular gadoxetate only, RE 0-10 % at 20 min) stays
    at or above the liver's level in the HBP; up to checklist 1.5.3 that level was read as uptake and, with its
    arterial enhancement and no washout, the metastasis was called FNH-like (seeds 8910, 8930). An FNH-like nodule in
    the same liver gains as much as the liver or more (hepatocytes: brief section 4) and stays FNH-like."""
    rng = np.random.default_rng(41)
    context = ctx(primary_tumour="melanoma", systemic_therapies=CARBOPLATIN)
    seen = 0
    while seen < 10:
        liver_re, met_re = rng.uniform(0.35, 0.5), rng.uniform(0.0, 0.10)
        pre = rng.uniform(1.3, 1.5)
        hbp = pre * (1 + met_re) / (1 + liver_re)
        if hbp < 1.0:  # only those the HBP level alone calls iso/hyperintense
            continue
        seen += 1
        figures = _low_function_figures(liver_re)
        met = _hypervascular(rng, "m1", pre, hbp)
        met["values"].update({"lesion.t2.ratio": rng.uniform(0.7, 0.9),      # melanin: T2-dark, DWI not bright
                              "lesion.dwi_high_b.ratio": rng.uniform(0.8, 0.95),
                              "lesion.adc.lesion.median": rng.uniform(950, 1150),
                              "lesion.adc.reference.median": 1200.0})
        r = review([met], figures, context)
        assert item(r, "study", "low_hbp_function")["suggested"] == "yes"
        assert item(r, "m1", "hbp_uptake")["suggested"] == "no"
        assert r["lesions"][0]["impression"]["category"] == "typical metastasis"

        nodule_pre = rng.uniform(0.97, 1.05)
        nodule = _hypervascular(rng, "n1", nodule_pre,
                                nodule_pre * (1 + rng.uniform(1.1, 1.5) * liver_re) / (1 + liver_re))
        nodule["values"].update({"lesion.t2.ratio": rng.uniform(1.0, 1.08), "lesion.dwi_high_b.ratio": 1.0,
                                 "lesion.adc.lesion.median": rng.uniform(1300, 1600),
                                 "lesion.adc.reference.median": 1200.0})
        r = review([nodule], figures, context)
        assert item(r, "n1", "hbp_uptake")["suggested"] == "yes"
        assert r["lesions"][0]["impression"]["category"] == FNH


def test_a_restricting_nodule_with_uptake_is_indeterminate_and_a_fat_containing_metastasis_stays_typical():
    """The FNH-like rules' note: a nodule with FNH-like enhancement and uptake that truly restricts (bright DWI, ADC
    0.6-0.85 of the liver's) is left indeterminate, not called benign (FNH ADC overlaps the malignant cut-offs,
    lesion-parameter-ranges.md section 6) and not a typical metastasis (hepatocyte uptake, brief sections 3-4); up to
    checklist 1.5.3 it fell to the metastasis rule (restriction and a mild T2: FNH T2 66 +/- 7 ms against the
    liver's 54, S10). A fat-containing metastasis (no hepatocytes, fat 25-40 pp above the liver's, extracellular
    gadoxetate only) whose rim shell is partly liver reads, once its fat-suppressed rim is multiplied by the
    lesion's water factor, like a rim at liver level; read as gain over the pre-contrast phase, where the fat
    cancels, it takes up nothing and stays a typical metastasis."""
    t = load_checklist()["thresholds"]
    rng = np.random.default_rng(47)
    fat_cases = 0
    for _ in range(10):
        liver_adc = rng.uniform(1200, 1500)
        low = liver_adc * rng.uniform(0.6, 0.85)
        nodule = fnh_like(rng)
        nodule["values"].update({"lesion.adc.lesion.median": low, "lesion.adc.rim.median": low,
                                 "lesion.adc.reference.median": liver_adc, "lesion.t2.ratio": rng.uniform(1.15, 1.3),
                                 "lesion.dwi_high_b.ratio": _dwi_ratio(rng.uniform(1.03, 1.06), low, liver_adc)})
        r = review([nodule], {}, ctx())
        assert item(r, "n1", "restriction_against_liver")["suggested"] == "yes"
        assert r["lesions"][0]["impression"]["category"] == "indeterminate"
        assert r["lesions"][0]["impression"]["rule"] == "fnh_like_restricting"

        liver_fat = rng.uniform(2, 8)
        fat = liver_fat + rng.uniform(25, 40)
        water = (100 - fat) / (100 - liver_fat)                      # fat-suppressed: only the water shows
        pre = water * rng.uniform(0.95, 1.1)                          # lesion T1 near the liver's
        gain = (1 + rng.uniform(0.05, 0.2)) / (1 + rng.uniform(0.8, 1.2))   # no uptake against a working liver
        share = rng.uniform(0.45, 0.65)                               # the rim shell's lesion share (edge voxels)
        liver = 1800.0
        rim_hbp = share * pre * gain + (1 - share)
        if rim_hbp * (100 - liver_fat) / (100 - fat) < t["hbp_uptake_ratio_min"]["value"]:
            continue  # only rims the water factor lifts to the liver's level
        met = fnh_like(rng, "m1")
        met["values"].update({"lesion.adc.lesion.median": low, "lesion.adc.rim.median": low,
                              "lesion.adc.reference.median": liver_adc, "lesion.t2.ratio": rng.uniform(1.15, 1.3),
                              "lesion.dwi_high_b.ratio": _dwi_ratio(rng.uniform(1.03, 1.06), low, liver_adc),
                              "lesion.ff_dixon.lesion.median": fat, "lesion.ff_dixon.reference.median": liver_fat,
                              "lesion.t1_pre.ratio": pre, "lesion.t1_hepatobiliary.ratio": pre * gain,
                              "lesion.t1_hepatobiliary.rim.median": liver * rim_hbp,
                              "lesion.t1_hepatobiliary.core.median": liver * pre * gain,
                              "lesion.t1_hepatobiliary.reference.median": liver})
        r = review([met], {}, ctx())
        assert item(r, "m1", "fat_containing_lesion")["suggested"] == "yes"
        assert item(r, "m1", "hbp_uptake")["suggested"] == "no"
        assert r["lesions"][0]["impression"]["category"] == "typical metastasis"
        fat_cases += 1
    assert fat_cases >= 5


def test_an_fnh_like_nodule_with_the_fnh_s_own_t2_is_not_left_indeterminate():
    """An FNH's T2 is 66 +/- 7 ms against the liver's 54 (S10: 1.22 +/- 0.13 times the liver's), so it often looks
    mildly brighter than the liver on T2; every haemangioma is at least 82 ms (1.52 times, S10-S13). A nodule of
    15 mm or more with arterial hyperenhancement, no washout, gadoxetate uptake and persistent portal venous
    enhancement is FNH-like when its T2 time is an FNH's, not a haemangioma's; up to checklist 1.6.0 the rule asked
    for no T2 hyperintensity at all (signal ratio < 1.10), and such a nodule was indeterminate."""
    rng = np.random.default_rng(53)
    for te, t2_liver, figures, les in persistent_fnh_like_draws(rng):
        for ratio, benign in ((rng.uniform(66 - 2 * 7, 66 + 2 * 7) / 54, True), (rng.uniform(82, 250) / 54, False)):
            les["values"]["lesion.t2.ratio"] = t2_signal_ratio(te, t2_liver, t2_liver * ratio)
            r = review([les], figures, ctx())
            assert item(r, "n1", "persistent_enhancement")["suggested"] == "yes"
            got = r["lesions"][0]["impression"]["category"]
            assert (got == FNH) is benign, (ratio, t2_liver, te, got)


def test_the_rim_s_gain_is_read_over_the_rim_s_own_pre_contrast_value():
    """Gadoxetate uptake of the rim is its HBP ratio over its own pre-contrast ratio (a subtraction image of the rim).
    Up to checklist 1.6.1 the segment's pre-contrast ratio stood for the rim's (measure.py did not read the pre-contrast
    T1 on the rim); the 3 mm rim shell mixes the lesion with the liver (share w), so for T1-bright tissue (FNH-like
    nodules are iso to mildly T1-hyperintense [G]) the rim's gain was under-read and its retention missed. Drawn:
    an FNH-like nodule with the rim pattern (S25: rim tissue gains like the liver or more, the centre less) in a liver
    of adequate function; the signal model gives every measured median, and the rim's gain must be the mixture's
    (w + (1 - w) p g) / (w + (1 - w) p), its retention read."""
    rng = np.random.default_rng(57)
    for _ in range(20):
        liver_re, p, w = rng.uniform(0.6, 1.2), rng.uniform(1.1, 1.3), rng.uniform(0.2, 0.6)
        g_rim, g_core = rng.uniform(1.0, 1.3), rng.uniform(0.4, 0.7)   # gain relative to the liver's
        pre_liver = rng.uniform(800, 1200)
        hbp_liver = pre_liver * (1 + liver_re)
        rim_pre, rim_hbp = w + (1 - w) * p, w + (1 - w) * p * g_rim    # lesion-to-liver ratios of the rim shell
        nodule = _hypervascular(rng, "n1", p, p * g_core)
        nodule["values"].update({
            "lesion.t1_pre.reference.median": pre_liver, "lesion.t1_pre.rim.median": pre_liver * rim_pre,
            "lesion.t1_hepatobiliary.reference.median": hbp_liver,
            "lesion.t1_hepatobiliary.rim.median": hbp_liver * rim_hbp,
            "lesion.t1_hepatobiliary.core.median": hbp_liver * p * g_core,
            "lesion.t2.ratio": rng.uniform(1.0, 1.08), "lesion.dwi_high_b.ratio": 1.0,
            "lesion.adc.lesion.median": rng.uniform(1300, 1600), "lesion.adc.reference.median": 1200.0})
        values = dict(nodule["values"])
        add_derived(values, {}, load_checklist()["derived"])
        assert abs(values["lesion.hbp_rim_gain"] - rim_hbp / rim_pre) < 1e-5
        r = review([nodule], {"study.hbp_liver_re": 100.0 * liver_re, "study.liver_spleen_ratio": 1.8}, ctx())
        assert item(r, "n1", "hbp_rim_retention")["suggested"] == "yes"


def test_the_t2_thresholds_uncertainty_is_the_spread_of_the_read_ratio():
    """lesion.t2_time_ratio turns a T2w signal ratio into a T2 ratio with an assumed liver T2 (46 ms at 1.5 T); the
    patient's own liver T2 is not measured (between-subject spread about 10 %: S14's normal limits 35-54 ms, read as
    mean +/- 2 SD) and the signal ratio has noise (5 %). For a lesion exactly at each T2 threshold the ratio the
    conversion reads, simulated over both, has a central 68 % interval whose half-width is the threshold's stated
    uncertainty within 15 % (up to checklist 1.6.3 it was 0.06 and 0.15: signal noise alone; the read ratio spreads
    0.10 and 0.37)."""
    doc = load_checklist()
    te, t2_liver = 85.0, doc["physics"]["liver_t2_ms_by_field"]["value"]["1.5"]
    rng = np.random.default_rng(85)
    for tid in ("t2_hemangioma_time_ratio_min", "t2_very_bright_time_ratio_min"):
        threshold = doc["thresholds"][tid]
        liver = t2_liver * rng.normal(1.0, 0.10, 4000)
        lesion = threshold["value"] * liver
        signal = np.exp(te / liver - te / lesion) * rng.normal(1.0, 0.05, liver.size)
        read = []
        for s in signal:
            values = {"lesion.t2.ratio": float(s), "study.t2_te_ms": te, "study.liver_t2_ms": t2_liver}
            add_derived(values, {}, doc["derived"])
            read.append(values["lesion.t2_time_ratio"])
        lo, hi = np.percentile(read, [15.87, 84.13])
        assert abs((hi - lo) / 2.0 / threshold["uncertainty"] - 1.0) < 0.15, (tid, (hi - lo) / 2.0)
