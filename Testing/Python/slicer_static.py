"""Static checks of the Slicer side of LiverMetsReview against Slicer's API inventories.

3D Slicer cannot run in CI, so the module is checked against ``../shared/slicer-api/slicer-api-*.json`` (names,
signatures, inheritance of Slicer 5.12 and main, derived from Slicer's source). Every check runs against each
inventory; a name must exist, and not be deprecated, in all of them.

What is checked (``check_extension`` runs everything):
  * Python (``LiverMetsReview.py``, ``LiverMetsReviewSlicer/*.py``): every ``slicer.*`` name (util, modules,
    app, mrmlScene, vtkMRML*/vtkSlicer* classes and their constants, ScriptedLoadableModule, parameterNodeWrapper,
    i18n), ``sitkUtils.*`` and ``SampleData.*``; segment tags set to raw ``json.dumps`` text (a '|' splits them in
    a .seg.nrrd); keyword arguments of calls to Slicer's Python functions; methods
    called on variables whose class is known (``AddNewNodeByClass("vtkMRML...")``, ``slicer.vtkX()``,
    ``sitkUtils.PushVolumeToSlicer(className=...)``, ``slicer.modules.x.logic()``, return types recorded in the
    inventory, parameter/return annotations, or a trailing ``# slicer-class: vtkMRMLX`` comment); ``self.X`` in
    classes derived from ScriptedLoadableModule*; ``self.ui.X`` against the .ui's object names;
    ``self.resourcePath("...")`` against the Resources folder.
  * The .ui: widget classes exist (Slicer widgets with a Designer plugin, CTK classes, or standard Qt widgets),
    are declared as custom widgets, object names are unique, connections name existing widgets and members,
    every MRML widget receives ``mrmlSceneChanged(vtkMRMLScene*)`` -> ``setMRMLScene(vtkMRMLScene*)``.
  * ``SlicerParameterName`` properties: each names a field of the ``@parameterNodeWrapper`` class, with a type the
    widget can show (``QComboBox`` needs ``Choice``, ``QSpinBox`` an int, ``qMRMLNodeComboBox`` a node class
    listed in its ``nodeTypes``...).
  * Runtime imports: everything the module folder imports at module level is the standard library or shipped with
    Slicer (numpy, scipy, SimpleITK, pydicom, Slicer's own modules); other packages only inside functions.
  * Self-test: ``<ModuleName>Test`` (a ScriptedLoadableModuleTest) is in the module file's namespace, where
    Slicer's Reload and Test and the registered ctest look it up (defined there or imported from its own file).
  * CMake: every module file listed in ``LiverMetsReview/CMakeLists.txt`` and every listed file present; the
    template's required calls in both CMake files.

Findings are *errors* (a name is missing or deprecated, a file is absent) or *notes* (the inventory cannot
decide, e.g. a member inherited from Qt's own classes, which the inventory does not list).

CLI: ``python Testing/Python/slicer_static.py [--api-dir DIR]``; exit status 1 when there is an error.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib.util
import json
import re
import sys
import unittest
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_NAME = "LiverMetsReview"
MODULE_DIR = REPO_ROOT / MODULE_NAME
DEFAULT_API_DIR = REPO_ROOT.parent / "shared" / "slicer-api"
INVENTORY_FILES = ("slicer-api-5.12.json", "slicer-api-main.json")

VTK_SECTIONS = ("mrml_classes", "logic_classes", "other_vtk_classes", "vtkaddon_classes", "vtk_classes")
QT_SECTIONS = ("qt_widgets", "qt_classes", "ctk_classes")

# Qt's own widgets and layouts are not in the inventory (it lists Slicer's and CTK's classes only).
STANDARD_QT_WIDGETS = frozenset({
    "QWidget", "QLabel", "QPushButton", "QToolButton", "QRadioButton", "QCheckBox", "QComboBox", "QSpinBox",
    "QDoubleSpinBox", "QLineEdit", "QTextEdit", "QPlainTextEdit", "QTextBrowser", "QGroupBox", "QFrame",
    "QTableWidget", "QTableView", "QListWidget", "QListView", "QTreeWidget", "QTreeView", "QTabWidget",
    "QStackedWidget", "QScrollArea", "QSplitter", "QSlider", "QProgressBar", "QDialogButtonBox",
})
STANDARD_QT_LAYOUTS = frozenset({"QVBoxLayout", "QHBoxLayout", "QFormLayout", "QGridLayout", "QStackedLayout"})

# Which annotation a parameter-node field needs for the widget that shows it (slicer.parameterNodeWrapper
# guiConnectors): widget class -> accepted base types.
PARAMETER_WIDGET_TYPES = {
    "QCheckBox": {"bool"},
    "QSpinBox": {"int"},
    "QSlider": {"int"},
    "QDoubleSpinBox": {"float", "int"},
    "ctkDoubleSpinBox": {"float", "int"},
    "ctkSliderWidget": {"float", "int"},
    "qMRMLSliderWidget": {"float", "int"},
    "qMRMLSpinBox": {"float", "int"},
    "QLineEdit": {"str"},
    "QLabel": {"str"},
    "ctkDirectoryButton": {"Path", "PurePath", "PosixPath", "WindowsPath"},
    "ctkPathLineEdit": {"Path", "PurePath", "PosixPath", "WindowsPath"},
    "QComboBox": {"str", "int", "float", "bool"},  # plus a Choice annotation (or an Enum)
    "ctkComboBox": {"str", "int", "float", "bool"},
}

# Attributes of the ``slicer`` package that are submodules (checked by their own rules) or set at runtime.
SLICER_SUBMODULES = ("util", "modules", "app", "mrmlScene", "ScriptedLoadableModule", "parameterNodeWrapper",
                     "i18n", "testing", "cli", "logic", "packaging")


# --------------------------------------------------------------------------------------------------------------
# Findings


@dataclass(frozen=True)
class Finding:
    check: str      # python-api, deprecated, keyword, method, self-attribute, ui-name, ui-class, ui-connection,
    #                 mrml-scene, parameter, resource, cmake
    where: str      # file:line
    name: str       # the offending name
    message: str    # one sentence: what is wrong
    inventory: str = ""  # which inventory (label) the finding comes from; "" when it does not depend on one

    def __str__(self) -> str:
        inv = f" [{self.inventory}]" if self.inventory else ""
        return f"{self.where}: {self.check}: {self.name}: {self.message}{inv}"


@dataclass
class Report:
    errors: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    def extend(self, other: Report) -> None:
        for f in other.errors:
            if f not in self.errors:
                self.errors.append(f)
        for f in other.notes:
            if f not in self.notes:
                self.notes.append(f)

    def error_names(self) -> set[str]:
        return {f.name for f in self.errors}

    def text(self) -> str:
        lines = [f"ERROR {f}" for f in self.errors] + [f"note  {f}" for f in self.notes]
        return "\n".join(lines) if lines else "no findings"


# --------------------------------------------------------------------------------------------------------------
# One inventory


class Inventory:
    """Lookups in one slicer-api-*.json (see its README): exists / missing / unknown, deprecated."""

    def __init__(self, data: dict[str, Any], label: str) -> None:
        self.data = data
        self.label = label

    @classmethod
    def load(cls, path: Path) -> Inventory:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return cls(data, str(data.get("label") or data.get("slicer_ref") or path.stem))

    # classes ---------------------------------------------------------------------------------------------
    def find_class(self, name: str) -> tuple[str | None, dict | None]:
        for sec in VTK_SECTIONS + QT_SECTIONS:
            entry = self.data.get(sec, {}).get(name)
            if entry is not None:
                return sec, entry
        return None, None

    def is_qt(self, name: str) -> bool:
        return self.find_class(name)[0] in QT_SECTIONS

    def chain(self, name: str) -> list[str]:
        """``name`` and its superclasses; a class outside the inventory ends with '?'."""
        out: list[str] = []
        seen: set[str] = set()
        todo = [name]
        while todo:
            n = todo.pop(0)
            if n in seen:
                continue
            seen.add(n)
            _, c = self.find_class(n)
            if c is None:
                out.append(n + "?")
                continue
            out.append(n)
            todo.extend(c.get("bases") or ([c["superclass"]] if c.get("superclass") else []))
        return out

    def member(self, cls: str, member: str) -> tuple[str, str | None, bool]:
        """('found'|'missing'|'unknown', defining class, deprecated) for a method/constant/property/slot."""
        chain = self.chain(cls)
        open_chain = any(n.endswith("?") for n in chain)
        # A class whose members come partly from a macro the inventory could not expand (vtkCommand's event ids)
        # cannot prove absence either.
        open_chain = open_chain or any((self.find_class(n)[1] or {}).get("unexpanded_macros") for n in chain)
        for n in chain:
            sec, c = self.find_class(n.rstrip("?"))
            if not c:
                continue
            if sec in QT_SECTIONS:
                kinds = ("properties", "slots", "signals", "invokables")
                hit = any(member in (c.get(k) or {}) for k in kinds)
            else:
                hit = member in (c.get("methods") or {}) or member in (c.get("constants") or [])
                hit = hit or member in (c.get("static") or [])
            if hit:
                return "found", n, member in (c.get("deprecated") or [])
        # Upstream VTK classes are inventoried only in part (templated bases such as vtkAOSDataArrayTemplate<T>
        # are not): absence there is not proof either.
        open_chain = open_chain or self.find_class(cls)[0] == "vtk_classes"
        return ("unknown" if open_chain else "missing"), None, False

    def near_miss(self, cls: str, member: str) -> str | None:
        """A member of the inventoried chain one typo away from ``member`` (``setMRMLScenee``): Qt's own bases,
        which the inventory does not list, are very unlikely to hold such a near twin."""
        names: set[str] = set()
        for n in self.chain(cls):
            sec, c = self.find_class(n.rstrip("?"))
            if not c:
                continue
            kinds = ("properties", "slots", "signals", "invokables") if sec in QT_SECTIONS else ("methods",)
            for k in kinds:
                names.update(c.get(k) or {})
            names.update(c.get("constants") or [])
        close = difflib.get_close_matches(member, sorted(names), n=1, cutoff=0.9)
        return close[0] if close and close[0] != member else None

    def returns(self, cls: str, member: str) -> str | None:
        """Class returned by ``cls.member()`` when the inventory records it (object-pointer returns)."""
        for n in self.chain(cls):
            _, c = self.find_class(n.rstrip("?"))
            if c and isinstance(c.get("returns"), dict) and member in c["returns"]:
                return c["returns"][member]
        return None

    # python namespaces -------------------------------------------------------------------------------------
    def python_namespace(self, dotted: str) -> dict | None:
        """The function/class table of a Slicer Python module (slicer.util, sitkUtils, SampleData, ...)."""
        if dotted == "slicer.util":
            return self.data["slicer.util"]
        if dotted == "slicer.ScriptedLoadableModule":
            return self.data["ScriptedLoadableModule"]
        if dotted == "slicer.parameterNodeWrapper":
            pnw = self.data["parameterNodeWrapper"]
            names = pnw["exported_names"]
            merged: dict[str, Any] = {"functions": {}, "classes": {}, "variables": [], "deprecated": []}
            for name, sub in names.items():
                table = pnw["submodules"].get(sub, {})
                if name in table.get("functions", {}):
                    merged["functions"][name] = table["functions"][name]
                elif name in table.get("classes", {}):
                    merged["classes"][name] = table["classes"][name]
                else:
                    merged["variables"].append(name)
            return merged
        for section in ("python_modules", "scripted_python_modules"):
            table = self.data.get(section, {}).get(dotted)
            if table is not None:
                return table
        return None

    def module_entry(self, attr: str) -> dict | None:
        return self.data["slicer.modules"].get(attr.lower())

    def runtime_attributes(self) -> dict[str, str]:
        return self.data.get("slicer_namespace", {}).get("runtime_attributes", {})


def load_inventories(api_dir: Path = DEFAULT_API_DIR) -> list[Inventory]:
    return [Inventory.load(Path(api_dir) / name) for name in INVENTORY_FILES]


# --------------------------------------------------------------------------------------------------------------
# Python sources


def _signature_params(sig: str) -> tuple[list[str], bool, bool] | None:
    """Parameter names of an inventory signature "(a, b=1) @staticmethod"; flags for *args and **kwargs."""
    text = sig.split(" @", 1)[0].strip()
    try:
        fn = ast.parse(f"def _f{text}: pass").body[0]
    except SyntaxError:
        return None
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    return names, a.vararg is not None, a.kwarg is not None


def _dotted(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


def _annotation_class(node: ast.AST | None) -> str | None:
    """``vtkMRMLX``, ``slicer.vtkMRMLX``, ``"slicer.vtkMRMLX"`` or ``X | None`` -> ``vtkMRMLX``."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotation_class(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _annotation_class(node.left), _annotation_class(node.right)
        return left or right
    parts = _dotted(node)
    if parts and re.match(r"^(vtk|q[A-Z]|ctk)", parts[-1]) and (len(parts) == 1 or parts[0] in ("slicer", "vtk")):
        return parts[-1]
    return None


