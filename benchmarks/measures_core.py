"""Criterion 4's core rows of ``validate_measures.py``, judged where the product reads them (tolerances and their
reasons are in that module's docstring, item 4b).

The product reads a core median on the reference voxels whose footprint on the image's series lies >= 95 % inside
the core, or says the core is too small for that series. Here, independently of the product's code:

* :func:`footprint_share` -- the share of a resampled value at reference voxels that comes from inside a mask, from
  the series' geometry alone: each series voxel averages its box (pixel spacing in-plane, slice *thickness* along
  z), and linear resampling onto the reference grid mixes the two series voxels around each reference centre. The
  mask may lie on any grid with the same axes (the reference grid, or the phantom's fine truth grid).
* :class:`NoiseFree` -- what each image would hold without noise: the phantom generated again with the same seed
  and an infinite SNR (same anatomy, lesions, grids and breath-hold shifts), the maps computed from it with their
  textbook formulas, resampled linearly onto the reference grid; and the same with every magnitude replaced by its
  Rician mean (the noise floor a magnitude image adds), the two bounding what a noisy median can read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy import special

MIN_SEEN = 3           # a median of fewer voxels is no median (stated here, not read from the product)
SEEN_SHARE = 0.95      # the product's stated selection: footprint >= 95 % inside the core
WHOLE_SHARE = 0.999    # "wholly inside" (floating-point sums of weights that add to 1)


class Grid:
    """An axis-aligned grid in the frame of a direction matrix: first voxel centre (x, y, z in that frame), spacing
    and the extent of one voxel (the slice thickness along z for a series)."""

    def __init__(self, image: sitk.Image, extent_z: float | None = None, shift_mm: Sequence[float] = (0, 0, 0)):
        self.direction = np.array(image.GetDirection()).reshape(3, 3)
        self.first = self.direction.T @ (np.array(image.GetOrigin(), float) + np.asarray(shift_mm, float))
        self.spacing = np.array(image.GetSpacing(), float)
        self.extent = self.spacing.copy()
        if extent_z is not None:
            self.extent[2] = float(extent_z)
        self.size = np.array(image.GetSize(), int)

    def centres(self, axis: int, lo: int, hi: int) -> np.ndarray:
        return self.first[axis] + self.spacing[axis] * np.arange(lo, hi)


def _overlap(a_lo: np.ndarray, a_hi: np.ndarray, b_lo: np.ndarray, b_hi: np.ndarray) -> np.ndarray:
    return np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0.0, None)


def _axis_weights(ref_c: np.ndarray, mask_c: np.ndarray, mask_ext: float, src: Grid, axis: int) -> np.ndarray:
    """(n_ref, n_mask): weight of each mask voxel in the value a reference centre gets along one axis."""
    u = (ref_c - src.first[axis]) / src.spacing[axis]
    i0 = np.floor(u + 1e-9)
    frac = np.where(u - i0 < 1e-9, 0.0, u - i0)
    out = np.zeros((ref_c.size, mask_c.size))
    for idx, wt in ((i0, 1.0 - frac), (i0 + 1.0, frac)):
        centre = src.first[axis] + idx * src.spacing[axis]
        half = src.extent[axis] / 2.0
        ov = _overlap((centre - half)[:, None], (centre + half)[:, None],
                      (mask_c - mask_ext / 2.0)[None, :], (mask_c + mask_ext / 2.0)[None, :])
        out += wt[:, None] * ov / src.extent[axis]
    return out


def footprint_share(mask: np.ndarray, mask_grid: Grid, mask_lo: Sequence[int], ref: Grid,
                    ref_lo: Sequence[int], ref_shape: Sequence[int], src: Grid) -> np.ndarray:
    """Share of each reference voxel's value on series ``src`` that comes from inside ``mask`` (z, y, x, a crop of
    ``mask_grid`` starting at index ``mask_lo``), for the reference crop starting at ``ref_lo`` of ``ref_shape``.
    Everything outside the mask crop counts as outside the mask."""
    if not (np.allclose(mask_grid.direction, src.direction, atol=1e-4)
            and np.allclose(ref.direction, src.direction, atol=1e-4)):
        raise ValueError("grids with different axes")
    arr = mask.astype(np.float64)
    for axis_zyx in range(3):
        a = 2 - axis_zyx
        ref_c = ref.centres(a, ref_lo[axis_zyx], ref_lo[axis_zyx] + ref_shape[axis_zyx])
        mask_c = mask_grid.centres(a, mask_lo[axis_zyx], mask_lo[axis_zyx] + mask.shape[axis_zyx])
        w = _axis_weights(ref_c, mask_c, mask_grid.spacing[a], src, a)
        arr = np.moveaxis(np.tensordot(w, arr, axes=([1], [axis_zyx])), 0, axis_zyx)
    return arr


def box(mask: np.ndarray, pad: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) index corners of a mask's bounding box widened by ``pad`` voxels, clipped to the array."""
    nz = np.argwhere(mask)
    lo = np.maximum(nz.min(axis=0) - np.asarray(pad), 0)
    hi = np.minimum(nz.max(axis=0) + np.asarray(pad) + 1, mask.shape)
    return lo, hi


