"""A review's lesions as a DICOM SR TID 1500 Measurement Report (Comprehensive 3D SR).

One TID 1411 group per lesion: tracking identifier = the lesion id (and the SEG segment's tracking UID),
the segment it measures (ReferencedSegment + the source series), finding type = the segment's property type,
finding site = liver; measurements = the ``measurements.json`` rows named in ``dicom_export.json``: the
diameters and volume, and per map the lesion's statistics (derivation = the statistic's code, method = which
map or series, both from the tables); qualitative evaluation = the impression as a code (99LMR, one per
category) plus its wording and recommendation as text. Numbers are written as stored in measurements.json.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import LiverMetsError
from ..resources import load_json
from .dicom_seg import coded


def impression_code(category: str, spec: dict[str, Any]) -> tuple[str, str, str]:
    """A checklist category ("probably benign: cyst") as its private code (``dicom_export.json``)."""
    names = spec["impression"]
    value = names["values"].get(category)
    if value is None:
        raise LiverMetsError(f"impression '{category}' has no code in dicom_export.json; add it there")
    return names["value_scheme"], value, category[:64]


def _rows(lesion: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The lesion's measurement rows that go into the SR (valued ones only), in a stable order."""
    stats = spec["statistics"]
    out = []
    for r in lesion.get("measurements", []):
        if r.get("value") is None or not math.isfinite(float(r["value"])):
            continue
        if r["quantity"] in spec["geometry"] and not r.get("statistic"):
            out.append(r)
        elif (r["quantity"] in stats["quantities"] and r.get("region") == stats["region"]
              and r.get("statistic") in stats["statistics"] and r.get("image") in spec["methods"]):
            out.append(r)
    return out


def measurement(hd: Any, row: dict[str, Any], spec: dict[str, Any]) -> Any:
    """One TID 300 measurement from a measurements.json row (codes from quantities.json, units from the table)."""
    quantities = load_json("quantities.json")
    q = quantities["quantities"][row["quantity"]]
    unit = spec["units"].get(q["unit"][1])
    if unit is None:
        raise LiverMetsError(f"unit '{q['unit'][1]}' of {row['quantity']} has no DICOM unit in dicom_export.json")
    extra: dict[str, Any] = {}
    if row.get("statistic"):
        extra["derivation"] = coded(hd, quantities["statistics"][row["statistic"]])
        extra["method"] = coded(hd, spec["methods"][row["image"]])
    return hd.sr.Measurement(name=coded(hd, q["quantity"]), value=float(row["value"]), unit=coded(hd, unit), **extra)


def _impression_items(hd: Any, impression: dict[str, Any], spec: dict[str, Any]) -> list[Any]:
    names = spec["impression"]
    text = impression.get("wording") or impression["category"]
    items = [hd.sr.TextContentItem(name=coded(hd, names["name"]), value=str(text)[:1024],
                                   relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)]
    if impression.get("recommendation"):
        items.append(hd.sr.TextContentItem(name=coded(hd, names["recommendation"]),
                                           value=str(impression["recommendation"])[:1024],
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return items


def lesion_group(hd: Any, lesion: dict[str, Any], measured: dict[str, Any], seg: Any, segment: dict[str, Any],
                 series_uid: str, spec: dict[str, Any]) -> Any:
    impression = lesion["impression"]
    names = spec["impression"]
    evaluation = hd.sr.QualitativeEvaluation(
        name=coded(hd, names["name"]), value=coded(hd, impression_code(impression["category"], spec)))
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=segment["tracking_uid"], identifier=str(lesion["id"])),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=segment["number"],
            source_series=hd.sr.SourceSeriesForSegmentation(series_uid)),
        finding_type=segment["type"], finding_sites=[hd.sr.FindingSite(coded(hd, spec["finding_site"]))],
        measurements=[measurement(hd, r, spec) for r in _rows(measured, spec)],
        qualitative_evaluations=[evaluation])
    group[0].ContentSequence.extend(_impression_items(hd, impression, spec))
    return group


def build_sr(hd: Any, src: Any, seg: Any, numbers: dict[str, dict[str, Any]], spec: dict[str, Any]) -> Any:
    """The Comprehensive 3D SR holding the TID 1500 report of every reviewed lesion that has a segment."""
    measured = {str(m["id"]): m for m in src.measurements.get("lesions", [])}
    groups = []
    for lesion in src.review["lesions"]:
        lid = str(lesion["id"])
        if lid not in numbers or lid not in measured:
            raise LiverMetsError(f"lesion '{lid}' of the review has no segment or measurements in {src.seg_path.parent}"
                                 "; give the lesions folder the review was made from (--lesions)")
        groups.append(lesion_group(hd, lesion, measured[lid], seg, numbers[lid], src.series["series_uid"], spec))
    eq = spec["equipment"]
    device = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=str(hd.UID()), name="LiverMetsReview", manufacturer_name=eq["manufacturer"],
            model_name=eq["model"]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=coded(hd, spec["procedure_reported"]), imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *src.datasets], content=report[0], series_instance_uid=hd.UID(),
        series_number=spec["series_numbers"]["sr"], sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=eq["manufacturer"], is_complete=True, is_final=False, is_verified=False)
    sr.SeriesDescription = spec["series_descriptions"]["sr"]
    return sr
