"""simulate_study on small synthetic tissue models made of boxes, against analytic expectations.

Every box edge lies on a truth-voxel edge, so the exact partial-volume image of any real-valued series is
the sum over boxes of (signal x product of 1-D overlap fractions) — computed here independently of the
module's sparse resampler.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.phantom.model import Compartment, TissueModel
from LiverMetsReviewLib.phantom.protocol import load_protocol, noise_free_compartment_signals, simulate_study
from LiverMetsReviewLib.physics import fat as fp
from LiverMetsReviewLib.roles import DYNAMIC_ROLES

SPACING = 1.5
SIZE = (160, 160, 100)  # x, y, z truth voxels
ORIGIN = tuple(-(n - 1) / 2 * SPACING for n in SIZE)
# boxes as truth-index ranges [lo, hi) per axis (x, y, z)
BOXES = {
    "liver": ((30, 132), (40, 130), (15, 85)),
    "lesion": ((50, 70), (60, 80), (40, 60)),
    "cyst": ((95, 115), (90, 110), (40, 60)),
    "subcutaneous_fat": ((20, 140), (20, 36), (20, 80)),
}
LABELS = {"liver": 1, "lesion": 2, "cyst": 3, "subcutaneous_fat": 4}
ROLES = {"t1_in_phase", "t1_opposed_phase", "dixon_water", "dixon_fat", "t2", "dwi", "adc_scanner", "t1_pre",
         "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary", "multi_echo_gre"}
LIVER = dict(pd=0.8, t1_ms=586.0, t2_ms=46.0, t2star_ms=30.0, adc_1e6_mm2_s=1200.0, pdff_percent=10.0)
B_VALUES = (50, 400, 800)


def _params(**kw):
    return {**LIVER, **kw}


def make_model(field_strength_t: float = 1.5) -> TissueModel:
    grid = sitk.Image(list(SIZE), sitk.sitkUInt8)
    grid.SetSpacing([SPACING] * 3)
    grid.SetOrigin(ORIGIN)
    labels = np.zeros(SIZE[::-1], dtype=np.int32)
    for name in ("subcutaneous_fat", "liver", "lesion", "cyst"):
        (x0, x1), (y0, y1), (z0, z1) = BOXES[name]
        labels[z0:z1, y0:y1, x0:x1] = LABELS[name]
    liver_ecs = {"t1_arterial": 0.3, "t1_portal_venous": 0.45, "t1_transitional": 0.3, "t1_hepatobiliary": 0.1}
    comps = [
        Compartment(1, "liver", _params(), gd_ecs_mM=liver_ecs,
                    gd_hep_mM={"t1_portal_venous": 0.1, "t1_transitional": 0.25, "t1_hepatobiliary": 0.5}),
        Compartment(2, "lesion", _params(t1_ms=1100.0, t2_ms=80.0, adc_1e6_mm2_s=900.0, pdff_percent=0.0),
                    gd_ecs_mM={"t1_arterial": 0.5, "t1_portal_venous": 0.35, "t1_transitional": 0.2,
                               "t1_hepatobiliary": 0.1}),
        Compartment(3, "cyst", _params(pd=1.0, t1_ms=3000.0, t2_ms=1500.0, t2star_ms=200.0,
                                       adc_1e6_mm2_s=3000.0, pdff_percent=0.0)),
        Compartment(4, "subcutaneous_fat", _params(pd=0.9, t1_ms=343.0, t2_ms=58.0, t2star_ms=20.0,
                                                   adc_1e6_mm2_s=10.0, pdff_percent=100.0)),
    ]
    return TissueModel(grid, labels, comps, field_strength_t)


@pytest.fixture(scope="session")
def model() -> TissueModel:
    return make_model()


@pytest.fixture(scope="session")
def small() -> dict:
    return load_protocol("small")


@pytest.fixture(scope="session")
def clean(model, small):
    return simulate_study(model, np.random.default_rng(1), small, B_VALUES, snr=math.inf)


@pytest.fixture(scope="session")
def shifted(model, small):
    return simulate_study(model, np.random.default_rng(1), small, B_VALUES, snr=math.inf, breath_hold_shift_mm=8.0)


@pytest.fixture(scope="session")
def noisy(model, small):
    return simulate_study(model, np.random.default_rng(5), small, B_VALUES)


@pytest.fixture(scope="session")
def expected(model, small):
    return noise_free_compartment_signals(model, small, B_VALUES)


def by_role(series):
    return {s.role: s for s in series}


def arr(img):
    return sitk.GetArrayFromImage(img).astype(np.float64)


def overlaps(img: sitk.Image, thickness: float, shift=(0.0, 0.0, 0.0)) -> list[np.ndarray]:
    """Per axis: function (lo, hi) -> fraction of each series voxel's box inside truth-index range [lo, hi)."""
    out = []
    for ax in range(3):
        n = img.GetSize()[ax]
        width = img.GetSpacing()[ax] if ax < 2 else thickness
        centre = img.GetOrigin()[ax] + img.GetSpacing()[ax] * np.arange(n) - shift[ax]   # anatomy frame
        out.append(((centre - width / 2 - ORIGIN[ax]) / SPACING, (centre + width / 2 - ORIGIN[ax]) / SPACING,
                    width / SPACING))
    return out


