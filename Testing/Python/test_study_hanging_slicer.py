"""The Slicer edge of hanging protocols, headless: a recording stand-in for the few Slicer objects it touches.

What is checked against the plan (the truth here): the layout XML has rows x cols slice views in the protocol's
order and orientations; every view gets the planned volume as background, linked control, its own view group;
empty viewports are reported with the core's reason; the scene inventory finds series by role attribute and
maps by node name (with Slicer's "_1" suffix for a second copy).
"""

from __future__ import annotations

import importlib
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from LiverMetsReviewLib.study.hanging import choose_layout

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverMetsReview"
ROLE = "LiverMetsReview.Role"


class FakeVolume:
    def __init__(self, node_id: str, name: str, attrs: dict[str, str], labelmap: bool = False) -> None:
        self.node_id, self.name, self.attrs, self.labelmap = node_id, name, attrs, labelmap

    def GetID(self):  # noqa: N802 - VTK spelling
        return self.node_id

    def GetName(self):  # noqa: N802
        return self.name

    def GetAttribute(self, key):  # noqa: N802
        return self.attrs.get(key)

    def IsA(self, cls):  # noqa: N802
        return cls == "vtkMRMLLabelMapVolumeNode" and self.labelmap


class Recorder:
    """Any Set*/Fit* call is recorded as attribute state; Get* returns it."""

    def __init__(self) -> None:
        self.state: dict[str, object] = {}

    def __getattr__(self, name):
        if name.startswith(("Set", "Fit")):
            return lambda *args: self.state.__setitem__(name[3:] if name.startswith("Set") else name,
                                                        args[0] if len(args) == 1 else args)
        if name == "GetSliceOffset":
            return lambda: self.state.get("SliceOffset", 0.0)
        raise AttributeError(name)


class FakeSliceWidget:
    def __init__(self, offset: float) -> None:
        self.composite, self.slice, self.logic = Recorder(), Recorder(), Recorder()
        self.logic.state["SliceOffset"] = offset

    def mrmlSliceCompositeNode(self):  # noqa: N802
        return self.composite

    def mrmlSliceNode(self):  # noqa: N802
        return self.slice

    def sliceLogic(self):  # noqa: N802
        return self.logic


class FakeLayoutNode:
    def __init__(self) -> None:
        self.descriptions: dict[int, str] = {}
        self.arrangement = None
        self.widgets: dict[str, FakeSliceWidget] = {}

    def IsLayoutDescription(self, lid):  # noqa: N802
        return lid in self.descriptions

    def AddLayoutDescription(self, lid, xml):  # noqa: N802
        assert lid not in self.descriptions
        self.descriptions[lid] = xml

    def SetLayoutDescription(self, lid, xml):  # noqa: N802
        assert lid in self.descriptions
        self.descriptions[lid] = xml

    def SetViewArrangement(self, lid):  # noqa: N802
        self.arrangement = lid
        tags = [v.get("singletontag") for v in ET.fromstring(self.descriptions[lid]).iter("view")]
        # each view starts on its own slice position, as after fitting different volumes
        self.widgets = {t: FakeSliceWidget(offset=10.0 * k) for k, t in enumerate(tags)}


class FakeLayoutManager:
    def __init__(self) -> None:
        self.node = FakeLayoutNode()

    def layoutLogic(self):  # noqa: N802
        return types.SimpleNamespace(GetLayoutNode=lambda: self.node)

    def sliceWidget(self, name):  # noqa: N802
        return self.node.widgets.get(name)


