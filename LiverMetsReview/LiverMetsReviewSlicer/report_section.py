"""The Report section: the reading as HTML, PDF and plain text, opened, copied, or exported to DICOM.

Thin: one button (Generate) writes, under the report folder, the scene as the folders the core reads
(``report_scene``: ``study/`` from the role volumes, with ``dicom_sources.json`` for volumes read from Slicer's DICOM
database; ``lesions/`` from the review segmentation measured as it is now), brings the checklist's review.json up to
date with those measures, and writes the core's report (``LiverMetsReviewLib.report.write_report``) with the PDF laid
out by Slicer's own Qt (``qt.QTextDocument`` + ``qt.QPdfWriter``). A lesions or study folder chosen in the section
(the command line's) is used instead of the scene's. DICOM SEG + SR come from
``LiverMetsReviewLib.report.dicom_export.write_dicom`` (needs highdicom, imported lazily) on the same folders and are
added to Slicer's DICOM database, from where the DICOM module sends them to PACS.

The module widget hands this section the Checklist section (``checklist``): review.json is the checklist's, so
Generate asks it for its folder and to recompute the review from the scene (answers kept), instead of keeping a
second copy of that logic here.
"""

from __future__ import annotations

from pathlib import Path

import qt
import slicer
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import parameterPack

from LiverMetsReviewLib.errors import LiverMetsError

from .section import Section

FORMATS = ("html", "pdf", "txt")


@parameterPack
class ReportParameters:
    """outputFolder: where the report is written (empty: 'report' beside review.json). lesionsFolder, studyFolder:
    a 'livermets measure' output and a study folder to report instead of the scene's (empty: the scene's lesions
    and volumes, written into the report folder's 'lesions' and 'study')."""

    outputFolder: Path
    lesionsFolder: Path
    studyFolder: Path


def _given(path) -> Path | None:
    return None if str(path) in ("", ".") else Path(path)


def reportInputs(reviewFolder, lesionsFolder=None, studyFolder=None):
    """The core's ReportInputs from the section's folders (an empty folder: None, found from review.json)."""
    from LiverMetsReviewLib.report import ReportInputs

    review = _given(reviewFolder)
    if review is None or not (review / "review.json").exists():
        raise LiverMetsError("There is no review to report yet: start the checklist (Checklist section) first.")
    return ReportInputs(review, _given(lesionsFolder), _given(studyFolder))


def resultText(files: list[Path], notes: list[str]) -> str:
    return "\n".join([_("Wrote {files}").format(files=", ".join(str(f) for f in files)), *notes])


