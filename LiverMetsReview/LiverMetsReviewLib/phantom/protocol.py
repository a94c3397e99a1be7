"""The phantom's acquisition protocol: series grids, exam order and :func:`simulate_study`.

Signals are computed per compartment from tissue physics (:mod:`..physics`), painted on the fine truth grid
(complex where the fat-water phase matters: in/opposed phase and multi-echo), box-averaged onto each
series' own grid (partial volume: in-plane pixel and slice profile), displaced by the series' breath-hold
shift, and only then given Rician noise. The protocol is data: ``resources/phantom_protocol.json``.
World coordinates are LPS (mm); series grids share the truth grid's direction.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import sparse

from ..errors import LiverMetsError
from ..physics import fat as fp
from ..physics import signal as sg
from ..resources import load_json
from ..series import Series
from .model import SCALAR_PARAMETERS, TissueModel
from .noise import RAYLEIGH_MEAN_FACTOR, RAYLEIGH_STD_FACTOR, add_rician_noise, sigma_for_snr

PROTOCOL_FILE = "phantom_protocol.json"
ROLE_ORDER = ("t1_in_phase", "t1_opposed_phase", "dixon_water", "dixon_fat", "t2", "dwi", "adc_scanner",
              "t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary", "multi_echo_gre")
COMPLEX_KINDS = ("dual_echo_gre", "multi_echo_gre")


# --- protocol data -------------------------------------------------------------------------------------------------

def load_protocol(size: str = "standard") -> dict:
    """A deep copy of the protocol data with the grids scaled for ``size`` ('standard' or 'small')."""
    protocol = copy.deepcopy(load_json(PROTOCOL_FILE))
    sizes = protocol.get("sizes", {})
    if size not in sizes:
        raise LiverMetsError(f"unknown phantom size '{size}'; use one of {sorted(sizes)}")
    inplane = float(sizes[size]["inplane_scale"])
    slices = float(sizes[size]["slice_scale"])
    for grid in protocol["grids"].values():
        grid["matrix"] = [max(1, round(n * inplane)) for n in grid["matrix"]]
        grid["pixel_mm"] = [p / inplane for p in grid["pixel_mm"]]
        grid["n_slices"] = max(1, round(grid["n_slices"] * slices))
        grid["slice_thickness_mm"] = grid["slice_thickness_mm"] / slices
        grid["slice_spacing_mm"] = grid["slice_spacing_mm"] / slices
    protocol["size"] = size
    return protocol


def _field_key(table: dict, field_strength_t: float, what: str) -> dict:
    for key, value in table.items():
        if abs(float(key) - field_strength_t) < 1e-6:
            return value
    raise LiverMetsError(f"the phantom protocol has no {what} for {field_strength_t} T; use one of "
                         f"{', '.join(sorted(table))} T")


def _fat_spectrum(protocol: dict) -> tuple[list[float], list[float], float]:
    phys = protocol["physics"]
    spec = phys["fat_spectrum"]
    return spec["ppm_relative_to_water"], spec["relative_amplitudes"], float(phys["gyromagnetic_ratio_mhz_per_t"])


def echo_times_ms(protocol: dict, field_strength_t: float) -> dict[str, Any]:
    """Echo times of every GRE at ``field_strength_t``: opposed/in phase computed from the main fat peak."""
    ppm, amps, gamma = _fat_spectrum(protocol)
    te_op, te_ip = fp.in_opposed_echo_times_ms(field_strength_t, ppm, amps, gamma)
    seq = protocol["sequences"]
    me = _field_key(seq["multi_echo"]["by_field_strength"], field_strength_t, "multi-echo timing")
    n = int(seq["multi_echo"]["n_echoes"])
    return {
        "opposed_phase": te_op,
        "in_phase": te_ip,
        "main_fat_peak_hz": fp.main_peak_shift_hz(field_strength_t, ppm, amps, gamma),
        "multi_echo": [float(me["te1_ms"]) + k * float(me["delta_te_ms"]) for k in range(n)],
        "dynamic": float(_field_key(seq["dynamic"]["by_field_strength"], field_strength_t, "dynamic TE")["te_ms"]),
        "t2": float(seq["t2"]["te_ms"]),
        "dwi": float(seq["dwi"]["te_ms"]),
    }


# --- tissue parameters per label -----------------------------------------------------------------------------------

def _parameter_luts(model: TissueModel) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Per-label float64 look-up tables of every parameter (index = label), checked for physical sense."""
    labels = np.asarray(model.labels)
    if labels.ndim != 3 or tuple(labels.shape[::-1]) != tuple(model.grid.GetSize()):
        raise LiverMetsError(f"the tissue model's labels have shape {labels.shape} but its grid has size "
                             f"{model.grid.GetSize()} (x, y, z); build labels as (z, y, x) of the grid")
    if labels.size and int(labels.min()) < 0:
        raise LiverMetsError("the tissue model has negative compartment labels; use 0 for empty and positive labels")
    n = int(labels.max()) + 1 if labels.size else 1
    n = max(n, max((c.label for c in model.compartments), default=0) + 1)
    luts = {name: np.zeros(n) for name in SCALAR_PARAMETERS}
    gd = {}
    for comp in model.compartments:
        missing = [p for p in SCALAR_PARAMETERS if p not in comp.params]
        if missing:
            raise LiverMetsError(f"compartment '{comp.name}' lacks {', '.join(missing)}; give every tissue parameter")
        p = {k: float(comp.params[k]) for k in SCALAR_PARAMETERS}
        if not all(math.isfinite(v) for v in p.values()):
            raise LiverMetsError(f"compartment '{comp.name}' has a non-finite parameter; fix its tissue values")
        if p["pd"] < 0 or not 0.0 <= p["pdff_percent"] <= 100.0 or p["adc_1e6_mm2_s"] < 0:
            raise LiverMetsError(f"compartment '{comp.name}' needs pd >= 0, 0 <= pdff_percent <= 100 and ADC >= 0")
        if p["pd"] > 0 and min(p["t1_ms"], p["t2_ms"], p["t2star_ms"]) <= 0:
            raise LiverMetsError(f"compartment '{comp.name}' has signal but a non-positive T1, T2 or T2*; "
                                 "give positive relaxation times")
        for name, v in p.items():
            luts[name][comp.label] = v
        for space, table in (("ecs", comp.gd_ecs_mM), ("hep", comp.gd_hep_mM)):
            for phase, c in table.items():
                if not (math.isfinite(float(c)) and float(c) >= 0):
                    raise LiverMetsError(f"compartment '{comp.name}' has an invalid gadoxetate concentration at "
                                         f"{phase}; concentrations are finite and >= 0 mM")
                gd.setdefault((phase, space), np.zeros(n))[comp.label] = float(c)
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    return luts, {f"{ph}/{sp}": v for (ph, sp), v in gd.items()}, counts


