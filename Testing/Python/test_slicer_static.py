"""Static checks of the Slicer module against Slicer 5.12 and main API inventories (no Slicer needed).

The first test checks the real module; the others feed the checker deliberately broken snippets to prove it
reports each kind of error (a checker that never fails proves nothing).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import os
import shutil
import sys
import types
import unittest
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer_static as ss

from conftest import MODULE_DIR, REPO_ROOT, shared_path
from LiverMetsReviewLib.errors import LiverMetsError

UI_DIR = MODULE_DIR / "Resources" / "UI"
UI_PATH = UI_DIR / "StudySection.ui"


@pytest.fixture(scope="session")
def inventories() -> list[ss.Inventory]:
    api_dir = shared_path("slicer-api")
    invs = ss.load_inventories(api_dir)
    assert [inv.label for inv in invs] and len(invs) == 2
    return invs


@pytest.fixture(scope="session")
def ui_text() -> str:
    return UI_PATH.read_text(encoding="utf-8")


def _errors(report: ss.Report, check: str | None = None) -> list[ss.Finding]:
    return [f for f in report.errors if check is None or f.check == check]


def _labels(report: ss.Report, name: str) -> set[str]:
    return {f.inventory for f in report.errors if f.name == name}


# ------------------------------------------------------------------------------------------------------------
# The real module


def test_module_passes_all_static_checks(inventories):
    report = ss.check_extension(REPO_ROOT, shared_path("slicer-api"))
    assert not report.errors, "\n" + report.text()


def test_module_really_uses_checked_api(inventories):
    """Guard against a vacuous pass: the module's typed calls are resolved and checked, not skipped."""
    checked: list[tuple[str, str]] = []
    original = ss._PythonChecker._check_member

    def spy(self, cls, member, node, name, exact=True):
        checked.append((cls, member))
        return original(self, cls, member, node, name, exact)

    ss._PythonChecker._check_member = spy
    try:
        ss.check_extension(REPO_ROOT, shared_path("slicer-api"))
    finally:
        ss._PythonChecker._check_member = original
    expected = {
        ("vtkSlicerSegmentationsModuleLogic", "ImportLabelmapToSegmentationNode"),  # via slicer.modules.x.logic()
        ("vtkSegmentation", "GetNthSegment"),          # via the inventory's return type of GetSegmentation
        ("vtkMRMLColorTableNode", "SetColor"),         # via AddNewNodeByClass("vtkMRMLColorTableNode")
        ("vtkMRMLScalarVolumeNode", "GetRASToIJKMatrix"),  # via a parameter annotation
        ("vtkMatrix4x4", "MultiplyPoint"),             # via vtk.vtkMatrix4x4()
        ("vtkMRMLScalarVolumeNode", "GetIJKToRASDirectionMatrix"),  # via a "# slicer-class:" comment
    }
    assert expected <= set(checked), expected - set(checked)


# ------------------------------------------------------------------------------------------------------------
# The checker catches errors in Python


def test_catches_json_segment_tags_that_a_seg_nrrd_would_split(inventories):
    bad = "import json\ndef f(segment, answers):\n    segment.SetTag('LiverMetsReview.Answers', json.dumps(answers))\n"
    assert {f.check for f in ss.check_python_source(bad, "snippet.py", inventories).errors} == {"segment-tag"}
    good = bad.replace("json.dumps(answers))", "json.dumps(answers).replace('|', '\\\\u007c'))")
    assert not ss.check_python_source(good, "snippet.py", inventories).errors


def test_catches_missing_util_function(inventories):
    report = ss.check_python_source("import slicer\nslicer.util.loadVolumee('a.nrrd')\n", "snippet.py", inventories)
    assert _labels(report, "slicer.util.loadVolumee") == {inv.label for inv in inventories}
    report = ss.check_python_source("from slicer.util import arrayFromVolumee\n", "snippet.py", inventories)
    assert "slicer.util.arrayFromVolumee" in report.error_names()


def test_catches_deprecated_names(inventories):
    src = (
        "import slicer\nimport sitkUtils\n"
        "a = slicer.util.arrayFromSegment(None, 'id')\n"
        "ok = sitkUtils.IsMRMLIDImageIOAvailable()\n"
        "c = slicer.mrmlScene.AddNewNodeByClass('vtkMRMLColorTableNode')\n"
        "c.SetNoName('none')\n"
    )
    report = ss.check_python_source(src, "snippet.py", inventories)
    deprecated = {f.name for f in _errors(report, "deprecated")}
    assert {"slicer.util.arrayFromSegment", "sitkUtils.IsMRMLIDImageIOAvailable",
            "vtkMRMLColorTableNode.SetNoName"} <= deprecated


def test_catches_missing_classes_modules_and_python_names(inventories):
    src = (
        "import slicer\nimport sitkUtils\nimport SampleData\n"
        "n = slicer.vtkMRMLScalarVolumeNodee()\n"
        "logic = slicer.modules.notamodule.logic()\n"
        "img = sitkUtils.PullVolume('x')\n"
        "SampleData.SampleDataLogic.registerSampleSource()\n"
        "ok = slicer.modules.segmentations\n"
    )
    names = ss.check_python_source(src, "snippet.py", inventories).error_names()
    assert {"slicer.vtkMRMLScalarVolumeNodee", "slicer.modules.notamodule.logic", "sitkUtils.PullVolume",
            "SampleData.SampleDataLogic.registerSampleSource"} <= names
    assert "slicer.modules.segmentations" not in names


def test_catches_wrong_methods_on_inferred_classes(inventories):
    src = '''
import slicer
import sitkUtils
import vtk


def f(volume: slicer.vtkMRMLScalarVolumeNode, image):
    volume.GetSpacingg()
    seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    seg.GetSegmentation().GetNthSegmentt(0)
    pushed = sitkUtils.PushVolumeToSlicer(image, className="vtkMRMLLabelMapVolumeNode")
    pushed.GetLabelMapThing()
    logic = slicer.modules.segmentations.logic()
    logic.ImportLabelmapToSegmentationNodee(pushed, seg)
    m = vtk.vtkMatrix4x4()
    m.MultiplyPointt([0, 0, 0, 1])
    other = lookup()  # slicer-class: vtkMRMLModelNode
    other.GetPolyDataa()
    slicer.mrmlScene.AddNodee(seg)
    seg.GetSegmentation().GetNthSegment(0)
'''
    report = ss.check_python_source(src, "snippet.py", inventories)
    names = {f.name for f in _errors(report, "method")}
    assert {"vtkMRMLScalarVolumeNode.GetSpacingg", "vtkSegmentation.GetNthSegmentt",
            "vtkMRMLLabelMapVolumeNode.GetLabelMapThing",
            "vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNodee",
            "vtkMatrix4x4.MultiplyPointt", "vtkMRMLModelNode.GetPolyDataa", "slicer.mrmlScene.AddNodee"} <= names
    assert "vtkSegmentation.GetNthSegment" not in names


def test_declared_types_do_not_raise_false_errors(inventories):
    """A declared return type (GetNodeByID -> vtkMRMLNode) may hide a subclass: its members are not errors,
    but a near-twin typo of a member of the declared class still is."""
    src = (
        "import slicer\n"
        "node = slicer.mrmlScene.GetNodeByID('vtkMRMLScalarVolumeNode1')\n"
        "node.GetImageData()\n"
        "node.GetNamee()\n"
        "slicer.modules.myExtensionRegistry = {}\n"
        "x = slicer.modules.Segmentations\n"
    )
    report = ss.check_python_source(src, "snippet.py", inventories)
    names = report.error_names()
    assert "vtkMRMLNode.GetImageData" not in names
    assert "vtkMRMLNode.GetNamee" in names
    assert "slicer.modules.myExtensionRegistry" not in names
    assert "slicer.modules.Segmentations" in names  # module attributes are lowercase


def test_catches_wrong_keywords_and_argument_counts(inventories):
    src = (
        "import sitkUtils\nimport SampleData\nimport slicer\n"
        "sitkUtils.PushVolumeToSlicer(None, nodeName='x')\n"
        "SampleData.SampleDataLogic.registerCustomSampleDataSource(category='c', customDownloadr=print)\n"
        "SampleData.SampleDataLogic.registerCustomSampleDataSource(category='c', loadFileType='VolumeFile')\n"
        "slicer.util.setSliceViewerLayers(None, None, None, None, None, None, None, None)\n"
    )
    report = ss.check_python_source(src, "snippet.py", inventories)
    names = report.error_names()
    assert "sitkUtils.PushVolumeToSlicer(nodeName=)" in names
    assert "SampleData.SampleDataLogic.registerCustomSampleDataSource(customDownloadr=)" in names
    assert "SampleData.SampleDataLogic.registerCustomSampleDataSource(loadFileType=)" in names
    assert "slicer.util.setSliceViewerLayers" in names


def test_checks_dicom_utils_imported_from_dicomlib(inventories):
    """``from DICOMLib import DICOMUtils`` (the self-test's DICOM database import) is checked like sitkUtils: a
    misspelt function or keyword is reported, the real calls pass, and DICOMLib counts as shipped with Slicer."""
    good = (
        "from DICOMLib import DICOMUtils\n"
        "with DICOMUtils.TemporaryDICOMDatabase('/tmp/db') as db:\n"
        "    DICOMUtils.importDicom('/tmp/dicom', db)\n"
        "    DICOMUtils.loadSeriesByUID(['1.2'], enabledPluginClassNames=['DICOMScalarVolumePlugin'])\n"
    )
    assert not ss.check_python_source(good, "snippet.py", inventories).errors
    bad = (
        "from DICOMLib import DICOMUtils\n"
        "DICOMUtils.loadSeriesByUIDs(['1.2'])\n"
        "DICOMUtils.loadSeriesByUID(['1.2'], enabledPlugins=['DICOMScalarVolumePlugin'])\n"
    )
    names = ss.check_python_source(bad, "snippet.py", inventories).error_names()
    assert "DICOMLib.DICOMUtils.loadSeriesByUIDs" in names
    assert "DICOMLib.DICOMUtils.loadSeriesByUID(enabledPlugins=)" in names
    assert "DICOMLib" in ss.SLICER_PROVIDED