# What ``self.parent`` is in each scripted-module base class (see the inventory's cpp_parent_classes).
SLM_PARENT_CLASSES = {"ScriptedLoadableModule": "qSlicerScriptedLoadableModule",
                      "ScriptedLoadableModuleWidget": "qSlicerScriptedLoadableModuleWidget"}

# Slots PythonQt adds to every module object (qSlicerBaseQTGUIPythonQtDecorators, first argument the module).
OWN_MODULE_DECORATOR_SLOTS = ("widgetRepresentation", "createNewWidgetRepresentation")

DECLARED = "~"  # suffix of an inferred class that is only a declared type (the object may be a subclass)


def _declared(cls: str | None) -> str | None:
    return cls + DECLARED if cls else None


SLICER_CLASS_COMMENT = re.compile(r"#\s*slicer-class:\s*(\w+)")


class _PythonChecker(ast.NodeVisitor):
    """One file, one inventory."""

    def __init__(self, source: str, filename: str, inv: Inventory, ui_names: set[str] | None,
                 resources_dir: Path | None, function_returns: dict[str, str]) -> None:
        self.source_lines = source.splitlines()
        self.filename = filename
        self.inv = inv
        self.ui_names = ui_names
        self.resources_dir = resources_dir
        self.function_returns = function_returns
        self.report = Report()
        self.aliases: dict[str, str] = {}      # local name -> dotted Slicer name ("slicer", "slicer.util.loadUI")
        self.scopes: list[dict[str, str]] = [{}]  # variable -> class
        self.class_stack: list[ast.ClassDef] = []
        self.local_classes: dict[str, ast.ClassDef] = {}
        self.tree = ast.parse(source, filename=filename)

    # reporting ----------------------------------------------------------------------------------------------
    def _where(self, node: ast.AST) -> str:
        return f"{self.filename}:{getattr(node, 'lineno', 0)}"

    def error(self, check: str, node: ast.AST, name: str, message: str) -> None:
        f = Finding(check, self._where(node), name, message, self.inv.label)
        if f not in self.report.errors:
            self.report.errors.append(f)

    def note(self, check: str, node: ast.AST, name: str, message: str) -> None:
        f = Finding(check, self._where(node), name, message, self.inv.label)
        if f not in self.report.notes:
            self.report.notes.append(f)

    # entry --------------------------------------------------------------------------------------------------
    def run(self) -> Report:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ClassDef):
                self.local_classes[node.name] = node
        self.visit(self.tree)
        return self.report

    # imports ------------------------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in ("slicer", "vtk") or alias.name.startswith("slicer.") or self.inv.python_namespace(
                    alias.name):
                local = alias.asname or alias.name.split(".")[0]
                self.aliases[local] = alias.name if alias.asname else alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        if not (mod == "slicer" or mod.startswith("slicer.") or self.inv.python_namespace(mod) or any(
                self.inv.python_namespace(f"{mod}.{alias.name}") for alias in node.names)):
            return  # not Slicer's (``from DICOMLib import DICOMUtils`` is: a Slicer module's submodule)
        for alias in node.names:
            if alias.name == "*":
                continue
            dotted = f"{mod}.{alias.name}"
            self.aliases[alias.asname or alias.name] = dotted
            self.check_dotted(dotted.split("."), node)

    # names --------------------------------------------------------------------------------------------------
    def resolve(self, node: ast.AST) -> list[str] | None:
        """Dotted Slicer name of an expression built from imported names, else None."""
        parts = _dotted(node)
        if not parts or parts[0] not in self.aliases:
            return None
        return self.aliases[parts[0]].split(".") + parts[1:]

    def visit_Attribute(self, node: ast.Attribute) -> None:
        parts = self.resolve(node)
        if parts is not None and not isinstance(node.ctx, ast.Load):
            return  # assigning an attribute (slicer.modules.x = ...) creates it
        if parts is not None:
            self.check_dotted(parts, node)
            return  # the whole chain is checked at once
        self._check_self_attribute(node)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.aliases and isinstance(node.ctx, ast.Load):
            pass  # checked at import

    def check_dotted(self, parts: list[str], node: ast.AST) -> None:
        inv = self.inv
        name = ".".join(parts)
        head = parts[0]
        if head == "slicer":
            if len(parts) == 1:
                return
            sub = parts[1]
            if sub in ("util", "ScriptedLoadableModule", "parameterNodeWrapper", "i18n", "testing", "cli",
                       "logic", "packaging"):
                self._check_namespace_member(f"slicer.{sub}", parts[2:], node, name)
            elif sub == "modules":
                self._check_modules(parts[2:], node, name)
            elif sub == "app":
                if len(parts) > 2:
                    self._check_member("qSlicerApplication", parts[2], node, name)
            elif sub == "mrmlScene":
                if len(parts) > 2:
                    self._check_member("vtkMRMLScene", parts[2], node, name)
            elif inv.find_class(sub)[0]:
                if len(parts) > 2:
                    self._check_member(sub, parts[2], node, name)
            elif sub in inv.runtime_attributes():
                return
            else:
                self.error("python-api", node, name, "no such attribute of the slicer package (class, module or "
                                                       "runtime attribute)")
        elif head == "vtk":  # the inventory holds only the VTK classes Slicer's API reaches
            if len(parts) > 2 and inv.find_class(parts[1])[0]:
                self._check_member(parts[1], parts[2], node, name)
        else:
            dotted_mod = None
            for k in range(len(parts), 0, -1):
                if inv.python_namespace(".".join(parts[:k])) is not None:
                    dotted_mod = ".".join(parts[:k])
                    rest = parts[k:]
                    break
            if dotted_mod is not None:
                self._check_namespace_member(dotted_mod, rest, node, name)

    def _check_namespace_member(self, module: str, rest: list[str], node: ast.AST, name: str) -> None:
        table = self.inv.python_namespace(module)
        if table is None:
            self.error("python-api", node, name, f"Python module {module} is not in the inventory")
            return
        if not rest:
            return
        first = rest[0]
        functions, classes = table.get("functions", {}), table.get("classes", {})
        if first in functions:
            kind = "function"
        elif first in classes:
            kind = "class"
        elif first in (table.get("variables") or []):
            kind = "variable"
        elif module in ("slicer.testing", "slicer.cli", "slicer.logic", "slicer.packaging") and first in (
                table.get("__all__") or []):
            kind = "variable"
        else:
            self.error("python-api", node, name, f"{first} does not exist in {module}")
            return
        if first in (table.get("deprecated") or []):
            self.error("deprecated", node, name, f"{module}.{first} is deprecated")
        if kind == "class" and len(rest) > 1:
            methods = classes[first].get("methods", {})
            attrs = set(classes[first].get("class_attributes") or []) | set(classes[first].get("properties") or [])
            if rest[1] not in methods and rest[1] not in attrs:
                self.error("python-api", node, name, f"{module}.{first} has no member {rest[1]}")

    def _check_modules(self, rest: list[str], node: ast.AST, name: str) -> None:
        if not rest:
            return
        attr = rest[0]
        if attr == MODULE_NAME.lower():  # this module: a qSlicerScriptedLoadableModule once Slicer has loaded it
            if len(rest) > 1 and rest[1] not in OWN_MODULE_DECORATOR_SLOTS:
                twin = difflib.get_close_matches(rest[1], OWN_MODULE_DECORATOR_SLOTS, n=1, cutoff=0.9)
                if twin:
                    self.error("method", node, name, f"modules have no member {rest[1]}; did you mean {twin[0]}?")
                else:
                    self._check_member("qSlicerScriptedLoadableModule", rest[1], node, name)
            return
        if attr == attr.lower() and self.inv.module_entry(attr) is not None:  # slicer.modules.<lowercase name>
            return
        for suffix in ("Widget", "Instance"):  # slicer.modules.<ModuleName>Widget set at runtime
            entry = self.inv.module_entry(attr[: -len(suffix)]) if attr.endswith(suffix) else None
            if entry is not None and attr[: -len(suffix)] == entry.get("name"):
                return
        if attr != attr.lower() and attr[0].islower():
            self.note("python-api", node, name, "camelCase runtime attribute of slicer.modules (set by Python "
                                                 "code, not inventoried)")
            return
        self.error("python-api", node, name, f"no Slicer module '{attr}' (modules of extensions are not listed)")

    def _check_member(self, cls: str, member: str, node: ast.AST, name: str, exact: bool = True) -> None:
        """``exact``: the object is known to be of class ``cls``; otherwise ``cls`` is a declared type (a return
        type, ``getNode``) and the runtime object may be a subclass with more members: only typos are errors."""
        status, owner, deprecated = self.inv.member(cls, member)
        if status == "missing" and exact:
            self.error("method", node, name, f"{cls} (and its superclasses) has no member {member}")
        elif status in ("unknown", "missing"):
            twin = self.inv.near_miss(cls, member)
            if twin:
                self.error("method", node, name, f"{cls} has no member {member}; did you mean {twin}?")
            else:
                self.note("method", node, name, f"{member} not found in {cls}'s inventoried classes; it may come "
                                                 "from a Qt/VTK base or a macro the inventory does not list")
        elif deprecated:
            self.error("deprecated", node, name, f"{owner}.{member} is deprecated")

    # calls: keyword arguments and typed receivers ---------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        parts = self.resolve(func)
        if parts is not None:
            self._check_call_signature(parts, node)
        elif isinstance(func, ast.Attribute):
            inferred = self.infer(func.value)
            if inferred:
                cls = inferred.rstrip(DECLARED)
                self._check_member(cls, func.attr, node, f"{cls}.{func.attr}", exact=not inferred.endswith(DECLARED))
        if isinstance(func, ast.Attribute) and _dotted(func) and _dotted(func)[:2] == ["self", "resourcePath"]:
            self._check_resource(node)
        if isinstance(func, ast.Attribute) and func.attr == "SetTag" and len(node.args) == 2:
            self._check_tag_value(node.args[1], node)
        self.generic_visit(node)

    def _check_tag_value(self, value: ast.AST, node: ast.Call) -> None:
        """A .seg.nrrd stores a segment's tags as ``key:value|key:value|`` and splits them at '|' on reading
        (vtkMRMLSegmentationStorageNode::SetSegmentTagsFromString): JSON text, whose strings may hold '|', is lost
        after a save unless it is escaped (e.g. ``json.dumps(x).replace("|", "\\u007c")``)."""
        if isinstance(value, ast.Call) and _dotted(value.func) in (["json", "dumps"], ["dumps"]):
            self.error("segment-tag", node, "SetTag(json.dumps(...))",
                       "a '|' inside the JSON splits the tag when the .seg.nrrd is read back; escape it "
                       "(json.dumps(x).replace('|', '\\\\u007c'))")

    def _python_signature(self, parts: list[str]) -> str | None:
        for k in range(len(parts) - 1, 0, -1):
            table = self.inv.python_namespace(".".join(parts[:k]))
            if table is None:
                continue
            rest = parts[k:]
            if len(rest) == 1:
                return table.get("functions", {}).get(rest[0])
            if len(rest) == 2:
                return table.get("classes", {}).get(rest[0], {}).get("methods", {}).get(rest[1])
            return None
        return None

    def _check_call_signature(self, parts: list[str], node: ast.Call) -> None:
        sig = self._python_signature(parts)
        if not sig:
            return
        parsed = _signature_params(sig)
        if parsed is None:
            return
        params, has_var, has_kw = parsed  # calls through a class pass ``self`` explicitly: keep it
        name = ".".join(parts)
        for kw in node.keywords:
            if kw.arg is not None and kw.arg not in params and not has_kw:
                self.error("keyword", node, f"{name}({kw.arg}=)", f"{name} has no parameter '{kw.arg}' "
                                                                  f"(signature {sig})")
        if not has_var and len(node.args) > len(params) and not any(isinstance(a, ast.Starred) for a in node.args):
            self.error("keyword", node, name, f"{len(node.args)} positional arguments but {name} takes "
                                              f"{len(params)} (signature {sig})")
        # deprecated keyword spellings documented by Slicer
        for kw in node.keywords:
            if kw.arg == "loadFileType":
                self.error("deprecated", node, f"{name}(loadFileType=)", "loadFileType is deprecated: use "
                                                                          "loadFileTypes")

    def _check_resource(self, node: ast.Call) -> None:
        if self.resources_dir is None or not node.args:
            return
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if not (self.resources_dir / arg.value).exists():
                self.error("resource", node, arg.value, f"not found under {self.resources_dir}")

    # type inference ------------------------------------------------------------------------------------------
    def infer(self, expr: ast.AST) -> str | None:
        """Slicer/VTK class of an expression when it can be told statically, else None."""
        parts = self.resolve(expr)
        if parts == ["slicer", "mrmlScene"]:
            return "vtkMRMLScene"
        if parts == ["slicer", "app"]:
            return "qSlicerApplication"
        if isinstance(expr, ast.Name):
            for scope in reversed(self.scopes):
                if expr.id in scope:
                    return scope[expr.id]
            return None
        if not isinstance(expr, ast.Call):
            return None
        func = expr.func
        fparts = self.resolve(func)
        if fparts is not None:
            return self._infer_slicer_call(fparts, expr)
        if isinstance(func, ast.Name):
            if func.id in self.function_returns:
                return self.function_returns[func.id]
            return None
        if isinstance(func, ast.Attribute):
            owner = self.infer(func.value)
            if owner:
                owner = owner.rstrip(DECLARED)
                if func.attr in ("AddNewNodeByClass", "CreateNodeByClass") and expr.args:
                    first = expr.args[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        return first.value
                return _declared(self.inv.returns(owner, func.attr))
            vparts = _dotted(func.value)
            if vparts and vparts[0] == "self" and func.attr in self.function_returns:
                return self.function_returns[func.attr]
        return None

    def _infer_slicer_call(self, parts: list[str], call: ast.Call) -> str | None:
        if len(parts) == 2 and parts[0] in ("slicer", "vtk") and self.inv.find_class(parts[1])[0]:
            return parts[1]
        if parts[:2] == ["slicer", "mrmlScene"] and len(parts) == 3:
            if parts[2] in ("AddNewNodeByClass", "CreateNodeByClass") and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    return first.value
            if parts[2] == "GetFirstNodeByClass" and call.args and isinstance(call.args[0], ast.Constant):
                return _declared(str(call.args[0].value))  # the first node of that class or of a subclass
            return _declared(self.inv.returns("vtkMRMLScene", parts[2]))
        if parts[:2] == ["slicer", "app"] and len(parts) == 3:
            return _declared(self.inv.returns("qSlicerApplication", parts[2]))
        if parts[:2] == ["slicer", "modules"] and len(parts) == 4 and parts[3] in OWN_MODULE_DECORATOR_SLOTS:
            return _declared(self.inv.returns("qSlicerBaseQTGUIPythonQtDecorators", parts[3]))
        if parts[:2] == ["slicer", "modules"] and len(parts) == 4 and parts[3] == "logic":
            entry = self.inv.module_entry(parts[2])
            return entry.get("logic_class") if entry else None
        if parts == ["sitkUtils", "PushVolumeToSlicer"]:
            for kw in call.keywords:
                if kw.arg == "className" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
            if len(call.args) >= 4 and isinstance(call.args[3], ast.Constant):
                return str(call.args[3].value)
            return "vtkMRMLScalarVolumeNode"
        if parts[:2] == ["slicer", "util"] and len(parts) == 3 and parts[2] in ("getNode", "getFirstNodeByName"):
            return "vtkMRMLNode" + DECLARED
        return None

    # scopes ---------------------------------------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        scope: dict[str, str] = {}
        for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
            cls = _annotation_class(arg.annotation)
            if cls and self.inv.find_class(cls)[0]:
                scope[arg.arg] = cls
        self.scopes.append(scope)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _bind(self, target: ast.AST, cls: str | None) -> None:
        if isinstance(target, ast.Name):
            if cls:
                self.scopes[-1][target.id] = cls
            else:
                self.scopes[-1].pop(target.id, None)

    def visit_Assign(self, node: ast.Assign) -> None:
        if (self.class_stack and self.resources_dir is not None and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str) and UI_FILE_LITERAL.match(node.value.value)
                and not (self.resources_dir / node.value.value).exists()):
            self.error("resource", node, node.value.value, f"not found under {self.resources_dir}")
        self.visit(node.value)
        cls = self._comment_class(node) or self.infer(node.value)
        for target in node.targets:
            self._bind(target, cls)
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        cls = _annotation_class(node.annotation)
        if not (cls and self.inv.find_class(cls)[0]):
            cls = self._comment_class(node) or (self.infer(node.value) if node.value is not None else None)
        self._bind(node.target, cls)
        self.visit(node.annotation)

    def _comment_class(self, node: ast.AST) -> str | None:
        line = self.source_lines[node.lineno - 1] if 0 < node.lineno <= len(self.source_lines) else ""
        m = SLICER_CLASS_COMMENT.search(line)
        if not m:
            return None
        if not self.inv.find_class(m.group(1))[0]:
            self.error("python-api", node, m.group(1), "class named in a slicer-class comment does not exist")
            return None
        return m.group(1)

    # self.X in scripted-module classes and self.ui.X ---------------------------------------------------------
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.class_stack.append(node)
        self.scopes.append({})
        self.generic_visit(node)
        self.scopes.pop()
        self.class_stack.pop()

    def _slm_members(self, cls: ast.ClassDef, seen: set[str] | None = None) -> tuple[set[str], bool]:
        """Members reachable on ``self`` and whether the class derives from a ScriptedLoadableModule class."""
        seen = seen or set()
        if cls.name in seen:
            return set(), False
        seen.add(cls.name)
        members: set[str] = set()
        derived = False
        for item in ast.walk(cls):
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                members.add(item.name)
            elif isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store):
                if isinstance(item.value, ast.Name) and item.value.id == "self":
                    members.add(item.attr)
            elif isinstance(item, (ast.Assign, ast.AnnAssign)) and item in cls.body:
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                members.update(t.id for t in targets if isinstance(t, ast.Name))
        slm = self.inv.data["ScriptedLoadableModule"]["classes"]
        util_classes = self.inv.data["slicer.util"]["classes"]
        for base in cls.bases:
            bparts = self.resolve(base) or _dotted(base) or []
            bname = bparts[-1] if bparts else ""
            if bname in slm:
                derived = True
                entry = slm[bname]
                members.update(entry.get("methods", {}))
                members.update(entry.get("instance_attributes") or [])
                if bname == "ScriptedLoadableModuleTest":
                    members.update(dir(unittest.TestCase))
            elif bname in util_classes:
                members.update(util_classes[bname].get("methods", {}))
                members.update(util_classes[bname].get("properties") or [])
            elif bname in self.local_classes:
                sub, sub_derived = self._slm_members(self.local_classes[bname], seen)
                members |= sub
                derived = derived or sub_derived
            elif bname:
                return members, False  # an unknown base: cannot judge self.X
        return members, derived

    def _slm_base(self, cls: ast.ClassDef, depth: int = 0) -> str | None:
        """The ScriptedLoadableModule* class ``cls`` derives from (through local classes), if any."""
        slm = self.inv.data["ScriptedLoadableModule"]["classes"]
        for base in cls.bases:
            bname = (self.resolve(base) or _dotted(base) or [""])[-1]
            if bname in slm:
                return bname
            if bname in self.local_classes and depth < 10:
                found = self._slm_base(self.local_classes[bname], depth + 1)
                if found:
                    return found
        return None

    def _check_other_ui(self, node: ast.Attribute) -> None:
        """``widget.study.ui.X`` (a section's widgets reached from elsewhere, e.g. the self-test): X must be a
        widget of some .ui of the module."""
        parts = _dotted(node)
        names = getattr(self, "all_ui_names", None)
        if not parts or names is None or parts[0] == "self" and len(parts) >= 2 and parts[1] == "ui":
            return
        if parts[:1] == ["ui"] and len(parts) == 2 and self.ui_names is not None:  # setup(self, ui, logic)
            if parts[1] not in self.ui_names:
                self.error("ui-name", node, "ui." + parts[1], "no widget with this objectName in the .ui")
        elif len(parts) >= 3 and parts[-2] == "ui" and isinstance(node.value, ast.Attribute):
            if parts[-1] not in names:
                self.error("ui-name", node, ".".join(parts), "no widget with this objectName in the module's .ui files")

    def _check_self_attribute(self, node: ast.Attribute) -> None:
        self._check_other_ui(node)
        parts = _dotted(node)
        if not parts or parts[0] != "self" or not self.class_stack:
            return
        if len(parts) >= 3 and parts[1] == "ui" and self.ui_names is not None and node.value is not None:
            if isinstance(node.value, ast.Attribute) and _dotted(node.value) == ["self", "ui"]:
                if parts[2] not in self.ui_names:
                    self.error("ui-name", node, f"self.ui.{parts[2]}", "no widget with this objectName in the .ui")
                return
        if len(parts) == 3 and parts[1] == "parent" and isinstance(node.value, ast.Attribute):
            cpp = SLM_PARENT_CLASSES.get(self._slm_base(self.class_stack[-1]) or "")
            if cpp:  # self.parent is Slicer's C++ module / module widget (title, categories, isEntered...)
                self._check_member(cpp, parts[2], node, f"self.parent.{parts[2]}")
            return
        if len(parts) != 2 or not isinstance(node.ctx, ast.Load):
            return
        members, derived = self._slm_members(self.class_stack[-1])
        if derived and parts[1] not in members:
            self.error("self-attribute", node, f"self.{parts[1]}",
                       f"not defined in {self.class_stack[-1].name} nor in its ScriptedLoadableModule base")


