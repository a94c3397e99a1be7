"""The Lesions section: "Add lesion", a click in any view, and the lesion is a segment with its measures.

A click is a control point placed in the review's seed point list (Slicer's own place mode, so it works in
every slice and 3-D view); when its position is defined, the core outlines the lesion from every series
(``lesion_logic.segmentAt``). The table is rebuilt from the scene alone (segment names and tags), so a saved
and reopened scene shows the same table. An edit in the Segment Editor changes a segment's mask: the section
notices it (the segmentation's modified events, debounced) and measures the lesion again; "Re-measure" does
the same on demand.
"""

from __future__ import annotations

from typing import Annotated

import qt
import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterPack
from slicer.util import VTKObservationMixin

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.resources import load_json

from . import lesion_logic
from . import lesion_nodes as nodes
from .section import Section, labelChoices

LESION_KINDS = [t["lmrKind"] for c in load_json("lesion_terminology.json")["SegmentationCodes"]["Category"]
                for t in c["Type"] if t["lmrKind"] != nodes.LIVER]
EDIT_CHECK_DELAY_MS = 700  # after the last brush stroke: re-measure once, not on every stroke


@parameterPack
class LesionsParameters:
    """segmentation / seeds / liverSeeds: the review's nodes; referenceVolume: the grid segments are drawn on;
    lesionType: the type of the next lesion."""

    segmentation: vtkMRMLSegmentationNode
    seeds: vtkMRMLMarkupsFiducialNode
    liverSeeds: vtkMRMLMarkupsFiducialNode
    referenceVolume: vtkMRMLScalarVolumeNode
    lesionType: Annotated[str, Choice(LESION_KINDS)] = "metastasis"


