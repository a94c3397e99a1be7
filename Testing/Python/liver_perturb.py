"""Seeded perturbations of a real abdominal MR image and its expert liver label, as other scanners and protocols
would have written the same anatomy: a surface coil's bias field, lower SNR, another vendor's intensity scale,
other voxel sizes, axes stored in another order or direction, a field of view that misses the liver dome or tip.

Every perturbation moves the image and the truth together: the anatomy keeps its world (LPS) position, so a
click drawn in the perturbed truth is a click in the perturbed liver. Shared by the liver robustness tests
(``test_liver_robustness.py``) and ``benchmarks/validate_liver.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi


@dataclass
class Case:
    """A perturbed image, its truth (bool, z y x on the image's grid) and what was done."""

    image: sitk.Image
    truth: np.ndarray
    kind: str
    level: str
    role: str = "t2"  # the series role the image stands for
    lesions: np.ndarray | None = None  # inserted lesions (bool, z y x), for clicks on a lesion


def _like(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(ref)
    return out


def _world_coords(image: sitk.Image) -> np.ndarray:
    """World coordinates (3, z, y, x) of every voxel."""
    nx, ny, nz = image.GetSize()
    idx = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), 0).astype(float)
    d = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    world = np.tensordot(d, idx, axes=1) + np.asarray(image.GetOrigin())[:, None, None, None]
    return world.transpose(0, 3, 2, 1)


def body_of(image: sitk.Image) -> np.ndarray:
    """Rough body mask (signal above 10 % of the 99th percentile): where a coil field is normalised."""
    a = sitk.GetArrayViewFromImage(image)
    return a > 0.1 * np.percentile(a, 99)


# ---------------------------------------------------------------- intensity

def bias(image: sitk.Image, truth: np.ndarray, amplitude: float, rng: np.random.Generator) -> Case:
    """Multiplicative smooth field spanning 1 -/+ ``amplitude`` over the body: either a random second-order
    polynomial of the world position or a wide Gaussian bump (a surface coil's sensitivity) off-centre."""
    body = body_of(image)
    world = _world_coords(image)
    centre = np.array([world[i][body].mean() for i in range(3)])
    half = np.array([np.ptp(world[i][body]) / 2 for i in range(3)]) + 1e-6
    u = (world - centre[:, None, None, None]) / half[:, None, None, None]
    if rng.random() < 0.5:
        c = rng.normal(size=9)
        p = (c[0] * u[0] + c[1] * u[1] + 0.5 * c[2] * u[2] + c[3] * u[0] ** 2 + c[4] * u[1] ** 2
             + c[5] * u[0] * u[1] + 0.5 * c[6] * u[2] ** 2 + 0.5 * c[7] * u[0] * u[2] + 0.5 * c[8] * u[1] * u[2])
        shape = "polynomial"
    else:
        where = rng.uniform(-1.0, 1.0, 3) * np.array([0.8, 1.2, 0.5])  # nearer the front or back wall
        width = rng.uniform(0.6, 1.0)
        p = np.exp(-np.sum((u - where[:, None, None, None]) ** 2, axis=0) / (2 * width ** 2))
        shape = "gaussian coil"
    lo, hi = p[body].min(), p[body].max()
    field = 1.0 - amplitude + 2.0 * amplitude * (p - lo) / (hi - lo)
    field = np.clip(field, 1.0 - amplitude, None)  # outside the body: no lower than inside
    arr = sitk.GetArrayFromImage(image).astype(np.float32) * field.astype(np.float32)
    return Case(_like(arr, image), truth, "bias", f"+-{100 * amplitude:.0f}% {shape}")


def rician(image: sitk.Image, truth: np.ndarray, snr: float, rng: np.random.Generator) -> Case:
    """Magnitude of the signal plus complex Gaussian noise of sigma = liver median / ``snr``."""
    arr = sitk.GetArrayFromImage(image).astype(np.float64)
    sigma = float(np.median(arr[truth])) / snr
    noisy = np.hypot(arr + rng.normal(0, sigma, arr.shape), rng.normal(0, sigma, arr.shape))
    return Case(_like(noisy.astype(np.float32), image), truth, "noise", f"SNR {snr:g}")


