"""The measurement table: ``measurements.tsv`` (one row per lesion x image x region x statistic) and the same
as ``measurements.json``, with units and codes looked up in ``quantities.json`` (never passed around)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.atomic import write_json_atomic, write_text_atomic
from ..resources import load_json
from .measure import LesionMeasures, Measurement, quantity

COLUMNS = ("lesion_id", "image", "region", "statistic", "quantity", "value", "unit_ucum", "quantity_code",
           "statistic_code", "why")


def _code(c: Sequence[str] | None) -> str:
    return "^".join(c) if c else ""


def measurement_row(lesion_id: str, m: Measurement) -> dict[str, Any]:
    q = quantity(m.key)
    stat = load_json("quantities.json")["statistics"].get(m.statistic)
    value = None if m.value is None or not math.isfinite(m.value) else m.value
    return {"lesion_id": lesion_id, "image": m.image, "region": m.region, "statistic": m.statistic,
            "quantity": m.key, "value": value, "unit_ucum": q["unit"][1], "quantity_code": _code(q["quantity"]),
            "statistic_code": _code(stat), "why": m.why if value is None else ""}


def write_measurements(out: Path, records: list[dict[str, Any]], measures: list[LesionMeasures],
                       extra: dict[str, Any]) -> None:
    """``measurements.tsv`` and ``measurements.json`` in ``out`` (atomically)."""
    rows = [measurement_row(m.lesion_id, x) for m in measures for x in m.measurements]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    write_text_atomic(out / "measurements.tsv", buf.getvalue())
    by_lesion = {m.lesion_id: [measurement_row(m.lesion_id, x) for x in m.measurements] for m in measures}
    doc = {"format": "livermets-lesion-measurements", "version": 1, "coordinate_system": "LPS",
           "units_note": "every value's unit is in its row (UCUM); ADC in um2/s = 10^-6 mm2/s, fat fraction and "
                         "relative enhancement in percent, lengths mm, volume mL",
           "statistics_note": "images are sampled on the reference grid the segments are drawn on",
           **extra, "lesions": [{**rec, "measurements": by_lesion.get(rec["id"], [])} for rec in records]}
    write_json_atomic(out / "measurements.json", doc, allow_nan=False)


def read_measurements_tsv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``measurements.tsv`` with numbers as floats (empty value: None)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    for r in rows:
        r["value"] = float(r["value"]) if r["value"] else None
    return rows