def test_catches_wrong_ui_names_and_self_attributes(inventories, ui_text):
    src = '''
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget


class W(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.ui = slicer.util.childWidgetVariables(None)
        self.ui.generatePhantomButton.enabled = True
        self.ui.applyButton.enabled = True
        self.layout.addStretch(1)
        self.resourcePath("UI/Missing.ui")
        self.resourcePath("UI/StudySection.ui")


class M(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "M"
        self.parent.categorie = ["Quantification"]


class T(ScriptedLoadableModuleTest):
    def runTest(self):
        self.delayDisplay("ok")
        self.assertEqual(1, 1)
        self.delayDisplayy("typo")
'''
    names = set(ss.parse_ui(ui_text).widgets)
    report = ss.check_python_source(src, "snippet.py", inventories, ui_names=names,
                                    resources_dir=MODULE_DIR / "Resources")
    errs = report.error_names()
    assert "self.ui.applyButton" in errs and "self.ui.generatePhantomButton" not in errs
    assert "self.delayDisplayy" in errs
    assert "self.parent.categorie" in errs and "self.parent.title" not in errs
    assert not {"self.delayDisplay", "self.assertEqual", "self.layout", "self.ui"} & errs
    assert "UI/Missing.ui" in errs and "UI/StudySection.ui" not in errs


# ------------------------------------------------------------------------------------------------------------
# The checker catches errors in the .ui and in the parameter bindings


def test_real_ui_is_clean(inventories, ui_text):
    for path in sorted(UI_DIR.glob("*.ui")):
        report = ss.check_ui(path.read_text(encoding="utf-8"), path.name, inventories)
        assert not report.errors, report.text()
    info = ss.parse_ui(ui_text)
    assert info.widgets["displayedVolumeSelector"] == "qMRMLNodeComboBox"


def test_catches_ui_errors(inventories, ui_text):
    bad_class = ui_text.replace('class="qMRMLNodeComboBox"', 'class="qMRMLNodeComboBoxx"', 1)
    assert "qMRMLNodeComboBoxx" in ss.check_ui(bad_class, "x.ui", inventories).error_names()
    bad_qt = ui_text.replace('class="QTableWidget"', 'class="QTableWidgett"')
    assert "QTableWidgett" in ss.check_ui(bad_qt, "x.ui", inventories).error_names()
    start = ui_text.index("<connection>")
    end = ui_text.index("</connection>") + len("</connection>")
    no_scene = ui_text[:start] + ui_text[end:]
    report = ss.check_ui(no_scene, "x.ui", inventories)
    assert [f.name for f in _errors(report, "mrml-scene")] == ["displayedVolumeSelector"]
    in_code = ss.scene_widgets_set_in_code(["self.ui.displayedVolumeSelector.setMRMLScene(slicer.mrmlScene)\n"])
    assert not _errors(ss.check_ui(no_scene, "x.ui", inventories, in_code), "mrml-scene")
    bad_slot = ui_text.replace("<slot>setMRMLScene(vtkMRMLScene*)</slot>", "<slot>setMRMLScenee(vtkMRMLScene*)</slot>")
    assert "displayedVolumeSelector.setMRMLScenee(vtkMRMLScene*)" in ss.check_ui(bad_slot, "x.ui",
                                                                               inventories).error_names()
    overlap = ui_text.replace('<item row="1" column="0"><widget class="QLabel" name="seedLabel">',
                              '<item row="0" column="0"><widget class="QLabel" name="seedLabel">')
    assert overlap != ui_text
    assert "phantomFormLayout[0,0]" in ss.check_ui(overlap, "x.ui", inventories).error_names()
    duplicate = ui_text.replace('name="seedLabel"', 'name="scenarioLabel"')
    assert "scenarioLabel" in ss.check_ui(duplicate, "x.ui", inventories).error_names()


def test_parameter_bindings(ui_text):
    """Sections bind dotted names (study.phantomSeed) that resolve into the @parameterPack of the module's
    parameter node; each kind of mismatch is caught."""
    sources = {p.name: p.read_text(encoding="utf-8") for p in ss.module_python_files(MODULE_DIR)}
    for path in sorted(UI_DIR.glob("*.ui")):
        assert not ss.check_parameter_bindings(path.read_text(encoding="utf-8"), sources).errors, path.name
    packs = ss.parameter_packs(sources.values())
    assert {"StudyParameters", "MapsParameters"} <= set(packs)
    fields = ss.parameter_node_fields(sources["LiverMetsReview.py"], packs)["LiverMetsReviewParameterNode"]
    assert set(ss.parse_ui(ui_text).parameter_bindings.values()) <= set(fields)
    assert "study.phantomSeed" in fields and "maps.adcMethod" in fields

    wrong_name = ui_text.replace("<string>study.phantomSeed</string>", "<string>study.phantomSeeed</string>")
    assert wrong_name != ui_text
    assert "study.phantomSeeed" in ss.check_parameter_bindings(wrong_name, sources).error_names()
    wrong_pack = ui_text.replace("<string>study.phantomSeed</string>", "<string>maps.phantomSeed</string>")
    assert "maps.phantomSeed" in ss.check_parameter_bindings(wrong_pack, sources).error_names()
    undotted = ui_text.replace("<string>study.phantomSeed</string>", "<string>phantomSeed</string>")
    assert "phantomSeed" in ss.check_parameter_bindings(undotted, sources).error_names()

    def study_source(old: str, new: str) -> dict[str, str]:
        changed = dict(sources)
        changed["study_section.py"] = sources["study_section.py"].replace(old, new)
        assert changed["study_section.py"] != sources["study_section.py"], old
        return changed

    no_choice = study_source('phantomSize: Annotated[str, Choice(["standard", "small"])] = "standard"',
                             'phantomSize: str = "standard"')
    assert "study.phantomSize" in ss.check_parameter_bindings(ui_text, no_choice).error_names()
    wrong_type = study_source("phantomSeed: Annotated[int, WithinRange(0, 999999)] = 0", "phantomSeed: float = 0.0")
    assert "study.phantomSeed" in ss.check_parameter_bindings(ui_text, wrong_type).error_names()
    path_as_str = study_source("dicomFolder: Path", "dicomFolder: str")
    assert "study.dicomFolder" in ss.check_parameter_bindings(ui_text, path_as_str).error_names()
    not_a_pack = study_source("@parameterPack\nclass StudyParameters", "class StudyParameters")
    assert "study.phantomSeed" in ss.check_parameter_bindings(ui_text, not_a_pack).error_names()

    wrong_node = ui_text.replace("<string>vtkMRMLScalarVolumeNode</string>", "<string>vtkMRMLModelNode</string>")
    assert "study.displayedVolume" in ss.check_parameter_bindings(wrong_node, sources).error_names()


def test_sections_ui_names_own_module_and_ui_files(inventories, ui_text):
    """A section's ``self.ui.X`` / ``ui.X`` is checked against the .ui its file names, ``widget.study.ui.X`` (the
    self-test) against all .ui files; this module's own ``slicer.modules.livermetsreview`` is known; a UI_FILE that
    does not exist is an error."""
    study_names = set(ss.parse_ui(ui_text).widgets)
    all_names = study_names | set(ss.parse_ui((UI_DIR / "MapsSection.ui").read_text(encoding="utf-8")).widgets)
    src = '''
import slicer


class S:
    UI_FILE = "UI/StudySection.ui"
    OTHER = "UI/NoSuchSection.ui"

    def setup(self, ui, logic):
        ui.loadDicomButton.enabled = True
        ui.loadDicomButtonn.enabled = True
        self.ui.computeAdcButton.enabled = True


def drive():
    widget = slicer.modules.livermetsreview.widgetRepresentation().self()
    widget.study.ui.generatePhantomButton.click()
    widget.maps.ui.computeAdcButton.click()
    widget.maps.ui.computeAdcButtonn.click()
    slicer.modules.livermetsreview.widgetRepresentationn()
'''
    report = ss.check_python_source(src, "s.py", inventories, ui_names=study_names, all_ui_names=all_names,
                                    resources_dir=MODULE_DIR / "Resources")
    errs = report.error_names()
    assert "ui.loadDicomButtonn" in errs and "ui.loadDicomButton" not in errs
    assert "self.ui.computeAdcButton" in errs  # a Maps widget named in the Study section's file
    assert "widget.maps.ui.computeAdcButtonn" in errs
    assert not {"widget.study.ui.generatePhantomButton", "widget.maps.ui.computeAdcButton"} & errs
    assert "slicer.modules.livermetsreview.widgetRepresentationn" in errs
    assert "slicer.modules.livermetsreview.widgetRepresentation" not in errs
    assert "UI/NoSuchSection.ui" in errs and "UI/StudySection.ui" not in errs
    assert ss.ui_files_named_in(src) == ["UI/StudySection.ui", "UI/NoSuchSection.ui"]


# ------------------------------------------------------------------------------------------------------------
# CMake lists


