"""Lesions in the scene: ONE review segmentation (lesions + liver), a seed point list, a line per diameter.

Everything a reader's lesion work produces lives in nodes, node attributes and segment tags, so it is saved with
the scene and the lesion table is rebuilt from the scene alone: the segment's name, colour and DICOM
terminology (from the core's ``terminology_for``), its lesion id (``LiverMetsReview.LesionId``, as the core's
``lesions.seg.nrrd``), its type (``LiverMetsReview.Role``), the key measures (JSON) with the digest of the mask
they were measured on (an edit in the Segment Editor changes the digest).
Seeds carry the lesion id as label and ``lesion=<id>; type=<kind>`` as description (what the core's
``read_seeds`` parses). Pure helpers first (tested headless), then the MRML ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import slicer
import vtk

from LiverMetsReviewLib.io.segmentation import terminology_string
from LiverMetsReviewLib.lesions.review import terminology_for

from . import attributes
from .volumes import lpsToRas

LESION_ID = attributes.PREFIX + "LesionId"
ROLE_TAG = attributes.PREFIX + "Role"        # "liver" or the lesion's type (metastasis, cyst...)
MEASURES = attributes.PREFIX + "Measures"    # key measures, JSON
DIGEST = attributes.PREFIX + "MaskDigest"    # digest of the mask the measures were made on
REVIEW = attributes.PREFIX + "Review"        # node attribute: what the node is in the review
LIVER = "liver"
TABLE_COLUMNS = ("Lesion", "Type", "Segment", "Long axis (mm)", "Short axis (mm)", "Volume (mL)",
                 "ADC median (10^-6 mm^2/s)")


# ------------------------------------------------------------------------------------------------ pure helpers


def nextLesionId(existing: Iterable[str]) -> str:
    """``L<n>`` with n one above the highest used (a deleted lesion's id is never reused)."""
    numbers = [int(m.group(1)) for m in (re.fullmatch(r"L(\d+)", str(e)) for e in existing) if m]
    return f"L{max(numbers, default=0) + 1}"


def seedDescription(lesionId: str, kind: str) -> str:
    """The seed's description, in the core's format (``Seed.kind`` reads ``type=``)."""
    return f"lesion={lesionId}; type={kind}"


def seedLesionId(description: str) -> str | None:
    """The lesion id a seed was assigned (None: a new click, not yet segmented)."""
    m = re.search(r"(?:^|[;\s])lesion=([^;\s]+)", description or "")
    return m.group(1) if m else None


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def tableRow(name: str, kind: str, measures: dict[str, Any]) -> list[str]:
    """One row of the lesion table from a segment's name, type and stored measures (texts, TABLE_COLUMNS)."""
    segment = measures.get("couinaud_border") or measures.get("couinaud_segment") or ""  # "VII/VIII border"
    return [name, kind.replace("_", " "), segment,
            _number(measures.get("long_axis_mm"), 1), _number(measures.get("short_axis_mm"), 1),
            _number(measures.get("volume_ml"), 2), _number(measures.get("adc_median"), 0)]


# ------------------------------------------------------------------------------------------------ scene nodes


def newReviewSegmentation(referenceNode: slicer.vtkMRMLScalarVolumeNode) -> slicer.vtkMRMLSegmentationNode:
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Lesion review")
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(referenceNode)
    node.SetAttribute(REVIEW, "segmentation")
    return node


def newPointList(name: str, what: str) -> slicer.vtkMRMLMarkupsFiducialNode:
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    node.CreateDefaultDisplayNodes()
    node.SetAttribute(REVIEW, what)
    return node


def setKind(segment: slicer.vtkSegment, kind: str) -> None:
    """Type, colour and DICOM terminology of a segment (the core's table: an unknown type is refused)."""
    term, color = terminology_for(kind)
    segment.SetColor(*color)
    segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology_string(term))
    segment.SetTag(ROLE_TAG, kind)


def putSegment(segmentationNode: slicer.vtkMRMLSegmentationNode, referenceNode: slicer.vtkMRMLScalarVolumeNode,
               mask: np.ndarray, segmentId: str, name: str, kind: str) -> str:
    """Add (or replace) the segment ``segmentId`` with ``mask`` (bool z, y, x on ``referenceNode``'s grid)."""
    segmentation = segmentationNode.GetSegmentation()
    if segmentation.GetSegment(segmentId) is None:
        segmentId = segmentation.AddEmptySegment(segmentId, name)
    segment = segmentation.GetSegment(segmentId)
    segment.SetName(name)
    setKind(segment, kind)
    if kind != LIVER:
        segment.SetTag(LESION_ID, segmentId)
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.asarray(mask, np.uint8), segmentationNode, segmentId,
                                                     referenceNode)
    return segmentId


def segmentMask(segmentationNode: slicer.vtkMRMLSegmentationNode, segmentId: str,
                referenceNode: slicer.vtkMRMLScalarVolumeNode) -> np.ndarray:
    """The segment as bool (z, y, x) on ``referenceNode``'s grid (a reader's edit included)."""
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, referenceNode) != 0


