"""Ground truth of a generated phantom: the labelmap of organs and lesions, segment descriptions and the
JSON-able truth document (lesions with hallmarks and expected impressions, clinical context, acquisition).

Labels: organs 1..99 in the order of ``phantom_tissues.json`` ``organs``; lesions their catalogue ``label``
(101...). The labelmap lives on the truth grid (the fine grid the signals were computed on); a series'
own view is obtained by resampling with that series' breath-hold shift (see ``PhantomStudy.labelmap_on``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..anatomy import COUINAUD_ROMAN
from ..context import clinical_context_document
from ..resources import load_json
from ..series import Series
from .anatomy import Anatomy
from .lesions import catalogue
from .model import TissueModel
from .tissues import organ_table

ROMAN = COUINAUD_ROMAN
COUINAUD_COLORS = {1: [0.9, 0.6, 0.2], 2: [0.2, 0.6, 0.9], 3: [0.3, 0.8, 0.8], 4: [0.6, 0.4, 0.8],
                   5: [0.9, 0.5, 0.5], 6: [0.5, 0.8, 0.3], 7: [0.9, 0.8, 0.3], 8: [0.8, 0.4, 0.7]}


def structure_labels(anatomy: Anatomy, model: TissueModel, lesions: list[dict[str, Any]] | None = None
                     ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Labelmap (uint16, truth grid) with one label per organ and per lesion, and the segment list.

    ``lesions``: the study's lesions (default: the fixed catalogue)."""
    organs = organ_table()
    organ_label = {o["id"]: i + 1 for i, o in enumerate(organs)}
    lesion_list = catalogue()["lesions"] if lesions is None else lesions
    lesion_by_id = {les["id"]: les for les in lesion_list}
    lut = np.zeros(len(anatomy.compartment_names), np.uint16)
    for c in model.compartments:
        sid = c.info["structure"]
        lut[c.label] = organ_label[sid] if c.info["kind"] == "organ" else int(lesion_by_id[sid]["label"])
    labels = lut[anatomy.labels]
    present = set(np.unique(labels).tolist())
    term = catalogue()["terminology"]
    segments: list[dict[str, Any]] = []
    for o in organs:
        lab = organ_label[o["id"]]
        if lab in present:
            segments.append({"label": lab, "id": o["id"], "name": o["name"], "kind": "organ", "color": o["color"],
                             "terminology": _organ_terminology(o["terminology"])})
    for les in lesion_list:
        if int(les["label"]) in present:
            t = dict(term[les["terminology"]])
            t["anatomic_region"] = term["anatomic_region"]
            segments.append({"label": int(les["label"]), "id": les["id"], "name": les["name"], "kind": "lesion",
                             "color": les["color"], "lesion_type": les["type"], "terminology": t,
                             "tags": {"LiverMetsReview.LesionType": les["type"],
                                      "LiverMetsReview.ExpectedImpression": les["expected_impression"]}})
    return labels, segments


def _organ_terminology(t: dict[str, Any]) -> dict[str, Any]:
    out = {"category": t["category"], "type": t["type"]}
    if t.get("modifier"):
        out["modifier"] = t["modifier"]
    return out


def couinaud_segments() -> list[dict[str, Any]]:
    """Segment list for the Couinaud labelmap (1..8); the DICOM lists have no code per segment, so each is
    tagged as liver (the organ's code from the data) and named by its segment."""
    liver = next(o for o in organ_table() if o["id"] == "liver")
    return [{"label": k, "id": f"couinaud_{k}", "name": f"Couinaud segment {ROMAN[k]}", "kind": "couinaud",
             "color": COUINAUD_COLORS[k], "terminology": _organ_terminology(liver["terminology"])}
            for k in range(1, 9)]


