"""Putting images on one grid: geometry comparison, overlap check and resampling (LPS world coordinates).

Maps compare images voxel by voxel, so every input is first brought onto a reference grid. Two grids are the
"same" within the tolerances of ``maps_defaults.json``; otherwise the moving image is resampled (linear for
intensities, nearest for labels) and the caller states it in its summary. Grids that do not overlap at all are
an error, not a map of zeros.
"""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, LiverMetsError
from .defaults import defaults


def describe_grid(image: sitk.Image) -> dict:
    """JSON-able geometry of an image (LPS, mm)."""
    return {
        "size": list(image.GetSize()),
        "spacing_mm": [round(v, 6) for v in image.GetSpacing()],
        "origin_mm_lps": [round(v, 4) for v in image.GetOrigin()],
        "direction": [round(v, 6) for v in image.GetDirection()],
    }


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when ``a`` and ``b`` share size, spacing, origin and direction (within tolerance)."""
    tol = defaults("geometry")
    if a.GetDimension() != b.GetDimension() or a.GetSize() != b.GetSize():
        return False
    sa, sb = np.array(a.GetSpacing()), np.array(b.GetSpacing())
    if np.any(np.abs(sa - sb) > tol["spacing_rel_tol"] * np.maximum(sa, sb)):
        return False
    if np.any(np.abs(np.array(a.GetOrigin()) - np.array(b.GetOrigin())) > tol["origin_tol_mm"]):
        return False
    return bool(np.all(np.abs(np.array(a.GetDirection()) - np.array(b.GetDirection())) <= tol["direction_tol"]))


def _bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned physical bounding box (LPS, mm) of the voxel extents (half a voxel beyond the centres)."""
    size = image.GetSize()
    corners = []
    for c in itertools.product(*[(-0.5, s - 0.5) for s in size]):
        corners.append(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in c]))
    arr = np.array(corners)
    return arr.min(axis=0), arr.max(axis=0)


def overlap_fraction(reference: sitk.Image, moving: sitk.Image) -> float:
    """Fraction of the reference's bounding box covered by the moving image's bounding box."""
    r0, r1 = _bounds(reference)
    m0, m1 = _bounds(moving)
    inter = np.clip(np.minimum(r1, m1) - np.maximum(r0, m0), 0.0, None)
    vol = np.prod(np.maximum(r1 - r0, 1e-9))
    return float(np.prod(inter) / vol)


def check_compatible(reference: sitk.Image, moving: sitk.Image, what: str = "image") -> None:
    """Raise :class:`GeometryError` when ``moving`` cannot be put on ``reference``'s grid."""
    if reference.GetDimension() != moving.GetDimension():
        raise GeometryError(
            f"the {what} is {moving.GetDimension()}-D but the reference is {reference.GetDimension()}-D; "
            "give images of the same dimension"
        )
    if moving.GetNumberOfComponentsPerPixel() != 1:
        raise LiverMetsError(f"the {what} has several components per voxel; give a scalar (magnitude) image")
    frac = overlap_fraction(reference, moving)
    if frac < defaults("geometry")["min_overlap_fraction"]:
        raise GeometryError(
            f"the {what} does not overlap the reference grid ({100 * frac:.1f} % of its extent); "
            "check that both images come from the same study and position"
        )


def resample_to(reference: sitk.Image, moving: sitk.Image, *, label: bool = False,
                transform: sitk.Transform | None = None) -> sitk.Image:
    """``moving`` on ``reference``'s grid (linear, or nearest for labels); voxels outside it become 0."""
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    out_type = moving.GetPixelID() if label else sitk.sitkFloat32
    return sitk.Resample(moving, reference, transform or sitk.Transform(), interp, 0.0, out_type)


def coverage_mask(reference: sitk.Image, moving: sitk.Image, transform: sitk.Transform | None = None) -> np.ndarray:
    """Boolean array (z, y, x) of the reference voxels that the moving image's grid covers."""
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8)
    ones.CopyInformation(moving)
    ones = ones + 1
    return sitk.GetArrayFromImage(resample_to(reference, ones, label=True, transform=transform)) > 0


def match_to_reference(reference: sitk.Image, moving: sitk.Image, what: str = "image",
                       *, label: bool = False) -> tuple[sitk.Image, np.ndarray | None, str | None]:
    """``moving`` on ``reference``'s grid: (image, coverage mask or None, note or None).

    Same grid: returned unchanged, no mask, no note. Otherwise resampled; the note says so and the mask marks the
    reference voxels the moving image actually covers (the others are 0 and must be masked by the caller).
    """
    if same_grid(reference, moving):
        return moving, None, None
    check_compatible(reference, moving, what)
    out = resample_to(reference, moving, label=label)
    cover = coverage_mask(reference, moving)
    note = (f"the {what} was resampled onto the reference grid ({'nearest' if label else 'linear'} interpolation); "
            f"{int(cover.size - cover.sum())} reference voxels lie outside it")
    return out, cover, note


