"""One-click lesion segmentation on drawn phantoms (``vary=True``: sizes, outlines, positions and tissue values
drawn per study), one small study per scenario, clicked at the centre and 30 % of the smallest semi-axis off it.

The small phantom (3 x 3 mm pixels, 6 mm slices) is what keeps this in ``make test``; the issue's bar (Dice >=
0.85 from 8 mm, >= 0.7 below) is checked at standard size by ``benchmarks/validate_lesions.py`` (figures in
benchmarks/README.md). Here: no lesion of 8 mm or more is missed or refused (but those that differ from the
liver by fat alone), their median Dice reaches 0.85 and
at least 75 % of their clicks reach 0.7 (a guard at today's level, below the issue's bar; what remains below is
listed in benchmarks/README.md: ablation zones and large heterogeneous lesions on coarse voxels).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import SimpleITK as sitk
from lesion_fixtures import LIVER_LABEL, dice, truth_mask

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.lesions.channels import lesion_channels
from LiverMetsReviewLib.lesions.segment import segment_lesion
from LiverMetsReviewLib.phantom import generate_phantom

SCENARIOS = ("normal", "steatosis", "reduced_hbp", "pseudocirrhosis")
OFFSET = np.array([0.6, -0.64, 0.48])  # a direction of unit length (0.36 + 0.41 + 0.23)


@cache
def _clicks() -> list[tuple[str, float, float, float]]:
    """(type, diameter mm, offset, Dice) of every click; Dice -1 when the click was refused."""
    out = []
    for i, scenario in enumerate(SCENARIOS):
        study = generate_phantom(400 + i, scenario, size="small", vary=True)
        images = lesion_channels(study.series)
        liver = sitk.Cast(study.labelmap == LIVER_LABEL, sitk.sitkUInt8)
        for les in study.truth["lesions"]:
            truth = truth_mask(study, les["label"], images.reference)
            for off in (0.0, 0.3):
                seed = np.array(les["centre_mm"]) + off * min(les["semi_axes_mm"]) * OFFSET
                try:
                    d = dice(segment_lesion(images, seed, liver_mask=liver).full_mask(), truth)
                except LiverMetsError:
                    d = -1.0
                out.append((les["type"], float(les["diameter_mm"]), off, d))
    return out




# Lesions that differ from the liver by fat alone: they are seen on the fat-signal channel only (Dixon fat image,
# else in minus opposed phase; lesion_segmentation.json "derived"), and a 10 mm fat sparing a few fat percentage
# points from a mildly steatotic liver, on 3 x 3 x 6 mm voxels, is still refused as not differing: a known gap
# (benchmarks/README.md).
FAT_ONLY = ("focal_fat_sparing", "focal_hypersteatosis")


def test_lesions_of_8_mm_or_more_are_outlined():
    big = [(t, dia, off, d) for t, dia, off, d in _clicks() if dia >= 8.0 and t != "focal_hypersteatosis"]
    assert len(big) >= 16
    assert all(d > 0.0 or t in FAT_ONLY and d < 0 for t, _, _, d in big), [c for c in big if c[-1] <= 0.0]
    dices = np.array([d for *_, d in big if d >= 0])
    assert np.median(dices) >= 0.85, big
    # a guard at today's level, NOT the bar: on 3 x 3 x 6 mm voxels about a fifth of the large
    # heterogeneous lesions (colorectal, ablation zones) stay below 0.7 (benchmarks/README.md)
    assert np.mean(dices >= 0.7) >= 0.75, [c for c in big if c[-1] < 0.7]
