"""``report.html``: one self-contained page (inline CSS, key images as base64 PNG). Table cells carry their
full-precision value in ``data-value`` so a reader program gets the review's numbers, not the rounded text."""

from __future__ import annotations

from html import escape
from typing import Any

from .fmt import UNITS, number, segment, with_unit

CSS = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#111}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%}
th{background:#eee}.missing{color:#888;font-style:italic}.reader{font-weight:bold;color:#05528f}
.auto{color:#555}.strip{display:flex;flex-wrap:wrap;gap:6px}.strip figure{margin:0;text-align:center;font-size:80%}
.strip img{width:192px;height:192px;image-rendering:pixelated;background:#000}
.statement{border:1px solid #999;padding:.5em;background:#f7f7f0}"""


def _cell(kind: str, entry: dict[str, Any]) -> str:
    v = entry.get("value")
    if v is None:
        return f'<td class="missing" data-quantity="{kind}">{escape(entry.get("why") or "not measured")}</td>'
    return f'<td data-quantity="{kind}" data-value="{v!r}">{number(kind, v)}</td>'


def _header(data: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in data["header"].items())
    return "<h2>Study</h2>" + (f"<table>{rows}</table>" if rows else '<p class="missing">no study folder given</p>')


def _technique(data: dict[str, Any]) -> str:
    if not data["series"]:
        return '<h2>Technique</h2><p class="missing">series not known (no study folder given)</p>'
    head = "<tr><th>role</th><th>series</th><th>field (T)</th><th>TE (ms)</th><th>TR (ms)</th><th>b-values</th></tr>"
    body = "".join(
        f"<tr><td>{escape(str(s['role']))}</td><td>{escape(s['description'])}</td>"
        f"<td>{s['field_strength_t'] or ''}</td><td>{', '.join(str(t) for t in s['echo_times_ms'])}</td>"
        f"<td>{s['repetition_time_ms'] or ''}</td><td>{', '.join(f'{b:g}' for b in s['b_values'])}</td></tr>"
        for s in data["series"])
    return f"<h2>Technique</h2><table>{head}{body}</table>"


def _liver(data: dict[str, Any]) -> str:
    s = data["summary"]
    rows = [("Liver volume", "liver_volume", data["liver_volume_ml"]),
            ("Background fat fraction", "background_fat", s.get("background_fat_percent")),
            ("Liver HBP relative enhancement", "hbp_re", s.get("hbp_liver_re_percent"))]
    body = "".join(f'<tr><th>{n}</th><td data-quantity="{k}"'
                   + (f' data-value="{v!r}">{with_unit(k, v)}' if v is not None else ">not measured") + "</td></tr>"
                   for n, k, v in rows)
    body += f"<tr><th>HBP function</th><td>{escape(str(s.get('hbp_function') or 'not assessed'))}</td></tr>"
    body += f"<tr><th>Pitfalls in play</th><td>{escape(', '.join(s.get('pitfalls_in_play') or []) or 'none')}</td></tr>"
    return f"<h2>Liver background</h2><table>{body}</table>"


def _lesion_table(data: dict[str, Any]) -> str:
    head = ("<tr><th>lesion</th><th>Couinaud</th>" + "".join(
        f"<th>{n} ({UNITS[k]})</th>" for n, k in (("long axis", "long_axis"), ("short axis", "short_axis"),
                                                   ("volume", "volume"), ("ADC median", "adc"),
                                                   ("fat fraction", "fat")))
            + "<th>impression</th><th>recommendation</th></tr>")
    body = "".join(
        f'<tr data-lesion="{escape(les["id"])}"><td>{escape(les["id"])}</td>'
        f'<td data-quantity="segment" data-value="{les["segment"] or ""}">{segment(les["segment"])}</td>'
        + "".join(_cell(k, les[k]) for k in ("long_axis", "short_axis", "volume", "adc", "fat"))
        + f'<td data-quantity="impression">{escape(les["impression"])}</td>'
        f'<td data-quantity="recommendation">{escape(les["recommendation"])}</td></tr>'
        for les in data["lesions"])
    return f'<h2>Lesions</h2><table class="lesions">{head}{body}</table>'


def _strip(strip: list[dict[str, Any]]) -> str:
    from .build import b64

    figs = []
    for k in strip:
        if "png" in k:
            figs.append(f'<figure><img data-series="{escape(k["caption"])}" alt="{escape(k["caption"])}" '
                        f'src="data:image/png;base64,{b64(k["png"])}"><figcaption>{escape(k["caption"])}'
                        f' (window {k["window"][0]:.0f}-{k["window"][1]:.0f})</figcaption></figure>')
        else:
            figs.append(f'<figure class="missing" data-missing="{escape(k["caption"])}">{escape(k["caption"])}: '
                        f'{escape(k["why"])}</figure>')
    return ('<div class="strip">' + "".join(figs) + "</div><p><small>Axial, through the lesion's centroid; patient "
            "left on the image's right (R/L marked); outline yellow, long axis cyan; scale bar 10 mm.</small></p>")


def _drivers(les: dict[str, Any]) -> str:
    reasons = "".join(f'<li class="{"reader" if r["by"] == "reader" else "auto"}">{escape(r["name"])}: '
                      f'{escape(str(r["answer"]))} <em>({escape(r["by"])})</em>'
                      + (f" — {escape(r['evidence'])}" if r["evidence"] else "") + "</li>" for r in les["reasons"])
    answered = "".join(f'<li class="reader">{escape(a["name"])}: reader answered <b>{escape(a["answer"])}</b> '
                       f'(suggested {escape(str(a["suggested"]))}){" — " + escape(a["note"]) if a["note"] else ""}'
                       "</li>" for a in les["answered"])
    open_ = "".join(f'<li class="unanswered">{escape(u["name"])} (suggested {escape(str(u["suggested"]))})</li>'
                    for u in les["unanswered"])
    return (f"<h4>What drove the impression</h4><ul>{reasons or '<li>no rule before the default held</li>'}</ul>"
            f"<h4>Reader's answers</h4><ul>{answered or '<li class=missing>none yet</li>'}</ul>"
            f'<h4>Not yet answered by the reader ({len(les["unanswered"])})</h4>'
            f'<ul class="unanswered">{open_ or "<li>none</li>"}</ul>')


def report_html(data: dict[str, Any], strips: dict[str, list[dict[str, Any]]]) -> str:
    parts = [f"<h1>Liver MRI lesion report</h1><p>Checklist version {escape(str(data['checklist_version']))}</p>",
             _header(data), _technique(data), _liver(data), _lesion_table(data)]
    for les in data["lesions"]:
        parts.append(f'<section data-lesion="{escape(les["id"])}"><h3>Lesion {escape(les["id"])} — '
                     f'{escape(les["impression"])}</h3>' + _strip(strips.get(les["id"], [])) + _drivers(les)
                     + "</section>")
    parts.append(f'<p class="statement">{escape(data["statement"])}</p>')
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Liver MRI lesion report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
