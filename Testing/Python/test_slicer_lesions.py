"""The Lesions section's scene logic, headless, against recording stand-ins for the segmentation and markups nodes.

Truth: the phantom's labelmap (a click given in RAS must land on the lesion: an LPS/RAS slip gives Dice ~0), the
core's own measures of the stored mask (what the table shows), the LPS -> RAS flip of the diameter endpoints
restated here, and a hand edit of the stored mask (the re-measure path must notice it and measure again).
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.lesions.markups import Seed
from LiverMetsReviewLib.lesions.one_lesion import key_measures, measure_one
from LiverMetsReviewLib.phantom import generate_phantom

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverMetsReview"
TERMINOLOGY_TAG = "TerminologyEntry"


class Segment:
    def __init__(self, name: str) -> None:
        self.name, self.tags, self.color = name, {}, None

    def SetName(self, name):  # noqa: N802 - Slicer's spelling
        self.name = name

    def GetName(self):  # noqa: N802
        return self.name

    def SetColor(self, r, g, b):  # noqa: N802
        self.color = (r, g, b)

    def SetTag(self, key, value):  # noqa: N802
        self.tags[key] = str(value)

    def GetTag(self, key, ref):  # noqa: N802 - vtkSegment::GetTag(name, std::string&) -> bool
        if key in self.tags:
            ref.value = self.tags[key]
            return True
        return False


class Segmentation:
    def __init__(self) -> None:
        self.segments: dict[str, Segment] = {}

    def AddEmptySegment(self, segment_id, name):  # noqa: N802
        self.segments[segment_id] = Segment(name)
        return segment_id

    def GetSegment(self, segment_id):  # noqa: N802
        return self.segments.get(segment_id)

    def GetSegmentIDs(self):  # noqa: N802
        return tuple(self.segments)

    def RemoveSegment(self, segment_id):  # noqa: N802
        del self.segments[segment_id]


class Node:
    def __init__(self, cls: str, name: str = "") -> None:
        self.cls, self.name, self.attributes = cls, name, {}
        self.segmentation, self.masks, self.line = Segmentation(), {}, [None, None]

    def SetAttribute(self, key, value):  # noqa: N802
        self.attributes[key] = value

    def GetAttribute(self, key):  # noqa: N802
        return self.attributes.get(key)

    def GetName(self):  # noqa: N802
        return self.name

    def SetName(self, name):  # noqa: N802
        self.name = name

    def GetSegmentation(self):  # noqa: N802
        return self.segmentation

    def SetLineStartPositionWorld(self, p):  # noqa: N802
        self.line[0] = tuple(p)

    def SetLineEndPositionWorld(self, p):  # noqa: N802
        self.line[1] = tuple(p)

    def __getattr__(self, name):  # display nodes, geometry, locking: recorded nowhere, not under test
        if name[:1].isupper():
            return lambda *args: None
        raise AttributeError(name)


class Scene:
    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def AddNewNodeByClass(self, cls, name=""):  # noqa: N802
        self.nodes.append(Node(cls, name))
        return self.nodes[-1]

    def RemoveNode(self, node):  # noqa: N802
        self.nodes.remove(node)


class Reference:
    def __init__(self, value) -> None:
        self.value = value

    def get(self):
        return self.value


@pytest.fixture()
def edge(monkeypatch):
    scene = Scene()

    def put_mask(array, segmentation_node, segment_id, reference):
        """As Slicer: the segment keeps the geometry of the volume it was drawn on."""
        image = sitk.GetImageFromArray(np.asarray(array, np.uint8))
        image.CopyInformation(reference.image)
        segmentation_node.masks[segment_id] = image

    def get_mask(segmentation_node, segment_id, reference):
        """As Slicer: the segment resampled (nearest neighbour) onto the reference volume's grid."""
        image = sitk.Resample(segmentation_node.masks[segment_id], reference.image, sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0)
        return sitk.GetArrayFromImage(image)

    slicer = types.ModuleType("slicer")
    slicer.mrmlScene = scene
    slicer.util = types.SimpleNamespace(
        updateSegmentBinaryLabelmapFromArray=put_mask,
        arrayFromSegmentBinaryLabelmap=get_mask,
        getNodesByClass=lambda cls: [n for n in scene.nodes if n.cls == cls])
    slicer.vtkSegment = types.SimpleNamespace(GetTerminologyEntryTagName=lambda: TERMINOLOGY_TAG)
    for cls in ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLMarkupsFiducialNode"):
        setattr(slicer, cls, type(cls, (), {}))
    vtk = types.ModuleType("vtk")
    vtk.reference = Reference
    for name, module in {"slicer": slicer, "vtk": vtk, "sitkUtils": types.ModuleType("sitkUtils")}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        monkeypatch.delitem(sys.modules, name)
    yield scene, importlib.import_module("LiverMetsReviewSlicer.lesion_logic")
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(seed=23, size="small", vary=True)


