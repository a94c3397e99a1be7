"""Key images of one lesion: an axial crop through its centroid on each series, in radiological orientation
(patient left on the image's right, anterior at the top), windowed per series from the liver around the lesion, with the
lesion's outline, its long-axis line, a 10-mm scale bar and R/L marks. numpy + SimpleITK only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .png import encode_png

PIXELS = 160                 # crop side in pixels
MIN_FOV_MM = 50.0            # smallest crop side
FOV_PER_LONG_AXIS = 2.5      # crop side as a multiple of the lesion's long axis
WINDOW_PERCENTILES = (1.0, 99.5)
# Display convention of the key images: the liver around the lesion (the crop's median outside the lesion) sits at
# this grey level between the crop's dark floor (LOW_PERCENTILE) and white, so a lesion darker or brighter than
# liver shows as such on every series (a whole-volume percentile window left the HBP liver near white).
# A lesion brighter than that window (a cyst or haemangioma on T2, a hypervascular lesion on the arterial phase) would
# be clipped to white and lose its inside: the grey scale then bends at the liver, so that above it the lesion's
# LESION_TOP_PERCENTILE shows at LESION_TOP_GREY (light grey, below the white of saturation), while the liver stays
# at LIVER_GREY and everything darker keeps its contrast.
LIVER_GREY = 0.55
LOW_PERCENTILE = 1.0
LESION_TOP_PERCENTILE = 99.0
LESION_TOP_GREY = 0.92
SCALE_BAR_MM = 10.0
OUTLINE = (255, 214, 0)
AXIS_LINE = (0, 200, 255)

# 5x7 glyphs for the side marks (rows top to bottom).
_GLYPHS = {"R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
           "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111")}


@dataclass
class KeyImage:
    png: bytes
    pixel_mm: float
    fov_mm: float
    window: tuple[float, float]  # signal shown black and white
    liver: float | None = None   # signal shown at LIVER_GREY (None: one linear window from black to white)


def robust_window(image: sitk.Image) -> tuple[float, float]:
    """Display window of one series from percentiles of its non-zero voxels (zero is background or masked)."""
    a = sitk.GetArrayViewFromImage(image)
    v = a[np.isfinite(a) & (a != 0)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, WINDOW_PERCENTILES)
    return float(lo), float(hi if hi > lo else lo + 1.0)


def liver_levels(grey: np.ndarray, lesion: np.ndarray | None) -> tuple[float, float, float]:
    """Signal shown black, at ``LIVER_GREY`` (the liver around the lesion) and white in one key image, from its own
    pixels: black at a low percentile, the liver the median outside the lesion. White is where the liver window puts
    it, or higher when the lesion is brighter, so that its ``LESION_TOP_PERCENTILE`` shows at ``LESION_TOP_GREY``
    (:func:`to_grey` bends the scale at the liver)."""
    valid = np.isfinite(grey) & (grey != 0)
    v = grey[valid & (~lesion if lesion is not None else True)]
    if v.size < 10:
        return 0.0, LIVER_GREY, 1.0
    lo, liver = float(np.percentile(v, LOW_PERCENTILE)), float(np.median(v))
    if liver <= lo:
        return lo, lo + LIVER_GREY, lo + 1.0
    hi = lo + (liver - lo) / LIVER_GREY
    inside = grey[valid & lesion] if lesion is not None else np.empty(0)
    if inside.size:
        top = float(np.percentile(inside, LESION_TOP_PERCENTILE))
        hi = max(hi, liver + (top - liver) * (1.0 - LIVER_GREY) / (LESION_TOP_GREY - LIVER_GREY))
    return lo, liver, hi


def to_grey(values: np.ndarray, lo: float, hi: float, liver: float | None = None) -> np.ndarray:
    """Signal -> 0..255: linear from ``lo`` (black) to ``hi`` (white), or, with ``liver``, two linear pieces meeting
    at ``liver`` -> ``LIVER_GREY`` (one line when ``hi`` is where the liver window puts white)."""
    x = np.nan_to_num(values)
    if liver is None or not lo < liver < hi:
        g = (x - lo) / (hi - lo)
    else:
        g = np.where(x <= liver, LIVER_GREY * (x - lo) / (liver - lo),
                     LIVER_GREY + (1.0 - LIVER_GREY) * (x - liver) / (hi - liver))
    return np.clip(g, 0.0, 1.0) * 255.0


def _plane(centre_lps: Sequence[float], fov_mm: float, z_spacing: float) -> sitk.Image:
    """An axial one-slice grid with LPS axes: columns run to patient left, rows to posterior."""
    px = fov_mm / PIXELS
    plane = sitk.Image([PIXELS, PIXELS, 1], sitk.sitkFloat32)
    plane.SetSpacing((px, px, z_spacing))
    plane.SetOrigin((centre_lps[0] - fov_mm / 2 + px / 2, centre_lps[1] - fov_mm / 2 + px / 2, centre_lps[2]))
    return plane


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _draw_line(rgb: np.ndarray, a: Sequence[float], b: Sequence[float], colour: tuple[int, int, int]) -> None:
    n = int(max(abs(b[0] - a[0]), abs(b[1] - a[1])) * 2) + 2
    cols = np.rint(np.linspace(a[0], b[0], n)).astype(int)
    rows = np.rint(np.linspace(a[1], b[1], n)).astype(int)
    keep = (rows >= 0) & (rows < rgb.shape[0]) & (cols >= 0) & (cols < rgb.shape[1])
    rgb[rows[keep], cols[keep]] = colour


def _marks(rgb: np.ndarray, pixel_mm: float) -> None:
    """Scale bar bottom left (white on a black border), R on the image's left and L on its right."""
    n = rgb.shape[0]
    length = max(1, round(SCALE_BAR_MM / pixel_mm))
    rgb[n - 9:n - 4, 4:6 + length] = 0
    rgb[n - 8:n - 5, 5:5 + length] = 255
    for letter, col in (("R", 3), ("L", n - 8)):
        glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[letter]])
        rgb[n // 2 - 3:n // 2 + 4, col:col + 5][glyph] = 255


def render_key_image(image: sitk.Image, mask: sitk.Image | None, centre_lps: Sequence[float], fov_mm: float,
                     window: tuple[float, float] | None = None,
                     axis_lps: Sequence[Sequence[float]] | None = None) -> KeyImage:
    """The axial crop of ``image`` centred on ``centre_lps`` (LPS mm), ``fov_mm`` wide, as PNG bytes; ``window``
    (black, white) None: :func:`liver_levels` of the crop."""
    z = image.GetSpacing()[2] if image.GetDimension() == 3 else 1.0
    plane = _plane(centre_lps, fov_mm, z)
    grey = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), plane, sitk.Transform(),
                                                sitk.sitkLinear, 0.0))[0]
    m = None
    if mask is not None:
        m = sitk.GetArrayFromImage(sitk.Resample(mask, plane, sitk.Transform(), sitk.sitkNearestNeighbor, 0))[0] > 0
    if window is not None:
        (lo, hi), liver = window, None
    else:
        lo, liver, hi = liver_levels(grey, m)
    g = to_grey(grey, lo, hi, liver)
    rgb = np.repeat(np.rint(g).astype(np.uint8)[:, :, None], 3, axis=2)
    if m is not None:
        rgb[_outline(m)] = OUTLINE
    px = fov_mm / PIXELS
    if axis_lps:
        origin = plane.GetOrigin()
        ends = [((p[0] - origin[0]) / px, (p[1] - origin[1]) / px) for p in axis_lps]
        _draw_line(rgb, ends[0], ends[1], AXIS_LINE)
    _marks(rgb, px)
    return KeyImage(encode_png(rgb), px, fov_mm, (lo, hi), liver)


def crop_fov(long_axis_mm: float | None) -> float:
    return max(MIN_FOV_MM, FOV_PER_LONG_AXIS * (long_axis_mm or 0.0))
