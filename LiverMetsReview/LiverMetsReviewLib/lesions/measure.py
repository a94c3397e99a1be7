"""Everything a reading needs per lesion: size, place, and its values on every series and map.

Geometry: longest axial diameter and the longest diameter perpendicular to it in the same slice (mm,
endpoints in LPS), volume (mL), centroid (LPS), Couinaud segment (from a Couinaud label image), distance of
the edge to the liver capsule. Values: mean, median, 10th and 90th percentile per series and map inside
the lesion; lesion-to-liver ratio against a background-liver reference (an automatic shell at a distance
from the lesion, inside the liver, without vessels and other lesions, or the reader's own region); rim
versus core. Every number is a :class:`Measurement` naming a ``quantities.json`` key, so codes and units
live in one place; a value that cannot be measured is ``None`` with the reason.

All values are sampled on the reference grid the mask is drawn on (images are resampled linearly once). The
whole lesion's statistics use every voxel of the segment (the checklist corrects their partial volume by the
interior fraction). The rim is the segment's shell of the rim thickness. The core is read per image on the
voxels whose footprint on that image's own series lies inside the core (``footprint.py``): on a series with
thicker slices the core's outer voxels also average rim and liver, which pulled a bright or dark core's median
toward its surroundings. A core no voxel of a series sees that way is ``None`` with the reason (too small for
that series' voxels). The rim is kept whole on purpose: restricted the same way, a 3 mm rim on 6 mm slices has
no voxel left, and the checklist lost the rim evidence (ring enhancement, target) on such series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..maps.resample import check_compatible, resample_to
from ..resources import load_json
from .channels import params
from .couinaud import segment_border
from .diameters import refined_diameters
from .footprint import footprint_shares
from .lps import points_lps

QUANTITIES = "quantities.json"
# Images whose rim and core are compared (brief section 5: ring enhancement, peripheral washout, target, rim
# restriction); names as produced by study_images(). The pre-contrast T1 too: the gain of a region between it and a
# post-contrast phase (as a subtraction reads it, brief section 4) needs that region's own pre-contrast value, and the
# rim holds a different mixture of lesion and liver than the segment's median voxel.
RIM_CORE = ("adc", "re_arterial", "t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary",
            "t2")


def quantity(key: str) -> dict[str, Any]:
    """Codes, unit and label of a quantity key (``quantities.json``)."""
    table = load_json(QUANTITIES)["quantities"]
    if key not in table:  # pragma: no cover - programming error
        raise KeyError(f"quantity '{key}' is not in {QUANTITIES}")
    return table[key]


@dataclass(frozen=True)
class Measurement:
    """One number: a quantity key (codes and unit are looked up, never passed), its value or why not."""

    key: str
    value: float | None
    why: str = ""
    image: str = ""          # series or map it was measured on ("" for geometry)
    region: str = ""         # lesion / rim / core / reference
    statistic: str = ""      # mean / median / p10 / p90 ("" for a single value)

    @property
    def unit(self) -> str:
        return quantity(self.key)["unit"][1]


@dataclass
class MeasuredImage:
    """An image on the reference grid (z, y, x), its valid voxels, and the quantity key its values are."""

    values: np.ndarray
    key: str
    valid: np.ndarray | None = None
    voxel_mm3: float | None = None       # the source's voxel volume (a thicker slice blurs an edge)
    source: sitk.Image | None = None     # the grid the values were acquired on (footprint.py)


@dataclass
class LesionMeasures:
    lesion_id: str
    name: str
    measurements: list[Measurement] = field(default_factory=list)
    long_axis_lps: list[list[float]] | None = None
    short_axis_lps: list[list[float]] | None = None
    centroid_lps: list[float] | None = None
    couinaud_segment: int | None = None
    couinaud_why: str = ""
    couinaud_border: str | None = None      # e.g. "VII/VIII border": the centre lies at a segment boundary
    reference: dict[str, Any] = field(default_factory=dict)

    def value(self, key: str, image: str = "", region: str = "", statistic: str = "") -> float | None:
        for m in self.measurements:
            if (m.key, m.image, m.region, m.statistic) == (key, image, region, statistic):
                return m.value
        raise KeyError(f"no measurement {key}/{image}/{region}/{statistic}")


def prepare_images(reference: sitk.Image,
                   images: Mapping[str, tuple[sitk.Image, str, sitk.Image | None]]) -> dict[str, MeasuredImage]:
    """Resample each named (image, quantity key, valid mask or None) onto the reference grid, once."""
    out = {}
    for name, (img, key, valid) in images.items():
        check_compatible(reference, img, f"{name} image")
        vals = sitk.GetArrayFromImage(resample_to(reference, img))
        ok = np.isfinite(vals)
        if valid is not None:
            ok &= sitk.GetArrayFromImage(resample_to(reference, valid, label=True)) != 0
        out[name] = MeasuredImage(vals, key, ok, float(np.prod(img.GetSpacing())), img)
    return out


ImageEntry = tuple[sitk.Image, str, "sitk.Image | None"]


def study_images(series: Sequence[Any], maps: Any | None = None) -> dict[str, ImageEntry]:
    """The study's measurable images by name: signal per series, ADC, fat fraction and enhancement maps."""
    out: dict[str, ImageEntry] = {}
    for s in series:
        if s.role in ("t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary", "t2",
                      "t1_in_phase", "t1_opposed_phase", "dixon_water"):
            out.setdefault(s.role, (s.image, "signal", None))
        elif s.role == "dwi" and s.b_values and len(s.b_values) == len(s.stacks):
            out.setdefault("dwi_high_b", (s.stacks[int(np.argmax(s.b_values))], "signal", None))
        elif s.role == "adc_scanner":
            out.setdefault("adc_scanner", (s.image, "adc", None))
    if maps is not None:
        for name, img in maps.images.items():
            key = ("adc" if name == "adc" else "fat_fraction" if name in ("ff_chemical_shift", "ff_dixon", "pdff")
                   else "relative_enhancement" if name.startswith("re_") else None)
            if key:
                out[name] = (img, key, maps.valid.get(name))
    if "adc" not in out and "adc_scanner" in out:
        out["adc"] = out.pop("adc_scanner")
    return out


