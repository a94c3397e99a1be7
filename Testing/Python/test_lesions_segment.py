"""One click -> lesion segment: Dice against the phantom's truth (fixed catalogue, two scenarios, from the centre
and from 30 % of the radius off-centre), against drawn random lesions, and bad input refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from lesion_fixtures import (
    LIVER_LABEL,
    STUDY,
    catalogue_lesions,
    dice,
    drawn_study,
    liver_image,
    phantom,
    phantom_channels,
    small_sphere_study,
    truth_mask,
)
from scipy import ndimage as ndi

from LiverMetsReviewLib.errors import GeometryError, LiverMetsError
from LiverMetsReviewLib.lesions.channels import lesion_channels
from LiverMetsReviewLib.lesions.segment import chi2_quantile, segment_lesion
from LiverMetsReviewLib.phantom import generate_phantom
from LiverMetsReviewLib.series import Series

# Focal hypersteatosis is fatty parenchyma with vessels running through it, not a mass: its only contrast is the
# fat suppression of the dynamic series, so it is held to the lower bar (and reported, not hidden).
NOT_A_MASS = {"focal_hypersteatosis"}
OFFSET_DIRECTION = np.array([0.6, -0.64, 0.48])  # unit vector: 30 % of the smallest semi-axis off-centre


def _cases():
    seed, scenario = STUDY
    for les in catalogue_lesions(scenario):
        for off in (0.0, 0.3):
            yield pytest.param(seed, scenario, les["id"], off, id=f"{scenario}{seed}-{les['id']}-{off}")


@pytest.mark.parametrize("seed,scenario,lesion_id,offset", list(_cases()))
def test_phantom_lesion_dice(seed, scenario, lesion_id, offset):
    study = phantom(seed, scenario)
    images = phantom_channels(seed, scenario)
    les = next(x for x in study.truth["lesions"] if x["id"] == lesion_id)
    click = np.array(les["centre_mm"]) + offset * min(les["semi_axes_mm"]) * OFFSET_DIRECTION
    result = segment_lesion(images, click, liver_mask=liver_image(study))
    truth = truth_mask(study, les["label"], images.reference)
    score = dice(result.full_mask(), truth)
    need = 0.85 if les["diameter_mm"] >= 8.0 and les["type"] not in NOT_A_MASS else 0.7
    assert score >= need, f"{lesion_id}: Dice {score:.3f} < {need}"


def test_phantom_without_liver_mask_still_segments():
    """The liver model is estimated from the neighbourhood when no liver mask is given."""
    study, images = phantom(*STUDY), phantom_channels(*STUDY)
    les = next(x for x in study.truth["lesions"] if x["id"] == "net_met")
    result = segment_lesion(images, les["centre_mm"])
    assert dice(result.full_mask(), truth_mask(study, les["label"], images.reference)) >= 0.85
    assert result.info["liver_mask_used"] is False


@pytest.mark.parametrize("draw", range(12))
def test_drawn_random_lesions(draw):
    """Random lobulated ellipsoids (3-16 mm semi-axes), random per-series contrast (some iso), a vessel beside."""
    d = drawn_study(1000 + draw)
    offset = 0.3 * d.radii_mm.min() * OFFSET_DIRECTION if draw % 2 else 0.0
    result = segment_lesion(d.images, d.centre_lps + offset, liver_mask=d.liver)
    eq_diameter = 2.0 * (3.0 * d.truth.sum() * np.prod(d.images.reference.GetSpacing()) / (4 * np.pi)) ** (1 / 3)
    need = 0.85 if eq_diameter >= 8.0 else 0.7
    assert dice(result.full_mask(), d.truth) >= need


def test_subtle_on_one_series_is_still_outlined():
    """A lesion iso-intense on the HBP (replaced by liver signal + noise) is outlined from the other series."""
    d = drawn_study(7)
    hbp = d.images.channels["hbp"]
    arr = sitk.GetArrayFromImage(hbp)
    flat = np.full_like(arr, np.median(arr)) + np.random.default_rng(0).normal(0, 30, arr.shape).astype(np.float32)
    flat_img = sitk.GetImageFromArray(flat)
    flat_img.CopyInformation(hbp)
    series = [Series(role, [flat_img if name == "hbp" else d.images.channels[name]],
                     [{"b_value": 800.0}] if role == "dwi" else [{}]) for name, role in d.images.roles.items()]
    images = lesion_channels(series)
    assert dice(segment_lesion(images, d.centre_lps, liver_mask=d.liver).full_mask(), d.truth) >= 0.85


def test_chi2_quantile_matches_known_values():
    assert chi2_quantile(0.95, 1) == pytest.approx(3.841, abs=1e-3)
    assert chi2_quantile(0.999, 8) == pytest.approx(26.12, abs=1e-2)


# ---------------------------------------------------------------- bad input

def test_seed_outside_image():
    with pytest.raises(LiverMetsError, match="outside the image"):
        segment_lesion(phantom_channels(*STUDY), (0.0, 0.0, 900.0))


def test_seed_outside_liver():
    study, images = phantom(*STUDY), phantom_channels(*STUDY)
    spleen = np.argwhere(sitk.GetArrayViewFromImage(study.labelmap) == 10)  # organ 10: spleen
    p = study.labelmap.TransformIndexToPhysicalPoint([int(v) for v in spleen[len(spleen) // 2][::-1]])
    with pytest.raises(LiverMetsError, match="outside the liver"):
        segment_lesion(images, p, liver_mask=liver_image(study))


def test_seed_on_plain_liver():
    study, images = phantom(*STUDY), phantom_channels(*STUDY)
    labels = sitk.GetArrayViewFromImage(study.labelmap)
    from scipy import ndimage as ndi

    deep = ndi.distance_transform_edt(labels == LIVER_LABEL) * study.labelmap.GetSpacing()[0]
    idx = np.argwhere(deep >= 25.0)[0]  # 25 mm from any other structure: nothing but liver around
    p = study.labelmap.TransformIndexToPhysicalPoint([int(v) for v in idx[::-1]])
    with pytest.raises(LiverMetsError, match="does not differ from the surrounding liver"):
        segment_lesion(images, p, liver_mask=liver_image(study))


def test_seed_in_a_vessel():
    study, images = phantom(*STUDY), phantom_channels(*STUDY)
    labels = sitk.GetArrayViewFromImage(study.labelmap)
    from scipy import ndimage as ndi

    inside = ndi.distance_transform_edt(labels == 5)  # organ 5: portal vein; its thickest point
    idx = np.unravel_index(int(np.argmax(inside)), inside.shape)
    p = study.labelmap.TransformIndexToPhysicalPoint([int(v) for v in idx[::-1]])
    with pytest.raises(LiverMetsError, match="vessel|outside"):
        segment_lesion(images, p, liver_mask=liver_image(study))


def test_series_that_do_not_overlap():
    study = phantom(*STUDY)
    far = sitk.Image(study.series_by_role("t2").image)
    far.SetOrigin([v + 5000.0 for v in far.GetOrigin()])
    series = [study.series_by_role("t1_hepatobiliary"), Series("t2", [far])]
    with pytest.raises(GeometryError, match="does not overlap"):
        lesion_channels(series)


def test_unknown_or_missing_series_roles():
    study = phantom(*STUDY)
    with pytest.raises(LiverMetsError, match="cannot be used"):
        lesion_channels(study.series, roles=["multi_echo_gre"])
    with pytest.raises(LiverMetsError, match="has no"):
        lesion_channels([study.series_by_role("t2")], roles=["t1_hepatobiliary"])


# ---------------------------------------------------------------- a click on a vessel's edge inside a lesion

def _vessel_point_inside(study, les) -> np.ndarray:
    """LPS of the truth's vessel voxel (neither this lesion, liver nor background) nearest the lesion's centre."""
    lab = sitk.GetArrayFromImage(study.labelmap)
    idx = np.argwhere((lab != les["label"]) & (lab != LIVER_LABEL) & (lab != 0))
    pts = np.array([study.labelmap.TransformContinuousIndexToPhysicalPoint([float(v) for v in i[::-1]]) for i in idx])
    return pts[int(np.argmin(np.linalg.norm(pts - np.array(les["centre_mm"]), axis=1)))]


def test_click_on_the_vessel_inside_focal_fat():
    """Catalogue seed 0: a portal branch runs through the focal hypersteatosis (brief section 4: vessels run
    through undisplaced). A click on the vessel itself outlines the fat round it (the vessel's voxels are left out
    of the seed's compartment; it was refused as a click in a vessel), and a click on the fat beside the vessel
    (the lesion's centre) is not changed by the rule (nothing left out)."""
    study, images = phantom(0, "steatosis"), phantom_channels(0, "steatosis")
    les = next(x for x in study.truth["lesions"] if x["type"] == "focal_hypersteatosis")
    truth = truth_mask(study, les["label"], images.reference)
    on_vessel = segment_lesion(images, _vessel_point_inside(study, les), liver_mask=liver_image(study))
    assert on_vessel.info["blood_like_seed_voxels_left_out"] > 0
    assert dice(on_vessel.full_mask(), truth) >= 0.7
    beside = segment_lesion(images, les["centre_mm"], liver_mask=liver_image(study))
    assert beside.info["blood_like_seed_voxels_left_out"] == 0


def _blood_and_fat(vessel_runs_on: bool, click_on_blood: bool = True):
    """z-scores (hbp, portal venous, t1 pre, fat) on a 2 x 12 sheet: blood in the core's first three voxels, focal
    fat in the next three, and (optionally) a vessel along the second row from that blood to the edge."""
    blood_z = np.array([-20.0, 25.0, -2.0, -15.0])
    z = np.zeros((4, 1, 2, 12), np.float32)
    z[:, 0, 0, :3] = blood_z[:, None]
    z[:, 0, 0, 3:6] = np.array([-15.0, -12.0, -10.0, 30.0])[:, None]
    if vessel_runs_on:
        z[:, 0, 1, :] = blood_z[:, None]
    core = np.zeros((1, 2, 12), bool)
    core[0, 0, :6] = True
    edge = np.zeros_like(core)
    edge[0, :, 11] = True
    seed = (0, 0, 1) if click_on_blood else (0, 0, 4)
    return z, core, edge, seed


def test_core_voxels_leave_out_a_vessel_only_when_clicked_on():
    """Synthetic z-scores: blood is bright on the portal venous channel and not before contrast. Blood-like core
    voxels are left out only when the click's own voxel is blood and the blood joined to it runs on to the radius'
    edge (a vessel); a click on the fat beside that vessel, blood that closes on itself inside the radius (a
    hypervascular nodule's own tissue) and a core of blood alone keep the core whole."""
    from LiverMetsReviewLib.lesions.segment import _core_voxels, blood_like

    names = ["hbp", "portal_venous", "t1_pre", "fat_signal"]
    assert blood_like(np.zeros((4, 1, 1, 1)), ["hbp", "t2", "t1_pre", "fat_signal"], "portal_venous", "t1_pre",
                      3.3) is None

    def run(z, core, edge, seed):
        blood = blood_like(z, names, "portal_venous", "t1_pre", 3.3)
        return _core_voxels(z, (z ** 2).sum(axis=0), core, 18.5, blood, seed, np.ones_like(core), edge)

    z, core, edge, seed = _blood_and_fat(vessel_runs_on=True)
    assert blood_like(z, names, "portal_venous", "t1_pre", 3.3)[0, 0, :6].tolist() == [True] * 3 + [False] * 3
    used, left_out = run(z, core, edge, seed)
    assert left_out == 3 and used[0, 0, :6].tolist() == [False] * 3 + [True] * 3
    for case in (_blood_and_fat(vessel_runs_on=True, click_on_blood=False), _blood_and_fat(vessel_runs_on=False)):
        used, left_out = run(*case)
        assert left_out == 0 and (used == case[1]).all()
    only_blood = core.copy()
    only_blood[0, 0, 3:] = False
    used, left_out = run(z, only_blood, edge, seed)
    assert left_out == 0 and (used == only_blood).all()


# ---------------------------------------------------------------- small lesions on thick slices

def _cube_with_bumps(blurred_centre: float, blurred_whole: float, blurred_half: float):
    """z-scores (sharp, sharp, thick-slice channel) of a solid 3 x 3 x 3 lesion with six half-covered bumps."""
    region = np.zeros((5, 5, 5), bool)
    region[1:4, 1:4, 1:4] = True
    z = np.zeros((3, 5, 5, 5), np.float32)
    z[:, region] = np.array([-20.0, -10.0, blurred_whole])[:, None]
    z[:, 2, 2, 2] = [-20.0, -10.0, blurred_centre]
    for idx in ((0, 2, 2), (4, 2, 2), (2, 0, 2), (2, 4, 2), (2, 2, 0), (2, 2, 4)):
        region[idx] = True
        z[(slice(None),) + idx] = [-10.0, -5.0, blurred_half]
    return z, region


def test_small_lesion_refit_from_its_whole_voxels():
    """A lesion with a few interior voxels: its compartment is re-estimated from the voxels the sharp channels call
    whole lesion (fraction >= pure_fraction), so a thick-slice channel's value is the one its whole voxels have,
    not the peak at the lesion's centre where the seed's estimate came from; half-covered voxels do not count."""
    from LiverMetsReviewLib.lesions.segment import _Class, _refit, _solid, whole_voxel_fraction

    sharp = np.array([1.0, 1.0, 0.5])
    z, region = _cube_with_bumps(blurred_centre=31.0, blurred_whole=25.0, blurred_half=12.0)
    seed_estimate = _Class(np.array([-20.0, -10.0, 31.0]), np.ones(3))
    inner = ndi.binary_erosion(region)
    assert 1 <= inner.sum() < 10 and _solid(region, inner)
    f = whole_voxel_fraction(z[:, region], seed_estimate.mu, sharp)
    assert np.allclose(np.sort(f), [0.5] * 6 + [1.0] * 27)  # the thick-slice channel does not enter the fraction
    refit = _refit(z, region, [seed_estimate], sharp, 0.75)[0]
    assert refit.mu == pytest.approx([-20.0, -10.0, 25.0])
    # the same blob as a first piece of a larger lesion: the voxels round it are tissue no mixture explains yet
    unexplained_round = ~ndi.binary_dilation(region)
    assert _refit(z, region, [seed_estimate], sharp, 0.75, lambda ps: unexplained_round)[0] is seed_estimate
    assert _refit(z, region, [seed_estimate], sharp, 0.75, lambda ps: np.ones(region.shape, bool))[0].mu == \
        pytest.approx([-20.0, -10.0, 25.0])
    # a thin plate with one lump: an interior voxel here and there, not a solid lesion: the seed's estimate stays
    plate = np.zeros((5, 20, 20), bool)
    plate[2] = True
    plate[1:4, 8:11, 8:11] = True
    zp = np.zeros((3,) + plate.shape, np.float32)
    zp[:, plate] = np.array([-20.0, -10.0, 25.0])[:, None]
    assert not _solid(plate, ndi.binary_erosion(plate))
    assert _refit(zp, plate, [seed_estimate], sharp, 0.75)[0] is seed_estimate


@pytest.mark.parametrize("draw", range(6))
def test_small_sphere_on_thick_slices(draw):
    """A drawn 8-10 mm metastasis-like sphere at a sub-voxel position; T2 on 6 mm slices and DWI/ADC on 3 x 3 x 6 mm
    voxels (box averages of the fine truth): Dice >= 0.85 against the reference voxels at least half covered,
    clicked at the centre and 30 % of the radius off-centre."""
    d = small_sphere_study(3000 + draw)
    for offset in (0.0, 0.3):
        click = d.centre_lps + offset * d.radii_mm[0] * OFFSET_DIRECTION
        result = segment_lesion(d.images, click, liver_mask=d.liver)
        score = dice(result.full_mask(), d.truth)
        assert score >= 0.85, f"{2 * d.radii_mm[0]:.1f} mm sphere, offset {offset}: Dice {score:.3f}"


def test_ball_fit_finds_the_ball_among_quarter_voxel_centres():
    """A 3.75-5.25 mm lesion without a pure voxel on 1.5 x 1.5 x 3 mm voxels, each voxel reading the lesion's contrast x
    the share of its box the ball covers (noise-free, drawn centre on a quarter-voxel offset): the ball is on the fit's
    own grid of centres and radii, so the fit must find it and outline exactly the voxels it covers at least half
    (the search once tried half-voxel centres only and kept a smaller or larger ball for about one draw in fifteen)."""
    from LiverMetsReviewLib.lesions.small_lesion import _coverage, _sub_points, fit_ball

    sp = np.array([3.0, 1.5, 1.5])
    shape = (7, 11, 11)
    vox = np.argwhere(np.ones(shape, bool)) * sp
    sub = _sub_points(sp, 4)
    tried = 0
    for draw in range(120):
        rng = np.random.default_rng(draw)
        radius = 0.375 * rng.integers(5, 8)
        centre = np.array([3, 5, 5]) * sp + rng.integers(-2, 3, 3) * 0.25 * sp
        cover = _coverage(centre[None], np.array([radius]), vox, sub)[0].reshape(shape)
        truth = cover >= 0.5
        # the fit searches within half a voxel of the region's centre and only when no voxel is pure lesion
        if cover.max() >= 1.0 or not truth.any() or (np.abs(np.argwhere(truth).mean(0) * sp - centre) > 0.5 * sp).any():
            continue
        tried += 1
        z = (np.array([-40.0, -15.0, 25.0])[:, None, None, None] * cover[None]).astype(np.float32)
        fitted = fit_ball(z, truth, np.ones(shape, bool), sp, np.ones(3, bool), 4, 6.0)
        found = "nothing" if fitted is None else f"{fitted[1]}, {int(fitted[0].sum())} voxels"
        assert fitted is not None and (fitted[0] == truth).all(), \
            f"draw {draw}: ball {radius:.3f} mm ({int(truth.sum())} voxels), fitted {found}"
    assert tried >= 50


@pytest.mark.parametrize("draw", range(12, 20))
def test_rim_nodule_clicked_in_its_core(draw):
    """A 9-11 mm FNH-like nodule with an HBP-dark core inside a gadoxetate-retaining rim (lesion_fixtures), clicked at
    the centre and 30 % of the radius off-centre: the rim is found as a second compartment (Dice >= 0.85). Its voxels
    are a minority of the tissue round the core's region once the liver two voxels out is counted; the share is now
    taken of the non-liver voxels there (main's code kept the core's region alone for one of these draws, Dice 0.74)."""
    from lesion_fixtures import rim_nodule_study

    d = rim_nodule_study(8000 + draw)
    for offset in (0.0, 0.3):
        click = d.centre_lps + offset * d.radii_mm[0] * OFFSET_DIRECTION
        score = dice(segment_lesion(d.images, click, liver_mask=d.liver).full_mask(), d.truth)
        assert score >= 0.85, f"{2 * d.radii_mm[0]:.1f} mm rim nodule, offset {offset}: Dice {score:.3f}"


def test_half_covered_edge_voxels_are_not_dropped_wholesale():
    """A 12.7 mm metastasis of a drawn phantom (seed 5719; 40 of its 120 truth voxels exactly half covered: they read
    exactly half-way on every sharp series). An unbiased half-way rule takes such voxels by chance, about half of
    them; the interior's median (the lesion's centre) took 5 of 40 (Dice 0.83): on the 6 mm T2 and 3 x 3 x 6 mm DWI
    the centre reads more contrast than the voxels near the edge, which those series average with the liver beyond,
    so every half-covered voxel came out a little under half. On series coarser than the reference the compartment
    is now read on the region's whole voxels next to its edge."""
    study = generate_phantom(5719, "pseudocirrhosis", vary=True)
    images = lesion_channels(study.series)
    les = next(x for x in study.truth["lesions"] if x["label"] == 104)
    fine = sitk.Cast(study.labelmap == les["label"], sitk.sitkFloat32)
    cover = sitk.GetArrayFromImage(sitk.Resample(fine, images.reference, sitk.Transform(), sitk.sitkLinear, 0.0))
    assert study.shift_mm("t1_hepatobiliary") == [0.0, 0.0, 0.0]
    tie = np.abs(cover - 0.5) < 1e-3
    mask = segment_lesion(images, les["centre_mm"], liver_mask=liver_image(study)).full_mask()
    assert tie.sum() >= 20
    share = float((mask & tie).sum()) / float(tie.sum())
    assert 0.25 <= share <= 0.75, f"{share:.2f} of {int(tie.sum())} half-covered voxels taken"
    assert not (mask & (cover < 0.5 - 1e-3)).sum() > 0.05 * mask.sum()
    assert dice(mask, cover >= 0.5) >= 0.85
