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
    truth_mask,
)

from LiverMetsReviewLib.errors import GeometryError, LiverMetsError
from LiverMetsReviewLib.lesions.channels import lesion_channels
from LiverMetsReviewLib.lesions.segment import chi2_quantile, segment_lesion
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

def test_click_on_a_vessel_edge_inside_focal_fat():
    """Catalogue seed 0: the focal hypersteatosis' centre lies at the edge of the portal branch running through it
    (brief section 4: vessels run through undisplaced). The seed's compartment is taken from the core voxels that
    do not enhance like blood, so the click outlines the fat, not the vessel (it gave Dice 0.02 when the
    compartment was half vessel)."""
    study, images = phantom(0, "steatosis"), phantom_channels(0, "steatosis")
    les = next(x for x in study.truth["lesions"] if x["type"] == "focal_hypersteatosis")
    result = segment_lesion(images, les["centre_mm"], liver_mask=liver_image(study))
    assert result.info["blood_like_seed_voxels_left_out"] > 0
    assert dice(result.full_mask(), truth_mask(study, les["label"], images.reference)) >= 0.7


def test_core_voxels_leave_out_blood_only_beside_lesion_tissue():
    """Synthetic z-scores: blood is bright on the portal venous channel and not before contrast; a core holding
    blood and fat-like lesion voxels keeps the lesion ones; a core of blood alone (a haemangioma, a vessel) is
    kept whole."""
    from LiverMetsReviewLib.lesions.segment import _core_voxels, blood_like

    names = ["hbp", "portal_venous", "t1_pre", "fat_signal"]
    z = np.zeros((4, 1, 1, 6), np.float32)
    z[:, 0, 0, :3] = np.array([-20.0, 25.0, -2.0, -15.0])[:, None]   # blood (portal branch)
    z[:, 0, 0, 3:] = np.array([-15.0, -12.0, -10.0, 30.0])[:, None]  # focal fat: dark on fat-sat T1, fat-bright
    d2 = (z ** 2).sum(axis=0)
    core = np.ones((1, 1, 6), bool)
    blood = blood_like(z, names, "portal_venous", "t1_pre", 3.3)
    assert blood[0, 0].tolist() == [True] * 3 + [False] * 3
    used, left_out = _core_voxels(z, d2, core, 18.5, blood)
    assert left_out == 3 and used[0, 0].tolist() == [False] * 3 + [True] * 3
    only_blood = core.copy()
    only_blood[0, 0, 3:] = False
    used, left_out = _core_voxels(z, d2, only_blood, 18.5, blood)
    assert left_out == 0 and (used == only_blood).all()
    assert blood_like(z, ["hbp", "t2", "t1_pre", "fat_signal"], "portal_venous", "t1_pre", 3.3) is None
