"""Lesion work on the scene: a click -> the core's segment -> the review segmentation, measures, markups.

The core (``LiverMetsReviewLib.lesions.one_lesion``) does the work on SimpleITK images in LPS; here the scene's
series are pulled by their role attribute (as the Maps section does: the most recent node of a role wins, a DWI
is one node per b-value), the click converted RAS -> LPS, and the results written back with ``lesion_nodes``.
The grid segments are drawn on is the core's reference series (HBP when present); every later read of a
segment (a reader's edit, the liver) goes through that volume node, kept in the section's parameters.
"""

from __future__ import annotations

import re
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import slicer

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.lesions.channels import lesion_channels
from LiverMetsReviewLib.lesions.one_lesion import key_measures, mask_digest, mask_image, measure_one, segment_one
from LiverMetsReviewLib.series import Series

from . import attributes
from . import lesion_nodes as nodes
from .maps import latestPerValue, nodesByRole
from .volumes import leftOutNote, pullImage, pullOrLeaveOut, rasToLps, warpedMessage, warpingTransform

SERIES_ROLES = ("t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary", "t2",
                "t1_in_phase", "t1_opposed_phase", "dixon_water", "dixon_fat", "adc_scanner")
MAP_NAMES = ("adc", "ff_chemical_shift", "ff_dixon", "pdff", "re_arterial", "re_portal_venous", "re_transitional",
             "re_hepatobiliary")


@dataclass
class SceneStudy:
    """The scene's series as the core's ``Series`` (pulled once), which node each image came from, and maps;
    ``notes``: the series left out (a warping transform moves them), for the reader."""

    series: list[Series]
    nodeOf: dict[int, Any] = field(default_factory=dict)   # id(image) -> volume node
    maps: Any = None
    notes: list[str] = field(default_factory=list)

    def imagesByRole(self) -> dict[str, Any]:
        return {s.role: s.image for s in self.series}


def _mapNodes() -> dict[str, Any]:
    """Map name -> the most recent map node of that name (a recomputed map is named ``adc_1``...)."""
    out = {}
    for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
        if node.GetAttribute(attributes.SOURCE) != "map":
            continue
        base = re.sub(r"_\d+$", "", node.GetName())
        if base in MAP_NAMES:
            out[base] = node
    return out


def _roleNodes() -> dict[str, Any]:
    """Role -> the most recent series node of that role (maps are not series)."""
    out = {}
    for role in SERIES_ROLES:
        found = [n for n in nodesByRole(role) if n.GetAttribute(attributes.SOURCE) != "map"]
        if found:
            out[role] = found[-1]
    return out


def referenceNodeOf(roleNodes: dict[str, Any]) -> Any:
    """The series the core outlines lesions on (``lesion_segmentation.json`` reference_preference), among the
    scene's series whether a transform warps them or not, or None."""
    from LiverMetsReviewLib.lesions.channels import params

    return next((roleNodes[r] for r in params("channels")["reference_preference"] if r in roleNodes), None)


