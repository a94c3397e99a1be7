"""The Checklist section's bindings, headless, against stand-ins for the few Slicer objects it touches.

What each test holds as truth: the engine's own output for the same inputs and answers (the section must show
and walk exactly that, never its own rule); the reader's answer read back from each of the three stores (the
sidecar file on disk, the segment tag, the parameter node); for the override, the medicine the engine's tests
already pin (a typical metastasis whose diffusion restriction and HBP hypointensity the reader denies is
indeterminate). Lesion values are drawn from the published ranges (test_checklist's drawers).
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
from test_checklist import ctx, fnh_like, solid_metastasis

from LiverMetsReviewLib.checklist import review
from LiverMetsReviewLib.context import write_clinical_context

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverMetsReview"


def rows_from_values(values: dict) -> list[dict]:
    """measurements.json rows whose flat keys (checklist.values.measurement_key) are ``values``' keys."""
    rows = []
    for key, v in values.items():
        parts = key.split(".")[1:]
        if len(parts) == 1:
            rows.append({"quantity": parts[0], "image": "", "region": "", "statistic": "", "value": v})
        elif parts[-1] == "ratio":
            rows.append({"quantity": "lesion_to_liver_ratio", "image": parts[0], "region": "lesion",
                         "statistic": "median", "value": v})
        else:
            rows.append({"quantity": "signal", "image": parts[0], "region": parts[1], "statistic": parts[2],
                         "value": v})
    return rows


class Ref:
    def __init__(self, value: str) -> None:
        self.value = value

    def __str__(self) -> str:
        return self.value


class Segment:
    def __init__(self, tags: dict) -> None:
        self.tags = dict(tags)

    def GetTag(self, name, ref):  # noqa: N802 - Slicer's spelling
        if name in self.tags:
            ref.value = self.tags[name]
            return True
        return False

    def SetTag(self, name, value):  # noqa: N802
        self.tags[name] = value


class SegmentationNode:
    def __init__(self) -> None:
        self.attributes: dict = {}

    def GetAttribute(self, name):  # noqa: N802
        return self.attributes.get(name)

    def SetAttribute(self, name, value):  # noqa: N802
        self.attributes[name] = value


class Widget(types.SimpleNamespace):
    text, enabled, checked, toolTip = "", True, False, ""


class Combo:
    def __init__(self) -> None:
        self.items, self.currentIndex = [], -1

    def clear(self):
        self.items = []

    def addItem(self, text):  # noqa: N802
        self.items.append(text)


@pytest.fixture()
def edge(monkeypatch, tmp_path):
    """LiverMetsReviewSlicer.checklist_section imported against stand-in ``slicer``, ``qt``, ``vtk`` modules."""
    slicer = types.ModuleType("slicer")

    @contextmanager
    def tryWithErrorDisplay(message, waitCursor=False):  # noqa: N802 - Slicer's name
        yield  # errors propagate: a failing save must fail the test

    slicer.util = types.SimpleNamespace(tryWithErrorDisplay=tryWithErrorDisplay, getNodesByClass=lambda c: [])
    slicer.mrmlScene = types.SimpleNamespace(IsImporting=lambda: False, GetURL=lambda: "")
    slicer.app = types.SimpleNamespace(temporaryPath=str(tmp_path / "slicer-temp"))
    slicer.vtkMRMLScalarVolumeNode = type("vtkMRMLScalarVolumeNode", (), {})
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterPack = lambda cls: cls
    slicer.i18n, slicer.parameterNodeWrapper = i18n, pnw
    vtk = types.ModuleType("vtk")
    vtk.reference = Ref
    for name, module in {"slicer": slicer, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": pnw,
                         "qt": types.ModuleType("qt"), "sitkUtils": types.ModuleType("sitkUtils"),
                         "vtk": vtk}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        monkeypatch.delitem(sys.modules, name)
    yield importlib.import_module("LiverMetsReviewSlicer.checklist_section")
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        del sys.modules[name]


