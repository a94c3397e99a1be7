"""The varied phantom (``generate_phantom(..., vary=True)``): the seed draws the study and its lesions.

From ``resources/phantom_lesion_ranges.json`` (ranges per lesion type with their sources) the seed draws the
field strength, SNR and DICOM vendor, the liver background, the primary tumour, which lesion types and how
many, and per lesion its size, outline (ellipsoid, lobulated, irregular), internal heterogeneity and every
tissue parameter; :mod:`.placement` puts it in a drawn Couinaud segment; :mod:`.vary_context` draws the
clinical context that fits the lesions. A drawn lesion is a catalogue lesion (same dict format) whose template
is the catalogue entry of its type, so painting, tissue model and truth work unchanged; its expected
impression is its template's: what the lesion *is*, never what a reading rule would conclude.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..resources import load_json
from .lesions import catalogue, measured_axial_diameter_mm
from .model import CONTRAST_PHASES
from .tissues import tissue_params

RANGES = "phantom_lesion_ranges.json"
MALIGNANT = ("typical metastasis", "suspicious for recurrence")
# Bands of the unit-variance smooth noise that split a compartment into three patches of about equal volume.
PATCH_BANDS = ((-1e9, -0.43, -1.0), (-0.43, 0.43, 0.0), (0.43, 1e9, 1.0))


def lesion_ranges() -> dict[str, Any]:
    """The ranges document (cached, do not modify)."""
    return load_json(RANGES)


def uniform(rng: np.random.Generator, spec: dict[str, Any], hi: float | None = None) -> float:
    """A value drawn uniformly from a range entry ``{"range": [lo, hi], "source": ...}`` (``hi`` caps it)."""
    lo, top = (float(v) for v in spec["range"])
    top = top if hi is None else min(top, hi)
    return float(rng.uniform(lo, top)) if top > lo else lo


def choice(rng: np.random.Generator, choices: dict[str, Any]) -> str:
    """A key drawn with the given weights (keys 'source'/'note' are not choices)."""
    keys = [k for k in choices if k not in ("source", "note")]
    w = np.array([float(choices[k]) for k in keys])
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


# ---------------------------------------------------------------- study settings

def draw_settings(rng: np.random.Generator, scenario_id: str) -> dict[str, Any]:
    """Field strength, SNR scale, vendor, primary tumour and the liver background of one study."""
    st = lesion_ranges()["study"]
    lv = st["liver"]
    prim = st["primary_tumour"]
    return {
        "field_strength_t": float(choice(rng, st["field_strength_t"]["choices"])),
        "snr_scale": round(uniform(rng, st["snr_scale"]), 4),
        "vendor": choice(rng, st["vendor"]["choices"]),
        "primary_tumour": choice(rng, prim["by_scenario"].get(scenario_id, prim["choices"])),
        "liver": {
            "pdff_percent": round(uniform(rng, lv["pdff_percent"][scenario_id]), 3),
            "hepatocyte_uptake_factor": round(uniform(rng, lv["hepatocyte_uptake_factor"][scenario_id]), 4),
            "adc_1e6_mm2_s": round(uniform(rng, lv["adc_1e6_mm2_s"]), 1),
            "t1_factor": round(uniform(rng, lv["t1_to_catalogue"]), 4),
            "t2_factor": round(uniform(rng, lv["t2_to_catalogue"]), 4),
            "bilirubin_umol_l": round(uniform(rng, lv["bilirubin_umol_l"][scenario_id]), 1),
        },
    }


def draw_lesion_types(rng: np.random.Generator, primary: str, steatotic: bool) -> list[str]:
    """Which lesion types this study holds: one metastasis of the primary first, then weighted draws."""
    st = lesion_ranges()["study"]
    types = lesion_ranges()["lesion_types"]
    templates = {les["id"]: les for les in catalogue()["lesions"]}

    def eligible(name: str) -> bool:
        spec = types[name]
        return ((primary in spec["primaries"] or "any" in spec["primaries"])
                and (steatotic or not spec.get("requires_steatosis")))

    names = [t for t in types if eligible(t)]
    mets = [t for t in names if templates[types[t]["template"]]["expected_impression"] == "typical metastasis"]
    n = int(round(uniform(rng, st["lesion_count"])))
    wm = np.array([float(types[t]["weight"]) for t in mets])
    out = [mets[int(rng.choice(len(mets), p=wm / wm.sum()))]] if mets else []
    w = np.array([float(types[t]["weight"]) for t in names])
    while len(out) < n:
        pick = names[int(rng.choice(len(names), p=w / w.sum()))]
        if out.count(pick) < int(st["max_per_type"]):
            out.append(pick)
    return out


# ---------------------------------------------------------------- one lesion

def _outline(rng: np.random.Generator, shape: str) -> dict[str, Any] | None:
    sp = lesion_ranges()["shape_parameters"]
    if shape == "lobulated":
        n = int(round(uniform(rng, sp["lobulated"]["lobes"])))
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        amps = [uniform(rng, sp["lobulated"]["amplitude"]) for _ in range(n)]
        return {"width": round(uniform(rng, sp["lobulated"]["width_rad"]), 4),
                "lobes": [[*(round(float(v), 5) for v in d[i]), round(amps[i], 4)] for i in range(n)]}
    if shape == "irregular":
        ir = sp["irregular"]
        n = int(ir["waves"])
        amp = uniform(rng, ir["amplitude"]) / np.sqrt(n / 2.0)
        waves = []
        for _ in range(n):
            k = rng.normal(size=3)
            k *= uniform(rng, ir["wavenumber"]) / np.linalg.norm(k)
            waves.append([*(round(float(v), 5) for v in k), round(float(rng.uniform(0, 2 * np.pi)), 5),
                          round(float(amp), 5)])
        return {"waves": waves}
    return None


def _geometry(rng: np.random.Generator, les: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Outline and semi-axes, scaled so that the measured longest axial diameter equals the drawn one."""
    sp = lesion_ranges()["shape_parameters"]
    target = uniform(rng, spec["diameter_mm"])
    shape = choice(rng, spec["shapes"])
    ratios = [1.0, uniform(rng, sp["axis_ratio"]), uniform(rng, sp["axis_ratio"])]
    les.update({"shape": shape, "semi_axes_mm": [target / 2.0 * r for r in ratios],
                "rot_z_deg": round(uniform(rng, sp["rot_z_deg"]), 3), "outline": _outline(rng, shape),
                "centre_mm": [0.0, 0.0, 0.0], "diameter_mm": None})
    k = target / measured_axial_diameter_mm(les)
    les["semi_axes_mm"] = [round(v * k, 4) for v in les["semi_axes_mm"]]
    les["diameter_mm"] = round(measured_axial_diameter_mm(les), 3)
    return {"diameter_mm": round(target, 3), "shape": shape, "axis_ratios": [round(r, 4) for r in ratios[1:]]}