def _study(logic, phantom):
    """The phantom's series as the scene would give them, each image 'pulled' from its own volume node."""
    study = logic.SceneStudy(list(phantom.series))
    for s in phantom.series:
        for k, image in enumerate(s.stacks):
            study.nodeOf[id(image)] = Node("vtkMRMLScalarVolumeNode", f"{s.role}{k}")
            study.nodeOf[id(image)].image = image
    return study


def _mask(review, segment_id):
    return sitk.GetArrayFromImage(review.segmentation.masks[segment_id]) != 0


def _truth_on_reference(phantom, study, review, lesion_id: str):
    """The core image the review's reference node shows, and the truth lesion's mask on its grid."""
    reference_image = next(img for s in phantom.series for img in s.stacks if study.nodeOf[id(img)] is review.reference)
    role = next(s.role for s in phantom.series if any(img is reference_image for img in s.stacks))
    label = next(s["label"] for s in phantom.segments if s["id"] == lesion_id)
    return reference_image, sitk.GetArrayFromImage(phantom.labelmap_on(role, reference_image)) == label


def test_pure_helpers(edge):
    nodes = importlib.import_module("LiverMetsReviewSlicer.lesion_nodes")
    rng = np.random.default_rng(5)
    used = [f"L{n}" for n in rng.choice(40, size=6, replace=False) + 1]
    assert nodes.nextLesionId([*used, "liver", "L7b"]) == f"L{max(int(u[1:]) for u in used) + 1}"
    assert nodes.nextLesionId([]) == "L1"
    description = nodes.seedDescription("L12", "haemangioma")
    assert nodes.seedLesionId(description) == "L12" and nodes.seedLesionId("") is None
    assert Seed("L12", (0.0, 0.0, 0.0), description).kind == "haemangioma"  # what the core's read_seeds parses
    row = nodes.tableRow("L3", "fnh_like", {"long_axis_mm": 21.04, "short_axis_mm": 12.96, "volume_ml": 2.345,
                                            "adc_median": 1234.6, "couinaud_segment": "VII"})
    assert row == ["L3", "fnh like", "VII", "21.0", "13.0", "2.35", "1235"]
    assert nodes.tableRow("L4", "cyst", {})[3:] == ["", "", "", ""]  # not measured: empty, never 0


