"""LiverMetsReview: a reading aid for gadoxetate liver MRI (3D Slicer scripted module).

The module is a thin shell: the computations live in the headless core ``LiverMetsReviewLib`` (also used by
the ``livermets`` command line), the scene conversions in ``LiverMetsReviewSlicer``.
"""

import os
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from LiverMetsReviewSlicer import attributes, hanging
from LiverMetsReviewSlicer import maps as sceneMaps
from LiverMetsReviewSlicer.dicom_database import databaseStudies, loadDatabaseStudy
from LiverMetsReviewSlicer.dicom_study import loadDicomStudy
from LiverMetsReviewSlicer.layouts import showStudy
from LiverMetsReviewSlicer.phantom import (
    COUINAUD_KEY,
    SEGMENTATION_KEY,
    generatePhantomStudy,
    loadPhantomStudy,
    phantomScenarioNames,
    stackNodeName,
)
from LiverMetsReviewSlicer.progress import busy
from LiverMetsReviewSlicer.sample_data import registerSampleData
from LiverMetsReviewSlicer.volumes import gridSummary, lpsToRas, worldLpsToIjk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.roles import role_ids, role_label
from LiverMetsReviewLib.study.hanging import protocol_ids, protocol_label

#
# LiverMetsReview
#


class LiverMetsReview(ScriptedLoadableModule):
    """Module description shown in Slicer's Help & Acknowledgement panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LiverMetsReview")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["LiverMetsReview developers"]
        self.parent.helpText = _("""
