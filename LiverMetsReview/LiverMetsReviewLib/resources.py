"""Access to the knowledge files shipped in ``resources/`` (knowledge is data, not code)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

RESOURCE_DIR = Path(__file__).resolve().parent / "resources"


@cache
def load_json(name: str) -> dict:
    """Parsed content of ``resources/<name>``; a missing or broken file is a packaging error."""
    path = RESOURCE_DIR / name
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:  # pragma: no cover - packaging error
        raise RuntimeError(f"resource file {path} is missing from the installation") from exc
