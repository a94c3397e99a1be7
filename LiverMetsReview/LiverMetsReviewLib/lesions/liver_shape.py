"""Shape checks on the grown liver region that intensity cannot make: the liver is one solid organ whose axial
cross-section narrows from its largest section towards the dome and towards the inferior tip. A region whose
sections grow again beyond that, away from the largest one, has left the liver through a contact with tissue of
similar signal (abdominal wall, bowel, heart) that no thin bridge separates (parameters in
``resources/liver_segmentation.json``, section ``section_taper``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .liver_grid import parameters


def taper_cut(region: np.ndarray, spacing_zyx: Sequence[float], seed_zyx: Sequence[int]) -> np.ndarray:
    """``region`` (z, y, x; axis 0 cranio-caudal, as on the working grid) without the slices beyond the first
    section, walking outward from the largest section, whose area exceeds by more than ``max_rise`` the median
    area of the sections within ``reference_mm`` before it (nearer the largest section). The median over a few
    sections tolerates one section that the growing left short (a slice of lower signal). The side holding the
    seed is never cut: the click is in the liver."""
    p = parameters()["section_taper"]
    area = region.sum(axis=(1, 2)).astype(float)
    if not area.any():
        return region
    top = int(np.argmax(area))
    dz = float(spacing_zyx[0])
    rise, reach = 1.0 + float(p["max_rise"]), float(p["reference_mm"])
    out = region.copy()
    for step in (1, -1):
        z = top + step
        while 0 <= z < len(area) and area[z] > 0:
            before = [area[k] for k in range(z - step, top - step, -step) if abs(z - k) * dz <= reach + 1e-6]
            if before and area[z] > rise * float(np.median(before)):
                lo, hi = (z, len(area)) if step == 1 else (0, z + 1)
                if not lo <= int(seed_zyx[0]) < hi:
                    out[lo:hi] = False
                break
            z += step
    return out