Supports the reading of gadoxetate (Gd-EOB-DTPA) liver MRI in patients with known or suspected liver
metastases. <b>Study</b>: loads a DICOM study and proposes a role for each series (dual-echo T1, Dixon, T2,
diffusion, dynamic phases up to the hepatobiliary phase), which the reader checks and corrects in the table; or
generates a digital phantom with known ground truth for training and testing. <b>Maps</b>: ADC
(10<sup>-6</sup> mm<sup>2</sup>/s), fat fraction (in/opposed phase, Dixon, multi-echo PDFF) and relative
enhancement (percent), R2* (1/s), series alignment; masked voxels and warnings are listed. World coordinates of
the computations are LPS; Slicer shows RAS.
The module supports the radiologist's reading and never makes a diagnosis: every automatic result is evidence
that the reader accepts or overrides.
See the <a href="https://github.com/livermetsreview/LiverMetsReview">project page</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the LiverMetsReview developers. Built on 3D Slicer's scripted module template and its
SimpleITK bridge (sitkUtils).
""")
        # The phantom appears in the Sample Data module once the application has started.
        slicer.app.connect("startupCompleted()", lambda: registerSampleData(self._iconsPath()))

    def _iconsPath(self) -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", "Icons")


#
# LiverMetsReviewParameterNode
#

SCENARIOS = phantomScenarioNames()  # the catalogue's default first
DEFAULT_SCENARIO = SCENARIOS[0]


@parameterNodeWrapper
class LiverMetsReviewParameterNode:
    """GUI state saved with the scene.

    phantomScenario, phantomSeed, phantomFieldStrength (T), phantomSize - options of the generated phantom.
    dicomFolder - folder of a DICOM study to load. hangingProtocol - which series the views show side by side.
    adcMethod - ADC fit (log-linear, weighted, or Rician-corrected non-linear); enhancementPhase - phase compared
    with the pre-contrast T1. alignReferenceVolume, alignMovingVolume, alignAffine - series alignment.
    displayedVolume - the series shown in the slice views.
    """

    phantomScenario: Annotated[str, Choice(SCENARIOS)] = DEFAULT_SCENARIO
    phantomSeed: Annotated[int, WithinRange(0, 999999)] = 0
    phantomFieldStrength: Annotated[float, Choice([1.5, 3.0])] = 1.5
    phantomSize: Annotated[str, Choice(["standard", "small"])] = "standard"
    dicomFolder: Path
    hangingProtocol: Annotated[str, Choice(protocol_ids())] = "overview"
    adcMethod: Annotated[str, Choice(list(sceneMaps.ADC_METHODS))] = "lls"
    enhancementPhase: Annotated[str, Choice(list(sceneMaps.CONTRAST_PHASES))] = "t1_hepatobiliary"
    alignReferenceVolume: vtkMRMLScalarVolumeNode
    alignMovingVolume: vtkMRMLScalarVolumeNode
    alignAffine: bool = False
    displayedVolume: vtkMRMLScalarVolumeNode


#
# LiverMetsReviewWidget
#


class LiverMetsReviewWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the .ui to the parameter node and keeps the series table in step with the scene."""

    SERIES_COLUMNS = (_("Series"), _("Role"), _("Grid"))

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._tableUpdatePending = False
        self._displayedVolumeID = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/LiverMetsReview.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = LiverMetsReviewLogic()

        self.ui.seriesTableWidget.setColumnCount(len(self.SERIES_COLUMNS))
        self.ui.seriesTableWidget.setHorizontalHeaderLabels(list(self.SERIES_COLUMNS))

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onSceneNodesChanged)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeRemovedEvent, self.onSceneNodesChanged)

        self.ui.generatePhantomButton.connect("clicked(bool)", self.onGeneratePhantomButton)
        self.ui.loadDicomButton.connect("clicked(bool)", self.onLoadDicomButton)
        self.ui.refreshDatabaseButton.connect("clicked(bool)", self.onRefreshDatabaseButton)
        self.ui.loadDatabaseStudyButton.connect("clicked(bool)", self.onLoadDatabaseStudyButton)
        self.ui.showLayoutButton.connect("clicked(bool)", self.onShowLayoutButton)
        self.ui.hangingProtocolComboBox.setToolTip("\n".join(protocol_label(p) for p in protocol_ids()))
        self.ui.computeAdcButton.connect(
            "clicked(bool)", lambda: self.runMap(_("Computing the ADC..."), self.logic.computeAdc,
                                                 self._parameterNode.adcMethod))
        self.ui.computeFatButton.connect("clicked(bool)", lambda: self.runMap(
            _("Computing the chemical-shift fat fraction..."), self.logic.computeChemicalShiftFat))
        self.ui.computeDixonFatButton.connect("clicked(bool)", lambda: self.runMap(
            _("Computing the Dixon fat fraction..."), self.logic.computeDixonFat))
        self.ui.computePdffButton.connect("clicked(bool)", lambda: self.runMap(
            _("Fitting PDFF and R2* (this can take a minute)..."), self.logic.computePdff))
        self.ui.computeEnhancementButton.connect(
            "clicked(bool)", lambda: self.runMap(_("Computing the relative enhancement..."),
                                                 self.logic.computeEnhancement, self._parameterNode.enhancementPhase))
        self.ui.alignButton.connect("clicked(bool)", lambda: self.runMap(
            _("Aligning the series (registration)..."), self.logic.alignSeries,
            self._parameterNode.alignReferenceVolume, self._parameterNode.alignMovingVolume,
            self._parameterNode.alignAffine))
        self.ui.seriesTableWidget.connect("cellClicked(int,int)", self.onSeriesCellClicked)

        self.initializeParameterNode()
        self.updateSeriesTable()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.updateSeriesTable()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()
        self.updateSeriesTable()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        """Observe the parameter node so that the GUI follows it (and the views follow displayedVolume)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets carrying the "SlicerParameterName" dynamic property in the .ui are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Show the chosen series when the choice changes (not on every other parameter change)."""
        node = self._parameterNode.displayedVolume if self._parameterNode else None
        nodeID = node.GetID() if node is not None else None
        if nodeID is not None and nodeID != self._displayedVolumeID:
            showStudy(node, fourUp=False)
        self._displayedVolumeID = nodeID

    def onGeneratePhantomButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to generate the phantom."), waitCursor=True):
            p = self._parameterNode
            with busy(_("Generating the phantom...")):
                nodes = self.logic.generatePhantom(p.phantomSeed, p.phantomScenario, p.phantomFieldStrength,
                                                   p.phantomSize)
            slicer.util.showStatusMessage(_("Phantom loaded: {count} series stacks").format(
                count=len(nodes) - 2), 5000)
            self.updateSeriesTable()

    def onLoadDicomButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the DICOM study."), waitCursor=True):
            folder = self._parameterNode.dicomFolder
            if str(folder) in ("", "."):  # the unset default: never scan the application's working folder
                raise LiverMetsError("Choose the study folder first (the button next to 'Study folder').")
            with busy(_("Reading and classifying {folder}...").format(folder=folder)):
                nodes = self.logic.loadDicomStudy(folder)
            slicer.util.showStatusMessage(_("Study loaded: {count} series stacks with a role").format(
                count=len(nodes)), 5000)
            self.updateSeriesTable()

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
            with busy(_("Reading and classifying the database study...")):
                nodes = self.logic.loadDatabaseStudy(studyUid)
            slicer.util.showStatusMessage(_("Study loaded: {count} series stacks with a role").format(
                count=len(nodes)), 5000)
            self.updateSeriesTable()

    def onShowLayoutButton(self) -> None:
        """Show the chosen hanging protocol with the series and maps in the scene; say what could not be shown."""
        self.ui.layoutResultLabel.text = ""
        with slicer.util.tryWithErrorDisplay(_("Failed to show the layout."), waitCursor=True):
            _plan, shown = self.logic.showHangingProtocol(self._parameterNode.hangingProtocol)
            lines = [f"{view}: {reason}" for view, reason in shown["missing"].items()]
            self.ui.layoutResultLabel.text = "\n".join(lines) if lines else _("All views filled.")

    def runMap(self, label: str, compute, *args) -> None:
        """Compute one map with the logic (a busy dialog says what runs), show it, and list the inputs, masked voxels
        and warnings under the buttons."""
        self.ui.mapsResultLabel.text = ""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the map."), waitCursor=True):
            with busy(label):
                nodes, summary = compute(*args)
            self.ui.mapsResultLabel.text = sceneMaps.summaryText(summary)
            first = next(iter(nodes.values()))
            if self._parameterNode:
                self._parameterNode.displayedVolume = first
            self.updateSeriesTable()

    def onSceneNodesChanged(self, caller=None, event=None) -> None:
        """Many nodes arrive at once when a study loads: rebuild the table once, after the burst."""
        if not self._tableUpdatePending:
            self._tableUpdatePending = True
            qt.QTimer.singleShot(0, self.updateSeriesTable)

    def updateSeriesTable(self) -> None:
        """One row per scalar volume: name, role drop-down (edits the node attribute), grid."""
        self._tableUpdatePending = False
        table = self.ui.seriesTableWidget
        nodes = self.logic.seriesNodes()
        table.setRowCount(len(nodes))
        roles = role_ids()
        for row, node in enumerate(nodes):
            nameItem = qt.QTableWidgetItem(node.GetName())
            nameItem.setData(qt.Qt.UserRole, node.GetID())
            nameItem.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
            reason = node.GetAttribute(attributes.ROLE_REASON)
            if reason:
                nameItem.setToolTip(_("Role chosen because: {reason}").format(reason=reason))
            table.setItem(row, 0, nameItem)
            combo = qt.QComboBox()
            for role in roles:
                combo.addItem(role_label(role), role)
            current = attributes.nodeRole(node)
            combo.setCurrentIndex(roles.index(current) if current in roles else roles.index(attributes.UNASSIGNED))
            combo.setToolTip(_("Role of this series in the study; change it if the automatic one is wrong."))
            nodeID = node.GetID()
            combo.connect("currentIndexChanged(int)",
                          lambda index, nodeID=nodeID, combo=combo: self.onRoleChanged(nodeID, combo))
            table.setCellWidget(row, 1, combo)
            gridItem = qt.QTableWidgetItem(gridSummary(node))
            gridItem.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
            table.setItem(row, 2, gridItem)
        table.resizeColumnsToContents()

    def onRoleChanged(self, nodeID: str, combo) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to change the role.")):
            self.logic.setRole(slicer.mrmlScene.GetNodeByID(nodeID), combo.currentData)

    def onSeriesCellClicked(self, row: int, column: int) -> None:
        item = self.ui.seriesTableWidget.item(row, 0)
        node = slicer.mrmlScene.GetNodeByID(item.data(qt.Qt.UserRole)) if item else None
        if node is not None and self._parameterNode:
            self._parameterNode.displayedVolume = node


