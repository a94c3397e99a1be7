"""Access to the knowledge files shipped in ``resources/`` (knowledge is data, not code)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

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


def read_json_file(path: str | Path, what: str) -> Any:
    """A user-supplied JSON file, or a :class:`LiverMetsError` that names ``what`` it should have been."""
    from .errors import LiverMetsError  # local: errors is tiny, but keep this module import-light

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LiverMetsError(f"{path} not found: give the path of {what}") from exc
    except UnicodeDecodeError as exc:
        raise LiverMetsError(f"{path} is not a text file: give the path of {what}") from exc
    except json.JSONDecodeError as exc:
        raise LiverMetsError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}): expected {what}") from exc