def seen_on_reference(core: np.ndarray, ref_img: sitk.Image, src: Grid, share: float) -> np.ndarray:
    """Core voxels (reference grid, z, y, x) whose footprint on ``src`` lies at least ``share`` inside the core."""
    out = np.zeros(core.shape, bool)
    if not core.any():
        return out
    ref = Grid(ref_img)
    pad = np.ceil(2 * src.extent[::-1] / ref.spacing[::-1]).astype(int) + 1
    lo, hi = box(core, pad)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    sh = footprint_share(core[crop], ref, lo, ref, lo, hi - lo, src)
    out[crop] = core[crop] & (sh >= share)
    return out


def truth_core_seen(fine_core: np.ndarray, fine_img: sitk.Image, shift_mm: Sequence[float], ref_img: sitk.Image,
                    src: Grid) -> int:
    """How many reference voxels see only the truth core (on the fine truth grid, moved by the series' breath-hold
    shift) through their footprint on ``src``."""
    if not fine_core.any():
        return 0
    fine = Grid(fine_img, shift_mm=shift_mm)
    ref = Grid(ref_img)
    lo, hi = box(fine_core, (1, 1, 1))
    # the reference voxels whose centre lies inside the core's box (a wholly-inside footprint contains its centre)
    corners = [fine.first + fine.spacing * np.asarray(c[::-1]) for c in (lo, hi - 1)]
    r_lo = np.floor((np.minimum(*corners) - ref.first) / ref.spacing).astype(int)[::-1]
    r_hi = np.ceil((np.maximum(*corners) - ref.first) / ref.spacing).astype(int)[::-1] + 1
    r_lo, r_hi = np.maximum(r_lo, 0), np.minimum(r_hi, ref.size[::-1])
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    sh = footprint_share(fine_core[crop], fine, lo, ref, r_lo, r_hi - r_lo, src)
    return int((sh >= WHOLE_SHARE).sum())


