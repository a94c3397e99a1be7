"""The Study section: load a study (DICOM database, folder), check the series' roles, hang the series.

In a reader's order: load -> roles table -> layout; the phantom (a demo and training tool) comes last, folded.
Choosing a series (table row or "Show series") changes one slice view only (``layouts.showInView``), so an
active hanging protocol stays as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterPack

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.roles import role_ids, role_label
from LiverMetsReviewLib.study.hanging import protocol_ids, protocol_label

from . import attributes
from .dicom_database import databaseStudies
from .layouts import FocusTracker, showInView
from .phantom import phantomScenarioLabels, phantomScenarioNames
from .progress import busy
from .section import Section, labelChoices
from .volumes import gridSummary

SCENARIOS = phantomScenarioNames()  # the catalogue's default first
FOLDER_PROMPT = "Choose study folder…"


@parameterPack
class StudyParameters:
    """dicomFolder: a study outside the DICOM database. hangingProtocol: which series the views show side by side.
    displayedVolume: the series shown in one slice view. phantom*: the generated phantom (seed, scenario, field
    strength in T, size)."""

    dicomFolder: Path
    hangingProtocol: Annotated[str, Choice(protocol_ids())] = "overview"
    displayedVolume: vtkMRMLScalarVolumeNode
    phantomScenario: Annotated[str, Choice(SCENARIOS)] = SCENARIOS[0]
    phantomSeed: Annotated[int, WithinRange(0, 999999)] = 0
    phantomFieldStrength: Annotated[float, Choice([1.5, 3.0])] = 1.5
    phantomSize: Annotated[str, Choice(["standard", "small"])] = "standard"


def folderIsSet(folder) -> bool:
    """The unset Path() is '.': never scan the application's working folder."""
    return folder is not None and str(folder) not in ("", ".")


