"""Ground-truth labelmap + segment list -> a segmentation node with named, coloured segments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import SimpleITK as sitk
import slicer

from LiverMetsReviewLib.io.segmentation import terminology_string

from .volumes import pushLabelmap


def _colorTable(segments: Sequence[dict[str, Any]], name: str) -> slicer.vtkMRMLColorTableNode:
    """A user colour table naming each label, so the import already gives readable segment names."""
    colorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    colorNode.SetTypeToUser()
    colorNode.SetNumberOfColors(max(int(s["label"]) for s in segments) + 1)
    colorNode.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
    for s in segments:
        r, g, b = (float(c) for c in s["color"])
        colorNode.SetColor(int(s["label"]), str(s["name"]), r, g, b, 1.0)
    return colorNode


def importLabelmapSegmentation(labelmap: sitk.Image, segments: Sequence[dict[str, Any]],
                               name: str) -> slicer.vtkMRMLSegmentationNode:
    """One segment per label of ``segments`` (keys: label, name, color [r, g, b] in 0..1, optional id).

    Labels listed in ``segments`` but absent from the image produce no segment (the importer skips empty
    labels); the caller compares the result with its own list when completeness matters.
    """
    if not segments:
        raise ValueError("the segment list is empty: give one entry (label, name, color) per label of the labelmap")
    labelNode = pushLabelmap(labelmap, name + "_labels")
    colorNode = _colorTable(segments, name + "_colors")
    labelNode.CreateDefaultDisplayNodes()
    labelNode.GetDisplayNode().SetAndObserveColorNodeID(colorNode.GetID())

    segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(labelNode)
    segmentationsLogic = slicer.modules.segmentations.logic()
    if not segmentationsLogic.ImportLabelmapToSegmentationNode(labelNode, segmentationNode):
        raise RuntimeError(f"Slicer could not import the labelmap '{name}' into a segmentation")

    # Names and colours from our list, matched by the colour-table name the importer gave, else by label
    # value: independent of the importer's ordering.
    byName = {str(s["name"]): s for s in segments}
    byLabel = {int(s["label"]): s for s in segments}
    segmentation = segmentationNode.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        info = byName.get(segment.GetName()) or byLabel.get(int(segment.GetLabelValue()))
        if info is None:
            continue
        segment.SetName(str(info["name"]))
        segment.SetColor(*(float(c) for c in info["color"]))
        if info.get("id"):
            segment.SetTag("LiverMetsReview.SegmentId", str(info["id"]))
        if info.get("kind"):
            segment.SetTag("LiverMetsReview.Kind", str(info["kind"]))
        if info.get("terminology"):  # standard codes, so Slicer shows e.g. "Liver" / "Neoplasm, metastatic"
            segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology_string(info["terminology"]))
        for key, value in (info.get("tags") or {}).items():
            segment.SetTag(str(key), str(value))

    slicer.mrmlScene.RemoveNode(labelNode)
    slicer.mrmlScene.RemoveNode(colorNode)
    return segmentationNode


def segmentNames(segmentationNode: slicer.vtkMRMLSegmentationNode) -> list[str]:
    """Names of all segments, in the segmentation's order."""
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
