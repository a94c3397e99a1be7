"""The series a lesion is outlined on, as channels on one reference grid, cropped around a click.

Each channel is one image of the study (the HBP, the portal venous phase, the highest-b DWI, the ADC...), or
the fat signal (the Dixon fat image, else in phase minus opposed phase, which is twice the fat signal): the
only channel on which focal fat, hypersteatosis and fat sparing differ from the liver by what they are. A
signal, not a fat fraction: a signal mixes linearly at a partial-volume edge (the classifier's model), a ratio
does not (a 50/50 voxel's fraction is not half-way), and on the phantom the fraction shrank metastases in a
fatty liver.
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
class Derived:
    """A channel computed from one or two images on the crop: ``formula`` names it (see :func:`derive`)."""

    formula: str
    images: tuple[sitk.Image, ...]


@dataclass
class LesionImages:
    """Named channels (any grid each) and the reference grid masks are drawn on; ``roles``: channel -> role
    (a derived channel: its two roles joined by '/'); ``derived``: channels computed from a pair per click."""

    reference: sitk.Image
    channels: dict[str, sitk.Image]
    roles: dict[str, str] = field(default_factory=dict)
    derived: dict[str, Derived] = field(default_factory=dict)


def derive(formula: str, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``fat_image``: the one image as it is; ``in_minus_opposed``: in phase minus opposed phase (2 x the fat
    signal in the two-point model, brief section 5)."""
    if formula == "fat_image" and len(arrays) == 1:
        return arrays[0]
    if formula == "in_minus_opposed" and len(arrays) == 2:
        return arrays[0] - arrays[1]
    raise LiverMetsError(f"derived channel formula '{formula}' with {len(arrays)} image(s) in {PARAMS_FILE} is "
                         "unknown; use fat_image (one role) or in_minus_opposed (in phase, opposed phase)")


def _derived_channels(spec: dict, by_role: dict[str, Series], wanted: set[str]) -> tuple[dict, dict]:
    """The first derivable entry per name whose roles are all present and wanted."""
    derived: dict[str, Derived] = {}
    roles: dict[str, str] = {}
    for d in spec.get("derived", []):
        if d["name"] in derived or not all(r in by_role and r in wanted for r in d["roles"]):
            continue
        derived[d["name"]] = Derived(d["formula"], tuple(by_role[r].image for r in d["roles"]))
        roles[d["name"]] = "/".join(d["roles"])
    return derived, roles


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
    known = [c["role"] for c in spec["order"]] + [r for d in spec.get("derived", []) for r in d["roles"]]
    known = list(dict.fromkeys(known))
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
    derived, derived_roles = _derived_channels(spec, by_role, wanted)
    if not chans:
        raise LiverMetsError("the study has none of the series used to outline lesions (HBP, portal venous, "
                             "arterial, T2, DWI, ADC...); load a liver MRI study")
    ref_role = next(r for r in spec["reference_preference"] if r in used.values())
    reference = chans[next(n for n, r in used.items() if r == ref_role)]
    for name, img in chans.items():
        if img.GetDimension() != 3:
            raise GeometryError(f"the {name} image is {img.GetDimension()}-D; lesions need 3-D series")
        check_compatible(reference, img, f"{name} series")
    for name, d in derived.items():
        for img in d.images:
            check_compatible(reference, img, f"{name} series")
    return LesionImages(reference=reference, channels=chans, roles={**used, **derived_roles}, derived=derived)


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
    names = list(images.channels) + list(images.derived)
    data = np.empty((len(names), hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]), np.float32)
    voxel_ml = []
    for c, name in enumerate(names):
        if name in images.derived:
            d = images.derived[name]
            data[c] = derive(d.formula, [sitk.GetArrayFromImage(resample_to(grid, img)) for img in d.images])
            voxel_ml.append(max(float(np.prod(img.GetSpacing())) for img in d.images))
            continue
        resampled = resample_to(grid, images.channels[name])  # keep a reference: a view dies with its image
        data[c] = sitk.GetArrayViewFromImage(resampled)
        voxel_ml.append(float(np.prod(images.channels[name].GetSpacing())))
    local = (idx[2] - lo[2], idx[1] - lo[1], idx[0] - lo[0])
    ref_vol = float(np.prod(ref.GetSpacing()))
    sharp = np.array([min(1.0, ref_vol / v) for v in voxel_ml])
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
