"""Gather what a report shows from the review folder, the lesions folder and the study folder, and write it.

``review.json`` (``livermets review``) holds the impressions and the reader's answers; ``measurements.json``,
``lesions.seg.nrrd`` and ``liver_figures.json`` (``livermets measure``) the numbers, outlines and liver figures;
the study folder (``roles.json``) the series the key images are cut from. The lesions folder defaults to the
review's ``lesions_from`` and the study folder to the one ``liver_figures.json`` names.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checklist.report import pitfall_names
from ..errors import LiverMetsError
from ..resources import read_json_file
from .sections import clinical_context, enhancement_pattern, liver_background, map_rows, study_header

# Key-image strip: (channel key in measurements.json "channels", default study role, caption).
STRIP = (("hbp", "t1_hepatobiliary", "HBP"), ("arterial", "t1_arterial", "Arterial"),
         ("portal_venous", "t1_portal_venous", "Portal venous"), ("t2", "t2", "T2"),
         ("dwi_high_b", "dwi", "DWI high b"), ("adc", "adc_scanner", "ADC"))
ADC_IMAGES = ("adc", "adc_scanner")
FAT_IMAGES = ("pdff", "ff_dixon", "ff_chemical_shift")
STATEMENT = ("This report was prepared with LiverMetsReview. Its measurements and suggestions support the "
             "radiologist's reading; they do not replace the radiologist's judgement, and nothing in it is a "
             "diagnosis on its own.")


@dataclass
class ReportInputs:
    review_dir: Path
    lesions_dir: Path | None = None
    study_dir: Path | None = None


def _review(folder: Path) -> dict[str, Any]:
    path = folder / "review.json" if folder.is_dir() else folder
    doc = read_json_file(path, "the review.json that 'livermets review' writes")
    if not isinstance(doc, dict) or not isinstance(doc.get("lesions"), list) or "study" not in doc:
        raise LiverMetsError(f"{path} is not a review; give the output folder of 'livermets review'")
    return doc


def _locate(inputs: ReportInputs, review: dict[str, Any]) -> tuple[Path | None, Path | None]:
    """The lesions and study folders: given, else those review.json's ``inputs`` records, else found."""
    recorded = review.get("inputs") or {}
    named = recorded.get("lesions") or review.get("lesions_from")
    lesions = inputs.lesions_dir or (Path(named) if named else None)
    if lesions is not None and not (lesions / "measurements.json").exists():
        if inputs.lesions_dir is not None:
            raise LiverMetsError(f"{lesions} holds no measurements.json; give the output folder of 'livermets measure'")
        lesions = None
    study = inputs.study_dir
    if study is None and recorded.get("study") and (Path(recorded["study"]) / "roles.json").exists():
        study = Path(recorded["study"])
    figs = lesions / "liver_figures.json" if lesions else None
    if study is None and figs is not None and figs.exists():
        named = read_json_file(figs, "liver figures").get("study")
        study = Path(named) if named and (Path(named) / "roles.json").exists() else None
    if inputs.study_dir is not None and not (study / "roles.json").exists():
        raise LiverMetsError(f"{study} holds no roles.json; give the study folder 'livermets load' or 'phantom' wrote")
    return lesions, study


def _pick(values: dict[str, Any], why: dict[str, str], keys: list[str], missing: str) -> dict[str, Any]:
    for k in keys:
        if values.get(k) is not None:
            return {"value": values[k], "source": k}
    reasons = [why[k] for k in keys if k in why]
    return {"value": None, "why": reasons[0] if reasons else missing}


def _lesion_row(les: dict[str, Any], meas: dict[str, Any] | None) -> dict[str, Any]:
    from ..checklist.values import lesion_values

    imp = les["impression"]
    row = {"id": les["id"], "segment": les.get("couinaud_segment"), "impression": imp["category"],
           "wording": imp.get("wording"), "recommendation": imp.get("recommendation") or "",
           "long_axis": {"value": les.get("long_axis_mm"), "why": "not measured"}}
    if meas is None:
        gone = "no lesion measurements were given (use --lesions)"
        row["segment_border"] = None
        row.update(short_axis={"value": None, "why": gone}, volume={"value": None, "why": gone},
                   adc={"value": None, "why": gone}, fat={"value": None, "why": gone})
        return row
    row["segment_border"] = meas.get("couinaud_border")
    values, why = lesion_values(meas.get("measurements", []))
    row["short_axis"] = _pick(values, why, ["lesion.short_axis"], "short axis not measured")
    row["volume"] = _pick(values, why, ["lesion.volume"], "volume not measured")
    row["adc"] = _pick(values, why, [f"lesion.{i}.lesion.median" for i in ADC_IMAGES],
                       "no ADC map or scanner ADC series in the study")
    row["fat"] = _pick(values, why, [f"lesion.{i}.lesion.median" for i in FAT_IMAGES],
                       "no fat map (PDFF, Dixon or in/opposed phase) in the study")
    return row


def _readable(item: dict[str, Any]) -> str:
    """The item's evidence in words, e.g. "HBP lesion-to-liver ratio 0.51 < 0.90" (checklist >= 1.4 writes a
    ``text`` beside each condition's machine fields; an older review.json has none and keeps its explanation)."""
    return "; ".join(c["text"] for c in item.get("evidence") or [] if c.get("text"))


