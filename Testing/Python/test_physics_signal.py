"""Shared physics (signal equations, fat spectrum) against analytic physics (no phantom anatomy needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.phantom.noise import add_rician_noise, sigma_for_snr
from LiverMetsReviewLib.physics import fat as fp
from LiverMetsReviewLib.physics import signal as sg
from LiverMetsReviewLib.resources import load_json

PROTOCOL = load_json("phantom_protocol.json")
SPEC = PROTOCOL["physics"]["fat_spectrum"]
PPM, AMPS = SPEC["ppm_relative_to_water"], SPEC["relative_amplitudes"]
GAMMA = PROTOCOL["physics"]["gyromagnetic_ratio_mhz_per_t"]
SINGLE_PPM, SINGLE_AMP = [-3.4], [1.0]


def flash(t1_ms: float, tr_ms: float, flip_deg: float) -> float:
    """Textbook spoiled-GRE steady state, written out independently of the module."""
    e1 = math.exp(-tr_ms / t1_ms)
    a = math.radians(flip_deg)
    return math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1)


# --- echo times and the fat phasor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("b0, te_op_ref, te_ip_ref", [(1.5, 2.3, 4.6), (3.0, 1.15, 2.3)])
def test_in_opposed_echo_times_follow_the_field_strength(b0, te_op_ref, te_ip_ref):
    te_op, te_ip = fp.in_opposed_echo_times_ms(b0, PPM, AMPS, GAMMA)
    # the brief's clinical values (opposed ~2.3/in ~4.6 ms at 1.5 T; ~1.15/2.3 ms at 3 T)
    assert abs(te_op - te_op_ref) < 0.05 and abs(te_ip - te_ip_ref) < 0.05
    # and the physics: fat's main peak (-3.4 ppm) is half a cycle / one cycle behind water
    df_hz = 3.4e-6 * 42.577478518e6 * b0
    assert te_op == pytest.approx(1000 / (2 * df_hz), rel=1e-9)
    assert te_ip == pytest.approx(1000 / df_hz, rel=1e-9)


def test_fat_phasor_single_peak_is_minus_one_then_one():
    te_op, te_ip = fp.in_opposed_echo_times_ms(1.5, SINGLE_PPM, SINGLE_AMP, GAMMA)
    c = fp.fat_phasor(np.array([0.0, te_op, te_ip]), 1.5, SINGLE_PPM, SINGLE_AMP, GAMMA)
    np.testing.assert_allclose(c, [1.0, -1.0, 1.0], atol=1e-12)


def test_multi_peak_fat_phasor_dephases():
    te_op, te_ip = fp.in_opposed_echo_times_ms(1.5, PPM, AMPS, GAMMA)
    c0, c_op, c_ip = fp.fat_phasor(np.array([0.0, te_op, te_ip]), 1.5, PPM, AMPS, GAMMA)
    assert c0 == pytest.approx(1.0)
    assert abs(c_ip) < 0.95            # the minor peaks are out of step with the main one at the in-phase echo
    assert c_op.real > -0.9            # and fat cancels water less at the opposed echo
    # explicit sum of the six peaks at the opposed echo, computed here from the spectrum data
    phases = [2 * math.pi * GAMMA * 1.5 * p * te_op / 1000 for p in PPM]
    expect = sum(a * complex(math.cos(ph), math.sin(ph)) for ph, a in zip(phases, AMPS, strict=True))
    assert abs(c_op - expect / sum(AMPS)) < 1e-12


# --- chemical-shift fat fraction -----------------------------------------------------------------------------------

def _ip_op(ff, t2star_ms, ppm, amps, b0=1.5):
    te_op, te_ip = fp.in_opposed_echo_times_ms(b0, ppm, amps, GAMMA)
    r1 = 1000 / 600.0  # equal water and fat T1: no T1 bias
    r2s = 0.0 if t2star_ms is None else 1000 / t2star_ms
    out = []
    for te in (te_ip, te_op):
        c = complex(fp.fat_phasor(te, b0, ppm, amps, GAMMA))
        out.append(sg.gre_magnitude(1.0, ff, r1, r1, r2s, te, 100.0, 30.0, c))
    return out[0], out[1], te_op, te_ip


def test_single_peak_no_decay_two_point_fat_fraction_is_exact():
    ff = np.linspace(0.0, 0.45, 10)
    ip, op, _, _ = _ip_op(ff, None, SINGLE_PPM, SINGLE_AMP)
    np.testing.assert_allclose(fp.chemical_shift_fat_fraction(ip, op), ff, atol=1e-12)


def test_single_peak_t2star_bias_matches_closed_form():
    ff = np.linspace(0.02, 0.45, 10)
    ip, op, te_op, te_ip = _ip_op(ff, 20.0, SINGLE_PPM, SINGLE_AMP)
    # IP = e^{-TEip/T2*}, OP = (1-2f) e^{-TEop/T2*}  =>  FF = (1 - (1-2f) e^{(TEip-TEop)/T2*}) / 2
    closed = (1 - (1 - 2 * ff) * np.exp((te_ip - te_op) / 20.0)) / 2
    est = fp.chemical_shift_fat_fraction(ip, op)
    np.testing.assert_allclose(est, closed, atol=1e-12)
    assert np.all(est < ff)  # opposed echo first at 1.5 T: decay lowers the estimate


def test_multi_peak_two_point_fat_fraction_underestimates_by_the_stated_amount():
    ff = np.array([0.05, 0.1, 0.2, 0.3, 0.4])
    ip, op, te_op, te_ip = _ip_op(ff, None, PPM, AMPS)
    est = fp.chemical_shift_fat_fraction(ip, op)
    # independent evaluation from the phasors: IP = |1-f+f c_ip|, OP = |1-f+f c_op|
    c_op, c_ip = fp.fat_phasor(np.array([te_op, te_ip]), 1.5, PPM, AMPS, GAMMA)
    ipx, opx = np.abs(1 - ff + ff * c_ip), np.abs(1 - ff + ff * c_op)
    np.testing.assert_allclose(est, (ipx - opx) / (2 * ipx), atol=1e-12)
    np.testing.assert_allclose(fp.expected_two_point_fat_fraction(ff, 0.0, te_op, te_ip, c_op, c_ip), est, atol=1e-12)
    # bias direction and size: the 6-peak spectrum makes two-point FF read 10-25 % (relative) low at 1.5 T
    rel = (ff - est) / ff
    assert np.all(rel > 0.10) and np.all(rel < 0.25)
    # T2* adds to the underestimate at 1.5 T
    assert np.all(fp.expected_two_point_fat_fraction(ff, 25.0, te_op, te_ip, c_op, c_ip) < est)


# --- Dixon ---------------------------------------------------------------------------------------------------------

def test_dixon_fat_fraction_exact_with_equal_t1_and_ideal_separation():
    ff = np.linspace(0, 1, 11)
    w, f = sg.dixon_water_fat(0.9, ff, 1.7, 1.7, 40.0, 2.3, 6.8, 10.0, crosstalk=0.0)
    np.testing.assert_allclose(f / (w + f), ff, atol=1e-12)


def test_dixon_t1_weighting_and_crosstalk_follow_the_equations():
    ff, eps = np.array([0.05, 0.2, 0.5]), 0.01
    t1w, t1f, tr, flip = 586.0, 343.0, 6.8, 10.0
    w, f = sg.dixon_water_fat(1.0, ff, 1000 / t1w, 1000 / t1f, 0.0, 2.3, tr, flip, crosstalk=eps)
    gw, gf = flash(t1w, tr, flip), flash(t1f, tr, flip)
    ww, fw = (1 - ff) * gw, ff * gf
    np.testing.assert_allclose(f / (w + f), (fw + eps * ww) / ((1 + eps) * (ww + fw)), rtol=1e-12)
    assert np.all(f / (w + f) > ff)  # short-T1 fat is weighted up


# --- spin echo, diffusion ------------------------------------------------------------------------------------------

def test_spin_echo_and_fat_suppression():
    s = sg.spin_echo(0.8, 0.0, 1000 / 586, 1000 / 46, 1000 / 343, 1000 / 58, 85.0, 3500.0, 0.95)
    assert s == pytest.approx(0.8 * (1 - math.exp(-3500 / 586)) * math.exp(-85 / 46), rel=1e-12)
    fat_on = sg.spin_echo(1.0, 1.0, 1.0, 1.0, 1000 / 343, 1000 / 58, 85.0, 3500.0, 0.0)
    fat_sup = sg.spin_echo(1.0, 1.0, 1.0, 1.0, 1000 / 343, 1000 / 58, 85.0, 3500.0, 0.95)
    assert fat_sup == pytest.approx(0.05 * fat_on, rel=1e-12)
    # long-T2 fluid is far brighter than liver at TE 85 ms
    cyst = sg.spin_echo(1.0, 0.0, 1000 / 3000, 1000 / 1500, 1, 1, 85.0, 3500.0, 0.95)
    assert cyst > 3 * s


def test_noise_free_dwi_log_ratio_recovers_adc():
    adc = np.array([700.0, 1100.0, 1500.0, 3000.0])
    s50, s800 = sg.diffusion_weighted(250.0, adc, 50), sg.diffusion_weighted(250.0, adc, 800)
    np.testing.assert_allclose(np.log(s50 / s800) / 750 * 1e6, adc, rtol=1e-5)


def test_log_linear_adc_fit_exact_masked_and_clipped():
    b = [50, 400, 800]
    adc = np.array([[0.0, 900.0, 1200.0, 2500.0]])
    stacks = [sg.diffusion_weighted(1000.0, adc, v) for v in b]
    stacks[0][0, 0] = stacks[1][0, 0] = stacks[2][0, 0] = 0.0          # empty voxel
    mask = np.array([[False, True, True, True]])
    fit = sg.adc_log_linear(stacks, b, mask, max_adc=2000.0)
    np.testing.assert_allclose(fit, [[0.0, 900.0, 1200.0, 2000.0]], rtol=1e-9)
    assert np.all(np.isfinite(fit))
    with pytest.raises(LiverMetsError):
        sg.adc_log_linear(stacks[:1], b[:1])


def _adc_values(node) -> list[float]:
    """Every numeric "adc_1e6_mm2_s" in a JSON tree."""
    if isinstance(node, dict):
        own = [float(node["adc_1e6_mm2_s"])] if isinstance(node.get("adc_1e6_mm2_s"), (int, float)) else []
        return own + [v for child in node.values() for v in _adc_values(child)]
    if isinstance(node, list):
        return [v for child in node for v in _adc_values(child)]
    return []


def test_scanner_adc_ceiling_is_data_with_a_source_and_clips_nothing_real():
    """The default ceiling is phantom_protocol.json's, states its source, lies above free water at 37 C
    (about 3000 x 10^-6 mm^2/s, Holz et al. 2000) and above every ADC the phantom's tissues and lesions use, and
    is what adc_log_linear clips to when no ceiling is given."""
    adc_seq = PROTOCOL["sequences"]["adc"]
    ceiling = sg.scanner_adc_max()
    assert ceiling == adc_seq["max_1e6_mm2_s"]
    assert "Holz" in adc_seq["max_source"]
    assert ceiling > 3000.0
    used = [v for f in ("phantom_tissues.json", "phantom_lesions.json", "phantom_scenarios.json")
            for v in _adc_values(load_json(f))]
    assert len(used) > 10 and max(used) < ceiling
    b = [50, 400, 800]
    adc = np.array([[max(used), ceiling + 1500.0]])
    fit = sg.adc_log_linear([sg.diffusion_weighted(1000.0, adc, v) for v in b], b)
    np.testing.assert_allclose(fit, [[max(used), ceiling]], rtol=1e-9)


# --- gadoxetate ----------------------------------------------------------------------------------------------------

def test_gadoxetate_raises_t1_gre_signal_monotonically():
    rel = PROTOCOL["physics"]["gadoxetate_relaxivity"]["by_field_strength"]["1.5"]
    dyn = PROTOCOL["sequences"]["dynamic"]
    c = np.linspace(0.0, 2.0, 201)
    r1 = sg.r1_with_gadoxetate(586.0, c, 0.0, rel["r1_ecs"], rel["r1_hep"])
    r2s = sg.r2_with_gadoxetate(30.0, c, 0.0, rel["r2_ecs"], rel["r2_hep"])
    s = sg.gre_magnitude(0.8, 0.0, r1, 3.0, r2s, 1.8, dyn["tr_ms"], dyn["flip_angle_deg"], 1.0)
    assert np.all(np.diff(s) > 0)
    # at 0.5 mM: closed form with R1 = 1/T1 + r1*C (r1 = 6.9 L/mmol/s at 1.5 T, Rohrer 2005)
    t1 = 1000 / (1000 / 586.0 + 6.9 * 0.5)
    expect = 0.8 * flash(t1, dyn["tr_ms"], dyn["flip_angle_deg"]) * math.exp(-1.8e-3 * (1000 / 30 + 8.7 * 0.5))
    assert s[50] == pytest.approx(expect, rel=1e-12)
    # hepatocyte-bound gadoxetate relaxes at least as strongly per mM
    hep = sg.r1_with_gadoxetate(586.0, 0.0, 0.5, rel["r1_ecs"], rel["r1_hep"])
    assert hep >= r1[50]


def test_rate_of_empty_voxels_is_zero_not_nan():
    r = sg.rate_per_s(np.array([0.0, 500.0]))
    np.testing.assert_array_equal(r, [0.0, 2.0])
    assert np.all(np.isfinite(sg.spoiled_gre_factor(r, 4.0, 10.0)))


# --- Rician noise --------------------------------------------------------------------------------------------------

def test_rician_background_moments():
    rng = np.random.default_rng(7)
    sigma = 3.0
    m = add_rician_noise(np.zeros(1_000_000, dtype=np.float32), sigma, rng)
    assert m.dtype == np.float32
    assert m.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=5e-3)
    assert m.std() == pytest.approx(sigma * math.sqrt(2 - math.pi / 2), rel=5e-3)


def test_rician_at_high_snr_and_complex_input():
    rng = np.random.default_rng(8)
    a, sigma = 20.0, 1.0
    real = add_rician_noise(np.full(400_000, a), sigma, rng)
    # E|A + n| = A + sigma^2/(2A) + O(sigma^4/A^3) for A >> sigma; std -> sigma
    assert real.mean() == pytest.approx(a + sigma**2 / (2 * a), rel=1e-3)
    assert real.std() == pytest.approx(sigma, rel=1e-2)
    cplx = add_rician_noise(np.full(400_000, a * np.exp(1j * 2.0)), sigma, rng)
    assert cplx.mean() == pytest.approx(real.mean(), rel=1e-3)


def test_noise_free_and_bad_sigma():
    rng = np.random.default_rng(0)
    x = np.array([1.0, -2.0, 3.0 + 4.0j])
    np.testing.assert_array_equal(add_rician_noise(x, 0.0, rng), np.abs(x).astype(np.float32))
    with pytest.raises(LiverMetsError):
        add_rician_noise(x, -1.0, rng)
    assert sigma_for_snr(1000.0, 20.0) == 50.0
    assert sigma_for_snr(1000.0, math.inf) == 0.0
    with pytest.raises(LiverMetsError):
        sigma_for_snr(1000.0, 0.0)
