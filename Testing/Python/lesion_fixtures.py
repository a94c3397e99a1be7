"""Shared, cached inputs of the lesion tests: phantom studies and truth masks on a series' grid, and a drawn
synthetic liver with random lesions (so nothing is tuned to the phantom's fixed catalogue)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import SimpleITK as sitk

from LiverMetsReviewLib.lesions.channels import LesionImages, lesion_channels
from LiverMetsReviewLib.phantom import generate_phantom

LIVER_LABEL = 4  # phantom organ label of the liver (order of phantom_tissues.json organs)


@cache
def phantom(seed: int, scenario: str = "normal", size: str = "standard"):
    return generate_phantom(seed, scenario, size=size)


@cache
def phantom_channels(seed: int, scenario: str = "normal", size: str = "standard") -> LesionImages:
    return lesion_channels(phantom(seed, scenario, size).series)


def truth_mask(study, label: int, reference: sitk.Image, role: str = "t1_hepatobiliary") -> np.ndarray:
    """Reference voxels at least half covered by the truth label (fine truth grid averaged, breath-hold shift)."""
    fine = sitk.Cast(study.labelmap == label, sitk.sitkFloat32)
    shift = study.shift_mm(role)
    tf = sitk.TranslationTransform(3, [-v for v in shift])
    return sitk.GetArrayFromImage(sitk.Resample(fine, reference, tf, sitk.sitkLinear, 0.0)) >= 0.5


def catalogue_lesions(scenario: str) -> list[dict]:
    """The scenario's lesions from the catalogue alone (no phantom is generated: cheap at test collection)."""
    from LiverMetsReviewLib.phantom.lesions import select_lesions
    from LiverMetsReviewLib.phantom.scenarios import get_scenario

    return select_lesions(float(get_scenario(scenario)["liver_pdff_percent"]))


# The one standard phantom of the lesion tests: the steatosis scenario holds every lesion of the catalogue (the
# normal one's plus fat sparing, hypersteatosis and a metastasis mimicking fat sparing).
STUDY = (4, "steatosis")


def liver_image(study) -> sitk.Image:
    return sitk.Cast(study.labelmap == LIVER_LABEL, sitk.sitkUInt8)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1, int(a.sum()) + int(b.sum()))


# ---------------------------------------------------------------- drawn synthetic studies

@dataclass
class DrawnStudy:
    images: LesionImages
    truth: np.ndarray           # bool (z, y, x) on the reference grid: >= half lesion
    liver: sitk.Image
    centre_lps: np.ndarray
    radii_mm: np.ndarray        # semi-axes (x, y, z) before lobulation
    axial_diameter_mm: float    # measured on the fine truth: longest in-plane chord of the central slab
    vessel_lps: np.ndarray | None = None  # a point on the axis of a vessel running through the lesion
    nodule_lps: np.ndarray | None = None  # the centre of a nodule inside the lesion (a recurrence)





