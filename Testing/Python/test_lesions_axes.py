"""Diameters of lesions two voxels across against analytic ellipsoids: drawn size, axis ratios, angle and
sub-voxel position, each voxel the exact average of its box (as a scanner integrates), with noise."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.lesions.measure import MeasuredImage, StudyContext, measure_lesion

SPACING = (1.5, 1.5, 3.0)   # x, y, z mm: the phantom's dynamic series
SHAPE = (13, 41, 41)        # z, y, x


def _ellipsoid(rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """A drawn ellipsoid (rotated about z) and its share of every voxel, counted on 10 x 10 x 10 points."""
    d = rng.uniform(3.5, 6.0)  # longest axial diameter: at most two voxels across once partial volume is counted
    a, b = d / 2, d / 2 * rng.uniform(0.7, 1.0)
    c = d / 2 * rng.uniform(0.7, 1.2)
    centre = (np.array(SHAPE) - 1) / 2 * np.array(SPACING[::-1]) + rng.uniform(-0.5, 0.5, 3) * np.array(SPACING[::-1])
    th = rng.uniform(0, np.pi)
    n = 10
    t = (np.arange(n) + 0.5) / n - 0.5
    share = np.zeros(SHAPE)
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    for oz in t:
        for oy in t:
            for ox in t:
                z = (zz + oz) * SPACING[2] - centre[0]
                y = (yy + oy) * SPACING[1] - centre[1]
                x = (xx + ox) * SPACING[0] - centre[2]
                u = (np.cos(th) * x + np.sin(th) * y) / a
                v = (-np.sin(th) * x + np.cos(th) * y) / b
                share += (u * u + v * v + (z / c) ** 2) <= 1.0
    return {"long": 2 * a, "short": 2 * b}, share / n ** 3


def _measure(share: np.ndarray, rng: np.random.Generator, contrast: float) -> tuple[float, float]:
    ref = sitk.Image(list(SHAPE[::-1]), sitk.sitkFloat32)
    ref.SetSpacing(SPACING)
    values = 100.0 + contrast * share + rng.normal(0.0, 2.0, SHAPE)   # liver 100, noise SD 2
    img = MeasuredImage(values.astype(np.float32), "signal", None, float(np.prod(SPACING)))
    ctx = StudyContext(ref, {"t1_hepatobiliary": img}, liver=np.ones(SHAPE, bool))
    mask = share >= 0.5
    if not mask.any():  # a voxel at least half covered is what a reader's outline holds; else the brightest one
        mask = share == share.max()
    m = measure_lesion(ctx, mask, "L")
    return m.value("long_axis"), m.value("short_axis")


@pytest.mark.parametrize("seed", range(8))
def test_two_voxel_lesion_diameters_within_one_spacing(seed):
    rng = np.random.default_rng(9100 + seed)
    truth, share = _ellipsoid(rng)
    long_, short = _measure(share, rng, contrast=rng.choice([-1.0, 1.0]) * rng.uniform(40.0, 80.0))
    assert long_ == pytest.approx(truth["long"], abs=SPACING[0])
    assert 0 < short <= long_
