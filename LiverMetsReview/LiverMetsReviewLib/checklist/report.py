"""``review.md``: the review as a reader-facing summary (impression, reasons, recommendation per lesion)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..anatomy import roman, segment_text


def _fmt(v: Any, unit: str = "") -> str:
    return "not measured" if v is None else f"{v:.1f}{unit}"


def pitfall_names(doc: Mapping[str, Any]) -> dict[str, str]:
    """{item id: checklist name} of every pitfall item of a review (study items and each lesion's in play)."""
    names = {i["id"]: i["name"] for i in doc["study"].get("items") or [] if i.get("name")}
    for les in doc.get("lesions") or []:
        names.update({p["item"]: p["name"] for p in les.get("pitfalls_in_play") or [] if p.get("name")})
    return names


def pitfalls_text(in_play: list[str], names: Mapping[str, str] | None = None) -> str:
    """The study's pitfalls in play (``["pitfall", "lesion: pitfall", ...]``) grouped by pitfall, each under its
    checklist name (the reader knows "Pseudocirrhosis after chemotherapy", not an id): "name (lesion, ...); ..."
    or "none"."""
    names = names or {}
    by: dict[str, list[str]] = {}
    for entry in in_play:
        lesion, _, pitfall = entry.partition(": ")
        by.setdefault(pitfall or lesion, []).append(lesion if pitfall else "study")
    return "; ".join(f"{names.get(p) or p.replace('_', ' ')} ({', '.join(ls)})" for p, ls in by.items()) or "none"


def review_markdown(doc: Mapping[str, Any]) -> str:
    s = doc["study"]["summary"]
    lines = [f"# Liver lesion review (checklist {doc['checklist_version']})", "",
             "Suggestions come from the measurements and are evidence for the reader; nothing here is a diagnosis.",
             "", "## Study", "",
             f"- Lesions: {s['lesion_count']} ({', '.join(f'{n} {c}' for c, n in s['by_impression'].items())})",
             f"- Segments involved: {', '.join(roman(x) for x in s['segments_involved']) or 'not known'}",
             f"- Background fat fraction: {_fmt(s['background_fat_percent'], ' %')}"
             f" ({s['background_fat_origin'] or '-'})",
             f"- HBP function: {s['hbp_function']} (liver HBP enhancement {_fmt(s['hbp_liver_re_percent'], ' %')})",
             f"- Pitfalls in play: {pitfalls_text(s['pitfalls_in_play'], pitfall_names(doc))}", ""]
    for it in doc["study"]["items"]:
        if it["applicable"]:
            lines.append(f"- {it['name']}: suggested **{it['suggested']}**"
                         + (f", reader: **{it['answer']}**" if it["answer"] else "")
                         + (f" — {it['explanation']}" if it["explanation"] else ""))
    for les in doc["lesions"]:
        imp = les["impression"]
        lines += ["", f"## Lesion {les['id']}", "",
                  f"S{segment_text(les['couinaud_segment'], les.get('couinaud_border'))[1:]}, "
                  f"long axis {_fmt(les['long_axis_mm'], ' mm')}. "
                  f"Impression: **{imp['category']}**" + (f" ({imp['wording']})" if imp.get("wording") else ""),
                  "", f"Recommendation: {imp['recommendation']}", "", "Reasons:"]
        lines += [f"- {r['condition']} ({r['by']}; {r['evidence'] or 'no measurement'})" for r in imp["reasons"]]
        if not imp["reasons"]:
            lines.append("- no rule before the default held (see the steps in review.json)")
        pitfalls = les.get("pitfalls_in_play") or []
        lines += ["", "Pitfalls in play: " + ("; ".join(f"{p['name']} ({p['how']})" for p in pitfalls) or "none")]
        answered = [i for i in les["items"] if i["answer"]]
        if answered:
            lines += ["", "Reader's answers:"]
            lines += [f"- {i['name']}: {i['answer']}" + (f" ({i['note']})" if i["note"] else "") for i in answered]
    return "\n".join(lines) + "\n"
