"""Study-level liver figures: volume, fat fraction, HBP function, caudate-to-right-lobe ratio, surface nodularity.

Each figure is ``{"value", "unit", "method", "source"}`` plus ``"why"`` when the value is None (not measurable
with what the study holds). Methods, thresholds and sources are data (``resources/liver_figures.json``). The
figures are evidence for the reader (pseudocirrhosis, background fat, HBP function), never a diagnosis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import LiverMetsError
from ..resources import load_json
from . import liver as lv


def _spec(key: str) -> dict[str, Any]:
    return load_json("liver_figures.json")[key]


def figure(key: str, value: float | None, why: str = "", **extra: Any) -> dict[str, Any]:
    spec = _spec(key)
    out = {"value": None if value is None else round(float(value), 4), "unit": spec["unit"],
           "method": spec["method"], "source": spec["source"], **extra}
    if value is None:
        out["why"] = why
    return out


def _on(grid: sitk.Image, image: sitk.Image, label: bool = False) -> np.ndarray:
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.GetArrayFromImage(sitk.Resample(image, grid, sitk.Transform(), interp, 0.0, sitk.sitkFloat32))


def _interior(mask: sitk.Image) -> np.ndarray:
    """The mask eroded by one voxel in-plane (partial volume at the capsule left out), or the mask when too thin."""
    m = sitk.GetArrayFromImage(mask) > 0
    core = ndi.binary_erosion(m, np.ones((1, 3, 3), bool))
    return core if core.sum() >= 20 else m


# ---------------------------------------------------------------- spleen

def _slices(image: sitk.Image) -> int:
    return int(image.GetSize()[2]) if image.GetDimension() > 2 else 1


def find_spleen(image: sitk.Image, liver_mask: sitk.Image) -> sitk.Image | None:
    """A spleen mask on ``image``'s grid: the deepest parenchyma-like point in the patient's left posterior quadrant
    (the spleen lies against the left posterolateral wall) outside the liver, grown like the liver; None when
    nothing of a plausible spleen volume is found."""
    work, arr, body = lv.prepared(image)
    liver = _on(work, liver_mask, label=True) > 0
    spacing = work.GetSpacing()[::-1]
    lo, hi = _spec("spleen_volume_ml")["value"]
    edge = lv.edges(work, body)
    ruled_out = _not_spleen(liver, body, work.GetDirection()[8] > 0)
    for zyx in lv.auto_seed_candidates(arr, body, work, edge, side="left_posterior", exclude=ruled_out):
        region, _ = lv.grow(arr, edge, zyx, lv.seed_window(arr, zyx, spacing, body), spacing, body & ~liver)
        vol = float(region.sum()) * float(np.prod(spacing)) / 1000.0
        if lo <= vol <= hi:
            return lv._to_series_grid(region, work, image)
    return None


def _not_spleen(liver: np.ndarray, body: np.ndarray, superior_up: bool) -> np.ndarray:
    """Where the spleen cannot be: the liver and its rim, slices below the liver's lower third (the spleen lies
    under the left hemidiaphragm, level with the upper liver), and the medial half of the left side (the spine,
    psoas and paraspinal muscles, the aorta)."""
    out = ndi.binary_dilation(liver, iterations=2)
    zs = np.nonzero(liver.any(axis=(1, 2)))[0]
    if zs.size:
        third = (zs.max() - zs.min()) / 3.0
        if superior_up:
            out[:int(zs.min() + third)] = True
        else:
            out[int(np.ceil(zs.max() - third)) + 1:] = True
    cols = np.nonzero(body.any(axis=(0, 1)))[0]
    if cols.size:
        mid = (cols.min() + cols.max()) / 2.0
        quarter = (cols.max() - cols.min()) / 4.0
        x = np.arange(body.shape[2])
        out[:, :, np.abs(x - mid) < quarter] = True
    return out


# ---------------------------------------------------------------- figures

def fat_figures(mask: sitk.Image, fat_map: sitk.Image | None) -> dict[str, Any]:
    if fat_map is None:
        why = "no fat map (Dixon, in/opposed phase or PDFF) in the study"
        return {k: figure(k, None, why) for k in ("fat_fraction_median", "fat_fraction_iqr")}
    ff = _on(mask, fat_map)
    vals = ff[_interior(mask) & np.isfinite(ff)]
    if vals.size < 20:
        why = "the fat map hardly overlaps the liver mask"
        return {k: figure(k, None, why) for k in ("fat_fraction_median", "fat_fraction_iqr")}
    q1, med, q3 = np.percentile(vals, [25, 50, 75])
    return {"fat_fraction_median": figure("fat_fraction_median", med, voxels=int(vals.size)),
            "fat_fraction_iqr": figure("fat_fraction_iqr", q3 - q1, q1=round(float(q1), 3), q3=round(float(q3), 3))}


def hbp_figures(mask: sitk.Image, images: Mapping[str, sitk.Image],
                spleen: sitk.Image | None, spleen_why: str) -> dict[str, Any]:
    keys = ("hbp_liver_relative_enhancement", "liver_to_spleen_ratio_hbp")
    if "t1_hepatobiliary" not in images:
        return {k: figure(k, None, "no hepatobiliary phase in the study") for k in keys}
    hbp = _on(mask, images["t1_hepatobiliary"])
    inside = _interior(mask)
    liver_hbp = float(np.median(hbp[inside]))
    out = {}
    if "t1_pre" in images:
        pre = float(np.median(_on(mask, images["t1_pre"])[inside]))
        out[keys[0]] = (figure(keys[0], 100.0 * (liver_hbp - pre) / pre) if pre > 0 else
                        figure(keys[0], None, "the pre-contrast T1 has no signal in the liver"))
    else:
        out[keys[0]] = figure(keys[0], None, "no pre-contrast T1 in the study")
    if spleen is None:
        out[keys[1]] = figure(keys[1], None, spleen_why)
    else:
        s = _on(mask, spleen, label=True) > 0
        s = ndi.binary_erosion(s, np.ones((1, 3, 3), bool)) if s.sum() > 100 else s
        spleen_hbp = float(np.median(hbp[s])) if s.any() else 0.0
        out[keys[1]] = (figure(keys[1], liver_hbp / spleen_hbp) if spleen_hbp > 0 else
                        figure(keys[1], None, "the spleen mask does not overlap the hepatobiliary phase"))
    return out


def caudate_right_lobe_ratio(mask: sitk.Image, bifurcation: Sequence[float] | None) -> dict[str, Any]:
    """Harbin's C/RL on the axial slice through the portal bifurcation: the caudate's width from the line through
    the bifurcation (sagittal, standing for the main portal vein's right wall) to its medial edge, over the
    right lobe's width from that line to its lateral edge."""
    key = "caudate_right_lobe_ratio"
    if bifurcation is None:
        return figure(key, None, "no portal bifurcation landmark (Couinaud landmarks not found or not placed)")
    k = int(round(mask.TransformPhysicalPointToContinuousIndex([float(v) for v in bifurcation])[2]))
    if not 0 <= k < mask.GetSize()[2]:
        return figure(key, None, "the portal bifurcation lies outside the liver mask's slices")
    x, y, _ = lv_world(mask, k)
    sl = sitk.GetArrayViewFromImage(mask)[k] > 0
    bx, by = float(bifurcation[0]), float(bifurcation[1])
    caudate = sl & (y > by) & (x > bx)
    right = sl & (x < bx)
    if not caudate.any() or not right.any():
        return figure(key, None, "no liver on one side of the portal bifurcation in its slice")
    c, r = float(x[caudate].max() - bx), float(bx - x[right].min())
    return figure(key, c / r, caudate_width_mm=round(c, 1), right_lobe_width_mm=round(r, 1), slice_index=k,
                  threshold=_spec(key)["threshold"])


def lv_world(img: sitk.Image, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z (LPS mm) of the voxels of slice ``k`` as (y, x) arrays."""
    nx, ny, _ = img.GetSize()
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([i.ravel(), j.ravel(), np.full(i.size, k)], 1).astype(float)
    d = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    w = idx @ d.T + np.asarray(img.GetOrigin())
    return tuple(w[:, a].reshape(ny, nx) for a in range(3))  # type: ignore[return-value]


def _outer_liver(mask: sitk.Image, seal_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The liver as a solid (vessel entries sealed by a closing of ``seal_mm``, lesions and vessels filled) and the
    voxel spacing (z, y, x): the capsule is its outer surface only."""
    sp = np.asarray(mask.GetSpacing()[::-1], float)
    n = max(1, int(np.ceil(seal_mm / sp.min())))
    arr = np.pad(sitk.GetArrayFromImage(mask) > 0, n + 1)
    solid = ndi.binary_fill_holes(ndi.binary_closing(arr, ndi.generate_binary_structure(3, 1), iterations=n))
    return solid[n + 1:-n - 1, n + 1:-n - 1, n + 1:-n - 1], sp


def _contour_deviation(solid: np.ndarray, sp: np.ndarray, sigma_mm: float) -> tuple[float, np.ndarray, int]:
    """Mean |signed distance - its Gaussian-smoothed copy| over the surface voxels (mm), the smoothed distance
    field and the surface voxel count. The distance is signed at voxel centres with a half-voxel offset so that a
    plane is linear through the boundary; smoothing a linear field leaves it in place, so only undulations
    shorter than about 2 pi sigma (nodules) and curvature remain."""
    h = 0.5 * float(sp.min())
    sdf = np.where(solid, h - ndi.distance_transform_edt(solid, sampling=sp),
                   ndi.distance_transform_edt(~solid, sampling=sp) - h)
    smooth = ndi.gaussian_filter(sdf, sigma_mm / sp)
    surface = solid & ~ndi.binary_erosion(solid)
    surface[[0, -1]] = False
    surface[:, [0, -1]] = False
    surface[:, :, [0, -1]] = False
    return float(np.abs(sdf - smooth)[surface].mean()) if surface.any() else 0.0, smooth, int(surface.sum())


def surface_nodularity(mask: sitk.Image) -> dict[str, Any]:
    """Contour nodularity (mm): how far the capsule departs from a smooth surface, beyond what the same method
    finds on a smooth liver of the same shape on the same grid (which carries the voxel staircase and the
    curvature; the difference leaves the nodules). Slices at the image border are left out."""
    key = "surface_nodularity"
    spec = _spec(key)
    solid, sp = _outer_liver(mask, float(spec["seal_mm"]))
    sigma = float(spec["smoothing_sigma_mm"])
    raw, smooth, n = _contour_deviation(solid, sp, sigma)
    if n < 50:
        return figure(key, None, "the liver mask has too little surface inside the image")
    floor, _, n_smooth = _contour_deviation(smooth < 0, sp, sigma)
    if n_smooth < 50:
        return figure(key, None, "the liver mask is too small to have a smooth surface")
    return figure(key, raw - floor, contour_deviation_mm=round(raw, 4), smooth_liver_deviation_mm=round(floor, 4),
                  surface_voxels=n)


def liver_figures(mask: sitk.Image, images: Mapping[str, sitk.Image], *, fat_map: sitk.Image | None = None,
                  spleen_mask: sitk.Image | None = None, landmarks: Mapping[str, Sequence[float]] | None = None,
                  find_spleen_on: str | None = None) -> dict[str, Any]:
    """Every study figure of the liver (see the module docstring); ``find_spleen_on`` names the series on which a
    spleen is looked for when no ``spleen_mask`` is given (the liver's own series is a good choice)."""
    arr = sitk.GetArrayViewFromImage(mask)
    if arr.max() <= 0:
        raise LiverMetsError("the liver mask is empty; outline the liver first")
    volume = float(np.count_nonzero(arr)) * float(np.prod(mask.GetSpacing())) / 1000.0
    spleen, spleen_why, spleen_source = spleen_mask, "", "reader" if spleen_mask is not None else None
    if spleen is None:
        if find_spleen_on and find_spleen_on in images and _slices(images[find_spleen_on]) < lv.MIN_SLICES:
            spleen_why = (f"the {find_spleen_on} series has {_slices(images[find_spleen_on])} slice(s), too few to "
                          "look for the spleen in 3-D; outline it to get the ratio")
        elif find_spleen_on and find_spleen_on in images:
            spleen = find_spleen(images[find_spleen_on], mask)
            spleen_source = f"found automatically on {find_spleen_on}" if spleen is not None else None
            spleen_why = f"no spleen of plausible size was found on {find_spleen_on}; outline it to get the ratio"
        else:
            spleen_why = "no spleen mask given and none looked for"
    out: dict[str, Any] = {"liver_volume": figure("liver_volume", volume)}
    out.update(fat_figures(mask, fat_map))
    out.update(hbp_figures(mask, images, spleen, spleen_why))
    out["caudate_right_lobe_ratio"] = caudate_right_lobe_ratio(mask, (landmarks or {}).get("portal_bifurcation"))
    out["surface_nodularity"] = surface_nodularity(mask)
    if spleen is not None:
        sv = float(np.count_nonzero(sitk.GetArrayViewFromImage(spleen))) * float(np.prod(spleen.GetSpacing())) / 1e3
        out["spleen"] = {"source": spleen_source, "volume_ml": round(sv, 1)}
    return out