def _module_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the repository's module layout (CMake files, tool, a few module files) to break safely."""
    repo = tmp_path / "repo"
    module = repo / "LiverMetsReview"
    (repo / "tools").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "tools" / "update_cmake_lists.py", repo / "tools")
    shutil.copy(REPO_ROOT / "CMakeLists.txt", repo)
    for rel in ("CMakeLists.txt", "LiverMetsReview.py", "LiverMetsReviewSlicer/__init__.py",
                "LiverMetsReviewLib/__init__.py", "LiverMetsReviewLib/resources/roles.json",
                "Resources/UI/StudySection.ui", "Resources/UI/MapsSection.ui",
                "Resources/Icons/LiverMetsReview.png"):
        (module / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(MODULE_DIR / rel, module / rel)
    (module / "LiverMetsReviewLib" / "__pycache__").mkdir()
    (module / "LiverMetsReviewLib" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"")
    return repo, module


def test_cmake_lists_are_complete_for_the_real_module():
    report = ss.check_cmake(MODULE_DIR, REPO_ROOT)
    assert not report.errors, report.text()
    tool = ss._load_update_tool()
    listed = ss.cmake_set_entries((MODULE_DIR / "CMakeLists.txt").read_text(), "MODULE_PYTHON_SCRIPTS")
    assert "LiverMetsReview.py" in listed and "LiverMetsReviewLib/series.py" in listed
    assert listed == sorted(listed) == tool.expected_scripts(MODULE_DIR)


def test_cmake_check_catches_missing_and_stale_entries(tmp_path):
    repo, module = _module_copy(tmp_path)
    tool = ss._load_update_tool()
    assert tool.main(["--module-dir", str(module)]) == 0
    assert not ss.check_cmake(module, repo).errors
    assert tool.main(["--module-dir", str(module), "--check"]) == 0

    (module / "LiverMetsReviewSlicer" / "new_helper.py").write_text("", encoding="utf-8")
    (module / "LiverMetsReviewLib" / "resources" / "roles.json").unlink()
    report = ss.check_cmake(module, repo)
    by_name = {f.name: f.message for f in report.errors}
    assert "not listed" in by_name["LiverMetsReviewSlicer/new_helper.py"]
    assert "does not exist" in by_name["LiverMetsReviewLib/resources/roles.json"]
    assert not any("__pycache__" in name for name in by_name)
    assert tool.main(["--module-dir", str(module), "--check"]) == 1

    assert tool.main(["--module-dir", str(module)]) == 0  # regenerating repairs both
    assert not ss.check_cmake(module, repo).errors


def test_cmake_check_requires_template_calls(tmp_path):
    repo, module = _module_copy(tmp_path)
    ss._load_update_tool().main(["--module-dir", str(module)])
    text = (module / "CMakeLists.txt").read_text()
    (module / "CMakeLists.txt").write_text(text.replace("WITH_GENERIC_TESTS", ""))
    top = (repo / "CMakeLists.txt").read_text()
    (repo / "CMakeLists.txt").write_text(top.replace("include(${Slicer_EXTENSION_CPACK})", ""))
    names = ss.check_cmake(module, repo).error_names()
    assert {"WITH_GENERIC_TESTS", "include(${Slicer_EXTENSION_CPACK})"} <= names


def test_self_test_is_where_slicer_looks_for_it(tmp_path):
    """The real module passes; a module file that neither defines nor imports LiverMetsReviewTest, one importing it
    from a file that does not define it, and one defining it without the ScriptedLoadableModuleTest base all fail
    (Slicer would report "Test case class not found" or run no test)."""
    assert not ss.check_self_test(MODULE_DIR).errors
    assert "class LiverMetsReviewTest" not in (MODULE_DIR / "LiverMetsReview.py").read_text()  # the house rule

    module = tmp_path / "LiverMetsReview"
    (module / "LiverMetsReviewSlicer").mkdir(parents=True)
    test_file = module / "LiverMetsReviewSlicer" / "self_test.py"
    head = "from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest\n"
    test_file.write_text(head + "class LiverMetsReviewTest(ScriptedLoadableModuleTest):\n    pass\n")
    module_file = module / "LiverMetsReview.py"
    imported = head + "from LiverMetsReviewSlicer.self_test import LiverMetsReviewTest  # noqa: F401\n"
    cases = {
        imported: set(),
        head + "class LiverMetsReviewTest(ScriptedLoadableModuleTest):\n    pass\n": set(),
        head: {"LiverMetsReviewTest"},
        head + "def f():\n    from LiverMetsReviewSlicer.self_test import LiverMetsReviewTest\n":
            {"LiverMetsReviewTest"},
        head + "from LiverMetsReviewSlicer.self_test import LiverMetsReviewTest as Other\n": {"LiverMetsReviewTest"},
        head + "from LiverMetsReviewSlicer.missing import LiverMetsReviewTest\n": {"LiverMetsReviewSlicer.missing"},
        head + "class LiverMetsReviewTest:\n    pass\n": {"LiverMetsReviewTest"},
    }
    for source, expected in cases.items():
        module_file.write_text(source)
        assert ss.check_self_test(module).error_names() == expected, source
    module_file.write_text(imported)
    test_file.write_text(head + "class SomethingElse(ScriptedLoadableModuleTest):\n    pass\n")
    assert ss.check_self_test(module).error_names() == {"LiverMetsReviewTest"}


# ------------------------------------------------------------------------------------------------------------
# Architecture rule and the Slicer side's pure parts (run headless with stand-ins for Slicer's modules)


def test_core_never_imports_slicer():
    forbidden = {"slicer", "qt", "ctk", "vtk", "sitkUtils", "slicerqt", "SampleData"}
    offenders = []
    for path in sorted((MODULE_DIR / "LiverMetsReviewLib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            offenders += [f"{path.relative_to(REPO_ROOT)}:{node.lineno} {n}" for n in names if n in forbidden]
    assert not offenders, offenders


def test_runtime_import_check(tmp_path):
    assert not ss.check_runtime_imports(MODULE_DIR, REPO_ROOT).errors
    module = tmp_path / "LiverMetsReview"
    (module / "LiverMetsReviewLib").mkdir(parents=True)
    (module / "LiverMetsReviewLib" / "plots.py").write_text(
        "import json\nimport matplotlib.pyplot as plt\n\n\ndef f():\n    import pandas\n\n\n"
        "def g():\n    try:\n        import matplotlib\n    except ImportError:\n        raise\n",
        encoding="utf-8")
    report = ss.check_runtime_imports(module, tmp_path)
    where = "LiverMetsReview/LiverMetsReviewLib/plots.py"
    assert [(f.name, f.where) for f in report.errors] == [("matplotlib", f"{where}:2")]
    assert [(f.name, f.where) for f in report.notes] == [("pandas", f"{where}:6")]


@pytest.fixture()
def slicer_side(monkeypatch):
    """Import LiverMetsReviewSlicer with empty stand-ins for the modules only Slicer provides."""
    for name in ("slicer", "sitkUtils", "vtk", "slicer.i18n"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["slicer.i18n"].tr = lambda text: text
    sys.modules["vtk"].vtkMatrix4x4 = _FakeMatrix4x4
    sys.modules["slicer"].i18n = sys.modules["slicer.i18n"]
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        monkeypatch.delitem(sys.modules, name)
    yield importlib.import_module("LiverMetsReviewSlicer.phantom")
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        del sys.modules[name]


class _FakeMatrix4x4:
    """The two vtkMatrix4x4 calls the Slicer side uses."""

    def __init__(self) -> None:
        self.m = np.eye(4)

    def MultiplyPoint(self, point):  # noqa: N802 - VTK's spelling
        return tuple(self.m @ np.asarray(point, dtype=float))

    def GetElement(self, row, col):  # noqa: N802
        return float(self.m[row, col])


class _FakeVolumeNode:
    """A volume node's geometry as sitkUtils.PushVolumeToSlicer sets it (Slicer's Base/Python/sitkUtils.py):
    IJKToRAS = diag(-1, -1, 1, 1) @ IJKToLPS, with IJKToLPS[r, c] = direction[r, c] * spacing[c] and the
    origin in the last column."""

    def __init__(self, image: sitk.Image) -> None:
        ijk_to_lps = np.eye(4)
        ijk_to_lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
        ijk_to_lps[:3, 3] = image.GetOrigin()
        self.ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps

    def GetRASToIJKMatrix(self, matrix: _FakeMatrix4x4) -> None:  # noqa: N802
        matrix.m = np.linalg.inv(self.ijk_to_ras)

    def GetParentTransformNode(self):  # noqa: N802 - not moved by a transform
        return None


class _FakeScalarVolumeNode(_FakeVolumeNode):
    """What sitkUtils.PushVolumeToSlicer returns, reduced to the calls the Slicer side makes."""

    def __init__(self, image: sitk.Image, name: str) -> None:
        super().__init__(image)
        self.image, self.name, self.attributes = image, name, {}
        self.auto_window_level = False

    def SetAttribute(self, key: str, value: str) -> None:  # noqa: N802
        assert isinstance(value, str), "MRML attributes are strings"
        self.attributes[key] = value

    def GetAttribute(self, key: str) -> str | None:  # noqa: N802
        return self.attributes.get(key)

    def GetName(self) -> str:  # noqa: N802
        return self.name

    def IsA(self, class_name: str) -> bool:  # noqa: N802
        return class_name in ("vtkMRMLScalarVolumeNode", "vtkMRMLVolumeNode")

    def CreateDefaultDisplayNodes(self) -> None:  # noqa: N802
        pass

    def GetScalarVolumeDisplayNode(self):  # noqa: N802
        return self

    def AutoWindowLevelOn(self) -> None:  # noqa: N802
        self.auto_window_level = True

    def SetAutoWindowLevel(self, on) -> None:  # noqa: N802
        self.auto_window_level = bool(on)

    def SetAndObserveColorNodeID(self, node_id) -> None:  # noqa: N802
        self.color_node_id = node_id

    def SetWindowLevelMinMax(self, low, high) -> None:  # noqa: N802
        assert not self.auto_window_level, "Slicer's auto window/level would overwrite a fixed window"
        self.window_min_max = (float(low), float(high))


class _FakeNode:
    def __init__(self) -> None:
        self.attributes: dict[str, str] = {}

    def SetAttribute(self, key: str, value: str) -> None:  # noqa: N802 - VTK's spelling
        assert isinstance(value, str), "MRML attributes are strings"
        self.attributes[key] = value

    def GetAttribute(self, key: str) -> str | None:  # noqa: N802
        return self.attributes.get(key)


def test_node_names_match_the_study_folder_file_names(slicer_side):
    """Scene names and study-folder file names follow one convention (t2, dwi_b800, multi_echo_gre_e3)."""
    from LiverMetsReviewLib.io.study_folder import _stack_name
    from LiverMetsReviewLib.series import Series

    img = sitk.Image(4, 4, 2, sitk.sitkFloat32)
    cases = [
        Series("t2", [img]),
        Series("dwi", [img, img, img], [{"b_value": 50}, {"b_value": 400.0}, {"b_value": 800}]),
        Series("multi_echo_gre", [img] * 6, [{"echo_time_ms": 1.2 * (k + 1)} for k in range(6)]),
    ]
    for series in cases:
        for k in range(len(series.stacks)):
            assert slicer_side.stackNodeName(series, k) + ".nrrd" == _stack_name(series, k)
    assert slicer_side.stackNodeName(cases[1], 2) == "dwi_b800"


def test_series_attributes(slicer_side):
    attributes = importlib.import_module("LiverMetsReviewSlicer.attributes")
    node = _FakeNode()
    assert attributes.nodeRole(node) == "unassigned"
    attributes.setSeriesAttributes(node, "dwi", {"b_value": 800.0}, {"units": "a.u.", "field_strength_t": 3.0,
                                                                      "echo_time_ms": 62.5}, "phantom")
    assert node.attributes == {
        "LiverMetsReview.Role": "dwi", "LiverMetsReview.Source": "phantom", "LiverMetsReview.BValue": "800",
        "LiverMetsReview.EchoTimeMs": "62.5", "LiverMetsReview.Units": "a.u.",
        "LiverMetsReview.FieldStrengthT": "3",
    }
    assert attributes.nodeRole(node) == "dwi"


def test_phantom_call_matches_the_core_signature(slicer_side):
    """The Slicer side calls the core's generate_phantom with keywords the core really accepts."""
    phantom = pytest.importorskip("LiverMetsReviewLib.phantom")
    if not hasattr(phantom, "generate_phantom"):
        pytest.skip("LiverMetsReviewLib.phantom.generate_phantom has not landed yet")
    signature = inspect.signature(phantom.generate_phantom)
    signature.bind(seed=0, scenario="normal", field_strength_t=1.5, size="small")
    scenarios = slicer_side.phantomScenarioNames()
    assert sorted(scenarios) == sorted(phantom.scenario_names()) and scenarios[0] == slicer_side.defaultScenario()
    # the GUI's size choices are sizes the core knows
    from LiverMetsReviewLib.phantom.generate import SIZES

    study_section = MODULE_DIR / "LiverMetsReviewSlicer" / "study_section.py"
    packs = ss.parameter_packs([study_section.read_text(encoding="utf-8")])
    size_annotation = packs["StudyParameters"]["phantomSize"]
    choices = [c.value for c in ast.walk(size_annotation) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    assert choices and set(choices) <= set(SIZES)


@pytest.fixture(scope="module")
def small_phantom():
    phantom = pytest.importorskip("LiverMetsReviewLib.phantom")
    if not hasattr(phantom, "generate_phantom"):
        pytest.skip("LiverMetsReviewLib.phantom.generate_phantom has not landed yet")
    return phantom.generate_phantom(seed=7, size="small")


def test_lps_to_ijk_on_an_oblique_grid(slicer_side):
    """worldLpsToIjk agrees with ITK's own index for a rotated, anisotropic grid (catches sign/axis errors)."""
    volumes = importlib.import_module("LiverMetsReviewSlicer.volumes")
    image = sitk.Image(40, 30, 12, sitk.sitkFloat32)
    image.SetSpacing((0.8, 1.3, 4.0))
    image.SetOrigin((-120.0, 35.5, -60.0))
    angle = np.deg2rad(20.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(0.3), -np.sin(0.3)], [0.0, np.sin(0.3), np.cos(0.3)]])
    image.SetDirection(tuple((rot @ tilt).ravel()))
    node = _FakeVolumeNode(image)
    rng = np.random.default_rng(3)
    for ijk in rng.integers((0, 0, 0), (40, 30, 12), size=(25, 3)):
        point = image.TransformIndexToPhysicalPoint([int(v) for v in ijk])
        assert volumes.worldLpsToIjk(node, point) == tuple(int(v) for v in ijk)
    assert volumes.rasToLps(volumes.lpsToRas((1.0, -2.0, 3.0))) == (1.0, -2.0, 3.0)


def test_self_test_expectations_hold_on_the_small_phantom(slicer_side, small_phantom):
    """What the Slicer self-test asserts, computed headless: each lesion centre maps (LPS -> RAS -> IJK) to the
    voxel ITK names, inside every stack, and the truth labelmap on that series' grid carries the lesion's label
    there; the segment list has one entry per truth lesion with the truth's names."""
    volumes = importlib.import_module("LiverMetsReviewSlicer.volumes")
    lesions = small_phantom.truth["lesions"]
    assert lesions
    for series in small_phantom.series:
        image = series.stacks[0]
        node = _FakeVolumeNode(image)
        labels = sitk.GetArrayFromImage(small_phantom.labelmap_on(series.role))
        hits = checked = 0
        for lesion in lesions:
            ijk = volumes.worldLpsToIjk(node, lesion["centre_mm"])
            continuous = image.TransformPhysicalPointToContinuousIndex([float(c) for c in lesion["centre_mm"]])
            assert ijk == tuple(int(np.floor(c + 0.5)) for c in continuous)
            assert all(0 <= ijk[a] < image.GetSize()[a] for a in range(3)), (series.role, lesion["id"])
            # thick slices: the nearest voxel centre lies inside the lesion only when it is close enough
            centre_of_voxel = np.array(image.TransformIndexToPhysicalPoint(ijk))
            distance = np.linalg.norm(centre_of_voxel - np.array(lesion["centre_mm"], dtype=float))
            if distance < 0.8 * min(lesion["semi_axes_mm"]):
                checked += 1
                hits += int(labels[ijk[2], ijk[1], ijk[0]] == int(lesion["label"]))
        assert checked >= len(lesions) // 2, f"{series.role}: only {checked} lesion centres near a voxel centre"
        assert hits == checked, f"{series.role}: {hits}/{checked} lesion centres on their label"
    lesion_segments = {s["name"] for s in small_phantom.segments if s["kind"] == "lesion"}
    assert lesion_segments == {lesion["name"] for lesion in lesions}
    names = [stack for s in small_phantom.series for stack in
             (slicer_side.stackNodeName(s, k) for k in range(len(s.stacks)))]
    assert len(names) == len(set(names)), "node names must be unique within one phantom"


def test_dicom_study_reaches_the_scene_with_roles(slicer_side, small_phantom, tmp_path):
    """The Slicer side's DICOM path, headless: the phantom written as DICOM is classified by the core and every
    stack is pushed once, named and attributed by role, pixels untouched (a stand-in records the pushes)."""
    from LiverMetsReviewLib.phantom import write_phantom

    pushed: list[_FakeScalarVolumeNode] = []

    def push(image, targetNode=None, name=None, className="vtkMRMLScalarVolumeNode"):  # noqa: N803 - Slicer's API
        assert className == "vtkMRMLScalarVolumeNode" and targetNode is None
        pushed.append(_FakeScalarVolumeNode(image, name))
        return pushed[-1]

    sys.modules["sitkUtils"].PushVolumeToSlicer = push
    dicom_study = importlib.import_module("LiverMetsReviewSlicer.dicom_study")
    write_phantom(small_phantom, tmp_path, fmt="dicom")
    nodes = dicom_study.loadDicomStudy(tmp_path / "dicom", show=False)

    expected = {slicer_side.stackNodeName(s, k): (s, k) for s in small_phantom.series for k in range(len(s.stacks))}
    assert sorted(nodes) == sorted(expected) and len(pushed) == len(expected)
    for name, (series, k) in expected.items():
        node = nodes[name]
        assert node.name == name and node.auto_window_level
        assert node.attributes["LiverMetsReview.Role"] == series.role
        assert node.attributes["LiverMetsReview.Source"] == "dicom"
        assert node.attributes["LiverMetsReview.RoleReason"]
        if "b_value" in series.stack_meta[k]:
            assert float(node.attributes["LiverMetsReview.BValue"]) == float(series.stack_meta[k]["b_value"])
        reference = series.stacks[k]
        assert node.image.GetSize() == reference.GetSize()
        np.testing.assert_allclose(node.image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
        np.testing.assert_allclose(node.image.GetSpacing(), reference.GetSpacing(), atol=1e-4)

    with pytest.raises(LiverMetsError, match="not a folder"):
        dicom_study.loadDicomStudy(tmp_path / "absent", show=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LiverMetsError):
        dicom_study.loadDicomStudy(tmp_path / "empty", show=False)


@pytest.fixture()
def fake_scene(slicer_side):
    """A stand-in scene: sitkUtils push/pull record into and read from a list of fake volume nodes."""
    scene: list[_FakeScalarVolumeNode] = []

    def push(image, targetNode=None, name=None, className="vtkMRMLScalarVolumeNode"):  # noqa: N803
        scene.append(_FakeScalarVolumeNode(sitk.Image(image), name))
        return scene[-1]

    sys.modules["sitkUtils"].PushVolumeToSlicer = push
    sys.modules["sitkUtils"].PullVolumeFromSlicer = lambda node: sitk.Image(node.image)
    util = types.ModuleType("slicer.util")
    util.getNodesByClass = lambda class_name: [n for n in scene if n.IsA(class_name)]
    sys.modules["slicer"].util = util
    return scene


def test_maps_from_the_scene_equal_the_core_maps(fake_scene, slicer_side, small_phantom):
    """Inputs are found by role (DWI ordered by the b-value attribute, echo times and field strength from the
    attributes) and the pushed maps equal the core's maps of the core's images, with units attached."""
    from LiverMetsReviewLib.errors import MissingDataError
    from LiverMetsReviewLib.maps import ADC_UNITS, chemical_shift_fat, dixon_fat, fit_adc, relative_enhancement

    maps = importlib.import_module("LiverMetsReviewSlicer.maps")
    with pytest.raises(MissingDataError, match="two or more b-values"):
        maps.computeAdc()
    # load the series in a shuffled order: the b-value ordering must come from the attributes
    series = list(reversed(small_phantom.series))
    slicer_side.loadSeries(series, source="phantom")
    study = small_phantom

    nodes, summary = maps.computeAdc("lls")
    dwi = study.series_by_role("dwi")
    core = fit_adc(dwi.stacks, dwi.b_values, method="lls")
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(nodes["adc"].image), sitk.GetArrayViewFromImage(core.adc))
    assert nodes["adc"].attributes["LiverMetsReview.Units"] == ADC_UNITS
    assert json.loads(nodes["adc"].attributes["LiverMetsReview.b_values_used"]) == dwi.b_values
    assert summary["masked_voxels"] == core.summary["masked_voxels"]

    ip, op = study.series_by_role("t1_in_phase"), study.series_by_role("t1_opposed_phase")
    nodes, _ = maps.computeChemicalShiftFat()
    core = chemical_shift_fat(ip.image, op.image, field_strength_t=ip.meta["field_strength_t"],
                              echo_times_ms=(ip.meta["echo_time_ms"], op.meta["echo_time_ms"]))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(nodes["ff_chemical_shift"].image),
                                  sitk.GetArrayViewFromImage(core.ff))
    assert json.loads(nodes["ff_chemical_shift"].attributes["LiverMetsReview.echo_times_ms"]) == [
        ip.meta["echo_time_ms"], op.meta["echo_time_ms"]]

    nodes, _ = maps.computeDixonFat()
    core = dixon_fat(study.series_by_role("dixon_water").image, study.series_by_role("dixon_fat").image)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(nodes["ff_dixon"].image),
                                  sitk.GetArrayViewFromImage(core.ff))

    nodes, _ = maps.computeEnhancement("t1_arterial")
    core = relative_enhancement(study.series_by_role("t1_pre").image, study.series_by_role("t1_arterial").image)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(nodes["re_arterial"].image),
                                  sitk.GetArrayViewFromImage(core.re))
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(nodes["sub_arterial"].image),
                                  sitk.GetArrayViewFromImage(core.subtraction))
    assert nodes["re_arterial"].attributes["LiverMetsReview.Units"] == "percent"
    with pytest.raises(MissingDataError, match="not a contrast phase"):
        maps.computeEnhancement("t2")
    assert "Masked voxels" in maps.summaryText(summary)


