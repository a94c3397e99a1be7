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


def fibonacci_directions(n: int = 400) -> np.ndarray:
    """``n`` nearly uniform unit vectors (n, 3): the directions an outline is sampled along."""
    i = np.arange(n, dtype=float) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5.0 ** 0.5) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def radial_modulation(outline: dict[str, Any] | None, ux, uy, uz) -> np.ndarray | float:
    """Relative radius of the outline along unit directions (lesion frame): 1 for an ellipsoid.

    ``lobes``: [[dx, dy, dz, amplitude], ...] Gaussian bumps of angular width ``width`` (radians) around unit
    directions (a lobulated mass); ``waves``: [[kx, ky, kz, phase, amplitude], ...] smooth noise on the
    sphere (an irregular outline). Never below 0.5 (no outline folds through the centre).
    """
    if not outline:
        return 1.0
    s = 1.0
    w = float(outline.get("width", 0.5))
    for dx, dy, dz, amp in outline.get("lobes", []):
        s = s + amp * np.exp(((ux * dx + uy * dy + uz * dz) - 1.0) / (w * w))
    for kx, ky, kz, ph, amp in outline.get("waves", []):
        s = s + amp * np.sin(kx * ux + ky * uy + kz * uz + ph)
    return np.maximum(s, 0.5)


def lesion_sdf(lesion: dict[str, Any], x, y, z) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to the lesion outline.

    Exact along each ray from the centre for a sphere with any radial modulation; for an ellipsoid the
    distance is scaled by its smallest semi-axis (as for the organs).
    """
    cx, cy, cz = (float(v) for v in lesion["centre_mm"])
    a, b, c = semi_axes_mm(lesion)
    t = np.radians(float(lesion.get("rot_z_deg", 0.0)))
    dx, dy = x - cx, y - cy
    u, v, w = (np.cos(t) * dx + np.sin(t) * dy) / a, (-np.sin(t) * dx + np.cos(t) * dy) / b, (z - cz) / c
    q = np.sqrt(u ** 2 + v ** 2 + w ** 2)
    outline = lesion.get("outline")
    if outline:
        qs = np.maximum(q, 1e-6)
        s = radial_modulation(outline, u / qs, v / qs, w / qs)
    else:
        s = 1.0
    return (q - s) * min(a, b, c)


def outline_points_mm(lesion: dict[str, Any], n: int = 400, margin_mm: float = 0.0) -> np.ndarray:
    """World points (n, 3) on the outline, pushed ``margin_mm`` outwards along each ray from the centre."""
    d = fibonacci_directions(n)
    a, b, c = semi_axes_mm(lesion)
    s = np.asarray(radial_modulation(lesion.get("outline"), d[:, 0], d[:, 1], d[:, 2])) * np.ones(len(d))
    local = d * np.array([a, b, c]) * s[:, None]
    t = np.radians(float(lesion.get("rot_z_deg", 0.0)))
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    world = local @ rot.T
    r = np.linalg.norm(world, axis=1, keepdims=True)
    world = world * (1.0 + margin_mm / np.maximum(r, 1e-6))
    return np.asarray(lesion["centre_mm"], float) + world


def bounding_radius_mm(lesion: dict[str, Any]) -> float:
    """Largest distance from the centre to the outline (for boxes and spacing between lesions)."""
    if not lesion.get("outline"):
        return max(semi_axes_mm(lesion))
    pts = outline_points_mm(lesion, 800) - np.asarray(lesion["centre_mm"], float)
    return float(np.linalg.norm(pts, axis=1).max()) * 1.02


def _to_outline_mm(lesion: dict[str, Any], p: np.ndarray, u: np.ndarray, z: float, reach_mm: float) -> float:
    """How far the point ``p`` (x, y; inside the outline) lies from the outline along ``u``: the first outside
    sample of 65 up to ``reach_mm``, then bisection on the signed distance (not rounded to any grid)."""
    t = np.linspace(0.0, reach_mm, 65)
    out = np.flatnonzero(lesion_sdf(lesion, p[0] + t * u[0], p[1] + t * u[1], z) > 0)
    if len(out) == 0:
        return reach_mm
    lo, hi = t[max(out[0] - 1, 0)], t[out[0]]
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        if lesion_sdf(lesion, p[0] + mid * u[0], p[1] + mid * u[1], z) <= 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _chord_mm(lesion: dict[str, Any], p: np.ndarray, u: np.ndarray, z: float, reach_mm: float) -> float:
    """Length of the outline's chord along ``u`` through ``p`` (0 when ``p`` is outside)."""
    if lesion_sdf(lesion, p[0], p[1], z) > 0:
        return 0.0
    return _to_outline_mm(lesion, p, u, z, reach_mm) + _to_outline_mm(lesion, p, -u, z, reach_mm)


