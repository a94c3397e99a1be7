"""Slicer markups files (``.mrk.json``, schema v1.0.3): lesion seeds as a point list, diameters as lines.

Coordinates are written in LPS (``coordinateSystem: LPS``, as Slicer itself writes files); files written in
RAS by other tools are read and converted. Each seed's label names its lesion; its description may carry
``type=<kind>`` (a kind of ``lesion_terminology.json``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..io.atomic import write_json_atomic
from ..resources import read_json_file

SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"


@dataclass(frozen=True)
class Seed:
    label: str
    position_lps: tuple[float, float, float]
    description: str = ""

    @property
    def kind(self) -> str | None:
        for part in self.description.replace(";", " ").split():
            if part.startswith("type="):
                return part[5:]
        return None


@dataclass(frozen=True)
class Line:
    name: str
    start_lps: tuple[float, float, float]
    end_lps: tuple[float, float, float]
    description: str = ""

    @property
    def length_mm(self) -> float:
        return math.dist(self.start_lps, self.end_lps)


def _point(i: int, label: str, pos: Sequence[float], description: str = "") -> dict[str, Any]:
    return {"id": str(i), "label": label, "description": description, "associatedNodeID": "",
            "position": [round(float(v), 4) for v in pos],
            "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
            "selected": True, "locked": False, "visibility": True, "positionStatus": "defined"}


def _markup(kind: str, name: str, points: list[dict[str, Any]], measurements: list[dict] | None = None) -> dict:
    return {"type": kind, "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": False,
            "fixedNumberOfControlPoints": kind == "Line", "labelFormat": "%N-%d",
            "lastUsedControlPointNumber": len(points), "controlPoints": points, "measurements": measurements or []}


def write_seeds(path: str | Path, seeds: Sequence[Seed], name: str = "Lesion seeds") -> Path:
    """One point list: a control point per lesion seed, its label the lesion's name (LPS)."""
    points = [_point(i + 1, s.label, s.position_lps, s.description) for i, s in enumerate(seeds)]
    return write_json_atomic(path, {"@schema": SCHEMA, "markups": [_markup("Fiducial", name, points)]})


def write_lines(path: str | Path, lines: Sequence[Line]) -> Path:
    """One line markup per diameter (Slicer shows each length); LPS."""
    marks = [_markup("Line", ln.name, [_point(1, ln.name + "-1", ln.start_lps), _point(2, ln.name + "-2", ln.end_lps)],
                     [{"name": "length", "enabled": True, "value": round(ln.length_mm, 3), "units": "mm",
                       "printFormat": "%-#4.4g%s"}]) | ({"description": ln.description} if ln.description else {})
             for ln in lines]
    return write_json_atomic(path, {"@schema": SCHEMA, "markups": marks})


def _markups(path: str | Path, what: str) -> list[dict[str, Any]]:
    doc = read_json_file(path, what)
    if not isinstance(doc, dict) or not isinstance(doc.get("markups"), list):
        raise LiverMetsError(f"{path} is not a Slicer markups file (no 'markups' list); give {what}")
    return doc["markups"]


def _lps(m: dict[str, Any], cp: dict[str, Any], path: str | Path) -> tuple[float, float, float]:
    pos = cp.get("position")
    finite = isinstance(pos, list) and all(isinstance(v, int | float) and math.isfinite(v) for v in pos)
    if not finite or len(pos) != 3:
        raise LiverMetsError(f"{path}: control point '{cp.get('label', cp.get('id'))}' has no valid position; "
                             "place it again in Slicer")
    if m.get("coordinateSystem", "LPS") == "RAS":
        return (-float(pos[0]), -float(pos[1]), float(pos[2]))
    return (float(pos[0]), float(pos[1]), float(pos[2]))


def read_seeds(path: str | Path) -> list[Seed]:
    """Every defined control point of every point list in the file, in LPS; labels must be unique."""
    seeds = []
    for m in _markups(path, "a Slicer point list of lesion seeds (.mrk.json)"):
        if m.get("type") != "Fiducial":
            continue
        for cp in m.get("controlPoints") or []:
            if cp.get("positionStatus", "defined") != "defined":
                continue
            label = str(cp.get("label") or f"lesion_{len(seeds) + 1}").strip()
            seeds.append(Seed(label, _lps(m, cp, path), str(cp.get("description") or "")))
    if not seeds:
        raise LiverMetsError(f"{path} holds no placed point; put a point in each lesion with Slicer's point list tool")
    labels = [s.label for s in seeds]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise LiverMetsError(f"{path}: the point label(s) {', '.join(dup)} name more than one seed; give each lesion "
                             "its own label")
    return seeds


def read_lines(path: str | Path) -> list[Line]:
    """Every line markup of the file, in LPS."""
    out = []
    for m in _markups(path, "a Slicer markups file of lines (.mrk.json)"):
        if m.get("type") != "Line":
            continue
        cps = [cp for cp in m.get("controlPoints") or [] if cp.get("positionStatus", "defined") == "defined"]
        if len(cps) != 2:
            raise LiverMetsError(f"{path}: line '{m.get('name')}' has {len(cps)} placed points instead of 2")
        out.append(Line(str(m.get("name", "")), _lps(m, cps[0], path), _lps(m, cps[1], path),
                        str(m.get("description", ""))))
    return out
