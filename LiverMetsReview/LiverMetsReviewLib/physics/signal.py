"""MR signal equations shared by the phantom (forward model) and the maps (inverse): tissue parameters in, signals out.

Every function is vectorized (any array shape, broadcasting) and states its equation. Conventions:
times in ms, rates in 1/s, concentrations in mmol/L, ADC in 10^-6 mm^2/s, b in s/mm^2, fat fraction as a
0..1 fraction inside this module (the tissue model stores percent). A voxel's proton density ``pd`` is
split into water ``W = pd*(1-ff)`` and fat ``F = pd*ff``; the compartment's T1/T2 belong to water, the fat
component uses the protocol's fat relaxation times, and gadoxetate relaxes water only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import LiverMetsError
from ..resources import load_json

ArrayLike = np.ndarray | float
PROTOCOL_FILE = "phantom_protocol.json"


# --- relaxation ----------------------------------------------------------------------------------------------------

def rate_per_s(time_ms: ArrayLike) -> np.ndarray:
    """Relaxation rate 1000/T (1/s); 0 where T <= 0 (empty voxels, never NaN)."""
    t = np.asarray(time_ms, dtype=np.float64)
    safe = np.where(t > 0, t, 1.0)
    return np.where(t > 0, 1000.0 / safe, 0.0)


def r1_with_gadoxetate(t1_ms: ArrayLike, c_ecs_mM: ArrayLike, c_hep_mM: ArrayLike,
                       r1_ecs: float, r1_hep: float) -> np.ndarray:
    """Longitudinal rate with contrast (fast exchange): R1 = 1/T1 + r1_ecs*C_ecs + r1_hep*C_hep (1/s)."""
    return rate_per_s(t1_ms) + r1_ecs * np.asarray(c_ecs_mM) + r1_hep * np.asarray(c_hep_mM)


def r2_with_gadoxetate(t2_ms: ArrayLike, c_ecs_mM: ArrayLike, c_hep_mM: ArrayLike,
                       r2_ecs: float, r2_hep: float) -> np.ndarray:
    """Transverse rate (T2 or T2*) with contrast: R2 = 1/T2 + r2_ecs*C_ecs + r2_hep*C_hep (1/s)."""
    return rate_per_s(t2_ms) + r2_ecs * np.asarray(c_ecs_mM) + r2_hep * np.asarray(c_hep_mM)


def spoiled_gre_factor(r1_per_s: ArrayLike, tr_ms: float, flip_deg: float) -> np.ndarray:
    """Steady-state spoiled GRE (FLASH) T1 weighting: sin(a)*(1-E1)/(1-cos(a)*E1), E1 = exp(-TR*R1)."""
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-np.asarray(r1_per_s, dtype=np.float64) * tr_ms / 1000.0)
    return np.sin(a) * (1.0 - e1) / (1.0 - np.cos(a) * e1)


def saturation_recovery_factor(r1_per_s: ArrayLike, tr_ms: float) -> np.ndarray:
    """Spin-echo T1 weighting with long TR (90 deg excitation, full refocusing): 1 - exp(-TR*R1)."""
    return 1.0 - np.exp(-np.asarray(r1_per_s, dtype=np.float64) * tr_ms / 1000.0)


# --- gradient echo -------------------------------------------------------------------------------------------------

def gre_complex(pd: ArrayLike, ff: ArrayLike, r1_water: ArrayLike, r1_fat: ArrayLike, r2star: ArrayLike,
                te_ms: float, tr_ms: float, flip_deg: float, c_te: complex, fat_scale: float = 1.0) -> np.ndarray:
    """Complex spoiled GRE signal at TE (water on resonance, ideal B0):

    S(TE) = [pd*(1-ff)*g(R1w) + s*pd*ff*g(R1f)*c(TE)] * exp(-TE*R2*),  g = spoiled_gre_factor,
    s = ``fat_scale`` (1 - fat-suppression efficiency, 1 without suppression). One R2* for water and fat.
    """
    pd = np.asarray(pd, dtype=np.float64)
    ff = np.asarray(ff, dtype=np.float64)
    w = pd * (1.0 - ff) * spoiled_gre_factor(r1_water, tr_ms, flip_deg)
    f = fat_scale * pd * ff * spoiled_gre_factor(r1_fat, tr_ms, flip_deg)
    return (w + f * c_te) * np.exp(-np.asarray(r2star, dtype=np.float64) * te_ms / 1000.0)


def gre_magnitude(pd: ArrayLike, ff: ArrayLike, r1_water: ArrayLike, r1_fat: ArrayLike, r2star: ArrayLike,
                  te_ms: float, tr_ms: float, flip_deg: float, c_te: complex, fat_scale: float = 1.0) -> np.ndarray:
    """|S(TE)| of :func:`gre_complex` (in-phase, opposed-phase, each echo of a multi-echo GRE, dynamic T1)."""
    return np.abs(gre_complex(pd, ff, r1_water, r1_fat, r2star, te_ms, tr_ms, flip_deg, c_te, fat_scale))


def dixon_water_fat(pd: ArrayLike, ff: ArrayLike, r1_water: ArrayLike, r1_fat: ArrayLike, r2star: ArrayLike,
                    te1_ms: float, tr_ms: float, flip_deg: float, crosstalk: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Dixon water and fat magnitude images after separation, decayed to the first echo:

    W = pd*(1-ff)*g(R1w)*exp(-TE1*R2*),  F = pd*ff*g(R1f)*exp(-TE1*R2*);
    returned as (W + e*F, F + e*W) with e = ``crosstalk`` (stated imperfect separation; 0 = ideal).
    With equal water and fat T1 and e = 0, F/(W+F) equals the proton-density fat fraction exactly.
    """
    pd = np.asarray(pd, dtype=np.float64)
    ff = np.asarray(ff, dtype=np.float64)
    decay = np.exp(-np.asarray(r2star, dtype=np.float64) * te1_ms / 1000.0)
    w = pd * (1.0 - ff) * spoiled_gre_factor(r1_water, tr_ms, flip_deg) * decay
    f = pd * ff * spoiled_gre_factor(r1_fat, tr_ms, flip_deg) * decay
    return w + crosstalk * f, f + crosstalk * w