def _to_liver_factor(ratio: float, param: str, base: str, liver: dict[str, Any], fs: float) -> float:
    """The catalogue's multiplicative factor on the base tissue that gives ``ratio`` x the liver's value."""
    base_value = liver["params"][param] if base == "liver" else tissue_params(base, fs)["params"][param]
    return ratio * liver["params"][param] / base_value


def _draw_compartment(rng: np.random.Generator, comp: dict[str, Any], ranges: dict[str, Any], liver: dict[str, Any],
                      fs: float, min_radius_mm: float) -> dict[str, float]:
    """Draw every ranged parameter of one compartment into the catalogue entry ``comp`` (in place)."""
    drawn: dict[str, float] = {}
    base = comp.get("base", "liver")
    comp.setdefault("params", {})
    comp.setdefault("factors", {})
    for key, spec in ranges.items():
        if key == "thickness_mm":
            cap = 0.45 * min_radius_mm
            v = uniform(rng, spec, hi=cap)
            if cap < float(spec["range"][0]):
                v = cap
                drawn["thickness_limited_by_size"] = True
            comp["thickness_mm"] = v
        elif key == "diameter_mm":  # eccentric nodule
            v = uniform(rng, spec, hi=1.2 * min_radius_mm)
            d = rng.normal(size=3)
            comp["diameter_mm"], comp["direction"] = v, [round(float(c), 5) for c in d / np.linalg.norm(d)]
        elif key in ("adc_1e6_mm2_s", "pdff_percent"):
            v = uniform(rng, spec)
            comp["params"][key] = v
        elif key in ("t1_to_liver", "t2_to_liver"):
            v = uniform(rng, spec)
            param = "t1_ms" if key == "t1_to_liver" else "t2_ms"
            comp["factors"][param] = _to_liver_factor(v, param, base, liver, fs)
        elif key == "pdff_relative_to_liver":
            v = uniform(rng, spec)
            comp["pdff_percent"] = {"relative_to_liver": v}
        elif key == "hep_fraction":
            v = uniform(rng, spec)
            comp["hep_fraction"] = v
        elif key == "enhancement_scale":
            v = uniform(rng, spec)
            jitter = lesion_ranges()["enhancement_phase_jitter"]
            gd = comp.get("gd_ecs_mM")
            if isinstance(gd, dict):
                comp["gd_ecs_mM"] = {ph: float(gd.get(ph, 0.0)) * v * (1.0 + uniform(rng, jitter))
                                     for ph in CONTRAST_PHASES}
                drawn["gd_ecs_mM"] = {ph: round(c, 5) for ph, c in comp["gd_ecs_mM"].items()}
        else:
            continue
        drawn[key] = round(float(v), 5)
    return drawn