def collect_function_returns(sources: dict[str, str], inv: Inventory) -> dict[str, str]:
    """Module-level function name -> class from its return annotation, across the checked files."""
    out: dict[str, str] = {}
    for source in sources.values():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                cls = _annotation_class(node.returns)
                if cls and inv.find_class(cls)[0]:
                    out[node.name] = cls
    return out


def check_python_source(source: str, filename: str, inventories: list[Inventory], *,
                        ui_names: set[str] | None = None, resources_dir: Path | None = None,
                        other_sources: dict[str, str] | None = None, all_ui_names: set[str] | None = None) -> Report:
    """Check one Python file against every inventory. ``ui_names``: the widgets ``self.ui.X`` may name;
    ``all_ui_names``: the widgets of every .ui, for ``other.ui.X`` (a section's ui reached from elsewhere)."""
    report = Report()
    sources = dict(other_sources or {})
    sources[filename] = source
    for inv in inventories:
        returns = collect_function_returns(sources, inv)
        checker = _PythonChecker(source, filename, inv, ui_names, resources_dir, returns)
        checker.all_ui_names = all_ui_names
        report.extend(checker.run())
    return report


# --------------------------------------------------------------------------------------------------------------
# .ui files


@dataclass
class UiInfo:
    widgets: dict[str, str]            # objectName -> class
    parameter_bindings: dict[str, str]  # objectName -> SlicerParameterName
    properties: dict[str, dict[str, ET.Element]]
    top_name: str


