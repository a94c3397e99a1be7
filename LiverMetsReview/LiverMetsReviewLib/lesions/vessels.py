"""Vessels round a click: blood as the lesion's other neighbour besides the liver.

Vessels run through focal fat, hypersteatosis and fat sparing undisplaced (brief section 4), so a click there
has blood beside it or under it. Blood is told by what it is: on the portal venous phase it is brighter than the
liver (gadoxetate is extracellular first, brief section 2) and more so than before contrast (a T1-bright
lesion, melanin or haemorrhage, is bright before contrast too); and a vessel is a tube that runs on, so its
blood-like voxels connect beyond the radius a lesion is grown in, while a lesion's own enhancing tissue closes
on itself. Such a vessel's blood, measured where it runs beyond that radius (outside any lesion the click may
outline), becomes a tissue class: voxels mixing it with the lesion are lesion when the lesion's share is at least
half, those mixing it with the liver are background (mixture.py), and its voxels in the click's core ball are
left out of the seed's first estimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .mixture import MIN_CLASS_SAMPLES, TissueClass, fit_class, line_fit


def blood_like(z: np.ndarray, names: Sequence[str], vessel: str, pre: str, threshold_sd: float) -> np.ndarray | None:
    """Voxels (of z: channels, ...) that enhance like blood on the portal venous phase: brighter than the liver
    there by ``threshold_sd`` liver SDs, and by that much more than on the pre-contrast T1 (a T1-bright lesion,
    melanin or haemorrhage, is bright before contrast too). None without a portal venous channel."""
    if vessel not in names:
        return None
    zv = z[list(names).index(vessel)]
    out = zv > threshold_sd
    if pre in names:
        out &= zv - z[list(names).index(pre)] > threshold_sd
    return out


@dataclass
class Vessels:
    """Blood-like voxels of the vessels that run on beyond the radius, and one class per kind of blood there."""

    mask: np.ndarray
    classes: list[TissueClass] = field(default_factory=list)


def find_vessels(z: np.ndarray, d2_liver: np.ndarray, blood: np.ndarray | None, detect: float, dist: np.ndarray,
                 radius_mm: float, outlier: float, diffusion: int | None = None,
                 flow_sd: float = 0.0) -> Vessels:
    """The vessels of the crop (z: channels x crop) that enter the radius the lesion is grown in and run on beyond
    it (6-connected blood-like voxels that differ from the liver, ``d2_liver`` > ``detect``). Each one's class is
    fitted on its voxels beyond the radius, the purer half (farther from the liver: the rest is partial volume with
    liver); a class within ``outlier`` of one already kept (the same blood seen in another branch) is not repeated.

    ``diffusion`` (the ADC channel's index): flowing blood reads an apparent diffusion far above the liver's
    (:func:`flows`); an enhancing tissue that runs beyond the radius without it (a metastasis' rim, larger than
    the radius clicked off-centre, whose enhancement on the portal venous phase is blood-like) is no vessel, and
    taking it for one explained the rim as liver/blood mixtures and dropped it.
    """
    if blood is None:
        return Vessels(np.zeros(d2_liver.shape, bool))
    lab, n = ndi.label(blood & (d2_liver > detect))
    if n == 0:
        return Vessels(np.zeros(d2_liver.shape, bool))
    inside = np.bincount(lab[dist <= radius_mm], minlength=n + 1)
    beyond = np.bincount(lab[dist > radius_mm], minlength=n + 1)
    keep = np.flatnonzero((inside > 0) & (beyond > 0))
    keep = keep[keep > 0]
    mask = np.isin(lab, keep)
    classes: list[TissueClass] = []
    for c in keep[np.argsort(-inside[keep])]:
        out = (lab == c) & (dist > radius_mm)
        d2 = d2_liver[out]
        zv = z[:, out][:, d2 >= np.median(d2)]
        if zv.shape[1] < MIN_CLASS_SAMPLES:
            continue
        cls = fit_class(zv, zv.mean(axis=1))
        if not flows(cls, diffusion, flow_sd):
            mask &= lab != c
            continue
        if all(float(k.d2(cls.mu[:, None])[0]) >= outlier for k in classes):
            classes.append(cls)
    return Vessels(mask, classes)


def flows(cls: TissueClass, diffusion: int | None, threshold_sd: float) -> bool:
    """True when the class's apparent diffusion is above the liver's by ``threshold_sd`` liver SDs, or when no
    ADC channel is given. Incoherent flow of blood within a voxel acts as a pseudo-diffusion an order of magnitude
    faster than water diffusion in tissue (intravoxel incoherent motion), so vessels read a high ADC; a lesion's
    enhancing tissue restricts or reads about the liver's."""
    return diffusion is None or float(cls.mu[diffusion]) > threshold_sd


def core_without_vessels(core: np.ndarray, dist: np.ndarray, seed: tuple[int, int, int], spacing_zyx: np.ndarray,
                         vessels: Vessels, d2_liver: np.ndarray, detect: float) -> tuple[np.ndarray, int]:
    """The core voxels the seed's compartment is estimated from, and how many vessel voxels were left out.

    A vessel crossing the core ball (a portal branch through focal fat) is farther from the liver than the fat
    itself (bright on the portal venous phase and on T2), and the core's centre, taken from the voxels farthest from
    the liver, came out blood. Its voxels are left out when the ball holds lesion-like voxels besides them. A click
    inside the vessel, whose ball is all blood, looks as far beyond the vessel's wall as the ball's radius reaches
    beyond the click (the ball grown by the vessel's depth at the click). A core of blood alone (a click in a
    plain vessel, or in a lesion whose tissue is blood-like and touches a vessel) is kept whole.
    """
    lesion_like = d2_liver > detect
    ball = core
    if vessels.mask[seed] and not (core & ~vessels.mask & lesion_like).any():
        depth = float(ndi.distance_transform_edt(vessels.mask, sampling=spacing_zyx)[seed])
        ball = dist <= float(dist[core].max()) + depth
    if not (ball & ~vessels.mask & lesion_like).any():
        return core, 0
    left = ball & vessels.mask
    return ball & ~left, int(left.sum())


def unlike_seed(vessels: Vessels, seed_centre: np.ndarray, outlier: float) -> list[TissueClass]:
    """The vessel classes the seed's compartment can be told from: neither the compartment nor its edge with the
    liver (half-way, where the segment's border lies) is a mixture of liver and that blood. A compartment that is
    (a click in a vessel, a lesion that enhances like blood, fat sparing, whose only difference from the liver is
    less fat, as blood has none) would lose its own edge to that blood, so that blood stays out of the mixtures
    and the click is segmented as without it."""
    liver = TissueClass(np.zeros_like(seed_centre), np.ones_like(seed_centre))
    points = np.stack([0.5 * seed_centre, seed_centre], axis=1)
    return [v for v in vessels.classes if float(line_fit(points, liver, v)[0].min()) >= outlier]