def _split_patches(rng: np.random.Generator, les: dict[str, Any], h: float, keys: tuple[str, ...]) -> dict[str, Any]:
    """Internal heterogeneity: the largest non-shell compartment becomes three smooth patches with parameters
    scaled by (1 - h, 1, 1 + h)."""
    sp = lesion_ranges()["shape_parameters"]
    target = next(c for c in reversed(les["compartments"]) if c["region"] in ("inner", "all"))
    seed, wl = int(rng.integers(1, 2**31 - 1)), round(uniform(rng, sp["heterogeneity_wavelength_mm"]), 3)
    patches = []
    for k, (lo, hi, zf) in enumerate(PATCH_BANDS):
        p = copy.deepcopy(target)
        p["name"] = target["name"] if zf == 0.0 else f"{target['name']}~{k}"
        p["band"] = {"seed": seed, "wavelength_mm": wl, "low": lo, "high": hi}
        f = 1.0 + h * zf
        if "adc_1e6_mm2_s" in keys and "adc_1e6_mm2_s" in p.get("params", {}):
            p["params"]["adc_1e6_mm2_s"] = p["params"]["adc_1e6_mm2_s"] * f
        if "t2_ms" in keys and "t2_ms" in p.get("factors", {}):
            p["factors"]["t2_ms"] = p["factors"]["t2_ms"] * f
        if "gd_ecs_mM" in keys and isinstance(p.get("gd_ecs_mM"), dict):
            p["gd_ecs_mM"] = {ph: v * f for ph, v in p["gd_ecs_mM"].items()}
        if "hep_fraction" in keys:
            p["hep_fraction"] = float(p.get("hep_fraction", 0.0)) * f
        p["patch_of"] = target["name"]
        patches.append(p)
    i = les["compartments"].index(target)
    les["compartments"][i:i + 1] = patches
    return {"heterogeneity": round(h, 4), "split": target["name"], "noise_seed": seed, "wavelength_mm": wl,
            "scaled": list(keys)}


def _fnh_pattern(rng: np.random.Generator, les: dict[str, Any], spec: dict[str, Any]) -> str:
    """HBP pattern of an FNH-like nodule [S25]: rim retention, uniform or heterogeneous hyperintensity."""
    pattern = choice(rng, spec["hbp_patterns"])
    if pattern != "rim":
        comps = {c["name"]: c for c in les["compartments"]}
        comps["core"]["hep_fraction"] = comps["rim"]["hep_fraction"]
        les["expected_hallmarks"] = [("hbp_iso_or_hyperintense" if h == "hbp_peripheral_retention" else h)
                                     for h in les["expected_hallmarks"]]
    return pattern


def draw_lesion(rng: np.random.Generator, type_name: str, primary: str, liver: dict[str, Any],
                fs: float) -> dict[str, Any]:
    """One lesion of a type: its template from the catalogue, every ranged value drawn; ``drawn`` records them."""
    spec = lesion_ranges()["lesion_types"][type_name]
    les = next(copy.deepcopy(t) for t in catalogue()["lesions"] if t["id"] == spec["template"])
    les.pop("size_note", None)
    les["template"] = spec["template"]
    les["id_prefix"] = spec.get("id_prefix", spec["template"])
    les["name"] = spec.get("name", les["name"])
    if les.get("typical_primary"):
        les["typical_primary"] = primary
    drawn: dict[str, Any] = _geometry(rng, les, spec)
    min_r = min(les["semi_axes_mm"])
    drawn["compartments"] = {}
    by_name = {c["name"]: c for c in les["compartments"]}
    for name, ranges in spec["compartments"].items():
        drawn["compartments"][name] = _draw_compartment(rng, by_name[name], ranges, liver, fs, min_r)
    if "months_since_ablation" in spec:
        drawn["months_since_ablation"] = round(uniform(rng, spec["months_since_ablation"]), 2)
    keys: tuple[str, ...] = ("adc_1e6_mm2_s", "t2_ms", "gd_ecs_mM")
    h = uniform(rng, spec["heterogeneity"]) if "heterogeneity" in spec else 0.0
    if "hbp_patterns" in spec:
        drawn["hbp_pattern"] = _fnh_pattern(rng, les, spec)
        keys = ("hep_fraction",)
        if drawn["hbp_pattern"] != "heterogeneous":
            h = 0.0
    shell = max((float(c.get("thickness_mm", 0.0)) for c in les["compartments"] if c["region"] == "shell"),
                default=0.0)
    min_patched = float(lesion_ranges()["shape_parameters"]["heterogeneity_min_radius_mm"]["value"])
    if h > 0.02 and min_r - shell >= min_patched:
        drawn["patches"] = _split_patches(rng, les, h, keys)
    les["drawn"] = drawn
    return les


def draw_lesions(rng: np.random.Generator, settings: dict[str, Any], steatotic: bool, liver: dict[str, Any],
                 fs: float) -> list[dict[str, Any]]:
    """Every lesion of the study (not yet placed), largest first so that big ones find room."""
    types = draw_lesion_types(rng, settings["primary_tumour"], steatotic)
    lesions = [draw_lesion(rng, t, settings["primary_tumour"], liver, fs) for t in types]
    return sorted(lesions, key=lambda les: -les["diameter_mm"])


def name_lesions(lesions: list[dict[str, Any]]) -> None:
    """Ids ``<prefix>_<k>`` (prefix: the template's id), names and labels 101.. in placement order (in place)."""
    seen: dict[str, int] = {}
    for i, les in enumerate(lesions):
        prefix = les.pop("id_prefix")
        k = seen[prefix] = seen.get(prefix, 0) + 1
        les["id"] = f"{prefix}_{k}"
        les["name"] = f"{les['name']} {k}"
        les["label"] = 101 + i