#
# LiverMetsReviewLogic
#


class LiverMetsReviewLogic(ScriptedLoadableModuleLogic):
    """Scene-level operations; usable without the widget (Python console, self-test)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastPhantomStudy = None

    def getParameterNode(self):
        return LiverMetsReviewParameterNode(super().getParameterNode())

    def generatePhantom(self, seed: int = 0, scenario: str = "normal", fieldStrength: float = 1.5,
                        size: str = "standard", show: bool = True) -> dict:
        """Generate the phantom with the core and load it: node name -> node, segmentation under 'ground_truth'.

        The core's ``PhantomStudy`` (images in LPS, truth) is kept in ``lastPhantomStudy`` for comparison.
        """
        study = generatePhantomStudy(seed=seed, scenario=scenario, fieldStrength=fieldStrength, size=size)
        self.lastPhantomStudy = study
        return loadPhantomStudy(study, show=show)

    def computeAdc(self, method: str = "lls") -> tuple:
        """ADC map (10^-6 mm^2/s) from the scene's DWI stacks: (nodes by name, core summary)."""
        return sceneMaps.computeAdc(method)

    def computeChemicalShiftFat(self) -> tuple:
        """Fat fraction and SII (percent) from the in-phase / opposed-phase pair."""
        return sceneMaps.computeChemicalShiftFat()

    def computeDixonFat(self) -> tuple:
        """Dixon fat fraction (percent)."""
        return sceneMaps.computeDixonFat()

    def computePdff(self) -> tuple:
        """Proton-density fat fraction (percent) and R2* (1/s) from the multi-echo GRE."""
        return sceneMaps.computePdff()

    def computeEnhancement(self, phase: str = "t1_hepatobiliary") -> tuple:
        """Relative enhancement (percent) of ``phase`` against the pre-contrast T1."""
        return sceneMaps.computeEnhancement(phase)

    @staticmethod
    def showHangingProtocol(protocolId: str) -> tuple:
        """Lay out the views for ``protocolId`` (see LiverMetsReviewLib.study.hanging): (plan, what was shown)."""
        return hanging.showProtocol(protocolId)

    def alignSeries(self, referenceNode, movingNode, affine: bool = False) -> tuple:
        """``movingNode`` registered (rigid or affine) and resampled onto ``referenceNode``'s grid."""
        return sceneMaps.alignSeries(referenceNode, movingNode, affine)

    @staticmethod
    def loadDicomStudy(folder, show: bool = True) -> dict:
        """Scan and classify a DICOM folder with the core and load every series that got a role."""
        return loadDicomStudy(folder, show=show)

    @staticmethod
    def loadDatabaseStudy(studyUid: str, show: bool = True) -> dict:
        """Load one study of Slicer's DICOM database through the same core classification as a folder."""
        return loadDatabaseStudy(studyUid, show=show)

    @staticmethod
    def seriesNodes() -> list:
        """Scalar volumes of the scene (labelmaps excluded), in scene order."""
        return [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                if not n.IsA("vtkMRMLLabelMapVolumeNode")]

    @staticmethod
    def setRole(node: vtkMRMLScalarVolumeNode, role: str) -> None:
        """The reader's role choice, stored on the node (saved with the scene)."""
        if node is None:
            raise LiverMetsError("No series is selected: pick a row of the series table first.")
        if role not in role_ids():
            raise LiverMetsError(f"'{role}' is not a known series role: choose one of {', '.join(role_ids())}.")
        node.SetAttribute(attributes.ROLE, role)
        node.SetAttribute(attributes.ROLE_REASON, "set by the reader")
        node.SetAttribute(attributes.ROLE_CONFIDENCE, "1")


