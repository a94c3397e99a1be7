"""The partial-volume classifier behind the one-click segment: tissue classes in liver z-units and the mixtures
of two of them that a voxel on an edge reads.

A voxel averages what its box holds, so a voxel on the border of two tissues lies on the segment between their
values (per channel: a series with larger voxels blurs the edge more, so each channel has its own fraction).
Mixtures considered: liver + a lesion compartment and blood + a lesion compartment (lesion when the lesion's
share is at least half: a partial-volume edge lies at the half-way point), two compartments (lesion), and
liver + blood (a vessel's edge in the liver: never lesion). Blood is a class only when a vessel was found
round the click (vessels.py): a vessel running through a lesion (focal fat round a portal branch) is then the
lesion's other neighbour besides the liver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class TissueClass:
    """A Gaussian class in z-space (liver units): centre and per-channel spread."""

    mu: np.ndarray
    s: np.ndarray

    def d2(self, z: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (z.ndim - 1)
        return (((z - self.mu.reshape(shape)) / self.s.reshape(shape)) ** 2).sum(axis=0)

    def score(self, z: np.ndarray) -> np.ndarray:
        """-2 log-likelihood up to a constant shared by every class."""
        return self.d2(z) + 2.0 * float(np.log(self.s).sum())


# the fewest samples a class is estimated from: the median and MAD of fewer are set by one or two of them
MIN_CLASS_SAMPLES = 5


def fit_class(zv: np.ndarray, fallback: np.ndarray) -> TissueClass:
    """Median/MAD of samples (channels, n); spread never below the liver's (1 in z units); ``fallback`` with the
    liver's spread from fewer than ``MIN_CLASS_SAMPLES``."""
    if zv.shape[1] < MIN_CLASS_SAMPLES:
        return TissueClass(fallback, np.ones_like(fallback))
    mu = np.median(zv, axis=1)
    s = 1.4826 * np.median(np.abs(zv - mu[:, None]), axis=1)
    return TissueClass(mu, np.maximum(s, 1.0))


EDGE, INNER, BACKGROUND = "edge", "inner", "background"


def mixing_lines(protos: Sequence[TissueClass],
                 vessels: Sequence[TissueClass] = ()) -> list[tuple[TissueClass, TissueClass, str]]:
    """Segments in z-space along which partial-volume voxels lie, each with its kind: EDGE (liver or blood to a
    compartment: the lesion fraction is the position along it), INNER (two compartments: lesion) or BACKGROUND
    (liver to blood: not lesion). Lesion mixtures come first, so an exact tie goes to the lesion."""
    liver = TissueClass(np.zeros_like(protos[0].mu), np.ones_like(protos[0].mu))
    lines = [(liver, p, EDGE) for p in protos]
    lines += [(a, b, INNER) for i, a in enumerate(protos) for b in protos[i + 1:]]
    lines += [(v, p, EDGE) for v in vessels for p in protos]
    lines += [(liver, v, BACKGROUND) for v in vessels]
    return lines


def classify(z: np.ndarray, protos: Sequence[TissueClass], outlier: float, overshoot: float = 0.0,
             sharpness: np.ndarray | None = None,
             vessels: Sequence[TissueClass] = (), one_fraction: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lesion voxels of samples z (channels, n) and their smallest partial-volume residual.

    Each voxel is explained as a mixture of two classes (:func:`mixing_lines`). The mixing fraction may differ
    per channel (a 6 mm T2 slice blurs an edge more than a 3 mm HBP slice), so a channel's value anywhere
    between the two classes costs nothing; only values beyond both (a vessel brighter than liver and lesion, fat
    darker than both) leave a residual. The best mixture decides: on an EDGE line lesion when its lesion
    fraction, weighted by each channel's contrast and sharpness (a series with voxels larger than the
    reference's blurs the edge, so it says less about where the edge is), is at least half, and the residual is
    within noise. Beyond the compartment's centre (away from the liver) a value may go ``overshoot`` times the
    liver-to-compartment distance further at no cost: the centre is estimated from a lesion that is not uniform.
    Not so away from blood: a lesion that enhances lies between liver and blood on some series, and beyond it away
    from blood lies the liver. The series sampled on the reference grid share one fraction on every line that
    involves blood (a voxel holds one mixture), and with ``one_fraction`` on the liver-to-compartment lines too
    (the test for unexplained tissue round a region: a rim that lies between the liver and a nodule on each series
    separately, at different fractions, is no partial volume of the nodule).
    """
    best = np.full(z.shape[1], np.inf)
    lesion = np.zeros(z.shape[1], bool)
    lines = mixing_lines(protos, vessels)
    liver = lines[0][0]
    for a, b, kind in lines:
        one = a is not liver or kind == BACKGROUND or one_fraction
        shared = sharpness >= 0.999 if (one and sharpness is not None) else None
        r2, t_c = line_fit(z, a, b, overshoot if kind == EDGE and a is liver else 0.0, shared)
        better = r2 < best
        best = np.where(better, r2, best)
        if kind == EDGE:
            w = (b.mu - a.mu) ** 2 * (1.0 if sharpness is None else sharpness)
            t = (w[:, None] * np.minimum(t_c, 1.0)).sum(axis=0) / max(float(w.sum()), 1e-12)
            lesion = np.where(better, t >= 0.5, lesion)
        else:
            lesion = np.where(better, kind == INNER, lesion)
    return lesion & (best < outlier), best


def line_fit(z: np.ndarray, a: TissueClass, b: TissueClass, overshoot: float = 0.0,
             shared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Residual (chi-square units) of samples z (channels, n) on the mixture of ``a`` and ``b`` whose fraction of
    ``b`` may differ per channel (0 to 1 + ``overshoot``), and those per-channel fractions (channels, n).
    ``shared`` (bool per channel): channels sampled on the reference grid, whose voxels hold the same mixture, so
    they share one fraction (least squares, 0 to 1 + ``overshoot``); used for blood, whose mixtures with liver and
    lesion lie on either side of an enhancing lesion on some series and would otherwise explain almost anything."""
    d = (b.mu - a.mu)[:, None]
    safe = np.where(np.abs(d) > 1e-9, d, 1.0)
    t_c = np.clip((z - a.mu[:, None]) / safe, 0.0, 1.0 + overshoot) * (np.abs(d) > 1e-9)
    if shared is not None and shared.any():
        w = (d[shared] / (0.5 * (a.s + b.s)[shared, None])) ** 2
        proj = (w * (z[shared] - a.mu[shared, None]) / np.where(w > 0, d[shared], 1.0)).sum(axis=0)
        t_c[shared] = np.clip(proj / max(float(w.sum()), 1e-12), 0.0, 1.0 + overshoot)
    # Beyond b the spread grows on from a's to b's (a liver line: from 1), never below the smaller of the two.
    spread = np.maximum((1.0 - t_c) * a.s[:, None] + t_c * b.s[:, None], np.minimum(a.s, b.s)[:, None])
    return (((z - a.mu[:, None] - t_c * d) / spread) ** 2).sum(axis=0), t_c
