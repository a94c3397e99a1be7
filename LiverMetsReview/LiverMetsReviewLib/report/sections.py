"""The report's header, clinical context, maps and liver background, gathered as plain data from the study folder
(``dicom_sources.json`` when the study came from DICOM, ``roles.json``), the review's inputs and the lesions folder
(``measurements.json`` maps record, ``liver_figures.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..resources import read_json_file

# The header, in the order shown: (key in dicom_sources.json "header" or in study.sources.patient_identifiers, label).
# Identifiers are read from the DICOM files when the report is made; the study folder never stores them.
HEADER_TAGS = (("patient_name", "Patient name"), ("patient_id", "Patient ID"), ("patient_birth_date", "Birth date"),
               ("patient_sex", "Sex"), ("study_date", "Study date"), ("accession_number", "Accession number"),
               ("study_description", "Study description"), ("institution_name", "Institution"),
               ("manufacturer", "Manufacturer"), ("magnetic_field_strength_t", "Field strength (T)"))
# Maps a lesion is measured on and the technique section lists (the others are by-products: S0, subtraction...).
REPORTED_MAPS = ("adc", "pdff", "ff_dixon", "ff_chemical_shift", "re_arterial", "re_portal_venous",
                 "re_transitional", "re_hepatobiliary")
# The map family (pipeline.compute_study_maps's skipped keys) of each reported map; re_<phase>: enhancement_<phase>.
FAMILY = {"adc": "adc", "pdff": "pdff", "ff_dixon": "fat_dixon", "ff_chemical_shift": "fat_chemical_shift"}
# Checklist items that describe the enhancement pattern (the table's column lists those answered or suggested yes).
ENHANCEMENT_ITEMS = ("arterial_hyperenhancement", "arterial_rim_enhancement", "no_enhancement",
                     "persistent_enhancement", "washout", "peripheral_washout", "hbp_hypointense", "hbp_target",
                     "hbp_uptake")


def study_header(study: Path | None) -> dict[str, Any]:
    """{"source": sentence, "rows": [(label, value)]}: patient and study from DICOM when the study has sources."""
    if study is None:
        return {"source": "not from DICOM: no study folder was given", "rows": []}
    from ..study.sources import SOURCES, patient_identifiers, read_dicom_sources

    doc = read_dicom_sources(study)
    if doc is not None:
        found = {**(doc.get("header") or {}), **patient_identifiers(doc)}
        rows = [(label, found.get(key)) for key, label in HEADER_TAGS]
        return {"source": f"from the DICOM headers ({SOURCES}; identifiers read from the DICOM files now)",
                "rows": [(k, str(v)) for k, v in rows if v not in (None, "")]}
    index = read_json_file(study / "roles.json", "the study folder's roles.json")
    phantom = index.get("phantom")
    why = (f"not from DICOM: digital phantom (seed {phantom.get('seed')}, scenario {phantom.get('scenario')})"
           if isinstance(phantom, dict) else "not from DICOM: the study folder records no DICOM sources")
    return {"source": why, "rows": [("Study folder", str(study))]}


def clinical_context(review: dict[str, Any], study: Path | None) -> dict[str, Any]:
    """The clinical context the review used, else the study folder's clinical_context.json (said so)."""
    named = (review.get("inputs") or {}).get("context")
    path, origin = None, ""
    if named and Path(named).exists():
        path, origin = Path(named), "the context the review used"
    elif study is not None and (study / "clinical_context.json").exists():
        path, origin = study / "clinical_context.json", "the study folder (the review did not record a context)"
    if path is None:
        return {"origin": "no clinical context was given to the review", "rows": []}
    ctx = read_json_file(path, "clinical context")
    rows = []
    primary = " — ".join(str(v) for v in (ctx.get("primary_tumour"), ctx.get("primary_tumour_detail")) if v)
    rows.append(("Primary tumour", primary or "not given"))
    for th in ctx.get("systemic_therapies") or []:
        span = f"{th.get('start') or '?'} to {th.get('end') or 'ongoing'}"
        rows.append(("Systemic therapy", f"{th.get('regimen')} ({span})"))
    for th in ctx.get("locoregional_therapies") or []:
        what = f"{th.get('type')} {th.get('date') or ''}: {th.get('target') or ''}"
        rows.append(("Locoregional therapy", what.strip()))
    for key, label in (("liver_function", "Liver function"), ("bilirubin_umol_l", "Bilirubin (umol/L)"),
                       ("known_steatosis", "Known steatosis"), ("stem_cell_transplant_date", "Stem-cell transplant"),
                       ("prior_study_date", "Prior study"), ("other_history", "Other history")):
        if ctx.get(key) not in (None, ""):
            rows.append((label, "yes" if ctx[key] is True else "no" if ctx[key] is False else str(ctx[key])))
    return {"origin": f"from {origin} ({path.name})", "rows": rows}