def test_click_to_segment_tags_lines_and_remeasure(edge, phantom):
    scene, logic = edge
    nodes = importlib.import_module("LiverMetsReviewSlicer.lesion_nodes")
    lesion = max(phantom.truth["lesions"], key=lambda les: float(les["diameter_mm"]))
    click_ras = (-lesion["centre_mm"][0], -lesion["centre_mm"][1], lesion["centre_mm"][2])
    study, review = _study(logic, phantom), logic.Review()
    measures = logic.segmentAt(review, click_ras, "L1", "metastasis", study=study)

    reference_image, truth = _truth_on_reference(phantom, study, review, lesion["id"])
    mask = _mask(review, "L1")
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.8

    segment = review.segmentation.GetSegmentation().GetSegment("L1")
    assert segment.tags[nodes.LESION_ID] == "L1" and segment.tags[nodes.ROLE_TAG] == "metastasis"
    assert "SCT^14799000^" in segment.tags[TERMINOLOGY_TAG]  # SNOMED CT: neoplasm, secondary (metastasis)
    assert json.loads(segment.tags[nodes.MEASURES]) == json.loads(json.dumps(measures))
    core = key_measures(measure_one(phantom.series, mask, reference_image, "L1"))
    assert measures["volume_ml"] == core["volume_ml"] and measures["long_axis_mm"] == core["long_axis_mm"]
    lines = {n.GetAttribute(nodes.REVIEW): n for n in scene.nodes if n.cls == "vtkMRMLMarkupsLineNode"}
    start, end = measures["long_axis_lps"]
    assert lines["long axis"].line == [(-start[0], -start[1], start[2]), (-end[0], -end[1], end[2])]
    assert logic.editedLesions(review) == []

    edited = mask.copy()
    edited[tuple(np.argwhere(mask)[0])] = False  # the reader erases a voxel in the Segment Editor
    review.segmentation.masks["L1"] = sitk.GetImageFromArray(edited.astype(np.uint8))
    review.segmentation.masks["L1"].CopyInformation(reference_image)
    assert logic.editedLesions(review) == ["L1"]
    again = logic.measure(review, "L1", study=study)
    voxel_ml = float(np.prod(reference_image.GetSpacing())) / 1000.0
    assert again["volume_ml"] == pytest.approx(measures["volume_ml"] - voxel_ml, abs=1e-3)
    assert logic.editedLesions(review) == []

    nodes.removeLesion(review.segmentation, None, "L1")
    assert review.segmentation.GetSegmentation().GetSegmentIDs() == ()
    assert not [n for n in scene.nodes if n.cls == "vtkMRMLMarkupsLineNode"]


def test_liver_segment_then_a_lesion_inside_it(edge, phantom):
    """"Find liver" puts the liver into the same review (tag 'liver', not a lesion row), the lesions' grid stays the
    core's reference series, and a lesion added afterwards is still the truth lesion."""
    scene, logic = edge
    nodes = importlib.import_module("LiverMetsReviewSlicer.lesion_nodes")
    study, review = _study(logic, phantom), logic.Review()
    result = logic.findLiver(review, study=study)
    liver_role = result["series"]
    liver_image = study.imagesByRole()[liver_role]
    truth_label = next(s["label"] for s in phantom.segments if s["id"] == "liver")
    truth = sitk.GetArrayFromImage(phantom.labelmap_on(liver_role, liver_image)) == truth_label
    liver = _mask(review, nodes.LIVER)
    assert 2 * (liver & truth).sum() / (liver.sum() + truth.sum()) > 0.9
    segment = review.segmentation.GetSegmentation().GetSegment(nodes.LIVER)
    assert (segment.GetName(), segment.tags[nodes.ROLE_TAG]) == ("Liver", "liver")
    assert nodes.LESION_ID not in segment.tags and nodes.lesionSegmentIds(review.segmentation) == []
    assert "SCT^10200004^" in segment.tags[TERMINOLOGY_TAG]  # SNOMED CT: liver

    lesion = max(phantom.truth["lesions"], key=lambda les: float(les["diameter_mm"]))
    logic.segmentAt(review, (-lesion["centre_mm"][0], -lesion["centre_mm"][1], lesion["centre_mm"][2]), "L1",
                    "metastasis", study=study)
    assert nodes.lesionSegmentIds(review.segmentation) == ["L1"]
    reference_image, truth = _truth_on_reference(phantom, study, review, lesion["id"])
    mask = _mask(review, "L1")
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.8
    liver_on_reference = logic.liverMask(review.segmentation, review.reference)
    assert (mask & liver_on_reference).sum() >= 0.9 * mask.sum()  # the lesion lies in the liver it was modelled in
    # the table's Couinaud column: from the liver segment (landmarks found on a contrast phase), never the truth
    measures = nodes.storedMeasures(review.segmentation.GetSegmentation().GetSegment("L1"))
    assert measures["couinaud_segment"] == lesion["couinaud_name"]


