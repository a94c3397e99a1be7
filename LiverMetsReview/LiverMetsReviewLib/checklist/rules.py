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
NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}
SHOWN = {"<=": "\u2264", ">=": "\u2265"}


def phi(z: float) -> float:
    """Standard normal cumulative probability."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def decimals(threshold: Mapping[str, Any]) -> int:
    """Decimals worth printing: those of the threshold's uncertainty, and enough to show the threshold itself."""
    own = next((d for d in range(4) if abs(round(threshold["value"], d) - threshold["value"]) < 1e-9), 3)
    return max(0, -math.floor(math.log10(threshold["uncertainty"])), own)


def readable(c: Mapping[str, Any], t: Mapping[str, Any], value: float | None = None) -> str:
    """``name value operator threshold unit``, e.g. ``HBP lesion-to-liver ratio 0.51 < 0.90``: the relation as
    measured (a failing ``<`` reads ``>=``), the unit omitted when it is 1."""
    if c["holds"] is None:
        return f"{c['name']}: not measured ({c['why']})"
    d = decimals(t)
    unit = t.get("unit_short", t.get("unit", ""))
    unit = "" if unit in ("", "1") else f" {unit}"
    op = c["operator"] if c["holds"] else NEGATED[c["operator"]]
    v = c["value"] if value is None else value  # the measured value, not its stored rounding (no double rounding)
    return f"{c['name']} {v:.{d}f} {SHOWN.get(op, op)} {c['threshold']:.{d}f}{unit}"


def item_condition(cond: list[str], items: Mapping[str, tuple[str | None, float | None, str]]) -> dict[str, Any]:
    """``["item:<id>", "=", answer]``: an earlier item's effective answer (the reader's, else the suggestion) with
    its confidence (1 when the reader answered), e.g. pseudocirrhosis reading the low-HBP-function item."""
    item_id, _, want = cond
    item_id = item_id.removeprefix("item:")
    answer, conf, name = items.get(item_id, (None, None, item_id))
    out = {"value_key": cond[0], "name": name, "value": answer, "operator": "=", "threshold_id": None,
           "threshold": want, "uncertainty": None, "unit": "", "source": []}
    if answer not in ("yes", "no"):
        out.update(holds=None, confidence=None, why=f"the item '{item_id}' is {answer or 'not applicable'}",
                   text=f"{name}: {answer or 'not applicable'}")
        return out
    out.update(holds=answer == want, confidence=conf, text=f"{name}: {answer}")
    return out


def condition(cond: list[str], values: Mapping[str, float | None], thresholds: Mapping[str, Any],
              why: Mapping[str, str], names: Mapping[str, str] | None = None,
              items: Mapping[str, tuple[str | None, float | None, str]] | None = None) -> dict[str, Any]:
    if cond[0].startswith("item:"):
        return item_condition(cond, items or {})
    key, op, tid = cond
    t = thresholds[tid]
    v = values.get(key)
    out = {"value_key": key, "name": (names or {}).get(key, key), "value": None if v is None else round(v, 4),
           "operator": op, "threshold_id": tid, "threshold": t["value"], "uncertainty": t["uncertainty"],
           "unit": t.get("unit", ""), "source": t["source"]}
    if v is None:
        out.update(holds=None, confidence=None, why=why.get(key, "not measured"))
    else:
        out["holds"] = bool(OPS[op](v, t["value"]))
        out["confidence"] = round(phi(abs(v - t["value"]) / t["uncertainty"]), 3)
    out["text"] = readable(out, t, v)
    return out


def _kth(confs: list[float], k: int) -> float:
    return sorted(confs, reverse=True)[k - 1]


def _combine_part(kind: str, conds: list[dict[str, Any]], at_least: int = 0) -> tuple[bool | None, float | None]:
    """One part of a rule (its ``all``, ``any`` or ``at_least``/``of`` conditions): (holds or None, confidence)."""
    true = [c["confidence"] for c in conds if c["holds"] is True]
    false = [c["confidence"] for c in conds if c["holds"] is False]
    unknown = sum(c["holds"] is None for c in conds)
    if kind == "all":
        if false:
            return False, max(false)
        return (None, None) if unknown else (True, min(true))
    if kind == "any":
        if true:
            return True, max(true)
        return (False, min(false)) if false else (None, None)
    if len(true) >= at_least:
        return True, _kth(true, at_least)
    if len(true) + unknown < at_least:
        return False, _kth(false, len(conds) - at_least + 1)
    return None, None


def combine(rule: Mapping[str, Any], conds: list[dict[str, Any]]) -> tuple[bool | None, float | None]:
    """(holds or None when undecidable, confidence of the decision). ``conds`` are in the order ``all``, ``any``,
    ``of``; a rule with several parts holds when every part holds (confidence: the weakest part), fails when one
    fails (the most certain failing part), and is undecidable otherwise."""
    parts, i = [], 0
    for kind in ("all", "any", "of"):
        n = len(rule.get(kind, []))
        if kind in rule:
            parts.append(_combine_part(kind, conds[i:i + n], int(rule.get("at_least", 0))))
        i += n
    failed = [c for h, c in parts if h is False]
    if failed:
        return False, max(failed)
    if any(h is None for h, _ in parts):
        return None, None
    return True, min(c for _, c in parts)


def evaluate_rule(rule: Mapping[str, Any], values: Mapping[str, float | None], thresholds: Mapping[str, Any],
                  why: Mapping[str, str], names: Mapping[str, str] | None = None,
                  items: Mapping[str, tuple[str | None, float | None, str]] | None = None
                  ) -> tuple[str, float | None, list[dict[str, Any]]]:
    """Suggested answer (yes / no / not assessable), its confidence and the evidence (one row per condition:
    the machine fields and ``text``, its readable form). ``items``: earlier items' (answer, confidence, name)."""
    conds = [condition(c, values, thresholds, why, names, items) for k in ("all", "any", "of")
             for c in rule.get(k, [])]
    holds, conf = combine(rule, conds)
    if holds is None:
        return "not assessable", None, conds
    return ("yes" if holds else "no"), conf, conds


def explain(conds: list[dict[str, Any]]) -> str:
    """The evidence as one readable line, e.g. ``HBP lesion-to-liver ratio 0.51 < 0.90 (met, confidence 0.99)``."""
    return "; ".join(c["text"] if c["holds"] is None else
                     f"{c['text']} ({'met' if c['holds'] else 'not met'}"
                     + ("" if c["confidence"] is None else f", confidence {c['confidence']:.2f}") + ")"
                     for c in conds)
