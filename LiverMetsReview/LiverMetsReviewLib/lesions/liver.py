"""The liver mask from one click in the liver, or automatically, on real images.

Method (parameters and their reasons in ``resources/liver_segmentation.json``):

1. one series is used (the named one, else the first present of ``series_preference``);
2. it is put on a working grid independent of how it was stored: axes in patient order (DICOMOrient LPS),
   averaged to ~3 mm where finer; corrected for the coil's bias field with N4 (on a shrunk copy) and smoothed;
   a signal change between neighbouring voxels is an edge only when the image's noise does not explain it
   (``liver_grid.noise_edge_level``);
3. a click is moved to the calm interior of the tissue it fell in (near the capsule or a vessel the clicked voxel
   is partial volume); a robust intensity model (median, 1.4826 x MAD, clamped to a relative floor and
   ceiling) is estimated from that tissue around the seed; the liver window is median +/- k sigma; each further
   pass removes the residual bias measured on the liver region itself and re-estimates the window; a click whose
   region is smaller than any liver (on a metastasis, or a capsule sliver) is re-seeded in the calm tissue
   around it (``liver_reseed.py``);
4. leak control: lesion-like pieces enclosed in liver tissue count as liver (a metastasis where the lobes join
   would otherwise cut them apart), the window is opened with a ball (thin bridges of similar signal to the
   heart, bowel, kidney or spleen are cut), the component holding the seed kept and dilated back inside the window;
   after each pass a region that widens again beyond its largest axial section (a broad contact with abdominal
   wall, bowel or heart past the tip or the dome) is cut there (``liver_shape.py``); a click from which no region
   reaches a liver's volume is grown once more as in a liver riddled with bright vessels (gaps closed before the
   opening), with a warning;
5. the intrahepatic vessels (and small lesions) are put inside by a closing and slice-wise hole filling, as
   radiologists segment the liver (CHAOS convention);
6. the mask is interpolated back onto the series grid.

Without a click the seeds are the deepest points of the "parenchyma-like" map (no edge, body signal) on the
patient's right, inside the abdominal wall; the region grown from each is kept only where the liver lies (mostly
right of the midline, inside the wall, in front of the retroperitoneum: ``liver_auto.py``), the largest of those:
the liver is the largest solid organ of the right upper abdomen. In the hepatobiliary phase a
liver that is not brighter than the body's tissue (reduced uptake) is not used; the next series is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import LiverMetsError, MissingDataError
from .liver_auto import (  # noqa: F401  (re-exported: liver_figures finds the spleen with it)
    _world_axis,
    auto_seed_candidates,
    not_liver_like,
    wall_distance,
)
from .liver_grid import (  # noqa: F401  (re-exported: couinaud, liver_figures and the tests use them from here)
    PARAMETERS,
    _ball_offsets,
    _value,
    ball,
    body_mask,
    bounding_box,
    deepest_points,
    edges,
    fill_holes_2d,
    morph,
    parameters,
    prepared,
    working_image,
)
from .liver_reseed import seeds_around
from .liver_shape import taper_cut


@dataclass
class LiverResult:
    """A liver mask (uint8 0/1 on the grid of ``series_used``) and how it was made."""

    mask: sitk.Image
    series_used: str
    seed_lps: tuple[float, float, float]
    method: str
    volume_ml: float
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- series choice

def pick_series(images: Mapping[str, sitk.Image], series: str | None = None) -> list[str]:
    """Roles to try, best first: the named one only, else those present in the preference order."""
    if not images:
        raise MissingDataError("no image was given; the liver mask needs at least one series of the study")
    if series is not None:
        if series not in images:
            raise MissingDataError(f"the study has no {series} series; it holds {', '.join(sorted(images))}")
        return [series]
    order = []
    for role in _value("series_preference"):
        order += [k for k in images if (k == role or k.startswith(role + "_")) and k not in order]
    return order or sorted(images)


# ---------------------------------------------------------------- intensity model and growing


def seed_window(arr: np.ndarray, seed_zyx: Sequence[int], spacing_zyx: Sequence[float],
                body: np.ndarray) -> tuple[float, float, float]:
    """(median, low, high) of the liver window from the ball around the seed (robust statistics)."""
    offs = _ball_offsets(float(_value("seed_radius_mm")), spacing_zyx) + np.asarray(seed_zyx)
    inside = np.all((offs >= 0) & (offs < np.asarray(arr.shape)), axis=1)
    offs = offs[inside]
    offs = offs[body[offs[:, 0], offs[:, 1], offs[:, 2]]]
    vals = arr[offs[:, 0], offs[:, 1], offs[:, 2]]
    if vals.size < 10:
        raise LiverMetsError("the click is at the edge of the body with almost no tissue around it; click inside "
                             "the liver")
    if float(np.median(vals)) <= 0:
        raise LiverMetsError("the click is on a region without signal; click inside the liver")
    return _window_from(vals, local=True)


def snap_seed(arr: np.ndarray, edge: np.ndarray, seed_zyx: Sequence[int], spacing_zyx: Sequence[float],
              body: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """The click moved to the nearest calm interior point of the tissue it fell in, and that tissue's voxels in the
    seed ball.

    A reader clicks anywhere in the liver: near the capsule or a vessel the clicked voxel mixes the liver's signal
    with its neighbour's, and a ball centred on it straddles both. Calm voxels (signal change over one working
    voxel below ``edge_fraction`` of the local signal) within ``snap_radius_mm`` are grouped into connected pieces;
    the piece nearest the click (in mm) is the clicked tissue: a click 3 mm inside the capsule is nearer the
    liver's calm interior than the neighbour's across the edge band. The seed moves to that piece's point nearest
    the click among its points at least ``snap_depth_mm`` from its border (or its deepest point)."""
    radius = float(_value("snap_radius_mm"))
    seed = np.asarray(seed_zyx)
    r = [int(np.ceil(radius / s)) for s in spacing_zyx]
    lo = np.maximum(seed - r, 0)
    hi = np.minimum(seed + np.asarray(r) + 1, arr.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    g = np.indices(tuple(hi - lo)).astype(float)
    dist = np.sqrt(sum(((g[i] + lo[i] - seed[i]) * spacing_zyx[i]) ** 2 for i in range(3)))
    calm = body[box] & (edge[box] < float(_value("edge_fraction")) * np.maximum(arr[box], 1e-12)) & (dist <= radius)
    lab, n = ndi.label(calm)
    if n == 0:
        return tuple(int(v) for v in seed_zyx), np.zeros(0, np.float32)  # type: ignore[return-value]
    nearest = np.full(n + 1, np.inf)
    np.minimum.at(nearest, lab[calm], dist[calm])
    piece = lab == int(np.argmin(nearest[1:]) + 1)
    depth = ndi.distance_transform_edt(np.pad(piece, 1), sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
    deep = depth >= min(float(_value("snap_depth_mm")), float(depth.max()))
    k = np.unravel_index(int(np.argmin(np.where(deep, dist, np.inf))), dist.shape)
    return tuple(int(k[i] + lo[i]) for i in range(3)), arr[box][piece]  # type: ignore[return-value]


def _window_from(vals: np.ndarray, local: bool = False) -> tuple[float, float, float]:
    """(median, low, high): median +/- k robust sigmas, sigma clamped relative to the median; a ``local`` sample
    (the seed's few cm) gets the wider floor, since one part of the liver differs from the organ's median."""
    med = float(np.median(vals))
    sigma = 1.4826 * float(np.median(np.abs(vals - med)))
    floor = _value("seed_min_relative_sigma" if local else "min_relative_sigma")
    sigma = float(np.clip(sigma, floor * med, _value("max_relative_sigma") * med))
    k = float(_value("window_sigmas"))
    return med, med - k * sigma, med + k * sigma


def _component_at(mask: np.ndarray, seed_zyx: Sequence[int], spacing_zyx: Sequence[float]) -> np.ndarray:
    """The largest connected component of ``mask`` reaching into the seed ball. Not only the one holding the seed
    voxel: a click near the capsule or a vessel may sit in a sliver that the opening or the edge band cut off from
    the organ a few mm away, and every component here is already of the clicked tissue's signal."""
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask)
    near = np.unique(_in_ball(lab, seed_zyx, spacing_zyx))
    near = near[near > 0]
    if near.size == 0:
        return np.zeros_like(mask)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    return lab == int(near[np.argmax(sizes[near])])


