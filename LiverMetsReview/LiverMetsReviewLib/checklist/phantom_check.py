"""The checklist on a phantom study, automatic suggestions only: phantom -> seeds at the truth centres ->
lesion segmentation and measurement (``lesions`` package) -> engine; then the impression beside the truth.

Used by the validation script (``benchmarks/validate_checklist.py``), the tests and the demo. The truth is
read only here, to place the seeds, give the liver mask, the Couinaud map and the portal bifurcation to the
measurements (as a reader's segmentation and landmark would) and compare afterwards; the engine never sees it.
The study figures are the real ``livermets liver`` figures (``lesions/liver_figures.py``) on that mask.
"""

from __future__ import annotations

from typing import Any

from ..errors import LiverMetsError


def measure_phantom_lesions(study: Any, maps: Any | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Engine inputs for every lesion that segments, and why the others could not be measured."""
    import SimpleITK as sitk

    from ..lesions.markups import Seed
    from ..lesions.review import review_lesions
    from ..pipeline import LESION_MAPS, compute_study_maps
    from .values import lesion_values

    if maps is None:
        maps = compute_study_maps(study.series, which=LESION_MAPS)
    liver_label = next(s["label"] for s in study.segments if s["id"] == "liver")
    liver = sitk.Cast(study.labelmap == liver_label, sitk.sitkUInt8)
    seeds = [Seed(les["id"], tuple(les["centre_mm"])) for les in study.truth["lesions"]]
    failed: dict[str, str] = {}   # a refused lesion is noted and the others are measured
    if not seeds:
        return [], failed
    try:
        review = review_lesions(study.series, seeds, liver_mask=liver, couinaud=study.couinaud, maps=maps,
                                refused=failed)
    except LiverMetsError:
        if not failed:
            raise
        return [], failed   # every seed refused
    out = []
    for it in review.lesions:
        values, why = lesion_values(it.measures.measurements)
        if values.get("lesion.volume") is None:
            failed[it.seed.label] = why.get("lesion.volume", "empty segment")
            continue
        out.append({"id": it.seed.label, "values": values, "why": why,
                    "couinaud_segment": it.measures.couinaud_segment,
                    "couinaud_border": it.measures.couinaud_border})
    return out, failed


def phantom_liver_figures(study: Any) -> dict[str, Any]:
    """The ``livermets liver`` figures of a phantom (format ``livermets-liver-figures``): the truth's liver mask and
    portal bifurcation stand for the reader's, the fat map is the Dixon pair's, the spleen is found automatically
    on the hepatobiliary phase (as the CLI does on the liver's series)."""
    import SimpleITK as sitk

    from ..lesions.liver_figures import liver_figures
    from ..maps.fat import dixon_fat

    images = {s.role: s.image for s in study.series}
    liver_label = next(s["label"] for s in study.segments if s["id"] == "liver")
    liver = sitk.Cast(study.labelmap == liver_label, sitk.sitkUInt8)
    dixon = {"dixon_water", "dixon_fat"} <= set(images)
    fat = dixon_fat(images["dixon_water"], images["dixon_fat"]).ff if dixon else None
    bif = study.truth["couinaud"]["landmarks"].get("portal_bifurcation_mm")
    figures = liver_figures(liver, images, fat_map=fat, landmarks={"portal_bifurcation": bif} if bif else None,
                            find_spleen_on="t1_hepatobiliary")
    return {"format": "livermets-liver-figures", "version": 1, "figures": figures}


def review_phantom(study: Any, maps: Any | None = None, answers: dict | None = None,
                   lesions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Engine output for a phantom study plus, per lesion, the truth's expected impression beside it, and the engine
    inputs (``inputs``). ``lesions``: engine inputs measured elsewhere (e.g. the demo's lesions stage); else measured
    here."""
    from .data import load_checklist
    from .engine import review
    from .inputs import study_figures_from_liver, t2_figures

    failed: dict[str, str] = {}
    if lesions is None:
        lesions, failed = measure_phantom_lesions(study, maps)
    figures = study_figures_from_liver(phantom_liver_figures(study))
    t2 = next((s.meta for s in study.series if s.role == "t2"), None)
    figures.update(t2_figures(t2, load_checklist()["physics"]["liver_t2_ms_by_field"]["value"]))
    result = review(lesions, figures, study.truth["clinical_context"], answers)
    truth = {les["id"]: les for les in study.truth["lesions"]}
    rows = []
    for les in result["lesions"]:
        t = truth.get(les["id"])
        if t is None:  # a lesion the reader added that the phantom does not know
            continue
        fired = [r["id"] for r in les["items"] if r["applicable"] and r["suggested"] == "yes"]
        shown = [f"{r['id']}={r['suggested']}" + (f" (fell {r['borderline']})" if r.get("borderline") else "")
                 + f": {r['explanation']}" for r in les["items"] if r["applicable"] and r["evidence"]]
        rows.append({"id": les["id"], "type": t["type"], "expected": t["expected_impression"],
                     "got": les["impression"]["category"], "rule": les["impression"]["rule"],
                     "reasons": les["impression"]["reasons"], "fired": fired,
                     "expected_pitfalls": t["expected_pitfalls"], "evidence": shown})
    return {"result": result, "rows": rows, "not_measured": failed, "inputs": lesions}


# The phantom's pitfall names (ground_truth.json expected_pitfalls) and the checklist item naming each one.
PITFALL_ITEMS = {
    "t2_shine_through": "t2_shine_through",
    "flash_filling_hemangioma_vs_hypervascular_metastasis": "hypervascular_mimic",
    "hbp_pseudo_washout": "hbp_pseudo_washout", "cyst_mimic": "cyst", "focal_fat_sparing": "focal_fat_sparing",
    "hypersteatosis": "focal_hypersteatosis", "fat_sparing_mimic": "fat_sparing_mimic",
    "fnh_like_nodule_after_oxaliplatin": "fnh_like_nodule", "t1_bright_ablation_debris": "ablation_debris",
    "post_ablation_rim": "post_ablation_rim", "fat_containing_metastasis": "fat_containing_lesion",
    "subcentimetre_sensitivity": "subcentimetre", "low_hbp_function": "study:low_hbp_function",
    "pseudocirrhosis": "study:pseudocirrhosis",
}


def pitfall_fired(row: dict[str, Any], study_items: list[dict[str, Any]], pitfall: str) -> bool | None:
    """Whether the item naming ``pitfall`` suggests yes (None: the pitfall has no item)."""
    item = PITFALL_ITEMS.get(pitfall)
    if item is None:
        return None
    if item.startswith("study:"):
        return any(r["id"] == item[6:] and r["suggested"] == "yes" for r in study_items)
    return item in row["fired"]


def review_lines(out: dict[str, Any]) -> list[str]:
    """Every lesion's impression beside the truth's and the items that drove it (from :func:`review_phantom`)."""
    rows = out["rows"]
    agree = sum(r["got"] == r["expected"] for r in rows)
    lines = [f"checklist review (automatic suggestions; evidence for a reader, not a diagnosis): impression = truth "
             f"for {agree}/{len(rows)} lesions"]
    for r in rows:
        mark = "=" if r["got"] == r["expected"] else "!"
        drove = ", ".join(dict.fromkeys(x["condition"] for x in r["reasons"])) or "no rule held"
        lines.append(f"  {mark} {r['id']:<22} {r['got']:<38} truth: {r['expected']:<38} by: {drove}")
    for lid, why in out["not_measured"].items():
        lines.append(f"  ? {lid:<22} not measured: {why}")
    study = [f"{i['id']}={i['suggested']}" for i in out["result"]["study"]["items"] if i["applicable"]]
    lines.append(f"  study: {', '.join(study)}")
    return lines


def truth_markdown(out: dict[str, Any]) -> str:
    """A Markdown table of the impressions against the phantom's truth (the demo's review.md appendix)."""
    lines = ["## Against the phantom's ground truth", "", "| lesion | type | impression | truth | driven by |",
             "|---|---|---|---|---|"]
    for r in out["rows"]:
        drove = ", ".join(dict.fromkeys(x["condition"] for x in r["reasons"])) or "no rule held"
        lines.append(f"| {r['id']} | {r['type']} | {r['got']} | {r['expected']} | {drove} |")
    lines += [f"| {lid} | | not measured | | {why} |" for lid, why in out["not_measured"].items()]
    return "\n".join(lines) + "\n"


def demo_review_lines(study: Any, maps: Any | None = None) -> list[str]:
    """Lines for the demo's end: every lesion's impression beside the truth's and the items that drove it."""
    return review_lines(review_phantom(study, maps))