def rescale(image: sitk.Image, truth: np.ndarray, scale: float, offset_fraction: float = 0.0) -> Case:
    """Stored values ``scale`` x signal (+ an offset, a fraction of the liver median), rounded to int16 as many
    scanners store magnitude images."""
    arr = sitk.GetArrayFromImage(image).astype(np.float64) * scale
    arr += offset_fraction * float(np.median(arr[truth]))
    stored = np.clip(np.round(arr), -32768, 32767).astype(np.int16)
    level = f"x{scale:g} int16" + (f" +{100 * offset_fraction:.0f}% offset" if offset_fraction else "")
    return Case(_like(stored, image), truth, "scale", level)


# ---------------------------------------------------------------- geometry

def resample(image: sitk.Image, truth: np.ndarray, spacing: tuple[float, float, float]) -> Case:
    """The same field of view on another grid (x y z mm): the signal averaged over the new, larger voxels (a
    Gaussian of the voxel's width where it grows), the truth by the 0.5 level of its linear interpolation."""
    old = np.asarray(image.GetSpacing())
    new = np.asarray(spacing, float)
    size = [max(1, int(round(n * o / s))) for n, o, s in zip(image.GetSize(), old, new, strict=True)]
    sigma = np.sqrt(np.maximum(new ** 2 - old ** 2, 0.0)) / 2.355
    src = sitk.Cast(image, sitk.sitkFloat32)
    if sigma.max() > 0:
        src = _like(ndi.gaussian_filter(sitk.GetArrayFromImage(src), (sigma / old)[::-1]), image)
    # keep the first voxel's outer corner where it was: a new grid over the same field of view
    origin = np.asarray(image.TransformContinuousIndexToPhysicalPoint([-0.5, -0.5, -0.5]))
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = origin + d @ (new / 2)
    ref = sitk.Image(size, sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(v) for v in new))
    ref.SetOrigin(tuple(float(v) for v in origin))
    ref.SetDirection(image.GetDirection())
    img = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    lab = sitk.Resample(_like(truth.astype(np.float32), image), ref, sitk.Transform(), sitk.sitkLinear, 0.0,
                        sitk.sitkFloat32)
    level = "x".join(f"{v:g}" for v in new) + " mm"
    return Case(img, sitk.GetArrayFromImage(lab) >= 0.5, "resample", level)


def reorient(image: sitk.Image, truth: np.ndarray, perm: tuple[int, int, int], flips: tuple[bool, bool, bool]
             ) -> Case:
    """The same voxels stored with index axes permuted (new axis m = old axis ``perm[m]``) and reversed where
    ``flips``; origin and direction cosines rewritten so that every voxel keeps its world position."""
    arr = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (i, j, k)
    lab = truth.transpose(2, 1, 0)
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    size = np.asarray(image.GetSize())
    corner = np.zeros(3)
    for m in range(3):
        if flips[m]:
            corner[perm[m]] = size[perm[m]] - 1
    arr, lab = arr.transpose(perm), lab.transpose(perm)
    for m in range(3):
        if flips[m]:
            arr, lab = np.flip(arr, m), np.flip(lab, m)
    new_d = np.stack([d[:, perm[m]] * (-1 if flips[m] else 1) for m in range(3)], axis=1)
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    out.SetSpacing(tuple(image.GetSpacing()[p] for p in perm))
    out.SetDirection(tuple(float(v) for v in new_d.ravel()))
    out.SetOrigin(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in corner]))
    names = "ijk"
    level = " ".join(("-" if flips[m] else "") + names[perm[m]] for m in range(3))
    return Case(out, np.ascontiguousarray(lab.transpose(2, 1, 0)), "orientation", level)