class LesionsSection(Section, VTKObservationMixin):
    UI_FILE = "UI/LesionsSection.ui"
    PACK = "lesions"

    def __init__(self) -> None:
        Section.__init__(self)
        VTKObservationMixin.__init__(self)
        self._observed: tuple = (None, None, None)
        self._busy = False
        self._editTimer = None
        self._importObserver = None

    def setup(self, ui, logic) -> None:
        super().setup(ui, logic)
        ui.lesionTableWidget.setColumnCount(len(nodes.TABLE_COLUMNS))
        ui.lesionTableWidget.setHorizontalHeaderLabels(list(nodes.TABLE_COLUMNS))
        ui.lesionTableWidget.connect("cellClicked(int,int)", lambda row, col: self.jumpToLesion(self.selectedId()))
        ui.addLesionButton.connect("clicked(bool)", lambda: self.startPlacing(self.seedList()))
        ui.liverClickButton.connect("clicked(bool)", lambda: self.startPlacing(self.liverSeedList()))
        ui.findLiverButton.connect("clicked(bool)", lambda: self.findLiver(None))
        ui.jumpButton.connect("clicked(bool)", lambda: self.jumpToLesion(self.selectedId()))
        ui.remeasureButton.connect("clicked(bool)", lambda: self.remeasure([self.selectedId()]))
        ui.editButton.connect("clicked(bool)", self.editInSegmentEditor)
        ui.renameButton.connect("clicked(bool)", self.renameSelected)
        ui.setTypeButton.connect("clicked(bool)", self.setTypeOfSelected)
        ui.deleteButton.connect("clicked(bool)", self.deleteSelected)
        self._editTimer = qt.QTimer()
        self._editTimer.setSingleShot(True)
        self._editTimer.setInterval(EDIT_CHECK_DELAY_MS)
        self._editTimer.connect("timeout()", self.remeasureEdited)
        # vtkMRMLScene::Import fills the parameter node while it adds the nodes and reads the segments from their
        # files only afterwards: the table of an opened scene is built when the import has ended.
        self._importObserver = slicer.mrmlScene.AddObserver(slicer.mrmlScene.EndImportEvent, self.onSceneImported)

    def afterBinding(self) -> None:
        labelChoices(self.ui.lesionTypeComboBox, [k.replace("_", " ") for k in LESION_KINDS])
        self._observe()
        self.refreshTable()
        if self._editTimer is not None:  # back from the Segment Editor: measure what was edited there
            self._editTimer.start()

    def onParametersModified(self) -> None:
        if slicer.mrmlScene.IsImporting():
            return  # the segments are not read yet: onSceneImported shows them
        if self._observe():  # other review nodes: show their lesions
            self.refreshTable()

    def onSceneImported(self, caller=None, event=None) -> None:
        """A scene was opened: its review nodes and their segments are complete now."""
        if self.pack is not None:
            self._observe()
            self.refreshTable()

    def onSceneClosed(self) -> None:
        self.removeObservers()
        self._observed = (None, None, None)
        self.ui.lesionTableWidget.setRowCount(0)
        self.ui.lesionsResultLabel.text = ""

    def cleanup(self) -> None:
        self.removeObservers()
        if self._importObserver is not None:
            slicer.mrmlScene.RemoveObserver(self._importObserver)
            self._importObserver = None
        if self._editTimer is not None:
            self._editTimer.stop()

    # ------------------------------------------------------------------------------------------ scene <-> review

    def review(self) -> lesion_logic.Review:
        p = self.pack
        return lesion_logic.Review(p.segmentation, p.seeds, p.referenceVolume)

    def keep(self, review: lesion_logic.Review) -> None:
        """Nodes the logic created go into the parameters (saved with the scene)."""
        p = self.pack
        if p.segmentation is not review.segmentation:
            p.segmentation = review.segmentation
        if p.referenceVolume is not review.reference:
            p.referenceVolume = review.reference
        self._observe()

    def seedList(self) -> vtkMRMLMarkupsFiducialNode:
        if self.pack.seeds is None:
            self.pack.seeds = nodes.newPointList(_("Lesion seeds"), "seeds")
        return self.pack.seeds

    def liverSeedList(self) -> vtkMRMLMarkupsFiducialNode:
        if self.pack.liverSeeds is None:
            self.pack.liverSeeds = nodes.newPointList(_("Liver seed"), "liver seed")
        return self.pack.liverSeeds

    def _observe(self) -> bool:
        """Follow the seed lists (a placed point) and the segmentation (an edit), whichever nodes are current;
        True when they changed."""
        p = self.pack
        current = (None, None, None) if p is None else (p.seeds, p.liverSeeds, p.segmentation)
        if all(a is b for a, b in zip(current, self._observed, strict=True)):
            return False
        self.removeObservers()
        seeds, liverSeeds, segmentation = current
        event = slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent
        if seeds is not None:
            self.addObserver(seeds, event, self.onSeedPlaced)
        if liverSeeds is not None:
            self.addObserver(liverSeeds, event, self.onLiverSeedPlaced)
        if segmentation is not None:
            for event in (slicer.vtkSegmentation.SourceRepresentationModified, slicer.vtkSegmentation.SegmentModified):
                self.addObserver(segmentation.GetSegmentation(), event, self.onSegmentationModified)
        self._observed = current
        return True

    # ------------------------------------------------------------------------------------------ adding lesions

    def startPlacing(self, pointList) -> None:
        """Slicer's place mode on ``pointList``: the next click in any view places one control point."""
        self._observe()  # a list created just now is followed before the click, not only once the node's events ran
        markupsLogic = slicer.modules.markups.logic()
        markupsLogic.SetActiveList(pointList)
        markupsLogic.StartPlaceMode(False)
        self.ui.lesionsResultLabel.text = _("Click in any view.")

    def onSeedPlaced(self, caller=None, event=None) -> None:
        """A point placed in the seed list: segmented once Slicer has finished placing it.

        The event fires from inside the markups code that then still uses the point's index (read in Slicer
        v5.12.3: vtkMRMLMarkupsNode::AddControlPoint returns it; a click goes through
        vtkMRMLMarkupsDisplayNode::UpdateActiveControlPointWorld, whose index vtkSlicerMarkupsWidget::PlacePoint
        makes the active control point). A refused point removed here would leave them a stale index, and the
        core's work and an error dialog would run inside the view's mouse event: both wait for the event loop."""
        if not self._busy:
            qt.QTimer.singleShot(0, self._segmentPlacedSeeds)

    def _segmentPlacedSeeds(self) -> None:
        if self.pack is not None and self.pack.seeds is not None and not self._busy:  # the scene may have closed
            self.segmentPendingSeeds()

    def addLesionAt(self, rasPoint, kind: str | None = None) -> str | None:
        """A click at ``rasPoint`` (RAS mm) without the mouse: scripts and the self-test take this path.
        Returns the new lesion's id, None when the core refused the point (the reason is in the result text)."""
        if kind:
            self.pack.lesionType = kind
        seeds = self.seedList()
        pointId = seeds.GetNthControlPointID(seeds.AddControlPoint(list(rasPoint), ""))
        self.segmentPendingSeeds()  # now: the call onSeedPlaced deferred will find nothing left to do
        index = seeds.GetControlPointIndexByID(pointId)
        return nodes.seedLesionId(seeds.GetNthControlPointDescription(index)) if index >= 0 else None

    def segmentPendingSeeds(self) -> None:
        """Every placed but unsegmented seed becomes a lesion; a refused one is removed, with the reason shown.
        The scene's series are pulled once for them all; the series left out (a warping transform) are named."""
        seeds: vtkMRMLMarkupsFiducialNode = self.pack.seeds
        messages, notes = [], []
        self._busy = True
        try:
            with slicer.util.tryWithErrorDisplay(_("Failed to add the lesion."), waitCursor=True):
                pending = nodes.pendingSeeds(seeds)
                study = self._sceneStudyFor(seeds, pending, messages) if pending else None
                if study is not None:
                    notes = study.notes
                    for index in reversed(pending):
                        messages.append(self._segmentSeed(seeds, index, study))
        finally:
            self._busy = False
        self.refreshTable()
        if messages:  # (a second call finds nothing pending: keep the first call's message)
            self.ui.lesionsResultLabel.text = "\n".join([*reversed(messages), *notes])

    def _sceneStudyFor(self, seeds: vtkMRMLMarkupsFiducialNode, pending: list[int], messages: list[str]):
        """The scene's series for the pending seeds, or None (the seeds removed, the reason in ``messages``) when
        the series the lesions are drawn on cannot be used."""
        try:
            return lesion_logic.sceneStudy(self.pack.referenceVolume)
        except LiverMetsError as exc:
            self._removePoints(seeds, pending)
            messages.append(_("No lesion added: {reason}").format(reason=exc))
            return None
        except Exception:
            self._removePoints(seeds, pending)  # no seed without its segment
            raise

    @staticmethod
    def _removePoints(seeds: vtkMRMLMarkupsFiducialNode, indices: list[int]) -> None:
        for index in reversed(indices):
            seeds.RemoveNthControlPoint(index)

    def _segmentSeed(self, seeds: vtkMRMLMarkupsFiducialNode, index: int, study) -> str:
        review = self.review()
        lesionId = nodes.nextLesionId([*nodes.lesionSegmentIds(review.segmentation),
                                       *(nodes.seedLesionId(seeds.GetNthControlPointDescription(i)) or ""
                                         for i in range(seeds.GetNumberOfControlPoints()))])
        kind = self.pack.lesionType
        ras = [0.0, 0.0, 0.0]
        seeds.GetNthControlPointPositionWorld(index, ras)
        seeds.SetNthControlPointDescription(index, nodes.seedDescription(lesionId, kind))
        try:
            measures = lesion_logic.segmentAt(review, ras, lesionId, kind, study=study)
        except LiverMetsError as exc:  # the core's refusal (a seed in a vessel...) is the reader's message
            seeds.RemoveNthControlPoint(index)
            self.keep(review)
            return _("No lesion added: {reason}").format(reason=exc)
        except Exception:
            seeds.RemoveNthControlPoint(index)  # no seed without its segment
            raise
        seeds.SetNthControlPointLabel(index, lesionId)
        self.keep(review)
        row = nodes.tableRow(lesionId, kind, measures)
        return _("{id}: {long} x {short} mm, {volume} mL").format(id=lesionId, long=row[3], short=row[4],
                                                                   volume=row[5])

    # ------------------------------------------------------------------------------------------ liver

    def onLiverSeedPlaced(self, caller=None, event=None) -> None:
        """The liver is outlined once Slicer has finished placing the point (see ``onSeedPlaced``)."""
        qt.QTimer.singleShot(0, self._findLiverAtSeed)

    def _findLiverAtSeed(self) -> None:
        pointList: vtkMRMLMarkupsFiducialNode | None = self.pack.liverSeeds if self.pack is not None else None
        placed = nodes.definedPoints(pointList) if pointList is not None else []
        if not placed:
            return
        index = placed[-1]  # the point just placed (not a preview point of a persistent place mode)
        ras = [0.0, 0.0, 0.0]
        pointList.GetNthControlPointPositionWorld(index, ras)
        pointList.SetNthControlPointLabel(index, _("Liver seed"))
        self.findLiver(ras)

    def findLiver(self, rasPoint=None) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to outline the liver."), waitCursor=True):
            review = self.review()
            result = lesion_logic.findLiver(review, rasPoint)
            self.keep(review)
            self.ui.lesionsResultLabel.text = "\n".join(
                [_("Liver: {volume:.0f} mL, outlined on {series}.").format(volume=result["volume_ml"],
                                                                          series=result["series"]),
                 *result["notes"]])

    # ------------------------------------------------------------------------------------------ the table

    def refreshTable(self) -> None:
        table = self.ui.lesionTableWidget
        segmentation: vtkMRMLSegmentationNode | None = self.pack.segmentation if self.pack is not None else None
        ids = nodes.lesionSegmentIds(segmentation)
        table.setRowCount(len(ids))
        for row, sid in enumerate(ids):
            segment = segmentation.GetSegmentation().GetSegment(sid)
            texts = nodes.tableRow(segment.GetName(), nodes.segmentTag(segment, nodes.ROLE_TAG),
                                   nodes.storedMeasures(segment))
            for col, text in enumerate(texts):
                item = qt.QTableWidgetItem(text)
                item.setData(qt.Qt.UserRole, sid)
                table.setItem(row, col, item)

    def selectedId(self) -> str | None:
        table = self.ui.lesionTableWidget
        row = table.currentRow()
        item = table.item(row, 0) if row >= 0 else None
        return item.data(qt.Qt.UserRole) if item is not None else None

    def jumpToLesion(self, lesionId: str | None) -> None:
        """Centre every slice view on the lesion's centroid (its seed when it has no measures)."""
        if lesionId is None:
            return
        segmentation: vtkMRMLSegmentationNode = self.pack.segmentation
        segment = segmentation.GetSegmentation().GetSegment(lesionId)
        centroid = nodes.storedMeasures(segment).get("centroid_lps")
        seeds: vtkMRMLMarkupsFiducialNode = self.pack.seeds
        index = nodes.seedIndex(seeds, lesionId)
        if centroid:
            ras = nodes.lpsToRas(centroid)
        elif index >= 0:
            ras = [0.0, 0.0, 0.0]
            seeds.GetNthControlPointPositionWorld(index, ras)
        else:
            return
        slicer.modules.markups.logic().JumpSlicesToLocation(ras[0], ras[1], ras[2], True)

    # ------------------------------------------------------------------------------------------ edits

    def remeasure(self, lesionIds) -> list[str]:
        """Measure the lesions again; returns the notes on series left out (shown by the caller)."""
        notes: list[str] = []
        with slicer.util.tryWithErrorDisplay(_("Failed to measure the lesion."), waitCursor=True):
            review = self.review()
            study = lesion_logic.sceneStudy(review.reference)
            notes = study.notes
            self._busy = True
            try:
                for lesionId in [i for i in lesionIds if i]:
                    lesion_logic.measure(review, lesionId, study=study)
            finally:
                self._busy = False
            self.refreshTable()
        if notes:
            self.ui.lesionsResultLabel.text = "\n".join(notes)
        return notes

    def onSegmentationModified(self, caller=None, event=None) -> None:
        if not self._busy and self._editTimer is not None:
            self._editTimer.start()

    def remeasureEdited(self) -> None:
        """Lesions whose mask changed since they were measured (a Segment Editor edit) are measured again."""
        if self.pack is None or self.pack.segmentation is None or self.pack.referenceVolume is None:
            return
        edited = lesion_logic.editedLesions(self.review())
        if edited:
            notes = self.remeasure(edited)
            self.ui.lesionsResultLabel.text = "\n".join(
                [_("Measured again after an edit: {ids}").format(ids=", ".join(edited)), *notes])
        else:
            self.refreshTable()  # a rename or a type change made elsewhere

    def editInSegmentEditor(self) -> None:
        """Open the Segment Editor on the review segmentation, the selected lesion (or the liver) chosen."""
        p = self.pack
        if p.segmentation is None:
            self.ui.lesionsResultLabel.text = _("Add a lesion or find the liver first.")
            return
        segmentId = self.selectedId() or nodes.LIVER
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.util.getModuleWidget("SegmentEditor").editor  # slicer-class: qMRMLSegmentEditorWidget
        editor.setSegmentationNode(p.segmentation)
        editor.setSourceVolumeNode(p.referenceVolume)
        editor.setCurrentSegmentID(segmentId)

    def renameSelected(self) -> None:
        lesionId, name = self.selectedId(), self.ui.lesionNameLineEdit.text.strip()
        if lesionId and name:
            nodes.renameLesion(self.pack.segmentation, self.pack.seeds, lesionId, name)
            self.ui.lesionNameLineEdit.text = ""
            self.refreshTable()

    def setTypeOfSelected(self) -> None:
        lesionId = self.selectedId()
        if lesionId:
            kind = self.pack.lesionType
            nodes.setKind(self.pack.segmentation.GetSegmentation().GetSegment(lesionId), kind)
            index = nodes.seedIndex(self.pack.seeds, lesionId)
            if index >= 0:
                self.pack.seeds.SetNthControlPointDescription(index, nodes.seedDescription(lesionId, kind))
            self.refreshTable()

    def deleteSelected(self) -> None:
        lesionId = self.selectedId()
        if lesionId:
            self._busy = True
            try:
                nodes.removeLesion(self.pack.segmentation, self.pack.seeds, lesionId)
            finally:
                self._busy = False
            self.refreshTable()