class ReportSection(Section):
    UI_FILE = "UI/ReportSection.ui"
    PACK = "report"

    def __init__(self) -> None:
        super().__init__()
        self.files: list[Path] = []
        self.webWidget = None
        self.checklist = None  # the Checklist section (set by the module widget): review.json's folder and refresh

    def setup(self, ui, logic) -> None:
        super().setup(ui, logic)
        ui.generateButton.connect("clicked(bool)", self.onGenerate)
        ui.openButton.connect("clicked(bool)", self.openInSlicer)
        ui.browserButton.connect("clicked(bool)", self.openInBrowser)
        ui.copyTextButton.connect("clicked(bool)", self.copyText)
        ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)

    def onSceneClosed(self) -> None:
        self.files = []
        self.ui.reportResultLabel.text = ""

    def cleanup(self) -> None:
        if self.webWidget is not None:
            self.webWidget.close()
            self.webWidget = None

    # ---------------------------------------------------------------- folders

    def inputs(self):
        return reportInputs(self.params.checklist.reviewFolder, self.pack.lesionsFolder, self.pack.studyFolder)

    def outputFolder(self) -> Path:
        folder = _given(self.pack.outputFolder)
        if folder is None:
            folder = Path(self.params.checklist.reviewFolder) / "report"
            self.pack.outputFolder = folder
        return folder

    def sceneInputs(self, notes: list[str]):
        """The scene written as the report's folders and review.json brought up to date; the core's ReportInputs."""
        from LiverMetsReviewLib.report import ReportInputs

        from .report_scene import LESIONS_FOLDER, STUDY_FOLDER, writeLesions, writeStudy

        if self.checklist is None:
            return self.inputs()
        reviewFolder = self.checklist.sidecarPath().parent  # chosen (and recorded) by the checklist
        out = self.outputFolder()
        study = _given(self.pack.studyFolder) or writeStudy(out / STUDY_FOLDER, notes)
        lesions = _given(self.pack.lesionsFolder)
        if lesions is None:
            lesionsParams = self.params.lesions
            lesions = writeLesions(out / LESIONS_FOLDER, study, lesionsParams.segmentation, lesionsParams.seeds, notes)
        self.checklist.load()  # review.json from the measures just stored on the segments, the answers kept
        return ReportInputs(reviewFolder, lesions, study)

    def reportFile(self, name: str) -> Path:
        path = self.outputFolder() / name
        if not path.exists():
            raise LiverMetsError(f"{path} does not exist yet: press 'Generate report' first.")
        return path

    # ---------------------------------------------------------------- actions

    def generate(self) -> list[Path]:
        """Write the scene's folders, then report.html, report.pdf (Slicer's Qt) and report.txt; returns the files."""
        from LiverMetsReviewLib.report import write_report

        notes: list[str] = []
        self.files = write_report(self.sceneInputs(notes), self.outputFolder(), FORMATS, qt=qt, notes=notes)
        self.ui.reportResultLabel.text = resultText(self.files, notes)
        return self.files

    def onGenerate(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to write the report."), waitCursor=True):
            self.generate()

    def openInSlicer(self) -> None:
        """report.html in Slicer's web view (a window of its own)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to open the report."), waitCursor=True):
            url = qt.QUrl.fromLocalFile(str(self.reportFile("report.html"))).toString()
            if self.webWidget is None:
                self.webWidget = slicer.qSlicerWebWidget()
                self.webWidget.setWindowTitle(_("Liver MRI lesion report"))
                self.webWidget.resize(1000, 800)
            self.webWidget.url = url
            self.webWidget.show()

    def openInBrowser(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to open the report."), waitCursor=True):
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self.reportFile("report.html"))))

    def copyText(self) -> str:
        """The impression (report.txt) to the clipboard, to paste into the RIS."""
        with slicer.util.tryWithErrorDisplay(_("Failed to copy the text report."), waitCursor=True):
            text = self.reportFile("report.txt").read_text(encoding="utf-8")
            qt.QApplication.clipboard().setText(text)
            self.ui.reportResultLabel.text = _("The text report is on the clipboard.")
            return text
        return ""

    def exportDicom(self) -> list[Path]:
        """SEG + SR of the review written by the core, then added to Slicer's DICOM database."""
        try:
            from LiverMetsReviewLib.report.dicom_export import write_dicom
        except ImportError as exc:
            raise LiverMetsError("DICOM export is not available in this version of LiverMetsReview "
                                 f"({exc}).") from exc
        try:
            import highdicom  # noqa: F401  (the export needs it; Slicer may not ship it)
        except ImportError as exc:
            raise LiverMetsError("DICOM SEG and SR need the 'highdicom' Python package, which this Slicer does not "
                                 "ship: install it with slicer.util.pip_install('highdicom') and try again.") from exc
        notes: list[str] = []
        files = write_dicom(self.sceneInputs(notes), self.outputFolder() / "dicom")
        database = getattr(slicer, "dicomDatabase", None)  # slicer-class: ctkDICOMDatabase
        if database is None or not database.isOpen:
            raise LiverMetsError(f"Wrote {len(files)} DICOM files to {self.outputFolder() / 'dicom'}, but Slicer's "
                                 "DICOM database is not open: open the DICOM module once, then export again.")
        from DICOMLib import DICOMUtils

        DICOMUtils.importDicom(str(self.outputFolder() / "dicom"), database)
        self.ui.reportResultLabel.text = _("Added {n} DICOM files (SEG, SR) to the DICOM database.").format(
            n=len(files))
        return files

    def onExportDicom(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to export DICOM SEG and SR."), waitCursor=True):
            self.exportDicom()