def _grid(size_xyz, spacing, origin=(-60.0, -60.0, -45.0)) -> sitk.Image:
    img = sitk.Image([int(v) for v in size_xyz], sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def _box_average(fine: np.ndarray, factor: tuple[int, int, int]) -> np.ndarray:
    fz, fy, fx = factor
    z, y, x = (s // f for s, f in zip(fine.shape, factor, strict=True))
    return fine[: z * fz, : y * fy, : x * fx].reshape(z, fz, y, fy, x, fx).mean(axis=(1, 3, 5))


def _longest_chord_mm(mask2d: np.ndarray, spacing: float) -> float:
    edge = mask2d & ~(np.pad(mask2d, 1)[1:-1, 2:] & np.pad(mask2d, 1)[1:-1, :-2]
                      & np.pad(mask2d, 1)[2:, 1:-1] & np.pad(mask2d, 1)[:-2, 1:-1])
    pts = np.argwhere(edge) * spacing
    if len(pts) < 2:
        return spacing
    d2 = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    u = (pts[j] - pts[i]) / np.sqrt(d2[i, j])
    return float(np.sqrt(d2[i, j])) + spacing * (abs(u[0]) + abs(u[1])) / 2  # ends half-way to the corners


# Fine truth grid 0.75 mm; each channel is a box average of it: (z, y, x) factors.
FINE_MM = 0.75
FACTORS = {"t1_hepatobiliary": (4, 2, 2), "t1_portal_venous": (4, 2, 2), "t2": (8, 2, 2), "dwi": (8, 4, 4),
           "adc_scanner": (8, 4, 4)}
VESSEL_LEVEL = {"t1_hepatobiliary": 0.85, "t1_portal_venous": 1.6, "t2": 2.5, "dwi": 0.9, "adc_scanner": 1.6}


BLOCK_SHAPE = (120, 160, 160)                    # fine voxels (z, y, x): 90 x 120 x 120 mm
BLOCK_CORNER = np.array([-60.0, -60.0, -45.0])   # (x, y, z) mm of the block's outer corner


def _lobulated_ellipsoid(rng: np.random.Generator, min_radius: float):
    """A drawn lobulated ellipsoid in the fine truth block: semi-axes ``min_radius``-16 (in-plane) and -14 mm
    (z), centre within 8 mm of the block's middle, a random in-plane angle and 2-5 lobes of up to 15 %.
    Returns the fine grid's x and y (broadcastable, mm), the centre (x, y, z), the semi-axes and the mask."""
    z, y, x = [(np.arange(n) + 0.5) * FINE_MM + BLOCK_CORNER[a]
               for n, a in zip(BLOCK_SHAPE, (2, 1, 0), strict=True)]
    zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
    radii = np.array([rng.uniform(min_radius, 16.0), rng.uniform(min_radius, 16.0), rng.uniform(min_radius, 14.0)])
    centre = rng.uniform(-8, 8, 3)
    ang = rng.uniform(0, np.pi)
    dx, dy = xx - centre[0], yy - centre[1]
    u, v = np.cos(ang) * dx + np.sin(ang) * dy, -np.sin(ang) * dx + np.cos(ang) * dy
    q = np.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2 + ((zz - centre[2]) / radii[2]) ** 2)
    lobes = 1.0 + rng.uniform(0.0, 0.15) * np.sin(rng.integers(2, 6) * np.arctan2(v, u) + rng.uniform(0, 6.3))
    return xx, yy, centre, radii, q <= lobes


def drawn_study(seed: int) -> DrawnStudy:
    """A noisy liver block with one random lobulated ellipsoid lesion, a vessel beside it, and drawn contrasts.

    Each channel's lesion/liver contrast is drawn independently (near iso, darker or brighter), so a lesion
    may be invisible on one series; HBP is hypointense (0.3-0.7) as for every lesion without hepatocytes.
    Channels live on grids of different resolution (box averages of a 0.75 mm truth: partial volume), with
    Gaussian noise at a drawn SNR. The reference grid is the HBP's: 1.5 x 1.5 x 3 mm.
    """
    rng = np.random.default_rng(seed)
    xx, yy, centre, radii, lesion = _lobulated_ellipsoid(rng, 3.0)
    vr = rng.uniform(2.0, 4.0)
    vx = centre[0] + 1.15 * radii[:2].max() + vr + rng.uniform(2.0, 6.0)
    vessel = ((xx - vx) ** 2 + (yy - centre[1]) ** 2 <= vr ** 2) & ~lesion
    images, truth, liver = _render(lesion, vessel, BLOCK_CORNER, rng, _drawn_contrast)
    slabs = _box_average(lesion.astype(np.float32), (4, 1, 1)) >= 0.5  # reference slices, 0.75 mm in-plane
    diameter = max(_longest_chord_mm(s, FINE_MM) for s in slabs if s.any())
    return DrawnStudy(images, truth, liver, centre, radii, diameter)


def _drawn_contrast(channel: str, rng: np.random.Generator, snr: float) -> tuple[float, float]:
    """Lesion/liver signal ratio (HBP hypointense; any other series darker, brighter or near iso) and the noise
    SD relative to the liver's level (the study's SNR on every series)."""
    if channel == "t1_hepatobiliary":
        return rng.uniform(0.3, 0.7), 1.0 / snr
    options = [rng.uniform(0.25, 0.8), rng.uniform(1.3, 3.0), rng.uniform(0.95, 1.05)]
    return options[rng.choice(3, p=[0.45, 0.4, 0.15])], 1.0 / snr


def _metastasis_contrast(channel: str, rng: np.random.Generator, snr: float) -> tuple[float, float]:
    """A metastasis (../shared/docs/lesion-parameter-ranges.md): darker than liver on the HBP and portal venous
    phase, brighter on T2 (longer T2) and on high-b DWI (T2 shine-through and restriction), ADC 0.65-1.2 x the
    liver's. Noise: the T1 and T2 series at the study's SNR, high-b DWI at a third of it (b = 800 s/mm^2 keeps
    about a third of the liver's signal), ADC with a 10 % SD (1 / (b x SNR_b) ~ 120 x 10^-6 mm^2/s)."""
    if channel.startswith("t1_"):
        return rng.uniform(*T1_RATIO[channel]), 1.0 / snr
    if channel == "adc_scanner":
        return rng.uniform(0.65, 1.2), 0.1
    return rng.uniform(1.3, 3.0), (3.0 if channel == "dwi" else 1.0) / snr


# A whole gadoxetate study: every T1 phase on the reference grid, T2 on 6 mm slices, DWI/ADC 3 x 3 x 6 mm.
STUDY_FACTORS = {"t1_pre": (4, 2, 2), "t1_arterial": (4, 2, 2), "t1_portal_venous": (4, 2, 2),
                 "t1_transitional": (4, 2, 2), "t1_hepatobiliary": (4, 2, 2), "t2": (8, 2, 2), "dwi": (8, 4, 4),
                 "adc_scanner": (8, 4, 4)}
# Metastasis/liver T1 signal ratio per phase (lesion-parameter-ranges.md: long T1, hypovascular to rim-enhancing,
# no gadoxetate uptake): darker before contrast, near iso to brighter in the arterial phase, darker afterwards.
T1_RATIO = {"t1_pre": (0.6, 0.9), "t1_arterial": (0.8, 1.4), "t1_portal_venous": (0.5, 0.9),
            "t1_transitional": (0.4, 0.8), "t1_hepatobiliary": (0.3, 0.7)}


def small_sphere_study(seed: int, diameter_mm: tuple[float, float] = (8.0, 10.0)) -> DrawnStudy:
    """A drawn metastasis-like sphere of 8-10 mm at a random sub-voxel position in a noisy liver block.

    The case where thick slices matter most: on the 6 mm T2 and 3 x 3 x 6 mm DWI (box averages of the 0.75 mm
    truth, as in :func:`drawn_study`) the lesion's centre reads more contrast than its other whole voxels, and
    its edge voxels are about half covered on the 1.5 x 1.5 x 3 mm reference grid.
    """
    rng = np.random.default_rng(seed)
    shape = (120, 160, 160)
    corner = np.array([-60.0, -60.0, -45.0])
    z, y, x = [(np.arange(n) + 0.5) * FINE_MM + corner[a] for n, a in zip(shape, (2, 1, 0), strict=True)]
    radius = rng.uniform(*diameter_mm) / 2.0
    centre = rng.uniform(-3.0, 3.0, 3)
    lesion = ((x[None, None, :] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2
              + (z[:, None, None] - centre[2]) ** 2) <= radius ** 2
    images, truth, liver = _render(lesion, np.zeros_like(lesion), corner, rng, _metastasis_contrast, STUDY_FACTORS)
    return DrawnStudy(images, truth, liver, centre, np.full(3, radius), 2.0 * radius)


def _block_series(role: str, factors: tuple[int, int, int], signal: np.ndarray, noise: float,
                  rng: np.random.Generator, corner: np.ndarray):
    """One series of a drawn study: the fine ``signal`` (relative to the liver's) at the role's level, box-averaged
    on the series' grid (``factors`` fine voxels per voxel, z y x), Gaussian noise of ``noise`` times the level, and
    the grid placed in the fine block whose outer corner is ``corner`` (x, y, z mm)."""
    from LiverMetsReviewLib.series import Series

    level = 1200.0 if role == "adc_scanner" else 1000.0
    avg = _box_average(level * signal, factors)
    img = sitk.GetImageFromArray((avg + rng.normal(0.0, level * noise, avg.shape)).astype(np.float32))
    sp = [FINE_MM * factors[2], FINE_MM * factors[1], FINE_MM * factors[0]]
    img.SetSpacing(sp)
    img.SetOrigin([float(corner[a] + sp[a] / 2) for a in range(3)])
    return Series(role, [img], [{"b_value": 800.0}] if role == "dwi" else [{}])


def _render(lesion: np.ndarray, vessel: np.ndarray, corner: np.ndarray, rng: np.random.Generator,
            contrast, factors: dict | None = None,
            vessel_level: dict | None = None) -> tuple[LesionImages, np.ndarray, sitk.Image]:
    """Every channel as the box average of the fine truth on its own grid, with Gaussian noise at a drawn SNR;
    the truth is the reference (HBP) voxels at least half lesion."""
    liver_fine = ~lesion & ~vessel
    snr = rng.uniform(15.0, 40.0)
    series = []
    for c, f in (factors or FACTORS).items():
        k, noise = contrast(c, rng, snr)
        signal = liver_fine + k * lesion + (vessel_level or VESSEL_LEVEL).get(c, 1.0) * vessel
        series.append(_block_series(c, f, signal, noise, rng, corner))
    images = lesion_channels(series)
    truth = _box_average(lesion.astype(np.float32), FACTORS["t1_hepatobiliary"]) >= 0.5
    liver = sitk.GetImageFromArray((_box_average(liver_fine.astype(np.float32), (4, 2, 2)) >= 0.5).astype(np.uint8))
    liver.CopyInformation(images.reference)
    return images, truth, liver


# Focal fat with a vessel running through it undisplaced (brief section 4): signal / liver signal per series. Fat
# lowers the fat-suppressed T1 phases and T2 and raises the Dixon fat image; blood has no fat, is darker than the
# liver before contrast and brighter from the portal venous phase on (gadoxetate is extracellular first).
FAT_RATIO = {"t1_pre": (0.75, 0.92), "t1_arterial": (0.75, 0.92), "t1_portal_venous": (0.75, 0.92),
             "t1_transitional": (0.75, 0.92), "t1_hepatobiliary": (0.75, 0.92), "t2": (0.85, 0.97),
             "dwi": (0.9, 1.0), "adc_scanner": (0.95, 1.05), "dixon_fat": (1.5, 3.0)}
FAT_FACTORS = {**STUDY_FACTORS, "dixon_fat": (4, 2, 2)}
BLOOD_LEVEL = {**VESSEL_LEVEL, "t1_pre": 0.7, "t1_arterial": 1.3, "t1_transitional": 1.4, "dixon_fat": 0.1}


def fat_with_vessel_study(seed: int) -> DrawnStudy:
    """A drawn focal-fat area (lobulated ellipsoid, 8-16 mm semi-axes) with a 3-6 mm vessel running straight through
    it, 0-40 % of its in-plane radius from its centre and undisplaced: the vessel is not lesion (the truth is the
    fat round it). Every series of a gadoxetate study plus the Dixon fat image, each a box average of the 0.75 mm
    truth on its own grid, as :func:`drawn_study`."""
    rng = np.random.default_rng(seed)
    xx, yy, centre, radii, inside = _lobulated_ellipsoid(rng, 8.0)
    vr, off, phi = rng.uniform(1.5, 3.0), rng.uniform(0.0, 0.4) * radii[:2].min(), rng.uniform(0, 2 * np.pi)
    vessel = (xx - centre[0] - off * np.cos(phi)) ** 2 + (yy - centre[1] - off * np.sin(phi)) ** 2 <= vr ** 2
    lesion = inside & ~vessel

    def contrast(channel: str, rng: np.random.Generator, snr: float) -> tuple[float, float]:
        return rng.uniform(*FAT_RATIO[channel]), (3.0 if channel == "dwi" else 1.0) / snr

    images, truth, liver = _render(lesion, vessel, BLOCK_CORNER, rng, contrast, FAT_FACTORS, BLOOD_LEVEL)
    on_vessel = centre + np.array([off * np.cos(phi), off * np.sin(phi), 0.0])
    return DrawnStudy(images, truth, liver, centre, radii, 2.0 * float(radii[:2].max()), on_vessel)


# FNH-like nodule after chemotherapy (lesion-parameter-ranges.md S25: 73 % retain gadoxetate in a rim on the HBP, the
# inverse of a metastasis' target; FNH ADC 1200-1800 like the liver's; arterial hyperenhancement, T2 mildly bright):
# signal / liver signal as (core, rim) per series, drawn around these centres.
RIM_NODULE_RATIO = {"t1_pre": (0.9, 0.9), "t1_arterial": (1.9, 1.9), "t1_portal_venous": (1.0, 1.1),
                    "t1_transitional": (0.87, 1.13), "t1_hepatobiliary": (0.67, 1.17), "t2": (1.45, 1.45),
                    "dwi": (1.1, 1.1), "adc_scanner": (1.0, 1.0)}


def rim_nodule_study(seed: int, ratios: dict | None = None, diameter_mm: tuple[float, float] = (9.0, 11.0),
                     core_share: tuple[float, float] = (0.4, 0.55)) -> DrawnStudy:
    """A drawn 9-11 mm FNH-like nodule whose HBP-dark core (40-55 % of its radius) sits inside a rim that retains
    gadoxetate (HBP brighter than the liver): clicked in the core, the rim is a second compartment that no mixture
    of liver and core explains. Box averages of the 0.75 mm truth on each series' grid, as :func:`small_sphere_study`;
    the truth is the reference voxels at least half nodule (core + rim)."""
    rng = np.random.default_rng(seed)
    shape = (120, 160, 160)
    corner = np.array([-60.0, -60.0, -45.0])
    z, y, x = [(np.arange(n) + 0.5) * FINE_MM + corner[a] for n, a in zip(shape, (2, 1, 0), strict=True)]
    radius = rng.uniform(*diameter_mm) / 2.0
    core_radius = rng.uniform(*core_share) * radius
    centre = rng.uniform(-3.0, 3.0, 3)
    d2 = (x[None, None, :] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2 + (z[:, None, None] - centre[2]) ** 2
    core, nodule = d2 <= core_radius ** 2, d2 <= radius ** 2
    snr = rng.uniform(25.0, 40.0)
    series = []
    for c, f in STUDY_FACTORS.items():
        k_core, k_rim = (k * rng.uniform(0.97, 1.03) for k in (ratios or RIM_NODULE_RATIO)[c])
        noise = {"dwi": 3.0 / snr, "adc_scanner": 0.1}.get(c, 1.0 / snr)
        signal = ~nodule + k_core * core + k_rim * (nodule & ~core)
        series.append(_block_series(c, f, signal, noise, rng, corner))
    images = lesion_channels(series)
    truth = _box_average(nodule.astype(np.float32), STUDY_FACTORS["t1_hepatobiliary"]) >= 0.5
    liver = sitk.GetImageFromArray(np.ones(truth.shape, np.uint8))
    liver.CopyInformation(images.reference)
    return DrawnStudy(images, truth, liver, centre, np.full(3, radius), 2.0 * radius)


# A large colorectal metastasis (lesion-parameter-ranges.md sections 2-4): a viable rim of 3-6 mm that restricts
# (ADC 800-1400 against a liver of about 1200), enhances from the arterial phase on (rim arterial RE 30-100 %) and
# stays brighter than the liver on the portal venous phase, round a necrotic core (ADC 1800-2600, T2 2.2-4 x the
# liver's, no enhancement). Signal / liver signal as (core, rim) ranges per series.
RIM_METASTASIS_RATIO = {"t1_pre": ((0.6, 0.8), (0.8, 0.9)), "t1_arterial": ((0.6, 0.8), (1.3, 1.8)),
                        "t1_portal_venous": ((0.6, 0.8), (1.15, 1.3)), "t1_transitional": ((0.6, 0.9), (0.8, 1.0)),
                        "t1_hepatobiliary": ((0.5, 0.8), (0.5, 0.7)), "t2": ((2.2, 4.0), (1.3, 2.2)),
                        "dwi": ((1.2, 2.0), (1.5, 2.0)), "adc_scanner": ((1.5, 2.2), (0.7, 1.0))}


def _fine_axes():
    z, y, x = [(np.arange(n) + 0.5) * FINE_MM + BLOCK_CORNER[a] for n, a in zip(BLOCK_SHAPE, (2, 1, 0), strict=True)]
    return z[:, None, None], y[None, :, None], x[None, None, :]


def _render_parts(lesion: np.ndarray, parts: list[tuple[np.ndarray, dict]], rng: np.random.Generator,
                  centre: np.ndarray, radii: np.ndarray) -> DrawnStudy:
    """Every series of a gadoxetate study (STUDY_FACTORS grids) as the box average of the fine truth: liver, and
    each (mask, {series: (low, high) signal / liver signal}) part at a ratio drawn per series, with noise at a drawn
    SNR (high-b DWI a third of it, ADC a 10 % SD); the truth is the reference voxels at least half ``lesion``."""
    snr = rng.uniform(20.0, 40.0)
    series = []
    for c, f in STUDY_FACTORS.items():
        noise = {"dwi": 3.0 / snr, "adc_scanner": 0.1}.get(c, 1.0 / snr)
        signal = (~lesion).astype(np.float32)
        for mask, ratio in parts:
            signal += rng.uniform(*ratio[c]) * mask
        series.append(_block_series(c, f, signal, noise, rng, BLOCK_CORNER))
    images = lesion_channels(series)
    truth = _box_average(lesion.astype(np.float32), STUDY_FACTORS["t1_hepatobiliary"]) >= 0.5
    liver = sitk.GetImageFromArray(np.ones(truth.shape, np.uint8))
    liver.CopyInformation(images.reference)
    return DrawnStudy(images, truth, liver, centre, radii, 2.0 * float(radii[:2].max()))


def rim_metastasis_study(seed: int) -> DrawnStudy:
    """A drawn rim-enhancing metastasis of 44-52 mm (lobulated ellipsoid, RIM_METASTASIS_RATIO) whose rim, bright on
    the portal venous phase as blood is, reaches beyond the segmentation's first radius when clicked off-centre."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = _fine_axes()
    radii = np.array([rng.uniform(22.0, 26.0), rng.uniform(22.0, 26.0), rng.uniform(20.0, 24.0)])
    centre = rng.uniform(-3.0, 3.0, 3)
    ang = rng.uniform(0, np.pi)
    dx, dy = xx - centre[0], yy - centre[1]
    u, v = np.cos(ang) * dx + np.sin(ang) * dy, -np.sin(ang) * dx + np.cos(ang) * dy
    q = np.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2 + ((zz - centre[2]) / radii[2]) ** 2)
    lobes = 1.0 + rng.uniform(0.0, 0.08) * np.sin(rng.integers(2, 6) * np.arctan2(v, u) + rng.uniform(0, 6.3))
    lesion = q <= lobes
    core = q <= lobes * (1.0 - rng.uniform(3.0, 6.0) / float(radii.min()))
    ratios = [{c: r[i] for c, r in RIM_METASTASIS_RATIO.items()} for i in (0, 1)]
    return _render_parts(lesion, [(core, ratios[0]), (lesion & ~core, ratios[1])], rng, centre, radii)


# A post-ablation zone with a local recurrence (lesion-parameter-ranges.md sections 2-4, brief section 4): T1-bright
# non-enhancing debris in the core (T1 0.45-0.7 x the liver's, intermediate T2), a 1.5-3 mm granulation rim (arterial
# hyperenhancement, T2-bright), and a 6-14 mm tumour nodule at the margin (solid metastasis: arterial-bright, washes
# out, HBP-dark, restricts). Signal / liver signal ranges per series.
ABLATION_RATIO = {
    "core": {"t1_pre": (1.15, 1.35), "t1_arterial": (0.9, 1.05), "t1_portal_venous": (0.6, 0.8),
             "t1_transitional": (0.6, 0.8), "t1_hepatobiliary": (0.6, 0.8), "t2": (0.6, 1.0), "dwi": (0.8, 1.0),
             "adc_scanner": (1.0, 1.5)},
    "rim": {"t1_pre": (0.9, 1.0), "t1_arterial": (1.2, 1.5), "t1_portal_venous": (1.0, 1.1),
            "t1_transitional": (0.9, 1.0), "t1_hepatobiliary": (0.6, 0.8), "t2": (1.5, 2.5), "dwi": (1.2, 1.5),
            "adc_scanner": (1.1, 1.6)},
    "nodule": {"t1_pre": (0.7, 0.85), "t1_arterial": (1.4, 1.9), "t1_portal_venous": (0.85, 1.0),
               "t1_transitional": (0.5, 0.7), "t1_hepatobiliary": (0.3, 0.6), "t2": (1.3, 2.2), "dwi": (1.5, 2.5),
               "adc_scanner": (0.7, 1.0)}}


def ablation_recurrence_study(seed: int) -> DrawnStudy:
    """A drawn 24-34 mm ablation zone (sphere) with its granulation rim and a recurrence nodule at its margin (a
    random direction; it replaces rim and core where it sits, as in the phantom). The truth is zone and nodule."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = _fine_axes()
    radius = rng.uniform(12.0, 17.0)
    centre = rng.uniform(-3.0, 3.0, 3)
    r = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (zz - centre[2]) ** 2)
    zone = r <= radius
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    n_radius = rng.uniform(3.0, 7.0)
    nc = centre + (radius - n_radius) * direction
    nodule = zone & ((xx - nc[0]) ** 2 + (yy - nc[1]) ** 2 + (zz - nc[2]) ** 2 <= n_radius ** 2)
    rim = zone & ~nodule & (r > radius - rng.uniform(1.5, 3.0))
    core = zone & ~nodule & ~rim
    parts = [(core, ABLATION_RATIO["core"]), (rim, ABLATION_RATIO["rim"]), (nodule, ABLATION_RATIO["nodule"])]
    study = _render_parts(zone, parts, rng, centre, np.full(3, radius))
    study.nodule_lps = nc
    return study



def tiny_lesion_cover(seed: int, cell: int, grid: tuple[int, int, int] = (9, 18, 18)) -> np.ndarray:
    """Share of each 1.5 x 1.5 x 3 mm voxel (z, y, x ``grid``) covered by a drawn lesion of 3-6 mm (an ellipsoid,
    semi-axes 1.5-3 mm, centre within 1.5 mm of the block's middle), drawn on cubic cells of ``cell`` x 0.75 mm
    set half a cell off the voxels (cell 2: the phantom's 1.5 mm truth grid): the noise-free partial-volume pattern
    of a lesion that is no ball. Exact: each voxel is 4 x 2 x 2 fine voxels of 0.75 mm."""
    rng = np.random.default_rng(seed)
    centre = np.array(grid[::-1], float) * np.array([1.5, 1.5, 3.0]) / 2 + rng.uniform(-1.5, 1.5, 3)
    radii = rng.uniform(1.5, 3.0, 3)
    z, y, x = [(np.floor((np.arange(n * f) + cell / 2) / cell) * cell) * FINE_MM
               for n, f in zip(grid, (4, 2, 2), strict=True)]
    inside = (((x[None, None, :] - centre[0]) / radii[0]) ** 2 + ((y[None, :, None] - centre[1]) / radii[1]) ** 2
              + ((z[:, None, None] - centre[2]) / radii[2]) ** 2) <= 1.0
    return inside.reshape(grid[0], 4, grid[1], 2, grid[2], 2).mean(axis=(1, 3, 5))