def parse_ui(text: str) -> UiInfo:
    root = ET.fromstring(text)
    top = root.find("widget")
    widgets: dict[str, str] = {}
    bindings: dict[str, str] = {}
    props: dict[str, dict[str, ET.Element]] = {}
    for w in root.iter("widget"):
        name, cls = w.get("name", ""), w.get("class", "")
        widgets.setdefault(name, cls)
        props[name] = {p.get("name", ""): p for p in w.findall("property")}
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                value = p.findtext("string") or ""
                bindings[name] = value
    return UiInfo(widgets, bindings, props, top.get("name", "") if top is not None else "")


def scene_widgets_set_in_code(sources) -> set[str]:
    """Names X in ``self.ui.X.setMRMLScene(...)`` calls."""
    out: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setMRMLScene":
                parts = _dotted(node.func.value) or []
                if len(parts) == 3 and parts[:2] == ["self", "ui"]:
                    out.add(parts[2])
    return out


def check_ui(text: str, filename: str, inventories: list[Inventory],
             scene_set_in_code: frozenset[str] | set[str] = frozenset()) -> Report:
    """``scene_set_in_code``: widgets whose scene the Python code sets (``self.ui.X.setMRMLScene(...)``)."""
    report = Report()
    standard_qt = set(STANDARD_QT_WIDGETS)
    for inv in inventories:  # Qt classes Slicer's own .ui files use
        standard_qt |= set(inv.data.get("ui_widget_classes_used", {}).get("qt", {}))
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        report.errors.append(Finding("ui-class", filename, "xml", f"not well-formed XML ({exc})"))
        return report
    info = parse_ui(text)
    names_seen: dict[str, int] = {}
    for w in root.iter("widget"):
        names_seen[w.get("name", "")] = names_seen.get(w.get("name", ""), 0) + 1
    for name, count in names_seen.items():
        if count > 1:
            report.errors.append(Finding("ui-name", filename, name, f"objectName used by {count} widgets"))
    declared = {cw.findtext("class") for cw in root.iter("customwidget")}
    for layout in root.iter("layout"):
        if layout.get("class") not in STANDARD_QT_LAYOUTS:
            report.errors.append(Finding("ui-class", filename, layout.get("class", ""), "unknown layout class"))
        cells: dict[tuple[str, str], int] = {}
        for item in layout.findall("item"):
            if item.get("row") is not None:
                cell = (item.get("row", ""), item.get("column", "0"))
                cells[cell] = cells.get(cell, 0) + 1
        for (row, col), count in cells.items():
            if count > 1:  # Qt Designer never writes this; a hand edit gone wrong hides one of the widgets
                report.errors.append(Finding("ui-layout", filename, f"{layout.get('name')}[{row},{col}]",
                                             f"{count} items share row {row}, column {col}"))
    for name, cls in info.widgets.items():
        if cls in standard_qt:
            continue
        if cls.startswith("Q"):
            report.errors.append(Finding("ui-class", filename, cls, f"widget '{name}': not a standard Qt widget "
                                                                    "this checker knows"))
            continue
        for inv in inventories:
            if cls not in inv.data.get("qt_widgets", {}) and cls not in inv.data.get("ctk_classes", {}):
                report.errors.append(Finding("ui-class", filename, cls, f"widget '{name}': class has no Designer "
                                                                        "plugin in Slicer / CTK", inv.label))
        if cls not in declared:
            report.errors.append(Finding("ui-class", filename, cls, "used but not declared in <customwidgets>"))
    # connections
    connected_scene: set[str] = set()
    for c in root.iter("connection"):
        sender, receiver = c.findtext("sender") or "", c.findtext("receiver") or ""
        signal, slot = c.findtext("signal") or "", c.findtext("slot") or ""
        for role, obj in (("sender", sender), ("receiver", receiver)):
            if obj not in info.widgets:
                report.errors.append(Finding("ui-connection", filename, obj, f"{role} is not a widget of this .ui"))
        for obj, member in ((sender, signal), (receiver, slot)):
            cls = info.widgets.get(obj)
            if not cls or cls in standard_qt:
                continue
            for inv in inventories:
                bare = member.split("(", 1)[0]
                status, _owner, deprecated = inv.member(cls, bare)
                twin = inv.near_miss(cls, bare) if status == "unknown" else None
                if status == "missing" or twin:
                    hint = f"; did you mean {twin}?" if twin else ""
                    report.errors.append(Finding("ui-connection", filename, f"{obj}.{member}",
                                                 f"{cls} has no such signal/slot{hint}", inv.label))
                elif deprecated:
                    report.errors.append(Finding("deprecated", filename, f"{obj}.{member}", "deprecated",
                                                 inv.label))
        if signal.startswith("mrmlSceneChanged") and slot.startswith("setMRMLScene") and sender == info.top_name:
            connected_scene.add(receiver)
    for name, cls in info.widgets.items():
        if name == info.top_name or not cls.startswith(("qMRML", "qSlicer")):
            continue
        needs_scene = any(inv.member(cls, "setMRMLScene")[0] == "found" for inv in inventories)
        if needs_scene and name not in connected_scene and name not in scene_set_in_code:
            report.errors.append(Finding("mrml-scene", filename, name, f"{cls} needs the top widget's "
                                         "mrmlSceneChanged(vtkMRMLScene*) connected to its setMRMLScene slot"))
    # properties of inventoried widgets (dynamic properties excluded)
    for w in root.iter("widget"):
        cls = w.get("class", "")
        if cls in standard_qt:
            continue
        for p in w.findall("property"):
            if p.get("stdset") == "0":
                continue
            for inv in inventories:
                status, _owner, deprecated = inv.member(cls, p.get("name", ""))
                twin = inv.near_miss(cls, p.get("name", "")) if status == "unknown" else None
                if status == "missing" or twin:
                    hint = f"; did you mean {twin}?" if twin else ""
                    report.errors.append(Finding("ui-class", filename, f"{w.get('name')}.{p.get('name')}",
                                                 f"{cls} has no such property{hint}", inv.label))
                elif deprecated:
                    report.errors.append(Finding("deprecated", filename, f"{w.get('name')}.{p.get('name')}",
                                                 "deprecated property", inv.label))
    return report


