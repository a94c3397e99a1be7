"""Diameter ends placed on the image's edge, between voxel centres.

A mask only says which voxel centres are lesion: the outline lies somewhere between the last lesion centre and
the next liver centre along a chord, up to a voxel apart. The image says where: each voxel reads the average
of its box, so across an edge the signal ramps from the lesion's level to the liver's, and it is half-way
where the outline crosses (the same half-way rule the segmentation uses). Each end of a diameter is moved
along its chord to where the profile of the series with the best contrast at that edge (among those
sampled as finely as the mask's grid: a thick slice blurs the edge) crosses half-way between the lesion's
level next to the edge and the background liver's (the reference region's median) -- only within a voxel
of the mask's end, and only where that contrast is well above the noise; otherwise the mask's end stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .lps import index_of


def backgrounds(images: Mapping[str, Any], sl: tuple[slice, ...],
                ref: np.ndarray) -> list[tuple[np.ndarray, float, float]]:
    """(values, background median, robust background SD) of every image with a measurable background."""
    out = []
    for img in images.values():
        ok = img.valid[sl] if img.valid is not None else np.ones(ref.shape, bool)
        outside = img.values[sl][ref & ok]
        if outside.size < 10:
            continue
        med = float(np.median(outside))
        sd = 1.4826 * float(np.median(np.abs(outside - med)))
        if sd > 0:
            out.append((img.values, med, sd))
    return out


def _crossing(profile: np.ndarray, t: np.ndarray, level: float, rising: bool) -> np.ndarray:
    """Positions t where the profile crosses ``level`` in the given sense (linear between samples)."""
    a, b = profile[:-1] - level, profile[1:] - level
    hit = (a < 0) & (b >= 0) if rising else (a > 0) & (b <= 0)
    i = np.flatnonzero(hit)
    return t[i] + (t[i + 1] - t[i]) * a[i] / (a[i] - b[i])


def _near_edge_level(inside: np.ndarray) -> float:
    """The lesion's level next to its edge: the median of the samples one to one and a half voxels inside the
    mask's end (half a voxel wide, so one noisy sample does not set it). Next to the edge, not the lesion's
    median: a rim round a core meets the liver at the rim's level, whatever the core's."""
    return float(np.median(inside))


def refine_chord(ends_lps: np.ndarray, images: list[tuple[np.ndarray, float, float]], reference: sitk.Image,
                 reach_mm: float, min_contrast_sd: float, step_mm: float = 0.1) -> np.ndarray:
    """The chord's two ends (2, 3 LPS) moved to the image's half-way crossing, each within ``reach_mm``.

    Per end, the image whose level next to the edge differs most from its background (in background SDs) is
    used: the edge of an ablation zone shows on the HBP (its rim), not on the pre-contrast T1 that shows its
    core best."""
    ends = np.asarray(ends_lps, float).copy()
    length = float(np.linalg.norm(ends[1] - ends[0]))
    if length <= 2 * reach_mm or not images:
        return ends
    inner = np.arange(-min(0.5 * length, 1.5 * reach_mm), -reach_mm, step_mm)  # next to the edge, inside
    window = np.arange(-reach_mm, reach_mm + step_mm / 2, step_mm)
    t = np.concatenate([inner, window])
    for e, o in ((0, 1), (1, 0)):
        u = (ends[e] - ends[o]) / length
        idx = index_of(reference, ends[e] + t[:, None] * u).T
        best, score = None, min_contrast_sd
        for values, background, sd in images:
            prof = ndi.map_coordinates(values, idx, order=1, mode="nearest")
            level_in = _near_edge_level(prof[:len(inner)] if len(inner) else prof[:1])
            if abs(level_in - background) / sd > score:
                best, score = (prof, level_in, background), abs(level_in - background) / sd
        if best is None:
            continue
        prof, level_in, background = best
        hits = _crossing(prof[len(inner):], window, 0.5 * (level_in + background), rising=level_in < background)
        if hits.size:
            ends[e] = ends[e] + hits[np.argmin(np.abs(hits))] * u
    return ends