@pytest.fixture()
def edge(monkeypatch):
    """LiverMetsReviewSlicer.hanging imported against a stand-in ``slicer`` holding a scene of volumes."""
    slicer = types.ModuleType("slicer")
    manager = FakeLayoutManager()
    scene: list[FakeVolume] = []
    slicer.app = types.SimpleNamespace(layoutManager=lambda: manager)
    slicer.mrmlScene = types.SimpleNamespace(GetNodeByID=lambda i: next((n for n in scene if n.node_id == i), None))
    slicer.util = types.SimpleNamespace(getNodesByClass=lambda cls: list(scene))
    for name in ("sitkUtils", "vtk"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("LiverMetsReviewSlicer.hanging")
    yield module, manager, scene
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        del sys.modules[name]


def _study_scene(scene: list[FakeVolume]) -> None:
    roles = ["t2", "t1_pre", "t1_arterial", "t1_portal_venous", "t1_hepatobiliary", "adc_scanner"]
    for k, role in enumerate(roles, start=1):
        scene.append(FakeVolume(f"vtkMRMLScalarVolumeNode{k}", role, {ROLE: role}))
    for k, b in enumerate((50, 400, 800), start=10):
        scene.append(FakeVolume(f"vtkMRMLScalarVolumeNode{k}", f"dwi_b{b}", {ROLE: "dwi",
                                                                            "LiverMetsReview.BValue": str(b)}))
    scene.append(FakeVolume("vtkMRMLScalarVolumeNode20", "adc", {"LiverMetsReview.Source": "map"}))
    scene.append(FakeVolume("vtkMRMLScalarVolumeNode21", "ff_chemical_shift_1",
                            {"LiverMetsReview.Source": "map"}))
    scene.append(FakeVolume("vtkMRMLLabelMapVolumeNode1", "labels", {ROLE: "t2"}, labelmap=True))
    scene.append(FakeVolume("vtkMRMLScalarVolumeNode30", "localizer", {ROLE: "unassigned"}))


def test_layout_xml_is_a_rows_by_cols_grid_in_viewport_order(edge):
    module, _, _ = edge
    plan = choose_layout("lesion_review", {})
    root = ET.fromstring(module.layoutXml(plan))
    assert root.tag == "layout" and root.get("type") == "vertical"
    rows = [item.find("layout") for item in root.findall("item")]
    assert len(rows) == 2 and all(r.get("type") == "horizontal" and len(r.findall("item")) == 3 for r in rows)
    views = list(root.iter("view"))
    assert [v.get("singletontag") for v in views] == [f"LiverMets{k}" for k in range(1, 7)]
    assert all(v.get("class") == "vtkMRMLSliceNode" for v in views)
    props = [{p.get("name"): p.text for p in v.findall("property")} for v in views]
    assert all(p["orientation"] == "Axial" and p["viewgroup"] == str(module.VIEW_GROUP) for p in props)


def test_scene_inventory_by_role_and_map_name(edge):
    module, _, scene = edge
    _study_scene(scene)
    scene.append(FakeVolume("vtkMRMLScalarVolumeNode40", "t2_aligned", {ROLE: "t2"}))  # newest t2
    av = module.availableFromScene()
    assert [i for i, _ in av["t2"]] == ["vtkMRMLScalarVolumeNode40", "vtkMRMLScalarVolumeNode1"]  # newest first
    assert sorted(m["b_value"] for _, m in av["dwi"]) == [50.0, 400.0, 800.0]
    assert av["adc"] == [("vtkMRMLScalarVolumeNode20", {"name": "adc"})]
    assert [i for i, _ in av["ff_chemical_shift"]] == ["vtkMRMLScalarVolumeNode21"]
    assert "unassigned" not in av and all("LabelMap" not in i for v in av.values() for i, _ in v)


def test_apply_plan_fills_orients_and_links_the_views(edge):
    module, manager, scene = edge
    _study_scene(scene)
    plan, shown = module.showProtocol("lesion_review")
    expected = {0: "vtkMRMLScalarVolumeNode1", 1: "vtkMRMLScalarVolumeNode12", 2: "vtkMRMLScalarVolumeNode20",
                3: "vtkMRMLScalarVolumeNode3", 4: "vtkMRMLScalarVolumeNode4", 5: "vtkMRMLScalarVolumeNode5"}
    assert plan.shown == expected  # b=800 DWI, our ADC over the scanner's
    assert manager.node.arrangement == module.layoutId(2, 3) == shown["layoutId"]
    for k, node_id in expected.items():
        w = manager.node.widgets[f"LiverMets{k + 1}"]
        assert w.composite.state["BackgroundVolumeID"] == node_id
        assert w.composite.state["ForegroundVolumeID"] is None
        assert w.composite.state["LinkedControl"] is True and w.composite.state["HotLinkedControl"] is False
        assert w.slice.state["Orientation"] == "Axial" and w.slice.state["ViewGroup"] == module.VIEW_GROUP
        assert w.logic.state["SliceOffset"] == 0.0  # all on the first view's slice
        assert shown["views"][f"LiverMets{k + 1}"]["nodeId"] == node_id
    assert shown["missing"] == {}


def test_apply_plan_reports_empty_viewports_and_reuses_the_layout(edge):
    module, manager, scene = edge
    _study_scene(scene)
    scene[:] = [n for n in scene if n.GetAttribute(ROLE) != "t1_hepatobiliary"]
    plan, shown = module.showProtocol("dynamic")
    assert list(shown["missing"]) == ["LiverMets4"] and "t1_hepatobiliary" in shown["missing"]["LiverMets4"]
    assert manager.node.widgets["LiverMets4"].composite.state["BackgroundVolumeID"] is None
    assert len(shown["views"]) == 3
    # the same grid shape again: the description is replaced, not added twice
    module.showProtocol("dynamic")
    assert list(manager.node.descriptions) == [module.layoutId(1, 4)]


def test_node_missing_from_the_scene_is_reported(edge):
    module, _, _ = edge
    plan = choose_layout("subtraction", {"t1_pre": ["gone"]})
    shown = module.applyLayoutPlan(plan, nodesById={})
    assert shown["missing"]["LiverMets1"] == "node gone is not in the scene"
