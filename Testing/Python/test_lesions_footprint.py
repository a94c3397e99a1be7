"""Rim and core read on the voxels a coarser series sees inside them (lesions/footprint.py): the footprint share
against its analytic value, and a lesion's core on thick slices against the tissue value it was simulated with.

The series are simulated here by averaging a 0.5 mm model over each of their voxels (what an acquisition does),
then measured on a finer reference grid the mask is drawn on, as ``livermets measure`` does."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.lesions.footprint import footprint_shares
from LiverMetsReviewLib.lesions.measure import StudyContext, measure_lesion, prepare_images

FINE = 0.5
SIDE_MM = 72.0
REF_SPACING = (1.5, 1.5, 3.0)


def _grid(spacing, values=None) -> sitk.Image:
    size = [int(round(SIDE_MM / s)) for s in spacing]
    arr = np.zeros(size[::-1], np.float32) if values is None else values.astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin([s / 2 for s in spacing])  # every grid's first voxel starts at 0 mm
    return img


def _series(fine: np.ndarray, spacing) -> sitk.Image:
    """An acquisition on ``spacing``: each voxel the mean of the 0.5 mm model over its box."""
    f = [int(round(s / FINE)) for s in spacing[::-1]]
    n = [k // m for k, m in zip(fine.shape, f, strict=True)]
    v = fine[:n[0] * f[0], :n[1] * f[1], :n[2] * f[2]].reshape(n[0], f[0], n[1], f[1], n[2], f[2]).mean(axis=(1, 3, 5))
    return _grid(spacing, v)


def _distance(centre, spacing) -> np.ndarray:
    n = [int(round(SIDE_MM / s)) for s in spacing[::-1]]
    z, y, x = np.meshgrid(*[(np.arange(k) + 0.5) * s for k, s in zip(n, spacing[::-1], strict=True)],
                          indexing="ij")
    return np.sqrt((z - centre[2]) ** 2 + (y - centre[1]) ** 2 + (x - centre[0]) ** 2)


def _measure(fine: np.ndarray, mask: np.ndarray, spacing, rng) -> object:
    src = _series(fine + rng.normal(0.0, 0.01, fine.shape).astype(np.float32), spacing)
    ref = _grid(REF_SPACING)
    ctx = StudyContext(ref, prepare_images(ref, {"t2": (src, "signal", None)}), liver=np.ones(mask.shape, bool),
                       lesions=mask)
    return measure_lesion(ctx, mask, "L1", rim_mm=3.0)


@pytest.mark.parametrize("seed", range(4))
def test_share_of_a_half_space_on_thick_slices(seed):
    """A slab of reference slices k0..k1 (the region), a series of thicker slices at a drawn offset: the share at
    each reference centre is the linear interpolation of the series' slices' covered fractions."""
    rng = np.random.default_rng(seed)
    ref = _grid(REF_SPACING)
    thick = float(rng.choice([4.5, 5.0, 6.0, 9.0]))
    src = _grid((1.5, 1.5, thick))
    src.SetOrigin([0.75, 0.75, thick / 2 + float(rng.uniform(-thick / 2, thick / 2))])
    k0 = int(rng.integers(6, 10))
    k1 = k0 + int(rng.integers(2, 10))
    region = np.zeros(ref.GetSize()[::-1], bool)
    region[k0:k1] = True
    box = (2, 10, 10)
    got = footprint_shares([region[2:22, 10:30, 10:30]], ref, box, src)[0][:, 10, 10]
    z_lo, z_hi = k0 * REF_SPACING[2], k1 * REF_SPACING[2]  # faces of the region's first and last slices
    z0 = src.GetOrigin()[2]
    for j, g in enumerate(got):
        zc = (box[0] + j + 0.5) * REF_SPACING[2]
        u = (zc - z0) / thick
        i = int(np.floor(u))
        mid = [z0 + (i + d) * thick for d in (0, 1)]
        cover = [max(0.0, min(c + thick / 2, z_hi) - max(c - thick / 2, z_lo)) / thick for c in mid]
        assert g == pytest.approx((1 - (u - i)) * cover[0] + (u - i) * cover[1], abs=1e-5)


def test_same_grid_sees_the_region_itself():
    ref = _grid(REF_SPACING)
    region = _distance((36.0, 36.0, 36.0), REF_SPACING[::-1][::-1]) <= 8.0
    assert np.array_equal(footprint_shares([region], ref, (0, 0, 0), ref)[0], region.astype(np.float32))


@pytest.mark.parametrize("seed", range(6))
def test_core_on_thick_slices_reads_the_lesion_value(seed):
    """A bright lesion (T2-like, 6 mm slices) of drawn radius and position: its core median is the lesion's own
    value (within noise), not a mix with the liver around it, or none with the reason when no core voxel is seen
    free of the rim and liver on 6 mm slices (a core up to 9 mm from its centre to its edge); the old code read
    the core on every voxel whose centre lies in it, and on 6 mm slices those hold liver (the session-16 audit:
    T2 cores 5-15 % low)."""
    rng = np.random.default_rng(100 + seed)
    radius = float(rng.uniform(8.0, 14.0))
    centre = 36.0 + rng.uniform(-3.0, 3.0, 3)
    lesion_value, liver_value = float(rng.uniform(2.0, 4.0)), 1.0
    fine = np.where(_distance(centre, (FINE,) * 3) <= radius, lesion_value, liver_value).astype(np.float32)
    mask = _distance(centre, REF_SPACING) <= radius
    m = _measure(fine, mask, (1.5, 1.5, 6.0), rng)
    core = m.value("signal", "t2", "core", "median")
    if core is None:  # each reference slice mixes two 6 mm slices: a 12 mm span must fit in the core
        why = next(x.why for x in m.measurements if (x.image, x.region, x.statistic) == ("t2", "core", "median"))
        assert "too small for t2" in why and radius - 3.0 < 9.0
    else:
        assert core == pytest.approx(lesion_value, rel=0.005)