# --------------------------------------------------------------------------------------------------------------
# Parameter node bindings


def _decorated_classes(source: str, decorator: str) -> dict[str, dict[str, ast.AST]]:
    out: dict[str, dict[str, ast.AST]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and any((_dotted(d) or [""])[-1] == decorator for d in node.decorator_list):
            out[node.name] = {item.target.id: item.annotation for item in node.body
                              if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)}
    return out


def parameter_node_fields(source: str, packs: dict[str, dict[str, ast.AST]] | None = None
                          ) -> dict[str, dict[str, ast.AST]]:
    """``@parameterNodeWrapper`` classes -> field name -> annotation. A field whose type is a ``@parameterPack``
    class (from ``packs``, any checked file) is expanded into dotted names (``study.phantomSeed``), which is how
    Slicer's connectGui resolves a SlicerParameterName into a pack (parameterNodeWrapper/wrapper.py)."""
    packs = packs or {}
    out: dict[str, dict[str, ast.AST]] = {}
    for name, fields in _decorated_classes(source, "parameterNodeWrapper").items():
        flat: dict[str, ast.AST] = {}
        for field_name, annotation in fields.items():
            flat[field_name] = annotation
            flat.update(_pack_fields(field_name, annotation, packs, depth=0))
        out[name] = flat
    return out