# ------------------------------------------------------------------ regions

@dataclass
class StudyContext:
    """Study-wide inputs of every lesion's measurement (on the reference grid, z, y, x)."""

    reference: sitk.Image
    images: dict[str, MeasuredImage]
    liver: np.ndarray | None = None
    couinaud: np.ndarray | None = None
    lesions: np.ndarray | None = None       # union of every lesion mask
    _capsule_edt: np.ndarray | None = None

    def capsule_distance(self, mask: np.ndarray) -> tuple[float | None, str]:
        if self.liver is None:
            return None, "no liver mask was given"
        if self._capsule_edt is None:  # once per study, inside the organ's box only
            organ = ndi.binary_fill_holes(self.liver | (self.lesions if self.lesions is not None else False))
            self._capsule_edt = np.zeros(organ.shape, np.float32)
            if organ.any():
                sl = _bbox(organ, (1, 1, 1))
                spacing = self.reference.GetSpacing()[::-1]
                self._capsule_edt[sl] = ndi.distance_transform_edt(organ[sl], sampling=spacing)
        # Voxel centres: an edge voxel touching the outside is one spacing from the nearest outside centre.
        d = float(self._capsule_edt[mask].min()) - float(min(self.reference.GetSpacing()))
        return max(0.0, round(d, 2)), ""


def _bbox(mask: np.ndarray, margin: Sequence[int]) -> tuple[slice, ...]:
    nz = np.nonzero(mask)
    return tuple(slice(max(0, int(a.min()) - m), min(n, int(a.max()) + m + 1))
                 for a, m, n in zip(nz, margin, mask.shape, strict=True))


