"""The liver mask's edge test against noise (``liver_grid.edges`` with the body, ``noise_edge_level``): a signal
change that the image's noise alone makes is no edge. Checked on drawn white noise over flat tissue, where the
truth is the definition itself: the fraction of voxels still called edges is 1 - ``edge_noise.quantile``, whatever
the noise level and grid; a real step between two tissues stays an edge."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.lesions.liver_grid import _value, edges, parameters


def _smoothed(arr: np.ndarray, spacing_xyz: tuple[float, float, float]) -> sitk.Image:
    """``arr`` on a working grid, smoothed as ``liver_grid.prepared`` smooths it."""
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing(spacing_xyz)
    return sitk.SmoothingRecursiveGaussian(img, float(_value("smoothing_sigma_mm")))


@pytest.mark.parametrize("sigma,spacing,seed", [(4.0, (3.0, 3.0, 3.0), 1), (15.0, (3.0, 3.0, 3.0), 2),
                                                (8.0, (3.0, 3.0, 7.7), 3), (40.0, (3.0, 3.0, 3.0), 5)])
def test_noise_alone_leaves_the_expected_fraction_of_edges(sigma, spacing, seed):
    """Flat tissue (signal 100) with white Gaussian noise of ``sigma`` (4-40 % of the signal before smoothing: a
    T2 fat-sat to a noisy T1 gradient echo): the voxels whose change is kept as an edge are 1 - quantile of them
    (drawn noise, another block than the estimator's own), and no more than that fail the liver's calm test
    (change below ``edge_fraction`` of the signal). Without the noise test, at 40 % noise half of the flat tissue
    failed it (0.49 on this draw; 0.23 at 30 %)."""
    rng = np.random.default_rng(seed)
    shape = (30, 80, 80)
    work = _smoothed(100.0 + rng.normal(0.0, sigma, shape), spacing)
    edge = edges(work, np.ones(shape, bool))[(slice(3, -3),) * 3]
    expected = 1.0 - float(parameters()["edge_noise"]["quantile"])
    kept = float(np.mean(edge > 0))
    assert abs(kept - expected) <= 0.3 * expected, (kept, expected)
    assert float(np.mean(edge >= float(_value("edge_fraction")) * 100.0)) <= 1.3 * expected


def test_a_step_between_tissues_stays_an_edge():
    """Two tissues (100 and 200) meeting on a plane, with noise of 8 % of the darker: every voxel on either side
    of the plane is still an edge, and far from it about a tenth as in flat tissue."""
    rng = np.random.default_rng(4)
    shape = (30, 80, 80)
    arr = np.full(shape, 100.0)
    arr[:, :, 40:] = 200.0
    work = _smoothed(arr + rng.normal(0.0, 8.0, shape), (3.0, 3.0, 3.0))
    edge = edges(work, np.ones(shape, bool))
    assert np.all(edge[3:-3, 3:-3, 39:41] > 0)
    assert np.mean(edge[3:-3, 3:-3, 3:30] > 0) <= 0.2
