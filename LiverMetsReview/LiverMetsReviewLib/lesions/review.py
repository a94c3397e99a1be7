"""A lesion review in one call: seeds -> segments -> measurements, and the files Slicer opens.

``review_lesions(series, seeds, ...)`` is the Slicer-free ``f(images, seeds, options) -> segments + table``;
``write_review`` writes ``lesions.seg.nrrd`` (every lesion + the liver, with terminology), ``lesions.mrk.json``
(seeds), ``diameters.mrk.json`` (a line per diameter), ``measurements.tsv`` and ``measurements.json``.
Lesions that touch are separated at the half-way point between their seeds (each contested voxel goes to the
nearest seed), and the review says so; a seed that ends up with no voxel of its own is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError
from ..resources import load_json
from .channels import lesion_channels
from .couinaud import ROMAN
from .lps import points_lps
from .markups import Line, Seed, write_lines, write_seeds
from .measure import LesionMeasures, StudyContext, measure_lesion, prepare_images, study_images
from .seg_file import write_layered_segmentation
from .segment import LesionSegmentation, segment_lesion
from .tables import write_measurements

TERMINOLOGY = "lesion_terminology.json"


def terminology_for(kind: str | None) -> tuple[dict[str, Any], list[float]]:
    """Terminology entry and colour (0..1) of a lesion kind of ``lesion_terminology.json`` (default: lesion)."""
    doc = load_json(TERMINOLOGY)
    kind = kind or "lesion"
    for cat in doc["SegmentationCodes"]["Category"]:
        for t in cat["Type"]:
            if t.get("lmrKind") == kind:
                term = {"context": doc["SegmentationCategoryTypeContextName"],
                        "category": [cat["CodingSchemeDesignator"], cat["CodeValue"], cat["CodeMeaning"]],
                        "type": [t["CodingSchemeDesignator"], t["CodeValue"], t["CodeMeaning"]]}
                if kind != "liver":
                    term["anatomic_region"] = doc["lmrAnatomicRegion"]
                return term, [c / 255.0 for c in t["recommendedDisplayRGBValue"]]
    kinds = [t["lmrKind"] for c in doc["SegmentationCodes"]["Category"] for t in c["Type"]]
    raise LiverMetsError(f"lesion type '{kind}' is unknown; use one of {', '.join(kinds)}")


@dataclass
class ReviewedLesion:
    seed: Seed
    segmentation: LesionSegmentation
    mask: np.ndarray                        # bool (z, y, x) on the reference grid, after separation
    measures: LesionMeasures | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class LesionReview:
    reference: sitk.Image
    lesions: list[ReviewedLesion]
    liver: np.ndarray | None
    liver_note: str
    channels: dict[str, str]


def _mask_on(reference: sitk.Image, image: sitk.Image | None, what: str) -> np.ndarray | None:
    if image is None:
        return None
    from ..maps.resample import check_compatible, resample_to

    check_compatible(reference, image, what)
    return sitk.GetArrayFromImage(resample_to(reference, image, label=True))


def _separate(reference: sitk.Image, items: list[ReviewedLesion], refused: dict[str, str] | None = None) -> None:
    """Give every voxel claimed by several lesions to the nearest seed; refuse a seed left with nothing (raise, or
    with ``refused`` note it there and drop it from ``items``)."""
    if len(items) < 2:
        return
    claims = np.sum([it.mask for it in items], axis=0)
    contested = np.argwhere(claims > 1)
    if len(contested) == 0:
        return
    pts = points_lps(reference, contested)
    claimants = np.array([it.mask[tuple(contested.T)] for it in items])
    dist = np.array([np.linalg.norm(pts - np.array(it.seed.position_lps), axis=1) for it in items])
    winner = np.argmin(np.where(claimants, dist, np.inf), axis=0)
    for j, it in enumerate(items):
        lost = claimants[j] & (winner != j)
        if lost.any():
            it.mask[tuple(contested[lost].T)] = False
            others = sorted({items[w].seed.label for w in winner[lost]})
            it.notes.append(f"touches {', '.join(others)}: separated at the half-way point between the seeds")
    for it in list(items):
        if not it.mask.any():
            why = (f"lesion '{it.seed.label}' cannot be separated from a lesion it touches (its seed lies inside the "
                   "other one); put one seed per lesion, in its centre")
            if refused is None:
                raise LiverMetsError(why)
            refused[it.seed.label] = why
            items.remove(it)


def _drawn_lesion(ref: sitk.Image, label: str, image: sitk.Image) -> ReviewedLesion:
    """A lesion the reader drew (a labelmap, any grid): measured as drawn, its seed is its centroid."""
    mask = _mask_on(ref, image, f"drawn lesion '{label}'") != 0
    if not mask.any():
        raise LiverMetsError(f"the drawn lesion '{label}' is empty on the study's grid; draw it again")
    idx = np.argwhere(mask).mean(axis=0)
    centre = ref.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx[::-1]])
    seg = LesionSegmentation(ref, (0, 0, 0), mask, tuple(centre), {"method": "drawn by the reader"})
    return ReviewedLesion(Seed(label, tuple(centre), "drawn"), seg, mask.copy())


def review_lesions(series: Sequence[Any], seeds: Sequence[Seed], *, roles: Sequence[str] | None = None,
                   liver_mask: sitk.Image | None = None, couinaud: sitk.Image | None = None, maps: Any = None,
                   liver_note: str = "", drawn: Sequence[tuple[str, sitk.Image]] = (),
                   refused: dict[str, str] | None = None, **options: Any) -> LesionReview:
    """Segment and measure every seeded lesion, and measure the drawn ones (``drawn``: (label, mask image))
    the same way. ``options``: ``max_radius_mm``, ``rim_mm``. A seed the segmentation refuses stops the review
    with its sentence; with ``refused`` (a dict) it is noted there (label -> sentence) and the others go on."""
    if not seeds and not drawn:
        raise LiverMetsError("no lesion seed was given; place a point in each lesion")
    rim_mm = options.pop("rim_mm", None)
    images = lesion_channels(series, roles)
    ref = images.reference
    items = [_drawn_lesion(ref, label, img) for label, img in drawn]
    for s in seeds:
        try:
            seg = segment_lesion(images, s.position_lps, liver_mask=liver_mask, **options)
        except LiverMetsError as exc:
            if refused is None:
                raise LiverMetsError(f"lesion '{s.label}': {exc}") from exc
            refused[s.label] = f"lesion '{s.label}': {exc}"
            continue
        items.append(ReviewedLesion(s, seg, seg.full_mask()))
    _separate(ref, items, refused)
    if not items:
        raise LiverMetsError("no lesion could be segmented: " + "; ".join((refused or {}).values()))
    return _measured(series, images, items, liver_mask, couinaud, maps, liver_note, rim_mm)


@dataclass
class OutlinedLesion:
    """A lesion as a viewer holds it: its id, type and mask (bool z, y, x on the reference series' grid), maybe
    segmented from a click and edited by the reader; ``seed_lps``: the click (None: the centroid stands in)."""

    id: str
    kind: str
    mask: np.ndarray
    seed_lps: tuple[float, float, float] | None = None
    how: str = "outlined in the viewer (segmented from a click, edited or drawn by the reader)"


def review_of_outlines(series: Sequence[Any], lesions: Sequence[OutlinedLesion], *,
                       liver_mask: sitk.Image | None = None, couinaud: sitk.Image | None = None, maps: Any = None,
                       liver_note: str = "", rim_mm: float | None = None) -> LesionReview:
    """Measure lesions as they are outlined (no segmentation, no separation), exactly as ``review_lesions``
    measures its own: one study context with the liver, the Couinaud labels and every lesion."""
    if not lesions:
        raise LiverMetsError("the review has no lesion yet; add one (a click in it) first")
    images = lesion_channels(series)
    ref = images.reference
    items = []
    for les in lesions:
        mask = np.asarray(les.mask, bool)
        if mask.shape != tuple(ref.GetSize()[::-1]):
            raise LiverMetsError(f"lesion '{les.id}' is outlined on a grid of shape {mask.shape}, not the reference "
                                 f"series' {tuple(ref.GetSize()[::-1])}; outline it on the reference series")
        if not mask.any():
            raise LiverMetsError(f"lesion '{les.id}' has an empty segment; outline it again or remove it")
        idx = np.argwhere(mask).mean(axis=0)
        centre = tuple(ref.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx[::-1]]))
        seed = tuple(float(v) for v in les.seed_lps) if les.seed_lps is not None else centre
        seg = LesionSegmentation(ref, (0, 0, 0), mask, seed, {"method": les.how})
        terminology_for(les.kind)  # an unknown type is refused before anything is measured
        items.append(ReviewedLesion(Seed(les.id, seed, f"lesion={les.id}; type={les.kind}"), seg, mask.copy()))
    return _measured(series, images, items, liver_mask, couinaud, maps, liver_note, rim_mm)


def _measured(series: Sequence[Any], images: Any, items: list[ReviewedLesion], liver_mask: sitk.Image | None,
              couinaud: sitk.Image | None, maps: Any, liver_note: str, rim_mm: float | None) -> LesionReview:
    """Measure every lesion in one study context (liver, Couinaud labels, all lesions kept out of the background)."""
    ref = images.reference
    liver = _mask_on(ref, liver_mask, "liver mask")
    ctx = StudyContext(ref, prepare_images(ref, study_images(series, maps)),
                       liver=None if liver is None else liver != 0,
                       couinaud=_mask_on(ref, couinaud, "Couinaud label image"),
                       lesions=np.any([it.mask for it in items], axis=0))
    for it in items:
        it.measures = measure_lesion(ctx, it.mask, it.seed.label, it.seed.label, rim_mm=rim_mm)
    return LesionReview(ref, items, ctx.liver, liver_note, images.roles)


def _segments(review: LesionReview) -> list[dict[str, Any]]:
    out = []
    if review.liver is not None:
        term, color = terminology_for("liver")
        out.append({"id": "liver", "name": "Liver", "mask": review.liver, "color": color, "terminology": term,
                    "tags": {"LiverMetsReview.Role": "liver"}})
    for it in review.lesions:
        kind = it.seed.kind or "lesion"
        term, color = terminology_for(kind)
        out.append({"id": it.seed.label, "name": it.seed.label, "mask": it.mask, "color": color, "terminology": term,
                    "tags": {"LiverMetsReview.LesionId": it.seed.label, "LiverMetsReview.Role": kind}})
    return out


def _diameter_lines(review: LesionReview) -> list[Line]:
    lines = []
    for it in review.lesions:
        m = it.measures
        for what, pts in (("long", m.long_axis_lps), ("short", m.short_axis_lps)):
            if pts:
                lines.append(Line(f"{it.seed.label} {what} axis", tuple(pts[0]), tuple(pts[1]),
                                  f"lesion={it.seed.label}; {what} axial diameter"))
    return lines


def lesion_record(it: ReviewedLesion) -> dict[str, Any]:
    """JSON-able summary of one lesion (geometry, Couinaud, reference, how it was segmented)."""
    m = it.measures
    return {"id": it.seed.label, "name": it.seed.label, "type": it.seed.kind or "lesion",
            "seed_lps": list(it.seed.position_lps), "centroid_lps": m.centroid_lps,
            "long_axis_lps": m.long_axis_lps, "short_axis_lps": m.short_axis_lps,
            "couinaud_segment": m.couinaud_segment,
            "couinaud_name": ROMAN.get(m.couinaud_segment) if m.couinaud_segment else None,
            "couinaud_border": m.couinaud_border,
            "couinaud_why": m.couinaud_why, "reference": m.reference, "notes": it.notes,
            "segmentation": it.segmentation.info}


def map_methods(maps: Any) -> dict[str, Any]:
    """What the report's technique section says about each map the lesions were measured on (quantity, units,
    method, inputs) and why each map family was not computed; from the maps' own metadata (``StudyMaps``)."""
    keep = ("quantity", "units", "method", "method_description", "b_values_used", "echo_times_ms", "phase",
            "reference", "registered")
    used = {name: {k: meta[k] for k in keep if k in meta} for name, meta in maps.metadata.items()
            if name in maps.images and "quantity" in meta and not name.startswith(("adc_s0", "adc_quality"))}
    return {"maps": used, "maps_not_computed": dict(maps.skipped)}


def write_review(review: LesionReview, out_dir: str | Path, maps: Any = None) -> dict[str, str]:
    """Write every file of the review into ``out_dir`` (atomically, each); returns {what: file name}. ``maps``
    (``StudyMaps``) adds the maps' methods and the reasons of maps not computed to ``measurements.json``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LiverMetsError(f"{out} exists and is not a folder; give a folder for the review's files")
    out.mkdir(parents=True, exist_ok=True)
    write_layered_segmentation(review.reference, _segments(review), out / "lesions.seg.nrrd")
    write_seeds(out / "lesions.mrk.json", [it.seed for it in review.lesions])
    write_lines(out / "diameters.mrk.json", _diameter_lines(review))
    extra = {"liver": review.liver_note or ("given" if review.liver is not None else "none"),
             "channels": review.channels, **(map_methods(maps) if maps is not None else {})}
    write_measurements(out, [lesion_record(it) for it in review.lesions], [it.measures for it in review.lesions], extra)
    return {"segmentation": "lesions.seg.nrrd", "seeds": "lesions.mrk.json", "diameters": "diameters.mrk.json",
            "table": "measurements.tsv", "json": "measurements.json"}