def sceneStudy(reference: Any = None) -> SceneStudy:
    """Every series the lesion work can use, pulled from the scene as SimpleITK images (LPS).

    A series a warping transform moves is left out (a note says which, and "Harden transform"), and the work goes on
    with the others; the one the segments are drawn on (``reference``, the review's, else the one the core would
    choose) cannot be left out: then the reader is stopped with the same advice. A DWI is one series: one warped
    b-value leaves the whole DWI out (its highest b-value and ADC need every stack)."""
    study = SceneStudy([])
    roleNodes = _roleNodes()
    dwi, _ignored = latestPerValue("dwi", attributes.B_VALUE)
    warped = [n for n in dwi if warpingTransform(n) is not None]
    candidates = {**roleNodes, **({"dwi": (warped or dwi)[-1]} if dwi else {})}  # a study of DWI alone: its grid
    needed = reference if reference is not None else referenceNodeOf(candidates)
    if needed is not None and warpingTransform(needed) is not None:
        raise LiverMetsError(warpedMessage(needed, "the lesions and the liver are outlined on its grid, so the work"))
    for role, node in roleNodes.items():
        image = pullOrLeaveOut(node, study.notes)
        if image is not None:
            study.series.append(Series(role, [image]))
            study.nodeOf[id(image)] = node
    for node in warped:
        study.notes.append(leftOutNote(node) + " The other b-values of the DWI are left out with it.")
    if dwi and not warped:
        stacks = [pullImage(n) for n in dwi]
        study.series.append(Series("dwi", stacks, [{"b_value": float(n.GetAttribute(attributes.B_VALUE))}
                                                   for n in dwi]))
        study.nodeOf.update({id(img): n for img, n in zip(stacks, dwi, strict=True)})
    if not study.series:
        raise LiverMetsError("The scene has no series with a role the lesion work uses (HBP, portal venous, T2, "
                             "DWI...): load a study, or set the roles in the series table.")
    maps = {name: image for name, node in _mapNodes().items()
            if (image := pullOrLeaveOut(node, study.notes)) is not None}
    study.maps = types.SimpleNamespace(images=maps, valid={}) if maps else None
    return study


def _referenceImage(study: SceneStudy, referenceNode):
    for s in study.series:
        for img in s.stacks:
            if study.nodeOf.get(id(img)) is referenceNode:
                return img
    raise LiverMetsError(f"The series '{referenceNode.GetName()}' the lesions were drawn on is no longer a series "
                         "of the scene (its role changed?): give it back its role, or start a new review.")


def liverMask(segmentationNode, referenceNode) -> np.ndarray | None:
    """The liver segment (as the reader left it) on the reference grid, or None."""
    if segmentationNode is None or segmentationNode.GetSegmentation().GetSegment(nodes.LIVER) is None:
        return None
    return nodes.segmentMask(segmentationNode, nodes.LIVER, referenceNode)


_COUINAUD: dict[str, Any] = {}   # liver mask digest -> (labels or None, why): one liver per review, kept once


def couinaudLabels(study: SceneStudy, liver: np.ndarray | None, reference) -> tuple[Any, str]:
    """Couinaud labels from the review's liver segment (landmarks found on a contrast phase), or None and why.

    Found again only when the liver segment changed (the reader edited it): the landmark search takes about a
    second, a lesion table is re-measured far more often."""
    from LiverMetsReviewLib.errors import MissingDataError
    from LiverMetsReviewLib.lesions.couinaud import couinaud_segments

    if liver is None or not liver.any():
        return None, "no liver segment yet (Find liver)"
    key = mask_digest(liver)
    if key not in _COUINAUD:
        try:
            found = couinaud_segments(study.imagesByRole(), mask_image(liver, reference))
            _COUINAUD.clear()
            _COUINAUD[key] = (found.labels, "; ".join(found.notes))
        except (MissingDataError, LiverMetsError) as exc:
            return None, str(exc)
    return _COUINAUD[key]


def otherLesions(segmentationNode, referenceNode, exceptId: str | None) -> np.ndarray | None:
    masks = [nodes.segmentMask(segmentationNode, sid, referenceNode) for sid in nodes.lesionSegmentIds(segmentationNode)
             if sid != exceptId]
    return np.any(masks, axis=0) if masks else None


@dataclass
class Review:
    """The nodes of one review (what the section's parameters hold)."""

    segmentation: Any = None     # vtkMRMLSegmentationNode
    seeds: Any = None            # vtkMRMLMarkupsFiducialNode
    reference: Any = None        # vtkMRMLScalarVolumeNode: the grid segments are drawn on


