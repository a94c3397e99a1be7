"""A viewer's lesion review written as the lesions folder ``livermets measure`` writes.

Why: the report (and the DICOM SEG/SR) read ``measurements.json``, ``lesions.seg.nrrd`` and ``liver_figures.json``;
inside 3D Slicer the lesions are segments the reader may have edited. The segments are measured here as they are
now, in one study context, by the functions ``livermets measure`` uses, so the numbers are the command line's.
``checklist_values`` gives the checklist the same numbers (the values a review.json is computed from).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from .review import LesionReview, OutlinedLesion, review_of_outlines, write_review

LIVER_SOURCE = "the liver segment of the review in 3D Slicer"


@dataclass
class WrittenLesions:
    folder: Path
    files: dict[str, str]
    review: LesionReview
    notes: list[str]


def _liver(series: Sequence[Any], liver_mask: sitk.Image | None) -> tuple[Any, Any, list[str]]:
    """The liver analysis (Couinaud segments from landmarks) of the reader's liver, the role images, notes."""
    if liver_mask is None:
        return None, None, ["no liver segment in the review: no liver figures, no Couinaud segments"]
    from ..cli.liver_cmd import analyse_liver, role_images

    images, _, notes = role_images(list(series))
    found = analyse_liver(images, None, mask=liver_mask, mask_source=LIVER_SOURCE)
    return found, images, notes


def write_viewer_lesions(series: Sequence[Any], lesions: Sequence[OutlinedLesion], out_dir: str | Path, *,
                         liver_mask: sitk.Image | None = None, maps: Any = None,
                         study_dir: str | Path | None = None) -> WrittenLesions:
    """Measure the outlined lesions and write the lesions folder (segmentation, seeds, diameters, measurements,
    and ``liver_figures.json`` when the review has a liver); ``study_dir`` is the study folder the figures name."""
    from ..cli.liver_cmd import liver_summary, write_liver_figures

    out = Path(out_dir)
    found, images, notes = _liver(series, liver_mask)
    couinaud = found.couinaud.labels if found is not None and found.couinaud is not None else None
    review = review_of_outlines(series, lesions, liver_mask=liver_mask, couinaud=couinaud, maps=maps,
                                liver_note=LIVER_SOURCE if liver_mask is not None else "none")
    files = write_review(review, out, maps if hasattr(maps, "metadata") else None)
    stale = out / "liver_figures.json"
    if found is not None:
        summary = liver_summary(found, images, str(study_dir or ""), {"lesions": str(out / "lesions.seg.nrrd")},
                                notes)
        files["liver_figures"] = write_liver_figures(summary, out)
        notes = summary["notes"]
    elif stale.exists():
        stale.unlink()  # figures of an earlier liver would be reported as this one's
    return WrittenLesions(out, files, review, notes)


def checklist_values(review: LesionReview) -> dict[str, dict[str, Any]]:
    """Per lesion id the checklist's input (``values``, ``why``, ``couinaud_segment``) from the same measures."""
    from ..checklist.values import lesion_values
    from .tables import measurement_row

    out = {}
    for it in review.lesions:
        rows = [measurement_row(it.seed.label, m) for m in it.measures.measurements]
        values, why = lesion_values(rows)
        out[it.seed.label] = {"values": values, "why": why, "couinaud_segment": it.measures.couinaud_segment}
    return out