def drawn_lesions(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [solid_metastasis(rng, "L1"), fnh_like(rng, "L2"), solid_metastasis(rng, "L3")]


class Scene:
    """Lesion segments with their measurement tags, as the Lesions section leaves them."""

    def __init__(self, cs, lesions: list[dict]) -> None:
        self.node = SegmentationNode()
        self.segments = {les["id"]: Segment({cs.scene.MEASUREMENTS: json.dumps(
            {"measurements": rows_from_values(les["values"]), "couinaud_segment": k + 2})})
            for k, les in enumerate(lesions)}
        self.lesions = [types.SimpleNamespace(node=self.node, segmentId=f"seg{lid}", lesionId=lid, segment=seg)
                        for lid, seg in self.segments.items()]

    def answersOnSegment(self, cs, lid: str) -> dict:
        return json.loads(self.segments[lid].tags.get(cs.scene.ANSWERS, "{}"))


def new_section(cs, scene: Scene, monkeypatch, folder: Path, contextFile: Path, answers: str = ""):
    monkeypatch.setattr(cs.scene, "lesionSegments", lambda: scene.lesions)
    names = ["itemLabel", "questionLabel", "suggestionLabel", "evidenceLabel", "answerLabel", "progressLabel",
             "impressionLabel", "reviewFileLabel", "messagesLabel", "noteLineEdit", "previousButton", "nextButton",
             "showButton", *cs.ANSWER_BUTTONS.values()]
    ui = types.SimpleNamespace(stepComboBox=Combo(), **{n: Widget() for n in names})
    section = cs.ChecklistSection()
    section.ui, section.logic = ui, None
    pack = types.SimpleNamespace(contextFile=contextFile, reviewFolder=folder, answers=answers, step="study",
                                 itemId="")
    section.params = types.SimpleNamespace(checklist=pack)
    section.load()
    return section, pack


def engine(lesions, context, answers=None):
    return review([{"id": les["id"], "values": les["values"], "couinaud_segment": k + 2}
                   for k, les in enumerate(lesions)], {}, context, answers)


@pytest.fixture()
def context_file(tmp_path) -> tuple[Path, dict]:
    context = ctx()
    return write_clinical_context(context, tmp_path / "clinical_context.json"), context


@pytest.mark.parametrize("seed", range(3))
def test_next_and_previous_walk_exactly_the_engines_applicable_items(edge, monkeypatch, tmp_path, context_file,
                                                                     seed):
    cs = edge
    lesions = drawn_lesions(seed)
    path, context = context_file
    section, pack = new_section(cs, Scene(cs, lesions), monkeypatch, tmp_path / "review", path)
    expected = engine(lesions, context)
    for step in ["study"] + [les["id"] for les in lesions]:
        section.goToStep(step)
        part = expected["study"] if step == "study" else next(x for x in expected["lesions"] if x["id"] == step)
        applicable = [r["id"] for r in part["items"] if r["applicable"]]
        assert applicable and len(applicable) < len(part["items"])  # some items do not apply: skipped
        seen = [section.current()["id"]]
        for _ in range(len(applicable) + 2):  # two presses past the end stay on the last item
            section.moveItem(1)
            seen.append(section.current()["id"])
        assert seen == applicable + [applicable[-1]] * 3
        section.moveItem(-len(applicable) - 1)
        section.moveItem(-1)
        assert section.current()["id"] == applicable[0]
        assert section.ui.itemLabel.text.startswith(f"1/{len(applicable)} ")
        assert section.ui.questionLabel.text == part["items"][[r["id"] for r in part["items"]].index(
            applicable[0])]["question"]
    section.moveStep(1)  # past the last lesion: stays
    assert pack.step == lesions[-1]["id"]
    assert section.ui.stepComboBox.items[0].startswith("Study")


@pytest.mark.parametrize("seed", range(3))
def test_an_answer_is_in_all_three_stores_at_once_and_the_impression_follows_an_override(
        edge, monkeypatch, tmp_path, context_file, seed):
    cs = edge
    lesions = drawn_lesions(seed)
    path, context = context_file
    scene = Scene(cs, lesions)
    section, pack = new_section(cs, scene, monkeypatch, tmp_path / "review", path)
    section.goToStep("L1")
    assert "Impression: typical metastasis" in section.ui.impressionLabel.text
    given = {}
    for item in ("diffusion_restriction", "hbp_hypointense"):
        pack.itemId = item
        section.ui.noteLineEdit.text = f"note on {item} | seen on b800"  # '|' splits .seg.nrrd tags
        section.answer("no")
        given[item] = "no"
        sidecar = json.loads((tmp_path / "review" / "review.json").read_text())["answers"]["L1"]
        for store in (sidecar, scene.answersOnSegment(cs, "L1"), json.loads(pack.answers)["L1"]):
            assert {k: v["answer"] for k, v in store.items()} == given
            assert store[item]["note"] == f"note on {item} | seen on b800"
        assert "|" not in scene.segments["L1"].tags[cs.scene.ANSWERS]
        assert pack.itemId != item and section.ui.noteLineEdit.text == ""  # moved on, note used
    expected = engine(lesions, context, {"L1": given})["lesions"][0]["impression"]
    assert expected["category"] == "indeterminate"  # the medicine, pinned by test_checklist
    assert section.ui.impressionLabel.text.splitlines()[0] == "Impression: indeterminate"
    assert expected["recommendation"] in section.ui.impressionLabel.text
    assert section.ui.progressLabel.text.startswith("2 of ")
    result = engine(lesions, context, {"L1": given})
    for les in result["lesions"]:  # every lesion shows its own impression
        section.goToStep(les["id"])
        assert section.ui.impressionLabel.text.splitlines()[0] == f"Impression: {les['impression']['category']}"
    assert len({les["impression"]["category"] for les in result["lesions"]}) > 1
    section.goToStep("study")
    section.answer("yes")
    assert json.loads(scene.node.attributes[cs.scene.STUDY_ANSWERS])
    assert json.loads(pack.answers)["study"] == json.loads(scene.node.attributes[cs.scene.STUDY_ANSWERS])


def test_review_restores_from_any_one_store_and_the_latest_answer_wins(edge, monkeypatch, tmp_path, context_file):
    cs = edge
    lesions = drawn_lesions(7)
    path, _context = context_file
    folder = tmp_path / "review"
    scene = Scene(cs, lesions)
    section, pack = new_section(cs, scene, monkeypatch, folder, path)
    section.goToStep("L3")
    pack.itemId = "diffusion_restriction"
    section.answer("indeterminate")
    section.goToStep("study")
    section.answer("no")
    full = json.loads(pack.answers)
    impression = section.ui.impressionLabel.text

    # Scene reopened: tags only (no parameter node copy, no sidecar).
    (folder / "review.json").unlink()
    again, againPack = new_section(cs, scene, monkeypatch, tmp_path / "other", path)
    assert json.loads(againPack.answers) == full
    # Sidecar only (e.g. the scene was never saved after the answers): a fresh scene, same review folder.
    fresh = Scene(cs, lesions)
    third, thirdPack = new_section(cs, fresh, monkeypatch, tmp_path / "other", path)
    assert json.loads(thirdPack.answers) == full
    assert fresh.answersOnSegment(cs, "L3") == full["L3"]
    third.goToStep("study")
    assert third.ui.impressionLabel.text == impression
    # Parameter node only (segments re-created, another review folder).
    fifth, fifthPack = new_section(cs, Scene(cs, lesions), monkeypatch, tmp_path / "third", path, answers=pack.answers)
    assert json.loads(fifthPack.answers) == full
    assert json.loads((tmp_path / "third" / "review.json").read_text())["answers"] == full
    # A later answer in the sidecar beats an older one on the segment.
    later = dict(full["L3"]["diffusion_restriction"], answer="yes", at="2999-01-01T00:00:00+00:00")
    doc = json.loads((tmp_path / "other" / "review.json").read_text())
    doc["answers"]["L3"]["diffusion_restriction"] = later
    (tmp_path / "other" / "review.json").write_text(json.dumps(doc))
    fourth, fourthPack = new_section(cs, fresh, monkeypatch, tmp_path / "other", path)
    assert json.loads(fourthPack.answers)["L3"]["diffusion_restriction"]["answer"] == "yes"
    assert fresh.answersOnSegment(cs, "L3")["diffusion_restriction"]["answer"] == "yes"


def test_merge_keeps_the_latest_answer_per_item(edge):
    cs = edge
    a = {"L1": {"x": {"answer": "yes", "at": "2026-01-01T10:00:00+00:00"}}, "study": {"s": {"answer": "no", "at": "1"}}}
    b = {"L1": {"x": {"answer": "no", "at": "2026-01-01T10:00:05+00:00"}, "y": {"answer": "yes", "at": "0"}}}
    assert cs.mergeAnswers(a, b) == {"L1": {"x": b["L1"]["x"], "y": b["L1"]["y"]}, "study": a["study"]}
    assert cs.mergeAnswers(b, a)["L1"]["x"]["answer"] == "no"


def test_study_step_names_the_pitfalls_in_play(edge, monkeypatch, tmp_path, context_file):
    """The study step's summary lists the pitfalls in play under the checklist's names, as the report does."""
    cs = edge
    lesions = drawn_lesions(0)
    path, context = context_file
    section, pack = new_section(cs, Scene(cs, lesions), monkeypatch, tmp_path / "review", path)
    section.goToStep("study")
    expected = engine(lesions, context)
    named = {p["item"]: p["name"] for les in expected["lesions"] for p in les["pitfalls_in_play"]}
    assert named, "the drawn lesions put no pitfall in play: the test would prove nothing"
    line = next(s for s in section.ui.impressionLabel.text.splitlines() if s.startswith("Pitfalls in play:"))
    for item, name in named.items():
        assert f"{name} (" in line and f": {item}" not in line, (item, name, line)
