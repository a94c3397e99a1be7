"""The checklist's view of the scene: lesion segments, their measurements, answers kept on them, centring.

Lesions are the segments of the scene's review segmentation that carry a lesion-id tag (``LESION_ID``, written
by the Lesions section and by ``livermets measure``'s ``lesions.seg.nrrd``). A lesion's measurements are read
from its ``MEASUREMENTS`` tag (rows of ``measurements.json``) when the Lesions section stored them, else
measured here through the core (``lesions.measure``) on the scene's series and maps, and stored on the tag so
the scene carries them. The reader's answers live on the lesion segment (``ANSWERS`` tag) and, for the study
items, on the segmentation node (``STUDY_ANSWERS`` attribute); both are JSON ``{item: {answer, note, at}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import slicer
import vtk

from LiverMetsReviewLib.errors import MissingDataError

from . import attributes
from .maps import nodesByRole
from .volumes import pullImage, pullOrLeaveOut

LESION_ID = attributes.PREFIX + "LesionId"
SEGMENT_ROLE = attributes.PREFIX + "Role"
MEASUREMENTS = attributes.PREFIX + "Measurements"
ANSWERS = attributes.PREFIX + "ChecklistAnswers"
STUDY_ANSWERS = attributes.PREFIX + "ChecklistStudyAnswers"
STUDY_FIGURES = attributes.PREFIX + "StudyFigures"

SIGNAL_ROLES = ("t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary", "t2",
                "t1_in_phase", "t1_opposed_phase", "dixon_water")
MAP_QUANTITIES = {"adc": "adc", "ff_chemical_shift": "fat_fraction", "ff_dixon": "fat_fraction",
                  "pdff": "fat_fraction"}  # plus re_<phase>: relative_enhancement
REFERENCE_ROLES = ("t1_hepatobiliary", "t1_portal_venous", "t1_pre", "t2")


@dataclass
class LesionSegment:
    """One lesion of the review segmentation."""

    node: Any  # vtkMRMLSegmentationNode
    segmentId: str
    lesionId: str

    @property
    def segment(self):
        return self.node.GetSegmentation().GetSegment(self.segmentId)


def segmentTag(segment, name: str) -> str:
    """A segment tag's text ('' when absent): vtkSegment.GetTag fills a reference and returns whether it exists."""
    value = vtk.reference("")
    return str(value) if segment.GetTag(name, value) else ""


def _segments(node) -> Iterator[tuple[str, Any]]:
    segmentation = node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        yield segmentation.GetNthSegmentID(index), segmentation.GetNthSegment(index)


def lesionSegments() -> list[LesionSegment]:
    """Every segment with a lesion-id tag, of the most recent segmentation that has any (the review's)."""
    for node in reversed(slicer.util.getNodesByClass("vtkMRMLSegmentationNode")):
        found = [LesionSegment(node, sid, segmentTag(seg, LESION_ID)) for sid, seg in _segments(node)
                 if segmentTag(seg, LESION_ID)]
        if found:
            return found
    return []


def readJson(text: str | None, default: Any) -> Any:
    """JSON stored in a tag or attribute; damaged text reads as ``default`` (the sidecar keeps a copy)."""
    try:
        return json.loads(text) if text else default
    except json.JSONDecodeError:
        return default


def lesionAnswers(lesion: LesionSegment) -> dict[str, Any]:
    return readJson(segmentTag(lesion.segment, ANSWERS), {})


def studyAnswers(node) -> dict[str, Any]:
    return readJson(node.GetAttribute(STUDY_ANSWERS), {}) if node is not None else {}


def writeAnswers(lesions: list[LesionSegment], answers: dict[str, dict[str, Any]]) -> None:
    """Each lesion's answers on its segment, the study's on the segmentation node."""
    for lesion in lesions:
        lesion.segment.SetTag(ANSWERS, attributes.tagJson(answers.get(lesion.lesionId, {})))
    if lesions:
        lesions[0].node.SetAttribute(STUDY_ANSWERS, json.dumps(answers.get("study", {}), sort_keys=True))


def studyFigures(node) -> dict[str, float]:
    """Study figures the Lesions/Liver work stored on the segmentation node (``study.<figure>``: number)."""
    doc = readJson(node.GetAttribute(STUDY_FIGURES), {}) if node is not None else {}
    return {k: float(v) for k, v in doc.items() if k.startswith("study.") and isinstance(v, (int, float))}


# ------------------------------------------------------------------ measurements through the core


