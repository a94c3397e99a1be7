"""The ExtensionsIndex catalog entry (LiverMetsReview.json) and the extension metadata in CMake agree and are valid.

The schema is Slicer's own (slicer-extension-catalog-entry-schema-v1.0.2.json, in ../shared/slicer-schemas).
"""

from __future__ import annotations

import ast
import json
import re
import struct
import subprocess

import jsonschema
import pytest

from conftest import MODULE_DIR, REPO_ROOT, shared_path

ENTRY_PATH = REPO_ROOT / "LiverMetsReview.json"
SCHEMA_NAME = "slicer-extension-catalog-entry-schema-v1.0.2.json"
RAW_PREFIX = "https://raw.githubusercontent.com/livermetsreview/LiverMetsReview/main/"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(shared_path("slicer-schemas", SCHEMA_NAME).read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def entry() -> dict:
    return json.loads(ENTRY_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cmake_vars() -> dict[str, str]:
    text = (REPO_ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    return dict(re.findall(r'set\(\s*(EXTENSION_\w+)\s+"([^"]*)"\s*\)', text))


def test_entry_is_valid_against_slicer_schema(validator, entry):
    errors = sorted(validator.iter_errors(entry), key=str)
    assert not errors, [e.message for e in errors]
    assert entry["$schema"].endswith(SCHEMA_NAME + "#")


def test_schema_rejects_broken_entries(validator, entry):
    """The validation is real: the same entry with a typo'd key, no category or a bad tier is refused."""
    typo = {**entry, "scm_revison": "main"}
    no_category = {k: v for k, v in entry.items() if k != "category"}
    bad_tier = {**entry, "tier": 7}
    for broken in (typo, no_category, bad_tier):
        assert list(validator.iter_errors(broken))


def test_entry_matches_the_extension(entry, cmake_vars):
    # ExtensionsIndex files are named after the extension (the CMake project).
    top = (REPO_ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    project = re.search(r"project\(\s*(\w+)\s*\)", top).group(1)
    assert ENTRY_PATH.stem == project == "LiverMetsReview"
    homepage = cmake_vars["EXTENSION_HOMEPAGE"]
    assert entry["scm_url"] in (homepage + ".git", homepage)
    assert entry["scm_revision"] == "main" and entry["build_dependencies"] == []
    assert cmake_vars["EXTENSION_DEPENDS"] == "NA"


def test_category_matches_the_module(entry):
    """The catalog category is the module's category in Slicer's module selector."""
    tree = ast.parse((MODULE_DIR / "LiverMetsReview.py").read_text(encoding="utf-8"))
    categories = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "categories" for t in node.targets):
            categories += [c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)
                           and isinstance(c.value, str) and c.value != "qSlicerAbstractCoreModule"]
    assert categories == [entry["category"]]


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_icon_and_screenshot_urls_point_into_this_repository(cmake_vars):
    icon_url = cmake_vars["EXTENSION_ICONURL"]
    assert icon_url.startswith(RAW_PREFIX)
    icon = REPO_ROOT / icon_url[len(RAW_PREFIX):]
    assert icon == REPO_ROOT / "Resources" / "Icons" / "LiverMetsReview.png"
    assert _png_size(icon) == (128, 128)
    assert icon.relative_to(REPO_ROOT).as_posix() in _tracked_files()
    shot_urls = cmake_vars["EXTENSION_SCREENSHOTURLS"].split()
    assert shot_urls, "EXTENSION_SCREENSHOTURLS is empty"
    for shot_url in shot_urls:
        assert shot_url.startswith(RAW_PREFIX), shot_url
        shot = REPO_ROOT / shot_url[len(RAW_PREFIX):]
        assert shot.is_file(), f"{shot_url} names no file in this repository"
        width, height = _png_size(shot)  # also checks the PNG signature
        assert width >= 200 and height >= 200, f"{shot} is {width}x{height}: too small for a screenshot"
        # the raw URL serves committed files only
        assert shot.relative_to(REPO_ROOT).as_posix() in _tracked_files(), f"{shot} is not committed"
    assert "Resources/Screenshots/demo-montage.png" in [u[len(RAW_PREFIX):] for u in shot_urls]


def _tracked_files() -> set[str]:
    """Files git tracks in this repository (skips when the checkout has no git metadata)."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot tell which files a raw URL would serve")
    out = subprocess.run(["git", "ls-files", "Resources"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_module_icon_is_where_slicer_looks_for_it():
    """Slicer shows Resources/Icons/<ModuleName>.png next to the module's .py as the module icon."""
    assert _png_size(MODULE_DIR / "Resources" / "Icons" / "LiverMetsReview.png") == (128, 128)
