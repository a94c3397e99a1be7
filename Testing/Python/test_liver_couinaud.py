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
