"""One click -> a 3-D lesion segment, from every co-registered series at once.

Method (a multi-channel classifier with connectivity and a shape prior; every threshold in
``lesion_segmentation.json``):

1. The channels (HBP, portal venous, arterial, T2, high-b DWI, ADC... whatever the study has) are resampled
   onto the reference grid in a box around the seed and lightly smoothed.
2. **Liver model**: a robust, trimmed and re-centred estimate of the liver's per-channel centre and spread
   from voxels around the seed (inside the liver mask when one is given). Every voxel becomes a vector of
   z-scores against it; its squared length is a chi-square(k) distance to the liver.
3. **Detection**: voxels beyond the chi-square detection quantile, connected to the seed's core ball,
   opened (cuts one-voxel bridges) and kept within the max radius: a first, conservative lesion.
4. **Lesion prototypes**: up to three clusters of that region (rim, core, nodule: a heterogeneous lesion is
   not one Gaussian) with k-means.
5. **Classification**: a voxel is lesion when it is nearer (in the liver's metric) to a prototype than to
   the liver -- the half-way point, which is where a partial-volume edge lies -- and not an outlier to
   every prototype (vessels, fat, another organ). A vessel running through the lesion is its other neighbour:
   its blood is a class too, and lesion/blood mixtures are split at the half-way point like lesion/liver ones
   (mixture.py, vessels.py). Connectivity to the seed, opening + reconstruction, the max radius and hole
   filling give the final segment.

A region that keeps growing to the max radius is a leak (seed in a vessel, outside the liver): refused
with a reason rather than returned. A subtle lesion on one series still separates from the liver on the
others because the distance adds every channel's evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.special import gammaincinv

from ..errors import LiverMetsError
from .channels import Crop, LesionImages, crop_around, distance_from, label_on_crop, params
from .mixture import MIN_CLASS_SAMPLES, TissueClass, classify, fit_class
from .small_lesion import fit_ball
from .vessels import blood_like, core_without_vessels, find_vessels, unlike_seed


def chi2_quantile(p: float, k: int) -> float:
    """Quantile of the chi-square distribution with k degrees of freedom."""
    return float(2.0 * gammaincinv(k / 2.0, p))


@dataclass
class LesionSegmentation:
    """A lesion's mask on the reference grid (kept as a crop) and how it was obtained."""

    reference: sitk.Image
    crop_start: tuple[int, int, int]         # (i, j, k) of the crop in the reference grid
    mask: np.ndarray                          # bool (z, y, x) on the crop
    seed_lps: tuple[float, float, float]
    info: dict[str, Any] = field(default_factory=dict)

    def full_mask(self) -> np.ndarray:
        """The mask on the whole reference grid (z, y, x)."""
        nx, ny, nz = self.reference.GetSize()
        out = np.zeros((nz, ny, nx), bool)
        i, j, k = self.crop_start
        dz, dy, dx = self.mask.shape
        out[k:k + dz, j:j + dy, i:i + dx] = self.mask
        return out

    def mask_image(self) -> sitk.Image:
        img = sitk.GetImageFromArray(self.full_mask().astype(np.uint8))
        img.CopyInformation(self.reference)
        return img


@dataclass
class _Options:
    max_radius_mm: float
    core_radius_mm: float
    smoothing_mm: float
    liver_sample_margin_mm: float
    liver_trim_iterations: int
    detect_probability: float
    outlier_probability: float
    prototypes: int
    opening_mm: float
    min_seed_contrast_probability: float
    leak_fraction: float
    first_radius_mm: float
    liver_sample_max_voxels: int
    overshoot: float
    enclosure_fraction: float
    liver_envelope_closing_mm: float
    small_fit_subsamples: int
    vessel_channel: str
    pre_contrast_channel: str
    flow_channel: str
    pure_fraction: float

    @classmethod
    def from_data(cls, **override: Any) -> _Options:
        p = params("segmentation")
        kw = {k: p[k] for k in cls.__dataclass_fields__}
        kw.update({k: v for k, v in override.items() if v is not None})
        if not 3.0 <= float(kw["max_radius_mm"]) <= 150.0:
            raise LiverMetsError(f"max radius {kw['max_radius_mm']} mm is outside 3-150 mm; give a lesion radius")
        return cls(**kw)


