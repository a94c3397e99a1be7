"""What ``livermets review`` reads: lesion values from a ``livermets measure`` folder, study figures from
``liver_figures.json`` (when the liver figures were measured) and the study folder's echo times.

Expected files: ``<lesions dir>/measurements.json`` (format ``livermets-lesion-measurements``: ``lesions``
with ``id``, ``couinaud_segment`` and ``measurements`` rows); optionally ``liver_figures.json`` in the lesions
folder or the study folder: the ``livermets liver`` output (format ``livermets-liver-figures``, each figure
``{"value", "unit", ...}`` under ``figures``, translated by :data:`LIVER_FIGURES` to the checklist's study keys)
or a flat ``{"study.<figure>": number, ...}`` with the keys of ``checklist.json`` ``study_figures``; a
``study`` object inside ``measurements.json`` with the same keys is read too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..resources import read_json_file
from .values import lesion_values

FIGURES = "liver_figures.json"

# The one translation from ``livermets liver`` figure names (lesions/liver_figures.py) to checklist study keys.
LIVER_FIGURES = {
    "study.liver_fat_median": "fat_fraction_median",
    "study.liver_fat_iqr": "fat_fraction_iqr",
    "study.hbp_liver_re": "hbp_liver_relative_enhancement",
    "study.liver_spleen_ratio": "liver_to_spleen_ratio_hbp",
    "study.caudate_right_lobe_ratio": "caudate_right_lobe_ratio",
    "study.surface_nodularity": "surface_nodularity",
}
def read_lesions(folder: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Engine input per lesion and the measurements document (for its study section)."""
    folder = Path(folder)
    path = folder / "measurements.json" if folder.is_dir() else folder
    doc = read_json_file(path, "the measurements.json that 'livermets measure' writes")
    if not isinstance(doc, dict) or doc.get("format") != "livermets-lesion-measurements":
        raise LiverMetsError(f"{path} is not a lesion measurement file; give the output folder of 'livermets measure'")
    out = []
    for les in doc.get("lesions", []):
        values, why = lesion_values(les.get("measurements", []))
        out.append({"id": str(les["id"]), "values": values, "why": why,
                    "couinaud_segment": les.get("couinaud_segment"), "couinaud_border": les.get("couinaud_border")})
    if not out:
        raise LiverMetsError(f"{path} holds no lesion; measure at least one lesion first")
    return out, doc


def study_figures_from_liver(doc: Any) -> dict[str, float | str]:
    """Checklist study figures from a ``livermets-liver-figures`` document (or its ``figures`` object): a number
    per measured figure, the figure's ``why`` (a string) when it could not be measured."""
    figs = doc.get("figures", doc) if isinstance(doc, dict) else {}
    out: dict[str, float | str] = {}
    for key, name in LIVER_FIGURES.items():
        f = figs.get(name)
        v = f.get("value") if isinstance(f, dict) else None
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[key] = float(v)
        elif isinstance(f, dict):
            out[key] = f"liver figure '{name}' not measured: {f.get('why') or 'no value'}"
    return out


def _figures_from(doc: Any) -> dict[str, float | str]:
    if not isinstance(doc, dict):
        return {}
    if doc.get("format") == "livermets-liver-figures":
        return study_figures_from_liver(doc)
    src = doc.get("figures", doc)
    return {k: float(v) for k, v in src.items()
            if k.startswith("study.") and isinstance(v, (int, float)) and math.isfinite(v)}


MAP_SOURCES = ("dwi", "t1_in_phase", "t1_opposed_phase", "dixon_water", "dixon_fat", "multi_echo_gre", "t1_pre",
               "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary")


def t2_figures(t2_meta: dict[str, Any] | None, liver_t2_by_field: dict[str, float]) -> dict[str, float]:
    """Echo time of the T2-weighted series and the liver's T2 at its field strength (linear in B0 between the
    tabulated fields, clamped beyond): what turns a T2w signal ratio into a T2 ratio."""
    meta = t2_meta or {}
    te, b0 = meta.get("echo_time_ms"), meta.get("field_strength_t")
    if not isinstance(te, (int, float)) or not isinstance(b0, (int, float)) or te <= 0:
        return {}
    fields = sorted((float(k), float(v)) for k, v in liver_t2_by_field.items())
    b = min(max(float(b0), fields[0][0]), fields[-1][0])
    lo = max((f for f in fields if f[0] <= b), default=fields[0])
    hi = min((f for f in fields if f[0] >= b), default=fields[-1])
    t2 = lo[1] if hi[0] == lo[0] else lo[1] + (hi[1] - lo[1]) * (b - lo[0]) / (hi[0] - lo[0])
    return {"study.t2_te_ms": float(te), "study.liver_t2_ms": round(t2, 3)}


def study_folder_figures(study_dir: str | Path, shift_ppm: float,
                         liver_t2_by_field: dict[str, float] | None = None) -> dict[str, float]:
    """From ``roles.json``: how far the dual-echo times are from whole (in phase) and half (opposed) fat-water
    cycles, and whether any series the maps are computed from was resampled onto another grid on loading."""
    index = Path(study_dir) / "roles.json"
    if not index.exists():
        return {}
    series = {s.get("role"): s for s in read_json_file(index, "a study folder's roles.json").get("series", [])}
    out = {"study.resampled_map_inputs": float(any("resampled_to" in (series[r].get("meta") or {})
                                                   for r in MAP_SOURCES if r in series))}
    if liver_t2_by_field:
        out.update(t2_figures((series.get("t2") or {}).get("meta"), liver_t2_by_field))
    for role, key, offset in (("t1_in_phase", "study.ip_phase_error", 0.0),
                              ("t1_opposed_phase", "study.op_phase_error", 0.5)):
        meta = (series.get(role) or {}).get("meta", {})
        te, f = meta.get("echo_time_ms"), meta.get("imaging_frequency_mhz")
        if f is None and meta.get("field_strength_t"):
            f = 42.577 * float(meta["field_strength_t"])
        if te is None or not f:
            continue
        cycles = float(te) / 1000.0 * shift_ppm * float(f) - offset
        out[key] = round(abs(cycles - round(cycles)), 4)
    return out


def read_study_figures(study_dir: str | Path | None, lesions_dir: str | Path,
                       measurements: dict[str, Any], shift_ppm: float,
                       liver_t2_by_field: dict[str, float] | None = None) -> tuple[dict[str, float | str], list[str]]:
    """Study figures from every source present (a string: why that figure is missing), and which files they came
    from. The lesions folder is read after the study folder, so its figures win."""
    figures: dict[str, float | str] = {}
    used = []
    figures.update(_figures_from(measurements.get("study")))
    for folder in [p for p in (study_dir, lesions_dir) if p is not None]:
        path = Path(folder) / FIGURES
        if path.exists():
            figures.update(_figures_from(read_json_file(path, "liver figures (liver_figures.json)")))
            used.append(str(path))
    if study_dir is not None:
        figures.update(study_folder_figures(study_dir, shift_ppm, liver_t2_by_field))
    return figures, used