def image_like(array: np.ndarray, grid: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(array)
    img.CopyInformation(grid)
    return img


def geometry(img: sitk.Image) -> dict[str, Any]:
    return {"size": list(img.GetSize()), "spacing_mm": list(img.GetSpacing()), "origin_mm": list(img.GetOrigin()),
            "direction": list(img.GetDirection())}


# Series whose noise-free compartment-to-liver signal ratio the truth reports (what a reader compares).
RATIO_ROLES = ("t1_in_phase", "t1_opposed_phase", "t2", "t1_pre", "t1_arterial", "t1_portal_venous",
               "t1_transitional", "t1_hepatobiliary")


def expected_signals(c, liver_label: int, acquisition: dict[str, Any]) -> dict[str, Any]:
    """Noise-free expectations for one compartment from the signal physics' facts (None when unavailable):
    signal relative to the liver per series, the two-point (IP/OP) fat fraction and the DWI signal ratio."""
    series = acquisition.get("series", {})

    def sig(role: str, label: int, k: int = 0) -> float | None:
        table = series.get(role, {}).get("noise_free_signal_by_label", {})
        vals = table.get(str(label))
        return float(vals[k]) if vals and len(vals) > k else None

    out: dict[str, Any] = {"to_liver": {}}
    for role in RATIO_ROLES:
        v, liv = sig(role, c.label), sig(role, liver_label)
        if v is not None and liv:
            out["to_liver"][role] = round(v / liv, 4)
    b_values = series.get("dwi", {}).get("b_values") or []
    if b_values:
        k = int(np.argmax(b_values))
        v, liv = sig("dwi", c.label, k), sig("dwi", liver_label, k)
        if v is not None and liv:
            out["to_liver"]["dwi_high_b"] = round(v / liv, 4)
    ip, op = sig("t1_in_phase", c.label), sig("t1_opposed_phase", c.label)
    if ip and op is not None:
        out["two_point_ff_percent"] = round(100.0 * (ip - op) / (2.0 * ip), 3)
    return out


def _compartment_doc(c, voxel_ml: float, counts: np.ndarray, liver_label: int,
                     acquisition: dict[str, Any]) -> dict[str, Any]:
    return {"name": c.info.get("compartment", c.name), "compartment_label": c.label,
            "volume_ml": round(float(counts[c.label]) * voxel_ml, 3),
            "params": {k: round(float(v), 4) for k, v in c.params.items()},
            "gd_ecs_mM": {k: round(float(v), 4) for k, v in c.gd_ecs_mM.items()},
            "gd_hep_mM": {k: round(float(v), 4) for k, v in c.gd_hep_mM.items()},
            "expected_noise_free": expected_signals(c, liver_label, acquisition),
            **({"patch_of": c.info["patch_of"]} if c.info.get("patch_of") else {})}


_HBP_HALLMARKS = {"hbp_hypointense", "hbp_target", "hbp_iso_or_hyperintense"}


def _lesion_pitfalls(les: dict[str, Any], scen_pitfalls: list[str]) -> list[str]:
    """The lesion's own pitfalls plus the scenario's; reduced hepatobiliary function only concerns lesions
    whose expected hallmarks are read on the hepatobiliary phase."""
    pitfalls = list(les["expected_pitfalls"])
    for p in scen_pitfalls:
        if p == "low_hbp_function" and not _HBP_HALLMARKS & set(les["expected_hallmarks"]):
            continue
        if p not in pitfalls:
            pitfalls.append(p)
    return pitfalls


def _per_series_centres(centre: list[float], series: list[Series], shifts: dict[str, list[float]]) -> dict:
    """Where the lesion centre appears in each series (its breath-hold shift added), in mm and voxel index."""
    out = {}
    for s in series:
        p = [c + d for c, d in zip(centre, shifts.get(s.role, [0.0, 0.0, 0.0]), strict=True)]
        idx = s.image.TransformPhysicalPointToContinuousIndex(p)
        out[s.role] = {"centre_mm": [round(v, 3) for v in p], "centre_index": [round(v, 3) for v in idx]}
    return out


def build_truth(*, seed: int, scenario: dict[str, Any], size: str, field_strength_t: float,
                b_values: list[float], snr: float | None, breath_hold_shift_mm: float, anatomy: Anatomy,
                model: TissueModel, lesions: list[dict[str, Any]], labels: np.ndarray, series: list[Series],
                acquisition: dict[str, Any]) -> dict[str, Any]:
    """The truth document (JSON-able). Units and the LPS convention are stated inside it."""
    cat = catalogue()
    liver = next(c for c in model.compartments if c.name == "liver")
    voxel_ml = float(np.prod(anatomy.grid.GetSpacing())) / 1000.0
    counts = np.bincount(anatomy.labels.ravel(), minlength=len(anatomy.compartment_names))
    by_structure: dict[str, list] = {}
    for c in model.compartments:
        by_structure.setdefault(c.info["structure"], []).append(c)
    label_counts = np.bincount(labels.ravel().astype(np.int64), minlength=200)
    scen_pitfalls = list(scenario.get("scenario_pitfalls", []))
    shifts = {role: f.get("shift_mm", [0.0, 0.0, 0.0]) for role, f in acquisition.get("series", {}).items()}

    lesion_docs = []
    for les in lesions:
        centre = [float(v) for v in les["centre_mm"]]
        pitfalls = _lesion_pitfalls(les, scen_pitfalls)
        per_series = _per_series_centres(centre, series, shifts)
        lesion_docs.append({
            "id": les["id"], "type": les["type"], "name": les["name"], "label": int(les["label"]),
            "centre_mm": centre, "diameter_mm": float(les["diameter_mm"]),
            "semi_axes_mm": [float(v) for v in (les.get("semi_axes_mm") or [les["diameter_mm"] / 2.0] * 3)],
            "couinaud_segment": int(les["couinaud_segment"]),
            "couinaud_name": ROMAN[int(les["couinaud_segment"])] + (les.get("couinaud_subsegment", "")[2:]
                                                                     if les.get("couinaud_subsegment") else ""),
            "volume_ml": round(float(label_counts[int(les["label"])]) * voxel_ml, 3),
            "typical_primary": les.get("typical_primary"), "treated_by": les.get("treated_by"),
            "compartments": [_compartment_doc(c, voxel_ml, counts, liver.label, acquisition)
                             for c in by_structure.get(les["id"], [])],
            "expected_hallmarks": list(les["expected_hallmarks"]), "expected_pitfalls": pitfalls,
            "expected_impression": les["expected_impression"], "per_series": per_series,
            "shape": les.get("shape", "sphere"), "rot_z_deg": float(les.get("rot_z_deg", 0.0)),
            **({"outline": les["outline"]} if les.get("outline") else {}),
            **({"template": les["template"], "drawn": les["drawn"]} if "drawn" in les else {}),
        })
    organ_docs = [{"id": o["id"], "name": o["name"], "label": i + 1,
                   "volume_ml": round(float(label_counts[i + 1]) * voxel_ml, 2),
                   "compartments": [_compartment_doc(c, voxel_ml, counts, liver.label, acquisition)
                                    for c in by_structure[o["id"]]]}
                  for i, o in enumerate(organ_table())
                  if by_structure.get(o["id"]) and label_counts[i + 1] > 0]  # absent organs (e.g. ascites) left out
    tissues = load_json("phantom_tissues.json")
    return {
        "format": "livermets-phantom-truth", "version": 1,
        "software": {"name": "LiverMetsReview", "version": __version__},
        "seed": int(seed), "size": size, "field_strength_t": float(field_strength_t),
        "b_values": [float(b) for b in b_values],
        "snr_override": None if snr is None or math.isinf(snr) else float(snr),
        "noise_free": snr is not None and math.isinf(snr), "breath_hold_shift_max_mm": breath_hold_shift_mm,
        "scenario": {"id": scenario["id"], "label": scenario["label"], "description": scenario["description"],
                     "liver_pdff_percent": float(scenario["liver_pdff_percent"]),
                     "hepatocyte_uptake_factor": float(scenario.get("hepatocyte_uptake_factor", 1.0)),
                     "anatomy": scenario.get("anatomy", {}), "scenario_pitfalls": scen_pitfalls},
        "clinical_context": clinical_context_document(scenario["clinical_context"]),
        "coordinate_system": "LPS",
        "coordinate_note": "world coordinates in mm, LPS (x to the patient's left, y posterior, z superior), as "
                           "DICOM/ITK; centre_mm is where the lesion is in the truth grid; per_series gives where it "
                           "appears in each series (breath-hold shift added) and its continuous voxel index (i, j, k)",
        "units": {"length": "mm", "volume": "mL", "t1_ms": "ms", "t2_ms": "ms", "t2star_ms": "ms",
                  "adc": "10^-6 mm^2/s", "pdff": "percent", "gadoxetate": "mmol/L of tissue", "pd": "relative 0..1",
                  "bilirubin": "umol/L"},
        "truth_grid": geometry(anatomy.grid),
        "labelmap": {"grid": "truth_grid", "file": "ground_truth_labels.nrrd",
                     "segmentation": "ground_truth.seg.nrrd", "labels": "organs 1..99, lesions 101..",
                     "note": "resample with nearest neighbour and the series' shift_mm to view it on a series grid"},
        "couinaud": {"file": "couinaud.seg.nrrd", "grid": "truth_grid",
                     "method": "vertical planes through the IVC along the right/middle/left hepatic veins; horizontal "
                               "portal plane (segments II/III split at their own level); caudate ellipsoid = I",
                     "landmarks": anatomy.landmarks},
        "liver_background": {"pdff_percent": float(liver.params["pdff_percent"]), "params": liver.params,
                             "gd_ecs_mM": liver.gd_ecs_mM, "gd_hep_mM": liver.gd_hep_mM,
                             "expected_noise_free": expected_signals(liver, liver.label, acquisition)},
        "expected_noise_free_note": "compartment signal / liver signal per series (dwi_high_b: the highest b-value) "
                                    "and the two-point fat fraction (IP-OP)/(2 IP) in percent, from the noise-free "
                                    "signal physics of this study",
        "organs": organ_docs,
        "lesions": lesion_docs,
        "hallmark_definitions": cat["hallmarks"], "pitfall_definitions": cat["pitfalls"],
        "impressions": cat["impressions"],
        "sources": {"tissues": tissues["sources"], "lesions": cat["sources"],
                    "scenarios": load_json("phantom_scenarios.json")["sources"]},
        "acquisition": acquisition,
    }
