"""The liver mask from one click in the liver, or automatically, on real images.

Method (parameters and their reasons in ``resources/liver_segmentation.json``):

1. one series is used (the named one, else the first present of ``series_preference``);
2. it is block-averaged to a ~3 mm working grid, corrected for the coil's bias field with N4 (on a shrunk
   copy) and smoothed;
3. a robust intensity model (median, 1.4826 x MAD, clamped to a relative floor and ceiling) is estimated in a
   ball around the seed; the liver window is median +/- k sigma;
4. leak control: the window is opened with a ball (thin bridges of similar signal to the heart, bowel, kidney
   or spleen are cut), the component holding the seed kept and dilated back inside the window;
5. the intrahepatic vessels (and small lesions) are put inside by a closing and slice-wise hole filling, as
   radiologists segment the liver (CHAOS convention);
6. the mask is interpolated back onto the series grid.

Without a click the seed is the deepest point of the "parenchyma-like" map (no edge, body signal) on the
patient's right: the liver is the largest solid organ of the right upper abdomen. In the hepatobiliary phase a
liver that is not brighter than the body's tissue (reduced uptake) is not used; the next series is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import LiverMetsError, MissingDataError
from ..resources import load_json

PARAMETERS = "liver_segmentation.json"


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


def parameters() -> dict:
    return load_json(PARAMETERS)


def _value(key: str):
    return parameters()[key]["value"]


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


# ---------------------------------------------------------------- working image

def working_image(image: sitk.Image) -> sitk.Image:
    """Float32 copy block-averaged to about the working spacing in-plane (and through-plane when finer)."""
    target = float(_value("working_spacing_mm"))
    img = sitk.Cast(image, sitk.sitkFloat32)
    factors = [max(1, int(round(target / s))) for s in img.GetSpacing()]
    return sitk.BinShrink(img, factors) if max(factors) > 1 else img


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """Fill, slice by slice (axial), every background region that does not reach the slice's border; one
    labelling with an in-plane structuring element does all slices at once."""
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndi.generate_binary_structure(2, 1)
    lab, _ = ndi.label(~mask, structure=structure)
    outside = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(),
                                        lab[:, :, -1].ravel()]))
    return mask | ((lab > 0) & ~np.isin(lab, outside[outside > 0]))


def body_mask(arr: np.ndarray) -> np.ndarray:
    """Voxels with tissue signal (Otsu on the log of the signal) joined into the body, slice-wise holes filled."""
    pos = arr[arr > 0]
    if pos.size < 100:
        raise LiverMetsError("the image is empty (no signal); choose a series with the abdomen in it")
    logv = np.log1p(arr.clip(0))
    hist, edges = np.histogram(logv[arr > 0], bins=128)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    thr = centres[int(np.argmax(w0 * w1 * (m0 - m1) ** 2))]
    fg = logv > thr
    fg = ndi.binary_closing(fg, np.ones((1, 5, 5), bool))
    filled = fill_holes_2d(fg)
    lab, n = ndi.label(filled)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        filled = lab == int(np.argmax(sizes))
    return filled


def bias_corrected(img: sitk.Image, body: np.ndarray) -> sitk.Image:
    """``img`` divided by the N4 bias field estimated on a shrunk copy inside the body."""
    p = parameters()["n4"]
    mask = sitk.GetImageFromArray(body.astype(np.uint8))
    mask.CopyInformation(img)
    shrink = [max(1, int(round(p["fit_spacing_mm"] / s))) for s in img.GetSpacing()]
    small, small_mask = sitk.Shrink(img, shrink), sitk.Shrink(mask, shrink)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(v) for v in p["iterations"]])
    extent = [sz * sp for sz, sp in zip(small.GetSize(), small.GetSpacing(), strict=True)]
    n4.SetNumberOfControlPoints([max(4, int(round(e / p["spline_distance_mm"])) + 3) for e in extent])
    n4.SetConvergenceThreshold(float(p["convergence"]))
    n4.Execute(sitk.Add(small, 1.0), small_mask)
    log_bias = n4.GetLogBiasFieldAsImage(img)
    return sitk.Cast(sitk.Divide(img, sitk.Exp(log_bias)), sitk.sitkFloat32)


def prepared(image: sitk.Image) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """Working grid image (bias-corrected, smoothed), its array (z, y, x) and the body mask."""
    work = working_image(image)
    arr = sitk.GetArrayFromImage(work)
    body = body_mask(arr)
    if parameters()["n4"].get("enabled", True):
        work = bias_corrected(work, body)
    work = sitk.SmoothingRecursiveGaussian(work, float(_value("smoothing_sigma_mm")))
    return work, sitk.GetArrayFromImage(work), body


# ---------------------------------------------------------------- intensity model and growing

def _ball_offsets(radius_mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    r = [max(1, int(np.floor(radius_mm / s))) for s in spacing_zyx]
    g = np.mgrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    d2 = sum((g[i] * spacing_zyx[i]) ** 2 for i in range(3))
    return g[:, d2 <= radius_mm ** 2].T


def ball(radius_mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Boolean structuring element approximating a ball of ``radius_mm`` on an anisotropic grid; an axis coarser
    than 4/3 of the radius gets no extent."""
    r = [max(1, int(round(radius_mm / s))) if radius_mm >= 0.75 * s else 0 for s in spacing_zyx]
    g = np.mgrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1].astype(float)
    d2 = sum((g[i] / r[i]) ** 2 if r[i] else 0.0 * g[i] for i in range(3))
    return d2 <= 1.0 + 1e-9


