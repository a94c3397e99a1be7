"""``report.html``: one self-contained page (inline CSS, key images as base64 PNG). Table cells carry their
full-precision value in ``data-value`` so a reader program gets the review's numbers, not the rounded text.

The same HTML is laid out by Qt's ``QTextDocument`` for ``report.pdf``: it understands tables and a subset of
CSS (no flexbox), so the key-image strip is a one-row table and image sizes are given as attributes."""

from __future__ import annotations

from html import escape
from typing import Any

from .fmt import UNITS, number, pitfalls_text, roman, segment, with_unit

CSS = """body{font-family:sans-serif;color:#111;font-size:10pt}
h1{font-size:16pt}h2{font-size:13pt;margin-bottom:2px}h3{font-size:11pt}h4{font-size:10pt;margin-bottom:0}
table{border-collapse:collapse;margin:.3em 0}td,th{border:1px solid #bbb;padding:2px 5px;vertical-align:top}
th{background:#eee;text-align:left}.missing{color:#777;font-style:italic}.reader{font-weight:bold;color:#05528f}
.auto{color:#444}table.lesions td,table.lesions th{font-size:8pt}
table.strip td{border:none;text-align:center;font-size:8pt;padding:1px}
.statement{border:1px solid #999;padding:.5em;background:#f7f7f0}"""
IMAGE_PX = 150  # shown size of a key image (its PNG is key_images.PIXELS wide)


def _segment_cell(les: dict[str, Any]) -> str:
    """The segment in the narrow table column (a border call is given in the lesion's heading)."""
    return f'<td data-quantity="segment" data-value="{les["segment"] or ""}">{roman(les["segment"])}</td>'


def _cell(kind: str, entry: dict[str, Any]) -> str:
    v = entry.get("value")
    if v is None:
        return f'<td class="missing" data-quantity="{kind}">{escape(entry.get("why") or "not measured")}</td>'
    return f'<td data-quantity="{kind}" data-value="{v!r}" style="white-space:nowrap">{number(kind, v)}</td>'


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)


def _header(data: dict[str, Any]) -> str:
    h = data["header"]
    return (f'<h2>Patient and study</h2><p class="source">{escape(h["source"])}</p>'
            + (f'<table class="header">{_rows(h["rows"])}</table>' if h["rows"] else ""))


def _context(data: dict[str, Any]) -> str:
    c = data["context"]
    body = f"<table>{_rows(c['rows'])}</table>" if c["rows"] else ""
    return f'<h2>Clinical context</h2><p class="source">{escape(c["origin"])}</p>{body}'


def _technique(data: dict[str, Any]) -> str:
    if not data["series"]:
        series = '<p class="missing">series not known (no study folder given)</p>'
    else:
        head = ("<tr><th>role</th><th>series</th><th>field (T)</th><th>TE (ms)</th><th>TR (ms)</th>"
                "<th>b-values (s/mm2)</th></tr>")
        series = "<table width=\"100%\">" + head + "".join(
            f"<tr><td>{escape(str(s['role']))}</td><td>{escape(s['description'])}</td>"
            f"<td>{s['field_strength_t'] or ''}</td><td>{', '.join(f'{t:g}' for t in s['echo_times_ms'])}</td>"
            f"<td>{s['repetition_time_ms'] or ''}</td><td>{', '.join(f'{b:g}' for b in s['b_values'])}</td></tr>"
            for s in data["series"]) + "</table>"
    maps = "".join(
        (f'<tr data-map="{m["map"]}"><td>{m["map"]}</td><td>{escape(m["quantity"])} ({escape(m["units"])})</td>'
         f'<td>{escape(m["method"])}</td><td>{escape(m["inputs"])}</td></tr>') if "why" not in m else
        f'<tr data-map="{m["map"]}"><td>{m["map"]}</td><td class="missing" colspan="3">{escape(m["why"])}</td></tr>'
        for m in data["maps"])
    maps = ("<h3>Maps</h3><table width=\"100%\"><tr><th>map</th><th>quantity</th><th>method</th><th>inputs</th></tr>"
            + maps + "</table>") if maps else '<p class="missing">maps not known (no lesion measurements given)</p>'
    return f"<h2>Technique</h2>{series}{maps}"


def _liver(data: dict[str, Any]) -> str:
    s = data["summary"]
    body = "".join(f'<tr><th>{r["name"]}</th><td data-quantity="{r["name"]}"'
                   + (f' data-value="{r["value"]!r}">{with_unit(r["kind"], r["value"])}' if r["value"] is not None
                      else f' class="missing">{escape(r["why"])}') + "</td></tr>" for r in data["liver"])
    body += f"<tr><th>HBP function</th><td>{escape(str(s.get('hbp_function') or 'not assessed'))}</td></tr>"
    pitfalls = pitfalls_text(s.get("pitfalls_in_play") or [], data.get("pitfall_names"))
    body += f"<tr><th>Pitfalls in play</th><td>{escape(pitfalls)}</td></tr>"
    items = data["study_items"]
    open_ = "".join(f'<li class="unanswered">{escape(u["name"])} (suggested {escape(str(u["suggested"]))})</li>'
                    for u in items["unanswered"])
    answered = "".join(f'<li class="reader">{escape(a["name"])}: reader answered <b>{escape(a["answer"])}</b></li>'
                       for a in items["answered"])
    return (f"<h2>Liver background</h2><table>{body}</table>"
            + (f"<h4>Study items answered by the reader</h4><ul>{answered}</ul>" if answered else "")
            + f'<h4>Study items not yet answered by the reader ({len(items["unanswered"])})</h4>'
            f'<ul class="unanswered">{open_ or "<li>none</li>"}</ul>')


