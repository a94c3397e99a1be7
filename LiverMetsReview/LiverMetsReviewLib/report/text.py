"""``report.txt``: the impression section a radiologist pastes into the RIS, in plain text."""

from __future__ import annotations

from typing import Any

from .fmt import pitfalls_text, segment, with_unit


def _drivers(les: dict[str, Any]) -> str:
    """Each item that drove the impression (once: :func:`.build._drivers`), with its answer and readable
    evidence."""
    return "; ".join(f"{r['name']}: {r['answer']}" + (f" ({r['evidence']})" if r.get("evidence") else "")
                     for r in les.get("reasons") or []) or "no rule before the default held"


def _lesion_line(n: int, les: dict[str, Any]) -> list[str]:
    size = with_unit("long_axis", les["long_axis"]["value"], "size not measured")
    if les["short_axis"]["value"] is not None:
        size = f"{size} x {with_unit('short_axis', les['short_axis']['value'])}"
    vol = les["volume"]["value"]
    imp = les["impression"] + (f" ({les['wording']})" if les.get("wording") else "")
    done = les["progress"]
    lines = [f"{n}. Lesion {les['id']}, {segment(les['segment'], les.get('segment_border'))}: {size}"
             + (f", {with_unit('volume', vol)}" if vol is not None else "") + f". Impression: {imp}.",
             f"   Enhancement: {les['pattern']}.",
             f"   Driven by: {_drivers(les)}.",
             f"   Recommendation: {les['recommendation'].rstrip('.') or 'none given'}."]
    if done.get("applicable") and done.get("answered", 0) < done["applicable"]:
        lines.append(f"   Reader has confirmed {done.get('answered', 0)} of {done['applicable']} checklist items; "
                     f"{len(les['unanswered'])} not yet answered (listed in the full report).")
    return lines


def report_text(data: dict[str, Any]) -> str:
    s = data["summary"]
    ctx = dict(data["context"]["rows"])
    lines = ["IMPRESSION", ""]
    for n, les in enumerate(data["lesions"], 1):
        lines += _lesion_line(n, les)
    lines += ["", f"Background liver: fat fraction {with_unit('background_fat', s.get('background_fat_percent'))}, "
                  f"hepatobiliary-phase function {s.get('hbp_function') or 'not assessed'}."]
    if ctx.get("Primary tumour"):
        lines.append(f"Clinical context: primary tumour {ctx['Primary tumour']}.")
    if s.get("pitfalls_in_play"):
        lines.append(f"Pitfalls considered: {pitfalls_text(s['pitfalls_in_play'], data.get('pitfall_names'))}.")
    lines += ["", f"Checklist version {data['checklist_version']}. {data['statement']}"]
    return "\n".join(lines) + "\n"
