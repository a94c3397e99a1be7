#!/usr/bin/env python3
"""Regenerate the file lists of LiverMetsReview/CMakeLists.txt from the file system.

Slicer installs only the files a scripted module lists in its CMake file, so a forgotten file works in the
source tree and fails in the packaged extension. This tool keeps the lists complete (sorted, relative to the
module folder); ``--check`` exits 1 when the file on disk differs from what would be written.

Rules (also used by Testing/Python/slicer_static.py, which imports this file):
  scripts   : every ``*.py`` of the module folder except under ``Testing/`` (Slicer tests are registered
              separately), caches and ``*.egg-info``.
  resources : every file under ``Resources/`` and every non-Python file under ``LiverMetsReviewLib/resources/``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO_ROOT / "LiverMetsReview"
CMAKE_FILE = MODULE_DIR / "CMakeLists.txt"
LISTS = ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES")
_SKIP_PARTS = {"__pycache__", "Testing", ".pytest_cache", ".ruff_cache"}


def _wanted(path: Path, module_dir: Path) -> bool:
    parts = path.relative_to(module_dir).parts
    if any(p in _SKIP_PARTS or p.endswith(".egg-info") or p.startswith(".") for p in parts):
        return False
    return path.is_file() and not path.name.endswith((".pyc", ".pyo", "~", ".swp"))


def expected_scripts(module_dir: Path = MODULE_DIR) -> list[str]:
    """Python files the module must install, relative to ``module_dir`` (POSIX separators, sorted)."""
    return sorted(p.relative_to(module_dir).as_posix() for p in module_dir.rglob("*.py") if _wanted(p, module_dir))


def expected_resources(module_dir: Path = MODULE_DIR) -> list[str]:
    """Data files the module must install, relative to ``module_dir`` (sorted)."""
    found = [p for p in (module_dir / "Resources").rglob("*") if _wanted(p, module_dir)]
    lib_res = module_dir / "LiverMetsReviewLib" / "resources"
    found += [p for p in lib_res.rglob("*") if p.suffix != ".py" and _wanted(p, module_dir)]
    return sorted(p.relative_to(module_dir).as_posix() for p in found)


def _block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?P<head>[ \t]*# BEGIN GENERATED {name}[^\n]*\n)(?P<body>.*?)(?P<tail>[ \t]*# END GENERATED {name})",
        re.DOTALL,
    )


def listed(cmake_text: str, name: str) -> list[str]:
    """Entries between the markers of list ``name`` (comments and blank lines ignored)."""
    match = _block_pattern(name).search(cmake_text)
    if match is None:
        raise ValueError(f"CMake file has no '# BEGIN GENERATED {name}' ... '# END GENERATED {name}' block")
    lines = (line.split("#", 1)[0].strip() for line in match.group("body").splitlines())
    return [line for line in lines if line]


def render(cmake_text: str, lists: dict[str, list[str]]) -> str:
    """``cmake_text`` with each generated block replaced by its entries, two-space indented like the template."""
    for name, entries in lists.items():
        pattern = _block_pattern(name)
        if pattern.search(cmake_text) is None:
            raise ValueError(f"CMake file has no '# BEGIN GENERATED {name}' block to fill")
        body = "".join(f"  {entry}\n" for entry in entries)
        cmake_text = pattern.sub(lambda m, body=body: m.group("head") + body + m.group("tail"), cmake_text, count=1)
    return cmake_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the lists are up to date")
    parser.add_argument("--module-dir", type=Path, default=MODULE_DIR)
    args = parser.parse_args(argv)
    cmake_file = args.module_dir / "CMakeLists.txt"
    old = cmake_file.read_text(encoding="utf-8")
    new = render(old, {
        "MODULE_PYTHON_SCRIPTS": expected_scripts(args.module_dir),
        "MODULE_PYTHON_RESOURCES": expected_resources(args.module_dir),
    })
    if args.check:
        if new != old:
            print(f"{cmake_file} is out of date: run tools/update_cmake_lists.py")
            return 1
        print(f"{cmake_file} is up to date")
        return 0
    if new != old:
        cmake_file.write_text(new, encoding="utf-8")
        print(f"updated {cmake_file}")
    else:
        print(f"{cmake_file} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
