"""Shared pytest fixtures: paths to the repository, the shared real-data folder, and a cached phantom."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI (CI=true) replays a fixed set of drawn examples, so a submission lands or not on its own merits; a developer's
# run draws new ones each time and keeps exploring (the fuzz suite found real header bugs that way). Every failure
# found is kept as an explicit @example.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_DATA = SHARED_DIR / "data"
MODULE_DIR = REPO_ROOT / "LiverMetsReview"


def shared_path(*parts: str) -> Path:
    """Path inside ``../shared``; skips the calling test with a reason when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real data and Slicer inventories live in ../shared beside the repo)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def phantom_dicom(tmp_path_factory) -> Path:
    """The small phantom written once per session as DICOM (one folder per series under ``dicom/``).

    Read-only for tests: copy the series you change (see test_hardening.py, test_fuzz_dicom.py).
    """
    from LiverMetsReviewLib.phantom import generate_phantom, write_phantom

    out = tmp_path_factory.mktemp("phantom_dicom")
    write_phantom(generate_phantom(seed=3, size="small"), out, "dicom")
    return out / "dicom"