def _pack_fields(prefix: str, annotation: ast.AST, packs: dict[str, dict[str, ast.AST]], depth: int
                 ) -> dict[str, ast.AST]:
    base, _extras = _annotation_parts(annotation)
    if base not in packs or depth > 5:
        return {}
    out: dict[str, ast.AST] = {}
    for member, member_annotation in packs[base].items():
        out[f"{prefix}.{member}"] = member_annotation
        out.update(_pack_fields(f"{prefix}.{member}", member_annotation, packs, depth + 1))
    return out


def parameter_packs(sources) -> dict[str, dict[str, ast.AST]]:
    """Every ``@parameterPack`` class of the checked files: class name -> field -> annotation."""
    packs: dict[str, dict[str, ast.AST]] = {}
    for source in sources:
        packs.update(_decorated_classes(source, "parameterPack"))
    return packs


def _annotation_parts(annotation: ast.AST) -> tuple[str, list[str]]:
    """(base type name, names of the Annotated extras) of ``Annotated[int, WithinRange(...)]`` or ``int``."""
    if isinstance(annotation, ast.Subscript) and (_dotted(annotation.value) or [""])[-1] == "Annotated":
        elts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        base = elts[0]
        extras = [(_dotted(e.func) or [""])[-1] for e in elts[1:] if isinstance(e, ast.Call)]
        return (_dotted(base) or [""])[-1], extras
    return (_dotted(annotation) or [""])[-1], []


