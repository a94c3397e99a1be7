"""Noise floor and noise level of magnitude images, so that maps mask the background instead of fitting it.

Magnitude MR background is Rayleigh distributed. Sigma comes from the median of the background voxels, corrected
for the truncation at the background threshold and refined by raising the threshold to a few sigma (a first
threshold from the image's 99th percentile may cut the noise distribution). The floor is the larger of a fraction
of the 99th percentile and NOISE_FLOOR_SIGMAS x sigma.
"""

from __future__ import annotations

import math

import numpy as np

NOISE_FLOOR_SIGMAS = 3.0  # Rayleigh noise exceeds 3 sigma with probability exp(-4.5) ~ 1 %
_REFINE_SIGMAS = 4.0      # threshold used to collect background once a first sigma is known
_REFINE_STEPS = 4


def _positive_sample(values: np.ndarray, target: int = 200_000) -> tuple[np.ndarray, float]:
    """A regular subsample of the positive finite values and how many voxels each sample stands for.

    Subsampling first (a strided view), then filtering, keeps a whole volume to one cheap pass; a regular stride is
    plenty for a percentile or a median of the background.
    """
    flat = np.asarray(values).reshape(-1)
    step = flat.size // target if flat.size > 2 * target else 1
    sub = flat[::step]
    return sub[np.isfinite(sub) & (sub > 0)], float(step)


def _percentile(v: np.ndarray, q: float) -> float:
    """``np.percentile(v, q)`` (linear interpolation, same rounding) of a non-empty 1-D array, by one partition.

    ``np.percentile`` routes through ``np.unique``, whose ``np.ma`` check imports numpy's masked-array package
    (~30 ms of a ``livermets`` process that needs nothing else from it)."""
    pos = q / 100.0 * (v.size - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, v.size - 1)
    part = np.partition(v, [lo, hi] if hi > lo else [lo])
    a, b = part[lo], part[hi]
    t = np.asarray(pos - lo, dtype=part.dtype)          # numpy interpolates in the array's own precision
    d = b - a
    return float(b - d * (1 - t) if t >= 0.5 else a + d * t)


def median(v: np.ndarray) -> float:
    """``np.median(v)`` of a non-empty 1-D float array, by one partition: the project's median wherever a process
    may not need numpy.ma otherwise (``np.median`` imports it for its NaN check, as ``np.percentile`` does). Like
    numpy, NaN if any value is NaN (a partition puts NaN last)."""
    n = v.size
    kth = [n // 2, n - 1] if n % 2 else [n // 2 - 1, n // 2, n - 1]
    part = np.partition(v, kth)
    if np.isnan(part[-1]):
        return float("nan")
    if n % 2:
        return float(part[n // 2])
    return float((part[n // 2 - 1] + part[n // 2]) / part.dtype.type(2))     # numpy's mean of the two, same dtype


def distinct_values(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an array: ``np.unique`` without its numpy.ma check (an import of ~30 ms)."""
    v = np.sort(np.asarray(values), axis=None)
    return v[np.concatenate(([True], v[1:] != v[:-1]))] if v.size else v


def robust_max(values: np.ndarray) -> float:
    """99th percentile of the positive finite values (0 when there are none)."""
    v, _ = _positive_sample(values)
    if v.size == 0:
        return 0.0
    return _percentile(v, 99.0)


def _sigma_from_truncated_median(m: float, t: float) -> float | None:
    """Rayleigh sigma whose distribution truncated at ``t`` has median ``m`` (None if no such sigma)."""
    if not (0 < m < t / np.sqrt(2.0)):
        return None  # not a truncated Rayleigh sample (e.g. uniform tissue below the threshold)
    # CDF(m) = CDF(t) / 2 with CDF(v) = 1 - exp(-v^2 / (2 sigma^2)). With x = exp(-m^2 / (2 sigma^2)) and
    # r = t^2 / m^2 > 2 this reads h(x) = x^r / 2 - x + 1/2 = 0: h is convex, h(0) = 1/2 and h(1) = 0 with h'(1) > 0,
    # so exactly one root lies in (0, x_min), x_min = (2 / r)^(1 / (r - 1)) where h is lowest; bisect it to rounding.
    r = (t / m) ** 2
    lo, hi = 0.0, (2.0 / r) ** (1.0 / (r - 1.0))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if 0.5 * mid**r - mid + 0.5 > 0:
            lo = mid
        else:
            hi = mid
    x = 0.5 * (lo + hi)
    if not 0.0 < x < 1.0:
        return None
    sigma = m / math.sqrt(-2.0 * math.log(x))
    return sigma if m / 20.0 <= sigma <= m * 1e3 else None  # the range the estimate is trusted in


def background_sigma(values: np.ndarray, threshold: float, min_voxels: int) -> float | None:
    """Rayleigh sigma of the voxels in (0, threshold); None when there are too few or they are not noise-like."""
    sub, scale = _positive_sample(values)
    t = float(threshold)
    sigma = None
    for _ in range(_REFINE_STEPS):
        v = sub[sub < t]
        if v.size * scale < min_voxels:
            return sigma
        new = _sigma_from_truncated_median(median(v), t)
        if new is None:
            return sigma
        sigma = new
        t_next = _REFINE_SIGMAS * sigma
        if abs(t_next - t) < 1e-3 * t:
            break
        t = t_next
    return sigma


def noise_floor(values: np.ndarray, fraction_of_p99: float, min_voxels: int,
                sigma: float | None = None) -> tuple[float, float | None]:
    """(floor, sigma): the floor below which a voxel is background, and the noise sigma (None if unknown)."""
    floor0 = fraction_of_p99 * robust_max(values)
    if sigma is None:
        sigma = background_sigma(values, floor0, min_voxels)
    floor = floor0 if sigma is None else max(floor0, NOISE_FLOOR_SIGMAS * sigma)
    return float(floor), sigma


ZERO_BACKGROUND_FRACTION = 0.05  # this share of exact zeros means a masked background, not a dark object


def no_background_reason(values: np.ndarray) -> str:
    """Why an image has no noise-only background to measure the noise in, as a clause for a note.

    Exact zeros are what a scanner's or an anonymiser's masking leaves: the background is there but holds no
    noise. Otherwise the body (or the field of view) leaves no air to measure.
    """
    flat = np.asarray(values).reshape(-1)
    step = max(flat.size // 200_000, 1)
    sub = flat[::step]
    finite = sub[np.isfinite(sub)]
    zeros = float(np.count_nonzero(finite == 0)) / max(finite.size, 1)
    if zeros >= ZERO_BACKGROUND_FRACTION:
        return (f"the background is exact zeros ({zeros:.0%} of the voxels, as a scanner's or an anonymiser's masking "
                "leaves it), so it holds no noise to measure")
    return "the image has no noise-only background (the body fills the field of view)"
