"""The core's own contracts: it never imports Slicer, the role table is complete, Series validates."""

from __future__ import annotations

import ast
import subprocess
import sys
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


def _imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved against ``package``), including
    ``from pkg import name`` as ``pkg.name`` (it may be a submodule) and imports inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize(("layer", "forbidden"), [("maps", ("phantom",)), ("physics", ("phantom", "maps"))])
def test_inverse_and_physics_never_import_the_phantom(layer, forbidden):
    """The maps (inverse) and the shared physics stand on their own: a map never borrows the simulator's code."""
    root = MODULE_DIR / "LiverMetsReviewLib"
    files = sorted((root / layer).rglob("*.py"))
    assert files, f"{layer} package not found"
    bad = tuple(f"LiverMetsReviewLib.{f}" for f in forbidden)
    offenders = {}
    for f in files:
        package = ".".join(("LiverMetsReviewLib", *f.relative_to(root).parent.parts))
        hits = sorted(m for m in _imported_modules(f, package) if m in bad or m.startswith(tuple(b + "." for b in bad)))
        if hits:
            offenders[f.name] = hits
    assert offenders == {}


def test_importing_every_map_module_loads_no_phantom_module():
    """Also indirectly (through a shared helper): importing all of maps/ leaves the phantom package unloaded."""
    maps_dir = MODULE_DIR / "LiverMetsReviewLib" / "maps"
    mods = [f"LiverMetsReviewLib.maps.{p.stem}" for p in sorted(maps_dir.glob("*.py"))]
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n    importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('LiverMetsReviewLib.phantom')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_labels_on_grid_owns_its_memory():
    """The label array outlives the resampled image it came from (a view of a freed image would be garbage)."""
    import gc

    from LiverMetsReviewLib.region_stats import labels_on_grid

    truth = np.zeros((12, 20, 16), np.uint8)
    truth[3:9, 5:15, 4:12] = 7
    labels = sitk.GetImageFromArray(truth)
    labels.SetSpacing((2.0, 2.0, 3.0))
    arr = labels_on_grid(labels, labels, (4.0, 0.0, 0.0))  # shifted 4 mm = 2 voxels along x
    gc.collect()
    for _ in range(5):  # reuse the freed memory if anything still points into it
        sitk.GetArrayFromImage(sitk.Image(16, 20, 12, sitk.sitkUInt8) + 200)
    assert arr.flags.owndata or arr.base is not None and arr.base.flags.owndata
    expected = np.zeros_like(truth)
    expected[3:9, 5:15, 6:14] = 7
    np.testing.assert_array_equal(arr, expected)