HEAD_UNITS = {"adc": "10<sup>-6</sup> mm<sup>2</sup>/s"}  # the text report keeps plain ASCII units for the RIS


def breakable(lesion_id: str) -> str:
    """A lesion id (escaped) that may wrap after '_' and '-' only ('focal_' / 'hypersteatosis'), not inside a word:
    a zero-width space after each is a line-break opportunity for Qt's and browsers' layout, and invisible."""
    return escape(lesion_id).replace("_", "_&#8203;").replace("-", "-&#8203;")


def _lesion_table(data: dict[str, Any]) -> str:
    # Short, breakable headers and widths that keep ids and numbers whole on an A4 portrait page (Qt's layout
    # breaks a header word letter by letter when its column is narrower than the word).
    numbers = (("long", "long_axis"), ("short", "short_axis"), ("volume", "volume"), ("ADC", "adc"), ("fat", "fat"))
    head = ('<tr><th width="18%">lesion</th><th width="5%">seg&shy;ment</th>'
            + "".join(f'<th width="6%">{n}<br>({HEAD_UNITS.get(k, UNITS[k])})</th>' for n, k in numbers)
            + '<th width="16%">enhancement pattern</th><th width="12%">impression</th>'
              '<th width="19%">recommendation</th></tr>')
    body = "".join(
        f'<tr data-lesion="{escape(les["id"])}"><td>{breakable(les["id"])}</td>'
        + _segment_cell(les)
        + "".join(_cell(k, les[k]) for k in ("long_axis", "short_axis", "volume", "adc", "fat"))
        + f'<td data-quantity="pattern">{escape(les["pattern"])}</td>'
        f'<td data-quantity="impression">{escape(les["impression"])}</td>'
        f'<td data-quantity="recommendation">{escape(les["recommendation"])}</td></tr>'
        for les in data["lesions"])
    return f'<h2>Lesions</h2><table class="lesions" width="100%">{head}{body}</table>'


def _strip(strip: list[dict[str, Any]]) -> str:
    from .build import b64

    cells = []
    for k in strip:
        if "png" in k:
            cells.append(f'<td><img data-series="{escape(k["caption"])}" alt="{escape(k["caption"])}" '
                         f'width="{IMAGE_PX}" height="{IMAGE_PX}" src="data:image/png;base64,{b64(k["png"])}"><br>'
                         f'{escape(k["caption"])}<br>{_levels(k)}</td>')
        else:
            cells.append(f'<td class="missing" data-missing="{escape(k["caption"])}">{escape(k["caption"])}: '
                         f'{escape(k["why"])}</td>')
    rows = [cells[i:i + 3] for i in range(0, len(cells), 3)]
    return ('<table class="strip">' + "".join("<tr>" + "".join(r) + "</tr>" for r in rows) + "</table>"
            "<p><small>Axial, through the lesion's centroid; patient's right on the image's left (R and L marked); "
            "outline yellow, long axis cyan; scale bar 10 mm; grey scale per image: the signal shown black / "
            "mid-grey (the liver around the lesion) / white; a lesion brighter than that window bends the scale "
            "above the liver so that it is not clipped to white.</small></p>")


def _levels(k: dict[str, Any]) -> str:
    lo, hi = k["window"]
    mid = k.get("liver")
    return f"{lo:.0f} / {mid if mid is not None else (lo + hi) / 2:.0f} / {hi:.0f}"


def _drivers(les: dict[str, Any]) -> str:
    reasons = [f'<li class="{"reader" if r["by"] == "reader" else "auto"}">{escape(r["name"])}: '
               f'{escape(str(r["answer"]))} <em>({escape(r["by"])})</em>'
               + (f" — {escape(r['evidence'])}" if r["evidence"] else "") + "</li>" for r in les["reasons"]]
    answered = "".join(f'<li class="reader">{escape(a["name"])}: reader answered <b>{escape(a["answer"])}</b> '
                       f'(suggested {escape(str(a["suggested"]))}){" — " + escape(a["note"]) if a["note"] else ""}'
                       "</li>" for a in les["answered"])
    open_ = "".join(f'<li class="unanswered">{escape(u["name"])} (suggested {escape(str(u["suggested"]))})</li>'
                    for u in les["unanswered"])
    return (f"<h4>What drove the impression</h4><ul>{''.join(reasons) or '<li>no rule before the default held</li>'}"
            f"</ul><h4>Reader's answers</h4><ul>{answered or '<li class=missing>none yet</li>'}</ul>"
            f'<h4>Not yet answered by the reader ({len(les["unanswered"])})</h4>'
            f'<ul class="unanswered">{open_ or "<li>none</li>"}</ul>')


def report_html(data: dict[str, Any], strips: dict[str, list[dict[str, Any]]]) -> str:
    parts = [f"<h1>Liver MRI lesion report</h1><p>Checklist version {escape(str(data['checklist_version']))}</p>",
             _header(data), _context(data), _technique(data), _liver(data), _lesion_table(data)]
    for les in data["lesions"]:
        parts.append(f'<section data-lesion="{escape(les["id"])}"><h3>Lesion {escape(les["id"])}, '
                     f'{escape(segment(les["segment"], les.get("segment_border")))}: {escape(les["impression"])}</h3>'
                     + _strip(strips.get(les["id"], [])) + _drivers(les) + "</section>")
    parts.append(f'<p class="statement">{escape(data["statement"])}</p>')
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Liver MRI lesion report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