def _longest_chord_mm(lesion: dict[str, Any], p: np.ndarray, q: np.ndarray, z: float, step_mm: float) -> float:
    """The longest chord near the one through ``p`` and ``q`` (two far-apart inside points of a plane): its
    angle and offset refined by a simplex search, so the result does not carry the grid's direction error."""
    from scipy.optimize import minimize

    mid = 0.5 * (p + q)
    reach = 2.0 * bounding_radius_mm(lesion)
    theta0 = float(np.arctan2(*(q - p)[::-1]))

    def negative(x: np.ndarray) -> float:
        u = np.array([np.cos(x[0]), np.sin(x[0])])
        return -_chord_mm(lesion, mid + x[1] * np.array([-u[1], u[0]]), u, z, reach)

    res = minimize(negative, np.array([theta0, 0.0]), method="Nelder-Mead",
                   options={"initial_simplex": [[theta0, 0.0], [theta0 + 0.05, 0.0], [theta0, step_mm]],
                            "xatol": 1e-4, "fatol": 1e-4})
    return max(-float(res.fun), -negative(np.array([theta0, 0.0])))


def measured_axial_diameter_mm(lesion: dict[str, Any], step_mm: float = 0.5, refine: int = 3) -> float:
    """Longest axial (in-plane) diameter of the outline (what a reader measures): per axial plane of a fine
    local grid the farthest pair of inside points; on the ``refine`` planes where that pair is longest, the
    chord near it is extended to the outline and its angle and offset refined (the grid only finds the chord;
    its length is the outline's, not rounded to the grid)."""
    from scipy.spatial import ConvexHull, QhullError

    n = int(np.ceil(bounding_radius_mm(lesion) / step_mm)) + 1
    ax = np.arange(-n, n + 1) * step_mm  # one plane through the centre, where an ellipsoid is widest
    c = np.asarray(lesion["centre_mm"], float)
    inside = lesion_sdf(lesion, c[0] + ax[None, None, :], c[1] + ax[None, :, None], c[2] + ax[:, None, None]) <= 0
    pairs = []
    for k in np.flatnonzero(inside.any(axis=(1, 2))):
        pts = c[:2] + ax[0] + np.argwhere(inside[k])[:, ::-1].astype(float) * step_mm  # (x, y) in mm
        if len(pts) >= 3:
            try:
                pts = pts[ConvexHull(pts).vertices]
            except QhullError:
                pass
        d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[i, j] > 0:
            pairs.append((float(d2[i, j]), pts[i], pts[j], c[2] + ax[k]))
    pairs.sort(key=lambda t: -t[0])
    return max((_longest_chord_mm(lesion, p, q, z, step_mm) for _, p, q, z in pairs[:refine]), default=0.0)


def _nodule_centre(lesion: dict[str, Any], comp: dict[str, Any]) -> np.ndarray:
    d = np.asarray(comp["direction"], float)
    d = d / np.linalg.norm(d)
    r = min(semi_axes_mm(lesion))
    return np.asarray(lesion["centre_mm"], float) + (r - float(comp["diameter_mm"]) / 2.0) * d


def _in_band(band: dict[str, Any], x, y, z) -> np.ndarray:
    from .anatomy import smooth_noise

    f = smooth_noise(x, y, z, 1.0, float(band["wavelength_mm"]), seed=int(band["seed"]))
    return (f >= float(band["low"])) & (f < float(band["high"]))


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
            if comp.get("band"):  # a heterogeneity patch: the part of the region where the noise falls in band
                m &= _in_band(comp["band"], x, y, z)
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
        r = bounding_radius_mm(les) + 2.0
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
