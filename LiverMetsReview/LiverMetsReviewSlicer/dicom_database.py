"""A study from Slicer's DICOM database: classified by the core, loaded by Slicer's DICOM plugins.

The core scans a folder (``LiverMetsReviewLib.study.scan_folder``), while the database knows a study as a list
of files that may lie in several folders (imported by reference) next to other studies' files. So the study's
files are gathered in a temporary folder as links (symbolic, else hard, else copies) and classified there; the
volumes are then loaded from the database by Slicer's plugins (``dicom_study.loadThroughSlicer``), matched to
the classified stacks through the link -> database file map, and the folder is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import slicer

from LiverMetsReviewLib.errors import LiverMetsError

from .dicom_study import LoadedStudy, classifyOneStudy, loadDicomStudy, loadThroughSlicer  # noqa: F401
from .layouts import showStudy
from .phantom import BACKGROUND_ROLES


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


def gatherFiles(files: list[str], folder: Path) -> dict[str, str]:
    """Put ``files`` into ``folder`` under distinct names (a symbolic link, else a hard link, else a copy); returns
    link path -> the database's file."""
    folder.mkdir(parents=True, exist_ok=True)
    links: dict[str, str] = {}
    for index, source in enumerate(files):
        target = folder / f"{index:06d}_{os.path.basename(source)}"
        try:
            os.symlink(os.path.abspath(source), target)
        except OSError:  # e.g. Windows without the symlink privilege
            try:
                os.link(source, target)
            except OSError:  # another drive
                shutil.copyfile(source, target)
        links[os.path.normpath(str(target))] = source
    return links


def loadDatabaseStudy(studyUid: str, show: bool = True, database=None, progress=None) -> LoadedStudy:
    """Classify and load one study of the DICOM database: node name -> volume node (with ``notes``)."""
    database = database or openDatabase()
    files = studyFiles(studyUid, database)
    folder = Path(tempfile.mkdtemp(prefix="LiverMetsReviewStudy", dir=slicer.app.temporaryPath))
    try:
        links = gatherFiles(files, folder)
        scan = classifyOneStudy(folder)

        def normalise(path: str) -> str:
            path = os.path.normpath(path)
            return os.path.realpath(links.get(path, path))

        nodes = loadThroughSlicer(scan, database, normalise, progress)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if show:
        showStudy(next((nodes[r] for r in BACKGROUND_ROLES if r in nodes), None))
    return nodes