def _reference_labels(model: TissueModel, tissue: str, luts: dict, counts: np.ndarray) -> tuple[list[int], str]:
    """Labels of the SNR reference tissue: exact name, else name prefix, else the largest tissue with signal."""
    t = tissue.lower()
    exact = [c.label for c in model.compartments if c.name.lower() == t]
    if exact:
        return exact, tissue
    prefix = [c.label for c in model.compartments if c.name.lower().startswith(t)]
    if prefix:
        return prefix, tissue
    with_signal = [c for c in model.compartments if c.params.get("pd", 0) > 0 and counts[c.label] > 0]
    if not with_signal:
        raise LiverMetsError("the tissue model has no compartment with signal; give at least one tissue with pd > 0")
    biggest = max(with_signal, key=lambda c: counts[c.label])
    return [biggest.label], biggest.name


# --- noise-free signals per label ----------------------------------------------------------------------------------

def _signals_by_label(model: TissueModel, protocol: dict, b_values: Sequence[float]
                      ) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
    """Per role, per stack: the noise-free signal of each label (complex for chemical-shift roles)."""
    luts, gd, _ = _parameter_luts(model)
    b0 = float(model.field_strength_t)
    phys, seq = protocol["physics"], protocol["sequences"]
    ppm, amps, gamma = _fat_spectrum(protocol)
    fat = _field_key(phys["fat_relaxation"]["by_field_strength"], b0, "fat relaxation times")
    rel = _field_key(phys["gadoxetate_relaxivity"]["by_field_strength"], b0, "gadoxetate relaxivity")
    tes = echo_times_ms(protocol, b0)
    pd, ff = luts["pd"], luts["pdff_percent"] / 100.0
    r1w, r2w, r2s = sg.rate_per_s(luts["t1_ms"]), sg.rate_per_s(luts["t2_ms"]), sg.rate_per_s(luts["t2star_ms"])
    r1f, r2f = 1000.0 / float(fat["t1_ms"]), 1000.0 / float(fat["t2_ms"])

    def phasor(te: float) -> complex:
        return complex(fp.fat_phasor(te, b0, ppm, amps, gamma))

    out: dict[str, list[np.ndarray]] = {}
    de = seq["dual_echo"]
    for role, te in (("t1_opposed_phase", tes["opposed_phase"]), ("t1_in_phase", tes["in_phase"])):
        out[role] = [sg.gre_complex(pd, ff, r1w, r1f, r2s, te, de["tr_ms"], de["flip_angle_deg"], phasor(te))]
    me = seq["multi_echo"]
    out["multi_echo_gre"] = [sg.gre_complex(pd, ff, r1w, r1f, r2s, te, me["tr_ms"], me["flip_angle_deg"], phasor(te))
                             for te in tes["multi_echo"]]
    dx = seq["dixon"]
    water, fat_img = sg.dixon_water_fat(pd, ff, r1w, r1f, r2s, tes["opposed_phase"], dx["tr_ms"],
                                        dx["flip_angle_deg"], float(dx["water_fat_crosstalk_fraction"]))
    out["dixon_water"], out["dixon_fat"] = [water], [fat_img]
    t2 = seq["t2"]
    out["t2"] = [sg.spin_echo(pd, ff, r1w, r2w, r1f, r2f, t2["te_ms"], t2["tr_ms"], t2["fat_suppression_efficiency"])]
    dw = seq["dwi"]
    s0 = sg.spin_echo(pd, ff, r1w, r2w, r1f, r2f, dw["te_ms"], dw["tr_ms"], dw["fat_suppression_efficiency"])
    out["dwi"] = [sg.diffusion_weighted(s0, luts["adc_1e6_mm2_s"], b) for b in b_values]
    out["adc_scanner"] = [luts["adc_1e6_mm2_s"].copy()]
    dy = seq["dynamic"]
    zero = np.zeros_like(pd)
    for phase in ("t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"):
        ce, ch = gd.get(f"{phase}/ecs", zero), gd.get(f"{phase}/hep", zero)
        r1 = sg.r1_with_gadoxetate(luts["t1_ms"], ce, ch, rel["r1_ecs"], rel["r1_hep"])
        r2star = sg.r2_with_gadoxetate(luts["t2star_ms"], ce, ch, rel["r2_ecs"], rel["r2_hep"])
        out[phase] = [sg.gre_magnitude(pd, ff, r1, r1f, r2star, tes["dynamic"], dy["tr_ms"], dy["flip_angle_deg"],
                                       phasor(tes["dynamic"]), 1.0 - float(dy["fat_suppression_efficiency"]))]
    return out, {"echo_times_ms": tes, "fat_relaxation": fat, "relaxivity": rel}


