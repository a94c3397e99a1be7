"""Shared pytest fixtures: paths to the repository, the shared real-data folder, and a cached phantom."""

from __future__ import annotations

from pathlib import Path

import pytest

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
