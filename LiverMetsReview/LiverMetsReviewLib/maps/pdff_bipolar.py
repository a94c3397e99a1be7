"""Odd/even echo phase inconsistency (bipolar readout) in complex multi-echo data, detected after the fit.

With a bipolar (fly-back-free) readout, odd and even echoes are read with gradients of opposite polarity; eddy
currents and gradient delays then add a phase ``+theta`` to one parity and ``-theta`` to the other. The complex
model (one field map, one initial phase) cannot represent that: the fit bends the fat-water separation to absorb
it, and PDFF can be off by tens of points while the magnitudes, which do not carry the phase, are unaffected.

After the fit, the residual's component along the phase direction of each echo,
``u_n = Im(r_n conj(m_n)) / |m_n|`` (pure noise: N(0, sigma^2) per echo, sigma per real component), is projected
on the alternating pattern ``s_n |m_n|``, ``s_n = (-1)^n``: ``theta_hat = sum s_n |m_n| u_n / sum |m_n|^2``, whose
noise standard deviation is ``sigma / sqrt(sum |m_n|^2)``. Without an odd/even error the z-scores scatter around 0
(|z| has median 0.67 for pure noise; the fit absorbs part, so less); a bipolar error makes them large in most
voxels. The median |z| over the fitted voxels decides, so a few voxels off the model cannot raise the warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .noise import median


def alternating_phase(yc: np.ndarray, model: np.ndarray, s2: float) -> tuple[np.ndarray, np.ndarray]:
    """(theta_hat in radians, z-score) per column of the complex data ``yc`` against the fitted ``model``."""
    n_echo = yc.shape[0]
    sign = np.where(np.arange(n_echo) % 2 == 0, 1.0, -1.0)[:, None]
    mag = np.abs(model)
    u = np.imag((yc - model) * np.conj(model)) / np.maximum(mag, 1e-300)
    energy = np.sum(mag * mag, axis=0)
    theta = np.sum(sign * mag * u, axis=0) / np.maximum(energy, 1e-300)
    sd = np.sqrt(max(s2, 1e-300) / np.maximum(energy, 1e-300))
    return theta, theta / sd


def bipolar_warnings(yc: np.ndarray, model: np.ndarray, s2: float, cfg: dict[str, Any]) -> tuple[list[str],
                                                                                                  dict[str, Any]]:
    """Warnings and a summary record of the odd/even check for the fitted voxels (columns)."""
    if yc.shape[0] < 3 or yc.shape[1] == 0:
        return [], {"checked": False}
    theta, z = alternating_phase(yc, model, s2)
    med_z = median(np.abs(z))
    med_deg = float(np.degrees(median(np.abs(theta))))
    limit = float(cfg["bipolar_median_abs_z_limit"])
    record = {"checked": True, "median_abs_z": round(med_z, 3), "median_abs_phase_deg": round(med_deg, 2),
              "z_limit": limit}
    if med_z <= limit:
        return [], record
    return [f"odd and even echoes disagree in phase (median {med_deg:.1f} degrees alternating between odd and even "
            f"echoes, {med_z:.1f} noise standard deviations; typical of a bipolar readout): the complex fit's PDFF "
            "is unreliable; fit the magnitudes instead (method 'magnitude'), which this phase error does not "
            "affect"], record