def cut_fov(image: sitk.Image, truth: np.ndarray, end: str, fraction: float) -> Case:
    """A field of view that ends inside the liver: its top ("dome") or bottom ("tip") ``fraction`` of the
    liver's cranio-caudal extent is not imaged (slices removed along the index axis nearest world z)."""
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    axis = int(np.argmax(np.abs(d[2])))  # index axis (x y z order) nearest world z (LPS: +z superior)
    zyx_axis = 2 - axis
    present = np.nonzero(truth.any(axis=tuple(a for a in range(3) if a != zyx_axis)))[0]
    first, last = int(present.min()), int(present.max())
    cut = int(round(fraction * (last - first + 1)))
    superior_at_high = d[2, axis] > 0
    drop_high = (end == "dome") == superior_at_high
    n = truth.shape[zyx_axis]
    keep = slice(0, last + 1 - cut) if drop_high else slice(first + cut, n)
    sl = [slice(None)] * 3
    sl[zyx_axis] = keep
    lower = [0, 0, 0]
    upper = [0, 0, 0]
    lower[axis] = keep.start
    upper[axis] = n - keep.stop
    img = sitk.Crop(image, lower, upper)
    return Case(img, truth[tuple(sl)].copy(), "fov", f"{end} {100 * fraction:.0f}% out")


def tip_contact(image: sitk.Image, truth: np.ndarray, rng: np.random.Generator) -> Case:
    """Tissue of the liver's signal (abdominal wall muscle or bowel on a T2 image) against the liver's inferior
    tip without a fat plane, widening caudally as the abdomen below the liver does: a band of 8-14 mm round the
    tip's lowest two sections, then sections below it that grow by 4-8 mm in radius per centimetre, over 4-8 cm,
    inside the body; signal 0.9-1.05 of the liver's core median with a texture of 3-6 % (drawn), blurred weights.
    Source: the CHAOS development cases' expert labels end at the tip while the abdominal wall and bowel below it
    can match the liver's T2 signal (benchmarks/validate_liver_cases.py, case 10). Truth = the liver label."""
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    axis = int(np.argmax(np.abs(d[2])))  # index axis (x y z order) nearest world z (LPS: +z superior)
    if axis != 2:
        raise ValueError("tip_contact expects axial slices along the image's third axis")
    step = -1 if d[2, 2] > 0 else 1  # array index step towards the feet
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    spacing = image.GetSpacing()[::-1]
    present = np.nonzero(truth.any(axis=(1, 2)))[0]
    tip = int(present.min()) if step == -1 else int(present.max())
    band, growth = float(rng.uniform(8.0, 14.0)), float(rng.uniform(4.0, 8.0))
    length, ratio = float(rng.uniform(40.0, 80.0)), float(rng.uniform(0.9, 1.05))
    body = body_of(image)
    tissue = np.zeros(truth.shape, bool)
    foot = truth[tip]
    for k in range(-1, int(length / spacing[0]) + 1):
        z = tip + step * k
        if not 0 <= z < truth.shape[0]:
            break
        radius = band + max(k, 0) * growth * spacing[0] / 10.0
        ring = ndi.distance_transform_edt(~(truth[z] if k < 1 else foot), sampling=spacing[1:]) <= radius
        tissue[z] = ring & ~truth[z] & body[z]
    liver = _core_median(arr, truth)
    texture = 1.0 + ndi.gaussian_filter(rng.normal(0.0, 1.0, arr.shape), 1.0) * float(rng.uniform(0.03, 0.06)) * 2.5
    weight = _soft(tissue, spacing) * ~truth
    out = arr * (1.0 - weight) + weight * ratio * liver * texture.astype(np.float32)
    level = f"band {band:.0f} mm, +{growth:.0f} mm/cm over {length:.0f} mm, {ratio:.2f} x liver"
    return Case(_like(out.astype(np.float32), image), truth.copy(), "tip", level)


# ---------------------------------------------------------------- clicks