def segmentAt(review: Review, rasPoint: Sequence[float], lesionId: str, kind: str, study: SceneStudy | None = None,
              **options: Any) -> dict[str, Any]:
    """Segment the lesion under a click (RAS) and put it into the review as segment ``lesionId``."""
    study = study or sceneStudy(review.reference)
    seedLps = rasToLps(rasPoint)
    liver = others = None
    if review.reference is not None and review.segmentation is not None:
        liver = liverMask(review.segmentation, review.reference)
        others = otherLesions(review.segmentation, review.reference, lesionId)
    liverImage = None if liver is None or not liver.any() else mask_image(liver, _referenceImage(study,
                                                                                                   review.reference))
    images, seg = segment_one(study.series, seedLps, liver_mask=liverImage, others=others, **options)
    if review.reference is None:
        review.reference = study.nodeOf[id(images.reference)]
    elif study.nodeOf.get(id(images.reference)) is not review.reference:
        raise LiverMetsError("The series the core outlines lesions on changed since the first lesion; keep the "
                             "roles of the first lesion's series, or start a new review.")
    if review.segmentation is None:
        review.segmentation = nodes.newReviewSegmentation(review.reference)
    mask = seg.full_mask()
    nodes.putSegment(review.segmentation, review.reference, mask, lesionId, lesionId, kind)
    return measure(review, lesionId, study=study, mask=mask)


def measure(review: Review, lesionId: str, study: SceneStudy | None = None,
            mask: np.ndarray | None = None) -> dict[str, Any]:
    """Measure segment ``lesionId`` as it is now (segmented or edited by the reader); store measures, lines."""
    study = study or sceneStudy(review.reference)
    segment = review.segmentation.GetSegmentation().GetSegment(lesionId)
    if segment is None:
        raise LiverMetsError(f"The lesion '{lesionId}' has no segment in '{review.segmentation.GetName()}'.")
    if mask is None:
        mask = nodes.segmentMask(review.segmentation, lesionId, review.reference)
    reference = _referenceImage(study, review.reference)
    liver = liverMask(review.segmentation, review.reference)
    couinaud = couinaudLabels(study, liver, reference)[0]
    m = measure_one(study.series, mask, reference, lesionId, liver=liver, couinaud=couinaud,
                    others=otherLesions(review.segmentation, review.reference, lesionId), maps=study.maps)
    measures = key_measures(m)
    nodes.storeMeasures(segment, measures, mask_digest(mask))
    nodes.updateDiameterLines(lesionId, segment.GetName(), measures)
    return measures


def editedLesions(review: Review) -> list[str]:
    """Lesions whose mask no longer matches the one their measures were made on (edited in the Segment Editor)."""
    out = []
    for sid in nodes.lesionSegmentIds(review.segmentation):
        segment = review.segmentation.GetSegmentation().GetSegment(sid)
        if nodes.segmentTag(segment, nodes.DIGEST) != mask_digest(nodes.segmentMask(review.segmentation, sid,
                                                                                     review.reference)):
            out.append(sid)
    return out


def findLiver(review: Review, rasPoint: Sequence[float] | None = None,
              study: SceneStudy | None = None) -> dict[str, Any]:
    """The liver (automatic, or from a click in it) as the segment ``liver`` of the review."""
    import SimpleITK as sitk

    from LiverMetsReviewLib.lesions.liver import segment_liver

    study = study or sceneStudy(review.reference)
    result = segment_liver(study.imagesByRole(), None if rasPoint is None else rasToLps(rasPoint))
    node = study.nodeOf[id(study.imagesByRole()[result.series_used])]
    if review.reference is None:  # the grid lesions will be drawn on (the liver keeps its own series' grid)
        review.reference = study.nodeOf[id(lesion_channels(study.series).reference)]
    if review.segmentation is None:
        review.segmentation = nodes.newReviewSegmentation(review.reference)
    nodes.putSegment(review.segmentation, node, sitk.GetArrayFromImage(result.mask) != 0, nodes.LIVER, "Liver",
                     nodes.LIVER)
    return {"series": result.series_used, "volume_ml": result.volume_ml,
            "notes": result.notes + result.warnings + study.notes}