def truth_core(fine_lesion: np.ndarray, spacing_zyx: Sequence[float], depth_mm: float) -> np.ndarray:
    """Fine truth-grid voxels deeper than ``depth_mm`` below the lesion's surface (centre-to-centre distance to the
    nearest outside voxel minus half a fine voxel: the surface lies between the two)."""
    lo, hi = box(fine_lesion, (1, 1, 1))
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    edt = ndi.distance_transform_edt(np.pad(fine_lesion[crop], 1), sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
    out = np.zeros(fine_lesion.shape, bool)
    out[crop] = fine_lesion[crop] & (edt - 0.5 * min(spacing_zyx) > depth_mm)
    return out


def noisy_median(nu: np.ndarray, sigma: float) -> float:
    """Where the median of ``nu + N(0, sigma)`` lies for true values ``nu``: the m with mean(Phi((m - nu) /
    sigma)) = 1/2. Over a spread of true values (a lesion with 20 % brighter voxels and 80 % at one value) it is not
    the median of the true values: the noise of the majority spreads it toward the others."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    nu = np.asarray(nu, float)
    if not (sigma > 0 and np.isfinite(sigma)) or nu.size == 0:
        return float(np.median(nu)) if nu.size else float("nan")
    f = lambda m: float(np.mean(norm.cdf((m - nu) / sigma))) - 0.5  # noqa: E731
    return float(brentq(f, float(nu.min()) - 6 * sigma, float(nu.max()) + 6 * sigma))


# ------------------------------------------------------------------ noise-free images

def rician_mean(nu: np.ndarray, sigma: float) -> np.ndarray:
    """Mean of |nu + complex Gaussian noise (per-channel SD sigma)|: sigma sqrt(pi/2) L_1/2(-nu^2 / 2 sigma^2),
    written with exponentially scaled Bessel functions (t = nu^2 / 4 sigma^2)."""
    if sigma <= 0:
        return np.abs(nu)
    t = (np.asarray(nu, float) / sigma) ** 2 / 4.0
    return sigma * math.sqrt(math.pi / 2.0) * ((1.0 + 2.0 * t) * special.i0e(t) + 2.0 * t * special.i1e(t))


class NoiseFree:
    """Noise-free images of a drawn study (``clean``: the same seed, scenario, size, drawn with an infinite SNR),
    and the same with the Rician noise floor, on the reference grid."""

    def __init__(self, clean, acq: dict, reference: sitk.Image) -> None:
        self.clean, self.acq, self.ref = clean, acq, reference
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _stacks(self, role: str, floor: bool) -> list[np.ndarray]:
        s = self.clean.series_by_role(role)
        sigma = float(self.acq[role]["noise_sigma"]) if floor else 0.0
        return [rician_mean(sitk.GetArrayFromImage(st).astype(float), sigma) for st in s.stacks]

    def _on_source(self, name: str, floor: bool) -> tuple[np.ndarray, sitk.Image]:
        """An image name's noise-free values on its own series' grid (ADC: log-linear least squares over every
        b-value; relative enhancement: 100 (post / pre - 1))."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if name == "adc":
                s = self.clean.series_by_role("dwi")
                b = np.asarray(s.b_values, float)
                logs = np.log(np.maximum(np.stack(self._stacks("dwi", floor)), 1e-12))
                bc = b - b.mean()
                slope = np.tensordot(bc, logs - logs.mean(axis=0), axes=(0, 0)) / float((bc * bc).sum())
                return -slope * 1e6, s.stacks[0]
            if name.startswith("re_"):
                post_role = "t1_" + name[3:]
                post = self._stacks(post_role, floor)[0]
                grid = self.clean.series_by_role(post_role).image
                pre = self._stacks("t1_pre", floor)[0]
                pre_img = self.clean.series_by_role("t1_pre").image
                if pre_img.GetSize() != grid.GetSize() or pre_img.GetOrigin() != grid.GetOrigin():
                    pre = sitk.GetArrayFromImage(sitk.Resample(_image(pre, pre_img), grid, sitk.Transform(),
                                                               sitk.sitkLinear, 0.0))
                return 100.0 * (post / pre - 1.0), grid
            return self._stacks(name, floor)[0], self.clean.series_by_role(name).image

    def source(self, name: str) -> tuple[np.ndarray, sitk.Image]:
        """Noise-free values on the image's own grid (no floor) and that grid."""
        return self._on_source(name, False)

    def on_reference(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(noise-free, with the Rician floor) values on the reference grid, linearly resampled."""
        if name not in self._cache:
            pair = []
            for floor in (False, True):
                vals, grid = self._on_source(name, floor)
                img = _image(np.nan_to_num(vals, nan=0.0, posinf=0.0, neginf=0.0), grid)
                pair.append(sitk.GetArrayFromImage(sitk.Resample(img, self.ref, sitk.Transform(), sitk.sitkLinear,
                                                                 0.0, sitk.sitkFloat64)))
            self._cache[name] = (pair[0], pair[1])
        return self._cache[name]

    def residual_sd(self, name: str, measured_source: sitk.Image, where: np.ndarray) -> float:
        """Robust SD of (the product's image - the noise-free image) on the image's own voxels, taken at the
        reference voxels ``where`` (each source voxel read by nearest neighbour: repeated, not interpolated, so
        the SD is one source voxel's)."""
        vals, grid = self.source(name)
        got = sitk.GetArrayFromImage(measured_source).astype(float)
        if got.shape != vals.shape:
            return float("nan")
        res = _image(np.nan_to_num(got - vals, nan=np.inf), grid)
        on_ref = sitk.GetArrayFromImage(sitk.Resample(res, self.ref, sitk.Transform(), sitk.sitkNearestNeighbor,
                                                      np.inf, sitk.sitkFloat64))[where]
        on_ref = on_ref[np.isfinite(on_ref)]
        if on_ref.size < 2:
            return float("nan")
        return 1.4826 * float(np.median(np.abs(on_ref - np.median(on_ref))))


def _image(arr: np.ndarray, like: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(np.asarray(arr, np.float64))
    img.CopyInformation(like)
    return img


# ------------------------------------------------------------------ the check

class CoreJudge:
    """Criterion 4's core rows for one study: the product's core median where it reports one, its refusal where it
    says the core is too small for a series."""

    def __init__(self, study, clean, reference: sitk.Image, rim_mm: float) -> None:
        self.study, self.ref, self.rim_mm = study, reference, rim_mm
        self.acq = study.truth["acquisition"]["series"]
        self.nf = NoiseFree(clean, self.acq, reference)
        self._truth: dict[tuple[str, str], int] = {}
        self._cores: dict[str, np.ndarray] = {}
        self._fine_sp = study.labelmap.GetSpacing()[::-1]
        self._labels = sitk.GetArrayViewFromImage(study.labelmap)

    def series_grid(self, role: str) -> Grid:
        img = self.study.series_by_role(role).image
        return Grid(img, self.acq[role].get("slice_thickness_mm", img.GetSpacing()[2]))

    def truth_seen(self, les: dict, role: str) -> int:
        """Reference voxels whose footprint on the series lies wholly inside the truth core: the lesion's points
        deeper than the rim shell plus half the reference grid's largest spacing (the product's shell is measured
        between reference voxel centres, so its core's outline can lie that much further out)."""
        key = (les["id"], role)
        if key not in self._truth:
            if les["id"] not in self._cores:
                depth = self.rim_mm + 0.5 * max(self.ref.GetSpacing())
                self._cores[les["id"]] = truth_core(np.asarray(self._labels) == les["label"], self._fine_sp, depth)
            self._truth[key] = truth_core_seen(self._cores[les["id"]], self.study.labelmap,
                                               self.study.shift_mm(role), self.ref, self.series_grid(role))
        return self._truth[key]

    def rim_core_noise_free(self, name: str, role: str, rim: np.ndarray, core: np.ndarray,
                            valid: np.ndarray | None) -> tuple[float, float]:
        """Noise-free medians over the regions the product reads: the whole rim shell, the core voxels its series
        sees inside the core (>= 95 %; the whole core when fewer than 3)."""
        valid = np.ones(core.shape, bool) if valid is None else valid
        clean, _ = self.nf.on_reference(name)
        kept = seen_on_reference(core, self.ref, self.series_grid(role), SEEN_SHARE) & valid
        kept = kept if kept.sum() >= MIN_SEEN else core & valid
        shell = rim & valid
        if not shell.any() or not kept.any():
            return float("nan"), float("nan")
        return float(np.median(clean[shell])), float(np.median(clean[kept]))

    def check(self, t, m, name: str, img, les: dict, role: str, seg: tuple[np.ndarray, np.ndarray], ratio: float,
              what: str, how: str, why: str) -> None:
        """``seg`` = (the measured segment, its core) on the reference grid; ``ratio`` = reference / series voxel
        volume (independent samples per reference voxel)."""
        crit = f"4 core values within tolerance ({how})"
        got = m.value(img.key, name, "core", "median")
        if got is None:
            n_truth = self.truth_seen(les, role)
            if n_truth < MIN_SEEN:
                t.refused[crit] += 1
            else:
                t.check(crit, False, f"{what} {name}: no core median ({why}) though {n_truth} reference voxels see "
                                     f"only the truth core on {role}")
            return
        mask, core = seg
        valid = img.valid if img.valid is not None else np.ones(core.shape, bool)
        kept = seen_on_reference(core, self.ref, self.series_grid(role), SEEN_SHARE) & valid
        n = int(kept.sum())
        if n < MIN_SEEN:
            t.check(crit, False, f"{what} {name}: core median {got:.4g} reported, but only {n} core voxels have "
                                 f">= {SEEN_SHARE:.0%} of their footprint on {role} inside the core")
            return
        clean, floored = self.nf.on_reference(name)
        sd = self.nf.residual_sd(name, img.source, mask & valid)
        e0, e1 = float(np.median(clean[kept])), float(np.median(floored[kept]))
        spread = [e0, e1, noisy_median(clean[kept], sd), noisy_median(floored[kept], sd)]
        lo, hi = min(spread), max(spread)
        half_iqr = 0.5 * float(np.subtract(*np.percentile(clean[kept], [75, 25])))
        se = 1.253 * sd / math.sqrt(max(1.0, n * ratio))
        tol = 3.0 * se + half_iqr
        passed = bool(lo - tol <= got <= hi + tol) if np.isfinite(tol) else False
        t.check(crit, passed, f"{what} {name} core: {got:.4g} vs noise-free {e0:.4g}"
                              + (f" (expected {lo:.4g}..{hi:.4g} with noise and floor)" if hi - lo > 1e-9 else "")
                              + f", tol {tol:.3g} (3 SE {3 * se:.3g} from SD {sd:.3g}, half IQR {half_iqr:.3g}), "
                              f"{n} voxels seen on {role}, truth core seen by {self.truth_seen(les, role)}")
        t.by_image[(crit, name)][0] += int(passed)
        t.by_image[(crit, name)][1] += 1
