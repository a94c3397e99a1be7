"""Rician noise of magnitude MR images, and its moments (for tests and the ground truth).

The scanner measures a complex signal with independent Gaussian noise of standard deviation ``sigma`` in
the real and imaginary channels; a magnitude image is |S + n_re + i*n_im|. In the background (S = 0) this
is Rayleigh distributed: mean sigma*sqrt(pi/2), standard deviation sigma*sqrt(2 - pi/2).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import LiverMetsError

RAYLEIGH_MEAN_FACTOR = math.sqrt(math.pi / 2.0)
RAYLEIGH_STD_FACTOR = math.sqrt(2.0 - math.pi / 2.0)


def add_rician_noise(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of ``signal`` (real or complex) plus complex Gaussian noise of per-channel std ``sigma``.

    Returns float32. ``sigma == 0`` gives the noise-free magnitude (no random numbers drawn).
    """
    if not (sigma >= 0.0 and math.isfinite(sigma)):
        raise LiverMetsError(f"noise sigma {sigma} is not a finite non-negative number; check the SNR setting")
    s = np.asarray(signal)
    if sigma == 0.0:
        return np.abs(s).astype(np.float32)
    noise_re = rng.standard_normal(s.shape, dtype=np.float32)
    noise_im = rng.standard_normal(s.shape, dtype=np.float32)
    sig = np.float32(sigma)
    if np.iscomplexobj(s):
        re = s.real.astype(np.float32) + sig * noise_re
        im = s.imag.astype(np.float32) + sig * noise_im
    else:
        re = s.astype(np.float32) + sig * noise_re
        im = sig * noise_im
    return np.hypot(re, im).astype(np.float32, copy=False)


def sigma_for_snr(reference_signal: float, snr: float) -> float:
    """Per-channel noise std giving ``snr`` = reference_signal / sigma (``snr = inf`` means noise-free)."""
    if not snr > 0:
        raise LiverMetsError(f"SNR {snr} is not positive; give a positive SNR (or inf for noise-free images)")
    if math.isinf(snr):
        return 0.0
    if not reference_signal > 0:
        raise LiverMetsError("the SNR reference tissue has no signal in this series; choose another reference tissue")
    return float(reference_signal) / float(snr)
