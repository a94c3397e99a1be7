"""The liver mask's working grid: the series on a fixed physical grid in patient axis order, its body, bias
field, smoothing and edges, and the morphology every later step uses (parameters in
``resources/liver_segmentation.json``). Split from ``liver.py`` so that the seed, growing and lesion steps share
one base."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import LiverMetsError
from ..resources import load_json

PARAMETERS = "liver_segmentation.json"


def parameters() -> dict:
    return load_json(PARAMETERS)


def _value(key: str):
    return parameters()[key]["value"]


# ---------------------------------------------------------------- working image

def working_image(image: sitk.Image) -> sitk.Image:
    """Float32 copy on the working grid: axes reordered to the patient's (index x, y, z = L, P, S, whatever order
    and direction the scanner stored them in: every slice-wise step then works on axial slices), and each axis
    finer than the working spacing averaged to it (a Gaussian of the new voxel's width, then linear resampling), so
    that every later step sees the same physical grid whatever the acquired voxel size. Coarser axes (thick
    slices) are kept as acquired."""
    target = float(_value("working_spacing_mm"))
    img = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), "LPS")
    old = np.asarray(img.GetSpacing(), float)
    new = np.maximum(old, target)
    if np.allclose(new, old, rtol=0.02):
        return img
    # FWHM of the added blur = the width the new voxel adds to the old one
    sigma_vox = np.sqrt(np.maximum(new ** 2 - old ** 2, 0.0)) / 2.355 / old
    arr = ndi.gaussian_filter(sitk.GetArrayFromImage(img), sigma_vox[::-1], mode="nearest")
    smooth = sitk.GetImageFromArray(arr.astype(np.float32))
    smooth.CopyInformation(img)
    size = [max(1, int(np.floor(n * o / s))) for n, o, s in zip(img.GetSize(), old, new, strict=True)]
    corner = np.asarray(img.TransformContinuousIndexToPhysicalPoint([-0.5, -0.5, -0.5]))
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(v) for v in new))
    ref.SetDirection(img.GetDirection())
    ref.SetOrigin(tuple(float(v) for v in corner + np.asarray(img.GetDirection()).reshape(3, 3) @ (new / 2)))
    return sitk.Resample(smooth, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


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


def bounding_box(mask: np.ndarray, pad_voxels: Sequence[int]) -> tuple[slice, ...]:
    """Slices of the bounding box of ``mask`` (not empty) widened by ``pad_voxels`` per axis, clipped to the array."""
    out = []
    for axis, pad in enumerate(pad_voxels):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        out.append(slice(max(int(hit[0]) - int(pad), 0), min(int(hit[-1]) + int(pad) + 1, mask.shape[axis])))
    return tuple(out)


def morph(op: str, mask: np.ndarray, radius_mm: float, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Binary opening/closing/dilation/erosion with a ball of ``radius_mm``. The closing pads the array with
    background so that the image edge does not erode the result; the opening pads it by repeating the edge
    slices: the anatomy continues beyond a field of view that cuts an organ, so the image edge is no boundary a
    thin bridge could be cut at (else the opening strips the end slices of an organ the slab cuts).

    Computed in the mask's bounding box widened by twice the ball's extent and a voxel (every voxel the two
    passes of a closing or opening can change, with the background round them): the same result, in the
    fraction of the volume an organ fills."""
    out = np.zeros(mask.shape, bool)
    if not mask.any():
        return out
    se = ball(radius_mm, spacing_zyx)
    box = bounding_box(mask, [2 * (n // 2) + 1 for n in se.shape])
    out[box] = _morph(op, mask[box], se)
    return out


def _morph(op: str, mask: np.ndarray, se: np.ndarray) -> np.ndarray:
    if op in ("close", "open"):
        pad = [(n // 2, n // 2) for n in se.shape]
        padded = np.pad(mask, pad) if op == "close" else np.pad(mask, pad, mode="edge")
        fn = ndi.binary_closing if op == "close" else ndi.binary_opening
        out = fn(padded, se)
        return out[tuple(slice(p[0], p[0] + n) for p, n in zip(pad, mask.shape, strict=True))]
    fn = {"dilate": ndi.binary_dilation, "erode": ndi.binary_erosion}[op]
    return fn(mask, se)


def edges(work: sitk.Image, body: np.ndarray | None = None) -> np.ndarray:
    """Gradient magnitude times the working spacing: the signal change over one working voxel (z, y, x), the
    same physical length whatever the acquired voxel size. With the ``body`` given, a change no larger than the
    image's noise alone makes (``noise_edge_level``) is no edge: it is set to 0."""
    grad = sitk.GetArrayFromImage(sitk.GradientMagnitude(work)) * float(_value("working_spacing_mm"))
    if body is None:
        return grad
    return np.where(grad <= noise_edge_level(work, body), 0.0, grad).astype(grad.dtype)


# Laplacian of Immerkaer (Comput Vis Image Underst 1996;64:300-302), applied in-plane: on white noise of
# standard deviation s its response has standard deviation 6 s; flat tissue and smooth gradients give 0.
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])[None]


def _laplacian_spread(arr: np.ndarray, where: np.ndarray) -> float:
    """Robust spread (1.4826 x MAD) of the in-plane Immerkaer Laplacian over ``where``: proportional to the
    noise, hardly moved by the minority of voxels at organ boundaries."""
    lap = ndi.convolve(arr.astype(np.float32), _IMMERKAER, mode="nearest")[where]
    return 1.4826 * float(np.median(np.abs(lap - np.median(lap)))) if lap.size else 0.0


def noise_edge_level(work: sitk.Image, body: np.ndarray) -> float:
    """The signal change over one working voxel that the image's noise alone exceeds in only
    ``edge_noise.quantile`` of the voxels. The noise of the smoothed working image is measured by the spread of
    its Laplacian inside the body (away from its outline); the same smoothing and gradient are applied to white
    noise on the same grid, whose Laplacian spread and gradient quantile convert that spread into the level."""
    p = parameters()["edge_noise"]
    arr = sitk.GetArrayFromImage(work)
    inner = ndi.binary_erosion(body, np.ones((1, 5, 5), bool))
    measured = _laplacian_spread(arr, inner)
    if measured <= 0:
        return 0.0
    shape = tuple(int(v) for v in p["simulation_shape_zyx"])
    noise = sitk.GetImageFromArray(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    noise.SetSpacing(work.GetSpacing())
    noise = sitk.SmoothingRecursiveGaussian(noise, float(_value("smoothing_sigma_mm")))
    sim = sitk.GetArrayFromImage(noise)
    grad = sitk.GetArrayFromImage(sitk.GradientMagnitude(noise)) * float(_value("working_spacing_mm"))
    core = np.zeros(shape, bool)
    core[2:-2, 2:-2, 2:-2] = True  # away from the simulated block's own border
    return measured / _laplacian_spread(sim, core) * float(np.quantile(grad[core], float(p["quantile"])))


def deepest_points(depth: np.ndarray, spacing_zyx: Sequence[float], count: int,
                   axes: Sequence[int] = (0, 1, 2)) -> list[tuple[int, int, int]]:
    """Up to ``count`` maxima of ``depth`` (voxel indices z, y, x, deepest first), each outside the region of twice
    the depth of those before it, measured along ``axes`` (all three: a ball; (1, 2): a vertical cylinder)."""
    out: list[tuple[int, int, int]] = []
    grid = np.indices(depth.shape, dtype=np.float32)
    for _ in range(count):
        k = int(np.argmax(depth))
        if depth.flat[k] <= 0:
            break
        point = tuple(int(v) for v in np.unravel_index(k, depth.shape))
        out.append(point)
        d2 = sum(((grid[i] - point[i]) * spacing_zyx[i]) ** 2 for i in axes)
        depth = np.where(d2 <= (2.0 * depth.flat[k]) ** 2, 0.0, depth)
    return out
