"""A second series checks the liver mask: tissue one series cannot tell from liver, another one can.

The mask is grown on one series by its signal alone. A neighbour of the same signal on that series, broadly
attached to the liver (no thin bridge the opening could cut), joins it: in a steatotic liver the portal venous
signal falls to that of the body-wall muscle, and a drawn study with 28 % liver fat took in the muscle along the
whole right lobe (Dice 0.91). The co-registered series of the study image other contrast mechanisms (hepatocyte
uptake in the hepatobiliary phase, T2), on which that neighbour differs from liver. Each of them is read against
the liver inside the mask itself (a local median, so that a coil's bias does not matter), and thick pieces of
the mask that are not liver there are taken out:

1. the other series is sampled on the mask's grid, shifted by the whole-voxel cranio-caudal translation under
   which the mask's interior is clearly most uniform on it (series of one study are acquired in separate
   breath-holds, and the liver moves by several mm between them, mostly along the body's axis: unshifted, the
   dome would read as lung);
2. a voxel of the mask is "not liver" there when it lies beyond ``sigmas`` robust SDs of the liver's local
   median; only such voxels deeper inside the mask than ``depth_voxels`` of the other series' voxels, with the
   partial-volume band next to them, are removed (the mask's edge is partial volume on a series with larger
   voxels, and an edge is no leak);
3. the largest piece left is kept, its vessels and lesions filled back as in the mask itself (closing and
   slice-wise hole filling), never beyond the first mask; a change of less than ``min_removed_ml`` is ignored.

All of it runs on the liver's working grid (~3 mm); only what is taken out is mapped back to the series grid.

Vessels and lesions differ from liver on every series; inside the liver they are filled back, so only tissue
outside the organ's outline goes. Parameters: ``confirmation`` in ``liver_segmentation.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from .liver import fill_holes_2d, morph, parameters, working_image
from .lps import voxel_extent_mm


def _settings() -> dict:
    return parameters()["confirmation"]


def confirming_roles(images: Mapping[str, sitk.Image], used: str) -> list[str]:
    """The other 3-D series to check the mask on, in the order of ``confirmation.roles``."""
    out: list[str] = []
    for role in _settings()["roles"]:
        for key, img in images.items():
            if key == used or key in out or not (key == role or key.startswith(role + "_")):
                continue
            if img.GetDimension() == 3 and img.GetNumberOfComponentsPerPixel() == 1 and img.GetSize()[2] >= 3:
                out.append(key)
    return out[: int(_settings()["max_series"])]


def _padded_reference(ref: sitk.Image, pad: Sequence[int]) -> sitk.Image:
    """``ref``'s grid grown by ``pad`` voxels (x, y, z) on each side."""
    out = sitk.Image([n + 2 * p for n, p in zip(ref.GetSize(), pad, strict=True)], sitk.sitkFloat32)
    out.SetSpacing(ref.GetSpacing())
    out.SetDirection(ref.GetDirection())
    out.SetOrigin(ref.TransformContinuousIndexToPhysicalPoint([-float(p) for p in pad]))
    return out


def _voxel_extent_along_axes(ref: sitk.Image, other: sitk.Image) -> np.ndarray:
    """The other series' voxel extent (mm) along each axis of ``ref`` (z, y, x): its voxel projected on them."""
    return np.maximum(voxel_extent_mm(ref, other), np.asarray(ref.GetSpacing())[::-1])