def _group_gains(protocol: dict, signals: dict, ref_labels: list[int], counts: np.ndarray) -> dict[str, float]:
    """Receiver gain per noise group: the reference tissue's mean signal in the group's reference series is
    scaled to the group's ``reference_level`` (scanner-like magnitudes; physics ratios are unchanged)."""
    gains = {}
    for name, group in protocol["noise_groups"].items():
        ref_values = np.abs(signals[group["reference_role"]][0])[ref_labels]
        weights = counts[ref_labels]
        ref = float(np.average(ref_values, weights=weights)) if weights.sum() > 0 else float(ref_values.mean())
        if not ref > 0:
            raise LiverMetsError(f"the SNR reference tissue has no signal in {group['reference_role']}; "
                                 "choose another snr_reference_tissue")
        gains[name] = float(group.get("reference_level", 1000.0)) / ref
    return gains


def _apply_gains(protocol: dict, signals: dict, gains: dict[str, float]) -> None:
    """Multiply every magnitude series' per-label signals by its noise group's gain (ADC is not a signal)."""
    for entry in protocol["series"]:
        if protocol["sequences"][entry["sequence"]]["kind"] != "adc_scanner":
            signals[entry["role"]] = [lut * gains[entry["noise_group"]] for lut in signals[entry["role"]]]


def _scaled_signals(model: TissueModel, protocol: dict, b_list: list[float]) -> dict[str, Any]:
    """Per-label signals with receiver gains applied, plus what simulate_study needs about the reference."""
    signals, physics = _signals_by_label(model, protocol, b_list)
    luts, _, counts = _parameter_luts(model)
    ref_labels, ref_name = _reference_labels(model, protocol["physics"].get("snr_reference_tissue", "liver"),
                                             luts, counts)
    gains = _group_gains(protocol, signals, ref_labels, counts)
    _apply_gains(protocol, signals, gains)
    return {"signals": signals, "physics": physics, "ref_labels": ref_labels, "ref_name": ref_name,
            "gains": gains}


