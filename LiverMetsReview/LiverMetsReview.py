"""LiverMetsReview: a reading aid for gadoxetate liver MRI (3D Slicer scripted module).

The module is a thin shell: the computations live in the headless core ``LiverMetsReviewLib`` (also used by
the ``livermets`` command line), the scene conversions and the GUI sections in ``LiverMetsReviewSlicer``. This
file holds the module, the parameter node (one pack per section), the widget that composes the sections and
the logic (what scripts call); the self-test (``LiverMetsReviewTest``) lives in ``LiverMetsReviewSlicer/self_test.py``
and is imported here, where Slicer looks for it.

From the Python console::

    logic = slicer.util.getModuleLogic("LiverMetsReview")
    nodes = logic.loadPhantom()  # the Sample Data phantom (seed 0); or loadPhantom(seed=3, size="small")
    logic.computeAdc()
    logic.showHangingProtocol("lesion_review")
"""

import os

import slicer
import vtk
from LiverMetsReviewSlicer import attributes, hanging
from LiverMetsReviewSlicer import maps as sceneMaps
from LiverMetsReviewSlicer.checklist_section import ChecklistParameters, ChecklistSection, shortcutHelp
from LiverMetsReviewSlicer.dicom_database import loadDatabaseStudy
from LiverMetsReviewSlicer.dicom_study import loadDicomStudy
from LiverMetsReviewSlicer.lesions_section import LesionsParameters, LesionsSection
from LiverMetsReviewSlicer.maps_section import MapsParameters, MapsSection
from LiverMetsReviewSlicer.phantom import defaultScenario, generatePhantomStudy, loadPhantomStudy
from LiverMetsReviewSlicer.report_section import ReportParameters, ReportSection
from LiverMetsReviewSlicer.sample_data import registerSampleData
from LiverMetsReviewSlicer.self_test import LiverMetsReviewTest  # noqa: F401 (Slicer finds <ModuleName>Test here)
from LiverMetsReviewSlicer.study_section import StudyParameters, StudySection
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.roles import role_ids

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
metastases. <b>Study</b>: loads a study from Slicer's DICOM database (or a folder, which is imported into the
database first) with Slicer's DICOM readers and proposes a role for each series (dual-echo T1, Dixon, T2,
diffusion, dynamic phases up to the hepatobiliary phase), which the reader checks and corrects in the table;
hangs the series side by side. A digital phantom with known ground truth (training, testing) is under
"Phantom" and in Sample Data; from Python: <code>slicer.util.getModuleLogic("LiverMetsReview").loadPhantom()</code>.
<b>Maps</b>: ADC (10<sup>-6</sup> mm<sup>2</sup>/s), fat fraction (in/opposed phase, Dixon, multi-echo PDFF)
and relative enhancement (percent), R2* (1/s), series alignment; masked voxels and warnings are listed.
<b>Checklist</b>: per lesion (segments with a lesion id) and for the study, one item at a time: the question,
the suggested answer with its evidence (measured value, threshold, uncertainty, source), your answer (yes, no,
indeterminate, not assessed, with a note), "Show" (the item's hanging protocol, every view centred on the lesion),
progress, and the impression with the items that drove it, updated at each answer. Every answer is saved at
once on the lesion's segment, in the scene's parameter node and in review.json (review folder). Shortcuts: {keys}.
World coordinates of the computations are LPS; Slicer shows RAS.
The module supports the radiologist's reading and never makes a diagnosis: every automatic result is evidence
that the reader accepts or overrides.
See the <a href="https://github.com/livermetsreview/LiverMetsReview">project page</a>.
""").format(keys=shortcutHelp())
        self.parent.acknowledgementText = _("""
Developed by the LiverMetsReview developers. Built on 3D Slicer's scripted module template and its
SimpleITK bridge (sitkUtils).
""")
        # Once the application has started: the phantom in Sample Data, and every hanging layout, so that a scene
        # saved in one reopens in it (a scene stores the layout id only).
        slicer.app.connect("startupCompleted()", self.onStartupCompleted)

    def onStartupCompleted(self) -> None:
        registerSampleData(self._iconsPath())
        hanging.registerLayouts()

    def _iconsPath(self) -> str:
        return os.path.join(os.path.dirname(__file__), "Resources", "Icons")


#
# LiverMetsReviewParameterNode
#


@parameterNodeWrapper
class LiverMetsReviewParameterNode:
    """GUI state saved with the scene: one parameter pack per section (bound as ``study.x``, ``maps.x``)."""

    study: StudyParameters
    maps: MapsParameters
    lesions: LesionsParameters
    checklist: ChecklistParameters
    report: ReportParameters


#
# LiverMetsReviewWidget
#


class LiverMetsReviewWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Composes the sections (each with its own .ui and parameter pack) and passes them the scene's events."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self.study = StudySection()
        self.maps = MapsSection()
        self.lesions = LesionsSection()
        self.checklist = ChecklistSection()
        self.report = ReportSection()
        self.sections = [self.study, self.maps, self.lesions, self.checklist, self.report]  # reading order
        self.report.checklist = self.checklist  # Generate brings review.json up to date (see report_section)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = LiverMetsReviewLogic()
        for section in self.sections:
            sectionWidget = slicer.util.loadUI(self.resourcePath(section.UI_FILE))
            self.layout.addWidget(sectionWidget)
            sectionWidget.setMRMLScene(slicer.mrmlScene)
            section.setup(slicer.util.childWidgetVariables(sectionWidget), self.logic)
        self.layout.addStretch(1)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onSceneNodesChanged)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeRemovedEvent, self.onSceneNodesChanged)
        self.initializeParameterNode()
        self.study.refresh()

    def cleanup(self) -> None:
        self.removeObservers()
        for section in self.sections:
            section.cleanup()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.study.refresh()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Everything cached refers to the closed scene (node IDs are reused by the next one)."""
        self.logic.onSceneClosed()
        for section in self.sections:
            section.onSceneClosed()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneNodesChanged(self, caller=None, event=None) -> None:
        self.study.scheduleRefresh()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        """Bind every section to the node and follow its changes (None: unbind)."""
        if self._parameterNode:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        for section in self.sections:
            section.setParameterNode(inputParameterNode)
        if self._parameterNode:
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        for section in self.sections:
            section.onParametersModified()


#
# LiverMetsReviewLogic
#


class LiverMetsReviewLogic(ScriptedLoadableModuleLogic):
    """Scene-level operations; usable without the widget (Python console, self-test). Long operations take an
    optional ``progress(fraction, message)`` callback."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastPhantomStudy = None

    def getParameterNode(self):
        return LiverMetsReviewParameterNode(super().getParameterNode())

    def onSceneClosed(self) -> None:
        self.lastPhantomStudy = None

    def loadPhantom(self, seed: int = 0, scenario: str | None = None, fieldStrength: float = 1.5,
                    size: str = "standard", show: bool = True) -> dict:
        """The phantom from a script; the defaults give the Sample Data entry's study (seed 0, default scenario).

        ``SampleData.downloadSample("LiverMetsPhantom")`` cannot do this: SampleDataLogic.downloadSamples ignores a
        source's custom downloader (only the Sample Data button calls it, read in Slicer v5.10 and v5.12).
        """
        return self.generatePhantom(seed, scenario or defaultScenario(), fieldStrength, size, show)

    def generatePhantom(self, seed: int = 0, scenario: str = "normal", fieldStrength: float = 1.5,
                        size: str = "standard", show: bool = True) -> dict:
        """Generate the phantom with the core and load it: node name -> node, segmentation under 'ground_truth'.

        The core's ``PhantomStudy`` (images in LPS, truth) is kept in ``lastPhantomStudy`` for comparison.
        """
        study = generatePhantomStudy(seed=seed, scenario=scenario, fieldStrength=fieldStrength, size=size)
        self.lastPhantomStudy = study
        return loadPhantomStudy(study, show=show)

    def computeAdc(self, method: str = "lls", progress=None) -> tuple:
        """ADC map (10^-6 mm^2/s) from the scene's DWI stacks: (nodes by name, core summary)."""
        return sceneMaps.computeAdc(method, progress=progress)

    def computeChemicalShiftFat(self, progress=None) -> tuple:
        """Fat fraction and SII (percent) from the in-phase / opposed-phase pair."""
        return sceneMaps.computeChemicalShiftFat(progress=progress)

    def computeDixonFat(self, progress=None) -> tuple:
        """Dixon fat fraction (percent)."""
        return sceneMaps.computeDixonFat(progress=progress)

    def computePdff(self, progress=None) -> tuple:
        """Proton-density fat fraction (percent) and R2* (1/s) from the multi-echo GRE."""
        return sceneMaps.computePdff(progress=progress)

    def computeEnhancement(self, phase: str = "t1_hepatobiliary", progress=None) -> tuple:
        """Relative enhancement (percent) of ``phase`` against the pre-contrast T1."""
        return sceneMaps.computeEnhancement(phase, progress=progress)

    @staticmethod
    def showHangingProtocol(protocolId: str) -> tuple:
        """Lay out the views for ``protocolId`` (see LiverMetsReviewLib.study.hanging): (plan, what was shown)."""
        return hanging.showProtocol(protocolId)

    def alignSeries(self, referenceNode, movingNode, affine: bool = False, progress=None) -> tuple:
        """``movingNode`` registered (rigid or affine) and resampled onto ``referenceNode``'s grid."""
        return sceneMaps.alignSeries(referenceNode, movingNode, affine, progress=progress)

    @staticmethod
    def loadDicomStudy(folder, show: bool = True, progress=None) -> dict:
        """Import a DICOM folder into Slicer's database and load its classified series with Slicer's plugins."""
        return loadDicomStudy(folder, show=show, progress=progress)

    @staticmethod
    def loadDatabaseStudy(studyUid: str, show: bool = True, progress=None) -> dict:
        """Load one study of Slicer's DICOM database with Slicer's plugins; roles from the core's classifier."""
        return loadDatabaseStudy(studyUid, show=show, progress=progress)

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
