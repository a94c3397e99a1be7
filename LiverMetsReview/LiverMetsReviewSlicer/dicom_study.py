"""A DICOM study folder in the scene: the core scans, classifies and loads; this module pushes the series.

Reading DICOM headers and assigning roles is the core's job (``LiverMetsReviewLib.study``, the same code as
``livermets classify`` / ``livermets load``); here the result becomes volume nodes whose role attribute the
reader can change in the series table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from LiverMetsReviewLib.errors import LiverMetsError

from .layouts import showStudy
from .phantom import BACKGROUND_ROLES, loadSeries


def loadDicomStudy(folder: str | Path, show: bool = True) -> dict[str, Any]:
    """Classify every series under ``folder`` and load those with a role: node name -> volume node."""
    from LiverMetsReviewLib.study.classify import classify_folder
    from LiverMetsReviewLib.study.load import load_study

    path = Path(folder)
    if not path.is_dir():
        raise LiverMetsError(f"{path} is not a folder: choose the folder that holds the study's DICOM files.")
    scan = classify_folder(path)
    studies = scan.by_study()
    if not studies:
        raise LiverMetsError(f"No DICOM image series was found in {path}: choose the folder of one MRI study.")
    if len(studies) > 1:
        raise LiverMetsError(f"{path} holds {len(studies)} studies: choose a folder that contains one study only.")
    nodes = loadSeries(load_study(scan), source="dicom")
    if show:
        showStudy(next((nodes[r] for r in BACKGROUND_ROLES if r in nodes), None))
    return nodes
