"""One lesion at a time, as an interactive reading needs it: a click -> a segment, a drawn mask -> its measures.

``review_lesions`` handles a whole list of seeds (the CLI); a viewer adds lesions one by one and lets the reader
correct a segment by hand. Here: ``segment_one`` (a seed, the other lesions excluded), ``measure_one`` (any
mask on the reference grid: segmented or drawn, measured the same way), ``key_measures`` (the few numbers a
lesion table shows) and ``mask_digest`` (tells an edited segment from an unchanged one). Pure Python, LPS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError
from .channels import LesionImages, lesion_channels
from .couinaud import ROMAN
from .measure import LesionMeasures, StudyContext, measure_lesion, prepare_images, study_images
from .segment import LesionSegmentation, segment_lesion


def mask_image(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A bool/int (z, y, x) array on ``reference``'s grid as a uint8 image with that geometry."""
    if tuple(mask.shape) != tuple(reference.GetSize()[::-1]):
        raise GeometryError(f"the mask has shape {tuple(mask.shape)} but the reference grid is "
                            f"{tuple(reference.GetSize()[::-1])} (z, y, x); draw the segment on the reference series")
    img = sitk.GetImageFromArray(np.asarray(mask).astype(np.uint8))
    img.CopyInformation(reference)
    return img


def segment_one(series: Sequence[Any], seed_lps: Sequence[float], *, roles: Sequence[str] | None = None,
                liver_mask: sitk.Image | None = None, others: np.ndarray | None = None,
                **options: Any) -> tuple[LesionImages, LesionSegmentation]:
    """The lesion under one click; ``others`` (bool z, y, x on the reference grid): voxels of lesions already
    outlined, never taken by this one."""
    images = lesion_channels(series, roles)
    exclude = mask_image(others, images.reference) if others is not None and np.any(others) else None
    return images, segment_lesion(images, seed_lps, liver_mask=liver_mask, exclude=exclude, **options)


def measure_one(series: Sequence[Any], mask: np.ndarray, reference: sitk.Image, lesion_id: str, *,
                liver: np.ndarray | None = None, couinaud: sitk.Image | None = None,
                others: np.ndarray | None = None, maps: Any = None, rim_mm: float | None = None) -> LesionMeasures:
    """Every measurement of one lesion mask (bool z, y, x on ``reference``: segmented or drawn by the reader).

    ``liver``: the liver mask on the same grid (background reference, capsule distance); ``others``: the other
    lesions (kept out of the background reference); ``couinaud``: a label image (any grid of the study)."""
    mask = np.asarray(mask, bool)
    mask_image(mask, reference)  # the geometry check, with its message
    couinaud_arr = None
    if couinaud is not None:
        from ..maps.resample import check_compatible, resample_to

        check_compatible(reference, couinaud, "Couinaud label image")
        couinaud_arr = sitk.GetArrayFromImage(resample_to(reference, couinaud, label=True))
    union = mask | (np.asarray(others, bool) if others is not None else False)
    ctx = StudyContext(reference, prepare_images(reference, study_images(series, maps)),
                       liver=None if liver is None else np.asarray(liver, bool), couinaud=couinaud_arr, lesions=union)
    return measure_lesion(ctx, mask, lesion_id, lesion_id, rim_mm=rim_mm)


def _value(m: LesionMeasures, key: str, image: str = "", region: str = "", statistic: str = "") -> float | None:
    try:
        return m.value(key, image, region, statistic)
    except KeyError:
        return None


def key_measures(m: LesionMeasures) -> dict[str, Any]:
    """What a lesion table shows (mm, mL, 10^-6 mm^2/s), plus the geometry the markups need (LPS)."""
    seg = m.couinaud_segment
    return {"long_axis_mm": _value(m, "long_axis"), "short_axis_mm": _value(m, "short_axis"),
            "volume_ml": _value(m, "volume"), "adc_median": _value(m, "adc", "adc", "lesion", "median"),
            "couinaud_segment": ROMAN.get(seg) if seg else None, "couinaud_border": m.couinaud_border,
            "centroid_lps": m.centroid_lps,
            "long_axis_lps": m.long_axis_lps, "short_axis_lps": m.short_axis_lps}


def mask_digest(mask: np.ndarray) -> str:
    """A short fingerprint of a mask (shape, voxels): equal digests mean the segment was not edited."""
    arr = np.ascontiguousarray(np.asarray(mask) != 0)
    h = hashlib.sha1(str(arr.shape).encode())
    h.update(np.packbits(arr).tobytes())
    return h.hexdigest()[:16]