# --------------------------------------------------------------------------------- the section, on opening a scene


class _Timer:
    def __getattr__(self, name):  # setSingleShot, setInterval, connect, start, stop: not under test
        return lambda *args: None


class _Item:
    def __init__(self, text) -> None:
        self.text, self.data = text, {}

    def setData(self, role, value):  # noqa: N802 - Qt's spelling
        self.data[role] = value


class _Table:
    """QTableWidget reduced to what the Lesions section calls: rows of item texts."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[int, str]] = {}
        self.rowCount = 0

    def setRowCount(self, n):  # noqa: N802
        self.rowCount = n
        self.rows = {r: cells for r, cells in self.rows.items() if r < n}

    def setItem(self, row, col, item):  # noqa: N802
        self.rows.setdefault(row, {})[col] = item.text

    def __getattr__(self, name):  # header, column count, connect
        return lambda *args: None


class _Observations:
    """slicer.util.VTKObservationMixin as far as the section uses it."""

    def __init__(self) -> None:
        self.observed: list = []

    def addObserver(self, obj, event, callback):  # noqa: N802
        self.observed.append((obj, event, callback))

    def removeObservers(self):  # noqa: N802
        self.observed = []


@pytest.fixture()
def section_edge(edge, monkeypatch):
    """LiverMetsReviewSlicer.lesions_section on the stand-ins of ``edge`` plus ``qt``, i18n, parameterNodeWrapper and a
    scene that imports in vtkMRMLScene::Import's order (read in Slicer v5.10 and main: the nodes are added, the
    parameter node's content copied then, and only afterwards every node reads its file; EndImportEvent last)."""
    scene, _logic = edge
    slicer = sys.modules["slicer"]
    scene.importing, scene.observers = False, []
    scene.EndImportEvent = "EndImportEvent"
    scene.IsImporting = lambda: scene.importing
    scene.AddObserver = lambda event, callback: scene.observers.append((event, callback)) or len(scene.observers)
    scene.RemoveObserver = lambda tag: None
    slicer.util.VTKObservationMixin = _Observations
    slicer.vtkMRMLMarkupsNode = types.SimpleNamespace(
        PointPositionDefinedEvent="PointPositionDefinedEvent", PositionPreview=POSITION_PREVIEW,
        PositionDefined=POSITION_DEFINED)
    slicer.vtkSegmentation = types.SimpleNamespace(SourceRepresentationModified="SourceRepresentationModified",
                                                   SegmentModified="SegmentModified")
    qt = types.ModuleType("qt")
    qt.single_shots = []  # QTimer.singleShot(0, callable): run when the test lets the event loop run
    single_shot = staticmethod(lambda msec, callback: qt.single_shots.append(callback))
    qt.QTimer = type("QTimer", (_Timer,), {"singleShot": single_shot})
    qt.QTableWidgetItem, qt.Qt = _Item, types.SimpleNamespace(UserRole=32)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterPack, pnw.Choice = (lambda cls: cls), (lambda choices: tuple(choices))
    for name, module in {"qt": qt, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": pnw,
                         "slicer.util": slicer.util}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return scene, importlib.import_module("LiverMetsReviewSlicer.lesions_section")