def _check_scalar(image: sitk.Image, what: str) -> None:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LiverMetsError(f"the {what} has several components per voxel; give a scalar (magnitude) image")
    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise LiverMetsError(f"the {what} is complex; give its magnitude")


def as_float_array(image: sitk.Image, what: str = "image") -> np.ndarray:
    """Float32 (z, y, x) copy of a scalar image; complex or vector images are refused with a reason."""
    _check_scalar(image, what)
    return sitk.GetArrayFromImage(image).astype(np.float32, copy=False)


def float_view(image: sitk.Image, what: str = "image") -> np.ndarray:
    """Float32 (z, y, x) array of a scalar image without copying a float32 image: then a read-only view of its
    buffer, valid only while ``image`` lives (the caller keeps it); other pixel types are converted (a new array).
    Refused like :func:`as_float_array`. A map reads its inputs whole, so a copy would cost a volume for nothing."""
    _check_scalar(image, what)
    return sitk.GetArrayViewFromImage(image).astype(np.float32, copy=False)


def zero_non_finite(array: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """``array`` with its non-finite voxels set to 0, in place (``finite``: ``np.isfinite(array)``, already at hand).

    Unlike ``np.nan_to_num`` this makes no pass over a volume that is finite throughout (the usual case)."""
    if not finite.all():
        array[~finite] = 0
    return array


def to_image(array: np.ndarray, reference: sitk.Image, dtype: type = np.float32) -> sitk.Image:
    """Wrap a (z, y, x) array with the reference's geometry."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=dtype))
    img.CopyInformation(reference)
    return img


def slice_positions_mm(reference: sitk.Image, slices: list[int]) -> list[list[float]]:
    """LPS position (mm) of the centre of each listed slice (last index axis) of ``reference``."""
    size = reference.GetSize()
    return [
        [round(v, 1) for v in reference.TransformContinuousIndexToPhysicalPoint(
            [(size[0] - 1) / 2.0, (size[1] - 1) / 2.0, float(k)])]
        for k in slices
    ]


def apply_user_mask(reference: sitk.Image, mask: sitk.Image | None, valid: np.ndarray, notes: list[str],
                    reasons: dict[str, int], warnings: list[str] | None = None) -> np.ndarray:
    """Restrict ``valid`` (bool, any shape with the reference's voxel count; changed in place) to the user's mask.

    The mask is put on the reference grid with nearest-neighbour interpolation (stated in ``notes`` and, when given,
    ``warnings``: a mask drawn on another series is worth a look). ``reasons['outside_mask']`` counts the voxels
    that were valid until the mask removed them, so every masked voxel is counted under exactly one reason.
    Every map (ADC, fat, enhancement, PDFF) masks through here. Returns ``valid``.
    """
    if mask is None:
        return valid
    m, _, note = match_to_reference(reference, mask, "mask", label=True)
    if note:
        notes.append(note)
        if warnings is not None:
            warnings.append(note)
    user = sitk.GetArrayViewFromImage(m).reshape(valid.shape) != 0
    reasons["outside_mask"] = int(np.count_nonzero(valid & ~user))
    valid &= user
    return valid


def usable_pair(reference: sitk.Image, a: np.ndarray, b: np.ndarray, cover: np.ndarray | None,
                mask: sitk.Image | None, notes: list[str], warnings: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Where a two-image map (fat, enhancement) can use a voxel: ``a`` on ``reference``'s grid and ``b`` put on it
    (``cover``: where ``b`` had data, None when it was on the grid already) both finite, covered, and in the user's
    mask (:func:`apply_user_mask`); with the unusable voxels counted per reason. Then the non-finite voxels of ``a``
    and ``b`` are set to 0, in place (arrays of our own wherever any voxel is non-finite)."""
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    finite = finite_a & finite_b
    usable = finite.copy() if cover is None else finite & cover
    reasons = {"non_finite_input": int(np.count_nonzero(~finite)),
               "outside_input_grid": 0 if cover is None else int(np.count_nonzero(finite & ~cover))}
    apply_user_mask(reference, mask, usable, notes, reasons, warnings)
    zero_non_finite(a, finite_a)
    zero_non_finite(b, finite_b)
    return usable, reasons