def noise_free_compartment_signals(model: TissueModel, protocol: dict | None = None,
                                   b_values: Sequence[float] = (50, 400, 800)) -> dict[str, dict[int, list[float]]]:
    """Expected noise-free magnitude of every compartment in every series (per stack), on the same scale as
    :func:`simulate_study`'s images but without partial volume: the reference for lesion/liver signal checks.
    ``adc_scanner`` holds the compartments' ADC (10^-6 mm^2/s).
    """
    protocol = load_protocol() if protocol is None else protocol
    signals = _scaled_signals(model, protocol, _check_b_values(b_values))["signals"]
    return {role: {c.label: [float(abs(s[c.label])) for s in stacks] for c in model.compartments}
            for role, stacks in signals.items()}


def _check_b_values(b_values: Sequence[float]) -> list[float]:
    try:
        b = sorted(float(v) for v in b_values)
    except (TypeError, ValueError) as exc:
        raise LiverMetsError("b-values must be numbers in s/mm^2, e.g. 50 400 800") from exc
    if len(b) < 2 or len(set(b)) != len(b) or b[0] < 0 or not all(math.isfinite(v) for v in b):
        raise LiverMetsError(f"b-values {list(b_values)} are not usable; give at least two different "
                             "non-negative b-values, e.g. 50 400 800")
    return b


# --- geometry: series grids and box averaging ----------------------------------------------------------------------

def _direction(image: sitk.Image) -> np.ndarray:
    return np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)