#
# LiverMetsReviewTest
#


class LiverMetsReviewTest(ScriptedLoadableModuleTest):
    """Loads the small phantom through the logic and compares the scene with the core's images and truth."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def assertSameGeometry(self, node: vtkMRMLScalarVolumeNode, image, spacingTol: float, originTol: float,
                           places: int) -> None:
        """A volume node (RAS) and a core image (LPS) describe the same grid: spacing, origin, axis directions."""
        import numpy as np

        np.testing.assert_allclose(node.GetSpacing(), image.GetSpacing(), rtol=0, atol=spacingTol)
        np.testing.assert_allclose(node.GetOrigin(), lpsToRas(image.GetOrigin()), rtol=0, atol=originTol)
        directions = vtk.vtkMatrix4x4()
        node.GetIJKToRASDirectionMatrix(directions)
        lpsDirections = np.array(image.GetDirection()).reshape(3, 3)
        for row, sign in enumerate((-1.0, -1.0, 1.0)):
            for col in range(3):
                self.assertAlmostEqual(directions.GetElement(row, col), sign * lpsDirections[row, col], places=places)

    def runTest(self):
        self.setUp()
        self.test_phantom_loads()
        self.setUp()
        self.test_dicom_study_loads()
        self.setUp()
        self.test_dicom_module_imports_the_phantom()
        self.setUp()
        self.test_maps_match_the_core()
        self.setUp()
        self.test_role_edit()

    def test_phantom_loads(self):
        import numpy as np
        import SimpleITK as sitk

        self.delayDisplay("Generating the small phantom")
        logic = LiverMetsReviewLogic()
        nodes = logic.generatePhantom(seed=7, scenario=DEFAULT_SCENARIO, fieldStrength=1.5, size="small",
                                      show=False)
        study = logic.lastPhantomStudy
        stacks = [(stackNodeName(s, k), s, k) for s in study.series for k in range(len(s.stacks))]

        # One volume node per stack, in the dict and in the scene.
        volumeNames = [name for name in nodes if name not in (SEGMENTATION_KEY, COUINAUD_KEY)]
        self.assertEqual(sorted(volumeNames), sorted(name for name, _s, _k in stacks))
        self.assertEqual(len(logic.seriesNodes()), len(stacks))

        lesions = study.truth["lesions"]
        self.assertGreater(len(lesions), 0)
        for name, series, k in stacks:
            node = nodes[name]  # slicer-class: vtkMRMLScalarVolumeNode
            image = series.stacks[k]
            self.assertEqual(node.GetAttribute(attributes.ROLE), series.role)
            if "b_value" in series.stack_meta[k]:
                self.assertAlmostEqual(float(node.GetAttribute(attributes.B_VALUE)),
                                       float(series.stack_meta[k]["b_value"]))
            # Geometry: spacing equal, origin and axis directions flipped LPS -> RAS.
            self.assertSameGeometry(node, image, spacingTol=1e-6, originTol=1e-4, places=6)

            # Voxel values at every lesion centre inside this stack: same voxel, same value as the core.
            sceneArray = slicer.util.arrayFromVolume(node)
            coreArray = sitk.GetArrayViewFromImage(image)
            self.assertEqual(sceneArray.shape, coreArray.shape)
            sampled = 0
            for lesion in lesions:
                continuous = np.array(image.TransformPhysicalPointToContinuousIndex(
                    [float(c) for c in lesion["centre_mm"]]))
                index = np.floor(continuous + 0.5).astype(int)
                if np.any(index < 0) or np.any(index >= np.array(image.GetSize())):
                    continue
                self.assertEqual(worldLpsToIjk(node, lesion["centre_mm"]), tuple(int(v) for v in index))
                i, j, kk = index
                self.assertEqual(sceneArray[kk, j, i], coreArray[kk, j, i])
                sampled += 1
            self.assertGreater(sampled, 0, f"no lesion centre falls inside {name}")

        # Ground truth: one segment per organ and lesion, with the truth's names.
        segmentation = nodes[SEGMENTATION_KEY].GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(sorted(names), sorted(str(s["name"]) for s in study.segments))
        lesionSegments = [s for s in study.segments if s.get("kind") == "lesion"]
        self.assertEqual(len(lesionSegments), len(lesions))
        couinaud = nodes[COUINAUD_KEY].GetSegmentation()
        self.assertEqual(couinaud.GetNumberOfSegments(), 8)  # segments I to VIII
        self.delayDisplay("Phantom test passed")

    def test_dicom_study_loads(self):
        """The phantom written as DICOM comes back with every role, through the core's classifier and loader."""
        import shutil

        import numpy as np
        import SimpleITK as sitk

        from LiverMetsReviewLib.phantom import write_phantom
        from LiverMetsReviewLib.study.classify import classify_folder
        from LiverMetsReviewLib.study.load import load_study

        self.delayDisplay("Writing the small phantom as DICOM")
        study = generatePhantomStudy(seed=3, scenario=DEFAULT_SCENARIO, fieldStrength=3.0, size="small")
        folder = Path(slicer.app.temporaryPath) / "LiverMetsReviewSelfTest"
        shutil.rmtree(folder, ignore_errors=True)
        write_phantom(study, folder, fmt="dicom")
        try:
            nodes = LiverMetsReviewLogic.loadDicomStudy(folder / "dicom", show=False)
            expected = {stackNodeName(s, k): s.role for s in study.series for k in range(len(s.stacks))}
            self.assertEqual(sorted(nodes), sorted(expected))
            for name, role in expected.items():
                self.assertEqual(nodes[name].GetAttribute(attributes.ROLE), role)
                self.assertTrue(nodes[name].GetAttribute(attributes.ROLE_REASON))
            # The scene holds exactly the core's images (pixels and LPS -> RAS geometry).
            core = {stackNodeName(s, k): s.stacks[k] for s in load_study(classify_folder(folder / "dicom"))
                    for k in range(len(s.stacks))}
            for name, image in core.items():
                node = nodes[name]  # slicer-class: vtkMRMLScalarVolumeNode
                np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sitk.GetArrayViewFromImage(image))
                np.testing.assert_allclose(node.GetOrigin(), lpsToRas(image.GetOrigin()), rtol=0, atol=1e-4)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("DICOM study test passed")

    def test_dicom_module_imports_the_phantom(self):
        """Slicer's own DICOM module (database import, then loadSeriesByUID with the scalar volume plugin) gives one
        volume per stack of every phantom series (DWI: one per b-value, multi-echo GRE: one per echo), with the
        pixels and LPS -> RAS geometry of the core's reading of the same files."""
        import shutil

        import numpy as np
        import SimpleITK as sitk
        from DICOMLib import DICOMUtils

        from LiverMetsReviewLib.phantom import write_phantom
        from LiverMetsReviewLib.study.classify import classify_folder
        from LiverMetsReviewLib.study.load import load_study

        self.delayDisplay("Importing the small phantom through Slicer's DICOM database")
        study = generatePhantomStudy(seed=3, scenario=DEFAULT_SCENARIO, fieldStrength=3.0, size="small")
        stackCounts = {s.role: len(s.stacks) for s in study.series}  # from the generator, not from the files
        self.assertEqual(stackCounts["dwi"], 3)
        self.assertEqual(stackCounts["multi_echo_gre"], 6)
        folder = Path(slicer.app.temporaryPath) / "LiverMetsReviewSelfTestDicomDb"
        shutil.rmtree(folder, ignore_errors=True)
        write_phantom(study, folder, fmt="dicom")
        try:
            core = load_study(classify_folder(folder / "dicom"))
            self.assertEqual(sorted(s.role for s in core), sorted(stackCounts))
            with DICOMUtils.TemporaryDICOMDatabase(str(folder / "db")) as database:
                DICOMUtils.importDicom(str(folder / "dicom"), database)
                inDatabase = {uid for patient in database.patients() for studyUid in database.studiesForPatient(patient)
                              for uid in database.seriesForStudy(studyUid)}
                for series in core:
                    uid = series.meta["series_uid"]
                    self.assertIn(uid, inDatabase)
                    # the browser de-duplicates loadables, loadSeriesByUID does not: only the scalar volume plugin
                    loadedIds = DICOMUtils.loadSeriesByUID([uid], enabledPluginClassNames=["DICOMScalarVolumePlugin"])
                    volumes = [slicer.mrmlScene.GetNodeByID(nodeId) for nodeId in loadedIds]
                    volumes = [v for v in volumes if v is not None and v.IsA("vtkMRMLScalarVolumeNode")]
                    self.assertEqual(len(volumes), stackCounts[series.role], f"{series.role}: volumes per series")
                    self._assertVolumesAreTheStacks(volumes, series, np, sitk)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("DICOM module import test passed")

    def _assertVolumesAreTheStacks(self, volumes, series, np, sitk) -> None:
        """Each volume equals exactly one of the series' stacks: pixels (within float rounding) and geometry."""
        matched = []
        for volume in volumes:  # slicer-class: vtkMRMLScalarVolumeNode
            array = slicer.util.arrayFromVolume(volume).astype(float)
            candidates = [k for k, stack in enumerate(series.stacks)
                          if sitk.GetArrayViewFromImage(stack).shape == array.shape
                          and np.allclose(array, sitk.GetArrayViewFromImage(stack), rtol=1e-5,
                                          atol=1e-4 * max(1.0, float(np.abs(array).max())))]
            self.assertEqual(len(candidates), 1, f"{series.role}: {volume.GetName()} matches stacks {candidates}")
            image = series.stacks[candidates[0]]
            self.assertSameGeometry(volume, image, spacingTol=1e-4, originTol=1e-3, places=5)
            matched.append(candidates[0])
        self.assertEqual(sorted(matched), list(range(len(series.stacks))), f"{series.role}: stacks merged or missed")

    def test_maps_match_the_core(self):
        """Maps computed from the scene equal the core's maps computed from the core's own images."""
        import numpy as np
        import SimpleITK as sitk

        from LiverMetsReviewLib.maps import ADC_UNITS, chemical_shift_fat, fit_adc, relative_enhancement
        from LiverMetsReviewLib.maps.pdff import fit_pdff

        self.delayDisplay("Computing maps on the small phantom")
        logic = LiverMetsReviewLogic()
        logic.generatePhantom(seed=5, scenario=DEFAULT_SCENARIO, fieldStrength=1.5, size="small", show=False)
        study = logic.lastPhantomStudy

        def sceneArray(node):
            return slicer.util.arrayFromVolume(node)

        dwi = study.series_by_role("dwi")
        nodes, summary = logic.computeAdc("lls")
        core = fit_adc(dwi.stacks, dwi.b_values, method="lls")
        np.testing.assert_array_equal(sceneArray(nodes["adc"]), sitk.GetArrayViewFromImage(core.adc))
        self.assertEqual(nodes["adc"].GetAttribute(attributes.UNITS), ADC_UNITS)
        self.assertEqual(summary["masked_voxels"], core.summary["masked_voxels"])

        ip, op = study.series_by_role("t1_in_phase"), study.series_by_role("t1_opposed_phase")
        nodes, _summary = logic.computeChemicalShiftFat()
        core = chemical_shift_fat(ip.image, op.image, field_strength_t=1.5,
                                  echo_times_ms=(ip.meta["echo_time_ms"], op.meta["echo_time_ms"]))
        np.testing.assert_array_equal(sceneArray(nodes["ff_chemical_shift"]),
                                      sitk.GetArrayViewFromImage(core.ff))

        echoes = study.series_by_role("multi_echo_gre")
        nodes, _summary = logic.computePdff()
        core = fit_pdff(echoes.stacks, echoes.echo_times_ms, field_strength_t=1.5)
        np.testing.assert_array_equal(sceneArray(nodes["pdff"]), sitk.GetArrayViewFromImage(core.pdff))
        np.testing.assert_array_equal(sceneArray(nodes["r2star"]), sitk.GetArrayViewFromImage(core.r2star))

        nodes, _summary = logic.computeEnhancement("t1_hepatobiliary")
        core = relative_enhancement(study.series_by_role("t1_pre").image,
                                    study.series_by_role("t1_hepatobiliary").image, phase="t1_hepatobiliary")
        np.testing.assert_array_equal(sceneArray(nodes["re_hepatobiliary"]),
                                      sitk.GetArrayViewFromImage(core.re))

        # The phantom has no breath-hold shift here: aligning the HBP to the pre-contrast T1 must find (almost)
        # no motion, put the result on the reference grid and keep the role.
        pre = next(n for n in logic.seriesNodes() if n.GetAttribute(attributes.ROLE) == "t1_pre")
        hbp = next(n for n in logic.seriesNodes() if n.GetAttribute(attributes.ROLE) == "t1_hepatobiliary")
        nodes, summary = logic.alignSeries(pre, hbp)
        aligned = next(iter(nodes.values()))  # slicer-class: vtkMRMLScalarVolumeNode
        self.assertEqual(aligned.GetAttribute(attributes.ROLE), "t1_hepatobiliary")
        self.assertEqual(sceneArray(aligned).shape, sceneArray(pre).shape)
        np.testing.assert_allclose(aligned.GetOrigin(), pre.GetOrigin(), atol=1e-4)
        self.assertLess(float(np.max(np.abs(summary["transform_parameters"][3:6]))), 1.0)  # translation, mm
        self.delayDisplay("Maps test passed")

    def test_role_edit(self):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "series")
        self.assertEqual(attributes.nodeRole(node), attributes.UNASSIGNED)
        LiverMetsReviewLogic.setRole(node, "t1_hepatobiliary")
        self.assertEqual(node.GetAttribute(attributes.ROLE), "t1_hepatobiliary")
        with self.assertRaises(LiverMetsError):
            LiverMetsReviewLogic.setRole(node, "not_a_role")
        self.assertEqual(node.GetAttribute(attributes.ROLE), "t1_hepatobiliary")
        self.delayDisplay("Role edit test passed")
