"""The values a checklist rule reads: a flat ``{key: number or None}`` per lesion and per study.

Lesion keys are ``lesion.<image>.<region>.<statistic>`` (e.g. ``lesion.adc.rim.median``,
``lesion.t1_hepatobiliary.reference.median``), ``lesion.<image>.ratio`` (lesion-to-liver signal ratio) and
``lesion.<geometry>`` (``lesion.long_axis``, ``lesion.volume``, ``lesion.capsule_distance``), built from the
rows ``livermets measure`` writes (``measurements.json``) or from :class:`~..lesions.measure.Measurement`
objects. Study keys are ``study.<figure>`` (``checklist.json`` lists the ones it reads). Derived keys
(differences, ratios, first-available) are defined in ``checklist.json`` and computed here by a whitelist of
operations, never by ``eval``. A value that cannot be measured is ``None`` and ``why`` says why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

GEOMETRY = ("long_axis", "short_axis", "volume", "capsule_distance")


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def measurement_key(key: str, image: str, region: str, statistic: str) -> str:
    """The flat value key of one measurement row."""
    if key == "lesion_to_liver_ratio":
        return f"lesion.{image}.ratio"
    if not image:
        return f"lesion.{key}"
    return f"lesion.{image}.{region}.{statistic}"


def lesion_values(rows: Iterable[Mapping[str, Any] | Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """Values and reasons-for-missing from measurement rows (dicts of measurements.json, or Measurement objects)."""
    values: dict[str, float | None] = {}
    why: dict[str, str] = {}
    for r in rows:
        if not isinstance(r, Mapping):
            r = {"quantity": r.key, "image": r.image, "region": r.region, "statistic": r.statistic,
                 "value": r.value, "why": r.why}
        k = measurement_key(r["quantity"], r.get("image") or "", r.get("region") or "", r.get("statistic") or "")
        values[k] = _finite(r.get("value"))
        if values[k] is None and r.get("why"):
            why[k] = str(r["why"])
    return values, why


def median_fill(interior: float, edge_min: float) -> float:
    """The lesion's share of the segment's median voxel. Interior voxels (share ``interior``) are filled; an edge
    voxel's share is uniform between ``edge_min`` and 1. The median voxel has the fill m with
    P(fill > m) = 1/2: interior + (1 - interior) (1 - m) / (1 - edge_min) = 1/2."""
    if interior >= 0.5:
        return 1.0
    return 1.0 - (1.0 - edge_min) * (0.5 - interior) / (1.0 - interior)


def _undilute(value: float | None, baseline: float, fill: float | None) -> float | None:
    """A contrast measured on a partly filled segment restored to the lesion's own: baseline + (v - b) / fill."""
    if value is None:
        return None
    return value if fill is None else baseline + (value - baseline) / fill


def _op(name: str, args: list[float | None], spec: Mapping[str, Any]) -> float | None:
    present = [a for a in args if a is not None]
    if name == "median_fill":  # the lesion share of the voxel the segment's median comes from (checklist.json)
        return None if args[0] is None else median_fill(args[0], spec["edge_fill_min"])
    if name == "undilute_ratio":  # a lesion-to-liver ratio (liver = 1); unchanged when the fill is unknown
        return _undilute(args[0], 1.0, args[1])
    if name == "undilute_excess":  # a lesion-minus-liver difference (liver = 0)
        return _undilute(args[0], 0.0, args[1])
    if name == "undilute_toward":  # an absolute value (e.g. ADC) diluted toward the liver's (second argument)
        return None if args[1] is None else _undilute(args[0], args[1], args[2])
    if name == "first":
        return present[0] if present else None
    if name in ("min", "max"):  # of what is measured (a thin lesion has no core)
        return (min if name == "min" else max)(present) if present else None
    if len(present) < len(args):
        return None
    if name == "difference":
        return args[0] - args[1]
    if name == "ratio":
        return args[0] / args[1] if args[1] else None
    if name == "re_from_ratios":  # lesion RE (%) from post and pre lesion/liver ratios and the liver's RE (%)
        return (args[0] / args[1] * (1.0 + args[2] / 100.0) - 1.0) * 100.0 if args[1] else None
    if name == "product":
        return args[0] * args[1]
    if name == "t2_time_ratio":  # T2 lesion/liver from the T2w signal ratio, TE and the liver's T2 (checklist.json)
        if args[0] <= 0:
            return None
        denom = 1.0 - math.log(args[0]) * args[2] / args[1]
        return 20.0 if denom <= 0.05 else 1.0 / denom
    if name == "fat_free":  # a fat-suppressed signal (ratio) restored to its fat-free value: / (1 - fat/100)
        return args[0] * 100.0 / (100.0 - args[1]) if args[1] < 100.0 else None
    if name == "water_factor":  # (100 - liver fat) / (100 - lesion fat): fat-suppressed signal scales with water
        return (100.0 - args[0]) / (100.0 - args[1]) if args[1] < 100.0 else None
    raise KeyError(name)  # pragma: no cover - the loader's schema check refuses unknown operations


DERIVED_OPS = ("first", "difference", "ratio", "min", "max", "product", "water_factor",
               "re_from_ratios", "fat_free", "t2_time_ratio", "median_fill", "undilute_ratio", "undilute_excess",
               "undilute_toward")


def add_derived(values: dict[str, float | None], why: dict[str, str], derived: Mapping[str, Mapping[str, Any]]
                ) -> None:
    """Compute every derived key in data order (a derived key may use an earlier one)."""
    for key, spec in derived.items():
        args = [values.get(a) for a in spec["of"]]
        v = _op(spec["op"], args, spec)
        values[key] = None if v is None else round(v, 6)
        if v is None:
            missing = [a for a, x in zip(spec["of"], args, strict=True) if x is None]
            reasons = [why[a] for a in missing if a in why]
            why[key] = (f"needs {', '.join(missing)}" + (f" ({'; '.join(reasons)})" if reasons else "")
                        if missing else "division by zero")


def study_values_from_lesions(lesions: Mapping[str, Mapping[str, float | None]],
                              fallbacks: Mapping[str, str]) -> dict[str, tuple[float, str]]:
    """Study figures estimated from every lesion's background-liver shell (median over lesions).

    Used only when no study-level figure was measured (``liver_figures.json``): each lesion's reference shell
    is liver parenchyma near it, so their median is a fair estimate of the liver's value, and it says so.
    """
    out = {}
    for study_key, lesion_key in fallbacks.items():
        vals = [v[lesion_key] for v in lesions.values() if v.get(lesion_key) is not None]
        if vals:
            out[study_key] = (round(statistics.median(vals), 4),
                              f"median of {len(vals)} lesion background-liver shell(s) ({lesion_key})")
    return out