class StudySection(Section):
    UI_FILE = "UI/StudySection.ui"
    PACK = "study"
    SERIES_COLUMNS = (_("Series"), _("Role"), _("Grid"))

    def __init__(self) -> None:
        super().__init__()
        self.focus = FocusTracker()
        self._displayedVolumeID: str | None = None
        self._tableUpdatePending = False
        self._transformObservers: list[tuple] = []  # (volume node, observer tag)

    def setup(self, ui, logic) -> None:
        super().setup(ui, logic)
        ui.seriesTableWidget.setColumnCount(len(self.SERIES_COLUMNS))
        ui.seriesTableWidget.setHorizontalHeaderLabels(list(self.SERIES_COLUMNS))
        ui.seriesTableWidget.connect("cellClicked(int,int)", self.onSeriesCellClicked)
        ui.loadDicomButton.connect("clicked(bool)", self.onLoadDicomButton)
        ui.refreshDatabaseButton.connect("clicked(bool)", self.onRefreshDatabaseButton)
        ui.loadDatabaseStudyButton.connect("clicked(bool)", self.onLoadDatabaseStudyButton)
        ui.showLayoutButton.connect("clicked(bool)", self.onShowLayoutButton)
        ui.generatePhantomButton.connect("clicked(bool)", self.onGeneratePhantomButton)
        self.focus.start()

    def afterBinding(self) -> None:
        labelChoices(self.ui.hangingProtocolComboBox, [protocol_label(p) for p in protocol_ids()])
        labelChoices(self.ui.scenarioComboBox, phantomScenarioLabels(SCENARIOS))
        labelChoices(self.ui.fieldStrengthComboBox, ["1.5 T", "3 T"])
        labelChoices(self.ui.sizeComboBox, [_("Standard"), _("Small (quick checks)")])
        self.onParametersModified()

    def cleanup(self) -> None:
        self.focus.stop()
        self._followTransforms([])

    # ------------------------------------------------------------------------------------------------ state
    def onSceneClosed(self) -> None:
        """A new scene reuses node IDs (vtkMRMLScalarVolumeNode1...): nothing cached may survive."""
        self._displayedVolumeID = None
        self._tableUpdatePending = False
        self.focus.reset()
        self.focus.start()  # the crosshair node of the new scene
        self._transformObservers = []  # the closed scene's nodes are gone with their observers
        self.ui.layoutResultLabel.text = ""
        self.ui.loadResultLabel.text = ""
        self.ui.seriesTableWidget.setRowCount(0)

    def onParametersModified(self) -> None:
        """Show the chosen series in one view when the choice changes; keep the folder button readable."""
        pack = self.pack
        if pack is None:
            return
        self.ui.dicomFolderButton.text = "" if folderIsSet(pack.dicomFolder) else _(FOLDER_PROMPT)
        node = pack.displayedVolume
        nodeID = node.GetID() if node is not None else None
        if nodeID is not None and nodeID != self._displayedVolumeID:
            showInView(node, self.focus.viewName)
        self._displayedVolumeID = nodeID

    # ------------------------------------------------------------------------------------------------ loading
    def _loaded(self, nodes, what: str) -> None:
        notes = getattr(nodes, "notes", [])
        volumes = [n for key, n in nodes.items() if key not in ("ground_truth", "couinaud")]
        text = _("{what}: {count} series stacks with a role.").format(what=what, count=len(volumes))
        self.ui.loadResultLabel.text = "\n".join([text, *notes])
        slicer.util.showStatusMessage(text, 5000)
        self._displayedVolumeID = None  # showStudy put a new background in every view
        self.refresh()

    def onLoadDicomButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the DICOM study."), waitCursor=True):
            folder = self.pack.dicomFolder
            if not folderIsSet(folder):
                raise LiverMetsError("Choose the study folder first (the 'Study folder' button).")
            with busy(_("Reading and classifying {folder}...").format(folder=folder), cancellable=True) as progress:
                nodes = self.logic.loadDicomStudy(folder, progress=progress)
            self._loaded(nodes, _("Study loaded"))

    def onRefreshDatabaseButton(self) -> None:
        """List the studies of Slicer's DICOM database in the picker (study UID as item data)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to read the DICOM database.")):
            combo = self.ui.databaseStudyComboBox
            combo.clear()
            for studyUid, label in databaseStudies():
                combo.addItem(label, studyUid)

    def onLoadDatabaseStudyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the study from the DICOM database."), waitCursor=True):
            studyUid = self.ui.databaseStudyComboBox.currentData
            if not studyUid:
                raise LiverMetsError("Choose a study first (press Refresh to list the DICOM database's studies).")
            with busy(_("Reading and classifying the database study..."), cancellable=True) as progress:
                nodes = self.logic.loadDatabaseStudy(studyUid, progress=progress)
            self._loaded(nodes, _("Study loaded"))

    def onGeneratePhantomButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to generate the phantom."), waitCursor=True):
            p = self.pack
            with busy(_("Generating the phantom...")):
                nodes = self.logic.generatePhantom(p.phantomSeed, p.phantomScenario, p.phantomFieldStrength,
                                                   p.phantomSize)
            self._loaded(nodes, _("Phantom loaded"))

    # ------------------------------------------------------------------------------------------------ layout
    def onShowLayoutButton(self) -> None:
        """Show the chosen hanging protocol with the series and maps in the scene; say what could not be shown."""
        self.ui.layoutResultLabel.text = ""
        with slicer.util.tryWithErrorDisplay(_("Failed to show the layout."), waitCursor=True):
            _plan, shown = self.logic.showHangingProtocol(self.pack.hangingProtocol)
            lines = [f"{view}: {reason}" for view, reason in shown["missing"].items()]
            self.ui.layoutResultLabel.text = "\n".join(lines) if lines else _("All views filled.")

    # ------------------------------------------------------------------------------------------------ table
    def scheduleRefresh(self) -> None:
        """Many nodes arrive at once when a study loads: rebuild the table once, after the burst."""
        if not self._tableUpdatePending:
            self._tableUpdatePending = True
            qt.QTimer.singleShot(0, self.refresh)

    def _followTransforms(self, nodes: list) -> None:
        """Rebuild the table when a series' transform is set, changed or hardened (each fires the volume's
        TransformModifiedEvent): the grid column shows the grid the sections compute on."""
        for node, tag in self._transformObservers:
            node.RemoveObserver(tag)
        event = slicer.vtkMRMLTransformableNode.TransformModifiedEvent
        self._transformObservers = [(node, node.AddObserver(event, lambda caller, ev: self.scheduleRefresh()))
                                    for node in nodes]

    def refresh(self) -> None:
        """One row per scalar volume: name, role drop-down (edits the node attribute), grid."""
        self._tableUpdatePending = False
        table = self.ui.seriesTableWidget
        nodes = self.logic.seriesNodes()
        self._followTransforms(nodes)
        table.setRowCount(len(nodes))
        for row, node in enumerate(nodes):
            nameItem = qt.QTableWidgetItem(node.GetName())
            nameItem.setData(qt.Qt.UserRole, node.GetID())
            nameItem.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
            reason = node.GetAttribute(attributes.ROLE_REASON)
            if reason:
                nameItem.setToolTip(_("Role chosen because: {reason}").format(reason=reason))
            table.setItem(row, 0, nameItem)
            table.setCellWidget(row, 1, self._roleComboBox(node))
            gridItem = qt.QTableWidgetItem(gridSummary(node))
            gridItem.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
            table.setItem(row, 2, gridItem)
        table.resizeColumnsToContents()

    def _roleComboBox(self, node):
        roles = role_ids()
        combo = qt.QComboBox()
        for role in roles:
            combo.addItem(role_label(role), role)
        current = attributes.nodeRole(node)
        combo.setCurrentIndex(roles.index(current) if current in roles else roles.index(attributes.UNASSIGNED))
        combo.setToolTip(_("Role of this series in the study; change it if the automatic one is wrong."))
        nodeID = node.GetID()
        combo.connect("currentIndexChanged(int)", lambda index, nodeID=nodeID, combo=combo: self.onRoleChanged(
            nodeID, combo))
        return combo

    def onRoleChanged(self, nodeID: str, combo) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to change the role.")):
            self.logic.setRole(slicer.mrmlScene.GetNodeByID(nodeID), combo.currentData)

    def onSeriesCellClicked(self, row: int, column: int) -> None:
        item = self.ui.seriesTableWidget.item(row, 0)
        node = slicer.mrmlScene.GetNodeByID(item.data(qt.Qt.UserRole)) if item else None
        if node is not None and self.pack is not None:
            self.pack.displayedVolume = node
