"""A DICOM study in the scene: Slicer's DICOM plugins load the volumes, the core's classifier gives the roles.

Volumes loaded by Slicer's DICOM plugins carry ``DICOM.instanceUIDs`` and sit under patient and study in the
subject hierarchy, so a DICOM SEG or SR can reference them later. Per classified series:

* classic MR files: ``DICOMUtils.loadSeriesByUID`` with the scalar volume plugin only (its sub-series split gives
  one volume per b-value / echo / phase for the usual layouts; the multivolume importer would make one 4-D node);
* enhanced multi-frame MR: no plugin restriction, Slicer picks (in v5.10 and main the scalar volume plugin reads
  the file through ITK/GDCM; MultiVolumeImporter offers a 4-D node): whatever volume holds exactly one stack is
  used, the rest is loaded by the core;
* diffusion with several directions per b-value: the core's trace (the ADC needs it), not one direction.

Each loaded volume is matched to the classifier's stacks by its files (``DICOM.instanceUIDs`` -> the database's
file of each instance; ``LiverMetsReviewLib.study.match``) and gets the stack's role and acquisition attributes.
A stack no Slicer volume holds exactly (merged echoes, enhanced frames) is loaded by the core and put under the
same study; its node carries no instance UIDs, which ``notes`` says. Without an open DICOM database the whole
study is read by the core, and the notes say why.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import slicer

from LiverMetsReviewLib.errors import LiverMetsError

from . import attributes
from .layouts import showStudy
from .phantom import BACKGROUND_ROLES, loadSeries

ENHANCED_MR_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.3")  # enhanced MR, legacy
SCALAR_VOLUME_PLUGIN = "DICOMScalarVolumePlugin"
INSTANCE_UIDS = "DICOM.instanceUIDs"


class LoadedStudy(dict):
    """Node name -> volume node, plus ``notes``: what the reader should know about how the study was loaded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.notes: list[str] = []


def applicationDatabase():
    """Slicer's DICOM database if it is open, else None."""
    database = getattr(slicer, "dicomDatabase", None)  # slicer-class: ctkDICOMDatabase
    return database if database is not None and database.isOpen else None


def classifyOneStudy(path: Path):
    """The core's scan of ``path`` (one study), classified."""
    from LiverMetsReviewLib.study.classify import classify_folder

    if not path.is_dir():
        raise LiverMetsError(f"{path} is not a folder: choose the folder that holds the study's DICOM files.")
    scan = classify_folder(path)
    studies = scan.by_study()
    if not studies:
        raise LiverMetsError(f"No DICOM image series was found in {path}: choose the folder of one MRI study.")
    if len(studies) > 1:
        raise LiverMetsError(f"{path} holds {len(studies)} studies: choose a folder that contains one study only.")
    return scan


def loadDicomStudy(folder: str | Path, show: bool = True, progress: Callable | None = None) -> LoadedStudy:
    """Classify every series under ``folder`` and load those with a role: node name -> volume node.

    With Slicer's DICOM database open, the folder is first imported into it (by reference, nothing is copied:
    ``DICOMUtils.importDicom``), so the volumes come from Slicer's plugins and keep their DICOM identity.
    """
    path = Path(folder)
    scan = classifyOneStudy(path)
    database = applicationDatabase()
    if database is None:
        nodes = LoadedStudy(loadWithCore(scan))
        nodes.notes.append("Slicer's DICOM database is not open, so the study was read by LiverMetsReview itself: the "
                           "volumes carry no DICOM references (needed for DICOM SEG/SR). Open the DICOM module once "
                           "and load the study again.")
    else:
        from DICOMLib import DICOMUtils

        if not DICOMUtils.importDicom(str(path), database):
            raise LiverMetsError(f"Slicer could not import {path} into its DICOM database: see the Python console.")
        nodes = loadThroughSlicer(scan, database, os.path.realpath, progress)
    if show:
        showStudy(next((nodes[r] for r in BACKGROUND_ROLES if r in nodes), None))
    return nodes


def loadWithCore(scan) -> dict[str, Any]:
    """Every series with a role read by the core and pushed (no DICOM identity): the fallback."""
    from LiverMetsReviewLib.study.load import load_study

    return loadSeries(load_study(scan), source="dicom")


def _studyStart(scan) -> float | None:
    times = [s.acquisition_s for s in scan.series if s.acquisition_s is not None]
    return min(times) if times else None


def loadThroughSlicer(scan, database, normalise: Callable[[str], str], progress: Callable | None = None
                      ) -> LoadedStudy:
    """Load each classified series with Slicer's plugins and attach the core's roles (see the module notes).

    ``normalise`` maps a path of the core's scan and a path of the database to one comparable form.
    """
    from LiverMetsReviewLib.roles import UNASSIGNED
    from LiverMetsReviewLib.study.classify import stack_roles_of
    from LiverMetsReviewLib.study.match import needs_trace

    nodes = LoadedStudy()
    t0 = _studyStart(scan)
    wanted = [s for s in scan.series if any(r != UNASSIGNED for r in stack_roles_of(s))]
    if not wanted:
        raise LiverMetsError("No series got a role: check the series in the DICOM module, or load them there and set "
                             "the roles in the table.")
    for step, info in enumerate(wanted):
        if progress is not None:
            progress(step / len(wanted), f"Loading {info.label} ({step + 1} of {len(wanted)})")
        if needs_trace(info):
            nodes.update(_loadStacksWithCore(info, None, t0))
            nodes.notes.append(f"{info.label}: several diffusion directions per b-value; the trace images were "
                               "computed by LiverMetsReview (no DICOM references).")
            continue
        _loadSeriesThroughSlicer(info, database, normalise, t0, nodes, progress)
    return nodes