def _spread(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    return med, 1.4826 * float(np.median(np.abs(values - med)))


def _best_shift(vol: np.ndarray, sample: tuple[np.ndarray, ...], pad: np.ndarray, spacing_zyx: np.ndarray,
                min_gain: float, sigmas: float) -> tuple[int, int, int]:
    """The whole-voxel shift (z, y, x) within ``pad`` under which the fewest sampled interior voxels read unlike
    the liver: beyond ``sigmas`` times the smallest robust SD any shift gives (the liver's own spread, seen when
    it is aligned) from the median. A misaligned dome reads lung; a robust spread alone would not see it, and
    each shift's own spread grows with the misalignment. No shift unless one leaves at most ``min_gain`` of the
    unshifted count: the series are co-registered unless the images show otherwise."""
    cands = [(z, y, x) for z in range(-int(pad[0]), int(pad[0]) + 1) for y in range(-int(pad[1]), int(pad[1]) + 1)
             for x in range(-int(pad[2]), int(pad[2]) + 1)]
    cands.sort(key=lambda c: sum(abs(v) * s for v, s in zip(c, spacing_zyx, strict=True)))
    values = [vol[sample[0] + pad[0] + c[0], sample[1] + pad[1] + c[1], sample[2] + pad[2] + c[2]] for c in cands]
    spreads = [_spread(v) for v in values]
    sd = max(min(s for _, s in spreads), 1e-6 * max(abs(m) for m, _ in spreads))
    scores = [float(np.mean(np.abs(v - m) > sigmas * sd)) for v, (m, _) in zip(values, spreads, strict=True)]
    best = int(np.argmin(scores))
    return cands[best] if scores[best] <= min_gain * scores[0] else (0, 0, 0)


def _not_liver(values: np.ndarray, mask: np.ndarray, interior: np.ndarray, spacing_zyx: np.ndarray,
               cfg: dict) -> np.ndarray:
    """Voxels of ``mask`` beyond ``sigmas`` robust SDs of the liver's local median on ``values``; the local
    median is a Gaussian-weighted mean of the interior, re-taken without the voxels flagged the first time."""
    sig = [float(cfg["local_sigma_mm"]) / s for s in spacing_zyx]
    ref = interior.copy()
    flagged = np.zeros_like(mask)
    for _ in range(2):
        w = ndi.gaussian_filter(ref.astype(np.float32), sig, mode="nearest")
        local = ndi.gaussian_filter(np.where(ref, values, 0.0).astype(np.float32), sig, mode="nearest")
        local = local / np.maximum(w, 1e-3)
        resid = values - local
        _, sd = _spread(resid[ref])
        flagged = mask & (np.abs(resid) > float(cfg["sigmas"]) * max(sd, 1e-6)) & (w > 1e-3)
        ref = interior & ~flagged
        if ref.sum() < 100:
            break
    return flagged


def _check_on(mask: np.ndarray, ref: sitk.Image, other: sitk.Image, cfg: dict) -> tuple[np.ndarray, tuple]:
    """Voxels of ``mask`` (on ``ref``'s grid, patient axis order) that ``other`` shows are not liver, and the
    shift (mm, z y x) found between the two series."""
    spacing = np.asarray(ref.GetSpacing())[::-1]
    pad = np.ceil(np.asarray(cfg["max_shift_mm"], float) / spacing).astype(int)
    big = _padded_reference(ref, pad[::-1].tolist())
    vol = sitk.GetArrayFromImage(sitk.Resample(sitk.Cast(other, sitk.sitkFloat32), big, sitk.Transform(),
                                               sitk.sitkLinear, np.nan, sitk.sitkFloat32))
    interior = morph("erode", mask, float(cfg["interior_mm"]), spacing)
    idx = np.nonzero(interior)
    step = max(1, idx[0].size // int(cfg["shift_sample_voxels"]))
    sample = tuple(a[::step] for a in idx)
    if sample[0].size < 100:
        return np.zeros_like(mask), (0.0, 0.0, 0.0)
    covered = np.isfinite(vol)
    vol = np.where(covered, vol, 0.0)
    shift = _best_shift(vol, sample, pad, spacing, float(cfg["shift_min_gain"]), float(cfg["sigmas"]))
    sl = tuple(slice(p + s, p + s + n) for p, s, n in zip(pad, shift, mask.shape, strict=True))
    values, seen = vol[sl], covered[sl]
    flagged = _not_liver(values, mask & seen, interior & seen, spacing, cfg)
    extent = _voxel_extent_along_axes(ref, other)
    depth = ndi.distance_transform_edt(np.pad(mask, 1), sampling=spacing / extent)[1:-1, 1:-1, 1:-1]
    deep = flagged & (depth > float(cfg["depth_voxels"]))
    # the partial-volume band of a removed piece: within one voxel of the other series of its deep part
    band = ndi.distance_transform_edt(~deep, sampling=spacing / extent) <= 1.0 if deep.any() else deep
    return flagged & band, tuple(float(s * d) for s, d in zip(shift, spacing, strict=True))


def confirm_liver(mask: sitk.Image, images: Mapping[str, sitk.Image], used: str,
                  notes: list[str]) -> sitk.Image:
    """``mask`` (on the ``used`` series' grid) without the thick pieces the other series show are not liver."""
    cfg = _settings()
    if not cfg.get("enabled", True):
        return mask
    roles = confirming_roles(images, used)
    if not roles:
        return mask
    # on the working grid (~3 mm, patient axis order): the check is about pieces many mm thick, and the filters
    # over 25 mm cost ~10x more on a 1.5 mm series grid
    ref = working_image(mask)
    arr = sitk.GetArrayFromImage(ref) >= 0.5
    spacing = np.asarray(ref.GetSpacing())[::-1]
    removed = np.zeros_like(arr)
    said = []
    for role in roles:
        out, shift = _check_on(arr, ref, images[role], cfg)
        removed |= out
        said.append(f"{role} (shift {', '.join(f'{v:+.0f}' for v in shift[::-1])} mm x, y, z)")
    kept = arr & ~removed
    lab, n = ndi.label(kept)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        kept = lab == int(np.argmax(sizes))
    closed = fill_holes_2d(morph("close", kept, float(parameters()["vessel_closing_mm"]["value"]), spacing))
    drop = arr & ~closed
    voxel_ml = float(np.prod(spacing)) / 1000.0
    taken = float(drop.sum()) * voxel_ml
    if taken < float(cfg["min_removed_ml"]):
        notes.append(f"checked on {', '.join(said)}: nothing to take out")
        return mask
    notes.append(f"checked on {', '.join(said)}: {taken:.0f} mL that those series show is not liver taken out of "
                 f"the {arr.sum() * voxel_ml:.0f} mL grown")
    img = sitk.GetImageFromArray(drop.astype(np.uint8))
    img.CopyInformation(ref)
    drop_fine = sitk.Resample(img, mask, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.Cast(sitk.And(sitk.Cast(mask, sitk.sitkUInt8), sitk.Not(drop_fine) & 1), sitk.sitkUInt8)