@pytest.mark.parametrize("seed", [3, 8])
def test_opened_scene_shows_its_lesions_once_the_segments_are_read(section_edge, seed):
    """A saved review reopened: the lesion table holds every lesion of the file (the liver is no row), although the
    parameter node pointed at the segmentation while its segments were still unread."""
    scene, ls = section_edge
    nodes = ls.nodes
    rng = np.random.default_rng(seed)
    ui = types.SimpleNamespace(lesionTableWidget=_Table(), lesionsResultLabel=types.SimpleNamespace(text=""),
                               **{n: types.SimpleNamespace(connect=lambda *a: None) for n in (
                                   "addLesionButton", "liverClickButton", "findLiverButton", "jumpButton",
                                   "remeasureButton", "editButton", "renameButton", "setTypeButton", "deleteButton")})
    section = ls.LesionsSection()
    section.setup(ui, None)
    pack = types.SimpleNamespace(segmentation=None, seeds=None, liverSeeds=None, referenceVolume=None,
                                 lesionType="metastasis")
    section.params = types.SimpleNamespace(lesions=pack)

    scene.importing = True  # AddNode: the singleton parameter node takes the file's content
    pack.segmentation = Node("vtkMRMLSegmentationNode", "Lesion review")
    section.onParametersModified()
    written, number = {}, 0  # UpdateScene: the segmentation reads its .seg.nrrd (ids with gaps: deleted lesions)
    segmentation = pack.segmentation.GetSegmentation()
    for _k in range(int(rng.integers(1, 5))):
        number += 1 + int(rng.integers(0, 3))
        lesion_id = f"L{number}"
        segment = segmentation.GetSegment(segmentation.AddEmptySegment(lesion_id, lesion_id))
        measures = {"long_axis_mm": float(rng.uniform(5, 60)), "short_axis_mm": float(rng.uniform(3, 40)),
                    "volume_ml": float(rng.uniform(0.05, 80)), "adc_median": float(rng.uniform(600, 2200))}
        kind = str(rng.choice(ls.LESION_KINDS))
        segment.SetTag(nodes.ROLE_TAG, kind)
        segment.SetTag(nodes.LESION_ID, lesion_id)
        nodes.storeMeasures(segment, measures, "digest")
        written[lesion_id] = nodes.tableRow(lesion_id, kind, measures)
    segmentation.GetSegment(segmentation.AddEmptySegment(nodes.LIVER, "Liver")).SetTag(nodes.ROLE_TAG, nodes.LIVER)
    scene.importing = False
    for event, callback in scene.observers:
        if event == scene.EndImportEvent:
            callback(scene, event)

    table = ui.lesionTableWidget
    assert table.rowCount == len(written)
    assert [[table.rows[r][c] for c in range(len(nodes.TABLE_COLUMNS))] for r in range(table.rowCount)] == list(
        written.values())
    assert any(obj is segmentation for obj, _event, _callback in section.observed)  # edits are followed


# --------------------------------------------------------------------------------- a click in place mode


POSITION_PREVIEW, POSITION_DEFINED = 1, 2  # vtkMRMLMarkupsNode's enum (v5.12.3): Undefined, Preview, Defined, Missing


class _SeedList:
    """vtkMRMLMarkupsFiducialNode as Slicer fills it on a click (read in v5.12.3): vtkMRMLMarkupsNode::AddControlPoint
    and ::SetNthControlPointPositionOrientationWorld fire PointPositionDefinedEvent from inside, and the caller goes
    on with the point's index (AddControlPoint returns it; vtkSlicerMarkupsWidget::PlacePoint makes it the active
    control point): a point removed meanwhile leaves them an index that no longer exists."""

    def __init__(self, section) -> None:
        self.section, self.points, self.active, self._next = section, [], None, 0

    def _fire(self, event):
        for obj, observed, callback in list(self.section.observed):
            if obj is self and observed == event:
                callback(self, event)

    def AddControlPoint(self, ras, label=""):  # noqa: N802 - Slicer's spelling
        self._next += 1
        self.points.append({"id": str(self._next), "ras": list(ras), "label": label, "description": "",
                            "status": POSITION_DEFINED})
        index = len(self.points) - 1
        self._fire("PointPositionDefinedEvent")
        assert index < len(self.points), "control point removed inside its own PointPositionDefinedEvent"
        self.active = self.points[index]["id"]  # PlacePoint: SetActiveControlPoint(controlPointIndex)
        return index

    def preview(self, ras):
        """The mouse moves over a view in place mode: vtkSlicerMarkupsWidget::UpdatePreviewPoint keeps a point in the
        list that follows it (status PositionPreview; no PointPositionDefinedEvent until a click defines it)."""
        self._next += 1
        self.points.append({"id": str(self._next), "ras": list(ras), "label": "", "description": "",
                            "status": POSITION_PREVIEW})

    def GetNumberOfControlPoints(self):  # noqa: N802
        return len(self.points)

    def GetNthControlPointPositionStatus(self, n):  # noqa: N802
        return self.points[n]["status"]

    def GetNthControlPointID(self, n):  # noqa: N802
        return self.points[n]["id"]

    def GetControlPointIndexByID(self, point_id):  # noqa: N802
        return next((i for i, p in enumerate(self.points) if p["id"] == point_id), -1)

    def GetNthControlPointDescription(self, n):  # noqa: N802
        return self.points[n]["description"]

    def SetNthControlPointDescription(self, n, text):  # noqa: N802
        self.points[n]["description"] = text

    def SetNthControlPointLabel(self, n, text):  # noqa: N802
        self.points[n]["label"] = text

    def GetNthControlPointPositionWorld(self, n, out):  # noqa: N802
        out[:] = self.points[n]["ras"]

    def RemoveNthControlPoint(self, n):  # noqa: N802
        del self.points[n]