def lesionMeasurement(lesion: LesionSegment, lesions: list[LesionSegment], notes: list[str] | None = None
                      ) -> dict[str, Any]:
    """The engine's input for a lesion: {"id", "values", "why", "couinaud_segment"}.

    The ``MEASUREMENTS`` tag holds either ``measurements`` (rows of measurements.json) or the flat ``values`` and
    ``why`` of ``checklist.values``; without it the segment is measured here through the core and the flat
    values stored (compact: the tag travels in the .seg.nrrd header). Series left out of that measurement (a
    warping transform) are named in ``notes``, and the values are then not stored: once the reader has hardened
    the transform, the next start measures the lesion on every series."""
    from LiverMetsReviewLib.checklist.values import lesion_values

    stored = readJson(segmentTag(lesion.segment, MEASUREMENTS), None)
    if not (isinstance(stored, dict) and (stored.get("measurements") or stored.get("values"))):
        leftOut: list[str] = []
        rows, couinaud = measureSegment(lesion, lesions, leftOut)
        values, why = lesion_values(rows)
        stored = {"values": values, "why": why, "couinaud_segment": couinaud}
        if not leftOut:
            lesion.segment.SetTag(MEASUREMENTS, attributes.tagJson(stored))
        elif notes is not None:
            notes.extend(leftOut)
    if stored.get("measurements"):
        values, why = lesion_values(stored["measurements"])
    else:
        values, why = dict(stored["values"]), dict(stored.get("why") or {})
    return {"id": lesion.lesionId, "values": values, "why": why, "couinaud_segment": stored.get("couinaud_segment")}


def _latest(nodes: list) -> Any:
    return nodes[-1] if nodes else None


def sceneImages(notes: list[str] | None = None) -> dict[str, tuple]:
    """The study's measurable images by the names ``lesions.measure.study_images`` gives (signal, ADC, maps).

    A series or map a warping transform moves is left out, named in ``notes`` (each lesion value it would give is
    then missing, and says so): the lesion is measured on the others."""
    notes = [] if notes is None else notes
    found: dict[str, tuple] = {}
    for role in SIGNAL_ROLES:
        node = _latest(nodesByRole(role))
        if node is not None:
            found[role] = (node, "signal")
    dwi = nodesByRole("dwi")
    if dwi:
        found["dwi_high_b"] = (max(dwi, key=lambda n: float(n.GetAttribute(attributes.B_VALUE) or 0.0)), "signal")
    for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
        name = node.GetName()
        key = MAP_QUANTITIES.get(name) or ("relative_enhancement" if name.startswith("re_") else None)
        if key and node.GetAttribute(attributes.SOURCE) == "map":
            found[name] = (node, key)  # later nodes replace earlier ones
    images: dict[str, tuple] = {}
    for name, (node, key) in found.items():
        image = pullOrLeaveOut(node, notes)
        if image is not None:
            images[name] = (image, key, None)
    return images


def _referenceVolume():
    for role in REFERENCE_ROLES:
        node = _latest(nodesByRole(role))
        if node is not None:
            return node
    raise MissingDataError("No series to measure the lesion on: load a study (with an HBP, portal venous, "
                           "pre-contrast T1 or T2 series) first.")


def _segmentMask(node, segmentIds: list[str], reference):
    """Segments as one bool array (z, y, x) on the reference volume's grid."""
    import numpy as np

    ids = vtk.vtkStringArray()
    for sid in segmentIds:
        ids.InsertNextValue(sid)
    labelNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "checklist_mask")
    try:
        # The reference volume's whole grid (the default extent is the segments' bounding box).
        slicer.modules.segmentations.logic().ExportSegmentsToLabelmapNode(
            node, ids, labelNode, reference, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
        return np.asarray(slicer.util.arrayFromVolume(labelNode)) != 0
    finally:
        slicer.mrmlScene.RemoveNode(labelNode)


def measureSegment(lesion: LesionSegment, lesions: list[LesionSegment], notes: list[str] | None = None
                   ) -> tuple[list, int | None]:
    """A lesion segment measured by the core (as ``livermets measure`` measures a lesion); the series left out
    (a warping transform) named in ``notes``, the one measured on (the reference) never left out."""
    from LiverMetsReviewLib.lesions.measure import StudyContext, measure_lesion, prepare_images
    from LiverMetsReviewLib.lesions.tables import measurement_row

    reference = _referenceVolume()
    ref = pullImage(reference, "the lesion is measured on its grid, so the checklist")
    liverIds = [sid for sid, seg in _segments(lesion.node) if segmentTag(seg, SEGMENT_ROLE) == "liver"]
    liver = _segmentMask(lesion.node, liverIds, reference) if liverIds else None
    union = _segmentMask(lesion.node, [les.segmentId for les in lesions if les.node is lesion.node], reference)
    ctx = StudyContext(ref, prepare_images(ref, sceneImages(notes)), liver=liver, lesions=union)
    measures = measure_lesion(ctx, _segmentMask(lesion.node, [lesion.segmentId], reference), lesion.lesionId)
    return [measurement_row(lesion.lesionId, m) for m in measures.measurements], measures.couinaud_segment


# ------------------------------------------------------------------ views


def lesionCentreRas(lesion: LesionSegment) -> tuple[float, float, float] | None:
    node = lesion.node  # slicer-class: vtkMRMLSegmentationNode
    centre = node.GetSegmentCenterRAS(lesion.segmentId)
    return tuple(float(c) for c in centre) if centre is not None else None


def centreViewsOn(rasPoint) -> None:
    """Every slice view (all view groups) centred on the point, as a click on a markup with Ctrl does."""
    x, y, z = (float(c) for c in rasPoint)
    slicer.modules.markups.logic().JumpSlicesToLocation(x, y, z, True, -1)