def _loadSeriesThroughSlicer(info, database, normalise, t0, nodes: LoadedStudy, progress) -> None:
    from DICOMLib import DICOMUtils

    from LiverMetsReviewLib.roles import UNASSIGNED
    from LiverMetsReviewLib.study.match import match_volumes_to_stacks, stack_attributes

    plugins = None if info.sop_class in ENHANCED_MR_SOP_CLASSES else [SCALAR_VOLUME_PLUGIN]
    callback = getattr(progress, "dicomCallback", None)
    loadedIds = DICOMUtils.loadSeriesByUID([info.series_uid], progressCallback=callback,
                                           enabledPluginClassNames=plugins)
    volumes = {}
    for nodeId in loadedIds:
        node = slicer.mrmlScene.GetNodeByID(nodeId)
        if node is not None and node.IsA("vtkMRMLScalarVolumeNode") and not node.IsA("vtkMRMLLabelMapVolumeNode"):
            volumes[nodeId] = node
    files = {nodeId: _instanceFiles(node, database) for nodeId, node in volumes.items()}
    match = match_volumes_to_stacks(info, files, normalise)
    for nodeId, k in sorted(match.matched.items(), key=lambda item: item[1]):
        role, stackMeta, seriesMeta = stack_attributes(info, k, t0)
        node = volumes[nodeId]
        attributes.setSeriesAttributes(node, role, stackMeta, seriesMeta, "dicom")
        if role != UNASSIGNED:
            nodes[_key(info, role, k, nodes)] = node
    leftover = [k for k in match.unmatched if stack_attributes(info, k, t0)[0] != UNASSIGNED]
    for nodeId, _stacks in match.merged.items():
        nodes.notes.append(f"{info.label}: Slicer's volume '{volumes[nodeId].GetName()}' "
                           f"{match.reason(nodeId)}; removed, the stacks were loaded by LiverMetsReview.")
        slicer.mrmlScene.RemoveNode(volumes[nodeId])
    if leftover:
        sibling = next((volumes[i] for i in match.matched), None)
        added = _loadStacksWithCore(info, leftover, t0)
        for node in added.values():
            _putBeside(node, sibling)
        nodes.update(added)
        nodes.notes.append(f"{info.label}: {len(leftover)} stack(s) loaded by LiverMetsReview (no DICOM references).")


def _instanceFiles(node, database) -> list[str]:
    """The database's file of every SOP instance a Slicer volume was read from."""
    uids = (node.GetAttribute(INSTANCE_UIDS) or "").split()
    return [str(database.fileForInstance(uid)) for uid in uids if uid != "Unknown"]


def _key(info, role: str, index: int, taken: dict) -> str:
    """The name the phantom and the study folder use (t2, dwi_b800, multi_echo_gre_e3), unique in ``taken``."""
    from LiverMetsReviewLib.study.classify import stack_roles_of

    same = [k for k, r in enumerate(stack_roles_of(info)) if r == role]
    stack = info.stacks[index]
    if len(same) == 1:
        key = role
    elif stack.b_value is not None:
        key = f"{role}_b{float(stack.b_value):g}"
    else:
        key = f"{role}_e{same.index(index) + 1}"
    return key if key not in taken else f"{key}_{len(taken)}"


def _loadStacksWithCore(info, indices: list[int] | None, t0: float | None) -> dict[str, Any]:
    """Stacks of ``info`` (all with a role when ``indices`` is None) read by the core, one series per role."""
    from LiverMetsReviewLib.roles import UNASSIGNED
    from LiverMetsReviewLib.study.classify import stack_roles_of
    from LiverMetsReviewLib.study.load import combine_trace, load_series

    roles = stack_roles_of(info)
    chosen = indices if indices is not None else list(range(len(info.stacks)))
    byRole: dict[str, list[int]] = defaultdict(list)
    for k in chosen:
        if roles[k] != UNASSIGNED:
            byRole[roles[k]].append(k)
    series = []
    for role, ks in byRole.items():
        loaded = load_series(info, role, stack_indices=ks, t0=t0)
        series.append(combine_trace(loaded) if role == "dwi" else loaded)
    return loadSeries(series, source="dicom")


def _putBeside(node, sibling) -> None:
    """Put ``node`` under the study item that holds ``sibling`` in the subject hierarchy (if there is one)."""
    if sibling is None:
        return
    hierarchy = slicer.mrmlScene.GetSubjectHierarchyNode()  # slicer-class: vtkMRMLSubjectHierarchyNode
    parent = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(sibling))
    if parent:
        hierarchy.SetItemParent(hierarchy.GetItemByDataNode(node), parent)