# ------------------------------------------------------------------------------------------------------------
# The module's own self-test, run headless against a small fake of the Slicer API it uses.
#
# The fake follows Slicer's documented behaviour for the calls LiverMetsReview makes (sitkUtils' LPS -> RAS
# geometry, labelmap import naming segments from the colour table, unique node names). It cannot prove the
# module works in Slicer (the static checks cover the names); it runs every line of the logic and of the
# self-test, so Python mistakes (a wrong key, a wrong variable, a wrong comparison) surface here.

_ANCESTORS = {
    "vtkMRMLScalarVolumeNode": ("vtkMRMLScalarVolumeNode", "vtkMRMLVolumeNode", "vtkMRMLNode"),
    "vtkMRMLLabelMapVolumeNode": ("vtkMRMLLabelMapVolumeNode", "vtkMRMLScalarVolumeNode", "vtkMRMLVolumeNode",
                                  "vtkMRMLNode"),
    "vtkMRMLColorTableNode": ("vtkMRMLColorTableNode", "vtkMRMLColorNode", "vtkMRMLNode"),
    "vtkMRMLSegmentationNode": ("vtkMRMLSegmentationNode", "vtkMRMLNode"),
}


class _FakeDisplayNode:
    def __init__(self) -> None:
        self.color_node_id, self.visible, self.auto_wl = None, True, False

    def SetAndObserveColorNodeID(self, node_id):  # noqa: N802
        self.color_node_id = node_id

    def SetVisibility(self, visible):  # noqa: N802
        self.visible = bool(visible)

    def AutoWindowLevelOn(self):  # noqa: N802
        self.auto_wl = True

    def SetAutoWindowLevel(self, on):  # noqa: N802
        self.auto_wl = bool(on)

    def SetWindowLevelMinMax(self, low, high):  # noqa: N802
        self.window_min_max = (float(low), float(high))