def rim_core(mask: np.ndarray, spacing_zyx: Sequence[float], rim_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's outer shell of ``rim_mm`` and the rest (voxel centres deeper than ``rim_mm``)."""
    depth = ndi.distance_transform_edt(np.pad(mask, 1), sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
    return mask & (depth <= rim_mm), mask & (depth > rim_mm)


def interior_fraction(mask: np.ndarray) -> float:
    """Share of the segment's voxels whose six face neighbours are all in the segment. An edge voxel is partly
    filled by what surrounds the lesion (partial volume); when edge voxels are the majority, the segment's median
    is an edge value and its contrast to the liver is diluted (the checklist corrects for it)."""
    inner = ndi.binary_erosion(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
    return round(float(inner.sum()) / max(int(mask.sum()), 1), 4)


def margin_shell(ctx: StudyContext, lesion: np.ndarray, sl: tuple[slice, ...], spacing_zyx: Sequence[float],
                 rim_mm: float) -> np.ndarray:
    """Liver voxels within ``rim_mm`` outside the lesion's edge (not other lesions): the zone's margin."""
    outside = ndi.distance_transform_edt(~lesion, sampling=spacing_zyx)
    shell = (outside > 0) & (outside <= rim_mm)
    if ctx.liver is not None:  # the liver with its holes (lesions, vessels a liver label may leave out) filled
        shell &= ndi.binary_fill_holes(ctx.liver[sl] | lesion)
    if ctx.lesions is not None:
        shell &= ~(ctx.lesions[sl] & ~lesion)
    return shell


def _drop_outliers(region: np.ndarray, images: Mapping[str, MeasuredImage], sl: tuple[slice, ...],
                   n_sigma: float) -> tuple[np.ndarray, list[str]]:
    """Remove vessel-like voxels: bright on the portal venous phase, dark on the HBP (robust z-score)."""
    used = []
    for name, sign in (("t1_portal_venous", 1.0), ("t1_hepatobiliary", -1.0)):
        img = images.get(name)
        if img is None or region.sum() < 10:
            continue
        vals = img.values[sl]
        v = vals[region]
        med = np.median(v)
        sd = 1.4826 * np.median(np.abs(v - med)) or 1.0
        region = region & ~(sign * (vals - med) / sd > n_sigma)
        used.append(name)
    return region, used


def reference_region(ctx: StudyContext, mask: np.ndarray, sl: tuple[slice, ...],
                     drawn: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Background-liver voxels for one lesion (within the box ``sl``) and where they are."""
    spacing = ctx.reference.GetSpacing()[::-1]
    if drawn is not None:
        region, info = drawn[sl].copy(), {"method": "drawn by the reader"}
    else:
        lo, hi = params("measurement")["reference_shell_mm"]
        outside = ndi.distance_transform_edt(~mask[sl], sampling=spacing)
        region = (outside > lo) & (outside <= hi)
        info = {"method": f"automatic shell {lo:g}-{hi:g} mm from the lesion edge"}
        if ctx.liver is not None:
            region &= ndi.binary_erosion(ctx.liver[sl])
        else:
            info["note"] = "no liver mask: the shell is not restricted to the liver"
        if ctx.lesions is not None:
            near = ndi.distance_transform_edt(~ctx.lesions[sl], sampling=spacing) <= lo
            region &= ~near
        region, used = _drop_outliers(region, ctx.images, sl, params("measurement")["reference_outlier_sigmas"])
        info["vessel_exclusion"] = used or "no portal venous or HBP image: vessels not excluded"
    idx = np.argwhere(region) + np.array([s.start for s in sl])
    info["voxels"] = int(len(idx))
    if len(idx):
        info["centroid_lps"] = points_lps(ctx.reference, idx).mean(axis=0).round(2).tolist()
    return region, info


# ------------------------------------------------------------------ values

def _stats(values: np.ndarray, name: str, key: str, region: str, why_empty: str) -> list[Measurement]:
    p = params("measurement")
    lo, hi = p["percentiles"]
    if values.size < int(p["min_voxels_for_statistics"]):
        why = why_empty or f"fewer than {p['min_voxels_for_statistics']} measurable voxels in the {region}"
        return [Measurement(key, None, why, name, region, st) for st in ("mean", "median", "p10", "p90")]
    q = np.percentile(values, [50, lo, hi])
    vals = {"mean": float(values.mean()), "median": float(q[0]), "p10": float(q[1]), "p90": float(q[2])}
    return [Measurement(key, round(v, 3), "", name, region, st) for st, v in vals.items()]


def _image_measurements(ctx: StudyContext, sl: tuple[slice, ...], lesion: np.ndarray, ref: np.ndarray,
                        rim: np.ndarray, core: np.ndarray, rim_mm: float,
                        margin: np.ndarray | None = None) -> list[Measurement]:
    margin = np.zeros_like(lesion) if margin is None else margin
    out: list[Measurement] = []
    seen: dict[tuple, np.ndarray] = {}  # footprint selections of the core per source grid
    for name, img in ctx.images.items():
        vals, ok = img.values[sl], img.valid[sl] if img.valid is not None else np.ones(lesion.shape, bool)
        out += _stats(vals[lesion & ok], name, img.key, "lesion", "")
        ref_vals = vals[ref & ok]
        ref_median = float(np.median(ref_vals)) if ref_vals.size >= 3 else None
        out.append(Measurement(img.key, None if ref_median is None else round(ref_median, 3),
                               "" if ref_median is not None else "no background-liver voxels", name, "reference",
                               "median"))
        if img.key == "signal":
            les = vals[lesion & ok]
            ratio = (round(float(np.median(les)) / ref_median, 4) if ref_median and les.size else None)
            out.append(Measurement("lesion_to_liver_ratio", ratio,
                                   "" if ratio is not None else "no lesion or background-liver signal", name))
        if name in RIM_CORE:
            out += _rim_core_medians(ctx, sl, name, img, vals, ok, lesion, rim, core, rim_mm, seen)
            s = _stats(vals[margin & ok], name, img.key, "margin", "no liver just outside the lesion")
            out += [x for x in s if x.statistic in ("median", "p10")]
            out += _rim_asymmetry(name, img, vals, ok, lesion, rim, margin, ctx.reference.GetSpacing()[::-1],
                                  ctx.images, sl)
    return out


def _seen_core(ctx: StudyContext, sl: tuple[slice, ...], img: MeasuredImage, core: np.ndarray,
               cache: dict[tuple, np.ndarray]) -> np.ndarray:
    """The core voxels whose footprint on the image's series lies inside the core (share >=
    ``footprint_min_share``), once per source grid."""
    src = img.source
    key = (() if src is None else (src.GetSize(), src.GetSpacing(), src.GetOrigin(), src.GetDirection()))
    if key not in cache:
        q = float(params("measurement")["footprint_min_share"])
        (in_core,) = footprint_shares([core], ctx.reference, [s.start for s in sl], src)
        cache[key] = core & (in_core >= q)
    return cache[key]


def _voxel_text(img: MeasuredImage) -> str:
    if img.source is None:
        return "its voxels"
    return "its " + " x ".join(f"{v:.3g}" for v in img.source.GetSpacing()) + " mm voxels"


def _rim_core_medians(ctx: StudyContext, sl: tuple[slice, ...], name: str, img: MeasuredImage, vals: np.ndarray,
                      ok: np.ndarray, lesion: np.ndarray, rim: np.ndarray, core: np.ndarray, rim_mm: float,
                      cache: dict[tuple, np.ndarray]) -> list[Measurement]:
    """Rim median of one image and its core median on the voxels its series sees inside the core, or None and
    why."""
    thin = f"the lesion is too thin for a {rim_mm:g} mm rim and a core"
    out = [x for x in _stats(vals[rim & ok], name, img.key, "rim", "" if core.any() else thin)
           if x.statistic == "median"]
    if not core.any():
        return out + [Measurement(img.key, None, thin, name, "core", "median")]
    core_seen = _seen_core(ctx, sl, img, core, cache)
    need = int(params("measurement")["min_voxels_for_statistics"])
    n = int((core_seen & ok).sum())
    too_coarse = n < need <= int((core & ok).sum())  # measurable on the grid, not on this series' voxels
    why = (f"the core is too small for {name} ({_voxel_text(img)}): {n} core voxels are seen on this series "
           f"without the {rim_mm:g} mm rim or the liver, fewer than {need}")
    out += [x for x in _stats(vals[core_seen & ok], name, img.key, "core", why if too_coarse else "")
            if x.statistic == "median"]
    return out


def rim_sector_asymmetry(values: np.ndarray, rim: np.ndarray, lesion: np.ndarray,
                         spacing_zyx: Sequence[float]) -> tuple[float | None, str]:
    value, _, why, _ = rim_sector_figures(values, rim, lesion, spacing_zyx)
    return value, why


@dataclass
class SectorLayout:
    """The rim's voxels split into sectors of direction from the lesion's centroid (see rim_sector_figures):
    ``tilings`` holds each voxel's sector id per tiling (the second half a sector round), ``band_count`` the
    elevation bands."""

    voxels: np.ndarray            # boolean mask of the rim voxels the layout covers
    tilings: list[np.ndarray]     # per tiling, each voxel's sector id (azimuth + n * elevation band)
    n: int
    band_count: int


def sector_layout(rim: np.ndarray, lesion: np.ndarray, spacing_zyx: Sequence[float]
                  ) -> tuple[SectorLayout | None, str]:
    """Sectors of the rim: equal angles around the centroid in the axial plane, times bands of elevation
    (below, level with, above the centroid), in two tilings half a sector apart; or None and why."""
    p = params("measurement")
    n, need, min_sectors = int(p["rim_sectors"]), int(p["rim_sector_min_voxels"]), int(p["rim_min_sectors"])
    bands = np.sin(np.radians(np.asarray(p["rim_elevation_bands_deg"], float)))
    idx = np.argwhere(rim)
    if idx.shape[0] < need * min_sectors:
        return None, (f"the rim holds {idx.shape[0]} measurable voxels, too few for {min_sectors} sectors "
                      f"of {need}")
    d = (idx - np.argwhere(lesion).mean(axis=0)) * np.asarray(spacing_zyx, float)
    band = np.searchsorted(bands, d[:, 0] / np.maximum(np.linalg.norm(d, axis=1), 1e-6))
    turn = (np.arctan2(d[:, 1], d[:, 2]) + np.pi) / (2.0 * np.pi)
    # a second tiling half a sector round: a nodule on a border fills a sector of one of them
    tilings = [((turn + offset) * n).astype(int) % n + n * band for offset in (0.0, 0.5 / n)]
    return SectorLayout(rim, tilings, n, len(bands) + 1), ""


def _sector_residuals(vals: np.ndarray, ok: np.ndarray, layout: SectorLayout
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """Per kept sector (first tiling, then the second): its mean's excess over the median sector mean of its
    elevation band (first tiling), its voxel count and its (tiling, sector) id; and how many are of the first
    tiling. ``vals``/``ok``: the rim voxels' values and which are measurable. None when too few sectors hold."""
    p = params("measurement")
    need, min_sectors = int(p["rim_sector_min_voxels"]), int(p["rim_min_sectors"])
    means, sizes, ids, bands_of = [], [], [], []
    size = layout.n * layout.band_count
    for t, sector in enumerate(layout.tilings):
        counts = np.bincount(sector[ok], minlength=size)
        sums = np.bincount(sector[ok], weights=vals[ok], minlength=size)
        kept = np.flatnonzero(counts >= need)
        means += (sums[kept] / counts[kept]).tolist()
        sizes += counts[kept].tolist()
        ids += [(t, int(k)) for k in kept]
        bands_of += (kept // layout.n).tolist()
        if t == 0:
            first = len(kept)
    if first < min_sectors:
        return None
    # Each sector is compared with the sectors of its own elevation band: on slices thicker than the pixels a
    # uniform rim's partial volume changes with elevation (the caps are cut obliquely), not with the angle round.
    m, b = np.asarray(means), np.asarray(bands_of)
    centres = np.array([float(np.median(m[:first][b[:first] == k])) if np.any(b[:first] == k) else np.nan
                        for k in range(layout.band_count)])
    return m - centres[b], np.asarray(sizes), np.asarray(ids), first


def _noise(vals: np.ndarray, residual: np.ndarray, first: int, size: int) -> float:
    """The larger of a sector mean's standard error (robust voxel SD / sqrt(voxels)) and the spread of the
    sector means (noise plus a uniform rim's partial volume)."""
    se_voxels = 1.4826 * float(np.median(np.abs(vals - np.median(vals)))) / np.sqrt(size)
    return max(se_voxels, 1.4826 * float(np.median(np.abs(residual[:first]))))


def rim_sector_figures(values: np.ndarray, rim: np.ndarray, lesion: np.ndarray, spacing_zyx: Sequence[float]
                       ) -> tuple[float | None, float | None, str, tuple[int, int] | None]:
    """Highest rim-sector mean minus the median of the sector means of its elevation band (the image's unit), that
    excess in units of its noise (z), or None and why, and the outlying sector's (tiling, sector) id.

    A uniform rim enhances alike in every sector; a nodule or an asymmetric thickening (recurrence after
    ablation) lifts one or a few sectors above the others. A sector's mean, not its median: a small nodule
    fills part of its sector and moves the mean by that part (:func:`sector_layout` says how sectors are cut;
    a sector id is a direction from the lesion's centroid, the same in every shell of the lesion).
    """
    layout, why = sector_layout(rim, lesion, spacing_zyx)
    res = None if layout is None else _sector_residuals(values[rim], np.ones(int(rim.sum()), bool), layout)
    if res is None:
        p = params("measurement")
        why = why or f"fewer than {p['rim_min_sectors']} rim sectors hold {p['rim_sector_min_voxels']} voxels"
        return None, None, why, None
    residual, sizes, ids, first = res
    top = int(np.nanargmax(residual))
    excess = float(residual[top])
    noise = _noise(values[rim], residual, first, int(sizes[top]))
    return round(excess, 3), (round(excess / noise, 3) if noise > 0 else None), "", (int(ids[top][0]),
                                                                                      int(ids[top][1]))


def sector_figures_at(values: np.ndarray, valid: np.ndarray, rim: np.ndarray, lesion: np.ndarray,
                      spacing_zyx: Sequence[float], sector: tuple[int, int]) -> tuple[float | None, float | None, str]:
    """One given sector's excess over the median sector of its band (the image's unit) and its z (the same noise
    formula), e.g. the ADC in the direction where the arterial phase stands out: a single pre-specified
    comparison, not the maximum of many."""
    layout, why = sector_layout(rim, lesion, spacing_zyx)
    res = None if layout is None else _sector_residuals(values[rim], valid[rim], layout)
    if res is None:
        return None, None, why or "too few measurable voxels in the sectors of this shell on this image"
    residual, sizes, ids, first = res
    at = np.flatnonzero((ids[:, 0] == sector[0]) & (ids[:, 1] == sector[1]))
    if not at.size:
        return None, None, "the outlying direction holds too few measurable voxels in this shell on this image"
    excess = float(residual[at[0]])
    noise = _noise(values[rim][valid[rim]], residual, first, int(sizes[at[0]]))
    return round(excess, 3), (round(excess / noise, 3) if noise > 0 else None), ""


def _rim_asymmetry(name: str, img: MeasuredImage, vals: np.ndarray, ok: np.ndarray, lesion: np.ndarray,
                   rim: np.ndarray, margin: np.ndarray, spacing_zyx: Sequence[float],
                   images: Mapping[str, MeasuredImage] | None = None, sl: tuple[slice, ...] | None = None
                   ) -> list[Measurement]:
    """Sector asymmetry of the lesion's rim, of its margin (a shell just outside the edge, where recurrence after
    ablation grows: brief section 4, nodular enhancing tissue at the margin of the zone) and of the whole lesion
    by sector; then, in the direction of the strongest of them, every shell read on the companion images
    (``rim_outlier_companions``: does the tissue that stands out restrict and wash out like tumour?)."""
    p = params("measurement")
    if name not in p["rim_asymmetry_images"]:
        return []
    out, tops = [], []
    shells = {"rim": rim, "margin": margin, "lesion": lesion}
    regions = p.get("rim_asymmetry_regions", ("rim", "margin"))
    for region in regions:
        value, z, why, top = rim_sector_figures(vals, shells[region] & ok, lesion, spacing_zyx)
        out += [Measurement(img.key, value, why, name, region, "asymmetry"),
                Measurement("sector_excess_z", z, why or ("" if z is not None else "the shell's values do not vary"),
                            name, region, "asymmetry_z")]
        if z is not None and top is not None:
            tops.append((z, top))
    direction = max(tops)[1] if tops else None
    for region in regions:
        for c in p.get("rim_outlier_companions", {}).get(region, []):
            ci = (images or {}).get(c)
            if ci is None:
                continue
            cvalid = ci.valid[sl] if ci.valid is not None else np.ones(lesion.shape, bool)
            cv, cz, cwhy = ((None, None, "no sector outlier to follow") if direction is None else
                            sector_figures_at(ci.values[sl], cvalid, shells[region] & ok, lesion, spacing_zyx,
                                              direction))
            out += [Measurement(ci.key, cv, cwhy, c, region, "outlier_excess"),
                    Measurement("sector_excess_z", cz, cwhy or ("" if cz is not None else "the values do not vary"),
                                c, region, "outlier_excess_z")]
    return out


def _couinaud(ctx: StudyContext, mask: np.ndarray, centroid_idx: np.ndarray) -> tuple[int | None, str, Any]:
    """Segment of the centroid (else the most common one around the lesion) and how near it lies to another."""
    if ctx.couinaud is None:
        return None, "no Couinaud label image was given", None
    c = tuple(int(round(v)) for v in centroid_idx)
    seg = int(ctx.couinaud[c]) if all(0 <= v < n for v, n in zip(c, mask.shape, strict=True)) else 0
    if not seg:
        labels = ctx.couinaud[ndi.binary_dilation(mask, iterations=2)]
        labels = labels[labels > 0]
        if labels.size == 0:
            return None, "the lesion lies outside the Couinaud map", None
        seg = int(np.bincount(labels).argmax())
    spacing = ctx.reference.GetSpacing()[::-1]
    radius = (3.0 * float(mask.sum()) * float(np.prod(spacing)) / (4.0 * np.pi)) ** (1.0 / 3.0)
    return seg, "", segment_border(ctx.couinaud, spacing, centroid_idx, radius, seg)


def measure_lesion(ctx: StudyContext, mask: np.ndarray, lesion_id: str, name: str = "",
                   reference_mask: np.ndarray | None = None, rim_mm: float | None = None) -> LesionMeasures:
    """Every measurement of one lesion (``mask``: bool z, y, x on ``ctx.reference``)."""
    out = LesionMeasures(lesion_id, name or lesion_id)
    if not mask.any():
        out.measurements.append(Measurement("volume", None, "the lesion segment is empty"))
        return out
    rim_mm = float(rim_mm if rim_mm is not None else params("measurement")["rim_thickness_mm"])
    spacing = ctx.reference.GetSpacing()[::-1]
    vox_ml = float(np.prod(spacing)) / 1000.0
    idx = np.argwhere(mask)
    out.centroid_lps = points_lps(ctx.reference, idx).mean(axis=0).round(2).tolist()
    hi = params("measurement")["reference_shell_mm"][1]
    sl = _bbox(mask, [int(np.ceil(hi / s)) + 2 for s in spacing])
    lesion = mask[sl]
    ref, out.reference = reference_region(ctx, mask, sl, reference_mask)
    long_, out.long_axis_lps, short, out.short_axis_lps = refined_diameters(ctx.reference, ctx.images, mask, sl, ref)
    out.measurements += [Measurement("long_axis", long_), Measurement("short_axis", short),
                         Measurement("volume", round(int(mask.sum()) * vox_ml, 3))]
    cap, why = ctx.capsule_distance(mask)
    out.measurements.append(Measurement("capsule_distance", cap, why))
    out.couinaud_segment, out.couinaud_why, border = _couinaud(ctx, mask, idx.mean(axis=0))
    if border is not None:
        out.couinaud_border = border.name(out.couinaud_segment)
        out.measurements.append(Measurement("segment_boundary_distance", border.distance_mm,
                                            "" if border.distance_mm is not None else "no other segment nearby"))
    out.measurements.append(Measurement("interior_fraction", interior_fraction(lesion)))
    rim, core = rim_core(lesion, spacing, rim_mm)
    out.reference["rim_thickness_mm"] = rim_mm
    margin = margin_shell(ctx, lesion, sl, spacing, rim_mm)
    out.measurements += _image_measurements(ctx, sl, lesion, ref, rim, core, rim_mm, margin)
    return out
