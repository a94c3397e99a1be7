"""Chemical shift of fat: the project's one multi-peak fat spectrum, its phasor and the in/opposed echo physics.

Shared by the phantom (which simulates fat with this spectrum) and the maps (which fit it, and check echo times
against it), so that the inverse assumes exactly what the forward model simulates. Times in ms, frequencies in Hz,
fat fraction as a 0..1 fraction inside this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..resources import load_json
from .signal import ArrayLike, rate_per_s

PROTOCOL_FILE = "phantom_protocol.json"


def default_fat_spectrum() -> dict:
    """The project's one multi-peak fat spectrum (``phantom_protocol.json`` physics), shared by phantom and maps.

    Returns a new dict: ``ppm`` (relative to water), ``amplitudes`` (relative, sum 1), ``gamma_mhz_per_t``,
    ``model`` and ``source``, so that the PDFF fit assumes exactly the spectrum the phantom simulates.
    """
    phys = load_json(PROTOCOL_FILE)["physics"]
    spec = phys["fat_spectrum"]
    amps = [float(a) for a in spec["relative_amplitudes"]]
    total = sum(amps)
    return {"model": str(spec.get("model", "multi-peak fat spectrum")),
            "ppm": [float(v) for v in spec["ppm_relative_to_water"]],
            "amplitudes": [a / total for a in amps],
            "gamma_mhz_per_t": float(phys["gyromagnetic_ratio_mhz_per_t"]),
            "source": str(spec.get("source", ""))}


def fat_peak_frequencies_hz(field_strength_t: float, ppm: Sequence[float], gamma_mhz_per_t: float) -> np.ndarray:
    """Off-resonance of each fat peak relative to water: f_p = gamma/2pi * B0 * ppm_p (MHz*ppm = Hz)."""
    return gamma_mhz_per_t * float(field_strength_t) * np.asarray(ppm, dtype=np.float64)


def fat_phasor(te_ms: ArrayLike, field_strength_t: float, ppm: Sequence[float], amplitudes: Sequence[float],
               gamma_mhz_per_t: float) -> np.ndarray:
    """Complex fat signal at TE relative to water: c(TE) = sum_p a_p * exp(i*2*pi*f_p*TE), sum_p a_p = 1.

    c(0) = 1; a single peak gives c = -1 at opposed and +1 at in-phase echoes; several peaks dephase among
    themselves, so |c| < 1 at later echoes, which is why two-point methods misread fat.
    """
    amps = np.asarray(amplitudes, dtype=np.float64)
    amps = amps / amps.sum()
    freqs = fat_peak_frequencies_hz(field_strength_t, ppm, gamma_mhz_per_t)
    te_s = np.asarray(te_ms, dtype=np.float64)[..., None] / 1000.0
    return np.sum(amps * np.exp(2j * np.pi * freqs * te_s), axis=-1)


def main_peak_shift_hz(field_strength_t: float, ppm: Sequence[float], amplitudes: Sequence[float],
                       gamma_mhz_per_t: float) -> float:
    """Frequency offset (Hz, negative: below water) of the largest fat peak."""
    i = int(np.argmax(np.asarray(amplitudes)))
    return float(fat_peak_frequencies_hz(field_strength_t, ppm, gamma_mhz_per_t)[i])


def in_opposed_echo_times_ms(field_strength_t: float, ppm: Sequence[float], amplitudes: Sequence[float],
                             gamma_mhz_per_t: float, n: int = 1) -> tuple[float, float]:
    """n-th opposed- and in-phase echo times of the main fat peak: TE_op = (n - 1/2)/|df|, TE_ip = n/|df|."""
    df = abs(main_peak_shift_hz(field_strength_t, ppm, amplitudes, gamma_mhz_per_t))
    return 1000.0 * (n - 0.5) / df, 1000.0 * n / df



def fat_water_shift_hz(field_strength_t: float, shift_ppm: float, gamma_mhz_per_t: float) -> float:
    """Size of one fat-water frequency difference (Hz): |ppm| * gamma/2pi * B0 (MHz*ppm = Hz)."""
    return abs(float(shift_ppm)) * float(gamma_mhz_per_t) * float(field_strength_t)


def dephasing_cycles(shift_hz: float, te_ms: float) -> float:
    """Fat-water phase cycles accumulated at TE: shift * TE (whole numbers: in phase; half-integers: opposed)."""
    return float(shift_hz) * float(te_ms) * 1e-3


def chemical_shift_fat_fraction(ip: ArrayLike, op: ArrayLike) -> np.ndarray:
    """Signal fat fraction of an in/opposed-phase pair: FF = (IP - OP) / (2*IP) (0..0.5 range; 0 where IP = 0)."""
    ip = np.asarray(ip, dtype=np.float64)
    op = np.asarray(op, dtype=np.float64)
    return np.where(ip > 0, (ip - op) / (2.0 * np.where(ip > 0, ip, 1.0)), 0.0)


def expected_two_point_fat_fraction(ff: ArrayLike, t2star_ms: ArrayLike, te_op_ms: float, te_ip_ms: float,
                                    c_op: complex, c_ip: complex) -> np.ndarray:
    """Noise-free (IP - OP)/(2*IP) for proton-density weighting (equal water/fat T1), multi-peak fat and T2*:

    IP = |1 - ff + ff*c(TE_ip)| exp(-TE_ip/T2*), OP = |1 - ff + ff*c(TE_op)| exp(-TE_op/T2*).
    Single peak and no decay give ff exactly (ff < 0.5); at 1.5 T the earlier opposed echo decays less, so
    T2* lowers the estimate, and the multi-peak spectrum (|c| < 1) lowers it further.
    """
    ff = np.asarray(ff, dtype=np.float64)
    r2s = rate_per_s(t2star_ms)
    ip = np.abs(1.0 - ff + ff * c_ip) * np.exp(-r2s * te_ip_ms / 1000.0)
    op = np.abs(1.0 - ff + ff * c_op) * np.exp(-r2s * te_op_ms / 1000.0)
    return chemical_shift_fat_fraction(ip, op)