class _FakeMrmlNode:
    def __init__(self, scene, class_name: str, name: str, node_id: str) -> None:
        self.scene, self.class_name, self.name, self.id = scene, class_name, name, node_id
        self.attributes: dict[str, str] = {}
        self.display = None

    def GetID(self):  # noqa: N802
        return self.id

    def GetName(self):  # noqa: N802
        return self.name

    def SetName(self, name):  # noqa: N802
        self.name = name

    def IsA(self, class_name):  # noqa: N802
        return class_name in _ANCESTORS[self.class_name]

    def SetAttribute(self, key, value):  # noqa: N802
        assert isinstance(value, str), f"MRML attributes are strings, got {type(value).__name__} for {key}"
        self.attributes[key] = value

    def GetAttribute(self, key):  # noqa: N802
        return self.attributes.get(key)

    def CreateDefaultDisplayNodes(self):  # noqa: N802
        self.display = self.display or _FakeDisplayNode()

    def GetDisplayNode(self):  # noqa: N802
        return self.display

    def GetParentTransformNode(self):  # noqa: N802 - not moved by a transform
        return None


class _FakeVolume(_FakeMrmlNode):
    image: sitk.Image | None = None

    def set_image(self, image: sitk.Image) -> None:
        self.image = sitk.Image(image)
        d = np.array(image.GetDirection()).reshape(3, 3)
        ijk_to_lps = np.eye(4)
        ijk_to_lps[:3, :3] = d * np.array(image.GetSpacing())
        ijk_to_lps[:3, 3] = image.GetOrigin()
        self.ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps

    def GetSpacing(self):  # noqa: N802
        return self.image.GetSpacing()

    def GetOrigin(self):  # noqa: N802
        return tuple(self.ijk_to_ras[:3, 3])

    def GetIJKToRASDirectionMatrix(self, matrix):  # noqa: N802
        matrix.m[:3, :3] = self.ijk_to_ras[:3, :3] / np.array(self.image.GetSpacing())

    def GetRASToIJKMatrix(self, matrix):  # noqa: N802
        matrix.m = np.linalg.inv(self.ijk_to_ras)

    def GetScalarVolumeDisplayNode(self):  # noqa: N802
        return self.display

    def GetImageData(self):  # noqa: N802
        return types.SimpleNamespace(GetDimensions=lambda: self.image.GetSize())


class _FakeColorTable(_FakeMrmlNode):
    def SetTypeToUser(self):  # noqa: N802
        self.names: dict[int, str] = {}

    def SetNumberOfColors(self, n):  # noqa: N802
        self.n = n

    def SetColor(self, index, name, r, g, b, a=1.0):  # noqa: N802
        assert 0 <= index < self.n, "colour index outside the table"
        self.names[index] = name


class _FakeSegment:
    def __init__(self, name: str, label: int) -> None:
        self.name, self.label, self.color, self.tags = name, label, None, {}

    def GetName(self):  # noqa: N802
        return self.name

    def SetName(self, name):  # noqa: N802
        self.name = name

    def GetLabelValue(self):  # noqa: N802
        return self.label

    def SetColor(self, r, g, b):  # noqa: N802
        self.color = (r, g, b)

    def SetTag(self, key, value):  # noqa: N802
        assert isinstance(value, str)
        self.tags[key] = value


class _FakeSegmentation(_FakeMrmlNode):
    def SetReferenceImageGeometryParameterFromVolumeNode(self, node):  # noqa: N802
        self.reference = node.id

    def GetSegmentation(self):  # noqa: N802
        segments = self.segments
        return types.SimpleNamespace(GetNumberOfSegments=lambda: len(segments),
                                     GetNthSegment=lambda i: segments[i])


class _FakeScene:
    CLASSES = {"vtkMRMLScalarVolumeNode": _FakeVolume, "vtkMRMLLabelMapVolumeNode": _FakeVolume,
               "vtkMRMLColorTableNode": _FakeColorTable, "vtkMRMLSegmentationNode": _FakeSegmentation}

    def __init__(self) -> None:
        self.nodes: list[_FakeMrmlNode] = []
        self.counter = 0

    def Clear(self, *args):  # noqa: N802
        self.nodes.clear()

    def unique_name(self, name: str) -> str:
        names = {n.name for n in self.nodes}
        if name not in names:
            return name
        k = 1
        while f"{name}_{k}" in names:
            k += 1
        return f"{name}_{k}"

    def AddNewNodeByClass(self, class_name, name=""):  # noqa: N802
        self.counter += 1
        node = self.CLASSES[class_name](self, class_name, name or class_name, f"{class_name}{self.counter}")
        if class_name == "vtkMRMLSegmentationNode":
            node.segments = []
        self.nodes.append(node)
        return node

    def RemoveNode(self, node):  # noqa: N802
        self.nodes.remove(node)

    def GetNodeByID(self, node_id):  # noqa: N802
        return next((n for n in self.nodes if n.id == node_id), None)


def _import_labelmap(label_node, segmentation_node) -> bool:
    """Slicer's importer: one segment per label present, named from the labelmap's colour table."""
    colors = label_node.scene.GetNodeByID(label_node.display.color_node_id) if label_node.display else None
    present = [int(v) for v in np.unique(sitk.GetArrayViewFromImage(label_node.image)) if v > 0]
    names = getattr(colors, "names", {})
    segmentation_node.segments = [_FakeSegment(names.get(v, f"Label_{v}"), v) for v in present]
    return True