def map_rows(mdoc: dict[str, Any], measured: set[str]) -> list[dict[str, Any]]:
    """One row per reported map: its method and inputs, or why it is missing."""
    maps, skipped = mdoc.get("maps"), mdoc.get("maps_not_computed") or {}
    rows = []
    for name in REPORTED_MAPS:
        meta = (maps or {}).get(name)
        if meta is not None:
            inputs = (f"b = {', '.join(f'{b:g}' for b in meta['b_values_used'])} s/mm2" if meta.get("b_values_used")
                      else f"TE {', '.join(f'{t:.2f}' for t in meta['echo_times_ms'])} ms" if meta.get("echo_times_ms")
                      else f"{meta['phase']} against t1_pre" if meta.get("phase") else "")
            rows.append({"map": name, "quantity": meta.get("quantity", ""), "units": meta.get("units", ""),
                         "method": meta.get("method_description") or meta.get("method") or "relative enhancement "
                         "100 x (post - pre) / pre", "inputs": inputs})
        elif name in measured:
            rows.append({"map": name, "why": "measured, but its method was not recorded (measured before the "
                                             "maps record existed)"})
        else:
            family = skipped.get(FAMILY.get(name) or "enhancement_" + name.removeprefix("re_"))
            rows.append({"map": name, "why": family or ("not computed for this review (the lesions were measured "
                         "without it)" if maps is not None else "not known: no lesion measurements were given")})
    return rows


def liver_background(review: dict[str, Any], figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the liver background: value (full precision) with its kind for formatting, or why it is missing."""
    s = review["study"]["summary"]

    def fig(key: str) -> float | None:
        return (figures.get(key) or {}).get("value")

    rows = [("Liver volume", "liver_volume", fig("liver_volume"), "liver not measured (no liver_figures.json)"),
            ("Background fat fraction (median)", "background_fat", s.get("background_fat_percent"), "no fat map"),
            ("Background fat fraction (IQR)", "background_fat", fig("fat_fraction_iqr"), "no fat map"),
            ("Liver HBP relative enhancement", "hbp_re", s.get("hbp_liver_re_percent"), "no HBP and pre-contrast T1"),
            ("Liver-to-spleen ratio (HBP)", "ratio", fig("liver_to_spleen_ratio_hbp"), "spleen not measured")]
    return [{"name": n, "kind": k, "value": v, "why": w} for n, k, v, w in rows]


def enhancement_pattern(items: list[dict[str, Any]]) -> str:
    """The enhancement items holding for a lesion (the reader's answer where given, else the suggestion)."""
    parts = []
    for i in items:
        if i["id"] in ENHANCEMENT_ITEMS and i.get("applicable"):
            answer = i.get("answer") or i.get("suggested")
            if answer == "yes":
                parts.append(i["name"] + (" (reader)" if i.get("answer") else ""))
    return "; ".join(parts) or "none of the pattern items holds"