def _drivers(les: dict[str, Any]) -> dict[str, Any]:
    """The reasons of the impression (each item once, where it first drove it: an item may stand in two conditions
    of the rule), the reader's answers and the applicable items still unanswered."""
    items = {i["id"]: i for i in les["items"]}
    first: dict[str, dict[str, Any]] = {}
    for r in les["impression"].get("reasons", []):
        first.setdefault(r["item"], r)
    reasons = [{"item": r["item"], "name": items.get(r["item"], {}).get("name", r["item"]),
                "answer": r.get("answer"), "by": "reader" if r.get("by") == "reader" else "automatic suggestion",
                "evidence": _readable(items.get(r["item"], {})) or r.get("evidence") or ""}
               for r in first.values()]
    answered = [{"name": i["name"], "answer": i["answer"], "suggested": i["suggested"], "note": i.get("note") or ""}
                for i in les["items"] if i.get("answer")]
    open_ = [{"name": i["name"], "suggested": i["suggested"]} for i in les["items"]
             if i.get("applicable") and not i.get("answer")]
    return {"reasons": reasons, "answered": answered, "unanswered": open_}


def _study_items(review: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The study-level checklist items: answered by the reader, and applicable ones still unanswered."""
    items = review["study"].get("items") or []
    return {"answered": [{"name": i["name"], "answer": i["answer"], "suggested": i["suggested"]}
                         for i in items if i.get("answer")],
            "unanswered": [{"name": i["name"], "suggested": i["suggested"]}
                           for i in items if i.get("applicable") and not i.get("answer")]}


def _series_rows(study: Path) -> list[dict[str, Any]]:
    index = read_json_file(study / "roles.json", "the study folder's roles.json")
    rows = []
    for s in index.get("series", []):
        meta = s.get("meta") or {}
        bs = sorted({m.get("b_value") for m in s.get("stack_meta") or [] if m.get("b_value") is not None})
        tes = sorted({round(m["echo_time_ms"], 2) for m in s.get("stack_meta") or [] if m.get("echo_time_ms")})
        rows.append({"role": s.get("role"), "description": meta.get("description") or "",
                     "field_strength_t": meta.get("field_strength_t"), "b_values": bs,
                     "echo_times_ms": tes or ([round(meta["echo_time_ms"], 2)] if meta.get("echo_time_ms") else []),
                     "repetition_time_ms": meta.get("repetition_time_ms")})
    return rows


def gather_report(inputs: ReportInputs) -> dict[str, Any]:
    """Everything the report shows, as plain data (no images yet)."""
    review = _review(inputs.review_dir)
    lesions_dir, study_dir = _locate(inputs, review)
    mdoc = read_json_file(lesions_dir / "measurements.json", "lesion measurements") if lesions_dir else {}
    by_id = {str(m["id"]): m for m in mdoc.get("lesions", [])}
    liver = {}
    if lesions_dir and (lesions_dir / "liver_figures.json").exists():
        liver = read_json_file(lesions_dir / "liver_figures.json", "liver figures").get("figures") or {}
    series = _series_rows(study_dir) if study_dir else []
    lesions = [{**_lesion_row(les, by_id.get(les["id"])), **_drivers(les), "pattern": enhancement_pattern(les["items"]),
                "progress": les.get("progress") or {}, "record": by_id.get(les["id"])} for les in review["lesions"]]
    measured = {r["image"] for m in mdoc.get("lesions", []) for r in m.get("measurements", [])}
    return {"checklist_version": review.get("checklist_version"), "summary": review["study"]["summary"],
            "pitfall_names": pitfall_names(review),
            "study_progress": review["study"].get("progress") or {}, "header": study_header(study_dir),
            "context": clinical_context(review, study_dir), "series": series,
            "maps": map_rows(mdoc, measured) if lesions_dir else [], "liver": liver_background(review, liver),
            "study_items": _study_items(review), "lesions": lesions,
            "channels": mdoc.get("channels") or {}, "lesions_dir": lesions_dir, "study_dir": study_dir,
            "statement": STATEMENT}


def key_images(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """{lesion id: [{caption, png (base64) or why}]} for the strip of each lesion."""
    from .strip import lesion_strips

    return lesion_strips(data)


FORMATS = ("html", "pdf", "txt", "dicom")


def write_report(inputs: ReportInputs, out_dir: str | Path, formats: tuple[str, ...] = ("html", "txt"),
                 qt: Any = None, notes: list[str] | None = None) -> list[Path]:
    """Write ``report.html``, ``report.pdf`` (Qt: ``qt`` is Slicer's module, else PySide6 is imported) and/or
    ``report.txt`` and (``"dicom"``) ``seg.dcm`` + ``sr.dcm`` into ``out_dir`` (atomically); returns the files
    written. When the PDF cannot be made (no PySide6 on the command line) the others are still written and the
    reason is appended to ``notes``, or raised as LiverMetsError after writing them when ``notes`` is None."""
    from ..io.atomic import write_text_atomic
    from .html import report_html
    from .text import report_text

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LiverMetsError(f"{out} exists and is not a folder; give a folder for the report")
    data = gather_report(inputs)
    written = []
    html = report_html(data, key_images(data)) if {"html", "pdf"} & set(formats) else ""
    if "html" in formats:
        written.append(write_text_atomic(out / "report.html", html))
    if "txt" in formats:
        written.append(write_text_atomic(out / "report.txt", report_text(data)))
    if "pdf" in formats:
        from .pdf import html_to_pdf, pyside_qt

        try:
            written.append(html_to_pdf(qt if qt is not None else pyside_qt(), html, out / "report.pdf"))
        except LiverMetsError as exc:
            if notes is None:
                raise
            notes.append(str(exc))
    if "dicom" in formats:  # last: a study without DICOM sources refuses SEG/SR, the other files are kept
        from .dicom_export import write_dicom

        try:
            written.extend(write_dicom(inputs, out))
        except LiverMetsError as exc:
            if not written:
                raise
            raise LiverMetsError(f"{exc} ({', '.join(f.name for f in written)} written to {out})") from exc
    return written


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")
