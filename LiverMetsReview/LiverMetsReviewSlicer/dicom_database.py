"""A study from Slicer's DICOM database, classified and loaded by the core like a study folder.

The core scans a folder (``LiverMetsReviewLib.study.scan_folder``), while the database knows a study as a list
of files that may lie in several folders (imported by reference) next to other studies' files. So the study's
files are gathered in a temporary folder as links (symbolic, else hard, else copies), scanned there, and the
folder is removed once the series are in the scene.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import slicer

from LiverMetsReviewLib.errors import LiverMetsError

from .dicom_study import loadDicomStudy


def openDatabase():
    """The application's DICOM database, or a sentence saying how to get one."""
    database = getattr(slicer, "dicomDatabase", None)  # slicer-class: ctkDICOMDatabase
    if database is None or not database.isOpen:
        raise LiverMetsError("Slicer's DICOM database is not open: open the DICOM module and import the study "
                             "first.")
    return database


def databaseStudies(database=None) -> list[tuple[str, str]]:
    """(study UID, label) of every study in the database; the label shows patient, date and description."""
    database = database or openDatabase()  # slicer-class: ctkDICOMDatabase
    studies = []
    for patient in database.patients():
        name = database.displayedNameForPatient(patient)
        for study in database.studiesForPatient(patient):
            date = database.fieldForStudy("StudyDate", study)
            description = database.descriptionForStudy(study)
            label = " - ".join(part for part in (name, date, description) if part) or study
            studies.append((study, label))
    return studies


def studyFiles(studyUid: str, database=None) -> list[str]:
    """Every file of the study's series, as the database lists them (files that no longer exist are dropped)."""
    database = database or openDatabase()  # slicer-class: ctkDICOMDatabase
    files = [f for series in database.seriesForStudy(studyUid) for f in database.filesForSeries(series)]
    existing = [f for f in files if os.path.isfile(f)]
    if not existing:
        raise LiverMetsError(f"The DICOM database lists no existing file for study {studyUid}: re-import the study "
                             "in the DICOM module.")
    return existing


def gatherFiles(files: list[str], folder: Path) -> Path:
    """Put ``files`` into ``folder`` under distinct names: a symbolic link, else a hard link, else a copy."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(files):
        target = folder / f"{index:06d}_{os.path.basename(source)}"
        try:
            os.symlink(os.path.abspath(source), target)
        except OSError:  # e.g. Windows without the symlink privilege
            try:
                os.link(source, target)
            except OSError:  # another drive
                shutil.copyfile(source, target)
    return folder


def loadDatabaseStudy(studyUid: str, show: bool = True, database=None) -> dict[str, Any]:
    """Classify and load one study of the DICOM database: node name -> volume node (as a study folder)."""
    files = studyFiles(studyUid, database)
    folder = Path(tempfile.mkdtemp(prefix="LiverMetsReviewStudy", dir=slicer.app.temporaryPath))
    try:
        return loadDicomStudy(gatherFiles(files, folder), show=show)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
