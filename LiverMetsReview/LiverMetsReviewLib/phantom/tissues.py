"""Tissue parameters from data (``resources/phantom_tissues.json`` + the lesion catalogue) → :class:`TissueModel`.

Values that depend on B0 are stored per field strength; lesion compartments start from a base tissue and
apply multiplicative ``factors`` (so a lesion is "1.6x the liver's T1" at 1.5 T and at 3 T) and absolute
``params``. The scenario sets the liver's fat fraction and scales hepatocyte uptake.
"""

from __future__ import annotations

from typing import Any

from ..errors import LiverMetsError
from ..resources import load_json
from .anatomy import Anatomy
from .model import CONTRAST_PHASES, SCALAR_PARAMETERS, Compartment, TissueModel

TISSUES = "phantom_tissues.json"
FIELD_DEPENDENT = ("t1_ms", "t2_ms", "t2star_ms")


def field_strengths() -> list[float]:
    return [float(v) for v in load_json(TISSUES)["field_strengths_t"]]


def check_field_strength(field_strength_t: float) -> float:
    """The field strength as float, or a clear error when the data has no values for it."""
    fs = float(field_strength_t)
    allowed = field_strengths()
    if not any(abs(fs - a) < 1e-6 for a in allowed):
        names = ", ".join(f"{a:g}" for a in allowed)
        raise LiverMetsError(f"field strength {fs:g} T is not modelled; use one of {names} T")
    return next(a for a in allowed if abs(fs - a) < 1e-6)


def _at_field(value: Any, fs: float) -> float:
    if isinstance(value, dict):
        for k, v in value.items():
            if abs(float(k) - fs) < 1e-6:
                return float(v)
        raise LiverMetsError(f"a tissue value has no entry for {fs:g} T in {TISSUES}")
    return float(value)


def tissue_params(name: str, field_strength_t: float) -> dict[str, Any]:
    """Scalar parameters and gadoxetate concentrations of a named tissue at a field strength."""
    tissues = load_json(TISSUES)["tissues"]
    if name not in tissues:
        raise LiverMetsError(f"tissue '{name}' is not in {TISSUES}")
    t = tissues[name]
    return {
        "params": {p: _at_field(t[p], field_strength_t) for p in SCALAR_PARAMETERS},
        "gd_ecs_mM": {ph: float(t["gd_ecs_mM"].get(ph, 0.0)) for ph in CONTRAST_PHASES},
        "gd_hep_mM": {ph: float(t["gd_hep_mM"].get(ph, 0.0)) for ph in CONTRAST_PHASES},
    }


def organ_table() -> list[dict[str, Any]]:
    """Organs with their compartments, colours and terminology (data)."""
    return load_json(TISSUES)["organs"]


def liver_params(scenario: dict[str, Any], field_strength_t: float) -> dict[str, Any]:
    """The liver background of a scenario: fat fraction set, hepatocyte uptake scaled."""
    liver = tissue_params("liver", field_strength_t)
    liver["params"]["pdff_percent"] = float(scenario["liver_pdff_percent"])
    # A varied study draws the liver's ADC and scales its T1/T2 (``liver_overrides``, see vary.py).
    over = scenario.get("liver_overrides", {})
    if "adc_1e6_mm2_s" in over:
        liver["params"]["adc_1e6_mm2_s"] = float(over["adc_1e6_mm2_s"])
    for param, key in (("t1_ms", "t1_factor"), ("t2_ms", "t2_factor")):
        liver["params"][param] *= float(over.get(key, 1.0))
    liver["params"]["t2star_ms"] = min(liver["params"]["t2star_ms"], liver["params"]["t2_ms"])
    k = float(scenario.get("hepatocyte_uptake_factor", 1.0))
    liver["gd_hep_mM"] = {ph: k * v for ph, v in liver["gd_hep_mM"].items()}
    return liver


def lesion_compartment_params(comp: dict[str, Any], liver: dict[str, Any], fs: float) -> dict[str, Any]:
    """Parameters of one lesion compartment (see the catalogue's description for the rules)."""
    base = liver if comp.get("base", "liver") == "liver" else tissue_params(comp["base"], fs)
    params = dict(base["params"])
    for p, f in comp.get("factors", {}).items():
        params[p] = params[p] * float(f)
    for p, v in comp.get("params", {}).items():
        params[p] = _at_field(v, fs)
    pdff = comp.get("pdff_percent")
    if isinstance(pdff, dict):
        params["pdff_percent"] = min(100.0, float(pdff["relative_to_liver"]) * liver["params"]["pdff_percent"])
    elif pdff is not None:
        params["pdff_percent"] = float(pdff)
    # A compartment's T2* can never exceed its T2.
    params["t2star_ms"] = min(params["t2star_ms"], params["t2_ms"])
    ecs = comp.get("gd_ecs_mM", {})
    gd_ecs = dict(liver["gd_ecs_mM"]) if ecs == "liver" else {ph: float(ecs.get(ph, 0.0)) for ph in CONTRAST_PHASES}
    frac = float(comp.get("hep_fraction", 0.0))
    gd_hep = {ph: frac * v for ph, v in liver["gd_hep_mM"].items()}
    return {"params": params, "gd_ecs_mM": gd_ecs, "gd_hep_mM": gd_hep}


def build_tissue_model(anatomy: Anatomy, lesions: list[dict[str, Any]], lesion_labels: dict[str, dict[str, int]],
                       scenario: dict[str, Any], field_strength_t: float) -> TissueModel:
    """One :class:`Compartment` per painted compartment label, parameters from data."""
    fs = check_field_strength(field_strength_t)
    liver = liver_params(scenario, fs)
    organ_of = {}
    for organ in organ_table():
        for comp_name, tissue in organ["compartments"].items():
            organ_of[comp_name] = (organ["id"], tissue)
    comps: list[Compartment] = []
    for label, name in enumerate(anatomy.compartment_names):
        if label == 0 or name not in organ_of:
            continue
        organ_id, tissue = organ_of[name]
        t = liver if tissue == "liver" else tissue_params(tissue, fs)
        comps.append(Compartment(label, name, dict(t["params"]), dict(t["gd_ecs_mM"]), dict(t["gd_hep_mM"]),
                                 {"kind": "organ", "structure": organ_id, "tissue": tissue}))
    for les in lesions:
        for comp in les["compartments"]:
            label = lesion_labels[les["id"]][comp["name"]]
            p = lesion_compartment_params(comp, liver, fs)
            info = {"kind": "lesion", "structure": les["id"], "compartment": comp["name"],
                    "base": comp.get("base", "liver")}
            if "patch_of" in comp:  # a heterogeneity patch of a varied lesion (vary.py)
                info["patch_of"] = comp["patch_of"]
            comps.append(Compartment(label, f"{les['id']}.{comp['name']}", p["params"], p["gd_ecs_mM"],
                                     p["gd_hep_mM"], info))
    return TissueModel(grid=anatomy.grid, labels=anatomy.labels, compartments=comps, field_strength_t=fs)