def morph(op: str, mask: np.ndarray, radius_mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Binary opening/closing/dilation/erosion with a ball of ``radius_mm``; the closing pads the array so that
    the image edge does not erode the result."""
    se = ball(radius_mm, spacing_zyx)
    if op == "close":
        pad = [(n // 2, n // 2) for n in se.shape]
        closed = ndi.binary_closing(np.pad(mask, pad), se)
        return closed[tuple(slice(p[0], p[0] + n) for p, n in zip(pad, mask.shape, strict=True))]
    fn = {"open": ndi.binary_opening, "dilate": ndi.binary_dilation, "erode": ndi.binary_erosion}[op]
    return fn(mask, se)


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
    return _window_from(vals)


def _window_from(vals: np.ndarray) -> tuple[float, float, float]:
    """(median, low, high): median +/- k robust sigmas, sigma clamped relative to the median."""
    med = float(np.median(vals))
    sigma = 1.4826 * float(np.median(np.abs(vals - med)))
    sigma = float(np.clip(sigma, _value("min_relative_sigma") * med, _value("max_relative_sigma") * med))
    k = float(_value("window_sigmas"))
    return med, med - k * sigma, med + k * sigma


def _component_at(mask: np.ndarray, seed_zyx: Sequence[int], spacing_zyx: Sequence[float]) -> np.ndarray:
    """The connected component of ``mask`` holding the seed; when the seed voxel itself is out (on a vessel or an
    edge), the component filling most of the seed ball."""
    lab, n = ndi.label(mask)
    if n == 0:
        return np.zeros_like(mask)
    k = lab[tuple(int(v) for v in seed_zyx)]
    if k == 0:
        offs = _ball_offsets(float(_value("seed_radius_mm")), spacing_zyx) + np.asarray(seed_zyx)
        offs = offs[np.all((offs >= 0) & (offs < np.asarray(mask.shape)), axis=1)]
        near = lab[offs[:, 0], offs[:, 1], offs[:, 2]]
        near = near[near > 0]
        if near.size == 0:
            return np.zeros_like(mask)
        k = int(np.bincount(near).argmax())
    return lab == k


def edges(work: sitk.Image) -> np.ndarray:
    """Gradient magnitude times the smallest spacing: the signal change over one working voxel (z, y, x)."""
    return sitk.GetArrayFromImage(sitk.GradientMagnitude(work)) * min(work.GetSpacing())


def _grow_window(arr: np.ndarray, edge: np.ndarray, seed_zyx: Sequence[int], window: tuple[float, float, float],
                 spacing_zyx: Sequence[float], body: np.ndarray) -> np.ndarray:
    """Hysteresis growing: a core inside the tight window (opened: leak control), then the full window only
    within ``recover_mm`` of that core (partial volume, bias, thin edges; never a whole neighbouring organ)."""
    med, low, high = window
    k_core = float(_value("core_sigmas")) / float(_value("window_sigmas"))
    c_low, c_high = med - k_core * (med - low), med + k_core * (high - med)
    calm = body & (edge < float(_value("edge_fraction")) * med)
    tight = (arr >= c_low) & (arr <= c_high) & calm
    core = _component_at(morph("open", tight, float(_value("leak_opening_mm")), spacing_zyx), seed_zyx, spacing_zyx)
    if not core.any():
        core = _component_at(tight, seed_zyx, spacing_zyx)
    wide = (arr >= low) & (arr <= high) & calm
    region = core | (morph("dilate", core, float(_value("recover_mm")), spacing_zyx) & wide)
    return _component_at(region, seed_zyx, spacing_zyx)


def grow(arr: np.ndarray, edge: np.ndarray, seed_zyx: Sequence[int], window: tuple[float, float, float],
         spacing_zyx: Sequence[float], body: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Liver region on the working grid and the final window.

    The first region grows from the seed ball's window; each further pass takes the window from the previous
    region's own robust statistics (the whole liver, not one ball: its spread includes the residual bias across
    the organ). The last region gets its boundary and its vessels.
    """
    for _ in range(int(_value("model_passes"))):
        first = fill_vessels(_grow_window(arr, edge, seed_zyx, window, spacing_zyx, body), spacing_zyx)
        # Everything inside the region (vessels too: MAD ignores a minority), away from its boundary's partial
        # volume: a sample of the liver's signal that no window has truncated.
        interior = morph("erode", first, float(_value("boundary_mm")), spacing_zyx)
        if interior.sum() < 50:
            break
        window = _window_from(arr[interior])
    region = _grow_window(arr, edge, seed_zyx, window, spacing_zyx, body)
    return fill_vessels(boundary(arr, region, window[0], spacing_zyx, body), spacing_zyx), window


def boundary(arr: np.ndarray, region: np.ndarray, med: float, spacing_zyx: Sequence[float],
             body: np.ndarray) -> np.ndarray:
    """Put back the boundary voxels (kept out as edges) that are more than half liver.

    A partial-volume voxel's signal lies between the liver's and the adjoining tissue's; it is liver when it is
    nearer the liver median than that tissue (the extreme of its in-plane neighbourhood on the far side).
    """
    size = (1, 3, 3)
    lo, hi = ndi.minimum_filter(arr, size=size), ndi.maximum_filter(arr, size=size)
    other = np.where(med - lo > hi - med, lo, hi)
    liver_side = (np.abs(arr - med) <= np.abs(arr - other)) & body
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


# ---------------------------------------------------------------- automatic seed

def auto_seed_candidates(arr: np.ndarray, body: np.ndarray, work: sitk.Image, *, side: str = "right",
                         exclude: np.ndarray | None = None, fat_bright: bool = False) -> list[tuple[int, int, int]]:
    """Deep points of the parenchyma-like map on the patient's ``side`` ("right", "left", "left_posterior"), deepest
    first (voxel indices z, y, x); voxels in ``exclude`` (an organ already found, a region anatomy rules out) do
    not count, nor fat when ``fat_bright`` (no fat suppression)."""
    p = parameters()["auto_seed"]
    spacing = work.GetSpacing()[::-1]
    grad = edges(work)
    background = np.percentile(arr[body], 25)
    smooth = (grad < p["edge_fraction"] * np.maximum(arr, 1e-6)) & (arr > background) & body
    if exclude is not None:
        smooth &= ~exclude
    if fat_bright:
        smooth &= ~_fat_like(arr, body, spacing)
    depth = ndi.distance_transform_edt(smooth, sampling=spacing)
    # Patient's right: world x (LPS) below the body's centre; left: above it.
    zz, yy, xx = np.nonzero(body)
    centre = np.array(work.TransformContinuousIndexToPhysicalPoint(
        [float(xx.mean()), float(yy.mean()), float(zz.mean())]))
    world_x = _world_axis(work, 0)
    on_side = world_x < centre[0] if side == "right" else world_x > centre[0]
    if side == "left_posterior":  # the spleen: against the left posterolateral wall
        on_side &= _world_axis(work, 1) > centre[1]
    depth = np.where(on_side, depth, 0.0)
    out: list[tuple[int, int, int]] = []
    grid = np.indices(depth.shape, dtype=np.float32)
    for _ in range(int(p["candidates"])):
        k = int(np.argmax(depth))
        if depth.flat[k] <= 0:
            break
        z, y, x = (int(v) for v in np.unravel_index(k, depth.shape))
        out.append((z, y, x))
        # the next candidate lies outside this one's vertical cylinder of twice its depth: another organ (the
        # spine and the great vessels run cranio-caudally, so a ball would leave them candidates at every level)
        d2 = sum(((grid[i] - c) * spacing[i]) ** 2 for i, c in ((1, y), (2, x)))
        depth = np.where(d2 <= (2.0 * depth.flat[k]) ** 2, 0.0, depth)
    return out


def _fat_like(arr: np.ndarray, body: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Voxels with the signal of the subcutaneous layer on an image without fat suppression (in/opposed phase):
    there fat is the largest homogeneous tissue and no organ."""
    p = parameters()["auto_seed"]
    shell = body & ~morph("erode", body, float(p["fat_shell_mm"]), [1e9, *spacing_zyx[1:]])
    fat = float(np.median(arr[shell])) if shell.any() else 0.0
    return np.abs(arr - fat) <= float(p["fat_tolerance"]) * fat


def _world_axis(img: sitk.Image, axis: int) -> np.ndarray:
    """World coordinate ``axis`` (0 = x, LPS) of every voxel, as a (z, y, x) array."""
    nx, ny, nz = img.GetSize()
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    sp = np.asarray(img.GetSpacing())
    o = np.asarray(img.GetOrigin())
    return o[axis] + d[axis, 0] * sp[0] * i + d[axis, 1] * sp[1] * j + d[axis, 2] * sp[2] * k


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
    edge = edges(work)
    lo, hi = _value("liver_volume_ml")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if seed_lps is not None:
        seeds = [_seed_index(work, seed_lps, body, role)]
    else:
        bright_fat = any(role == r or role.startswith(r + "_") for r in parameters()["auto_seed"]["fat_bright_roles"])
        seeds = auto_seed_candidates(arr, body, work, fat_bright=bright_fat)
        if not seeds:
            raise LiverMetsError(f"no liver-like region was found on the {role} image; click inside the liver")
    tried: list = []
    for zyx in seeds:
        if any(t[2][tuple(zyx)] for t in tried):
            continue  # inside a region already grown: the same organ
        region, window = grow(arr, edge, zyx, seed_window(arr, zyx, spacing, body), spacing, body)
        tried.append((float(region.sum()) * voxel_ml, zyx, region, window))
    # The liver is the largest solid organ: among the candidates' regions, the largest of plausible volume.
    plausible = [t for t in tried if lo <= t[0] <= hi]
    vol, zyx, region, window = max(plausible, key=lambda t: t[0]) if plausible else tried[0]
    warnings: list[str] = []
    if not lo <= vol <= hi:
        warnings.append(f"the liver mask holds {vol:.0f} mL, outside the plausible {lo:.0f}-{hi:.0f} mL; check it "
                        "and correct it, or click elsewhere in the liver")
    seed = work.TransformIndexToPhysicalPoint([int(v) for v in zyx[::-1]])
    notes.append(f"{role}: liver window {window[1]:.4g}-{window[2]:.4g} around median {window[0]:.4g} "
                 f"(bias-corrected, working grid {', '.join(f'{s:.2g}' for s in work.GetSpacing())} mm)")
    if seed_lps is None and len(tried) > 1:
        notes.append(f"automatic seed: {len(tried)} candidate regions grown ("
                     f"{', '.join(f'{t[0]:.0f}' for t in tried)} mL); the largest of plausible liver volume kept")
    return _to_series_grid(region, work, image), tuple(float(v) for v in seed), window[0], warnings


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
    method = ("one click" if seed_lps is not None else "automatic seed (deepest parenchyma-like point on the "
              "patient's right)") + ": N4-corrected robust intensity window, opening for leak control, closing " \
                                    "and hole filling for the vessels"
    return LiverResult(mask=mask, series_used=role, seed_lps=seed, method=method, volume_ml=_volume_ml(mask),
                       notes=notes, warnings=warnings)
