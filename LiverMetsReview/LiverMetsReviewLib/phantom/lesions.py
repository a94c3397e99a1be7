"""The lesion catalogue (``resources/phantom_lesions.json``): which lesions a scenario holds, their
compartments painted on the truth grid, and their tissue parameters.

A lesion is a sphere or an ellipsoid (mm, LPS) split into compartments: ``all`` (one compartment),
``shell`` (outer rim of a given thickness), ``inner`` (the rest), ``eccentric`` (a nodule at the margin,
e.g. a recurrence on an ablation zone). Rim/core/nodule hallmarks then arise from the signal physics.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..errors import LiverMetsError
from ..resources import load_json
from .anatomy import Anatomy, axes_mm

CATALOGUE = "phantom_lesions.json"


def catalogue() -> dict[str, Any]:
    """The lesion catalogue as loaded from data (a deep copy: callers may modify it)."""
    return copy.deepcopy(load_json(CATALOGUE))


def semi_axes_mm(lesion: dict[str, Any]) -> tuple[float, float, float]:
    """Semi-axes of the lesion's outline (a sphere has three equal ones)."""
    if lesion.get("shape", "sphere") == "sphere":
        r = float(lesion["diameter_mm"]) / 2.0
        return (r, r, r)
    a, b, c = (float(v) for v in lesion["semi_axes_mm"])
    return (a, b, c)


def axial_diameter_mm(lesion: dict[str, Any]) -> float:
    """Longest axial diameter (what a reader measures): the stated one, or twice the largest in-plane axis."""
    if lesion.get("diameter_mm"):
        return float(lesion["diameter_mm"])
    a, b, _ = semi_axes_mm(lesion)
    return 2.0 * max(a, b)


def select_lesions(liver_pdff_percent: float) -> list[dict[str, Any]]:
    """Lesions present at this liver fat fraction (steatosis-dependent ones need a fatty liver)."""
    cat = catalogue()
    limit = float(cat["steatosis_dependent_min_liver_pdff_percent"])
    out = []
    for les in cat["lesions"]:
        if les.get("requires_steatosis") and liver_pdff_percent < limit:
            continue
        if les.get("centre_mm") is None:
            raise LiverMetsError(f"lesion '{les['id']}' in {CATALOGUE} has no centre_mm; give its position in mm (LPS)")
        les["diameter_mm"] = axial_diameter_mm(les)
        out.append(les)
    return out


def lesion_sdf(lesion: dict[str, Any], x, y, z) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to the lesion outline."""
    cx, cy, cz = (float(v) for v in lesion["centre_mm"])
    a, b, c = semi_axes_mm(lesion)
    t = np.radians(float(lesion.get("rot_z_deg", 0.0)))
    dx, dy = x - cx, y - cy
    u, v = np.cos(t) * dx + np.sin(t) * dy, -np.sin(t) * dx + np.cos(t) * dy
    q = np.sqrt((u / a) ** 2 + (v / b) ** 2 + ((z - cz) / c) ** 2)
    return (q - 1.0) * min(a, b, c)


def _nodule_centre(lesion: dict[str, Any], comp: dict[str, Any]) -> np.ndarray:
    d = np.asarray(comp["direction"], float)
    d = d / np.linalg.norm(d)
    r = min(semi_axes_mm(lesion))
    return np.asarray(lesion["centre_mm"], float) + (r - float(comp["diameter_mm"]) / 2.0) * d


def compartment_masks(lesion: dict[str, Any], x, y, z) -> list[tuple[str, np.ndarray]]:
    """Boolean mask per compartment (mutually exclusive) on the coordinate block given."""
    d = lesion_sdf(lesion, x, y, z)
    inside = d <= 0
    masks: list[tuple[str, np.ndarray]] = []
    taken = np.zeros_like(inside)
    # Eccentric nodules first (they replace rim and core where they sit), then shells, then the rest.
    order = sorted(lesion["compartments"], key=lambda c: {"eccentric": 0, "shell": 1}.get(c["region"], 2))
    for comp in order:
        reg = comp["region"]
        if reg == "eccentric":
            nc = _nodule_centre(lesion, comp)
            m = inside & (np.sqrt((x - nc[0]) ** 2 + (y - nc[1]) ** 2 + (z - nc[2]) ** 2)
                          <= float(comp["diameter_mm"]) / 2.0)
        elif reg == "shell":
            m = inside & (d > -float(comp["thickness_mm"]))
        elif reg in ("inner", "all"):
            m = inside.copy()
        else:
            raise LiverMetsError(f"lesion '{lesion['id']}': compartment region '{reg}' is unknown "
                                 "(use all, shell, inner or eccentric)")
        m &= ~taken
        taken |= m
        masks.append((comp["name"], m))
    return masks


def paint_lesions(anatomy: Anatomy, lesions: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Paint every lesion's compartments into ``anatomy.labels`` (in place).

    Lesions displace the liver parenchyma and, unless ``vessels_run_through``, the intrahepatic vessels.
    Returns {lesion id: {compartment name: compartment label}}.
    """
    x_ax, y_ax, z_ax = axes_mm(anatomy.grid)
    liver_labels = [anatomy.label_of("liver")]
    vessel_labels = [anatomy.label_of(n) for n in ("portal_vein", "hepatic_veins") if n in anatomy.compartment_names]
    out: dict[str, dict[str, int]] = {}
    for les in lesions:
        r = max(semi_axes_mm(les)) + 2.0
        c = les["centre_mm"]
        sl = tuple(slice(int(np.searchsorted(ax, c[i] - r)), int(np.searchsorted(ax, c[i] + r)))
                   for i, ax in ((2, z_ax), (1, y_ax), (0, x_ax)))
        x = x_ax[sl[2]][None, None, :]
        y = y_ax[sl[1]][None, :, None]
        z = z_ax[sl[0]][:, None, None]
        block = anatomy.labels[sl]
        allowed = liver_labels if les.get("vessels_run_through") else liver_labels + vessel_labels
        paintable = np.isin(block, allowed)
        out[les["id"]] = {}
        for name, m in compartment_masks(les, x, y, z):
            comp_name = f"{les['id']}.{name}"
            anatomy.compartment_names.append(comp_name)
            lab = len(anatomy.compartment_names) - 1
            block[m & paintable] = lab
            out[les["id"]][name] = lab
    return out
