"""The scene as the folders the report reads: its role volumes as a study folder, its lesions as a lesions folder.

Thin: the scene is gathered here (volumes with their role attributes and, when Slicer's DICOM plugins read them,
the files of their ``DICOM.instanceUIDs`` from the DICOM database; lesion segments as masks on the core's reference
series; the seeds) and handed to the core, which groups, measures and writes
(``LiverMetsReviewLib.study.viewer_study``, ``LiverMetsReviewLib.lesions.viewer_lesions``). The lesions are measured
as they are now, so a Segment Editor edit is in the numbers; the Lesions table, the diameter lines and the
checklist's measurements are updated from the same measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slicer

from LiverMetsReviewLib.roles import UNASSIGNED

from . import attributes
from . import lesion_nodes as nodes
from .checklist_scene import MEASUREMENTS
from .dicom_study import INSTANCE_UIDS, applicationDatabase
from .volumes import leftOutNote, pullImage, rasToLps, warpingTransform

STUDY_FOLDER = "study"
LESIONS_FOLDER = "lesions"


@dataclass
class SceneFolders:
    """The folders written from the scene (None: nothing to write) and what the reader should know."""

    study: Path | None = None
    lesions: Path | None = None
    notes: list[str] = field(default_factory=list)


def _float(node: slicer.vtkMRMLScalarVolumeNode, key: str) -> float | None:
    text = node.GetAttribute(key)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def dicomInstances(node: slicer.vtkMRMLScalarVolumeNode, database) -> list[tuple[str, str]]:
    """(SOP instance UID, file) of every image Slicer's DICOM plugins read the volume from; [] when none."""
    uids = [uid for uid in (node.GetAttribute(INSTANCE_UIDS) or "").split() if uid != "Unknown"]
    if not uids or database is None:
        return []
    db = database  # slicer-class: ctkDICOMDatabase
    return [(uid, str(db.fileForInstance(uid))) for uid in uids]


def isRoleVolume(node: slicer.vtkMRMLScalarVolumeNode) -> bool:
    role = node.GetAttribute(attributes.ROLE)
    return (not node.IsA("vtkMRMLLabelMapVolumeNode") and bool(role) and role != UNASSIGNED
            and node.GetAttribute(attributes.SOURCE) != "map")


def viewerVolume(node: slicer.vtkMRMLScalarVolumeNode, database, notes: list[str]):
    """One volume as the core's ``ViewerVolume`` (with its DICOM images when Slicer's plugins read it)."""
    from LiverMetsReviewLib.study.viewer_study import ViewerVolume

    instances = dicomInstances(node, database)
    if node.GetAttribute(INSTANCE_UIDS) and database is None:
        notes.append(f"{node.GetName()}: Slicer's DICOM database is not open, so its DICOM files are not known.")
    if node.GetParentTransformNode() is not None:  # its DICOM files hold it where it was acquired, not moved
        notes.append(f"{node.GetName()} is moved by a transform: the study folder holds it where the scene shows it, "
                     "not its DICOM images.")
        instances = []
    return ViewerVolume(
        pullImage(node), node.GetAttribute(attributes.ROLE), node.GetName(), b_value=_float(node, attributes.B_VALUE),
        echo_time_ms=_float(node, attributes.ECHO_TIME_MS), description=node.GetAttribute(attributes.DESCRIPTION) or "",
        field_strength_t=_float(node, attributes.FIELD_STRENGTH_T), units=node.GetAttribute(attributes.UNITS) or "",
        instances=instances)


def viewerVolumes(notes: list[str]) -> list:
    """Every volume with a role (maps and labelmaps left out), in scene order; one a warping transform moves is
    left out of the study folder, with a note (the report lists the series it was given), and a warped DWI
    b-value takes the other b-values of its role with it (as in the lesion work: an ADC needs them all)."""
    database = applicationDatabase()
    nodes = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode") if isRoleVolume(n)]
    warped = [n for n in nodes if warpingTransform(n) is not None]
    notes.extend(leftOutNote(n) for n in warped)
    dwiWarped = any(n.GetAttribute(attributes.ROLE) == "dwi" for n in warped)
    return [viewerVolume(n, database, notes) for n in nodes
            if n not in warped and not (dwiWarped and n.GetAttribute(attributes.ROLE) == "dwi")]


def writeStudy(out: Path, notes: list[str]) -> Path:
    from LiverMetsReviewLib.study.viewer_study import write_viewer_study

    _, sourceNotes = write_viewer_study(viewerVolumes(notes), out)
    notes.extend(sourceNotes)
    return out


# ------------------------------------------------------------------ lesions


def reviewSegmentation(segmentationNode=None):
    """The review segmentation: the Lesions section's, else the most recent one with lesion-id tags."""
    if segmentationNode is not None:
        return segmentationNode
    from .checklist_scene import lesionSegments

    found = lesionSegments()
    return found[0].node if found else None