@pytest.fixture()
def placing(section_edge, monkeypatch):
    """The Lesions section bound to a pack whose seed list is a ``_SeedList``; the core's answer is the test's."""
    scene, ls = section_edge

    @contextmanager
    def try_with_error_display(message=None, show=True, waitCursor=False):  # noqa: N803
        yield  # Slicer's testing mode: errors propagate

    sys.modules["slicer"].util.tryWithErrorDisplay = try_with_error_display
    ui = types.SimpleNamespace(lesionTableWidget=_Table(), lesionsResultLabel=types.SimpleNamespace(text=""),
                               lesionTypeComboBox=None)
    section = ls.LesionsSection()
    section.ui = ui
    seeds = _SeedList(section)
    pack = types.SimpleNamespace(segmentation=None, seeds=seeds, liverSeeds=None, referenceVolume=None,
                                 lesionType="metastasis")
    section.params = types.SimpleNamespace(lesions=pack)
    section._observe()
    monkeypatch.setattr(ls.lesion_logic, "sceneStudy", lambda reference=None: ls.lesion_logic.SceneStudy([]))
    return section, seeds, ls, sys.modules["qt"].single_shots


def _event_loop(single_shots):
    while single_shots:
        single_shots.pop(0)()


def test_a_refused_click_is_removed_after_slicer_has_placed_it(placing, monkeypatch):
    """The core refuses the point: the seed is removed and the reason shown, but only once the event loop runs,
    never inside the point's own PointPositionDefinedEvent (the stand-in asserts that, as Slicer's callers need)."""
    section, seeds, ls, single_shots = placing
    reason = "the point lies in a vessel, not in a lesion"

    def refuse(review, ras, lesion_id, kind, **options):
        raise ls.LiverMetsError(reason)

    monkeypatch.setattr(ls.lesion_logic, "segmentAt", refuse)
    seeds.AddControlPoint([12.5, -40.0, 7.0])  # the click, in place mode
    assert seeds.GetNumberOfControlPoints() == 1 and seeds.active == seeds.points[0]["id"]
    _event_loop(single_shots)
    assert seeds.GetNumberOfControlPoints() == 0
    assert section.ui.lesionsResultLabel.text == f"No lesion added: {reason}"

    assert section.addLesionAt([1.0, 2.0, 3.0]) is None  # the script path: synchronous, same refusal
    assert seeds.GetNumberOfControlPoints() == 0 and reason in section.ui.lesionsResultLabel.text
    _event_loop(single_shots)  # the deferred call finds nothing left
    assert seeds.GetNumberOfControlPoints() == 0


