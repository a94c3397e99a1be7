"""The phantom's anatomy: organs of the upper abdomen as implicit shapes on a fine truth grid (LPS).

Every organ is a signed-distance-like function (negative inside, in mm) evaluated with numpy broadcasting
inside the organ's bounding box, so no per-voxel Python loop runs. Organs are painted in a fixed order,
later ones over earlier ones (the vessels cross the liver, the gallbladder sits in its fossa).

Axes are LPS: x grows to the patient's left, y to the posterior, z to the superior; the patient lies
supine, so the anterior abdominal wall has the most negative y. The shapes are fixed (independent of the
seed) so that lesion positions in ``phantom_lesions.json`` stay valid; scenarios may deform the liver
(nodular contour, capsular retraction, caudate enlargement, ascites).

The Couinaud segments (1..8) follow the usual approximation: vertical planes through the IVC along the
right, middle and left hepatic veins separate the sectors, the horizontal portal plane separates the
superior (II, IVa, VII, VIII) from the inferior (III, IVb, V, VI) segments, and the caudate lobe is I.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError

# Grid extent (mm, LPS) of the truth grid: ~380 x 300 mm axially, 200 mm of upper abdomen.
GRID_MIN_MM = (-190.0, -140.0, -100.0)
GRID_MAX_MM = (190.0, 160.0, 100.0)
GRID_SPACING_MM = {"standard": 1.5, "small": 3.0}

# Landmarks (mm, LPS). The hepatic veins and Couinaud planes radiate from the IVC axis.
IVC_AXIS_XY = (-22.0, 50.0)
HEPATIC_VEIN_CONFLUENCE_Z = 72.0
# Angle of each hepatic vein in the axial plane, degrees from straight anterior (negative = patient right).
HEPATIC_VEIN_ANGLES_DEG = {"right": -75.0, "middle": -20.0, "left": 30.0}
PORTAL_PLANE_Z = 10.0
# Segments II/III: the left lateral sector is split higher than the portal plane (the left portal vein's
# umbilical portion runs up into the left lobe), here by a horizontal plane at this level.
LEFT_LATERAL_SPLIT_Z = 24.0


@dataclass
class Shape:
    """An implicit shape: ``sdf(x, y, z)`` in mm (negative inside) and its bounding box (mm, LPS)."""

    sdf: Any
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]


@dataclass
class Anatomy:
    """Result of :func:`build_anatomy`: compartment labels and the landmark geometry used to build them."""

    grid: sitk.Image
    labels: np.ndarray                       # int32 (z, y, x): index into ``compartment_names`` (0 = air)
    compartment_names: list[str]             # index = label value; [0] is "background"
    couinaud: np.ndarray                     # uint8 (z, y, x): 1..8 inside the liver, 0 elsewhere
    landmarks: dict[str, Any] = field(default_factory=dict)

    def label_of(self, name: str) -> int:
        return self.compartment_names.index(name)

    def mask(self, name: str) -> np.ndarray:
        return self.labels == self.label_of(name)


def make_grid(size: str = "standard") -> sitk.Image:
    """The truth grid: identity direction, origin at the grid's first voxel centre (LPS)."""
    if size not in GRID_SPACING_MM:
        raise LiverMetsError(f"phantom size '{size}' is unknown; use one of {sorted(GRID_SPACING_MM)}")
    sp = GRID_SPACING_MM[size]
    dims = [int(round((hi - lo) / sp)) for lo, hi in zip(GRID_MIN_MM, GRID_MAX_MM, strict=True)]
    grid = sitk.Image(dims, sitk.sitkUInt8)
    grid.SetSpacing((sp, sp, sp))
    grid.SetOrigin(tuple(lo + sp / 2 for lo in GRID_MIN_MM))
    return grid