def series_grid(model: TissueModel, grid_spec: dict, centre_lps: Sequence[float]) -> sitk.Image:
    """Empty float32 image of a series grid centred on ``centre_lps``, with the truth grid's direction.

    Slices are stacked along the truth grid's third axis (axial series for an axial truth grid).
    """
    size = [int(grid_spec["matrix"][0]), int(grid_spec["matrix"][1]), int(grid_spec["n_slices"])]
    spacing = [float(grid_spec["pixel_mm"][0]), float(grid_spec["pixel_mm"][1]), float(grid_spec["slice_spacing_mm"])]
    d = _direction(model.grid)
    half = d @ (np.asarray(spacing) * (np.asarray(size) - 1) / 2.0)
    img = sitk.Image(size, sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetDirection(tuple(d.ravel()))
    img.SetOrigin(tuple(float(v) for v in np.asarray(centre_lps, dtype=np.float64) - half))
    return img


def _box_matrix(n_out: int, n_in: int, first_centre: float, step: float, half_width: float,
                dtype: type) -> sparse.csr_matrix:
    """Weights of a box (width 2*half_width, in input-voxel units) over input voxels [k-1/2, k+1/2].

    Row j averages the input over [c_j - h, c_j + h], c_j = first_centre + j*step; parts outside the input are
    empty (air), so a row sums to the covered fraction.
    """
    c = first_centre + step * np.arange(n_out)[:, None]
    k = np.arange(n_in)[None, :]
    w = np.clip(np.minimum(c + half_width, k + 0.5) - np.maximum(c - half_width, k - 0.5), 0.0, None)
    return sparse.csr_matrix((w / (2.0 * half_width)).astype(dtype))


class _BoxResampler:
    """Separable box-average from the truth grid onto one series grid displaced by a shift (LPS mm)."""

    def __init__(self, model: TissueModel, target: sitk.Image, thickness_mm: float, shift_lps: np.ndarray) -> None:
        d = _direction(model.grid)
        if not np.allclose(_direction(target), d, atol=1e-6):
            raise LiverMetsError("series grids must share the truth grid's direction; rotate the truth grid instead")
        s_in = np.asarray(model.grid.GetSpacing())
        s_out = np.asarray(target.GetSpacing())
        widths = np.array([s_out[0], s_out[1], thickness_mm])
        # anatomy displaced by +shift: series voxel at x shows the anatomy found at x - shift in the truth grid
        offset = d.T @ (np.asarray(target.GetOrigin()) - shift_lps - np.asarray(model.grid.GetOrigin()))
        n_in, n_out = model.grid.GetSize(), target.GetSize()
        self.mats = {}
        for dtype in (np.float32, np.complex64):
            self.mats[dtype] = [_box_matrix(n_out[i], n_in[i], offset[i] / s_in[i], s_out[i] / s_in[i],
                                            widths[i] / (2.0 * s_in[i]), dtype) for i in range(3)]
        self.n_out = n_out

    def __call__(self, fine: np.ndarray) -> np.ndarray:
        """(z, y, x) fine array -> (z, y, x) series array, same dtype family (float32/complex64)."""
        dtype = np.complex64 if np.iscomplexobj(fine) else np.float32
        ax, ay, az = self.mats[dtype]
        nz, ny, nx = fine.shape
        zo, yo, xo = self.n_out[2], self.n_out[1], self.n_out[0]
        r = az @ fine.reshape(nz, ny * nx)                                   # (zo, y*x)
        r = np.ascontiguousarray(r.reshape(zo, ny, nx).transpose(1, 0, 2)).reshape(ny, zo * nx)
        r = ay @ r                                                           # (yo, zo*x)
        r = (ax @ r.reshape(yo * zo, nx).T).T                                # (yo*zo, xo)
        return np.ascontiguousarray(r.reshape(yo, zo, xo).transpose(1, 0, 2)).astype(dtype, copy=False)


def _draw_shift(rng: np.random.Generator, max_mm: float) -> np.ndarray:
    """Breath-hold displacement (LPS mm), mostly superior-inferior like the diaphragm, |d| <= max_mm."""
    u = rng.uniform(-1.0, 1.0, size=3)
    d = max_mm * u * np.array([0.15, 0.3, 1.0])
    norm = float(np.linalg.norm(d))
    return d * (max_mm / norm) if norm > max_mm > 0 else d


# --- the study -----------------------------------------------------------------------------------------------------

def _noise_levels(protocol: dict, snr: float | None, gains: dict[str, float]) -> tuple[dict, dict]:
    """Noise SD per noise group (from the group's SNR at its reference signal, or the one ``snr`` given) and
    the facts the truth records about it."""
    sigma_by_group: dict[str, float] = {}
    noise_info: dict[str, dict[str, float]] = {}
    for name, group in protocol["noise_groups"].items():
        g_snr = float(group["snr"]) if snr is None else float(snr)
        level = float(group.get("reference_level", 1000.0))
        sigma_by_group[name] = sigma_for_snr(level, g_snr)
        noise_info[name] = {"snr": g_snr, "reference_signal": level, "gain": gains[name]}
    return sigma_by_group, noise_info


def _scanner_adc_series(entry: dict, target: sitk.Image, sigma: float, protocol: dict, by_role: dict[str, Series],
                        physics: dict, field: float, b_list: list[float]) -> tuple[Series, dict]:
    """The ADC map a scanner would derive from the study's DWI series; the facts of its fit (the DWI's role
    under ``derived_from``, for placing the map after it)."""
    seq = protocol["sequences"][entry["sequence"]]
    dwi_role = seq.get("derived_from", "dwi")
    dwi = by_role.get(dwi_role)
    if dwi is None:
        raise LiverMetsError("the protocol derives the ADC from a DWI series it does not acquire; add the DWI")
    adc, mask, floor = _scanner_adc(dwi, seq, sigma)
    s = Series(role=entry["role"], stacks=[_to_image(adc, target)],
               meta=_series_meta(entry, seq, protocol, physics, field, b_list))
    for key in ("echo_time_ms", "repetition_time_ms", "flip_angle_deg"):
        s.meta[key] = dwi.meta[key]
    return s, {"derived_from": dwi_role, "b_values": dwi.b_values, "background_voxels": int((~mask).sum()),
               "fit": seq["fit"], "background_threshold": floor}


def simulate_study(model: TissueModel, rng: np.random.Generator, protocol: dict | None = None,
                   b_values: Sequence[float] = (50, 400, 800), snr: float | None = None,
                   breath_hold_shift_mm: float = 0.0) -> tuple[list[Series], dict]:
    """Every series of the study from the tissue model, each on its own grid, with Rician noise.

    ``snr`` overrides every noise group's SNR (``math.inf`` = noise-free); ``breath_hold_shift_mm`` is the
    largest displacement of the anatomy in any breath-hold (0 = none). Returns the series in exam order and
    the acquisition facts for the ground truth (JSON-able, LPS, mm). Same ``rng`` state -> identical output.
    """
    protocol = load_protocol() if protocol is None else protocol
    b_list = _check_b_values(b_values)
    if snr is not None and not snr > 0:
        raise LiverMetsError(f"SNR {snr} is not positive; give a positive SNR (or inf for noise-free images)")
    if not (math.isfinite(breath_hold_shift_mm) and breath_hold_shift_mm >= 0):
        raise LiverMetsError("the breath-hold shift must be a finite distance >= 0 mm")
    field = float(model.field_strength_t)
    scaled = _scaled_signals(model, protocol, b_list)
    signals, physics, ref_labels, gains = scaled["signals"], scaled["physics"], scaled["ref_labels"], scaled["gains"]
    labels = np.asarray(model.labels)

    entries = sorted(protocol["series"], key=lambda e: ROLE_ORDER.index(e["role"]) if e["role"] in ROLE_ORDER else 99)
    entries = sorted(entries, key=lambda e: _offset(e, protocol))          # exam order (stable)
    acquisitions = list(dict.fromkeys(e["acquisition"] for e in entries))
    seeds = rng.integers(0, 2**63 - 1, size=1 + len(entries), dtype=np.int64)
    shift_rng = np.random.default_rng(int(seeds[0]))
    shifts = {a: _draw_shift(shift_rng, breath_hold_shift_mm) for a in acquisitions}

    centre = _grid_centre(model, labels, ref_labels)

    sigma_by_group, noise_info = _noise_levels(protocol, snr, gains)

    resamplers: dict[tuple[str, str], _BoxResampler] = {}
    grids: dict[tuple[str, str], sitk.Image] = {}
    series: list[Series] = []
    facts_series: dict[str, dict] = {}
    by_role: dict[str, Series] = {}
    adc_entries = []
    for i, entry in enumerate(entries):
        role, seq = entry["role"], protocol["sequences"][entry["sequence"]]
        key = (entry["grid"], entry["acquisition"])
        gspec = protocol["grids"][entry["grid"]]
        if key not in grids:
            grids[key] = series_grid(model, gspec, centre)
            resamplers[key] = _BoxResampler(model, grids[key], float(gspec["slice_thickness_mm"]),
                                            shifts[entry["acquisition"]])
        target = grids[key]
        sigma = sigma_by_group[entry["noise_group"]]
        if seq["kind"] == "adc_scanner":
            adc_entries.append((i, entry, target, sigma))
            continue
        noise_rng = np.random.default_rng(int(seeds[1 + i]))
        stacks = []
        for lut in signals[role]:
            fine = lut.astype(np.complex64 if np.iscomplexobj(lut) else np.float32)[labels]
            coarse = resamplers[key](fine)
            stacks.append(_to_image(add_rician_noise(coarse, sigma, noise_rng), target))
        s = Series(role=role, stacks=stacks, stack_meta=_stack_meta(role, physics, b_list, seq),
                   meta=_series_meta(entry, seq, protocol, physics, field, b_list))
        series.append(s)
        by_role[role] = s
        facts_series[role] = _series_facts(s, entry, gspec, sigma, noise_info, shifts, signals, model)
    for _i, entry, target, sigma in adc_entries:
        s, fit_facts = _scanner_adc_series(entry, target, sigma, protocol, by_role, physics, field, b_list)
        dwi = by_role[fit_facts.pop("derived_from")]
        series.insert(next(k for k, x in enumerate(series) if x is dwi) + 1, s)
        facts = _series_facts(s, entry, protocol["grids"][entry["grid"]], sigma, noise_info, shifts, signals,
                               model)
        facts.update(fit_facts)
        facts_series[entry["role"]] = facts
    return series, _study_facts(protocol, physics, field, facts_series, scaled["ref_name"], ref_labels, b_list,
                                breath_hold_shift_mm)


def _grid_centre(model: TissueModel, labels: np.ndarray, ref_labels: list[int]) -> np.ndarray:
    """World centre of the series grids: truth-grid centre in-plane, middle of the reference tissue (liver)
    along the slice axis, so that every series covers the liver."""
    d = _direction(model.grid)
    idx_centre = (np.asarray(model.grid.GetSize()) - 1) / 2.0
    along_slices = np.isin(labels, ref_labels).any(axis=(1, 2))
    if along_slices.any():
        zs = np.flatnonzero(along_slices)
        idx_centre[2] = (zs[0] + zs[-1]) / 2.0
    return np.asarray(model.grid.GetOrigin()) + d @ (idx_centre * np.asarray(model.grid.GetSpacing()))


def _scanner_adc(dwi: Series, seq: dict, sigma: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The scanner's ADC map from the noisy DWI: log-linear fit, noise-floor mask, clip, integer values."""
    arrays = [sitk.GetArrayViewFromImage(img) for img in dwi.stacks]
    low = np.asarray(arrays[0])
    floor = max(float(seq["background_threshold_sigma"]) * sigma, 1e-6 * float(low.max(initial=0.0)))
    mask = low > floor
    adc = sg.adc_log_linear(arrays, dwi.b_values, mask, float(seq["max_1e6_mm2_s"]))
    if seq.get("round_to_integer", False):
        adc = np.rint(adc)
    return adc.astype(np.float32), mask, floor


def _offset(entry: dict, protocol: dict) -> float:
    if "after_injection_s" in entry:
        return float(protocol["exam"]["injection_offset_s"]) + float(entry["after_injection_s"])
    return float(entry.get("acquisition_offset_s", 0.0))


def _to_image(array: np.ndarray, target: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    img.CopyInformation(target)
    return img


def _stack_meta(role: str, physics: dict, b_list: list[float], seq: dict) -> list[dict]:
    tes = physics["echo_times_ms"]
    if role == "dwi":
        return [{"b_value": b, "sequence_name": f"{seq['sequence_name']}{int(round(b))}t"} for b in b_list]
    if role == "multi_echo_gre":
        return [{"echo_time_ms": te, "echo_number": k + 1} for k, te in enumerate(tes["multi_echo"])]
    if role == "t1_opposed_phase":
        return [{"echo_time_ms": tes["opposed_phase"], "echo_number": 1}]
    if role == "t1_in_phase":
        return [{"echo_time_ms": tes["in_phase"], "echo_number": 2}]
    return [{}]


def _echo_time(role: str, seq: dict, physics: dict) -> float:
    tes = physics["echo_times_ms"]
    return {"t1_opposed_phase": tes["opposed_phase"], "t1_in_phase": tes["in_phase"],
            "multi_echo_gre": tes["multi_echo"][0], "dixon_water": tes["opposed_phase"],
            "dixon_fat": tes["opposed_phase"], "t2": tes["t2"], "dwi": tes["dwi"],
            "adc_scanner": tes["dwi"]}.get(role, tes["dynamic"])


def _series_meta(entry: dict, seq: dict, protocol: dict, physics: dict, field: float, b_list: list[float]) -> dict:
    role = entry["role"]
    gspec = protocol["grids"][entry["grid"]]
    b_text = "_".join(str(int(round(b))) for b in b_list)
    meta: dict[str, Any] = {
        "description": entry["description"].replace("{b_list}", b_text),
        "series_number": int(entry["series_number"]),
        "field_strength_t": field,
        "imaging_frequency_mhz": float(protocol["physics"]["gyromagnetic_ratio_mhz_per_t"]) * field,
        "repetition_time_ms": float(seq.get("tr_ms", 0.0)),
        "echo_time_ms": _echo_time(role, seq, physics),
        "flip_angle_deg": float(seq.get("flip_angle_deg", 0.0)),
        "image_type": list(entry["image_type"]),
        "acquisition_offset_s": _offset(entry, protocol),
        "units": "10^-6 mm^2/s" if role == "adc_scanner" else "a.u.",
        "sequence_name": seq.get("sequence_name", protocol["sequences"].get(seq.get("derived_from", ""), {})
                                 .get("sequence_name", "")),
        "slice_thickness_mm": float(gspec["slice_thickness_mm"]),
        "spacing_between_slices_mm": float(gspec["slice_spacing_mm"]),
        "mr_acquisition_type": seq.get("mr_acquisition_type", "2D"),
    }
    if "echo_train_length" in seq:
        meta["echo_train_length"] = int(seq["echo_train_length"])
    if role == "dwi":
        meta["b_values"] = list(b_list)
    if role == "multi_echo_gre":
        meta["echo_times_ms"] = list(physics["echo_times_ms"]["multi_echo"])
    if "after_injection_s" in entry:
        exam = protocol["exam"]
        meta.update({"contrast_agent": exam["contrast_agent"], "contrast_route": exam["contrast_route"],
                     "contrast_dose_ml": float(exam["contrast_dose_ml"]),
                     "contrast_injection_offset_s": float(exam["injection_offset_s"]),
                     "seconds_after_injection": float(entry["after_injection_s"])})
    return meta


def _series_facts(s: Series, entry: dict, gspec: dict, sigma: float, noise_info: dict, shifts: dict,
                  signals: dict, model: TissueModel) -> dict:
    img = s.image
    group = noise_info[entry["noise_group"]]
    role = entry["role"]
    return {
        "role": role,
        "series_number": s.meta["series_number"],
        "description": s.meta["description"],
        "size": list(img.GetSize()),
        "spacing_mm": list(img.GetSpacing()),
        "origin_mm": list(img.GetOrigin()),
        "direction": list(img.GetDirection()),
        "slice_thickness_mm": float(gspec["slice_thickness_mm"]),
        "repetition_time_ms": s.meta["repetition_time_ms"],
        "echo_times_ms": s.echo_times_ms or [s.meta["echo_time_ms"]],
        "b_values": s.b_values,
        "flip_angle_deg": s.meta["flip_angle_deg"],
        "acquisition_offset_s": s.meta["acquisition_offset_s"],
        "contrast_agent": s.meta.get("contrast_agent"),
        "noise_group": entry["noise_group"],
        "snr": None if math.isinf(group["snr"]) else group["snr"],
        "snr_reference_signal": group["reference_signal"],
        "noise_sigma": sigma,
        "background_mean_expected": sigma * RAYLEIGH_MEAN_FACTOR,
        "background_std_expected": sigma * RAYLEIGH_STD_FACTOR,
        "shift_mm": [float(v) for v in shifts[entry["acquisition"]]],
        "noise_free_signal_by_label": {str(c.label): [float(abs(st[c.label])) for st in signals[role]]
                                       for c in model.compartments},
    }


def _study_facts(protocol: dict, physics: dict, field: float, facts_series: dict, ref_name: str,
                 ref_labels: list[int], b_list: list[float], max_shift: float) -> dict:
    phys = protocol["physics"]
    ppm, amps, gamma = _fat_spectrum(protocol)
    tes = physics["echo_times_ms"]
    c_op = complex(fp.fat_phasor(tes["opposed_phase"], field, ppm, amps, gamma))
    c_ip = complex(fp.fat_phasor(tes["in_phase"], field, ppm, amps, gamma))
    table = []
    for t2s in (10.0, 20.0, 30.0, 50.0, 0.0):
        row = {"t2star_ms": t2s or None,
               "pdff_percent": [5.0, 10.0, 20.0, 30.0, 40.0]}
        row["expected_two_point_ff_percent"] = [
            round(100.0 * float(fp.expected_two_point_fat_fraction(f / 100.0, t2s, tes["opposed_phase"],
                                                                   tes["in_phase"], c_op, c_ip)), 3)
            for f in row["pdff_percent"]]
        table.append(row)
    return {
        "coordinate_system": "LPS",
        "units": {"length": "mm", "time": "ms unless *_s", "adc": "10^-6 mm^2/s", "fat_fraction": "percent",
                  "b_value": "s/mm^2", "concentration": "mmol/L", "relaxivity": "L/(mmol*s)"},
        "field_strength_t": field,
        "protocol_size": protocol.get("size", "custom"),
        "b_values": list(b_list),
        "breath_hold_shift_max_mm": max_shift,
        "shift_convention": "shift_mm is the displacement of the anatomy in that series: a point at p (LPS) in the "
                            "truth grid appears at p + shift_mm in the series",
        "snr_definition": phys["snr_definition"],
        "snr_reference_tissue": ref_name,
        "snr_reference_labels": [int(v) for v in ref_labels],
        "echo_times_ms": {k: v for k, v in tes.items()},
        "fat_spectrum": copy.deepcopy(phys["fat_spectrum"]),
        "fat_relaxation_ms": dict(physics["fat_relaxation"]),
        "gadoxetate_relaxivity": {"values": dict(physics["relaxivity"]), "units": "L/(mmol*s)",
                                  "source": phys["gadoxetate_relaxivity"]["source"]},
        "fat_phasor": {"opposed_phase": [c_op.real, c_op.imag], "in_phase": [c_ip.real, c_ip.imag]},
        "chemical_shift_fat_fraction_bias": {
            "formula": "FF_2pt = (IP-OP)/(2 IP), IP = |1-f+f c(TE_ip)| exp(-TE_ip/T2*), OP = |1-f+f c(TE_op)| "
                       "exp(-TE_op/T2*), c(TE) = sum_p a_p exp(i 2 pi f_p TE) (equal water/fat T1, no noise). "
                       "The dual-echo protocol's T1 weighting (TR/flip) adds a further bias: fat (short T1) is "
                       "weighted up; use noise_free_signal_by_label for the exact expected IP/OP values.",
            "table": table,
        },
        "exam": copy.deepcopy(protocol["exam"]),
        "series": facts_series,
    }