def clicks(case: Case, kind: str, n: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """``n`` clicks (LPS mm) drawn in the truth: "deep" (>= 15 mm inside), "edge" (3-8 mm inside the outline, as
    a reader clicks near the capsule), or "vessel" (inside the liver, 2-8 mm from an intrahepatic vessel: voxels
    of the label whose signal is more than 3 robust sigmas from the liver's median, dark or bright)."""
    img = case.image
    spacing = img.GetSpacing()[::-1]
    depth = ndi.distance_transform_edt(case.truth, sampling=spacing)
    if kind == "deep":
        pool = depth >= 15.0
    elif kind == "edge":
        pool = (depth >= 3.0) & (depth <= 8.0)
    elif kind == "vessel":
        arr = sitk.GetArrayFromImage(img).astype(float)
        vals = arr[case.truth]
        med = np.median(vals)
        sigma = 1.4826 * np.median(np.abs(vals - med))
        vessel = case.truth & (np.abs(arr - med) > 3 * sigma) & (depth >= 8.0)
        near = ndi.distance_transform_edt(~vessel, sampling=spacing)
        pool = case.truth & (near >= 2.0) & (near <= 8.0) & (depth >= 5.0)
    else:
        raise ValueError(kind)
    where = np.argwhere(pool)
    if len(where) == 0:
        return []
    pick = where[rng.choice(len(where), min(n, len(where)), replace=False)]
    return [img.TransformIndexToPhysicalPoint([int(v) for v in p[::-1]]) for p in pick]


def lesion_clicks(case: Case, n: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """``n`` clicks (LPS mm) on inserted lesions, >= 3 mm inside one: a reader aiming at the liver hits a lesion."""
    if case.lesions is None or not case.lesions.any():
        return []
    depth = ndi.distance_transform_edt(case.lesions, sampling=case.image.GetSpacing()[::-1])
    where = np.argwhere(depth >= min(3.0, float(depth.max())))
    pick = where[rng.choice(len(where), min(n, len(where)), replace=False)]
    return [case.image.TransformIndexToPhysicalPoint([int(v) for v in p[::-1]]) for p in pick]


def dice(mask: sitk.Image, truth: np.ndarray) -> float:
    m = sitk.GetArrayViewFromImage(mask) > 0
    return 2.0 * float((m & truth).sum()) / float(m.sum() + truth.sum())


# ---------------------------------------------------------------- the catalogue

ORIENTATIONS = {  # (perm, flips): stored as other scanners write the same anatomy
    "flipped x": ((0, 1, 2), (True, False, False)),
    "flipped y z": ((0, 1, 2), (False, True, True)),
    "coronal storage": ((0, 2, 1), (False, True, False)),
    "sagittal storage": ((1, 2, 0), (False, True, True)),
}
SPACINGS = ((1.0, 1.0, 5.0), (2.0, 2.0, 6.0), (1.5, 1.5, 3.0), (0.9, 1.8, 4.0))


def catalogue(image: sitk.Image, truth: np.ndarray, seed: int) -> list[Case]:
    """One case per kind and level, drawn with ``seed``; a compound case adds them up as a real study would."""
    rng = np.random.default_rng(seed)
    cases = [Case(image, truth, "none", "original")]
    cases += [bias(image, truth, a, rng) for a in (0.3, 0.4)]
    cases += [rician(image, truth, s, rng) for s in (20.0, 10.0)]
    cases += [rescale(image, truth, s) for s in (0.1, 20.0)] + [rescale(image, truth, 1.0, 0.3)]
    cases += [resample(image, truth, s) for s in SPACINGS]
    cases += [reorient(image, truth, *ORIENTATIONS[k]) for k in ORIENTATIONS]
    cases += [cut_fov(image, truth, end, f) for end in ("dome", "tip") for f in (0.2, 0.35)]
    cases.append(compound(image, truth, rng))
    return cases


def compound(image: sitk.Image, truth: np.ndarray, rng: np.random.Generator) -> Case:
    """Bias, noise, another grid, another storage order and another intensity scale together (each drawn)."""
    levels = []
    c = bias(image, truth, float(rng.uniform(0.25, 0.4)), rng)
    levels.append(c.level)
    c = rician(c.image, c.truth, float(rng.uniform(10.0, 25.0)), rng)
    levels.append(c.level)
    c = resample(c.image, c.truth, SPACINGS[int(rng.integers(len(SPACINGS)))])
    levels.append(c.level)
    names = list(ORIENTATIONS)
    c = reorient(c.image, c.truth, *ORIENTATIONS[names[int(rng.integers(len(names)))]])
    levels.append(c.level)
    c = rescale(c.image, c.truth, float(10 ** rng.uniform(-1, 1.3)))
    levels.append(c.level)
    return Case(c.image, c.truth, "compound", "; ".join(levels))


# ---------------------------------------------------------------- other sequences and livers with metastases

# Labels of the CHAOS MR ground truth (README of ../shared/data/chaos-abdomen-mr).
LIVER, RIGHT_KIDNEY, LEFT_KIDNEY, SPLEEN = 1, 2, 3, 4
ORGANS = {"spleen": (SPLEEN,), "kidneys": (RIGHT_KIDNEY, LEFT_KIDNEY)}

# Organ signal relative to the liver's (median to median), ranges drawn per case. On the T2 image the spleen and
# kidneys are ~2x the liver (longer T2). Sources: ../shared/docs/liver-mri-brief.md section 2 (in the
# hepatobiliary phase the functioning liver is bright, tissue without hepatocytes is not; the kidneys excrete
# the other half of gadoxetate, so their parenchyma is moderately enhanced); liver-to-spleen signal ratio in the
# HBP ~1.5-2 in normal function (e.g. Motosugi U et al., J Magn Reson Imaging 2009;30:1042-1046; Verloh N et
# al., Eur Radiol 2014;24:1013-1019), i.e. spleen 0.5-0.7 of the liver; unenhanced T1: liver-to-spleen ratio
# ~1.1-1.3 (the liver's shorter T1; the ratio is used as a steatosis reference on in-phase images), renal
# cortex/medulla ~0.8-1.0 of the liver; "iso": spleen and kidneys at the liver's signal, where only the anatomy
# (the fat planes, the capsule's shape) separates them: the hardest case, e.g. a fatty or poorly functioning
# liver in the HBP.
CONTRASTS = {
    "hbp": ("t1_hepatobiliary", {"spleen": (0.5, 0.7), "kidneys": (0.5, 0.7)}),
    "t1": ("t1_pre", {"spleen": (1 / 1.4, 1 / 1.2), "kidneys": (0.8, 1.0)}),
    "iso": ("t2", {"spleen": (1.0, 1.0), "kidneys": (1.0, 1.0)}),
}


def _core_median(arr: np.ndarray, mask: np.ndarray) -> float:
    """Median signal of an organ away from its partial-volume edge (in-plane erosion by 2 voxels)."""
    core = ndi.binary_erosion(mask, np.ones((1, 5, 5), bool))
    return float(np.median(arr[core if core.sum() > 100 else mask]))


def _soft(mask: np.ndarray, spacing_zyx, sigma_mm: float = 1.25) -> np.ndarray:
    """A label indicator blurred by a Gaussian of ``sigma_mm`` (about one in-plane voxel): partial-volume weights."""
    return ndi.gaussian_filter(mask.astype(np.float32), [sigma_mm / s for s in spacing_zyx])


def organ_contrast(image: sitk.Image, labels: np.ndarray, contrast: str, rng: np.random.Generator) -> Case:
    """The organ contrast of another sequence: each labelled organ's signal multiplied so that its median becomes
    the drawn ratio (``CONTRASTS``) times the liver's, with blurred label weights (partial volume at every organ
    boundary); the texture, the vessels and every unlabelled tissue are kept. Truth = the liver label."""
    role, ratios = CONTRASTS[contrast]
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    liver = _core_median(arr, labels == LIVER)
    spacing = image.GetSpacing()[::-1]
    field = np.ones_like(arr)
    drawn = []
    for organ, labs in ORGANS.items():
        mask = np.isin(labels, labs)
        ratio = float(rng.uniform(*ratios[organ]))
        factor = ratio * liver / _core_median(arr, mask)
        field += (factor - 1.0) * _soft(mask, spacing)
        drawn.append(f"{organ} {ratio:.2f}")
    return Case(_like(arr * field, image), labels == LIVER, "contrast", f"{contrast}: " + ", ".join(drawn), role)


def metastases(case: Case, rng: np.random.Generator, contrast: str, n: int | None = None) -> Case:
    """3-8 lesions of 10-45 mm (ellipsoids, blurred edges) inserted in the liver label of ``case``: half deep,
    half reaching the capsule (centre closer to the outline than the radius, the lesion cut by the label), the
    first one large and necrotic (centre and rim of different signal). "hypo": 0.3-0.6 of the liver (HBP, T1),
    necrotic centre 0.15-0.25 with a 0.5-0.7 rim; "hyper": 1.5-3x (T2), necrotic centre 3-4x with a 1.3-1.6x
    rim. Source: ../shared/docs/liver-mri-brief.md section 3 (HBP hypointensity; mild-moderate T2
    hyperintensity, necrotic centre brighter). Expert labels include lesions in the liver: truth unchanged."""
    img, truth = case.image, case.truth
    spacing = np.asarray(img.GetSpacing()[::-1])
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    depth = ndi.distance_transform_edt(truth, sampling=spacing)
    liver_w = _soft(truth, spacing)
    field = np.ones_like(arr)
    taken = np.zeros(truth.shape, bool)
    count = int(n if n is not None else rng.integers(3, 9))
    grid = np.indices(truth.shape, dtype=np.float32)
    sizes = []
    for i in range(count):
        necrotic = i == 0
        diameter = float(rng.uniform(35.0, 45.0) if necrotic else rng.uniform(10.0, 45.0))
        r = diameter / 2
        free = ndi.distance_transform_edt(~taken, sampling=spacing) > r + 5 if taken.any() else np.ones_like(truth)
        if i % 2 == 1:  # reaching the capsule
            pool = truth & free & (depth >= 0.3 * r) & (depth <= 0.8 * r)
        else:
            pool = truth & free & (depth >= r + 3.0)
        where = np.argwhere(pool)
        if len(where) == 0:
            continue
        c = where[int(rng.integers(len(where)))]
        axes = r * rng.uniform(0.75, 1.25, 3)
        rho = np.sqrt(sum(((grid[a] - c[a]) * spacing[a] / axes[a]) ** 2 for a in range(3)))
        inside = rho <= 1.0
        w = _soft(inside, spacing, 1.5) * liver_w
        if contrast == "hypo":
            f = rng.uniform(0.5, 0.7) if necrotic else rng.uniform(0.3, 0.6)
        else:
            f = rng.uniform(1.3, 1.6) if necrotic else rng.uniform(1.5, 3.0)
        field *= 1.0 + (f - 1.0) * w
        if necrotic:
            fc = rng.uniform(0.15, 0.25) if contrast == "hypo" else rng.uniform(3.0, 4.0)
            field *= 1.0 + (fc / f - 1.0) * _soft(rho <= 0.6, spacing, 1.5) * liver_w
        taken |= inside & truth
        sizes.append(f"{diameter:.0f}{'n' if necrotic else ''}{'c' if i % 2 == 1 else ''}")
    level = f"{case.level.split(':')[0]} {contrast} mets: {'/'.join(sizes)} mm; {case.level}"
    return Case(_like(arr * field, img), truth, "mets", level, case.role, taken)


def sequence_catalogue(image: sitk.Image, labels: np.ndarray, seed: int) -> list[Case]:
    """Other sequences' organ contrast, and livers with metastases on them, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    truth = labels == LIVER
    contrast = {c: organ_contrast(image, labels, c, rng) for c in CONTRASTS}
    cases = list(contrast.values())
    cases.append(metastases(contrast["hbp"], rng, "hypo"))
    cases.append(metastases(contrast["t1"], rng, "hypo"))
    cases.append(metastases(Case(image, truth, "none", "t2", "t2"), rng, "hyper"))
    cases.append(metastases(contrast["iso"], rng, "hyper"))
    return cases
