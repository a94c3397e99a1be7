"""Thresholds and tolerances of the maps, read from ``resources/maps_defaults.json`` (knowledge is data)."""

from __future__ import annotations

from typing import Any

from ..resources import load_json

DEFAULTS_FILE = "maps_defaults.json"


def defaults(section: str) -> dict[str, Any]:
    """One section of the maps defaults (``adc``, ``chemical_shift``, ``dixon``, ``enhancement``...)."""
    data = load_json(DEFAULTS_FILE)
    if section not in data:  # pragma: no cover - packaging error
        raise KeyError(f"{DEFAULTS_FILE} has no section '{section}'")
    return data[section]
