"""The core's own contracts: it never imports Slicer, the role table is complete, Series validates."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import MODULE_DIR
from LiverMetsReviewLib import roles
from LiverMetsReviewLib.series import Series

FORBIDDEN = {"slicer", "qt", "ctk", "vtkSlicer", "sitkUtils", "slicerqt", "mrml"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_slicer():
    files = sorted((MODULE_DIR / "LiverMetsReviewLib").rglob("*.py"))
    assert files, "core package not found"
    offenders = {str(f.relative_to(MODULE_DIR)): sorted(_imported_roots(f) & FORBIDDEN) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_roles_cover_brief_table():
    expected = {
        "t1_in_phase", "t1_opposed_phase", "dixon_water", "dixon_fat", "multi_echo_gre", "t2", "dwi",
        "adc_scanner", "t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary",
        "unassigned",
    }
    assert set(roles.role_ids()) == expected
    assert roles.role_ids()[-1] == roles.UNASSIGNED
    assert roles.role_label("t1_hepatobiliary") == "Hepatobiliary phase"


def test_series_rejects_mismatched_stack_meta():
    img = sitk.GetImageFromArray(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="2 stacks but 1"):
        Series("dwi", [img, img], [{"b_value": 0}])
    s = Series("dwi", [img, img], [{"b_value": 50}, {"b_value": 800}])
    assert s.b_values == [50.0, 800.0]
