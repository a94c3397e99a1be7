"""Contrast enhancement: relative enhancement and subtraction of a dynamic phase against pre-contrast, and the
hepatobiliary-phase liver-function figures (liver relative enhancement, liver-to-spleen ratio).

RE = (S_post - S_pre) / S_pre x 100 (percent) and subtraction S_post - S_pre (signal units), both on the
pre-contrast grid (the post image is resampled onto it when the grids differ; say so). Register first when the
body moved between breath-holds (:mod:`.registration`). Voxels whose pre-contrast signal is at the noise level (a
test with a stated false-positive rate for pure noise, :mod:`.noise_mask`) have no meaningful RE: masked (0) and
counted by reason.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError, MissingDataError
from .defaults import defaults
from .noise_mask import decide_signal
from .resample import describe_grid, float_view, match_to_reference, to_image, usable_pair
from .summary import stated

RE_UNITS = "percent"


@dataclass
class EnhancementResult:
    """Relative enhancement (percent), subtraction (signal units), validity mask, JSON-able summary (subtraction and
    mask: None when not asked for)."""

    re: sitk.Image
    subtraction: sitk.Image | None
    mask: sitk.Image | None
    summary: dict[str, Any]
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)


def _signal(image: sitk.Image, what: str) -> np.ndarray:
    """The image as a float32 array, refused when all zero or negative: a read-only view of a finite float32 image
    (``image`` must outlive it), else an array of our own (its non-finite voxels are zeroed in place later)."""
    a = float_view(image, what)
    finite = np.isfinite(a)
    if finite.all():   # the usual case: two reductions, no copy
        lo, hi = float(a.min()), float(a.max())
        if lo == 0 and hi == 0:
            raise LiverMetsError(f"the {what} image is all zero (or not finite); check that the right file was given")
        if lo < 0:
            raise LiverMetsError(f"the {what} image has negative values; give magnitude images, not a subtraction")
        return a
    if not np.any(a[finite] != 0):
        raise LiverMetsError(f"the {what} image is all zero (or not finite); check that the right file was given")
    if float(np.min(np.where(finite, a, 0.0))) < 0:
        raise LiverMetsError(f"the {what} image has negative values; give magnitude images, not a subtraction")
    return a if a.flags.writeable else a.copy()


def relative_enhancement(pre: sitk.Image, post: sitk.Image, *, mask: sitk.Image | None = None,
                         noise_floor: float | None = None, phase: str | None = None,
                         maps: Collection[str] = ("subtraction", "mask")) -> EnhancementResult:
    """RE (percent) and subtraction of ``post`` against ``pre``, on the pre-contrast grid.

    ``noise_floor``: pre-contrast signal at or below which RE is masked (default from the image). ``phase``: a
    label for the post-contrast phase (e.g. 't1_hepatobiliary'), carried into the summary. ``maps``: which of the
    subtraction and mask images to build (the CLI builds those it writes); the others are None, and no value, count
    or summary changes.
    """
    cfg = defaults("enhancement")
    notes: list[str] = []
    warnings: list[str] = []
    a_pre = _signal(pre, "pre-contrast")
    moved, cover, note = match_to_reference(pre, post, "post-contrast image")
    if note:  # breath-hold series on different grids: stated as a warning, not only a note
        notes.append(note)
        warnings.append(note)
    a_post = _signal(moved, "post-contrast")
    usable, reasons = usable_pair(pre, a_pre, a_post, cover, mask, notes, warnings)
    dec = decide_signal(a_pre, usable, cfg["noise_floor_fraction_of_p99"], noise_floor=noise_floor,
                        min_snr=float(cfg["min_pre_snr"]))
    floor, valid = dec.floor, dec.keep
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sub = np.subtract(a_post, a_pre)      # float32 throughout, in place: one array per map
        re = np.zeros_like(sub)               # masked voxels stay 0: divided only where valid
        np.divide(sub, a_pre, out=re, where=valid)
        re *= np.float32(100.0)
    # Signals near float32's limit (a corrupt rescale slope) overflow here: masked and counted, never inf.
    overflow_re, overflow_sub = valid & ~np.isfinite(re), usable & ~np.isfinite(sub)
    reasons["overflow"] = int(np.count_nonzero(overflow_re | overflow_sub))
    if reasons["overflow"]:
        valid, usable = valid & ~overflow_re, usable & ~overflow_sub
        re[overflow_re] = 0.0
    sub[~usable] = 0.0
    n = int(re.size)
    summary = {
        "map": "enhancement",
        "phase": phase,
        "formula": {"re": "(post - pre) / pre x 100", "subtraction": "post - pre"},
        "units": {"re": RE_UNITS, "subtraction": "signal units of the input"},
        "noise_floor": float(floor),
        "noise_sigma": dec.sigma,
        "noise_rule": dec.rule,
        "masked_reasons": {**reasons, **dec.reasons()},
        "voxels_total": n,
        "masked_voxels": int(n - np.count_nonzero(valid)),
        "subtraction_masked_voxels": int(n - np.count_nonzero(usable)),
        "coordinate_system": "LPS",
        "grid": describe_grid(pre),
        "notes": notes,
        "warnings": warnings,
    }
    common = {"masked_voxels": summary["masked_voxels"], "coordinate_system": "LPS", **stated(summary)}
    if phase:
        common["phase"] = phase
    metadata = {
        "re": {"quantity": "relative enhancement", "units": RE_UNITS, **common},
        "subtraction": {"quantity": "subtraction (post - pre)", "units": "signal units of the input", **common},
        "mask": {"quantity": "valid voxels (1) / masked (0)", "units": "1", **common},
    }
    return EnhancementResult(to_image(re, pre), to_image(sub, pre) if "subtraction" in maps else None,
                             to_image(valid.view(np.uint8), pre, np.uint8) if "mask" in maps else None, summary,
                             metadata)


def liver_function(pre: sitk.Image, hbp: sitk.Image, labels: sitk.Image, liver_label: int,
                   spleen_label: int) -> dict[str, Any]:
    """HBP liver-function figures from liver and spleen labels (medians, robust to vessels and small lesions).

    Returns liver and spleen relative enhancement (percent), the liver-to-spleen signal ratio in the HBP and
    before contrast, and the liver-spleen contrast index (LSR_hbp / LSR_pre), with voxel counts. HBP and labels
    are put on the pre-contrast grid first (labels with nearest-neighbour).
    """
    notes: list[str] = []
    a_pre = np.nan_to_num(_signal(pre, "pre-contrast"), nan=0.0)
    moved, cover, note = match_to_reference(pre, hbp, "hepatobiliary-phase image")
    if note:
        notes.append(note)
    a_hbp = np.nan_to_num(_signal(moved, "hepatobiliary-phase"), nan=0.0)
    lab_img, lab_cover, lnote = match_to_reference(pre, labels, "label map", label=True)
    if lnote:
        notes.append(lnote)
    lab = sitk.GetArrayViewFromImage(lab_img)
    ok = np.ones(lab.shape, bool) if cover is None else cover
    min_vox = int(defaults("enhancement")["min_label_voxels"])
    stats: dict[str, dict[str, float]] = {}
    for name, value in (("liver", liver_label), ("spleen", spleen_label)):
        region = (lab == value) & ok
        count = int(np.count_nonzero(region))
        if count < min_vox:
            raise MissingDataError(
                f"the {name} label ({value}) covers {count} voxels on the pre-contrast grid (need {min_vox}); "
                f"check the label value and that the label map belongs to this study"
            )
        p, h = float(np.median(a_pre[region])), float(np.median(a_hbp[region]))
        if p <= 0:
            raise LiverMetsError(f"the {name} has no pre-contrast signal (median {p:g}); check the pre-contrast image")
        stats[name] = {"pre_median": p, "hbp_median": h, "voxels": count}
    lsr_hbp = stats["liver"]["hbp_median"] / stats["spleen"]["hbp_median"] if stats["spleen"]["hbp_median"] else 0.0
    lsr_pre = stats["liver"]["pre_median"] / stats["spleen"]["pre_median"]
    return {
        "liver_relative_enhancement_percent": (stats["liver"]["hbp_median"] / stats["liver"]["pre_median"] - 1) * 100,
        "spleen_relative_enhancement_percent": (stats["spleen"]["hbp_median"] / stats["spleen"]["pre_median"] - 1)
        * 100,
        "liver_to_spleen_ratio_hbp": lsr_hbp,
        "liver_to_spleen_ratio_pre": lsr_pre,
        "liver_spleen_contrast_index": lsr_hbp / lsr_pre if lsr_pre else 0.0,
        "statistic": "median over the label",
        "regions": stats,
        "units": {"relative_enhancement": RE_UNITS, "ratios": "1"},
        "coordinate_system": "LPS",
        "notes": notes,
    }