def _smooth(crop: Crop, sigma_mm: float) -> np.ndarray:
    sig = [0.0] + [sigma_mm / s for s in crop.spacing_zyx]
    return ndi.gaussian_filter(crop.data, sig, mode="nearest") if sigma_mm > 0 else crop.data


def noise_floor(data: np.ndarray) -> np.ndarray:
    """Per-channel noise SD from neighbour differences (robust to edges): no tissue is more uniform than that."""
    d = np.diff(data, axis=-1).reshape(data.shape[0], -1)
    sd = 1.4826 * np.median(np.abs(d - np.median(d, axis=1)[:, None]), axis=1) / np.sqrt(2.0)
    scale = np.median(np.abs(data.reshape(data.shape[0], -1)), axis=1)
    return np.maximum(sd, 1e-3 * np.maximum(scale, 1.0))


def _robust_centre(x: np.ndarray, iterations: int, keep_p: float,
                   floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed, re-centred per-channel median/MAD of samples x (k, n): the dominant tissue's centre, spread."""
    k = x.shape[0]
    mu = np.median(x, axis=1)
    s = 1.4826 * np.median(np.abs(x - mu[:, None]), axis=1)
    cut = chi2_quantile(keep_p, k)
    for it in range(iterations):
        s = np.maximum(s, floor)
        d2 = (((x - mu[:, None]) / s[:, None]) ** 2).sum(axis=0)
        keep = d2 <= (np.quantile(d2, 0.5) if it < iterations // 2 else cut)
        if keep.sum() < max(10, 2 * k):
            break
        xs = x[:, keep]
        mu = np.median(xs, axis=1)
        # MAD of a sample trimmed at the chi-square quantile underestimates the spread; the std does less.
        s = xs.std(axis=1) if it >= iterations // 2 else 1.4826 * np.median(np.abs(xs - mu[:, None]), axis=1)
    return mu, np.maximum(s, floor)


def _component_at(mask: np.ndarray, core: np.ndarray) -> np.ndarray:
    """The connected component(s) of ``mask`` touching the seed's core ball (6-connectivity)."""
    lab, n = ndi.label(mask)
    hit = np.unique(lab[core & mask])
    hit = hit[hit > 0]
    return np.isin(lab, hit) if hit.size else np.zeros_like(mask)


def _ball(radius_mm: float, spacing_zyx: np.ndarray) -> np.ndarray:
    r = [max(1, int(np.floor(radius_mm / s + 1e-6))) for s in spacing_zyx]
    z, y, x = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    return (z * spacing_zyx[0]) ** 2 + (y * spacing_zyx[1]) ** 2 + (x * spacing_zyx[2]) ** 2 <= radius_mm ** 2 + 1e-6


def _open_keep(mask: np.ndarray, core: np.ndarray, crop: Crop, opening_mm: float) -> np.ndarray:
    """Open, keep the seed's component, then rebuild the outline inside ``mask`` (geodesic reconstruction)."""
    if opening_mm <= 0 or not mask.any():
        return _component_at(mask, core)
    ball = _ball(opening_mm, crop.spacing_zyx)
    opened = ndi.binary_opening(mask, structure=ball)
    kept = _component_at(opened, core)
    if not kept.any():  # a lesion thinner than the opening: keep the unopened one
        return _component_at(mask, core)
    # Reconstruction limited to the opening's reach: what the opening shaved off the lesion, not a bridge. The
    # reach is at least one voxel along every axis: with slices thicker than the opening the ball is flat, and a
    # flat reconstruction never gave back the top and bottom slices of a small lesion that the opening removed
    # (a 6 mm metastasis kept 8 of its 18 voxels).
    grown = ndi.binary_dilation(kept, structure=_reach(ball), iterations=2, mask=mask)
    return _component_at(grown, core)


def _reach(ball: np.ndarray) -> np.ndarray:
    """``ball`` joined with the six face neighbours of its centre (a structure reaching every axis)."""
    pad = [(max(0, 1 - n // 2),) * 2 for n in ball.shape]
    out = np.pad(ball, pad)
    c = tuple(n // 2 for n in out.shape)
    for ax in range(3):
        for d in (-1, 1):
            idx = list(c)
            idx[ax] += d
            out[tuple(idx)] = True
    return out


def _refit(z: np.ndarray, region: np.ndarray, protos: list[TissueClass], sharp: np.ndarray | None = None,
           pure_fraction: float = 0.75, explained=None,
           enclosure: float = 0.2, spacing_zyx: np.ndarray | None = None) -> list[TissueClass]:
    """Re-estimate the seed's compartment from the region's interior (one voxel in: no partial volume with liver).

    Only the seed's compartment: a compartment found later was fitted on the voxels round the region that no
    mixture explained (a rim, a nodule at the margin), which lie on the region's edge. Its voxels in the
    interior are the partial volume between it and the core (a 1.7 mm granulation rim round an ablation zone
    has no voxel of its own inside), and refitting on them turned the rim into a second core and dropped it.
    A small solid lesion (1-9 interior voxels, :func:`_solid`, enclosed by liver: :func:`_enclosed_by_liver`) is
    re-estimated from its whole voxels instead (:func:`_refit_from_whole`); a region with no interior (a lesion at
    most two voxels thick), a thin one (a rim) or a first piece of a larger lesion keeps the seed's estimate.
    A larger region enclosed by liver takes its level on series coarser than the reference from its whole voxels
    next to the edge (:func:`_edge_level`); a first piece of a larger lesion has no lesion edge there.
    """
    inner = ndi.binary_erosion(region)
    n_inner = int(inner.sum())
    if n_inner == 0:
        return protos
    if n_inner < 10:
        liver_like = explained(protos) if explained else None
        if not _solid(region, inner, spacing_zyx) or not _enclosed_by_liver(region, liver_like, enclosure):
            return protos
        return _refit_from_whole(z, region, protos, sharp, pure_fraction)
    zv = z[:, inner]
    owner = np.argmin([p.d2(zv) for p in protos], axis=0)
    first = fit_class(zv[:, owner == 0], protos[0].mu)
    if _enclosed_by_liver(region, explained([first] + protos[1:]) if explained else None, enclosure):
        first = _edge_level(z, region & ~inner, protos, first, sharp, pure_fraction)
    return [first] + protos[1:]


def _edge_level(z: np.ndarray, outline: np.ndarray, protos: list[TissueClass], centre: TissueClass,
                sharp: np.ndarray | None, pure_fraction: float) -> TissueClass:
    """The seed's compartment as the voxels next to the region's edge see it on a series coarser than the reference.

    The interior's median is the lesion's centre. A series with voxels larger than the reference's (6 mm T2,
    3 x 3 x 6 mm DWI) averages each reference voxel with the tissue beyond it, so it reads the whole contrast only
    deep in the lesion; near the edge it reads 5-20 % less, and a voxel the lesion covers half then came out with a
    lesion fraction just under half on those series and was dropped (seed 5719's 12.7 mm metastasis kept 5 of its
    40 half-covered voxels, Dice 0.83). On such a series the compartment is taken from the region's own outline
    voxels (``outline``) that belong to it and are whole on the sharp series (lesion fraction >= ``pure_fraction``):
    that series averages them with the tissue beyond the edge as it does the half-covered ones. On series as sharp
    as the reference the interior's median stays. Needs ``MIN_CLASS_SAMPLES`` such voxels.
    """
    coarse = sharp < 0.999 if sharp is not None else np.zeros(centre.mu.shape, bool)
    if not coarse.any():
        return centre
    zo = z[:, outline]
    zo = zo[:, np.argmin([p.d2(zo) for p in protos], axis=0) == 0]
    zo = zo[:, whole_voxel_fraction(zo, centre.mu, sharp) >= pure_fraction]
    if zo.shape[1] < MIN_CLASS_SAMPLES:
        return centre
    layer = fit_class(zo, centre.mu)
    return TissueClass(np.where(coarse, layer.mu, centre.mu), np.where(coarse, layer.s, centre.s))


def _enclosed_by_liver(region: np.ndarray, liver_like: np.ndarray | None, fraction: float) -> bool:
    """True unless at least ``fraction`` (enclosure_fraction, the share that makes the growth try another
    compartment) of the voxels just outside ``region`` (one voxel, 6-connected) are non-liver tissue that no
    mixture of liver and the region's compartments explains (``liver_like`` marks liver and explained voxels):
    the region is then a first piece of a larger lesion whose other compartments are still to come (the first
    region of a low-contrast ablation zone on 3 x 3 x 6 mm voxels was a blob of 40-50 voxels inside the zone,
    and its whole-voxel estimate took the zone from Dice 0.99 to 0.47)."""
    if liver_like is None:
        return True
    shell = ndi.binary_dilation(region) & ~region
    return int((shell & ~liver_like).sum()) < fraction * int(shell.sum())


def _solid(region: np.ndarray, inner: np.ndarray, spacing_zyx: np.ndarray | None = None) -> bool:
    """True when most of ``region`` (at least half) lies next to its interior: a small solid lesion. A thin rim or
    an irregular piece of a larger lesion has an interior voxel here and there (an ablation zone's first region of
    173 voxels had one) and its voxels next to it are no lesion's whole voxels.

    "Next to" is the 26-neighbourhood measured in the grid's coarsest step (``spacing_zyx``): a box reaching as far
    along every axis as one voxel reaches along the coarsest. The interior is a 6-neighbour erosion, so on 3 mm
    slices of 1.5 mm pixels it needs a slice above and below and an 8-10 mm lesion keeps one to three interior
    voxels; its whole voxels in the same slice then lie two pixels (3 mm, one slice) from them, and counted in
    voxels rather than mm such a lesion read as a thin piece (seed 9724's 10.4 mm FNH-like nodule clicked 30 % off
    its centre: 44 voxels, one interior, 20 within one voxel of it; its seed's estimate stood, Dice 0.83)."""
    reach = np.ones(3, int) if spacing_zyx is None else \
        np.ceil(float(np.max(spacing_zyx)) / np.asarray(spacing_zyx, float) - 1e-6).astype(int)
    near = ndi.binary_dilation(inner, structure=np.ones(tuple(2 * reach + 1), bool)) & region
    return 2 * int(near.sum()) >= int(region.sum())


def whole_voxel_fraction(z: np.ndarray, lesion: np.ndarray, sharp: np.ndarray | None) -> np.ndarray:
    """Each voxel's lesion fraction (z: channels x n, liver at 0) on the channels sampled on the reference grid.

    Partial-volume model per channel: voxel = f x lesion + (1 - f) x liver + noise; the least-squares f over the
    channels (z is in liver SDs, so every channel's noise weighs alike) is the projection onto the lesion's
    direction. A channel with voxels larger than the reference's reads the coverage of its own larger voxel, not
    of this one, so it is left out (all channels are used when none is as sharp as the reference).
    """
    use = (sharp >= 0.999) if sharp is not None else np.ones(lesion.shape, bool)
    d = np.where(use if use.any() else True, lesion, 0.0)
    dd = float(d @ d)
    return (d @ z) / dd if dd > 0 else np.zeros(z.shape[1])


def _refit_from_whole(z: np.ndarray, region: np.ndarray, protos: list[TissueClass], sharp: np.ndarray | None,
                      pure_fraction: float) -> list[TissueClass]:
    """The seed's compartment re-estimated from the region's voxels that are whole lesion.

    An 8-9 mm lesion on 3 mm slices has a few interior voxels, too few to estimate from, so its centre stayed the
    seed's: the core voxels farthest from the liver, i.e. the lesion's centre, where a thick-slice channel (6 mm
    T2, 3 x 3 x 6 mm DWI) reads most of its contrast. The lesion's other whole voxels read less there, so that
    centre lay 11-16 % beyond them on those channels, a half-covered voxel's fraction came out below half, and
    the half-covered edge voxels were dropped (Dice 0.79-0.84). Whole voxels are those whose fraction on the
    sharp channels (:func:`whole_voxel_fraction`) is at least ``pure_fraction`` and that the seed's compartment
    explains best; the median of each channel over them is the value a whole voxel of this lesion has there.
    """
    zv = z[:, region]
    if len(protos) > 1:
        zv = zv[:, np.argmin([p.d2(zv) for p in protos], axis=0) == 0]
    whole = whole_voxel_fraction(zv, protos[0].mu, sharp) >= pure_fraction
    if whole.sum() < MIN_CLASS_SAMPLES:
        return protos
    return [fit_class(zv[:, whole], protos[0].mu)] + protos[1:]


def _grow_compartments(z: np.ndarray, d2_liver: np.ndarray, core_z: np.ndarray, core: np.ndarray,
                       allowed: np.ndarray, edge: np.ndarray, crop: Crop,
                       opts: _Options, final: bool = True,
                       vessels: Sequence[TissueClass] = ()) -> tuple[list[TissueClass], np.ndarray]:
    """Grow the lesion compartment by compartment, from the seed's core outwards (``vessels``: blood classes the
    lesion may border besides the liver, vessels.py).

    A new compartment (a rim around a core, a core inside a rim, a nodule at the margin) is tried when
    voxels that no mixture of the compartments found so far explains make up a good part of the non-liver tissue
    round the region (``enclosure_fraction``; counted among all voxels of that shell, the liver in it hid the rim
    round a small nodule's core; a mixture there has one fraction on the series of the reference grid, so an
    ablation zone's granulation rim is not taken for a recurrence nodule's partial volume), and kept only if the
    region it makes stays inside the radius (a rim or a nodule closes on itself, a vessel or a neighbouring organ
    runs on) and is not smaller than the region without it (a compartment that re-explains the region's own
    voxels as its partial volume, as a recurrence's nodule did for the zone's granulation tissue, adds no tissue).
    After each step the compartments are re-estimated from the region's interior. When the radius is not the last
    one tried (``final`` false), a compartment that reaches it may belong to a lesion larger than the radius (the
    rim of a 45 mm metastasis clicked at its centre reaches 25 mm): :class:`_Leak` sends the click to the larger
    radius rather than dropping the rim.
    """
    k = z.shape[0]
    outlier = chi2_quantile(opts.outlier_probability, k)
    detect = chi2_quantile(opts.detect_probability, k)
    zin = z[:, allowed]
    protos = [TissueClass(core_z, np.ones_like(core_z))]

    def explained(ps: list[TissueClass]) -> np.ndarray:
        """Voxels that are liver or a mixture of liver and the compartments (residual within the outlier bound)."""
        out = d2_liver <= detect
        out[~out] = classify(z[:, ~out], ps, outlier, opts.overshoot, crop.sharpness, vessels)[1] < outlier
        return out


    def grow(ps: list[TissueClass]) -> np.ndarray:
        cand = np.zeros(allowed.shape, bool)
        cand[allowed] = classify(zin, ps, outlier, opts.overshoot, crop.sharpness, vessels)[0]
        return _open_keep(cand, core, crop, opts.opening_mm)

    def refit(ps: list[TissueClass], reg: np.ndarray, keep: tuple) -> tuple[list[TissueClass], np.ndarray]:
        """Re-estimate and regrow; a refit whose region loses the seed's core is no estimate of it: ``keep``."""
        new = _refit(z, reg, ps, crop.sharpness, opts.pure_fraction, explained, opts.enclosure_fraction,
                     crop.spacing_zyx)
        grown = grow(new)
        return (new, grown) if grown.any() else keep

    region = grow(protos)
    for _ in range(2):
        protos, region = refit(protos, region, (protos, region))
    step = _ball(float(crop.spacing_zyx.max()), crop.spacing_zyx)
    for _ in range(opts.prototypes - 1):
        if not region.any():
            break
        shell = ndi.binary_dilation(region, structure=step) & ~region & allowed
        if not shell.any():
            break
        zs = z[:, shell]
        residual = classify(zs, protos, outlier, opts.overshoot, crop.sharpness, vessels, one_fraction=True)[1]
        tissue = d2_liver[shell] > detect
        new = tissue & (residual >= outlier)
        if new.sum() < opts.enclosure_fraction * max(1, int(tissue.sum())):
            break
        trial = protos + [fit_class(zs[:, new], np.median(zs[:, new], axis=1))]
        grown = grow(trial)
        if _leaks(grown, edge, opts.leak_fraction):  # it ran along a vessel or out of the liver: not a compartment
            if not final:
                raise _Leak()
            break
        if grown.sum() < region.sum():  # it re-explains the region's own voxels instead of adding tissue
            break
        protos, region = refit(trial, grown, (trial, grown))
    return protos, region


def _leaks(region: np.ndarray, edge: np.ndarray, fraction: float) -> bool:
    """True when more than ``fraction`` of the region lies on the edge of the radius it was grown in."""
    n = int(region.sum())
    return n > 0 and int((region & edge).sum()) > fraction * n


def _liver_envelope(liver: np.ndarray, crop: Crop, closing_mm: float) -> np.ndarray:
    """The liver mask closed by ``closing_mm`` and hole-filled: the organ including the lesions it leaves out."""
    sp = crop.spacing_zyx
    grown = ndi.distance_transform_edt(~liver, sampling=sp) <= closing_mm
    closed = ~(ndi.distance_transform_edt(grown, sampling=sp) <= closing_mm)
    closed |= liver
    return ndi.binary_fill_holes(closed)


def _seed_checks(crop: Crop, liver: np.ndarray | None, exclude: np.ndarray | None, opts: _Options,
                 seed_lps: Sequence[float]) -> None:
    where = f"seed ({', '.join(f'{float(v):.1f}' for v in seed_lps)}) mm LPS"
    if liver is not None and not _liver_envelope(liver, crop, opts.liver_envelope_closing_mm)[crop.seed_index]:
        raise LiverMetsError(f"{where} lies outside the liver mask; click inside a liver lesion")
    if exclude is not None and exclude[crop.seed_index]:
        raise LiverMetsError(f"{where} lies inside a lesion already segmented; click another lesion or delete "
                             "that one first")


def _liver_model(zs: np.ndarray, sample: np.ndarray, k: int, opts: _Options) -> tuple[np.ndarray, np.ndarray]:
    x = zs.reshape(k, -1)[:, np.broadcast_to(sample, zs.shape[1:]).ravel()]
    if x.shape[1] > opts.liver_sample_max_voxels:  # an even subsample: the medians do not need more
        x = x[:, :: int(np.ceil(x.shape[1] / opts.liver_sample_max_voxels))]
    if x.shape[1] < 50:
        raise LiverMetsError("too few liver voxels around the seed to model the liver; check the liver mask or "
                             "click nearer the liver's centre")
    return _robust_centre(x, opts.liver_trim_iterations, opts.detect_probability, noise_floor(zs[:, ::2, ::2, ::2]))


def _core_centre(z: np.ndarray, d2_liver: np.ndarray, core: np.ndarray, detect: float) -> np.ndarray:
    """The seed compartment's first centre: the median of the core voxels farthest from the liver (the upper half,
    by distance, of those beyond the detection quantile).

    A lesion smaller than the core ball (a 7 mm cyst on 3 x 3 x 6 mm voxels fills two of its five voxels) shares
    the ball with partial-volume and liver voxels; a median over the whole ball lies between liver and lesion, and
    the lesion's own voxels, further from the liver than that, were then left out as another tissue (a ring
    around an empty centre, Dice 0). Partial volume lies on the way from the liver to the lesion, so the voxels
    farthest from the liver are the purest. In a lesion larger than the ball every voxel is lesion and the upper
    half moves the centre by well under one noise SD; the regrowth re-estimates it from the interior. Without any
    voxel beyond the detection quantile the whole core is used (and the seed-contrast check refuses the click).
    """
    d2 = d2_liver[core]
    lesion_like = d2 > detect
    if not lesion_like.any():
        return np.median(z[:, core], axis=1)
    purest = lesion_like & (d2 >= np.median(d2[lesion_like]))
    return np.median(z[:, core][:, purest], axis=1)


def _small_lesion(z: np.ndarray, mask: np.ndarray, allowed: np.ndarray, crop: Crop,
                  opts: _Options) -> np.ndarray | None:
    """A lesion without a voxel of interior (no voxel whose six neighbours are all lesion) outlined by the ball
    fitted to its partial-volume pattern (small_lesion.py); None for a larger lesion or when the fit covers no
    voxel at least half."""
    if not mask.any() or ndi.binary_erosion(mask).any():
        return None
    sharp = crop.sharpness >= 0.999 if crop.sharpness is not None else np.ones(z.shape[0], bool)
    extent = (np.ptp(np.argwhere(mask), axis=0) + 1) * crop.spacing_zyx
    fitted = fit_ball(z, mask, allowed, crop.spacing_zyx, sharp, opts.small_fit_subsamples,
                      0.5 * float(extent.max()) + float(crop.spacing_zyx.max()))
    if fitted is None or not fitted[0].any():
        return None
    return fitted[0]


class _Leak(Exception):
    """The region reached the radius it was grown in."""


def _where(seed: Sequence[float]) -> str:
    return f"seed ({', '.join(f'{float(v):.1f}' for v in seed)}) mm LPS"


def _segment_within(images: LesionImages, seed: tuple[float, float, float], radius_mm: float,
                    liver_mask: sitk.Image | None, exclude: sitk.Image | None,
                    opts: _Options) -> LesionSegmentation:
    """One attempt inside ``radius_mm``; raises :class:`_Leak` when the region reaches that radius."""
    crop = crop_around(images, seed, radius_mm + opts.liver_sample_margin_mm)
    liver = label_on_crop(crop, liver_mask, "liver mask") if liver_mask is not None else None
    taken = label_on_crop(crop, exclude, "lesion mask") if exclude is not None else None
    _seed_checks(crop, liver, taken, opts, seed)
    k = crop.data.shape[0]
    dist = distance_from(crop, crop.seed_index)
    core = dist <= max(opts.core_radius_mm, 0.51 * float(crop.spacing_zyx.max()))
    smooth = _smooth(crop, opts.smoothing_mm)
    sample = (dist > opts.core_radius_mm) & (liver if liver is not None else True)
    if taken is not None:
        sample &= ~taken
    mu, s = _liver_model(smooth, sample, k, opts)
    z = ((smooth - mu[:, None, None, None]) / s[:, None, None, None]).astype(np.float32)
    d2_liver = (z ** 2).sum(axis=0)
    detect = chi2_quantile(opts.detect_probability, k)
    blood_sd = float(np.sqrt(chi2_quantile(opts.detect_probability, 1)))
    blood = blood_like(z, crop.names, opts.vessel_channel, opts.pre_contrast_channel, blood_sd)
    allowed = dist <= radius_mm
    if taken is not None:
        allowed &= ~taken
    edge = allowed & (dist > radius_mm - 1.01 * float(crop.spacing_zyx.max()))
    outlier = chi2_quantile(opts.outlier_probability, k)
    diffusion = crop.names.index(opts.flow_channel) if opts.flow_channel in crop.names else None
    flow_sd = float(np.sqrt(chi2_quantile(opts.outlier_probability, 1)))
    vessels = find_vessels(z, d2_liver, blood, detect, dist, radius_mm, outlier, diffusion, flow_sd)
    core_used, blood_left_out = core_without_vessels(core, dist, crop.seed_index, crop.spacing_zyx, vessels,
                                                     d2_liver, detect)
    core_z = _core_centre(z, d2_liver, core_used, detect)
    blood_classes = unlike_seed(vessels, core_z, outlier)
    if blood_left_out and not blood_classes:  # what lies round the vessel is liver and blood: a click in a vessel
        core_used, blood_left_out = core, 0
        core_z = _core_centre(z, d2_liver, core, detect)
    contrast = float((core_z ** 2).sum())
    if contrast < chi2_quantile(opts.min_seed_contrast_probability, k):
        raise LiverMetsError(f"the {_where(seed)} does not differ from the surrounding liver on the series used "
                             f"({', '.join(crop.names)}); click inside a lesion")
    protos, grown = _grow_compartments(z, d2_liver, core_z, core_used, allowed, edge, crop, opts,
                                       final=radius_mm >= opts.max_radius_mm, vessels=blood_classes)
    if _leaks(grown, edge, opts.leak_fraction):
        raise _Leak()
    mask = ndi.binary_fill_holes(grown & allowed)
    if taken is not None:
        mask &= ~taken
    small = _small_lesion(z, mask, allowed, crop, opts)
    if small is not None:
        mask = small
    info = {"method": "multi-channel partial-volume classifier (liver vs lesion compartments) with connectivity "
                      "and a size prior", "channels": list(crop.names), "liver_centre": mu.round(2).tolist(),
            "liver_spread": s.round(2).tolist(), "seed_contrast_chi2": round(contrast, 1),
            "compartments": int(len(protos)), "liver_mask_used": liver is not None, "voxels": int(mask.sum()),
            "radius_mm": radius_mm, "blood_like_seed_voxels_left_out": blood_left_out,
            "vessel_classes": len(blood_classes)}
    return LesionSegmentation(images.reference, crop.start, mask, seed, info)


def segment_lesion(images: LesionImages, seed_lps: Sequence[float], *, liver_mask: sitk.Image | None = None,
                   exclude: sitk.Image | None = None, **options: Any) -> LesionSegmentation:
    """Segment the lesion under ``seed_lps`` (LPS mm) on ``images``' reference grid.

    ``liver_mask`` (any grid): liver voxels to model the background from, and the seed must lie in the liver.
    ``exclude``: voxels already taken by other lesions (never part of this one). ``options`` override
    ``lesion_segmentation.json`` (e.g. ``max_radius_mm``). Most lesions fit the first, small radius (fast);
    a lesion that reaches it is segmented again within the max radius.
    """
    opts = _Options.from_data(**options)
    seed = (float(seed_lps[0]), float(seed_lps[1]), float(seed_lps[2])) if len(seed_lps) == 3 else tuple(seed_lps)
    radii = sorted({min(opts.first_radius_mm, opts.max_radius_mm), opts.max_radius_mm})
    for radius in radii:
        try:
            return _segment_within(images, seed, radius, liver_mask, exclude, opts)
        except _Leak:
            continue
    raise LiverMetsError(
        f"the region grown from the {_where(seed)} reaches the largest lesion radius ({opts.max_radius_mm:g} mm): "
        "the seed is probably in a vessel or outside a lesion; click inside the lesion, or raise the max radius for "
        "a very large one")
