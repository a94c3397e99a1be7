"""Evaluate one evidence rule: three-valued logic (true / false / unknown) with a confidence per decision.

A condition ``[value key, operator, threshold id]`` is unknown when its value is missing. Its confidence is
``Phi(|value - threshold| / uncertainty)`` (``checklist.json`` "confidence" states the formula); ``all``,
``any`` and ``at_least`` combine conditions by order statistics of these confidences.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}  # a whitelist, never eval


def phi(z: float) -> float:
    """Standard normal cumulative probability."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def condition(cond: list[str], values: Mapping[str, float | None], thresholds: Mapping[str, Any],
              why: Mapping[str, str]) -> dict[str, Any]:
    key, op, tid = cond
    t = thresholds[tid]
    v = values.get(key)
    out = {"value_key": key, "value": None if v is None else round(v, 4), "operator": op, "threshold_id": tid,
           "threshold": t["value"], "uncertainty": t["uncertainty"], "unit": t.get("unit", ""),
           "source": t["source"]}
    if v is None:
        out.update(holds=None, confidence=None, why=why.get(key, "not measured"))
        return out
    out["holds"] = bool(OPS[op](v, t["value"]))
    out["confidence"] = round(phi(abs(v - t["value"]) / t["uncertainty"]), 3)
    return out


def _kth(confs: list[float], k: int) -> float:
    return sorted(confs, reverse=True)[k - 1]


def combine(rule: Mapping[str, Any], conds: list[dict[str, Any]]) -> tuple[bool | None, float | None]:
    """(holds or None when undecidable, confidence of the decision)."""
    true = [c["confidence"] for c in conds if c["holds"] is True]
    false = [c["confidence"] for c in conds if c["holds"] is False]
    unknown = sum(c["holds"] is None for c in conds)
    if "all" in rule:
        if false:
            return False, max(false)
        return (None, None) if unknown else (True, min(true))
    if "any" in rule:
        if true:
            return True, max(true)
        return (False, min(false)) if false else (None, None)
    k = int(rule["at_least"])
    n = len(conds)
    if len(true) >= k:
        return True, _kth(true, k)
    if len(true) + unknown < k:
        return False, _kth(false, n - k + 1)
    return None, None


def evaluate_rule(rule: Mapping[str, Any], values: Mapping[str, float | None], thresholds: Mapping[str, Any],
                  why: Mapping[str, str]) -> tuple[str, float | None, list[dict[str, Any]]]:
    """Suggested answer (yes / no / not assessable), its confidence and the evidence (one row per condition)."""
    conds = [condition(c, values, thresholds, why) for k in ("all", "any", "of") for c in rule.get(k, [])]
    holds, conf = combine(rule, conds)
    if holds is None:
        return "not assessable", None, conds
    return ("yes" if holds else "no"), conf, conds


def explain(conds: list[dict[str, Any]]) -> str:
    """The evidence as one readable line, e.g. ``lesion.adc_low 1010 < 1260 (yes, 0.99)``."""
    parts = []
    for c in conds:
        if c["holds"] is None:
            parts.append(f"{c['value_key']}: not measured ({c['why']})")
        else:
            parts.append(f"{c['value_key']} {c['value']:g} {c['operator']} {c['threshold']:g} {c['unit']} "
                         f"({'holds' if c['holds'] else 'fails'}, {c['confidence']:.2f})")
    return "; ".join(parts)