def segmentTag(segment: slicer.vtkSegment, key: str) -> str:
    """A segment tag's value ("" when absent): vtkSegment::GetTag fills a string reference."""
    value = vtk.reference("")
    return str(value.get()) if segment.GetTag(key, value) else ""


def lesionSegmentIds(segmentationNode: slicer.vtkMRMLSegmentationNode | None) -> list[str]:
    """Segment IDs of the lesions (every segment that is not the liver), in the segmentation's order."""
    if segmentationNode is None:
        return []
    segmentation = segmentationNode.GetSegmentation()
    return [sid for sid in segmentation.GetSegmentIDs()
            if segmentTag(segmentation.GetSegment(sid), ROLE_TAG) != LIVER]


def storeMeasures(segment: slicer.vtkSegment, measures: dict[str, Any], digest: str) -> None:
    segment.SetTag(MEASURES, attributes.tagJson(measures))
    segment.SetTag(DIGEST, digest)


def storedMeasures(segment: slicer.vtkSegment) -> dict[str, Any]:
    text = segmentTag(segment, MEASURES)
    return json.loads(text) if text else {}


def diameterLines(lesionId: str) -> list:
    return [n for n in slicer.util.getNodesByClass("vtkMRMLMarkupsLineNode")
            if n.GetAttribute(LESION_ID) == lesionId]


def updateDiameterLines(lesionId: str, name: str, measures: dict[str, Any]) -> None:
    """One line per axial diameter (endpoints from the core, LPS -> RAS); lines of a lost diameter removed."""
    lines = {n.GetAttribute(REVIEW): n for n in diameterLines(lesionId)}
    for axis in ("long", "short"):
        points: Sequence | None = measures.get(f"{axis}_axis_lps")
        node = lines.get(f"{axis} axis")
        if not points:
            if node is not None:
                slicer.mrmlScene.RemoveNode(node)
            continue
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsLineNode")  # slicer-class: vtkMRMLMarkupsLineNode
            node.CreateDefaultDisplayNodes()
            node.SetAttribute(LESION_ID, lesionId)
            node.SetAttribute(REVIEW, f"{axis} axis")
            node.SetLocked(True)
        node.SetName(f"{name} {axis} axis")
        node.SetLineStartPositionWorld(lpsToRas(points[0]))
        node.SetLineEndPositionWorld(lpsToRas(points[1]))


def seedIndex(seedNode: slicer.vtkMRMLMarkupsFiducialNode, lesionId: str) -> int:
    """Index of the seed control point of ``lesionId`` (-1: none)."""
    if seedNode is None:
        return -1
    for index in range(seedNode.GetNumberOfControlPoints()):
        if seedLesionId(seedNode.GetNthControlPointDescription(index)) == lesionId:
            return index
    return -1


def definedPoints(pointList: slicer.vtkMRMLMarkupsFiducialNode) -> list[int]:
    """Indices of the control points a click (or a script) has placed. In place mode the markups widget keeps a
    preview point in the list, following the mouse (status PositionPreview until the click defines it; read in
    Slicer v5.12.3, vtkSlicerMarkupsWidget::UpdatePreviewPoint): it is nobody's seed yet."""
    defined = slicer.vtkMRMLMarkupsNode.PositionDefined
    return [i for i in range(pointList.GetNumberOfControlPoints())
            if pointList.GetNthControlPointPositionStatus(i) == defined]


def pendingSeeds(seedNode: slicer.vtkMRMLMarkupsFiducialNode) -> list[int]:
    """Control points placed but not yet segmented (no lesion id in their description)."""
    return [i for i in definedPoints(seedNode) if seedLesionId(seedNode.GetNthControlPointDescription(i)) is None]


def removeLesion(segmentationNode: slicer.vtkMRMLSegmentationNode, seedNode: slicer.vtkMRMLMarkupsFiducialNode,
                 lesionId: str) -> None:
    """The segment, its seed and its diameter lines."""
    segmentation = segmentationNode.GetSegmentation()
    if segmentation.GetSegment(lesionId) is not None:
        segmentation.RemoveSegment(lesionId)
    index = seedIndex(seedNode, lesionId)
    if index >= 0:
        seedNode.RemoveNthControlPoint(index)
    for node in diameterLines(lesionId):
        slicer.mrmlScene.RemoveNode(node)


def renameLesion(segmentationNode: slicer.vtkMRMLSegmentationNode, seedNode: slicer.vtkMRMLMarkupsFiducialNode,
                 lesionId: str, name: str) -> None:
    """A new name for the reader; the id (tags, seed description) stays, so nothing loses its link."""
    segment = segmentationNode.GetSegmentation().GetSegment(lesionId)
    segment.SetName(name)
    index = seedIndex(seedNode, lesionId)
    if index >= 0:
        seedNode.SetNthControlPointLabel(index, name)
    updateDiameterLines(lesionId, name, storedMeasures(segment))
