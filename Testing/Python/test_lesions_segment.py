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
    fat_with_vessel_study,
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
    need = 0.85 if les["diameter_mm"] >= 8.0 else 0.7
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
    through undisplaced). A click on the vessel itself and one at the lesion's centre, whose core ball the vessel
    crosses, both outline the fat round it: the vessel's voxels are left out of the seed's compartment (the centre
    click's compartment came out blood and its segment a blob round the vessel, Dice 0.25)."""
    study, images = phantom(0, "steatosis"), phantom_channels(0, "steatosis")
    les = next(x for x in study.truth["lesions"] if x["type"] == "focal_hypersteatosis")
    truth = truth_mask(study, les["label"], images.reference)
    for click in (_vessel_point_inside(study, les), les["centre_mm"]):
        result = segment_lesion(images, click, liver_mask=liver_image(study))
        assert result.info["blood_like_seed_voxels_left_out"] > 0
        assert dice(result.full_mask(), truth) >= 0.85


@pytest.mark.parametrize("draw", range(6))
def test_drawn_focal_fat_with_a_vessel_through_it(draw):
    """Drawn focal fat (8-16 mm semi-axes, drawn contrasts and SNR) with a 3-6 mm vessel running through it
    undisplaced: clicked at its centre, 30 % off-centre either way and on the vessel, the segment is the fat round
    the vessel (the truth leaves the vessel out). Draws 0 and 1 failed before the blood class (0.82, refused)."""
    d = fat_with_vessel_study(draw)
    step = 0.3 * d.radii_mm.min() * OFFSET_DIRECTION
    for click in (d.centre_lps, d.centre_lps + step, d.centre_lps - step, d.vessel_lps):
        score = dice(segment_lesion(d.images, click, liver_mask=d.liver).full_mask(), d.truth)
        assert score >= 0.85, f"click {np.round(click, 1)}: Dice {score:.3f}"


def _blood_fat_sheet(fat_z: np.ndarray):
    """z-scores (hbp, portal venous, t1 pre, fat) on a 1 x 13 x 9 sheet; a vessel of blood runs along column 4 from
    edge to edge, a patch of ``fat_z`` tissue lies beside it (columns 1-3 and 5-7 of rows 4-8)."""
    z = np.zeros((4, 1, 13, 9), np.float32)
    z[:, 0, 4:9, 1:8] = fat_z[:, None, None]
    z[:, 0, :, 4] = BLOOD_Z[:, None]
    return z


BLOOD_Z = np.array([-3.0, 40.0, -6.0, -9.0])
FAT_Z = np.array([-15.0, -12.0, -10.0, 30.0])
NAMES = ["hbp", "portal_venous", "t1_pre", "fat_signal"]


def _vessels_of(z: np.ndarray, radius_mm: float = 2.5):
    from LiverMetsReviewLib.lesions.vessels import blood_like, find_vessels

    yy, xx = np.mgrid[0:13, 0:9]
    dist = np.hypot(yy - 6, xx - 4)[None].astype(float)
    d2 = (z ** 2).sum(axis=0)
    blood = blood_like(z, NAMES, "portal_venous", "t1_pre", 3.3)
    return find_vessels(z, d2, blood, 18.5, dist, radius_mm, 30.0), dist, d2


def test_a_vessel_is_blood_that_runs_on_beyond_the_radius():
    """Blood is bright on the portal venous channel and not before contrast; a vessel is such blood that runs on
    beyond the radius (its class is fitted there), blood that closes on itself inside it is no vessel."""
    from LiverMetsReviewLib.lesions.vessels import blood_like

    assert blood_like(np.zeros((4, 1, 1, 1)), ["hbp", "t2", "t1_pre", "fat_signal"], "portal_venous", "t1_pre",
                      3.3) is None
    vessels, _, _ = _vessels_of(_blood_fat_sheet(FAT_Z))
    assert vessels.mask[0, :, 4].all() and vessels.mask.sum() == 13
    assert len(vessels.classes) == 1 and np.allclose(vessels.classes[0].mu, BLOOD_Z)
    closed = _blood_fat_sheet(FAT_Z)
    closed[:, 0, :4, 4] = closed[:, 0, 9:, 4] = 0.0
    assert not _vessels_of(closed)[0].mask.any()


def test_core_leaves_the_vessel_out():
    """The core ball (the click's 3 x 3 neighbourhood) loses its vessel voxels when fat lies beside them; a click in
    the vessel looks beyond the vessel's wall; a ball of blood alone is kept whole."""
    from LiverMetsReviewLib.lesions.vessels import core_without_vessels

    z = _blood_fat_sheet(FAT_Z)
    vessels, dist, d2 = _vessels_of(z)
    spacing = np.ones(3)
    core = dist <= 1.5
    used, left = core_without_vessels(core, dist, (0, 6, 3), spacing, vessels, d2, 18.5)
    assert left == 3 and not (used & vessels.mask).any() and used.sum() == 6
    thin = dist <= 0.5  # the click's own voxel only: in the vessel
    used, left = core_without_vessels(thin, dist, (0, 6, 4), spacing, vessels, d2, 18.5)
    assert left > 0 and used.any() and not (used & vessels.mask).any()
    plain = _blood_fat_sheet(np.zeros(4))
    vessels, dist, d2 = _vessels_of(plain)
    used, left = core_without_vessels(thin, dist, (0, 6, 4), spacing, vessels, d2, 18.5)
    assert left == 0 and (used == thin).all()


def test_blood_is_a_class_only_when_the_lesion_is_no_liver_blood_mixture():
    """Fat (brighter than the liver on the fat channel, darker on the T1 phases) is no mixture of liver and blood,
    so blood joins the mixtures; fat sparing (less fat than the liver, otherwise liver) is one -- its edge with the
    liver reads like a vessel's -- and blood stays out."""
    from LiverMetsReviewLib.lesions.vessels import unlike_seed

    vessels, _, _ = _vessels_of(_blood_fat_sheet(FAT_Z))
    assert len(unlike_seed(vessels, FAT_Z, 30.0)) == 1
    assert unlike_seed(vessels, np.array([0.0, 0.0, 0.0, -8.0]), 30.0) == []
    assert unlike_seed(vessels, BLOOD_Z, 30.0) == []


@pytest.mark.parametrize("share", [0.2, 0.4, 0.6, 0.8])
def test_a_voxel_between_blood_and_lesion_is_lesion_when_half_lesion(share):
    """Partial volume: a voxel holding ``share`` lesion and the rest blood reads share x lesion + (1 - share) x
    blood on every channel; it is lesion when the share is at least half. A voxel of liver and blood never is."""
    from LiverMetsReviewLib.lesions.mixture import TissueClass, classify

    fat, blood = TissueClass(FAT_Z, np.ones(4)), TissueClass(BLOOD_Z, np.ones(4))
    voxels = np.stack([share * FAT_Z + (1 - share) * BLOOD_Z, (1 - share) * BLOOD_Z], axis=1)
    lesion, residual = classify(voxels, [fat], 30.0, vessels=[blood])
    assert lesion.tolist() == [share >= 0.5, False] and (residual < 1e-6).all()


def test_blood_like_tissue_that_does_not_flow_is_no_vessel():
    """A run of blood-like voxels is a vessel only when its class reads an apparent diffusion above the liver's by
    the threshold (flowing blood: intravoxel incoherent motion); an enhancing tissue with the liver's ADC or less
    (a metastasis' rim) that runs on beyond the radius is no vessel. Without an ADC channel nothing changes."""
    from LiverMetsReviewLib.lesions.vessels import blood_like, find_vessels

    z = np.concatenate([_blood_fat_sheet(FAT_Z), np.zeros((1, 1, 13, 9), np.float32)])  # + an ADC channel
    yy, xx = np.mgrid[0:13, 0:9]
    dist = np.hypot(yy - 6, xx - 4)[None].astype(float)
    blood = blood_like(z, NAMES + ["adc"], "portal_venous", "t1_pre", 3.3)
    for adc_z, is_vessel in ((12.0, True), (4.0, True), (3.5, False), (0.0, False), (-3.0, False)):
        z[4, 0, :, 4] = adc_z
        d2 = (z ** 2).sum(axis=0)
        found = find_vessels(z, d2, blood, 18.5, dist, 2.5, 30.0, diffusion=4, flow_sd=3.89)
        assert found.mask.any() == is_vessel and len(found.classes) == int(is_vessel), adc_z
        assert find_vessels(z, d2, blood, 18.5, dist, 2.5, 30.0).mask.any()


def test_one_fraction_on_the_series_of_one_grid():
    """A voxel on the reference grid holds one mixture on every series sampled there: halfway between liver and a
    compartment on both sharp channels is a mixture either way; 20 % of the way on one and 80 % on the other is no
    mixture when the fraction is shared (residual: the two 0.3 x contrast deviations), though each channel alone
    lies between liver and compartment. The coarse channel (sharpness < 1) keeps its own fraction."""
    from LiverMetsReviewLib.lesions.mixture import TissueClass, classify

    mu = np.array([-20.0, 30.0, 15.0])
    comp, sharp = TissueClass(mu, np.ones(3)), np.array([1.0, 1.0, 0.5])
    voxels = np.stack([0.5 * mu, np.array([0.2, 0.8, 0.9]) * mu], axis=1)
    free = classify(voxels, [comp], 30.0, sharpness=sharp)[1]
    one = classify(voxels, [comp], 30.0, sharpness=sharp, one_fraction=True)[1]
    assert free.max() < 1e-6 and one[0] < 1e-6
    t = (0.2 * 20 ** 2 + 0.8 * 30 ** 2) / (20 ** 2 + 30 ** 2)  # least-squares shared fraction
    expected = (20 * (0.2 - t)) ** 2 + (30 * (0.8 - t)) ** 2
    assert one[1] == pytest.approx(expected, rel=1e-3) and one[1] > 30.0


@pytest.mark.parametrize("draw", range(4))
def test_rim_metastasis_larger_than_the_first_radius(draw):
    """A drawn 44-52 mm metastasis whose restricting rim enhances on the portal venous phase as blood does
    (lesion_fixtures.rim_metastasis_study), clicked at its centre and 30 % of the radius off-centre: the rim runs
    beyond the first radius (25 mm) and was taken for a vessel, its voxels explained as liver/blood mixtures and
    dropped (before: Dice 0.58 and 0.60 at the centre of draws 0 and 1). It does not flow (ADC <= the liver's): the
    rim is the lesion's second compartment (Dice >= 0.85)."""
    from lesion_fixtures import rim_metastasis_study

    d = rim_metastasis_study(draw)
    for offset in (0.0, 0.3):
        click = d.centre_lps + offset * d.radii_mm.min() * OFFSET_DIRECTION
        score = dice(segment_lesion(d.images, click, liver_mask=d.liver).full_mask(), d.truth)
        assert score >= 0.85, f"{d.axial_diameter_mm:.1f} mm rim metastasis, offset {offset}: Dice {score:.3f}"


def test_ablation_zone_with_a_recurrence_clicked_in_the_nodule():
    """A drawn ablation zone with its granulation rim and a recurrence nodule at the margin (lesion_fixtures), 10
    draws: clicked at the zone's centre and 30 % off-centre every click reaches 0.85; clicked in the nodule, the rim
    (between liver and nodule on each series, at different fractions) was taken for the nodule's partial volume and
    dropped: before, 7 of 10 draws under 0.85 (median 0.84, min 0.76). With one fraction on the reference grid's
    series the rim is a compartment: median >= 0.85 and none under 0.8 (two draws stay at 0.84: open)."""
    from lesion_fixtures import ablation_recurrence_study

    in_nodule = []
    for draw in range(10):
        d = ablation_recurrence_study(draw)
        for offset in (0.0, 0.3):
            click = d.centre_lps + offset * d.radii_mm.min() * OFFSET_DIRECTION
            score = dice(segment_lesion(d.images, click, liver_mask=d.liver).full_mask(), d.truth)
            assert score >= 0.85, f"draw {draw}, offset {offset}: Dice {score:.3f}"
        in_nodule.append(dice(segment_lesion(d.images, d.nodule_lps, liver_mask=d.liver).full_mask(), d.truth))
    assert np.median(in_nodule) >= 0.85 and min(in_nodule) >= 0.8, np.round(in_nodule, 3)


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
    from LiverMetsReviewLib.lesions.mixture import TissueClass
    from LiverMetsReviewLib.lesions.segment import _refit, _solid, whole_voxel_fraction

    sharp = np.array([1.0, 1.0, 0.5])
    z, region = _cube_with_bumps(blurred_centre=31.0, blurred_whole=25.0, blurred_half=12.0)
    seed_estimate = TissueClass(np.array([-20.0, -10.0, 31.0]), np.ones(3))
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


def test_small_ellipsoid_on_thick_slices_is_solid():
    """Drawn 8-11 mm ellipsoids digitised on 1.5 x 1.5 x 3 mm voxels (the reference voxels at least half covered by
    a 0.25 mm truth, at random sub-voxel positions): every one whose interior has 1-9 voxels is solid (most of it
    within one slice's reach of the interior), so its compartment is refitted from its whole voxels; a plate with a
    lump (a thin piece of a larger lesion) is not, on that grid either."""
    from LiverMetsReviewLib.lesions.segment import _solid

    spacing = np.array([3.0, 1.5, 1.5])
    fine = 0.25
    rng = np.random.default_rng(9)
    n = (12, 24, 24)
    axes = [(np.arange(k * int(s / fine)) + 0.5) * fine for k, s in zip(n, spacing, strict=True)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    tested = 0
    for _ in range(40):
        semi = rng.uniform(4.0, 5.5, 3)
        c = np.array([n[0] * 1.5, n[1] * 0.75, n[2] * 0.75]) + rng.uniform(-1.5, 1.5, 3)
        inside = ((zz - c[0]) / semi[0]) ** 2 + ((yy - c[1]) / semi[1]) ** 2 + ((xx - c[2]) / semi[2]) ** 2 <= 1
        f = [int(s / fine) for s in spacing]
        cover = inside.reshape(n[0], f[0], n[1], f[1], n[2], f[2]).mean(axis=(1, 3, 5))
        region = cover >= 0.5
        inner = ndi.binary_erosion(region)
        if 1 <= inner.sum() < 10:
            tested += 1
            assert _solid(region, inner, spacing), f"semi-axes {semi.round(2)} mm: {region.sum()} voxels"
    assert tested >= 10
    plate = np.zeros((5, 20, 20), bool)
    plate[2] = True
    plate[1:4, 8:11, 8:11] = True
    inner = ndi.binary_erosion(plate)
    assert 1 <= inner.sum() < 10 and not _solid(plate, inner, spacing)
