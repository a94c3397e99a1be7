"""Couinaud segments from landmarks found in the portal venous phase, checked against the phantom's Couinaud truth
(never read by the method): the segment of every lesion centre, in every scenario."""

from __future__ import annotations

import liver_cases
import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.lesions.couinaud import LANDMARKS, couinaud_segments, segments_from_landmarks
from LiverMetsReviewLib.lesions.liver import segment_liver
from LiverMetsReviewLib.phantom.generate import generate_phantom


@pytest.mark.parametrize("k, scenario", list(enumerate(liver_cases.SCENARIOS)))
def test_couinaud_segment_of_every_lesion_centre(k, scenario):
    study = liver_cases.phantom(10 + k, scenario)  # the liver tests' studies and masks, built once
    images = {s.role: s.image for s in study.series}
    liver = liver_cases.auto_liver(10 + k, scenario)
    result = couinaud_segments(images, liver.mask)
    assert result.series_used == "t1_portal_venous"
    assert set(result.landmarks) == set(LANDMARKS)
    labels = result.labels
    for lesion in study.truth["lesions"]:
        centre = lesion["per_series"][liver.series_used]["centre_mm"]
        got = int(labels[labels.TransformPhysicalPointToIndex(centre)])
        assert got == lesion["couinaud_segment"], (lesion["id"], got)
    truth = sitk.GetArrayFromImage(study.couinaud_on(liver.series_used, images[liver.series_used]))
    ours = sitk.GetArrayFromImage(labels)
    both = (truth > 0) & (ours > 0)
    assert (truth[both] == ours[both]).mean() >= 0.85  # whole-liver voxel agreement of the planes
    # the reader's own landmarks give the same labels back; moving the portal bifurcation down moves the plane
    again = couinaud_segments(images, liver.mask, landmarks=result.landmarks)
    assert np.array_equal(sitk.GetArrayViewFromImage(again.labels), ours)
    moved = dict(result.landmarks, portal_bifurcation=[*result.landmarks["portal_bifurcation"][:2],
                                                       result.landmarks["portal_bifurcation"][2] - 30.0])
    lower = sitk.GetArrayFromImage(segments_from_landmarks(liver.mask, moved))
    assert (lower == 8).sum() > (ours == 8).sum() and (lower == 5).sum() < (ours == 5).sum()


def test_couinaud_needs_a_contrast_phase_or_landmarks():
    study = generate_phantom(seed=3, scenario="normal", size="small")
    t2 = {"t2": study.series_by_role("t2").image}
    liver = segment_liver(t2)
    with pytest.raises(LiverMetsError, match="contrast phase"):
        couinaud_segments(t2, liver.mask)
    with pytest.raises(LiverMetsError, match="portal_bifurcation"):
        segments_from_landmarks(liver.mask, {"ivc": [0.0, 0.0, 0.0]})
    reader = sitk.Cast(liver.mask, sitk.sitkUInt8) * 4
    assert set(np.unique(sitk.GetArrayViewFromImage(
        couinaud_segments(t2, liver.mask, labelmap=reader).labels)).tolist()) == {0, 4}


def test_ivc_is_the_vertical_track_not_a_large_bright_lesion():
    """A bright lesion embraced by liver, larger in cross-section than the IVC and present in most slices of the
    liver's upper half, is not the IVC: the IVC runs through every one of them (drawn study 5901 failed so)."""
    from LiverMetsReviewLib.lesions import couinaud as cou

    rng_seed = 8
    rng = np.random.default_rng(rng_seed)
    shape, spacing = (40, 100, 100), (1.5, 1.5, 2.5)  # z, y, x array; x, y, z spacing
    kz, jy, ix = np.mgrid[: shape[0], : shape[1], : shape[2]]
    ivc_xy = (50 + rng.integers(-5, 6), 82 + rng.integers(-3, 4))
    tube = np.hypot(ix - ivc_xy[0], jy - ivc_xy[1]) <= 8
    centre = (30, 40 + rng.integers(-5, 6), 30 + rng.integers(-5, 6))  # slice, y, x: in the upper half
    d2 = ((kz - centre[0]) * 2.5) ** 2 + ((jy - centre[1]) * 1.5) ** 2 + ((ix - centre[2]) * 1.5) ** 2
    lesion = np.sqrt(d2) <= 22  # 44 mm: in 17 of the 20 upper slices, wider than the IVC
    behind = (jy > ivc_xy[1]) & (np.abs(ix - ivc_xy[0]) <= 8)  # the IVC's groove opens backwards
    liver = (ix >= 10) & (ix < 90) & (jy >= 10) & (jy < 95) & ~tube & ~behind
    img = sitk.GetImageFromArray(np.zeros(shape, np.float32))
    img.SetSpacing(spacing)
    x, y, z = cou._world(img)
    got = cou._find_ivc(img, liver & ~lesion, tube | lesion, x, y, z)
    axis = img.TransformIndexToPhysicalPoint([int(ivc_xy[0]), int(ivc_xy[1]), 0])
    assert np.hypot(got[0] - axis[0], got[1] - axis[1]) < 3.0, (got, axis, rng_seed)
