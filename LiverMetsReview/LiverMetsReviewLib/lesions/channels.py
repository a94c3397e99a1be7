"""The series a lesion is outlined on, as channels on one reference grid, cropped around a click.

Each channel is one image of the study (the HBP, the portal venous phase, the highest-b DWI, the ADC...).
They keep their own grids until a click: then only a box around the seed is resampled (linear) onto the
reference grid, which keeps a click fast whatever the study's size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, LiverMetsError
from ..maps.resample import check_compatible, resample_to
from ..resources import load_json
from ..series import Series

PARAMS_FILE = "lesion_segmentation.json"


def params(section: str) -> dict:
    """One section of ``lesion_segmentation.json``."""
    return load_json(PARAMS_FILE)[section]


@dataclass
class LesionImages:
    """Named channels (any grid each) and the reference grid masks are drawn on; ``roles``: channel -> role."""

    reference: sitk.Image
    channels: dict[str, sitk.Image]
    roles: dict[str, str] = field(default_factory=dict)


def _channel_image(series: Series, spec: dict) -> sitk.Image:
    if spec.get("stack") == "highest_b" and series.b_values and len(series.b_values) == len(series.stacks):
        return series.stacks[int(np.argmax(series.b_values))]
    return series.image


def lesion_channels(series: Sequence[Series], roles: Sequence[str] | None = None) -> LesionImages:
    """The study's series usable for lesion segmentation (``roles`` restricts them; default: all present)."""
    spec = params("channels")
    by_role: dict[str, Series] = {}
    for s in series:
        by_role.setdefault(s.role, s)
    known = [c["role"] for c in spec["order"]]
    if roles:
        unknown = [r for r in roles if r not in known]
        if unknown:
            raise LiverMetsError(f"series role(s) {', '.join(unknown)} cannot be used for lesions; "
                                 f"choose among {', '.join(known)}")
        missing = [r for r in roles if r not in by_role]
        if missing:
            raise LiverMetsError(f"the study has no {', '.join(missing)} series; roles present: "
                                 f"{', '.join(sorted(by_role))}")
    wanted = set(roles) if roles else set(known)
    chans = {c["name"]: _channel_image(by_role[c["role"]], c) for c in spec["order"]
             if c["role"] in wanted and c["role"] in by_role}
    used = {c["name"]: c["role"] for c in spec["order"] if c["name"] in chans}
    if not chans:
        raise LiverMetsError("the study has none of the series used to outline lesions (HBP, portal venous, "
                             "arterial, T2, DWI, ADC...); load a liver MRI study")
    ref_role = next(r for r in spec["reference_preference"] if r in used.values())
    reference = chans[next(n for n, r in used.items() if r == ref_role)]
    for name, img in chans.items():
        if img.GetDimension() != 3:
            raise GeometryError(f"the {name} image is {img.GetDimension()}-D; lesions need 3-D series")
        check_compatible(reference, img, f"{name} series")
    return LesionImages(reference=reference, channels=chans, roles=used)


@dataclass
class Crop:
    """A box of the reference grid around a seed: its image (geometry only), index offset and channel data."""

    grid: sitk.Image
    start: tuple[int, int, int]            # (i, j, k) of the box's first voxel in the reference grid
    data: np.ndarray                        # float32 (channels, z, y, x)
    names: list[str]
    seed_index: tuple[int, int, int]       # (z, y, x) inside the box
    spacing_zyx: np.ndarray
    sharpness: np.ndarray | None = None     # per channel: reference voxel volume / channel voxel volume (<= 1)


def seed_index(reference: sitk.Image, seed_lps: Sequence[float]) -> tuple[int, int, int]:
    """(i, j, k) of the reference voxel holding the seed; a seed outside the image is refused."""
    if len(seed_lps) != 3 or not all(math.isfinite(float(v)) for v in seed_lps):
        raise LiverMetsError(f"seed {list(seed_lps)} is not a point; give three finite LPS coordinates in mm")
    idx = reference.TransformPhysicalPointToIndex([float(v) for v in seed_lps])
    size = reference.GetSize()
    if any(i < 0 or i >= n for i, n in zip(idx, size, strict=True)):
        raise LiverMetsError(f"seed ({', '.join(f'{float(v):.1f}' for v in seed_lps)}) mm LPS lies outside the "
                             "image; click inside the study's field of view")
    return tuple(int(v) for v in idx)


def crop_around(images: LesionImages, seed_lps: Sequence[float], radius_mm: float) -> Crop:
    """Resample every channel onto the reference grid inside a box of ``radius_mm`` around the seed."""
    ref = images.reference
    idx = seed_index(ref, seed_lps)
    size = ref.GetSize()
    half = [int(math.ceil(radius_mm / s)) for s in ref.GetSpacing()]
    lo = [max(0, i - h) for i, h in zip(idx, half, strict=True)]
    hi = [min(n, i + h + 1) for i, h, n in zip(idx, half, size, strict=True)]
    grid = sitk.RegionOfInterest(ref, [b - a for a, b in zip(lo, hi, strict=True)], lo)
    names = list(images.channels)
    data = np.empty((len(names), hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]), np.float32)
    for c, name in enumerate(names):
        resampled = resample_to(grid, images.channels[name])  # keep a reference: a view dies with its image
        data[c] = sitk.GetArrayViewFromImage(resampled)
    local = (idx[2] - lo[2], idx[1] - lo[1], idx[0] - lo[0])
    ref_vol = float(np.prod(ref.GetSpacing()))
    sharp = np.array([min(1.0, ref_vol / float(np.prod(images.channels[n].GetSpacing()))) for n in names])
    return Crop(grid, tuple(lo), data, names, local, np.array(ref.GetSpacing()[::-1], float), sharp)


def label_on_crop(crop: Crop, labels: sitk.Image, what: str) -> np.ndarray:
    """A label image (any grid overlapping the study) on the crop's grid, nearest neighbour, as bool."""
    check_compatible(crop.grid, labels, what)
    return sitk.GetArrayFromImage(resample_to(crop.grid, labels, label=True)) != 0


def distance_from(crop: Crop, point_zyx: Sequence[float]) -> np.ndarray:
    """Physical distance (mm) of every crop voxel from a voxel position (z, y, x) of the crop."""
    nz, ny, nx = crop.data.shape[1:]
    sz, sy, sx = crop.spacing_zyx
    z = (np.arange(nz) - point_zyx[0]) * sz
    y = (np.arange(ny) - point_zyx[1]) * sy
    x = (np.arange(nx) - point_zyx[2]) * sx
    return np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