# --- spin echo, diffusion ------------------------------------------------------------------------------------------

def spin_echo(pd: ArrayLike, ff: ArrayLike, r1_water: ArrayLike, r2_water: ArrayLike, r1_fat: ArrayLike,
              r2_fat: ArrayLike, te_ms: float, tr_ms: float, fat_suppression_efficiency: float = 0.0) -> np.ndarray:
    """Fat-suppressed (fast) spin echo magnitude, echo at TE_eff:

    S = pd*(1-ff)*(1-exp(-TR*R1w))*exp(-TE*R2w) + (1-eta)*pd*ff*(1-exp(-TR*R1f))*exp(-TE*R2f),
    eta = fat-suppression efficiency. Used for the T2-weighted FSE and as the b=0 signal of the DWI EPI.
    """
    pd = np.asarray(pd, dtype=np.float64)
    ff = np.asarray(ff, dtype=np.float64)
    w = pd * (1.0 - ff) * saturation_recovery_factor(r1_water, tr_ms) * np.exp(-np.asarray(r2_water) * te_ms / 1e3)
    f = pd * ff * saturation_recovery_factor(r1_fat, tr_ms) * np.exp(-np.asarray(r2_fat) * te_ms / 1e3)
    return w + (1.0 - fat_suppression_efficiency) * f


def diffusion_weighted(s0: ArrayLike, adc_1e6_mm2_s: ArrayLike, b_s_mm2: float) -> np.ndarray:
    """Mono-exponential diffusion attenuation: S(b) = S0 * exp(-b * ADC), ADC given in 10^-6 mm^2/s."""
    return np.asarray(s0, dtype=np.float64) * np.exp(-float(b_s_mm2) * np.asarray(adc_1e6_mm2_s) * 1e-6)


def scanner_adc_max() -> float:
    """Ceiling (10^-6 mm^2/s) of the simulated scanner ADC map, from ``phantom_protocol.json`` (with its source)."""
    return float(load_json(PROTOCOL_FILE)["sequences"]["adc"]["max_1e6_mm2_s"])


def adc_log_linear(stacks: Sequence[np.ndarray], b_values: Sequence[float], mask: np.ndarray | None = None,
                   max_adc: float | None = None) -> np.ndarray:
    """Scanner-style ADC (10^-6 mm^2/s): unweighted least-squares slope of ln S against b, negated.

    ADC = -sum_i (b_i - mean b)(ln S_i - mean ln S) / sum_i (b_i - mean b)^2. Signals are floored at a tiny
    positive value before the log; the result is clipped to [0, max_adc] (default :func:`scanner_adc_max`) and set
    to 0 outside ``mask``.
    """
    if max_adc is None:
        max_adc = scanner_adc_max()
    b = np.asarray(b_values, dtype=np.float64)
    if b.size < 2 or np.ptp(b) <= 0:
        raise LiverMetsError("an ADC fit needs at least two different b-values; acquire or select more b-values")
    db = b - b.mean()
    logs = [np.log(np.maximum(np.asarray(s, dtype=np.float64), 1e-12)) for s in stacks]
    mean_log = sum(logs) / len(logs)
    slope = sum(w * (lg - mean_log) for w, lg in zip(db, logs, strict=True)) / float(np.sum(db * db))
    adc = np.clip(-slope * 1e6, 0.0, max_adc)
    if mask is not None:
        adc = np.where(mask, adc, 0.0)
    return adc
