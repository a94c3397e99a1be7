"""``resources/checklist.json``: load and check it (one sentence per problem), so rules can trust its shape."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..resources import load_json, read_json_file
from .values import DERIVED_OPS

FILE = "checklist.json"
FORMAT = "livermets-checklist"
SCOPES = ("lesion", "study")
GROUPS = ("hallmark", "pitfall", "clinical context", "technical")
ITEM_KEYS = ("id", "scope", "group", "name", "question", "help", "sources", "protocol", "series")


def _fail(where: str, what: str) -> None:
    raise LiverMetsError(f"{where}: {what}")


def _check_condition(doc: dict[str, Any], cond: Any, where: str, seen: set[str] | None = None) -> None:
    if not (isinstance(cond, list) and len(cond) == 3 and all(isinstance(c, str) for c in cond)):
        _fail(where, f"condition {cond!r} must be [value key, operator, threshold id]")
    key, op, thr = cond
    if key.startswith("item:"):  # an earlier item's answer
        if key[5:] not in (seen or set()) or op != "=" or thr not in ("yes", "no"):
            _fail(where, f"condition {cond!r} must read an earlier item as ['item:<id>', '=', 'yes' or 'no']")
        return
    if op not in doc["operators"]:
        _fail(where, f"operator '{op}' is not one of {', '.join(doc['operators'])}")
    if thr not in doc["thresholds"]:
        _fail(where, f"threshold '{thr}' is not defined in 'thresholds'")
    if not (key.startswith("study.") and key in doc["study_figures"]) and not key.startswith("lesion."):
        _fail(where, f"value '{key}' is neither a lesion value (lesion.*) nor a study figure listed in 'study_figures'")
    if "value_names" in doc and not isinstance(doc["value_names"].get(key), str):
        _fail(where, f"value '{key}' has no readable name in 'value_names'")


def _check_rule(doc: dict[str, Any], rule: dict[str, Any], where: str, seen: set[str] | None = None) -> None:
    kinds = [k for k in ("all", "any", "of") if k in rule]
    if not kinds:
        _fail(where, "an evidence rule needs 'all', 'any' or 'at_least' with 'of'")
    if "of" in rule and not isinstance(rule.get("at_least"), int):
        _fail(where, "'of' needs an integer 'at_least'")
    for k in kinds:
        for cond in rule[k]:
            _check_condition(doc, cond, where, seen)


def _answer_refs(refs: list[str]) -> list[tuple[str, str, str]]:
    out = []
    for r in refs:
        op = "!=" if "!=" in r else "=" if "=" in r else None
        if op:
            item, answer = r.split(op, 1)
            out.append((item, op, answer))
    return out


def _check_item(doc: dict[str, Any], item: dict[str, Any], seen: set[str], i: int) -> None:
    where = f"{FILE} item {item.get('id', i)!r}"
    missing = [k for k in ITEM_KEYS if k not in item]
    if missing:
        _fail(where, f"is missing {', '.join(missing)}")
    if item["id"] in seen:
        _fail(where, "the id is used twice; every item needs its own id")
    if item["scope"] not in SCOPES or item["group"] not in GROUPS:
        _fail(where, f"scope must be one of {', '.join(SCOPES)} and group one of {', '.join(GROUPS)}")
    unknown = [s for s in item["sources"] if s not in doc["sources"]]
    if unknown or not item["sources"]:
        _fail(where, f"cites unknown sources {unknown}; every item cites at least one id of 'sources'")
    protocols = {p["id"] for p in load_json("hanging_protocols.json")["protocols"]}
    if item["protocol"] not in protocols:
        _fail(where, f"hanging protocol '{item['protocol']}' is not in hanging_protocols.json")
    for ref_item, _, answer in _answer_refs(item.get("applies", []) + item.get("applies_any", [])):
        if ref_item not in seen:
            _fail(where, f"'applies' reads item '{ref_item}', which must come earlier in the list")
        if answer not in doc["suggestions"] + doc["answers"]:
            _fail(where, f"'applies' compares with '{answer}', not an answer")
    if "evidence" in item:
        _check_rule(doc, item["evidence"], where, seen)
    seen.add(item["id"])


def _check_impression(doc: dict[str, Any], ids: set[str]) -> None:
    rules = doc["impression"]["precedence"]
    if not rules or not rules[-1].get("default"):
        _fail(f"{FILE} impression", "the last precedence rule must be the default ('default': true)")
    for rule in rules:
        where = f"{FILE} impression rule '{rule.get('id')}'"
        if not isinstance(rule.get("category"), str) or not isinstance(rule.get("recommendation"), str):
            _fail(where, "needs a 'category' and a 'recommendation'")
        refs = rule.get("all", []) + rule.get("any", []) + rule.get("of", [])
        for item, _, answer in _answer_refs(refs):
            if item not in ids:
                _fail(where, f"reads item '{item}', which the checklist does not define")
            if answer not in doc["suggestions"] + doc["answers"]:
                _fail(where, f"compares with '{answer}', not an answer")
        if len(_answer_refs(refs)) != len(refs):
            _fail(where, "every condition is written item=answer or item!=answer")


def validate_checklist(doc: Any) -> dict[str, Any]:
    """The document if it is a well-formed checklist, else a :class:`LiverMetsError` saying what is wrong."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("version"), str):
        _fail(FILE, f"not a checklist (needs 'format': '{FORMAT}' and a 'version' text)")
    for key in ("sources", "thresholds", "derived", "study_figures", "items", "impression", "answers", "suggestions"):
        if key not in doc:
            _fail(FILE, f"is missing its '{key}' section")
    borderline = doc.get("borderline_confidence", {}).get("value", 0.5)
    if not isinstance(borderline, (int, float)) or not 0.5 <= borderline < 1.0:
        _fail(FILE, "'borderline_confidence' needs a 'value' between 0.5 (off) and 1")
    for name, t in doc["thresholds"].items():
        if not all(isinstance(t.get(k), (int, float)) for k in ("value", "uncertainty")) or t["uncertainty"] <= 0:
            _fail(f"{FILE} threshold '{name}'", "needs a number 'value' and a positive 'uncertainty'")
        if not t.get("source") or any(s not in doc["sources"] for s in t["source"]):
            _fail(f"{FILE} threshold '{name}'", "needs 'source', a list of ids of 'sources'")
    for name, spec in {**doc["derived"], **doc.get("study_derived", {})}.items():
        if spec.get("op") not in DERIVED_OPS or not isinstance(spec.get("of"), list):
            _fail(f"{FILE} derived value '{name}'", f"needs 'op' (one of {', '.join(DERIVED_OPS)}) and 'of'")
        if spec["op"] == "median_fill" and not 0.0 < spec.get("edge_fill_min", -1) < 1.0:
            _fail(f"{FILE} derived value '{name}'", "'median_fill' needs 'edge_fill_min', a share between 0 and 1")
    for name, spec in doc.get("study_derived", {}).items():
        if any(k not in doc["study_figures"] for k in [name, *spec["of"]]):
            _fail(f"{FILE} study derived value '{name}'", "it and its inputs must be listed in 'study_figures'")
    seen: set[str] = set()
    for i, item in enumerate(doc["items"]):
        _check_item(doc, item, seen, i)
    _check_impression(doc, seen)
    return doc


@functools.lru_cache(maxsize=4)
def _load_packaged() -> dict[str, Any]:
    return validate_checklist(load_json(FILE))


def load_checklist(path: str | Path | None = None) -> dict[str, Any]:
    """The packaged checklist (cached; a copy is returned) or one from ``path``, checked."""
    if path is None:
        return copy.deepcopy(_load_packaged())
    return validate_checklist(read_json_file(path, "a checklist (livermets-checklist JSON)"))


def categories(doc: dict[str, Any]) -> list[str]:
    """Impression categories in precedence order (the vocabulary shared with the phantom's truth)."""
    return list(dict.fromkeys(r["category"] for r in doc["impression"]["precedence"]))