def _stand_in_dicom_utils(push) -> types.SimpleNamespace:
    """DICOMUtils reduced to the self-test's calls. It loads through the core (one node per stack, which is what
    Slicer's scalar volume plugin gives for the phantom according to test_dicom_slicer_import's emulation), so it
    runs the self-test's bookkeeping and comparisons, not Slicer's DICOM reader."""
    from LiverMetsReviewLib.study.classify import classify_folder
    from LiverMetsReviewLib.study.load import load_study

    series_by_uid: dict[str, object] = {}

    class Database:
        def patients(self):
            return ["patient"] if series_by_uid else []

        def studiesForPatient(self, patient):  # noqa: N802 - ctkDICOMDatabase's spelling
            return ["study"]

        def seriesForStudy(self, study):  # noqa: N802
            return list(series_by_uid)

    @contextlib.contextmanager
    def temporary_database(directory=None):
        series_by_uid.clear()
        yield Database()
        series_by_uid.clear()

    def import_dicom(folder, database=None, copyFiles=False):  # noqa: N803
        series_by_uid.update({s.meta["series_uid"]: s for s in load_study(classify_folder(folder))})

    def load_series_by_uid(uids, messages=None, progressCallback=None, enabledPluginClassNames=None):  # noqa: N803
        assert enabledPluginClassNames == ["DICOMScalarVolumePlugin"]
        return [push(stack, name=f"{series_by_uid[uid].role}_{k}").GetID()
                for uid in uids for k, stack in enumerate(series_by_uid[uid].stacks)]

    return types.SimpleNamespace(TemporaryDICOMDatabase=temporary_database, importDicom=import_dicom,
                                 loadSeriesByUID=load_series_by_uid)


@pytest.fixture()
def fake_slicer(monkeypatch, tmp_path):
    scene = _FakeScene()

    def push(image, targetNode=None, name=None, className="vtkMRMLScalarVolumeNode"):  # noqa: N803
        node = scene.AddNewNodeByClass(className, scene.unique_name(name))
        node.set_image(image)
        node.CreateDefaultDisplayNodes()
        return node

    @contextlib.contextmanager
    def try_with_error_display(message=None, show=True, waitCursor=False):  # noqa: N803
        yield  # errors propagate, as in Slicer's testing mode they are not shown in a dialog

    modules = {name: types.ModuleType(name) for name in (
        "slicer", "slicer.util", "slicer.i18n", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper",
        "sitkUtils", "vtk", "qt", "DICOMLib")}
    modules["DICOMLib"].DICOMUtils = _stand_in_dicom_utils(push)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    slicer = modules["slicer"]
    slicer.mrmlScene = scene
    slicer.app = types.SimpleNamespace(connect=lambda *a: None, temporaryPath=str(tmp_path),
                                       layoutManager=lambda: None)
    slicer.modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: types.SimpleNamespace(
            ImportLabelmapToSegmentationNode=_import_labelmap)))
    slicer.vtkMRMLScalarVolumeNode = type("vtkMRMLScalarVolumeNode", (), {})
    slicer.vtkMRMLSegmentationNode = type("vtkMRMLSegmentationNode", (), {})
    slicer.vtkMRMLMarkupsFiducialNode = type("vtkMRMLMarkupsFiducialNode", (), {})
    slicer.vtkMRMLLabelMapVolumeNode = type("vtkMRMLLabelMapVolumeNode", (), {})
    slicer.vtkMRMLColorTableNode = type("vtkMRMLColorTableNode", (), {})
    slicer.vtkSegment = types.SimpleNamespace(GetTerminologyEntryTagName=lambda: "TerminologyEntry")
    slicer.vtkMRMLLayoutNode = types.SimpleNamespace(SlicerLayoutFourUpView=3)
    for sub in ("util", "i18n", "ScriptedLoadableModule", "parameterNodeWrapper"):
        setattr(slicer, sub, modules[f"slicer.{sub}"])

    util = modules["slicer.util"]
    util.getNodesByClass = lambda class_name: [n for n in scene.nodes if n.IsA(class_name)]
    util.arrayFromVolume = lambda node: sitk.GetArrayFromImage(node.image)
    util.tryWithErrorDisplay = try_with_error_display
    util.setSliceViewerLayers = lambda **kwargs: None
    util.showStatusMessage = lambda *args: None
    util.VTKObservationMixin = type("VTKObservationMixin", (), {"__init__": lambda self: None})

    modules["slicer.i18n"].tr = lambda text: text
    modules["slicer.i18n"].translate = lambda context, text: text
    slm = modules["slicer.ScriptedLoadableModule"]
    slm.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {"__init__": lambda self, parent: None})
    slm.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    slm.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (), {"__init__": lambda self: None})
    slm.ScriptedLoadableModuleTest = type("ScriptedLoadableModuleTest", (unittest.TestCase,),
                                          {"delayDisplay": lambda self, message, *a, **k: None})
    pnw = modules["slicer.parameterNodeWrapper"]
    pnw.parameterNodeWrapper = lambda cls: cls
    pnw.parameterPack = lambda cls: cls
    pnw.Choice = lambda choices: ("Choice", list(choices))
    pnw.WithinRange = lambda lo, hi: ("WithinRange", lo, hi)

    modules["sitkUtils"].PushVolumeToSlicer = push
    modules["sitkUtils"].PullVolumeFromSlicer = lambda node: sitk.Image(node.image)
    modules["vtk"].vtkMatrix4x4 = _FakeMatrix4x4
    modules["vtk"].vtkCommand = types.SimpleNamespace(ModifiedEvent=33)

    monkeypatch.syspath_prepend(str(MODULE_DIR))
    stale = [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer") or m == "LiverMetsReview"]
    for name in stale:
        monkeypatch.delitem(sys.modules, name)
    module = importlib.import_module("LiverMetsReview")
    assert Path(module.__file__) == MODULE_DIR / "LiverMetsReview.py"
    yield module, scene
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer") or m == "LiverMetsReview"]:
        del sys.modules[name]


def test_module_self_test_runs_on_a_fake_slicer(fake_slicer):
    """LiverMetsReviewTest's logic-level sub-tests (phantom, DICOM study, maps, role edit) pass end to end on the
    fake. The widget-driving sub-tests (``*_through_the_widget``) need Qt and Slicer's views: their steps are
    covered by the section tests (test_slicer_sections.py, test_slicer_lesions.py, test_slicer_checklist.py), their
    names by the static checks."""
    module, scene = fake_slicer
    test = module.LiverMetsReviewTest("runTest")
    names = [n for n in vars(module.LiverMetsReviewTest) if n.startswith("test_")]
    assert {"test_reader_path_through_the_widget", "test_lesion_by_a_click_through_the_widget",
            "test_checklist_through_the_widget"} <= set(names)
    for name in names:
        if name.endswith("_through_the_widget"):
            continue
        test.setUp()
        getattr(test, name)()
    # the last sub-test leaves its node; the earlier ones were cleared by setUp
    assert [n.name for n in scene.nodes] == ["series"]


def test_logic_loads_the_phantom_with_display_defaults(fake_slicer):
    module, scene = fake_slicer
    logic = module.LiverMetsReviewLogic()
    nodes = logic.generatePhantom(seed=1, size="small")  # show=True: layout and views code runs too
    volumes = [n for n in scene.nodes if n.IsA("vtkMRMLScalarVolumeNode")]
    assert len(volumes) == sum(len(s.stacks) for s in logic.lastPhantomStudy.series)
    assert all(v.display.auto_wl for v in volumes)
    assert not nodes["couinaud"].display.visible and nodes["ground_truth"].display.visible
    # the temporary labelmap and colour table of the import are gone
    assert not [n for n in scene.nodes if n.class_name in ("vtkMRMLLabelMapVolumeNode", "vtkMRMLColorTableNode")]
    segments = nodes["ground_truth"].GetSegmentation()
    liver = next(segments.GetNthSegment(i) for i in range(segments.GetNumberOfSegments())
                 if segments.GetNthSegment(i).GetName() == "Liver")
    assert liver.tags["TerminologyEntry"].count("~") == 6 and "LiverMetsReview.Kind" in liver.tags
    # a second phantom gets unique node names, and the role table's source lists both
    logic.generatePhantom(seed=2, size="small", show=False)
    names = [n.GetName() for n in logic.seriesNodes()]
    assert len(names) == 2 * len(volumes) and len(set(names)) == len(names)


def test_scene_feeds_the_hanging_protocols(fake_slicer):
    """The series and maps this module puts in the scene are what the hanging protocols look for (role attribute,
    pipeline map names): every viewport of every built-in protocol is filled after loading and computing."""
    from LiverMetsReviewLib.study.hanging import choose_layout, protocol_ids

    module, _scene = fake_slicer
    logic = module.LiverMetsReviewLogic()
    logic.generatePhantom(seed=4, size="small", show=False)
    logic.computeAdc()
    logic.computeChemicalShiftFat()
    logic.computeEnhancement("t1_arterial")
    hanging = importlib.import_module("LiverMetsReviewSlicer.hanging")
    available = hanging.availableFromScene()
    for protocol in protocol_ids():
        plan = choose_layout(protocol, available)
        empty = [v.reason for v in plan.viewports if v.node_id is None]
        assert not empty, (protocol, empty)
    with pytest.raises(LiverMetsError, match="application window"):
        logic.showHangingProtocol("overview")  # the fake has no layout manager, as Slicer without its window


def _stand_in_sample_data(with_category: bool) -> types.ModuleType:
    """SampleData as Slicer 5.10 has it (sources only) or as 5.12 has it (sources and category titles)."""
    calls: list[tuple[str, dict]] = []

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):  # noqa: N802 - Slicer's API
            calls.append(("source", kwargs))

    if with_category:
        def register_category(category, title=None):
            calls.append(("category", {"category": category, "title": title}))

        SampleDataLogic.registerCustomSampleDataCategory = staticmethod(register_category)
    module = types.ModuleType("SampleData")
    module.SampleDataLogic = SampleDataLogic
    module.calls = calls
    return module


