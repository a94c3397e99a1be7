"""Phantom scenarios (``resources/phantom_scenarios.json``): liver background, anatomy changes, clinical context."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import LiverMetsError
from ..resources import load_json

SCENARIOS = "phantom_scenarios.json"


def scenario_names() -> list[str]:
    """Scenario identifiers in the data file's order."""
    return list(load_json(SCENARIOS)["scenarios"])


def describe_scenarios() -> list[dict[str, str]]:
    """Id, label and one-line description per scenario (for ``livermets phantom --list-scenarios``)."""
    return [{"id": k, "label": v["label"], "description": v["description"]}
            for k, v in load_json(SCENARIOS)["scenarios"].items()]


def get_scenario(name: str, liver_fat_percent: float | None = None) -> dict[str, Any]:
    """The scenario's settings (a copy), with the liver fat fraction overridden when given."""
    scenarios = load_json(SCENARIOS)["scenarios"]
    if name not in scenarios:
        raise LiverMetsError(f"scenario '{name}' is unknown; choose one of: {', '.join(scenarios)}")
    sc = copy.deepcopy(scenarios[name])
    sc["id"] = name
    if liver_fat_percent is not None:
        ff = float(liver_fat_percent)
        if not 0.0 <= ff <= 60.0:
            raise LiverMetsError(f"liver fat fraction {ff:g} % is outside 0-60 %; give a PDFF in percent, e.g. 18")
        sc["liver_pdff_percent"] = ff
        sc["clinical_context"]["known_steatosis"] = bool(sc["clinical_context"].get("known_steatosis")) or ff >= 10.0
    factor = float(sc.get("hepatocyte_uptake_factor", 1.0))
    if not 0.0 <= factor <= 2.0:
        raise LiverMetsError(f"scenario '{name}': hepatocyte_uptake_factor {factor:g} must lie in 0..2")
    return sc