def box_fraction(ov, box) -> np.ndarray:
    """(z, y, x) fraction of each series voxel covered by a truth-index box (edges at index - 1/2)."""
    f = []
    for (a, b, w), (lo, hi) in zip(ov, box, strict=True):
        f.append(np.clip(np.minimum(b, hi - 0.5) - np.maximum(a, lo - 0.5), 0, None) / w)
    return f[2][:, None, None] * f[1][None, :, None] * f[0][None, None, :]


def expected_image(img, thickness, values: dict[str, float], shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    ov = overlaps(img, thickness, shift)
    frac = {k: box_fraction(ov, b) for k, b in BOXES.items()}
    liver_only = frac["liver"] - frac["lesion"] - frac["cyst"]
    fat_only = frac["subcutaneous_fat"]  # does not touch the liver
    return (values["liver"] * liver_only + values["lesion"] * frac["lesion"] + values["cyst"] * frac["cyst"]
            + values["subcutaneous_fat"] * fat_only)


def pure(img, thickness, name, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Voxels lying entirely in ``name`` and in no box nested inside it."""
    ov = overlaps(img, thickness, shift)
    m = box_fraction(ov, BOXES[name]) > 1 - 1e-9
    if name == "liver":
        for other in ("lesion", "cyst"):
            m &= box_fraction(ov, BOXES[other]) < 1e-12
    return m


def thickness_of(s) -> float:
    return s.meta["slice_thickness_mm"]


def values_for(expected, role, stack=0) -> dict[str, float]:
    return {name: expected[role][label][stack] for name, label in LABELS.items()}


def flash(t1_ms, tr_ms, flip_deg):
    e1 = math.exp(-tr_ms / t1_ms)
    a = math.radians(flip_deg)
    return math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1)


def fat_c(te_ms, b0, protocol):
    spec = protocol["physics"]["fat_spectrum"]
    g = protocol["physics"]["gyromagnetic_ratio_mhz_per_t"]
    amps = spec["relative_amplitudes"]   # normalised to a sum of 1 (the Hamilton table sums to 0.999)
    return sum(a * np.exp(2j * np.pi * g * b0 * p * te_ms / 1000)
               for p, a in zip(spec["ppm_relative_to_water"], amps, strict=True)) / sum(amps)


# --- roles, geometry, meta -----------------------------------------------------------------------------------------

def test_every_role_on_its_protocol_grid(clean, small, model):
    series, facts = clean
    assert {s.role for s in series} == ROLES and len(series) == len(ROLES)
    for s in series:
        entry = next(e for e in small["series"] if e["role"] == s.role)
        g = small["grids"][entry["grid"]]
        for img in s.stacks:
            assert img.GetSize() == (g["matrix"][0], g["matrix"][1], g["n_slices"])
            assert img.GetSpacing() == pytest.approx((g["pixel_mm"][0], g["pixel_mm"][1], g["slice_spacing_mm"]))
            assert img.GetDirection() == pytest.approx(model.grid.GetDirection())
            assert img.GetPixelID() == sitk.sitkFloat32
        assert s.meta["slice_thickness_mm"] == pytest.approx(g["slice_thickness_mm"])
        f = facts["series"][s.role]
        assert f["size"] == list(s.image.GetSize()) and f["origin_mm"] == pytest.approx(s.image.GetOrigin())
        for key in ("description", "series_number", "field_strength_t", "repetition_time_ms", "echo_time_ms",
                    "flip_angle_deg", "image_type", "acquisition_offset_s", "units", "sequence_name"):
            assert key in s.meta, (s.role, key)
    # small = half matrix, doubled pixel, same field of view as the standard protocol
    std = load_protocol("standard")["grids"]["t2"]
    g = small["grids"]["t2"]
    assert g["matrix"][0] * g["pixel_mm"][0] == pytest.approx(std["matrix"][0] * std["pixel_mm"][0])
    assert json.dumps(facts, allow_nan=False)


def test_stacks_carry_b_values_and_echo_times(clean, small):
    s = by_role(clean[0])
    assert s["dwi"].b_values == list(B_VALUES)
    me = small["sequences"]["multi_echo"]["by_field_strength"]["1.5"]
    assert s["multi_echo_gre"].echo_times_ms == pytest.approx([me["te1_ms"] + k * me["delta_te_ms"] for k in range(6)])
    assert s["adc_scanner"].meta["units"] == "10^-6 mm^2/s"
    assert "ADC" in s["adc_scanner"].meta["image_type"]
    assert s["dixon_water"].meta["image_type"][-1] == "WATER" and s["dixon_fat"].meta["image_type"][-1] == "FAT"


def test_dynamic_timing_and_contrast_follow_the_brief(clean):
    s = by_role(clean[0])
    inj = clean[1]["exam"]["injection_offset_s"]
    t = [s[r].meta["acquisition_offset_s"] for r in DYNAMIC_ROLES]
    assert t == sorted(t) and t[0] < inj
    # brief: late arterial 20-35 s, portal venous 60-70 s, transitional 2-5 min, HBP about 20 min
    assert 20 <= t[1] - inj <= 35 and 60 <= t[2] - inj <= 70 and 120 <= t[3] - inj <= 300
    assert 15 * 60 <= t[4] - inj <= 25 * 60
    assert "contrast_agent" not in s["t1_pre"].meta
    assert all("Gd-EOB-DTPA" in s[r].meta["contrast_agent"] for r in DYNAMIC_ROLES[1:])
    # every series acquired before the injection carries no contrast agent
    assert all("contrast_agent" not in x.meta for x in clean[0] if x.meta["acquisition_offset_s"] < inj)


def test_echo_times_at_3_tesla(small):
    series, facts = simulate_study(make_model(3.0), np.random.default_rng(0), small, B_VALUES)
    s = by_role(series)
    assert abs(s["t1_opposed_phase"].echo_times_ms[0] - 1.15) < 0.05
    assert abs(s["t1_in_phase"].echo_times_ms[0] - 2.3) < 0.05
    assert s["t1_in_phase"].meta["field_strength_t"] == 3.0
    assert facts["gadoxetate_relaxivity"]["values"]["r1_ecs"] == pytest.approx(6.2)  # Rohrer 2005, 3 T plasma


# --- partial volume, breath-hold shift -----------------------------------------------------------------------------

@pytest.mark.parametrize("role, stack", [("t2", 0), ("dwi", 2), ("t1_hepatobiliary", 0), ("dixon_water", 0)])
def test_partial_volume_equals_box_average(clean, expected, role, stack):
    s = by_role(clean[0])[role]
    img = s.stacks[stack]
    exp = expected_image(img, thickness_of(s), values_for(expected, role, stack))
    got = arr(img)
    np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-3 * float(exp.max()))
    # a step edge gives intermediate values at the boundary voxels
    liver = values_for(expected, role, stack)["liver"]
    frac = box_fraction(overlaps(img, thickness_of(s)), BOXES["liver"])
    edge = (frac > 0.2) & (frac < 0.8) & (box_fraction(overlaps(img, thickness_of(s)), BOXES["lesion"]) == 0)
    assert edge.any()
    assert np.all(got[edge] > 0.1 * liver) and np.all(got[edge] < 0.9 * liver)


@pytest.mark.parametrize("role", ["t2", "dwi", "t1_pre", "t1_hepatobiliary", "dixon_fat"])
def test_breath_hold_shift_displaces_the_anatomy_by_the_stated_vector(shifted, expected, role):
    series, facts = shifted
    s = by_role(series)[role]
    d = facts["series"][role]["shift_mm"]
    assert 0 < np.linalg.norm(d) <= 8.0 + 1e-9
    exp = expected_image(s.image, thickness_of(s), values_for(expected, role), shift=d)
    np.testing.assert_allclose(arr(s.image), exp, rtol=1e-4, atol=1e-3 * float(exp.max()))
    # the cyst centre seen at (true centre + shift) in world LPS
    centre = [ORIGIN[a] + SPACING * (sum(BOXES["cyst"][a]) / 2 - 0.5) for a in range(3)]
    idx = s.image.TransformPhysicalPointToIndex([c + v for c, v in zip(centre, d, strict=True)])
    assert s.image.GetPixel(idx) == pytest.approx(values_for(expected, role)["cyst"], rel=1e-4)


def test_shifts_are_per_breath_hold_and_mostly_superior_inferior(shifted):
    f = shifted[1]["series"]
    assert f["t1_in_phase"]["shift_mm"] == f["t1_opposed_phase"]["shift_mm"]      # one breath-hold
    assert f["dwi"]["shift_mm"] == f["adc_scanner"]["shift_mm"]
    assert f["t1_pre"]["shift_mm"] != f["t1_hepatobiliary"]["shift_mm"]
    d = np.array([v["shift_mm"] for v in f.values()])
    assert np.abs(d[:, 2]).sum() > np.abs(d[:, :2]).sum()


# --- physics on the series -----------------------------------------------------------------------------------------

def test_noise_free_dwi_and_scanner_adc_recover_adc(clean):
    s = by_role(clean[0])
    dwi, adc = s["dwi"], arr(s["adc_scanner"].image)
    st = [arr(i) for i in dwi.stacks]
    for name, true in (("liver", 1200.0), ("cyst", 3000.0), ("lesion", 900.0)):
        m = pure(dwi.image, thickness_of(dwi), name)
        assert m.sum() > 5, name
        est = np.log(st[0][m] / st[2][m]) / (B_VALUES[2] - B_VALUES[0]) * 1e6
        np.testing.assert_allclose(est, true, rtol=1e-5)
        np.testing.assert_allclose(adc[m], true, atol=0.5)   # integers like the scanner stores
    assert np.all(adc[:, :3, :] == 0) and np.all(np.isfinite(adc))       # background outside the body


def test_scanner_adc_at_default_snr(noisy):
    s = by_role(noisy[0])
    adc = arr(s["adc_scanner"].image)
    for name, true, tol in (("liver", 1200.0, 0.03), ("cyst", 3000.0, 0.05), ("lesion", 900.0, 0.05)):
        m = pure(s["dwi"].image, thickness_of(s["dwi"]), name)
        assert abs(np.median(adc[m]) - true) < tol * true, name
    air = arr(s["dwi"].image)[:, :3, :]
    assert np.mean(adc[:, :3, :][air < 1e9] == 0) > 0.99              # noise floor masked to 0
    assert noisy[1]["series"]["adc_scanner"]["background_voxels"] > 0


def test_rician_background_and_snr_definition(noisy, clean):
    ns, cs = by_role(noisy[0]), by_role(clean[0])
    pairs = (("t2", "t2"), ("dwi", "dwi"), ("t1_hepatobiliary", "t1_pre"), ("t1_opposed_phase", "t1_in_phase"))
    for role, ref in pairs:
        f = noisy[1]["series"][role]
        sigma = f["noise_sigma"]
        bg = arr(ns[role].image)[:, :4, :]       # rows outside the truth grid: air
        assert bg.mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.03), role
        assert bg.std() == pytest.approx(sigma * math.sqrt(2 - math.pi / 2), rel=0.03), role
        # SNR = reference-tissue (liver) signal of the group's reference series / sigma
        r = cs[ref]
        liver = arr(r.image)[pure(r.image, thickness_of(r), "liver")]
        assert liver.mean() / sigma == pytest.approx(f["snr"], rel=1e-4), role
    assert noisy[1]["series"]["t1_pre"]["noise_sigma"] == noisy[1]["series"]["t1_hepatobiliary"]["noise_sigma"]


def test_gadoxetate_brightens_liver_on_hbp_but_not_the_lesion(clean, small):
    s = by_role(clean[0])
    pre, hbp = s["t1_pre"], s["t1_hepatobiliary"]
    th = thickness_of(pre)
    m_liver, m_lesion = pure(pre.image, th, "liver"), pure(pre.image, th, "lesion")
    liver_pre, liver_hbp = arr(pre.image)[m_liver].mean(), arr(hbp.image)[m_liver].mean()
    lesion_hbp = arr(hbp.image)[m_lesion].mean()
    assert liver_hbp > liver_pre and lesion_hbp < liver_hbp
    # closed-form HBP/pre ratio of the liver: water R1 = 1/T1 + r1_ecs C_ecs + r1_hep C_hep, fat (10 %) suppressed
    rel = small["physics"]["gadoxetate_relaxivity"]["by_field_strength"]["1.5"]
    dyn = small["sequences"]["dynamic"]
    te, tr, flip = dyn["by_field_strength"]["1.5"]["te_ms"], dyn["tr_ms"], dyn["flip_angle_deg"]
    eta, c = dyn["fat_suppression_efficiency"], fat_c(te, 1.5, small)
    gf = flash(343.0, tr, flip)

    def liver_signal(ce, ch):
        t1 = 1000 / (1000 / 586 + rel["r1_ecs"] * ce + rel["r1_hep"] * ch)
        r2s = 1000 / 30 + rel["r2_ecs"] * ce + rel["r2_hep"] * ch
        return abs(0.9 * flash(t1, tr, flip) + (1 - eta) * 0.1 * gf * c) * math.exp(-te * r2s / 1000)

    assert liver_hbp / liver_pre == pytest.approx(liver_signal(0.1, 0.5) / liver_signal(0.0, 0.0), rel=1e-4)


def test_chemical_shift_and_dixon_fat_fractions_of_the_liver(clean, small):
    s = by_role(clean[0])
    th = thickness_of(s["t1_in_phase"])
    m = pure(s["t1_in_phase"].image, th, "liver")
    ip, op = arr(s["t1_in_phase"].image)[m], arr(s["t1_opposed_phase"].image)[m]
    de = small["sequences"]["dual_echo"]
    te_op, te_ip = s["t1_opposed_phase"].echo_times_ms[0], s["t1_in_phase"].echo_times_ms[0]
    gw, gf = flash(586.0, de["tr_ms"], de["flip_angle_deg"]), flash(343.0, de["tr_ms"], de["flip_angle_deg"])
    ip_x = abs(0.9 * gw + 0.1 * gf * fat_c(te_ip, 1.5, small)) * math.exp(-te_ip / 30)
    op_x = abs(0.9 * gw + 0.1 * gf * fat_c(te_op, 1.5, small)) * math.exp(-te_op / 30)
    np.testing.assert_allclose((ip - op) / (2 * ip), (ip_x - op_x) / (2 * ip_x), rtol=1e-4)
    # net effect here: T1 weighting raises the fat signal, the 6-peak spectrum and T2* lower the estimate
    assert abs((ip_x - op_x) / (2 * ip_x) - 0.10) < 0.05
    # Dixon: fat fraction F/(W+F) with the stated T1 weighting and 1 % crosstalk
    dx = small["sequences"]["dixon"]
    m = pure(s["dixon_water"].image, thickness_of(s["dixon_water"]), "liver")
    w, f = arr(s["dixon_water"].image)[m], arr(s["dixon_fat"].image)[m]
    gw, gf = flash(586.0, dx["tr_ms"], dx["flip_angle_deg"]), flash(343.0, dx["tr_ms"], dx["flip_angle_deg"])
    eps = dx["water_fat_crosstalk_fraction"]
    ww, ff = 0.9 * gw, 0.1 * gf
    np.testing.assert_allclose(f / (w + f), (ff + eps * ww) / ((1 + eps) * (ww + ff)), rtol=1e-4)


def test_multi_echo_liver_signal_follows_the_multi_peak_model(clean, small):
    me = by_role(clean[0])["multi_echo_gre"]
    m = pure(me.image, thickness_of(me), "liver")
    seq = small["sequences"]["multi_echo"]
    gw, gf = flash(586.0, seq["tr_ms"], seq["flip_angle_deg"]), flash(343.0, seq["tr_ms"], seq["flip_angle_deg"])
    model_sig = np.array([abs(0.9 * gw + 0.1 * gf * fat_c(te, 1.5, small)) * math.exp(-te / 30)
                          for te in me.echo_times_ms])
    got = np.array([arr(img)[m].mean() for img in me.stacks])
    np.testing.assert_allclose(got / got[0], model_sig / model_sig[0], rtol=1e-4)


# --- determinism and bad input -------------------------------------------------------------------------------------

def test_same_seed_same_study_different_seed_different_noise(model, small, noisy):
    again, facts = simulate_study(model, np.random.default_rng(5), small, B_VALUES)
    for a, b in zip(noisy[0], again, strict=True):
        for x, y in zip(a.stacks, b.stacks, strict=True):
            assert np.array_equal(sitk.GetArrayViewFromImage(x), sitk.GetArrayViewFromImage(y))
    other, _ = simulate_study(model, np.random.default_rng(6), small, B_VALUES)
    assert not np.array_equal(sitk.GetArrayViewFromImage(other[0].image), sitk.GetArrayViewFromImage(again[0].image))


def test_bad_input_raises_one_clear_error(model, small):
    rng = np.random.default_rng(0)
    with pytest.raises(LiverMetsError, match="b-values"):
        simulate_study(model, rng, small, b_values=(800,))
    with pytest.raises(LiverMetsError, match="SNR"):
        simulate_study(model, rng, small, snr=-3)
    with pytest.raises(LiverMetsError, match="7.0 T"):
        simulate_study(make_model(7.0), rng, small)
    bad = make_model()
    bad.compartments[0].params["t1_ms"] = 0.0
    with pytest.raises(LiverMetsError, match="liver"):
        simulate_study(bad, rng, small)
    with pytest.raises(LiverMetsError, match="size"):
        load_protocol("huge")


# Independent constants, typed here from the literature (not read from the project's JSON or code):
# CODATA 2018 gamma/2pi of 1H, and the 6-peak liver fat spectrum of Hamilton et al., NMR Biomed 2011;24:784-790.
GAMMA_MHZ_PER_T = 42.577478518
HAMILTON_PPM = (-3.80, -3.40, -2.60, -1.94, -0.39, 0.60)
HAMILTON_AMPLITUDES = (0.087, 0.693, 0.128, 0.004, 0.039, 0.048)
METHYLENE_PPM = 3.40


def _two_point_single_peak(f: float, r2s_per_s: float, te_op: float, te_ip: float) -> float:
    """Closed form, single fat peak exactly opposed/in phase, mono-exponential T2* (percent):
    IP = e^(-TE_ip R2*), OP = |1 - 2f| e^(-TE_op R2*), (IP - OP)/(2 IP) = (1 - |1-2f| e^((TE_ip - TE_op) R2*)) / 2."""
    return 50.0 * (1.0 - abs(1.0 - 2.0 * f) * math.exp((te_ip - te_op) * r2s_per_s / 1000.0))


def _two_point_six_peaks(f: float, r2s_per_s: float, te_op: float, te_ip: float, b0: float) -> float:
    """The same ratio with Hamilton's six peaks written out: c(TE) = sum a_p exp(i 2 pi gamma B0 ppm_p TE)."""
    total = sum(HAMILTON_AMPLITUDES)

    def c(te_ms: float) -> complex:
        return sum(a / total * complex(math.cos(w), math.sin(w)) for a, w in (
            (a, 2.0 * math.pi * GAMMA_MHZ_PER_T * b0 * ppm * te_ms / 1000.0)
            for a, ppm in zip(HAMILTON_AMPLITUDES, HAMILTON_PPM, strict=True)))

    ip = abs(1.0 - f + f * c(te_ip)) * math.exp(-te_ip * r2s_per_s / 1000.0)
    op = abs(1.0 - f + f * c(te_op)) * math.exp(-te_op * r2s_per_s / 1000.0)
    return 50.0 * (1.0 - op / ip)


def test_expected_two_point_table_against_closed_forms(clean):
    """The truth's two-point bias table, checked without the module's formula:
    - echo times: first opposed/in phase of the methylene peak, TE_op = 1/(2 |df|), TE_ip = 1/|df|;
    - the module's function reduces to the single-peak closed form when c_op = -1, c_ip = +1;
    - each table entry equals the six-peak ratio written out from Hamilton's spectrum (rounded to 3 decimals);
    - the multi-peak correction only lowers the estimate and stays within the interval bound of the 30.7 % of fat
      outside the main peak: |c_ip - 1| <= 2q and |c_op + 1| <= 2q with q = 1 - a_main;
    - the two-point value is biased below the PDFF at every T2*."""
    facts = clean[1]
    b0 = facts["field_strength_t"]
    df_hz = GAMMA_MHZ_PER_T * b0 * METHYLENE_PPM
    te_op, te_ip = 1000.0 / (2.0 * df_hz), 1000.0 / df_hz
    assert facts["echo_times_ms"]["opposed_phase"] == pytest.approx(te_op, rel=1e-9)
    assert facts["echo_times_ms"]["in_phase"] == pytest.approx(te_ip, rel=1e-9)
    q = 1.0 - HAMILTON_AMPLITUDES[1] / sum(HAMILTON_AMPLITUDES)
    n_rows = 0
    for row in facts["chemical_shift_fat_fraction_bias"]["table"]:
        r2s = 1000.0 / row["t2star_ms"] if row["t2star_ms"] else 0.0
        for pdff, got in zip(row["pdff_percent"], row["expected_two_point_ff_percent"], strict=True):
            f = pdff / 100.0
            single = _two_point_single_peak(f, r2s, te_op, te_ip)
            mod_single = 100.0 * float(fp.expected_two_point_fat_fraction(f, row["t2star_ms"] or 0.0, te_op, te_ip,
                                                                          -1.0 + 0j, 1.0 + 0j))
            assert mod_single == pytest.approx(single, abs=1e-9)
            assert got == pytest.approx(_two_point_six_peaks(f, r2s, te_op, te_ip, b0), abs=1.5e-3)
            e = math.exp((te_ip - te_op) * r2s / 1000.0)           # OP/IP decay ratio
            ip_min = 1.0 - 2.0 * f * q
            op_max = abs(1.0 - 2.0 * f + f * q) + f * q
            lower = 50.0 * (1.0 - op_max / ip_min * e)
            assert lower - 1e-3 <= got <= single + 1e-3, (row["t2star_ms"], pdff)
            assert got < pdff
            n_rows += 1
            if not r2s:
                assert single == pytest.approx(pdff, abs=1e-9)   # single peak, no decay: the PDFF exactly
    assert n_rows == 25


def test_rotated_truth_grid_keeps_world_positions(small, expected):
    """Series grids follow the truth grid's direction; a lesion is found where the world says, shift included."""
    m = make_model()
    a = math.radians(30.0)
    m.grid.SetDirection((math.cos(a), -math.sin(a), 0.0, math.sin(a), math.cos(a), 0.0, 0.0, 0.0, 1.0))
    series, facts = simulate_study(m, np.random.default_rng(2), small, B_VALUES, snr=math.inf,
                                   breath_hold_shift_mm=6.0)
    centre_idx = [sum(BOXES["cyst"][ax]) / 2 - 0.5 for ax in range(3)]
    centre = np.array(m.grid.TransformContinuousIndexToPhysicalPoint(centre_idx))
    for s in series:
        if s.role == "adc_scanner":
            continue
        assert s.image.GetDirection() == pytest.approx(m.grid.GetDirection())
        d = np.array(facts["series"][s.role]["shift_mm"])
        idx = s.image.TransformPhysicalPointToIndex((centre + d).tolist())
        assert s.image.GetPixel(idx) == pytest.approx(expected[s.role][LABELS["cyst"]][0], rel=1e-4), s.role