@pytest.mark.parametrize("with_category", [False, True], ids=["slicer-5.10", "slicer-5.12"])
def test_sample_data_registers_on_slicer_5_10_and_5_12(slicer_side, monkeypatch, with_category):
    """Slicer 5.10's SampleDataLogic has no registerCustomSampleDataCategory (review B H4): the phantom source is
    still registered there, under the category id; on 5.12 the category also gets its title."""
    stand_in = _stand_in_sample_data(with_category)
    monkeypatch.setitem(sys.modules, "SampleData", stand_in)
    sample_data = importlib.import_module("LiverMetsReviewSlicer.sample_data")
    sample_data.registerSampleData("/icons")
    kinds = [kind for kind, _ in stand_in.calls]
    assert kinds == (["category", "source"] if with_category else ["source"])
    source = stand_in.calls[-1][1]
    assert source["category"] == sample_data.CATEGORY and source["sampleName"] == sample_data.SAMPLE_NAME
    assert source["customDownloader"] is sample_data.loadDefaultPhantom
    assert source["thumbnailFileName"] == os.path.join("/icons", "LiverMetsReview.png")
    if with_category:
        assert stand_in.calls[0][1] == {"category": sample_data.CATEGORY, "title": "LiverMetsReview"}


def test_maps_use_the_latest_node_per_b_value_and_echo(fake_scene, slicer_side, small_phantom):
    """Review B M2: a second load and an aligned copy add nodes with the same role and b-value (echo time). The fit
    uses, per b-value (echo), the most recently loaded node, as _one() does for single series, and the summary names
    the nodes used and the older ones left out. The second load's images are altered, so using the wrong set or
    mixing them gives another map."""
    from LiverMetsReviewLib.maps import fit_adc
    from LiverMetsReviewLib.maps.pdff import fit_pdff

    maps = importlib.import_module("LiverMetsReviewSlicer.maps")
    dwi, gre = small_phantom.series_by_role("dwi"), small_phantom.series_by_role("multi_echo_gre")
    first = slicer_side.loadSeries([dwi, gre], source="phantom")
    second = slicer_side.loadSeries([dwi, gre], source="phantom")
    for node in second.values():
        node.name += "_1"  # Slicer makes node names unique; the stand-in push does not
    second_dwi = sorted((n for n in second.values() if n.attributes["LiverMetsReview.Role"] == "dwi"),
                        key=lambda n: float(n.attributes["LiverMetsReview.BValue"]))
    second_dwi[1].image = sitk.Cast(second_dwi[1].image * 0.8, second_dwi[1].image.GetPixelID())
    # an aligned copy of b=800 as alignSeries makes it: same role and b-value, loaded last
    aligned = slicer_side.loadSeries([dwi], source="phantom")
    aligned_b800 = next(n for n in aligned.values() if n.attributes["LiverMetsReview.BValue"] == "800")
    aligned_b800.name = "dwi_b800_aligned"
    aligned_b800.image = sitk.Cast(aligned_b800.image * 0.9, aligned_b800.image.GetPixelID())
    for node in aligned.values():
        if node is not aligned_b800:
            fake_scene.remove(node)

    nodes, summary = maps.computeAdc("lls")
    expected = fit_adc([second_dwi[0].image, second_dwi[1].image, aligned_b800.image], [50.0, 400.0, 800.0],
                       method="lls")
    original = fit_adc(dwi.stacks, dwi.b_values, method="lls")
    got = sitk.GetArrayViewFromImage(nodes["adc"].image)
    np.testing.assert_array_equal(got, sitk.GetArrayViewFromImage(expected.adc))
    assert not np.array_equal(got, sitk.GetArrayViewFromImage(original.adc))
    text = maps.summaryText(summary)
    for node in (second_dwi[0], second_dwi[1], aligned_b800):
        assert f"{node.name} (b " in text
    left_out = summary["inputs"].split("not used")[1]
    assert sorted(left_out.split(": ")[1].split(", ")) == sorted(
        [first[slicer_side.stackNodeName(dwi, k)].name for k in range(3)] + [second_dwi[2].name])

    second_gre = sorted((n for n in second.values() if n.attributes["LiverMetsReview.Role"] == "multi_echo_gre"),
                        key=lambda n: float(n.attributes["LiverMetsReview.EchoTimeMs"]))
    assert len(second_gre) == len(gre.stacks) == 6
    second_gre[1].image = sitk.Cast(second_gre[1].image * 0.9, second_gre[1].image.GetPixelID())
    nodes, summary = maps.computePdff()
    times = [float(m["echo_time_ms"]) for m in gre.stack_meta]
    expected = fit_pdff([n.image for n in second_gre], times, field_strength_t=gre.meta["field_strength_t"])
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(nodes["pdff"].image),
                                  sitk.GetArrayViewFromImage(expected.pdff))
    used, ignored = summary["inputs"].split("not used")
    assert all(n.name in used for n in second_gre) and len(ignored.split(",")) == 6


# Colour files shipped in Slicer's Base/Logic/Resources/ColorFiles in v5.10.0, v5.12.3 and main (checked in the
# Slicer source); a file colour node's ID is "vtkMRMLColorTableNodeFile" + the file name (vtkMRMLColorLogic).
_SLICER_COLOUR_FILES = {"Viridis.txt", "Magma.txt", "Inferno.txt", "Plasma.txt", "Cividis.txt"}


def test_map_display_colour_nodes_exist_in_slicer():
    """Every colour of map_display.json names a Slicer default colour node (a vtkMRMLColorTableNode type of both
    inventories, or a shipped colour file) and a matplotlib colour map; ranges are ordered."""
    import matplotlib

    from LiverMetsReviewLib.resources import load_json

    data = load_json("map_display.json")
    assert data["sources"]
    inventories = [json.loads(shared_path("slicer-api", f"slicer-api-{v}.json").read_text(encoding="utf-8"))
                   for v in ("5.12", "main")]
    types_ = [set(inv["mrml_classes"]["vtkMRMLColorTableNode"]["constants"]) for inv in inventories]
    for name, table in data["colour_tables"].items():
        node_id = table["slicer_color_node_id"]
        suffix = node_id.removeprefix("vtkMRMLColorTableNode")
        assert suffix != node_id, node_id
        if suffix.startswith("File"):
            assert suffix.removeprefix("File") in _SLICER_COLOUR_FILES, node_id
        else:
            assert all(suffix in t for t in types_), node_id
        assert table["matplotlib"] in matplotlib.colormaps, name
    for name, entry in data["maps"].items():
        assert entry["colour"] in data["colour_tables"], name
        low, high = entry["range"]
        assert high > low or (low, high) == (0.0, 0.0), name
    assert set(data["figure_order"]) <= set(data["maps"])


def test_pdff_section_shows_the_progress_of_the_fit(fake_scene, slicer_side, small_phantom):
    """The Maps section's PDFF (seconds on a whole study) hands its progress bar to the fit: the bar moves with the
    fitted voxels, never backwards, and ends full."""
    maps = importlib.import_module("LiverMetsReviewSlicer.maps")
    slicer_side.loadSeries(small_phantom.series, source="phantom")
    calls = []
    maps.computePdff(progress=lambda fraction, message: calls.append((fraction, message)))
    fractions = [f for f, _ in calls if f is not None]
    assert any("fitted" in m for _, m in calls)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


def test_maps_get_their_colour_table_and_fixed_window(fake_scene, slicer_side, small_phantom):
    """Review B H5: ADC shows grey 0-3000 (10^-6 mm^2/s), fat fractions a colour table 0-50 %, relative enhancement
    -20..150 %, R2* 0-200 1/s, with auto window/level off; signal images (subtraction) keep the auto window."""
    maps = importlib.import_module("LiverMetsReviewSlicer.maps")
    slicer_side.loadSeries(small_phantom.series, source="phantom")
    nodes = {}
    for compute in (maps.computeAdc, maps.computeChemicalShiftFat, maps.computePdff):
        nodes.update(compute()[0])
    nodes.update(maps.computeEnhancement("t1_hepatobiliary")[0])
    expected = {"adc": ("vtkMRMLColorTableNodeGrey", (0.0, 3000.0)),
                "ff_chemical_shift": ("vtkMRMLColorTableNodeFileMagma.txt", (0.0, 50.0)),
                "pdff": ("vtkMRMLColorTableNodeFileMagma.txt", (0.0, 50.0)),
                "r2star": ("vtkMRMLColorTableNodeFileViridis.txt", (0.0, 200.0)),
                "re_hepatobiliary": ("vtkMRMLColorTableNodeFileInferno.txt", (-20.0, 150.0))}
    for name, (colour, window) in expected.items():
        node = nodes[name]
        assert (node.color_node_id, node.window_min_max, node.auto_window_level) == (colour, window, False), name
    assert nodes["sub_hepatobiliary"].auto_window_level
    assert nodes["sub_hepatobiliary"].color_node_id == "vtkMRMLColorTableNodeGrey"
    assert not hasattr(nodes["sub_hepatobiliary"], "window_min_max")
    # the demo figure reads the same table
    from LiverMetsReviewLib.figures import MAP_DISPLAY

    assert MAP_DISPLAY["adc"][2] == (0.0, 3000.0) and MAP_DISPLAY["r2star"][2] == (0.0, 200.0)