def axes_mm(grid: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World coordinates (mm) of voxel centres along x, y, z (identity-direction grid)."""
    ox, oy, oz = grid.GetOrigin()
    sx, sy, sz = grid.GetSpacing()
    nx, ny, nz = grid.GetSize()
    return (ox + sx * np.arange(nx, dtype=np.float32), oy + sy * np.arange(ny, dtype=np.float32),
            oz + sz * np.arange(nz, dtype=np.float32))


# ---------------------------------------------------------------- implicit primitives (vectorised)

def ellipsoid(c: tuple[float, float, float], r: tuple[float, float, float], rot_z_deg: float = 0.0) -> Shape:
    """Ellipsoid with semi-axes ``r`` (mm), optionally rotated about z; distance scaled by the smallest axis."""
    cx, cy, cz = c
    a, b, cc = r
    cos, sin = np.cos(np.radians(rot_z_deg)), np.sin(np.radians(rot_z_deg))
    m = max(r)

    def sdf(x, y, z):
        dx, dy = x - cx, y - cy
        u, v = cos * dx + sin * dy, -sin * dx + cos * dy
        q = np.sqrt((u / a) ** 2 + (v / b) ** 2 + ((z - cz) / cc) ** 2)
        return (q - 1.0) * min(r)

    return Shape(sdf, (cx - m, cy - m, cz - cc), (cx + m, cy + m, cz + cc))


def capsule(p0: tuple[float, float, float], p1: tuple[float, float, float], radius: float,
            radius1: float | None = None) -> Shape:
    """Tube between two points (a vessel segment), radius tapering linearly to ``radius1``."""
    p0a, p1a = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    d = p1a - p0a
    dd = float(d @ d)
    r1 = radius if radius1 is None else radius1

    def sdf(x, y, z):
        t = ((x - p0a[0]) * d[0] + (y - p0a[1]) * d[1] + (z - p0a[2]) * d[2]) / dd
        t = np.clip(t, 0.0, 1.0)
        dist = np.sqrt((x - p0a[0] - t * d[0]) ** 2 + (y - p0a[1] - t * d[1]) ** 2 + (z - p0a[2] - t * d[2]) ** 2)
        return dist - (radius + (r1 - radius) * t)

    rmax = max(radius, r1)
    lo = tuple(float(min(a, b) - rmax) for a, b in zip(p0, p1, strict=True))
    hi = tuple(float(max(a, b) + rmax) for a, b in zip(p0, p1, strict=True))
    return Shape(sdf, lo, hi)


def cylinder_z(cx: float, cy: float, r: float, z0: float, z1: float, ry: float | None = None) -> Shape:
    """Vertical (cranio-caudal) elliptic cylinder, e.g. aorta, IVC, vertebral body."""
    ry = r if ry is None else ry

    def sdf(x, y, z):
        q = np.sqrt(((x - cx) / r) ** 2 + ((y - cy) / ry) ** 2)
        radial = (q - 1.0) * min(r, ry)
        axial = np.maximum(z0 - z, z - z1)
        return np.maximum(radial, axial)

    return Shape(sdf, (cx - r, cy - ry, z0), (cx + r, cy + ry, z1))


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: joins two shapes with a fillet of about ``k`` mm (no crease)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def smooth_noise(x, y, z, amplitude: float, wavelength: float, seed: int, n_waves: int = 6) -> np.ndarray:
    """A smooth random field (sum of plane waves): organ surfaces that are not geometric solids."""
    rng = np.random.default_rng(seed)
    out = 0.0
    for _ in range(n_waves):
        k = rng.normal(size=3)
        k *= 2 * np.pi / wavelength / np.linalg.norm(k) * rng.uniform(0.7, 1.3)
        out = out + np.sin(k[0] * x + k[1] * y + k[2] * z + rng.uniform(0, 2 * np.pi))
    return (amplitude / np.sqrt(n_waves / 2)) * out


# ---------------------------------------------------------------- painting helpers

class _Canvas:
    """Label array plus coordinate axes; evaluates shapes only inside their bounding boxes."""

    def __init__(self, grid: sitk.Image):
        self.grid = grid
        self.x, self.y, self.z = axes_mm(grid)
        nx, ny, nz = grid.GetSize()
        self.labels = np.zeros((nz, ny, nx), np.int32)
        self.names = ["background"]

    def label(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)

    def box(self, lo, hi, margin: float = 2.0) -> tuple[slice, slice, slice]:
        def rng(ax, a, b):
            i0 = int(np.searchsorted(ax, a - margin))
            i1 = int(np.searchsorted(ax, b + margin))
            return slice(max(i0, 0), min(i1, ax.size))

        return rng(self.z, lo[2], hi[2]), rng(self.y, lo[1], hi[1]), rng(self.x, lo[0], hi[0])

    def coords(self, sl):
        zs, ys, xs = sl
        return self.x[xs][None, None, :], self.y[ys][None, :, None], self.z[zs][:, None, None]

    def sdf(self, shape: Shape) -> tuple[tuple[slice, slice, slice], np.ndarray]:
        sl = self.box(shape.bbox_min, shape.bbox_max)
        x, y, z = self.coords(sl)
        return sl, shape.sdf(x, y, z)

    def paint(self, shape: Shape, name: str, where: np.ndarray | None = None, only_over: list[str] | None = None):
        """Set ``name`` inside ``shape`` (optionally only where ``where`` or only over given labels)."""
        sl, d = self.sdf(shape)
        inside = d <= 0
        if where is not None:
            inside &= where[sl]
        if only_over is not None:
            inside &= np.isin(self.labels[sl], [self.names.index(n) for n in only_over if n in self.names])
        self.labels[sl][inside] = self.label(name)


# ---------------------------------------------------------------- the organs

def _body_sdf(x, y, z, shrink: float = 0.0):
    """Abdominal cross-section: an ellipse widening slightly caudally (flanks), flattened posteriorly."""
    a = 165.0 + 0.05 * (-z) - shrink
    b = np.where(y < 10, 118.0 - shrink, 125.0 - shrink) + 0.02 * (-z)
    q = np.sqrt((x / a) ** 2 + ((y - 10.0) / b) ** 2)
    return (q - 1.0) * np.minimum(a, b) + 0 * z


def _liver_sdf(x, y, z, opts: dict[str, Any]):
    """Right lobe + left lobe + caudate joined smoothly, with a gently irregular surface."""
    rs = float(opts.get("right_lobe_scale", 1.0))
    right = ellipsoid((-76.0, 22.0, 16.0), (66.0 * rs, 82.0 * rs, 70.0 * rs), rot_z_deg=-8.0).sdf(x, y, z)
    # Left lobe: thinner towards its tip (patient left), a wedge across the midline.
    taper = np.clip(1.0 - 0.45 * (x - 5.0) / 90.0, 0.45, 1.0)
    left = (np.sqrt(((x - 14.0) / 76.0) ** 2 + ((y + 40.0) / (40.0 * taper)) ** 2
                    + ((z - 28.0) / (38.0 * taper)) ** 2) - 1.0) * 36.0
    cs = float(opts.get("caudate_scale", 1.0))
    caudate = ellipsoid((2.0, 34.0, 28.0), (20.0 * cs, 17.0 * cs, 30.0 * cs)).sdf(x, y, z)
    # Posterior part of segment IV around the hilum and the hepatic-vein confluence: joins the lobes so that
    # the left portal vein and the left hepatic vein run inside the liver.
    bridge = ellipsoid((-15.0, 15.0, 45.0), (40.0, 45.0, 38.0)).sdf(x, y, z)
    d = smooth_union(smooth_union(smooth_union(right, left, 18.0), bridge, 15.0), caudate, 10.0)
    d = d + smooth_noise(x, y, z, 2.5, 90.0, seed=11)
    nod = float(opts.get("nodular_contour_mm", 0.0))
    if nod > 0:
        # Nodular contour: short-wavelength bumps, felt only near the surface.
        d = d + smooth_noise(x, y, z, nod, 22.0, seed=23, n_waves=12)
    # Diaphragm dome and the inferior surface that slopes up towards the left lobe.
    d = np.maximum(d, z - (98.0 - 0.0025 * (x + 70.0) ** 2 - 0.002 * (y - 10.0) ** 2))
    d = np.maximum(d, _body_sdf(x, y, z, shrink=30.0))
    return d


def _paint_trunk(cv: _Canvas, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
    """Body wall layers, spine and paraspinal muscles, kidneys and spleen: everything the liver is painted over."""
    lo, hi = GRID_MIN_MM, GRID_MAX_MM
    body = _body_sdf(x, y, z)
    lab = cv.labels
    lab[body <= 0] = cv.label("subcutaneous_fat")
    lab[body <= -16.0] = cv.label("abdominal_wall_muscle")
    lab[body <= -27.0] = cv.label("visceral_fat")

    # Spine and paraspinal muscles (posterior midline).
    cv.paint(ellipsoid((-40.0, 128.0, 0.0), (26.0, 20.0, 400.0)), "paraspinal_muscle")
    cv.paint(ellipsoid((40.0, 128.0, 0.0), (26.0, 20.0, 400.0)), "paraspinal_muscle")
    cv.paint(cylinder_z(0.0, 92.0, 22.0, lo[2], hi[2], ry=19.0), "vertebral_cortex")
    cv.paint(cylinder_z(0.0, 92.0, 19.5, lo[2], hi[2], ry=16.5), "vertebral_marrow")
    cv.paint(cylinder_z(0.0, 124.0, 8.0, lo[2], hi[2]), "spinal_canal")

    # Kidneys (cortex shell around medulla), spleen.
    for side, cx, cy, cz in (("right", -68.0, 82.0, -52.0), ("left", 72.0, 80.0, -36.0)):
        rot = -20.0 if side == "right" else 20.0
        cv.paint(ellipsoid((cx, cy, cz), (30.0, 26.0, 52.0), rot_z_deg=rot), f"{side}_kidney_cortex")
        cv.paint(ellipsoid((cx, cy, cz), (21.0, 17.0, 42.0), rot_z_deg=rot), f"{side}_kidney_medulla")
    spleen_where = _body_sdf(x, y, z, shrink=29.0) <= 0
    cv.paint(ellipsoid((100.0, 62.0, 30.0), (32.0, 60.0, 55.0), rot_z_deg=-35.0), "spleen", where=spleen_where)


def _paint_liver(cv: _Canvas, opts: dict[str, Any]) -> np.ndarray:
    """The liver (scenario shape changes, capsular retractions), the ascites film around it and the gallbladder;
    returns where the liver was painted (full grid)."""
    lab = cv.labels
    liver_sl = cv.box((-160.0, -100.0, -80.0), (110.0, 125.0, 100.0))
    lx, ly, lz = cv.coords(liver_sl)
    liver_d = _liver_sdf(lx, ly, lz, opts)
    for r in opts.get("capsular_retractions", []):
        c, rad = r["centre_mm"], float(r["radius_mm"])
        liver_d = np.maximum(liver_d, -(np.sqrt((lx - c[0]) ** 2 + (ly - c[1]) ** 2 + (lz - c[2]) ** 2) - rad))
    liver_in = liver_d <= 0
    # The liver displaces fat and kidney tops, never the spine or muscles.
    paintable = np.isin(lab[liver_sl], [cv.label("visceral_fat"), cv.label("right_kidney_cortex"),
                                        cv.label("right_kidney_medulla")])
    lab[liver_sl][liver_in & paintable] = cv.label("liver")
    liver_full = np.zeros_like(lab, dtype=bool)
    liver_full[liver_sl] = liver_in & paintable

    # Ascites: a fluid film around the liver and spleen (scenario option).
    asc = float(opts.get("ascites_mm", 0.0))
    if asc > 0:
        # the film lies between the liver and the abdominal wall too (it displaces the wall's inner layer)
        shell = (liver_d > 0) & (liver_d <= asc) & np.isin(lab[liver_sl], [cv.label("visceral_fat"),
                                                                           cv.label("abdominal_wall_muscle")])
        lab[liver_sl][shell] = cv.label("ascites")

    # Gallbladder in its fossa under the middle hepatic vein plane.
    gb = ellipsoid((-52.0, -52.0, -36.0), (17.0, 34.0, 19.0), rot_z_deg=-20.0)
    cv.paint(gb, "gallbladder", only_over=["liver", "visceral_fat", "ascites"])
    return liver_full


def _paint_vessels(cv: _Canvas) -> dict[str, Any]:
    """IVC and aorta, the portal venous tree (at the portal plane) and the hepatic veins (radiating from the IVC);
    returns the vessel landmarks the Couinaud segments and the truth use."""
    lo, hi = GRID_MIN_MM, GRID_MAX_MM
    ivc_x, ivc_y = IVC_AXIS_XY
    cv.paint(cylinder_z(ivc_x, ivc_y, 12.0, lo[2], HEPATIC_VEIN_CONFLUENCE_Z + 14.0, ry=10.0), "ivc")
    cv.paint(cylinder_z(14.0, 66.0, 12.0, lo[2], hi[2]), "aorta")

    bif = (-24.0, 8.0, PORTAL_PLANE_Z)
    rpv = (-62.0, 14.0, PORTAL_PLANE_Z + 2.0)
    lpv = (8.0, -8.0, PORTAL_PLANE_Z + 4.0)
    portal_segments = [
        ((-4.0, 26.0, -70.0), (-10.0, 18.0, -30.0), 7.5, 7.0),
        ((-10.0, 18.0, -30.0), bif, 7.0, 6.5),
        (bif, rpv, 6.0, 5.5),
        (rpv, (-88.0, -28.0, PORTAL_PLANE_Z + 8.0), 4.5, 3.0),      # right anterior branch
        (rpv, (-112.0, 50.0, PORTAL_PLANE_Z - 4.0), 4.5, 3.0),      # right posterior branch
        (bif, lpv, 5.0, 4.5),
        (lpv, (26.0, -46.0, PORTAL_PLANE_Z + 4.0), 4.5, 3.5),       # umbilical portion
        ((26.0, -46.0, PORTAL_PLANE_Z + 4.0), (60.0, -50.0, PORTAL_PLANE_Z + 14.0), 3.0, 2.5),
        ((26.0, -46.0, PORTAL_PLANE_Z + 4.0), (58.0, -60.0, PORTAL_PLANE_Z - 8.0), 3.0, 2.5),
    ]
    for p0, p1, r0, r1 in portal_segments:
        cv.paint(capsule(p0, p1, r0, r1), "portal_vein", only_over=["liver"])
    hv_ends = {}
    for name, ang in HEPATIC_VEIN_ANGLES_DEG.items():
        length = {"right": 95.0, "middle": 90.0, "left": 75.0}[name]
        z_end = {"right": -5.0, "middle": -10.0, "left": 35.0}[name]
        t = np.radians(ang)
        end = (ivc_x + length * np.sin(t), ivc_y - length * np.cos(t), z_end)
        hv_ends[name] = end
        cv.paint(capsule((ivc_x, ivc_y, HEPATIC_VEIN_CONFLUENCE_Z), end, 5.0, 2.5), "hepatic_veins",
                 only_over=["liver"])
    return {
        "ivc_axis_xy_mm": list(IVC_AXIS_XY), "portal_plane_z_mm": PORTAL_PLANE_Z,
        "hepatic_vein_angles_deg": dict(HEPATIC_VEIN_ANGLES_DEG),
        "hepatic_vein_ends_mm": {k: [float(v) for v in e] for k, e in hv_ends.items()},
        "portal_bifurcation_mm": list(bif),
    }


def build_anatomy(size: str = "standard", options: dict[str, Any] | None = None) -> Anatomy:
    """Paint every organ on the truth grid; ``options`` are the scenario's anatomy changes.

    Recognised options: ``caudate_scale`` (1 = normal), ``right_lobe_scale`` (1 = normal; < 1 = volume loss),
    ``nodular_contour_mm`` (0 = smooth),
    ``capsular_retractions`` (list of {centre_mm, radius_mm}: spheres carved out of the liver surface),
    ``ascites_mm`` (thickness of perihepatic/perisplenic fluid, 0 = none).
    """
    opts = dict(options or {})
    grid = make_grid(size)
    cv = _Canvas(grid)
    x, y, z = cv.coords((slice(None), slice(None), slice(None)))
    _paint_trunk(cv, x, y, z)
    liver_full = _paint_liver(cv, opts)
    landmarks = _paint_vessels(cv)
    # Couinaud segments of the liver parenchyma (vessels inside the liver get their segment too).
    liver_region = liver_full & ~np.isin(cv.labels, [cv.label("gallbladder"), cv.label("ivc")])
    couinaud = couinaud_map(cv, liver_region, opts)
    return Anatomy(grid, cv.labels, cv.names, couinaud, landmarks)


def couinaud_segment_at(x, y, z, caudate_scale: float = 1.0) -> np.ndarray:
    """Couinaud segment (1..8) of world points (mm, LPS), ignoring whether they are in the liver.

    Sector from the angle around the IVC axis (hepatic-vein planes), level from the portal plane
    (II/III: :data:`LEFT_LATERAL_SPLIT_Z`), caudate lobe (I) from its ellipsoid.
    """
    x, y, z = np.broadcast_arrays(np.asarray(x, np.float32), np.asarray(y, np.float32), np.asarray(z, np.float32))
    ang = np.degrees(np.arctan2(x - IVC_AXIS_XY[0], -(y - IVC_AXIS_XY[1])))
    a = HEPATIC_VEIN_ANGLES_DEG
    sup = z >= PORTAL_PLANE_Z
    seg = np.where(ang < a["right"], np.where(sup, 7, 6),
                   np.where(ang < a["middle"], np.where(sup, 8, 5),
                            np.where(ang < a["left"], 4, np.where(z >= LEFT_LATERAL_SPLIT_Z, 2, 3))))
    cs = caudate_scale
    cd = ellipsoid((2.0, 34.0, 28.0), (20.0 * cs, 17.0 * cs, 30.0 * cs)).sdf(x, y, z)
    seg = np.where((cd <= 0) & (ang > a["middle"]) & (ang < 170.0), 1, seg)
    return seg.astype(np.uint8)


def couinaud_map(cv: _Canvas, liver_mask: np.ndarray, opts: dict[str, Any]) -> np.ndarray:
    x, y, z = cv.coords((slice(None), slice(None), slice(None)))
    seg = couinaud_segment_at(x, y, z, float(opts.get("caudate_scale", 1.0)))
    return np.where(liver_mask, seg, 0).astype(np.uint8)
