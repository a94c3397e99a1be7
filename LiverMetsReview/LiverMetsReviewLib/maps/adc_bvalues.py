"""b-values of a DWI series: normalised, grouped into shells, chosen, and directions combined into trace images.

Two b-values are one shell within the configured tolerance (``maps_defaults.json``, section ``adc``); b below
``b_value_zero_below_s_mm2`` counts as b = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError, MissingDataError
from .defaults import defaults
from .resample import as_float_array, match_to_reference, to_image


def _normalise_b(b_values: Sequence[float]) -> list[float]:
    try:
        bs = [float(b) for b in b_values]
    except (TypeError, ValueError) as exc:
        raise LiverMetsError(f"b-values must be numbers (got {list(b_values)!r})") from exc
    if any(not np.isfinite(b) or b < 0 for b in bs):
        raise LiverMetsError(f"b-values must be finite and >= 0 s/mm^2 (got {bs})")
    zero_below = defaults("adc")["b_value_zero_below_s_mm2"]
    return [0.0 if b < zero_below else b for b in bs]


def _same_b(a: float, b: float) -> bool:
    """Two b-values are one shell when they differ by less than the configured absolute/relative tolerance."""
    cfg = defaults("adc")
    return abs(a - b) <= max(cfg["b_value_group_tolerance_s_mm2"], cfg["b_value_group_tolerance_relative"] * max(a, b))


def _groups(bs: Sequence[float]) -> list[list[int]]:
    """Indices grouped by b-value (within the configured tolerance), in order of first appearance."""
    groups: list[list[int]] = []
    for i, b in enumerate(bs):
        for g in groups:
            if _same_b(bs[g[0]], b):
                g.append(i)
                break
        else:
            groups.append([i])
    return groups


def repeated_b_values(b_values: Sequence[float]) -> list[float]:
    """The b-values given more than once (within the grouping tolerance): directions or repeats to combine."""
    bs = _normalise_b(b_values)
    return sorted({bs[g[0]] for g in _groups(bs) if len(g) > 1})


def combine_directions(images: Sequence[sitk.Image], b_values: Sequence[float], *,
                       is_trace: Sequence[bool] | None = None) -> tuple[list[sitk.Image], list[float], list[str]]:
    """One image per b-value: a scanner trace image is used as such, otherwise the geometric mean of the directions.

    The geometric mean of the directional images is the trace-weighted image (ln of it is the mean of the
    directional ln S), which is what a rotation-invariant ADC needs. Returns (images, b-values, notes).
    """
    if len(images) != len(b_values):
        raise LiverMetsError(f"{len(images)} images but {len(b_values)} b-values: give one b-value per image")
    bs = _normalise_b(b_values)
    trace = list(is_trace) if is_trace is not None else [False] * len(images)
    out_images: list[sitk.Image] = []
    out_b: list[float] = []
    notes: list[str] = []
    for g in _groups(bs):
        b = float(np.mean([bs[i] for i in g]))
        traces = [i for i in g if trace[i]]
        if traces:
            out_images.append(images[traces[0]])
            if len(g) > 1:
                notes.append(f"b={b:g}: the scanner's trace image was used; {len(g) - 1} other image(s) ignored")
        elif len(g) == 1:
            out_images.append(images[g[0]])
        else:
            ref = images[g[0]]
            logs = []
            for i in g:
                arr, _, note = match_to_reference(ref, images[i], f"b={b:g} image {i}")
                if note:
                    notes.append(note)
                a = as_float_array(arr, f"b={b:g} image {i}")
                with np.errstate(divide="ignore", invalid="ignore"):
                    logs.append(np.log(np.maximum(a, 0.0)))
            with np.errstate(invalid="ignore", over="ignore"):
                gm = np.exp(np.mean(np.stack(logs), axis=0))
            gm = np.nan_to_num(gm, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
            out_images.append(to_image(gm, ref))
            notes.append(f"b={b:g}: geometric mean (trace) of {len(g)} diffusion directions/repeats")
        out_b.append(b)
    return out_images, out_b, notes


def _select(bs: list[float], include: Sequence[float] | None, exclude_below: float | None) -> tuple[list[int], list]:
    keep = list(range(len(bs)))
    if include is not None:
        inc = _normalise_b(include)
        missing = [b for b in inc if not any(_same_b(b, x) for x in bs)]
        if missing:
            raise MissingDataError(f"requested b-values {missing} are not among the inputs {bs}; choose from those")
        keep = [i for i in keep if any(_same_b(bs[i], b) for b in inc)]
    if exclude_below is not None:
        keep = [i for i in keep if bs[i] >= float(exclude_below)]
    excluded = [bs[i] for i in range(len(bs)) if i not in keep]
    return keep, excluded