def check_parameter_bindings(ui_text: str, sources: dict[str, str], ui_filename: str = "ui") -> Report:
    report = Report()
    info = parse_ui(ui_text)
    fields: dict[str, ast.AST] = {}
    packs = parameter_packs(sources.values())
    for source in sources.values():
        for cls_fields in parameter_node_fields(source, packs).values():
            fields.update(cls_fields)
    if info.parameter_bindings and not fields:
        report.errors.append(Finding("parameter", ui_filename, "parameterNodeWrapper",
                                     "the .ui binds SlicerParameterName but no @parameterNodeWrapper class exists"))
        return report
    for widget, param in info.parameter_bindings.items():
        if param not in fields:
            report.errors.append(Finding("parameter", ui_filename, param, f"widget '{widget}' binds a parameter "
                                         "that is not a field of the @parameterNodeWrapper class"))
            continue
        wclass = info.widgets[widget]
        base, extras = _annotation_parts(fields[param])
        if wclass == "qMRMLNodeComboBox":
            node_types = [s.text for s in info.properties[widget].get("nodeTypes", ET.Element("x")).iter("string")]
            if not base.startswith("vtkMRML"):
                report.errors.append(Finding("parameter", ui_filename, param, f"'{widget}' (qMRMLNodeComboBox) "
                                             f"needs a vtkMRML node field, the field is '{base}'"))
            elif base not in node_types:
                report.errors.append(Finding("parameter", ui_filename, param, f"field class {base} is not in "
                                             f"'{widget}' nodeTypes {node_types}"))
            continue
        accepted = PARAMETER_WIDGET_TYPES.get(wclass)
        if accepted is None:
            continue
        if base not in accepted:
            report.errors.append(Finding("parameter", ui_filename, param, f"'{widget}' ({wclass}) cannot show a "
                                         f"'{base}' field (accepted: {sorted(accepted)})"))
        if wclass in ("QComboBox", "ctkComboBox") and "Choice" not in extras:
            report.errors.append(Finding("parameter", ui_filename, param, f"'{widget}' ({wclass}) bound to a "
                                         f"'{base}' field needs a Choice([...]) annotation"))
    return report


# --------------------------------------------------------------------------------------------------------------
# CMake


def _load_update_tool():
    path = REPO_ROOT / "tools" / "update_cmake_lists.py"
    spec = importlib.util.spec_from_file_location("update_cmake_lists", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def cmake_set_entries(cmake_text: str, variable: str, module_name: str = MODULE_NAME) -> list[str]:
    """Entries of ``set(variable ...)`` with ``${MODULE_NAME}`` substituted and comments dropped."""
    m = re.search(rf"set\(\s*{variable}\b(?P<body>.*?)\)", cmake_text, re.DOTALL)
    if m is None:
        return []
    lines = (line.split("#", 1)[0] for line in m.group("body").splitlines())
    entries = [tok for line in lines for tok in line.split()]
    return [e.replace("${MODULE_NAME}", module_name) for e in entries]


def check_cmake(module_dir: Path = MODULE_DIR, repo_root: Path = REPO_ROOT) -> Report:
    report = Report()
    cmake_path = module_dir / "CMakeLists.txt"
    where = str(cmake_path.relative_to(repo_root)) if cmake_path.is_relative_to(repo_root) else str(cmake_path)
    if not cmake_path.exists():
        report.errors.append(Finding("cmake", where, "CMakeLists.txt", "module CMake file is missing"))
        return report
    text = cmake_path.read_text(encoding="utf-8")
    tool = _load_update_tool()
    for variable, expected in (("MODULE_PYTHON_SCRIPTS", tool.expected_scripts(module_dir)),
                               ("MODULE_PYTHON_RESOURCES", tool.expected_resources(module_dir))):
        listed = cmake_set_entries(text, variable)
        for entry in sorted(set(expected) - set(listed)):
            report.errors.append(Finding("cmake", where, entry, f"file exists but is not listed in {variable} "
                                         "(run tools/update_cmake_lists.py)"))
        for entry in sorted(set(listed) - set(expected)):
            if not (module_dir / entry).exists():
                report.errors.append(Finding("cmake", where, entry, f"listed in {variable} but does not exist"))
            else:
                report.errors.append(Finding("cmake", where, entry, f"listed in {variable} but is not a module "
                                             "file by the rules of tools/update_cmake_lists.py"))
        if len(listed) != len(set(listed)):
            report.errors.append(Finding("cmake", where, variable, "an entry is listed twice"))
    required = {
        "slicerMacroBuildScriptedModule": r"slicerMacroBuildScriptedModule\(",
        "SCRIPTS ${MODULE_PYTHON_SCRIPTS}": r"SCRIPTS\s+\$\{MODULE_PYTHON_SCRIPTS\}",
        "RESOURCES ${MODULE_PYTHON_RESOURCES}": r"RESOURCES\s+\$\{MODULE_PYTHON_RESOURCES\}",
        "WITH_GENERIC_TESTS": r"WITH_GENERIC_TESTS",
        "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)":
            r"if\(BUILD_TESTING\).*slicer_add_python_unittest\(\s*SCRIPT\s+\$\{MODULE_NAME\}\.py\s*\)",
    }
    for label, pattern in required.items():
        if not re.search(pattern, text, re.DOTALL):
            report.errors.append(Finding("cmake", where, label, "required by Slicer's scripted module template"))
    top = repo_root / "CMakeLists.txt"
    top_text = top.read_text(encoding="utf-8") if top.exists() else ""
    top_required = {
        "cmake_minimum_required": r"cmake_minimum_required\(",
        f"project({MODULE_NAME})": rf"project\(\s*{MODULE_NAME}\s*\)",
        "find_package(Slicer REQUIRED)": r"find_package\(\s*Slicer\s+REQUIRED\s*\)",
        "include(${Slicer_USE_FILE})": r"include\(\s*\$\{Slicer_USE_FILE\}\s*\)",
        f"add_subdirectory({MODULE_NAME})": rf"add_subdirectory\(\s*{MODULE_NAME}\s*\)",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})": r"include\(\s*\$\{Slicer_EXTENSION_GENERATE_CONFIG\}\s*\)",
        "include(${Slicer_EXTENSION_CPACK})": r"include\(\s*\$\{Slicer_EXTENSION_CPACK\}\s*\)",
    }
    for var in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        top_required[f"EXTENSION_{var}"] = rf'set\(\s*EXTENSION_{var}\s+"[^"]+"\s*\)'
    for label, pattern in top_required.items():
        if not re.search(pattern, top_text):
            report.errors.append(Finding("cmake", "CMakeLists.txt", label, "required by Slicer's extension "
                                                                           "template"))
    return report