def _in_ball(mask: np.ndarray, seed_zyx: Sequence[int], spacing_zyx: Sequence[float]) -> np.ndarray:
    """The values of ``mask`` in the seed ball (``seed_radius_mm`` round ``seed_zyx``, clipped to the image)."""
    offs = _ball_offsets(float(_value("seed_radius_mm")), spacing_zyx) + np.asarray(seed_zyx)
    offs = offs[np.all((offs >= 0) & (offs < np.asarray(mask.shape)), axis=1)]
    return mask[offs[:, 0], offs[:, 1], offs[:, 2]]


def _component_over(mask: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The connected component of ``mask`` sharing most voxels with ``anchor`` (empty when none does)."""
    lab, n = ndi.label(mask)
    hits = np.bincount(lab[anchor & mask], minlength=n + 1)
    hits[0] = 0
    return lab == int(np.argmax(hits)) if hits.max() > 0 else np.zeros_like(mask)


def _grow_window(arr: np.ndarray, edge: np.ndarray, seed_zyx: Sequence[int], window: tuple[float, float, float],
                 spacing_zyx: Sequence[float], body: np.ndarray, anchor: np.ndarray | None = None,
                 riddled: bool = False) -> np.ndarray:
    """Hysteresis growing: a core inside the tight window (opened: leak control), then the full window only
    within ``recover_mm`` of that core (partial volume, bias, thin edges; never a whole neighbouring organ).
    With an ``anchor`` (the previous pass's interior) the core is the piece overlapping it most: once the organ
    is found, a refined model must not fall back to a sliver by the click."""
    med, low, high = window
    k_core = float(_value("core_sigmas")) / float(_value("window_sigmas"))
    c_low, c_high = med - k_core * (med - low), med + k_core * (high - med)
    calm = body & (edge < float(_value("edge_fraction")) * med)
    tight = (arr >= c_low) & (arr <= c_high) & calm
    tight |= enclosed_lesions(arr, body, tight, window, spacing_zyx)
    if riddled:  # the gaps the vessels and their shoulders cut are closed, never across darker tissue
        tight |= morph("close", tight, float(_value("vessel_closing_mm")), spacing_zyx) & (arr >= c_low) & body
    opened = morph("open", tight, float(_value("leak_opening_mm")), spacing_zyx)
    core = _component_over(opened, anchor) if anchor is not None else np.zeros_like(tight)
    if not core.any():
        core = _component_at(opened, seed_zyx, spacing_zyx)
    if not core.any():
        core = _component_at(tight, seed_zyx, spacing_zyx)
    wide = (arr >= low) & (arr <= high) & calm
    region = core | (morph("dilate", core, float(_value("recover_mm")), spacing_zyx) & wide)
    return _component_over(region, core)


def _fraction_by_label(near: np.ndarray, where: np.ndarray, tissue: np.ndarray, n: int) -> np.ndarray:
    """Per label 0..n: the fraction of the voxels of ``where`` nearest to it that are ``tissue``."""
    tot = np.bincount(near[where], minlength=n + 1)
    return np.bincount(near[where & tissue], minlength=n + 1) / np.maximum(tot, 1)


def enclosed_lesions(arr: np.ndarray, body: np.ndarray, tight: np.ndarray, window: tuple[float, float, float],
                     spacing_zyx: Sequence[float]) -> np.ndarray:
    """Lesion-like pieces with their blurred edge band: compact regions below (or above) the liver window, of a
    metastasis's volume, whose outer surface lies almost entirely in liver-window tissue and which are ringed, a
    band further out, mostly by calm tissue of the tight window (the liver's core signal).

    Metastases lie within the liver and its expert outline includes them; a lesion where the lobes join cuts the
    tight window in two there and the opening then drops the thinner lobe. Counted as liver tissue before the
    opening, the lesion joins the lobes it sits in. A piece touching fat, bowel or another organ over more than a
    tenth of its surface is not enclosed (a lesion reaching the capsule stays out, as before), nor one lying in an
    organ whose signal is only at the edge of the liver window (the spleen's texture in the hepatobiliary phase)."""
    p = parameters()["enclosed_lesion"]
    _, low, high = window
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    band = float(p["band_mm"])
    wide = (arr >= low) & (arr <= high) & body
    out = np.zeros(arr.shape, bool)
    for side in ((arr < low) & body, arr > high):
        lab, n = ndi.label(side)
        sizes = np.bincount(lab.ravel(), minlength=n + 1) * voxel_ml
        ok = (sizes >= float(p["min_ml"])) & (sizes <= float(p["max_ml"]))
        ok[0] = False
        if not ok.any():
            continue
        cand = ok[lab]
        # only voxels within the ring's outer radius of a candidate count: the distances are taken in the
        # candidates' bounding box widened by that radius (the same nearest candidate, a fraction of the volume)
        box = bounding_box(cand, [int(np.ceil((band + float(p["ring_mm"])) / s)) + 1 for s in spacing_zyx])
        dist, idx = ndi.distance_transform_edt(~cand[box], sampling=spacing_zyx, return_indices=True)
        near = lab[box][tuple(idx)]
        shell = ndi.binary_dilation(cand[box]) & ~side[box]
        ring = (dist > band) & (dist <= band + float(p["ring_mm"]))
        keep = (ok & (_fraction_by_label(near, shell, wide[box], n) >= float(p["enclosed_fraction"]))
                & (_fraction_by_label(near, ring, tight[box], n) >= float(p["core_ring_fraction"])))
        out |= keep[lab]
    if not out.any():
        return out
    return morph("dilate", out, band, spacing_zyx) & body


def grow(arr: np.ndarray, edge: np.ndarray, seed_zyx: Sequence[int], window: tuple[float, float, float],
         spacing_zyx: Sequence[float], body: np.ndarray,
         riddled: bool = False) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Liver region on the working grid and the final window.

    The first region grows from the seed's window; each further pass divides the image by the residual bias
    measured on the previous region (``residual_field``) and takes the window from that region's own robust
    statistics (the whole liver, not one ball), keeping the piece that overlaps the previous interior. The last
    region gets its boundary and its vessels.
    """
    field = np.ones_like(arr)
    interior = None
    for _ in range(int(_value("model_passes"))):
        flat, calm = arr / field, edge / field
        first = tapered(fill_vessels(_grow_window(flat, calm, seed_zyx, window, spacing_zyx, body, interior,
                                                  riddled), spacing_zyx), spacing_zyx, seed_zyx)
        # Everything inside the region (vessels too: MAD ignores a minority), away from its boundary's partial
        # volume: a sample of the liver's signal that no window has truncated.
        interior = morph("erode", first, float(_value("boundary_mm")), spacing_zyx)
        if interior.sum() < 50:
            break
        field = residual_field(arr, interior, spacing_zyx)
        window = _window_from((arr / field)[interior])
    flat, calm = arr / field, edge / field
    region = boundary(flat, _grow_window(flat, calm, seed_zyx, window, spacing_zyx, body, interior, riddled),
                      window[0], spacing_zyx, body)
    return tapered(fill_vessels(region, spacing_zyx), spacing_zyx, seed_zyx), window


def tapered(region: np.ndarray, spacing_zyx: Sequence[float], seed_zyx: Sequence[int]) -> np.ndarray:
    """The region without what lies beyond a section where it starts to widen again (``liver_shape``), as the
    connected piece it keeps at the seed."""
    cut = taper_cut(region, spacing_zyx, seed_zyx)
    if cut.sum() == region.sum():
        return region
    kept = _component_at(cut, seed_zyx, spacing_zyx)
    return kept if kept.any() else region


def residual_field(arr: np.ndarray, interior: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """The bias left after N4, measured on the liver itself: its parenchyma is one tissue, so a smooth trend of
    its log signal across the organ is the coil's, not anatomy's. A polynomial of ``residual_bias.order`` in the
    world position is fitted (least squares, refitted without voxels beyond 3 robust sigmas: vessels, lesions) to
    the log signal of the region's interior; the field (median 1 over the interior) is clamped to the range it
    takes there, widened by ``residual_bias.extrapolation``, so that it never runs away outside the region."""
    p = parameters()["residual_bias"]
    idx = np.nonzero(interior)
    if len(idx[0]) < int(p["min_voxels"]):
        return np.ones_like(arr)
    centre = [float(np.mean(i)) for i in idx]
    scale = [max(float(np.ptp(i)) * s / 2.0, 1.0) for i, s in zip(idx, spacing_zyx, strict=True)]

    def design(coords: Sequence[np.ndarray]) -> np.ndarray:
        u = [(c - centre[a]) * spacing_zyx[a] / scale[a] for a, c in enumerate(coords)]
        cols = [np.ones_like(u[0])] + list(u)
        if int(p["order"]) >= 2:
            cols += [u[a] * u[b] for a in range(3) for b in range(a, 3)]
        return np.stack(cols, axis=-1)

    y = np.log(np.maximum(arr[idx], 1e-12))
    a = design([i.astype(float) for i in idx])
    keep = np.ones(y.size, bool)
    for _ in range(2):
        coef = np.linalg.lstsq(a[keep], y[keep], rcond=None)[0]
        res = y - a @ coef
        mad = 1.4826 * float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        keep = np.abs(res - np.median(res[keep])) <= 3.0 * max(mad, 1e-6)
    fit = a @ coef
    ref = float(np.median(fit))
    widen = float(p["extrapolation"])
    lo, hi = float(fit.min() - ref) - widen, float(fit.max() - ref) + widen
    grid = np.indices(arr.shape, dtype=np.float32)
    log_field = design([grid[0], grid[1], grid[2]]) @ coef.astype(np.float32) - ref
    return np.exp(np.clip(log_field, lo, hi)).astype(np.float32)


def boundary(arr: np.ndarray, region: np.ndarray, med: float, spacing_zyx: Sequence[float],
             body: np.ndarray) -> np.ndarray:
    """Put back the boundary voxels (kept out as edges) that are more than half liver.

    A partial-volume voxel's signal lies between the liver's and the adjoining tissue's; it is liver when it is
    nearer the liver median than that tissue (the extreme of its in-plane neighbourhood on the far side). On
    thick axial slices the boundary is also crossed through the slice: at the dome a voxel holds liver and the
    lung above it, and the top slices' whole cross-section is such a mixture, with no other tissue in their own
    plane. A voxel darker than the liver is therefore also liver when it is nearer the liver median than the
    darkest voxel of its neighbourhood across the adjacent slices (``boundary_through_plane_voxels``); only the
    dark side, since the lung and the fat-suppressed fat beyond the dome and the tip are dark on every series,
    while a bright extreme across slices is as often another organ's edge (fat without fat suppression).
    """
    lo, hi = ndi.minimum_filter(arr, size=(1, 3, 3)), ndi.maximum_filter(arr, size=(1, 3, 3))
    other = np.where(med - lo > hi - med, lo, hi)
    liver_side = np.abs(arr - med) <= np.abs(arr - other)
    lo_3d = ndi.minimum_filter(arr, size=tuple(int(v) for v in _value("boundary_through_plane_voxels")))
    liver_side |= (arr < med) & (med - arr <= arr - lo_3d)
    liver_side &= body
    steps = max(1, int(round(float(_value("boundary_mm")) / min(spacing_zyx))))
    for _ in range(steps):  # one voxel (6-connected) per step, only onto voxels that are more than half liver
        grown = region | (ndi.binary_dilation(region) & liver_side)
        if grown.sum() == region.sum():
            break
        region = grown
    return region


def fill_vessels(region: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Closing + slice-wise hole filling: the intrahepatic vessels and small lesions become liver."""
    closed = morph("close", region, float(_value("vessel_closing_mm")), spacing_zyx)
    return fill_holes_2d(closed)


# ---------------------------------------------------------------- the entry point

def _seed_index(work: sitk.Image, seed_lps: Sequence[float], body: np.ndarray, role: str) -> tuple[int, int, int]:
    if len(seed_lps) != 3 or not all(np.isfinite(float(v)) for v in seed_lps):
        raise LiverMetsError("the seed must be three finite numbers (x y z in mm, LPS)")
    idx = work.TransformPhysicalPointToContinuousIndex([float(v) for v in seed_lps])
    size = work.GetSize()
    if not all(-0.5 <= c < n - 0.5 for c, n in zip(idx, size, strict=True)):
        raise LiverMetsError(f"the seed ({', '.join(f'{float(v):.1f}' for v in seed_lps)}) mm LPS is outside the "
                             f"{role} image; click inside the liver")
    zyx = tuple(int(round(c)) for c in idx[::-1])
    if not body[zyx]:
        raise LiverMetsError(f"the seed ({', '.join(f'{float(v):.1f}' for v in seed_lps)}) mm LPS is outside the "
                             f"body (no tissue signal) on the {role} image; click inside the liver")
    return zyx  # type: ignore[return-value]


def _where(work: sitk.Image, zyx: Sequence[int]) -> str:
    point = work.TransformIndexToPhysicalPoint([int(v) for v in zyx[::-1]])
    return "(" + ", ".join(f"{v:.0f}" for v in point) + ") mm LPS"


def _distance_mm(region: np.ndarray, zyx: Sequence[int], spacing_zyx: Sequence[float]) -> float:
    if not region.any():
        return 0.0
    return float(ndi.distance_transform_edt(~region, sampling=spacing_zyx)[tuple(zyx)])


def _to_series_grid(region: np.ndarray, work: sitk.Image, image: sitk.Image) -> sitk.Image:
    """The working-grid mask interpolated (linear, 0.5 level) onto the series grid, uint8 0/1."""
    m = sitk.GetImageFromArray(region.astype(np.float32))
    m.CopyInformation(work)
    up = sitk.Resample(m, image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    out = sitk.Cast(sitk.BinaryThreshold(up, 0.5, 2.0, 1, 0), sitk.sitkUInt8)
    return out


def _volume_ml(mask: sitk.Image) -> float:
    n = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    return n * float(np.prod(mask.GetSpacing())) / 1000.0


# the bias field and the 3-D region growing need a volume: a series of fewer slices is refused (single-slice
# localisers and dual-echo pairs are real inputs, e.g. the CHAOS T1 dual-echo slices)
MIN_SLICES = 3


def _segment_on(image: sitk.Image, role: str, seed_lps: Sequence[float] | None,
                notes: list[str]) -> tuple[sitk.Image, tuple[float, float, float], float, list[str]]:
    if image.GetDimension() < 3 or image.GetSize()[2] < MIN_SLICES:
        raise LiverMetsError(f"the {role} series has {image.GetSize()[2] if image.GetDimension() > 2 else 1} "
                             f"slice(s); outlining the liver in 3-D needs at least {MIN_SLICES}: choose a volume "
                             "series (--series) or give the liver drawn by the reader (--liver-mask)")
    work, arr, body = prepared(image)
    spacing = work.GetSpacing()[::-1]
    edge = edges(work, body)
    lo, hi = _value("liver_volume_ml")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    samples: dict[tuple[int, int, int], np.ndarray] = {}
    wall = None  # the automatic mode's distance to the body's outline
    if seed_lps is not None:
        snapped, vals = snap_seed(arr, edge, _seed_index(work, seed_lps, body, role), spacing, body)
        seeds = [snapped]
        if vals.size >= int(_value("snap_min_voxels")):
            samples[snapped] = vals
    else:
        bright_fat = any(role == r or role.startswith(r + "_") for r in parameters()["auto_seed"]["fat_bright_roles"])
        like = parameters()["liver_like"]
        wall = wall_distance(body, spacing)  # in-plane mm to the body's outline: candidates, then regions
        # the abdominal wall (and the fat under the skin) is no candidate: the liver lies inside it
        seeds = auto_seed_candidates(arr, body, work, edge, fat_bright=bright_fat, count=int(like["candidates"]),
                                     exclude=wall < float(like["wall_mm"]))
        if not seeds:
            raise LiverMetsError(f"no liver-like region was found on the {role} image; click inside the liver")
    tried: list = []
    for zyx in seeds:
        if any(t[2][tuple(zyx)] and (seed_lps is not None or t[0] <= hi) for t in tried):
            # inside a region already grown: the same organ (an automatic seed in a leak larger than any liver may
            # be in another organ than the one that leaked)
            continue
        window = _window_from(samples[zyx], local=True) if zyx in samples else seed_window(arr, zyx, spacing, body)
        region, window = grow(arr, edge, zyx, window, spacing, body)
        if not _in_ball(region, zyx, spacing).any():
            # later passes keep the piece of the organ found first; when the seed's window was a mixture (a click
            # on a lesion at the dome: lesion and liver in one ball) that piece can be another organ, away from
            # the seed: it is not the tissue the seed is in, whatever its volume
            notes.append(f"a region grown from {_where(work, zyx)} ended {_distance_mm(region, zyx, spacing):.0f} mm "
                         "away from its seed: discarded")
            region = np.zeros_like(region)
        tried.append((float(region.sum()) * voxel_ml, zyx, region, window))
        if seed_lps is not None and len(tried) == 1 and tried[0][0] < lo:
            # the clicked tissue is smaller than any liver: a lesion, or a sliver of the capsule that the leak
            # control cut off; the liver is the tissue around it
            clicked = region.copy()
            clicked[tuple(zyx)] = True  # an empty region (nothing of the seed's window survived): the click itself
            seeds += seeds_around(arr, edge, clicked, spacing, body)  # tried in this same loop
            notes.append(f"the clicked tissue grew to only {tried[0][0]:.0f} mL (a lesion or a thin edge of the "
                         "liver?): the liver was grown from the calm tissue around it")
    retry = None
    if seed_lps is not None and all(t[0] < lo for t in tried):
        retry = _riddled_retry(arr, edge, seeds[0], samples, spacing, body, work, notes)
        tried.append(retry)
    # The liver is the largest solid organ: among the candidates' regions, the largest of plausible volume (and,
    # without a click, lying where the liver lies).
    plausible = [t for t in tried if lo <= t[0] <= hi]
    pool = plausible or [t for t in tried if t[0] > 0]  # none of a liver's volume: the grown regions
    warnings: list[str] = []
    if wall is not None and pool:
        pool, warning = _where_the_liver_lies(pool, body, work, wall, notes)
        warnings += warning
    vol, zyx, region, window = max(pool, key=lambda t: t[0]) if plausible else nearest_volume(pool or tried, lo, hi)
    if vol < lo and (region[0].any() or region[-1].any()):
        warnings.append(f"the liver mask holds {vol:.0f} mL, less than a whole liver ({lo:.0f} mL): it reaches the "
                        f"first or last slice of the {role} series, whose slab cuts the liver; the volume is the "
                        "imaged part's only. Check the outline, or choose a series that covers the whole liver")
    elif not lo <= vol <= hi:
        warnings.append(f"the liver mask holds {vol:.0f} mL, outside the plausible {lo:.0f}-{hi:.0f} mL; check it "
                        "and correct it, or click elsewhere in the liver")
    elif retry is not None and region is retry[2]:
        warnings.append("the liver was outlined as one riddled with bright vessels, whose gaps were closed: check "
                        "its outline against the neighbouring organs and body wall, and correct it")
    seed = work.TransformIndexToPhysicalPoint([int(v) for v in zyx[::-1]])
    notes.append(f"{role}: liver window {window[1]:.4g}-{window[2]:.4g} around median {window[0]:.4g} "
                 f"(bias-corrected, working grid {', '.join(f'{s:.2g}' for s in work.GetSpacing())} mm)")
    if seed_lps is None and len(tried) > 1:
        notes.append(f"automatic seed: {len(tried)} candidate regions grown ("
                     f"{', '.join(f'{t[0]:.0f}' for t in tried)} mL); "
                     + ("the largest of plausible liver volume kept" if plausible else
                        f"none of a whole liver's volume ({lo:.0f}-{hi:.0f} mL): the nearest to it kept"))
    return _to_series_grid(region, work, image), tuple(float(v) for v in seed), window[0], warnings


def nearest_volume(tried: list, lo: float, hi: float) -> tuple:
    """Of regions (volume mL first) none of which has a plausible liver volume, the one nearest to that range (by
    ratio): a slab that images part of the liver, or a liver cut by vessels into pieces, leaves every region below
    the range, and the largest of them holds the most liver (the liver is the largest solid organ); above it, the
    least leaked."""
    return min(tried, key=lambda t: abs(np.log(max(t[0], 1e-3) / float(np.clip(t[0], lo, hi)))))


def _where_the_liver_lies(plausible: list, body: np.ndarray, work: sitk.Image, wall: np.ndarray,
                          notes: list[str]) -> tuple[list, list[str]]:
    """The automatic candidates' regions that lie where the liver lies (``liver_like``), else all of them with a
    warning: a muscle, the abdominal wall or a kidney can be the deepest calm tissue on the right. ``wall``: in-plane
    distance (mm) of every voxel to the body's outline (``wall_distance``)."""
    liver_like, rejected = [], []
    for t in plausible:
        why = not_liver_like(t[2], body, work, wall)
        if why:
            rejected.append(f"{t[0]:.0f} mL from {_where(work, t[1])} ({'; '.join(why)})")
        else:
            liver_like.append(t)
    if rejected:
        notes.append("automatic seed: not where the liver lies: " + ", ".join(rejected))
    if liver_like:
        return liver_like, []
    return plausible, ["no region grown without a click lies where the liver lies (mostly right of the midline, thick, "
                       "inside the abdominal wall, in front of the kidney and the back muscles): check the mask, or "
                       "click inside the liver"]


def _riddled_retry(arr: np.ndarray, edge: np.ndarray, zyx: tuple[int, int, int], samples: Mapping,
                   spacing: Sequence[float], body: np.ndarray, work: sitk.Image, notes: list[str]) -> tuple:
    """The click grown again as in a liver riddled with bright vessels (``vessel_riddled``): neither the click's
    region nor the calm tissue around it reached a liver's volume, which happens when dense bright vessels and
    their blurred shoulders (edges) cut the parenchyma into pieces thinner than the opening. Their gaps are closed
    (``vessel_closing_mm``) inside the tight window before the opening, only where the signal is not below it: a
    dark plane between the liver and a neighbour stays a gap. (volume mL, seed, region, window)"""
    window = _window_from(samples[zyx], local=True) if zyx in samples else seed_window(arr, zyx, spacing, body)
    region, window = grow(arr, edge, zyx, window, spacing, body, riddled=True)
    vol = float(region.sum()) * float(np.prod(spacing)) / 1000.0
    notes.append(f"no region of liver volume grew from the click at {_where(work, zyx)}: grown again with the gaps "
                 f"that bright vessels cut in the liver window closed ({vol:.0f} mL)")
    return vol, zyx, region, window


def hbp_enhancement(images: Mapping[str, sitk.Image], seed_lps: Sequence[float]) -> float | None:
    """Relative enhancement (HBP - pre) / pre of the liver around ``seed_lps`` (medians in the seed ball, before
    bias correction: both phases share the coil); None without a pre-contrast T1."""
    if "t1_pre" not in images or "t1_hepatobiliary" not in images:
        return None
    meds = []
    for role in ("t1_pre", "t1_hepatobiliary"):
        work = working_image(images[role])
        arr = sitk.GetArrayFromImage(work)
        idx = work.TransformPhysicalPointToContinuousIndex([float(v) for v in seed_lps])
        if not all(-0.5 <= c < n - 0.5 for c, n in zip(idx, work.GetSize(), strict=True)):
            return None
        offs = _ball_offsets(float(_value("seed_radius_mm")), work.GetSpacing()[::-1])
        offs = offs + np.asarray([int(round(c)) for c in idx[::-1]])
        offs = offs[np.all((offs >= 0) & (offs < np.asarray(arr.shape)), axis=1)]
        meds.append(float(np.median(arr[offs[:, 0], offs[:, 1], offs[:, 2]])))
    return (meds[1] - meds[0]) / meds[0] if meds[0] > 0 else None


def segment_liver(images: Mapping[str, sitk.Image], seed_lps: Sequence[float] | None = None, *,
                  series: str | None = None) -> LiverResult:
    """The liver mask from one click (``seed_lps``, mm LPS) or automatically, on one series of ``images``.

    ``images`` maps role names to images (one study, shared LPS world frame). ``series`` forces the role used;
    otherwise the preference order of the parameters decides, skipping an HBP whose liver looks unenhanced.
    """
    order = pick_series(images, series)
    notes: list[str] = []
    role = order[0]
    mask, seed, _, warnings = _segment_on(images[role], role, seed_lps, notes)
    if role == "t1_hepatobiliary" and series is None and len(order) > 1:
        re = hbp_enhancement(images, seed)
        limit = float(_value("hbp_min_relative_enhancement"))
        if re is not None and re < limit:
            notes.append(f"t1_hepatobiliary: the liver enhances by only {100 * re:.0f} % over t1_pre (below "
                         f"{100 * limit:.0f} %): hepatocyte uptake looks reduced, so the liver was outlined on "
                         f"{order[1]} instead")
            role = order[1]
            mask, seed, _, warnings = _segment_on(images[role], role, seed_lps, notes)
    from .liver_confirm import confirm_liver  # here: that module builds on this one

    checked = len(notes)
    mask = confirm_liver(mask, images, role, notes)
    method = ("one click" if seed_lps is not None else "automatic seed (deep parenchyma-like points on the "
              "patient's right, the region kept where the liver lies)")
    method += ": N4-corrected robust intensity window, opening for leak control, closing and hole filling for the " \
              "vessels"
    if len(notes) > checked:  # the second-series check ran (its note says what it found)
        method += "; checked on the study's other series for tissue that is not liver"
    return LiverResult(mask=mask, series_used=role, seed_lps=seed, method=method, volume_ml=_volume_ml(mask),
                       notes=notes, warnings=warnings)