def _seedLps(seedNode: slicer.vtkMRMLMarkupsFiducialNode | None, lesionId: str) -> tuple[float, float, float] | None:
    index = nodes.seedIndex(seedNode, lesionId)
    if index < 0:
        return None
    ras = [0.0, 0.0, 0.0]
    seedNode.GetNthControlPointPositionWorld(index, ras)
    return rasToLps(ras)


def outlinedLesions(segmentationNode: slicer.vtkMRMLSegmentationNode, referenceNode: slicer.vtkMRMLScalarVolumeNode,
                    seedNode: slicer.vtkMRMLMarkupsFiducialNode | None) -> tuple[list, Any]:
    """The lesion segments (lesion-id tag) as the core's ``OutlinedLesion`` on the reference grid, and the liver
    (the segments of role 'liver', one mask image) or None."""
    import numpy as np

    from LiverMetsReviewLib.lesions.one_lesion import mask_image
    from LiverMetsReviewLib.lesions.review import OutlinedLesion

    segmentation = segmentationNode.GetSegmentation()
    lesions, liver = [], []
    for sid in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(sid)
        mask = nodes.segmentMask(segmentationNode, sid, referenceNode)
        if nodes.segmentTag(segment, nodes.ROLE_TAG) == nodes.LIVER:
            liver.append(mask)
            continue
        lesionId = nodes.segmentTag(segment, nodes.LESION_ID)
        if lesionId:
            kind = nodes.segmentTag(segment, nodes.ROLE_TAG) or "lesion"
            lesions.append(OutlinedLesion(lesionId, kind, mask, _seedLps(seedNode, lesionId)))
    liverImage = mask_image(np.any(liver, axis=0), pullImage(referenceNode, "the lesions are measured on its grid, "
                                                                          "so the report")) if liver else None
    return lesions, liverImage


def _storeOnScene(segmentationNode: slicer.vtkMRMLSegmentationNode, written, complete: bool = True) -> None:
    """The same measures on the scene: the Lesions table's key measures and lines, the checklist's values. Values
    measured with a series left out (``complete`` False) are not kept for the checklist (its tag emptied): as the
    checklist does, the lesion is measured again once the reader has hardened the transform."""
    from LiverMetsReviewLib.lesions.one_lesion import key_measures, mask_digest
    from LiverMetsReviewLib.lesions.viewer_lesions import checklist_values

    values = checklist_values(written.review)
    segmentation = segmentationNode.GetSegmentation()
    for it in written.review.lesions:
        segment = segmentation.GetSegment(_segmentIdOf(segmentationNode, it.seed.label))
        measures = key_measures(it.measures)
        nodes.storeMeasures(segment, measures, mask_digest(it.mask))
        nodes.updateDiameterLines(it.seed.label, segment.GetName(), measures)
        segment.SetTag(MEASUREMENTS, attributes.tagJson(values[it.seed.label]) if complete else "")


def _segmentIdOf(segmentationNode: slicer.vtkMRMLSegmentationNode, lesionId: str) -> str:
    segmentation = segmentationNode.GetSegmentation()
    return next(sid for sid in segmentation.GetSegmentIDs()
                if nodes.segmentTag(segmentation.GetSegment(sid), nodes.LESION_ID) == lesionId)


def writeLesions(out: Path, studyFolder: Path | None, segmentationNode, seedNode, notes: list[str]) -> Path | None:
    """Measure the review's lesions as they are and write the lesions folder; None when there is no lesion."""
    from LiverMetsReviewLib.lesions.channels import lesion_channels
    from LiverMetsReviewLib.lesions.viewer_lesions import write_viewer_lesions

    from .lesion_logic import sceneStudy

    segmentationNode = reviewSegmentation(segmentationNode)
    if segmentationNode is None:
        notes.append("The scene has no lesion yet: the report lists none.")
        return None
    study = sceneStudy()
    notes.extend(note for note in study.notes if note not in notes)  # a series the study folder left out, too
    referenceNode = study.nodeOf[id(lesion_channels(study.series).reference)]
    lesions, liver = outlinedLesions(segmentationNode, referenceNode, seedNode)
    if not lesions:
        notes.append("The review segmentation holds no lesion: the report lists none.")
        return None
    written = write_viewer_lesions(study.series, lesions, out, liver_mask=liver, maps=study.maps, study_dir=studyFolder)
    _storeOnScene(segmentationNode, written, complete=not study.notes)
    notes.extend(written.notes)
    return out


def writeSceneFolders(workFolder: Path, segmentationNode=None, seedNode=None) -> SceneFolders:
    """The study and lesions folders of the scene under ``workFolder`` (``study/``, ``lesions/``)."""
    folders = SceneFolders()
    folders.study = writeStudy(workFolder / STUDY_FOLDER, folders.notes)
    folders.lesions = writeLesions(workFolder / LESIONS_FOLDER, folders.study, segmentationNode, seedNode,
                                   folders.notes)
    return folders
