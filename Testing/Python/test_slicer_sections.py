"""The GUI sections' behaviour, headless, against recording stand-ins for the few Slicer objects they touch.

What each test holds as truth: a chosen series changes ONE view and never the layout (a recording layout
manager); every built-in protocol's grid is registered at start-up; a scene whose close makes node IDs start
again (as Slicer's does) still shows the first series of the next study; Slicer's volumes are matched to the
classifier's stacks by their files, merged or shared files are never taken as one stack.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from LiverMetsReviewLib.study.hanging import choose_layout, protocol_ids
from LiverMetsReviewLib.study.match import match_volumes_to_stacks

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverMetsReview"


# ------------------------------------------------------------------------------------------------ core matching


def _series(file_counts: list[int], shared: bool = False):
    frames = [[types.SimpleNamespace(path="/d/shared.dcm" if shared else f"/d/s{k}_{i}.dcm") for i in range(n)]
              for k, n in enumerate(file_counts)]
    return types.SimpleNamespace(stacks=[types.SimpleNamespace(frames=f) for f in frames])


@pytest.mark.parametrize("seed", range(5))
def test_volumes_match_stacks_by_their_files(seed):
    rng = np.random.default_rng(seed)
    counts = [int(c) for c in rng.integers(2, 9, size=int(rng.integers(3, 7)))]
    info = _series(counts)
    files = [[f.path for f in s.frames] for s in info.stacks]
    merged_pair = sorted(int(k) for k in rng.choice(len(counts), size=2, replace=False))
    exact = [k for k in range(len(counts)) if k not in merged_pair]
    volumes = {f"v{k}": list(rng.permutation(files[k])) for k in exact}  # the plugin's slice order differs
    volumes["merged"] = files[merged_pair[0]] + files[merged_pair[1]]  # e.g. two echoes in one volume
    volumes["part"] = files[exact[0]][:-1]  # a slice missing
    result = match_volumes_to_stacks(info, volumes)
    assert result.matched == {f"v{k}": k for k in exact}
    assert result.merged == {"merged": merged_pair, "part": [exact[0]]}
    assert result.unmatched == merged_pair
    assert "2 stacks" in result.reason("merged")


def test_enhanced_file_shared_by_every_stack_is_never_one_stack():
    info = _series([4, 4, 4], shared=True)
    result = match_volumes_to_stacks(info, {"whole": ["/d/shared.dcm"]})
    assert result.matched == {} and result.merged == {"whole": [0, 1, 2]} and result.unmatched == [0, 1, 2]


# ------------------------------------------------------------------------------------------------ Slicer stand-ins


class Composite:
    def __init__(self, volume_id: str | None) -> None:
        self.background = volume_id

    def SetBackgroundVolumeID(self, volume_id):  # noqa: N802 - Slicer's spelling
        self.background = volume_id


class SliceWidget:
    def __init__(self, volume_id: str | None) -> None:
        self.composite, self.fits, self.visible = Composite(volume_id), 0, True

    def mrmlSliceCompositeNode(self):  # noqa: N802
        return self.composite

    def sliceLogic(self):  # noqa: N802
        return types.SimpleNamespace(FitSliceToAll=self.fit)

    def fit(self):
        self.fits += 1


class LayoutNode:
    def __init__(self) -> None:
        self.descriptions: dict[int, str] = {}

    def IsLayoutDescription(self, lid):  # noqa: N802
        return lid in self.descriptions

    def AddLayoutDescription(self, lid, xml):  # noqa: N802
        assert lid not in self.descriptions
        self.descriptions[lid] = xml

    def SetLayoutDescription(self, lid, xml):  # noqa: N802
        self.descriptions[lid] = xml


class LayoutManager:
    """A hanging layout of six views, each with its own volume; records every layout change."""

    def __init__(self) -> None:
        self.widgets = {f"LiverMets{k}": SliceWidget(f"vol{k}") for k in range(1, 7)}
        self.node, self.layouts = LayoutNode(), []

    def sliceViewNames(self):  # noqa: N802
        return list(self.widgets)

    def sliceWidget(self, name):  # noqa: N802
        return self.widgets.get(name)

    def setLayout(self, layout):  # noqa: N802
        self.layouts.append(layout)

    def layoutLogic(self):  # noqa: N802
        return types.SimpleNamespace(GetLayoutNode=lambda: self.node)


class Node:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    def GetID(self):  # noqa: N802
        return self.node_id


@pytest.fixture()
def edge(monkeypatch):
    """LiverMetsReviewSlicer imported against a stand-in ``slicer`` with a recording layout manager."""
    manager = LayoutManager()
    calls: list[tuple] = []
    slicer = types.ModuleType("slicer")
    slicer.app = types.SimpleNamespace(layoutManager=lambda: manager)
    slicer.util = types.SimpleNamespace(setSliceViewerLayers=lambda **kw: calls.append(("all views", kw)))
    slicer.mrmlScene = types.SimpleNamespace(GetFirstNodeByClass=lambda cls: None)
    slicer.vtkMRMLScalarVolumeNode = type("vtkMRMLScalarVolumeNode", (), {})
    slicer.vtkMRMLLayoutNode = types.SimpleNamespace(SlicerLayoutFourUpView=3)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterPack = lambda cls: cls
    pnw.Choice = lambda choices: ("Choice", list(choices))
    pnw.WithinRange = lambda lo, hi: ("WithinRange", lo, hi)
    slicer.i18n, slicer.parameterNodeWrapper = i18n, pnw
    for name, module in {"slicer": slicer, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": pnw,
                         "qt": types.ModuleType("qt"), "sitkUtils": types.ModuleType("sitkUtils"),
                         "vtk": types.ModuleType("vtk")}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        monkeypatch.delitem(sys.modules, name)
    yield manager, calls
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        del sys.modules[name]


def test_chosen_series_goes_into_one_view_and_the_layout_stays(edge):
    manager, calls = edge
    layouts = importlib.import_module("LiverMetsReviewSlicer.layouts")
    before = {n: w.composite.background for n, w in manager.widgets.items()}
    for step, (preferred, expected) in enumerate((("LiverMets4", "LiverMets4"), (None, "LiverMets1"),
                                                  ("Red", "LiverMets1"))):
        assert layouts.showInView(Node(f"new{step}"), preferred) == expected
        after = {n: w.composite.background for n, w in manager.widgets.items()}
        assert {n for n in after if after[n] != before[n]} == {expected}
        assert after[expected] == f"new{step}"
        before = after
    assert manager.layouts == [] and calls == []  # no layout switch, no all-views call
    assert [manager.widgets[n].fits for n in manager.widgets] == [2, 0, 0, 1, 0, 0]
    manager.widgets["LiverMets1"].visible = False  # a 1x2 layout hides the other views
    assert layouts.showInView(Node("x"), None) == "LiverMets2"


def test_every_protocol_layout_is_registered_at_startup(edge):
    manager, _ = edge
    hanging = importlib.import_module("LiverMetsReviewSlicer.hanging")
    ids = hanging.registerLayouts()
    shapes = {(p.rows, p.cols) for p in (choose_layout(pid, {}) for pid in protocol_ids())}
    assert sorted(ids) == sorted(hanging.layoutId(r, c) for r, c in shapes)
    assert set(manager.node.descriptions) == set(ids)
    assert hanging.registerLayouts() == ids  # again (a module reload): updated, not added twice


class Label:
    text = "something shown"


def _section(study_section, logic):
    ui = types.SimpleNamespace(
        layoutResultLabel=Label(), loadResultLabel=Label(), dicomFolderButton=Label(),
        seriesTableWidget=types.SimpleNamespace(setRowCount=lambda n: setattr(ui, "rows", n)))
    section = study_section.StudySection()
    section.ui, section.logic = ui, logic
    return section


def test_scene_close_forgets_the_displayed_series(edge, monkeypatch):
    """Slicer's next scene reuses vtkMRMLScalarVolumeNode1: a cached ID from the closed scene would make the first
    series of the next study look 'already shown' and leave the views on nothing."""
    study_section = importlib.import_module("LiverMetsReviewSlicer.study_section")
    shown: list[str] = []
    monkeypatch.setattr(study_section, "showInView", lambda node, view: shown.append(node.GetID()))
    logic = types.SimpleNamespace(seriesNodes=list)
    section = _section(study_section, logic)
    pack = types.SimpleNamespace(displayedVolume=None, dicomFolder=Path())
    section.params = types.SimpleNamespace(study=pack)
    section.PACK = "study"
    section.focus.viewName = "LiverMets3"
    pack.displayedVolume = Node("vtkMRMLScalarVolumeNode1")
    section.onParametersModified()
    section.onParametersModified()  # another parameter changed: not shown again
    assert shown == ["vtkMRMLScalarVolumeNode1"]
    assert section.ui.dicomFolderButton.text == study_section.FOLDER_PROMPT  # not the working folder
    section.onSceneClosed()
    assert section.focus.viewName is None and section.ui.rows == 0
    assert section.ui.layoutResultLabel.text == section.ui.loadResultLabel.text == ""
    pack.displayedVolume = Node("vtkMRMLScalarVolumeNode1")  # the next study's first series, same ID
    section.onParametersModified()
    assert shown == ["vtkMRMLScalarVolumeNode1"] * 2
    pack.dicomFolder = Path("/studies/a")
    section.onParametersModified()
    assert section.ui.dicomFolderButton.text == ""  # the button shows the chosen folder