def test_an_accepted_click_is_segmented_at_its_position(placing, monkeypatch):
    section, seeds, ls, single_shots = placing
    calls = []

    def accept(review, ras, lesion_id, kind, **options):
        calls.append((list(ras), lesion_id, kind))
        return {"long_axis_mm": 21.0, "short_axis_mm": 13.0, "volume_ml": 2.5}

    monkeypatch.setattr(ls.lesion_logic, "segmentAt", accept)
    seeds.AddControlPoint([12.5, -40.0, 7.0])
    assert calls == []  # not inside the event
    _event_loop(single_shots)
    assert calls == [([12.5, -40.0, 7.0], "L1", "metastasis")]
    assert seeds.points[0]["label"] == "L1" and ls.nodes.seedLesionId(seeds.points[0]["description"]) == "L1"
    assert section.addLesionAt([1.0, 2.0, 3.0], "cyst") == "L2"
    _event_loop(single_shots)
    assert [c[1:] for c in calls] == [("L1", "metastasis"), ("L2", "cyst")]  # each point segmented once


def test_a_preview_point_is_nobodys_seed(placing, monkeypatch):
    """Persistent place mode: after a click the mouse moves on and the markups widget adds a preview point to the
    same list before the deferred call runs. Only the clicked point becomes a lesion; the preview point is left to
    the widget (removing it would leave the widget a stale index). The liver seed is the clicked point too."""
    section, seeds, ls, single_shots = placing
    calls, livers = [], []
    monkeypatch.setattr(ls.lesion_logic, "segmentAt",
                        lambda review, ras, lesion_id, kind, **options: calls.append(list(ras)) or {})
    seeds.AddControlPoint([12.5, -40.0, 7.0])
    seeds.preview([30.0, 5.0, -2.0])
    _event_loop(single_shots)
    assert calls == [[12.5, -40.0, 7.0]]
    assert [p["status"] for p in seeds.points] == [POSITION_DEFINED, POSITION_PREVIEW]
    assert seeds.points[1]["description"] == ""  # untouched

    liver = _SeedList(section)
    section.pack.liverSeeds = liver
    monkeypatch.setattr(section, "findLiver", lambda ras=None: livers.append(list(ras)))
    liver.AddControlPoint([1.0, 2.0, 3.0])
    liver.preview([9.0, 9.0, 9.0])
    section._findLiverAtSeed()
    assert livers == [[1.0, 2.0, 3.0]]


def test_series_left_out_are_named_and_a_warped_reference_refuses_the_click(placing, monkeypatch):
    """A series a warping transform moves: the lesion is added from the others and the reader is told which series
    was left out; when it is the series the lesions are drawn on, the click is refused with the reason."""
    section, seeds, ls, single_shots = placing
    note = "'dwi_b800' left out: it is moved by a warping (non-linear) transform, 'Warp', ... 'Harden transform' ..."
    monkeypatch.setattr(ls.lesion_logic, "sceneStudy",
                        lambda reference=None: ls.lesion_logic.SceneStudy([], notes=[note]))
    monkeypatch.setattr(ls.lesion_logic, "segmentAt", lambda review, ras, lesion_id, kind, **options: {
        "long_axis_mm": 21.0, "short_axis_mm": 13.0, "volume_ml": 2.5})
    seeds.AddControlPoint([12.5, -40.0, 7.0])
    _event_loop(single_shots)
    assert section.ui.lesionsResultLabel.text.splitlines() == ["L1: 21.0 x 13.0 mm, 2.50 mL", note]

    refusal = "The series 'hbp' is moved by a warping (non-linear) transform, 'Warp', ... 'Harden transform' ..."

    def warped_reference(reference=None):
        raise ls.LiverMetsError(refusal)

    monkeypatch.setattr(ls.lesion_logic, "sceneStudy", warped_reference)
    seeds.AddControlPoint([1.0, 2.0, 3.0])
    _event_loop(single_shots)
    assert seeds.GetNumberOfControlPoints() == 1  # the refused click is gone, L1's seed stays
    assert section.ui.lesionsResultLabel.text == f"No lesion added: {refusal}"