def test_busy_dialog_closes_after_the_computation_and_on_error(slicer_side):
    """The progress dialog (indeterminate until a step is reported) is painted before the blocking call and closed
    afterwards, also when the call raises; without ``cancellable`` it has no Cancel button; reported steps move
    the bar; a cancel stops a reporting loop (OperationCancelled) and DICOMUtils' callback returns True."""
    events: list[str] = []

    class Dialog:
        wasCanceled = False
        maximum, value, labelText = 0, 0, ""

        def close(self):
            events.append("close")

        def setCancelButton(self, button):  # noqa: N802 - Qt's API
            events.append(f"cancel button {button}")

    dialogs: list[Dialog] = []

    def create(labelText="", maximum=100, windowTitle="", **kwargs):  # noqa: N803 - Slicer's API
        events.append(f"open {labelText} max={maximum}")
        dialogs.append(Dialog())
        return dialogs[-1]

    util = types.ModuleType("slicer.util")
    util.createProgressDialog = create
    util.showStatusMessage = lambda text, *a: events.append(f"status {text}")
    sys.modules["slicer"].util = util
    sys.modules["slicer"].app = types.SimpleNamespace(processEvents=lambda: events.append("paint"))
    progress = importlib.import_module("LiverMetsReviewSlicer.progress")

    with progress.busy("Fitting"):
        events.append("work")
    assert events == ["status Fitting", "open Fitting max=0", "cancel button None", "paint", "work", "close",
                      "status "]
    events.clear()
    with pytest.raises(LiverMetsError), progress.busy("Aligning"):
        raise LiverMetsError("no overlap")
    assert events[-2:] == ["close", "status "] and "open Aligning max=0" in events

    events.clear()
    fractions = sorted(np.random.default_rng(3).uniform(0, 1, 5))
    with progress.busy("Loading", cancellable=True) as report:
        assert "cancel button None" not in events
        for k, f in enumerate(fractions):
            report(f, f"step {k}")
            assert (dialogs[-1].maximum, dialogs[-1].value) == (100, int(round(100 * f)))
            assert dialogs[-1].labelText == f"step {k}"
        assert report.dicomCallback("series 3", 50.0) is False
        dialogs[-1].wasCanceled = True
        assert report.dicomCallback("series 4", 75.0) is True
        with pytest.raises(progress.OperationCancelled):
            report(0.9, "next step")
    with progress.busy("Not cancellable") as report:
        dialogs[-1].wasCanceled = True  # a stray flag must not stop work that cannot be cancelled
        report(0.5, "half")


class _StandInDicomDatabase:
    """ctkDICOMDatabase reduced to the calls of LiverMetsReviewSlicer.dicom_database, indexed with pydicom (not with
    the core's scanner): patient -> studies -> series -> files, as the database lists files imported by reference."""

    def __init__(self, files) -> None:
        import pydicom

        self.isOpen = True
        self.instances: dict[str, str] = {}
        self.series: dict[str, list[str]] = {}
        self.studies: dict[str, list[str]] = {}
        self.fields: dict[str, dict[str, str]] = {}
        for path in files:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            study, series = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)
            self.instances[str(ds.SOPInstanceUID)] = str(path)
            self.series.setdefault(series, []).append(str(path))
            if series not in self.studies.setdefault(study, []):
                self.studies[study].append(series)
            self.fields[study] = {"StudyDate": str(ds.get("StudyDate", "")),
                                  "StudyDescription": str(ds.get("StudyDescription", ""))}

    def patients(self):
        return ["patient1"]

    def displayedNameForPatient(self, patient):  # noqa: N802 - ctkDICOMDatabase's spelling
        return "Phantom"

    def studiesForPatient(self, patient):  # noqa: N802
        return list(self.studies)

    def fieldForStudy(self, field, study):  # noqa: N802
        return self.fields[study][field]

    def descriptionForStudy(self, study):  # noqa: N802
        return self.fields[study]["StudyDescription"]

    def seriesForStudy(self, study):  # noqa: N802
        return list(self.studies[study])

    def filesForSeries(self, series, hits=-1):  # noqa: N802
        return list(self.series[series])

    def fileForInstance(self, uid):  # noqa: N802
        return self.instances[uid]


def _emulated_dicom_utils(database: _StandInDicomDatabase, push) -> types.ModuleType:
    """DICOMUtils.loadSeriesByUID with the scalar volume plugin as test_dicom_slicer_import emulates it from Slicer's
    source (sub-series split, highest confidence, no browser de-duplication): one volume per selected loadable,
    pixels read by SimpleITK from the loadable's files, ``DICOM.instanceUIDs`` from each file's SOPInstanceUID."""
    import pydicom
    import test_dicom_slicer_import as emulation

    calls: list[dict] = []

    def load_series_by_uid(uids, messages=None, progressCallback=None, enabledPluginClassNames=None):  # noqa: N803
        calls.append({"uids": list(uids), "plugins": enabledPluginClassNames})
        files = [f for uid in uids for f in database.filesForSeries(uid)]
        db = emulation.Database([Path(f) for f in files])
        ids = []
        for loadable in emulation.loaded(db, [files], browser=False, multivolume=False):
            node = push(sitk.ReadImage(loadable.files), name=loadable.name)
            node.SetAttribute("DICOM.instanceUIDs", " ".join(
                str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in loadable.files))
            ids.append(node.GetID())
        return ids

    module = types.ModuleType("DICOMLib")
    module.DICOMUtils = types.SimpleNamespace(loadSeriesByUID=load_series_by_uid, calls=calls)
    return module


def test_database_study_loads_only_its_own_series(fake_scene, slicer_side, small_phantom, tmp_path, monkeypatch):
    """A study picked from the DICOM database whose files sit next to another study's files (import by reference)
    loads exactly its own series, as a folder holding only that study would; the links folder is removed; a
    closed database, a study without existing files are one sentence each."""
    import pydicom
    from pydicom.uid import generate_uid

    from LiverMetsReviewLib.phantom import write_phantom

    write_phantom(small_phantom, tmp_path / "a", fmt="dicom")
    own = sorted(p for p in (tmp_path / "a" / "dicom").rglob("*") if p.is_file())
    # a second study (new study/series/instance UIDs) in a subfolder of the first one's folder
    other_study, new_series = generate_uid(), {}
    for k, path in enumerate(own[::4]):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = other_study
        ds.SeriesInstanceUID = new_series.setdefault(str(ds.SeriesInstanceUID), generate_uid())
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        (tmp_path / "a" / "dicom" / "other").mkdir(exist_ok=True)
        ds.save_as(tmp_path / "a" / "dicom" / "other" / f"{k}.dcm")
    database = _StandInDicomDatabase(sorted(p for p in (tmp_path / "a" / "dicom").rglob("*") if p.is_file()))
    study_uid = str(pydicom.dcmread(own[0], stop_before_pixels=True).StudyInstanceUID)
    temporary = tmp_path / "slicer-temp"
    temporary.mkdir()
    sys.modules["slicer"].dicomDatabase = database
    sys.modules["slicer"].app = types.SimpleNamespace(temporaryPath=str(temporary))
    pushed = []

    def push(image, name=None, className="vtkMRMLScalarVolumeNode"):  # noqa: N803
        node = _FakeScalarVolumeNode(image, name)
        node.GetID = lambda node=node: f"vtkMRMLScalarVolumeNode{pushed.index(node) + 1}"
        pushed.append(node)
        return node

    dicom_lib = _emulated_dicom_utils(database, push)
    monkeypatch.setitem(sys.modules, "DICOMLib", dicom_lib)
    sys.modules["slicer"].mrmlScene = types.SimpleNamespace(
        GetNodeByID=lambda i: next((n for n in pushed if n.GetID() == i), None), RemoveNode=pushed.remove)
    dicom_database = importlib.import_module("LiverMetsReviewSlicer.dicom_database")

    assert [uid for uid, _ in dicom_database.databaseStudies()] == list(database.studies)
    with pytest.raises(LiverMetsError, match="2 studies"):  # the folder itself mixes the two studies
        dicom_database.loadDicomStudy(tmp_path / "a" / "dicom", show=False)
    nodes = dicom_database.loadDatabaseStudy(study_uid, show=False)
    expected = {slicer_side.stackNodeName(s, k): s for s in small_phantom.series for k in range(len(s.stacks))}
    assert sorted(nodes) == sorted(expected)
    for name, series in expected.items():
        assert nodes[name].attributes["LiverMetsReview.Role"] == series.role
        # loaded by (the emulated) Slicer plugin, so it keeps its DICOM identity: every instance is of this study
        uids = nodes[name].attributes["DICOM.instanceUIDs"].split()
        assert uids and {str(pydicom.dcmread(database.fileForInstance(u), stop_before_pixels=True).StudyInstanceUID)
                         for u in uids} == {study_uid}
        stack = series.stacks[[slicer_side.stackNodeName(series, k) for k in range(len(series.stacks))].index(name)]
        np.testing.assert_allclose(sitk.GetArrayViewFromImage(nodes[name].image), sitk.GetArrayViewFromImage(stack),
                                   rtol=1e-4, atol=1e-3 * float(np.abs(sitk.GetArrayViewFromImage(stack)).max()))
        if "b_value" in series.stack_meta[0]:
            assert float(nodes[name].attributes["LiverMetsReview.BValue"]) in series.b_values
    assert nodes.notes == [] and not sys.modules["slicer"].mrmlScene.GetNodeByID("none")
    assert {c["plugins"][0] for c in dicom_lib.DICOMUtils.calls} == {"DICOMScalarVolumePlugin"}
    assert list(temporary.iterdir()) == [], "the folder of links must be removed after loading"

    database.series[database.studies[study_uid][0]].append(str(tmp_path / "gone.dcm"))
    assert str(tmp_path / "gone.dcm") not in dicom_database.studyFiles(study_uid)
    for series in database.studies[study_uid]:
        database.series[series] = [str(tmp_path / "gone.dcm")]
    with pytest.raises(LiverMetsError, match="no existing file"):
        dicom_database.loadDatabaseStudy(study_uid, show=False)
    database.isOpen = False
    with pytest.raises(LiverMetsError, match="not open"):
        dicom_database.databaseStudies()
