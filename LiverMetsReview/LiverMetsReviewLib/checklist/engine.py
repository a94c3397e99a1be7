"""The checklist engine: a pure function of measurements, study figures, clinical context and answers.

``review(lesions, study_figures, context, answers)`` returns, per study and per lesion, every item with
whether it applies (and why not), the suggested answer with its evidence and confidence, the reader's answer
and the effective one (the reader's overrides the suggestion), then per lesion an impression from the
precedence rules of ``checklist.json`` with every step recorded. It never reads the phantom's ground truth.
Output is plain JSON-able dicts: the CLI writes them and a Slicer section binds them without any rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .data import load_checklist
from .facts import context_facts, lesion_facts
from .rules import evaluate_rule, explain
from .values import add_derived, study_values_from_lesions

READER_SETTLES = ("yes", "no", "indeterminate")  # "not assessed" leaves the suggestion in force


def _parse_ref(ref: str) -> tuple[str, str, str] | None:
    op = "!=" if "!=" in ref else "=" if "=" in ref else None
    if not op:
        return None
    item, answer = ref.split(op, 1)
    return item, op, answer


def _ref_holds(ref: str, facts: set[str], effective: Mapping[str, str | None]) -> bool:
    parsed = _parse_ref(ref)
    if parsed is None:
        return ref in facts
    item, op, answer = parsed
    got = effective.get(item)
    return got == answer if op == "=" else got != answer


def _applies(item: Mapping[str, Any], facts: set[str], effective: Mapping[str, str | None]) -> tuple[bool, str]:
    need_all = item.get("applies", [])
    need_any = item.get("applies_any", [])
    failed = [r for r in need_all if not _ref_holds(r, facts, effective)]
    if failed:
        return False, "applies only when " + " and ".join(need_all) + f" (not: {', '.join(failed)})"
    if need_any and not any(_ref_holds(r, facts, effective) for r in need_any):
        return False, "applies only when " + " or ".join(need_any)
    return True, ""


def _reader(answers: Mapping[str, Any] | None, item_id: str) -> tuple[str | None, str]:
    a = (answers or {}).get(item_id)
    if isinstance(a, str):
        return a, ""
    if isinstance(a, Mapping):
        return a.get("answer"), str(a.get("note") or "")
    return None, ""


def _as_earlier(row: Mapping[str, Any], effective: Mapping[str, str | None]) -> tuple[str | None, float | None, str]:
    """An earlier item as an evidence rule reads it: (effective answer, its confidence, name)."""
    return (effective.get(row["id"]), 1.0 if row["answer"] in READER_SETTLES
            else row.get("measured_confidence", row["confidence"]), row["name"])


def evaluate_items(doc: Mapping[str, Any], items: list[Mapping[str, Any]], values: Mapping[str, float | None],
                   why: Mapping[str, str], facts: set[str], effective: dict[str, str | None],
                   answers: Mapping[str, Any] | None, before: list[dict[str, Any]] | None = None
                   ) -> list[dict[str, Any]]:
    """Rows of ``items`` in order; an evidence rule may read an earlier item (``before``: the study's rows), looked
    up in one dict that grows by each row as it is made (an item's effective answer is final once evaluated)."""
    earlier = {r["id"]: _as_earlier(r, effective) for r in before or []}
    rows: list[dict[str, Any]] = []
    for it in items:
        row = evaluate_item(doc, it, values, why, facts, effective, answers, earlier)
        rows.append(row)
        earlier[row["id"]] = _as_earlier(row, effective)
    return rows


def evaluate_item(doc: Mapping[str, Any], item: Mapping[str, Any], values: Mapping[str, float | None],
                  why: Mapping[str, str], facts: set[str], effective: dict[str, str | None],
                  answers: Mapping[str, Any] | None,
                  earlier: Mapping[str, tuple[str | None, float | None, str]] | None = None) -> dict[str, Any]:
    """One item's row; also records its effective answer in ``effective`` for later items and rules."""
    ok, why_not = _applies(item, facts, effective)
    answer, note = _reader(answers, item["id"])
    row = {k: item[k] for k in ("id", "scope", "group", "name", "question", "help", "sources", "protocol", "series")}
    row.update(applicable=ok, not_applicable_because=why_not, suggested=None, confidence=None, evidence=[],
               explanation="", answer=answer, note=note, wording=None, unreliable=None, borderline=None)
    if not ok:
        effective[item["id"]] = None
        return row
    if "evidence" in item:
        row["suggested"], row["confidence"], row["evidence"] = evaluate_rule(item["evidence"], values,
                                                                             doc["thresholds"], why,
                                                                             doc.get("value_names"), earlier)
        row["explanation"] = explain(row["evidence"])
        borderline = doc.get("borderline_confidence", {}).get("value")
        if borderline is not None and row["confidence"] is not None and row["confidence"] < borderline:
            row["borderline"] = row["suggested"]  # the side the measurement fell on, kept for the reader
            row["suggested"] = "indeterminate"
    elif "context_rule" in item:
        cr = item["context_rule"]
        row["suggested"] = next((a for a in ("yes", "indeterminate") if cr.get(a) in facts), cr["otherwise"])
        row["explanation"] = f"from the clinical context (facts: {', '.join(sorted(facts)) or 'none'})"
    else:
        row["suggested"] = "not assessable"
        row["explanation"] = "no measurement answers this; the reader judges it on the images"
    if item.get("wording"):
        row["wording"] = "; ".join(text for fact, text in item["wording"].items() if fact in facts) or None
    if item.get("unreliable_when") and _ref_holds(item["unreliable_when"], facts, effective):
        row["unreliable"] = f"{item['unreliable_when']}: a 'no' here means little; lean on DWI and the dynamic phases"
        if row["confidence"] is not None:
            row["measured_confidence"] = row["confidence"]  # what a later item's rule reads (the halving is advice)
            row["confidence"] = round(row["confidence"] / 2.0, 3)
    effective[item["id"]] = answer if answer in READER_SETTLES else row["suggested"]
    return row


def _rule_step(rule: Mapping[str, Any], effective: Mapping[str, str | None]) -> dict[str, Any]:
    checks = {k: [{"condition": r, "holds": _ref_holds(r, set(), effective), "answer": effective.get(r.split("=")[0]
                   .rstrip("!"))} for r in rule.get(k, [])] for k in ("all", "any", "of")}
    ok = all(c["holds"] for c in checks["all"])
    if rule.get("any"):
        ok = ok and any(c["holds"] for c in checks["any"])
    if rule.get("of"):
        ok = ok and sum(c["holds"] for c in checks["of"]) >= int(rule["at_least"])
    if rule.get("default"):
        ok = True
    return {"rule": rule["id"], "category": rule["category"], "matched": ok,
            "conditions": checks["all"] + checks["any"] + checks["of"]}


def impression(doc: Mapping[str, Any], rows: list[dict[str, Any]], effective: Mapping[str, str | None],
               facts: set[str]) -> dict[str, Any]:
    """The first precedence rule that holds, the items that drove it, and every step tried."""
    by_id = {r["id"]: r for r in rows}
    steps = []
    for rule in doc["impression"]["precedence"]:
        step = _rule_step(rule, effective)
        steps.append(step)
        if not step["matched"]:
            continue
        reasons = []
        for c in step["conditions"]:
            if not c["holds"]:
                continue
            item_id = c["condition"].split("=")[0].rstrip("!")
            r = by_id.get(item_id, {})
            reasons.append({"item": item_id, "condition": c["condition"], "answer": c["answer"],
                            "by": "reader" if r.get("answer") in READER_SETTLES else "suggestion",
                            "confidence": r.get("confidence"), "evidence": r.get("explanation", "")})
        wording = rule.get("wording", {})
        text = next((t for f, t in wording.items() if f in facts), wording.get("otherwise"))
        return {"category": rule["category"], "rule": rule["id"], "wording": text, "reasons": reasons,
                "recommendation": rule["recommendation"], "sources": rule.get("sources", []), "steps": steps}
    raise AssertionError("the default rule always matches")  # pragma: no cover - checked on load


def _rule_items(doc: Mapping[str, Any]) -> set[str]:
    """Items an impression rule reads."""
    return {ref[0] for rule in doc["impression"]["precedence"]
            for c in rule.get("all", []) + rule.get("any", []) + rule.get("of", []) if (ref := _parse_ref(c))}


def lesion_pitfalls(doc: Mapping[str, Any], rows: list[dict[str, Any]], effective: Mapping[str, str | None],
                    facts: set[str], shown: Mapping[str, Any]) -> list[dict[str, str]]:
    """The pitfalls in play for one lesion: pitfall items answered (or suggested) yes that either moved its
    impression (an item the impression rules read: with it answered 'no' the impression would differ) or are
    a reading caution no rule reads (T1-bright debris, shine-through: their 'yes' is the pitfall itself). A rule
    item's 'yes' alone is a feature, not a pitfall in play: 'less fat than the liver' is true of every metastasis
    in a fatty liver, and only where it makes the reading one of fat sparing is the pitfall at stake."""
    in_rules = _rule_items(doc)
    out = []
    for r in rows:
        if r["group"] != "pitfall" or effective.get(r["id"]) != "yes":
            continue
        if r["id"] not in in_rules:
            out.append({"item": r["id"], "name": r["name"], "how": "fired (a reading caution)"})
            continue
        flipped = impression(doc, rows, {**effective, r["id"]: "no"}, facts)["category"]
        if flipped != shown["category"]:
            out.append({"item": r["id"], "name": r["name"],
                        "how": f"moved the impression (with 'no' it would read: {flipped})"})
    return out


def _progress(rows: list[dict[str, Any]]) -> dict[str, int]:
    applicable = [r for r in rows if r["applicable"]]
    return {"answered": sum(r["answer"] is not None for r in applicable), "applicable": len(applicable)}


def _study_values(doc: Mapping[str, Any], lesion_vals: Mapping[str, dict], figures: Mapping[str, Any]
                  ) -> tuple[dict[str, float | None], dict[str, str], dict[str, str]]:
    values: dict[str, float | None] = {k: None for k in doc["study_figures"]}
    why = {k: "not measured (no liver_figures.json or study figure)" for k in doc["study_figures"]}
    origin: dict[str, str] = {}
    for k, v in figures.items():
        if isinstance(v, (int, float)):
            values[k], origin[k] = float(v), "study figure"
            why.pop(k, None)
        elif isinstance(v, str) and k in values:  # measured elsewhere but missing: the figure's own reason
            why[k] = v
    fallbacks = {k: v for k, v in doc["study_fallbacks"].items() if k != "note" and values.get(k) is None}
    for k, (v, how) in study_values_from_lesions(lesion_vals, fallbacks).items():
        values[k], origin[k] = v, how
        why.pop(k, None)
    add_derived(values, why, doc.get("study_derived", {}))
    for k in doc.get("study_derived", {}):
        if values.get(k) is not None:
            origin[k] = "derived: " + ", ".join(origin.get(a, a) for a in doc["study_derived"][k]["of"])
    values["study.lesion_count"] = float(len(lesion_vals))
    origin["study.lesion_count"] = "lesions reviewed"
    why.pop("study.lesion_count", None)
    return values, why, origin


def review(lesions: list[Mapping[str, Any]], study_figures: Mapping[str, Any] | None = None,
           context: Mapping[str, Any] | None = None, answers: Mapping[str, Mapping[str, Any]] | None = None,
           checklist: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate the checklist. ``lesions``: [{"id", "values", "why", "couinaud_segment"?, "couinaud_border"?,
    "long_axis"?}] with
    ``values``/``why`` from :func:`.values.lesion_values`; ``answers``: {"study" or lesion id: {item: answer}}."""
    doc = checklist or load_checklist()
    answers = answers or {}
    facts = context_facts(dict(context) if context else None,
                          float(doc["facts"]["hyperbilirubinemia_umol_l"]["value"]))
    lesion_vals = {}
    # study figures a lesion value is derived from (e.g. the T2 echo time): measured ones only, never fallbacks
    measured = {k: float(v) for k, v in (study_figures or {}).items() if isinstance(v, (int, float))}
    for les in lesions:
        vals, why = {**measured, **les["values"]}, dict(les.get("why", {}))
        add_derived(vals, why, doc["derived"])
        lesion_vals[les["id"]] = (vals, why)
    svals, swhy, origin = _study_values(doc, {k: v[0] for k, v in lesion_vals.items()}, study_figures or {})
    study_eff: dict[str, str | None] = {}
    study_rows = evaluate_items(doc, [it for it in doc["items"] if it["scope"] == "study"], svals, swhy, facts,
                                study_eff, answers.get("study"))
    out_lesions = []
    for les in lesions:
        vals, why = lesion_vals[les["id"]]
        lfacts = facts | lesion_facts(dict(context) if context else None, les["id"])
        eff = dict(study_eff)
        rows = evaluate_items(doc, [it for it in doc["items"] if it["scope"] == "lesion"], vals, why, lfacts, eff,
                              answers.get(les["id"]), study_rows)
        shown = impression(doc, rows, eff, lfacts)
        out_lesions.append({"id": les["id"], "couinaud_segment": les.get("couinaud_segment"),
                            "couinaud_border": les.get("couinaud_border"),
                            "long_axis_mm": vals.get("lesion.long_axis"), "items": rows, "impression": shown,
                            "pitfalls_in_play": lesion_pitfalls(doc, rows, eff, lfacts, shown),
                            "progress": _progress(rows)})
    summary = study_summary(study_rows, out_lesions, svals, origin)
    return {"checklist_version": doc["version"], "facts": sorted(facts),
            "study": {"items": study_rows, "values": {k: v for k, v in svals.items() if v is not None},
                      "value_origin": origin, "summary": summary, "progress": _progress(study_rows)},
            "lesions": out_lesions}


def study_summary(study_rows: list[dict[str, Any]], lesions: list[dict[str, Any]], svals: Mapping[str, Any],
                  origin: Mapping[str, str]) -> dict[str, Any]:
    """Count, segments involved, background fat and HBP function, and the pitfalls in play: the study's pitfall
    items that hold and each lesion's pitfalls in play (``lesion_pitfalls``)."""
    def eff(r: Mapping[str, Any]) -> str | None:
        return r["answer"] if r["answer"] in READER_SETTLES else r["suggested"]

    pitfalls = [r["id"] for r in study_rows if r["group"] == "pitfall" and eff(r) == "yes"]
    for les in lesions:  # per lesion: what moved its impression or is a reading caution (lesion_pitfalls)
        pitfalls += [f"{les['id']}: {p['item']}" for p in les.get("pitfalls_in_play", [])]
    by_cat: dict[str, int] = {}
    for les in lesions:
        by_cat[les["impression"]["category"]] = by_cat.get(les["impression"]["category"], 0) + 1
    segments = sorted({int(s) for les in lesions if (s := les.get("couinaud_segment"))})
    return {"lesion_count": len(lesions), "by_impression": by_cat, "segments_involved": segments,
            "background_fat_percent": svals.get("study.liver_fat_median"),
            "background_fat_origin": origin.get("study.liver_fat_median"),
            "hbp_liver_re_percent": svals.get("study.hbp_liver_re"),
            "hbp_origin": origin.get("study.hbp_liver_re"),
            "hbp_function": {"yes": "low", "no": "adequate"}.get(
                next((eff(r) for r in study_rows if r["id"] == "low_hbp_function"), None), "not assessable"),
            "pitfalls_in_play": pitfalls}