# --------------------------------------------------------------------------------------------------------------
# Runtime dependencies of what Slicer loads

# What a Slicer installation provides besides the standard library (the project allows only these at runtime).
SLICER_PROVIDED = frozenset({"numpy", "scipy", "SimpleITK", "pydicom", "slicer", "qt", "ctk", "vtk", "sitkUtils",
                             "SampleData", "DICOMLib", "slicerqt", "LiverMetsReviewLib", "LiverMetsReviewSlicer",
                             MODULE_NAME})


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside ``try: ... except ImportError`` (an optional extra handled with a clear message)?"""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
                (_dotted(h.type) or [""])[-1] in ("ImportError", "ModuleNotFoundError", "Exception")
                for h in node.handlers if h.type is not None):
            return True
    return False


def check_runtime_imports(module_dir: Path = MODULE_DIR, repo_root: Path = REPO_ROOT) -> Report:
    """Every module-level import in the module folder is the standard library or something Slicer ships (an error
    otherwise: the module would not load). A function-level import of anything else is a note unless guarded by
    ``except ImportError`` (e.g. matplotlib for the CLI's figures): it fails only when that function runs."""
    report = Report()
    stdlib = set(sys.stdlib_module_names)
    files = [p for p in module_dir.rglob("*.py") if "__pycache__" not in p.parts and "Testing" not in p.parts
             and not any(part.endswith(".egg-info") for part in p.parts)]
    for path in sorted(files):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in stdlib or top in SLICER_PROVIDED:
                    continue
                where = f"{path.relative_to(repo_root)}:{node.lineno}"
                in_function = any(isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef))
                                  for a in _ancestors(node, parents))
                if in_function and _guarded(node, parents):
                    continue
                if in_function:  # breaks only when called (CLI-only code): worth a look, not an error
                    report.notes.append(Finding("runtime-import", where, top, "not shipped with Slicer: fails if "
                                                "this function runs in Slicer; guard it with 'except ImportError'"))
                    continue
                report.errors.append(Finding("runtime-import", where, top, "not shipped with Slicer and imported "
                                             "when the module loads: import it inside the function that needs it"))
    return report


def check_self_test(module_dir: Path = MODULE_DIR, module_name: str = MODULE_NAME) -> Report:
    """Slicer finds a scripted module's test by name in the module file's namespace: ``ScriptedLoadableModule.runTest``
    (Reload and Test) takes ``getattr(module, "<ModuleName>Test")`` and ``slicer.testing.runUnitTest`` (the ctest of
    ``slicer_add_python_unittest``) loads the TestCase classes of that module. So ``<ModuleName>Test`` is defined
    in the module file or imported there from the ``<ModuleName>Slicer`` file that defines it, as a subclass of
    ScriptedLoadableModuleTest."""
    report = Report()
    class_name = f"{module_name}Test"
    module_path = module_dir / f"{module_name}.py"
    where = f"{module_name}/{module_path.name}"
    if not module_path.exists():
        report.errors.append(Finding("self-test", where, class_name, "the module file is missing"))
        return report
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    defining: Path | None = module_path if _defines_test_class(tree, class_name) else None
    for node in tree.body:  # module level only: Slicer reads the namespace after the file ran
        if defining is None and isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and any(a.name == class_name and a.asname in (None, class_name) for a in node.names):
            candidate = module_dir.joinpath(*node.module.split(".")).with_suffix(".py")
            if not candidate.exists():
                report.errors.append(Finding("self-test", where, node.module, f"{class_name} is imported from a "
                                             "file that is not in the module folder"))
                return report
            defining = candidate
    if defining is None:
        report.errors.append(Finding("self-test", where, class_name, "not in the module file's namespace: Slicer's "
                                     "Reload and Test and the ctest cannot find the self-test (import it there)"))
    elif defining != module_path and not _defines_test_class(ast.parse(defining.read_text(encoding="utf-8")),
                                                             class_name):
        report.errors.append(Finding("self-test", str(defining.relative_to(module_dir.parent)), class_name,
                                     "the file imported for the self-test does not define it as a "
                                     "ScriptedLoadableModuleTest subclass"))
    return report


def _defines_test_class(tree: ast.Module, class_name: str) -> bool:
    return any(isinstance(node, ast.ClassDef) and node.name == class_name
               and any((_dotted(b) or [""])[-1] == "ScriptedLoadableModuleTest" for b in node.bases)
               for node in tree.body)


def _ancestors(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    out = []
    while node in parents:
        node = parents[node]
        out.append(node)
    return out


# --------------------------------------------------------------------------------------------------------------
# Everything


def module_python_files(module_dir: Path = MODULE_DIR) -> list[Path]:
    """The Slicer-side Python files (the core is checked separately: it must not import Slicer at all)."""
    files = [module_dir / f"{MODULE_NAME}.py"]
    files += sorted((module_dir / f"{MODULE_NAME}Slicer").glob("*.py"))
    return [f for f in files if f.exists()]


UI_FILE_LITERAL = re.compile(r"^UI/[\w.-]+\.ui$")


def ui_files_named_in(source: str) -> list[str]:
    """String constants "UI/X.ui" in a Python file (a section's UI_FILE, a loadUI argument)."""
    return [node.value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and UI_FILE_LITERAL.match(node.value)]


def check_extension(repo_root: Path = REPO_ROOT, api_dir: Path = DEFAULT_API_DIR) -> Report:
    """Every .ui under Resources/UI and every Slicer-side Python file. ``self.ui.X`` in a file that names its .ui
    ("UI/StudySection.ui") is checked against that .ui; ``<anything>.ui.X`` elsewhere against all of them."""
    inventories = load_inventories(api_dir)
    module_dir = repo_root / MODULE_NAME
    report = Report()
    resources = module_dir / "Resources"
    sources = {str(p.relative_to(repo_root)): p.read_text(encoding="utf-8") for p in module_python_files(module_dir)}
    ui_texts = {str(p.relative_to(resources)): p.read_text(encoding="utf-8")
                for p in sorted((resources / "UI").glob("*.ui"))}
    if not ui_texts:
        report.errors.append(Finding("resource", str(resources / "UI"), "*.ui", "the module has no .ui file"))
    ui_names = {key: set(parse_ui(text).widgets) for key, text in ui_texts.items()}
    all_names = set().union(*ui_names.values()) if ui_names else set()
    scene_set = scene_widgets_set_in_code(sources.values())
    for key, text in ui_texts.items():
        ui_rel = str((resources / key).relative_to(repo_root))
        report.extend(check_ui(text, ui_rel, inventories, scene_set))
        report.extend(check_parameter_bindings(text, sources, ui_rel))
    for filename, source in sources.items():
        named = [n for n in ui_files_named_in(source) if n in ui_names]
        own = set().union(*(ui_names[n] for n in named)) if named else all_names
        report.extend(check_python_source(source, filename, inventories, ui_names=own, all_ui_names=all_names,
                                          resources_dir=resources, other_sources=sources))
    report.extend(check_cmake(module_dir, repo_root))
    report.extend(check_runtime_imports(module_dir, repo_root))
    report.extend(check_self_test(module_dir))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Static checks of the LiverMetsReview Slicer module")
    parser.add_argument("--api-dir", type=Path, default=DEFAULT_API_DIR)
    parser.add_argument("--repo", type=Path, default=REPO_ROOT)
    args = parser.parse_args(argv)
    report = check_extension(args.repo, args.api_dir)
    print(report.text())
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
