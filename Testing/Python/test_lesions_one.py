"""One lesion at a time (what the Slicer Lesions section calls): a click -> segment, a mask -> measures.

Truth: the phantom's labelmap (Dice), the mask's own voxel count (volume) and a hand-flipped voxel (digest).
The click goes through the Slicer edge's RAS <-> LPS flip, as the section does, so a flip error gives Dice ~0.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import GeometryError
from LiverMetsReviewLib.lesions.one_lesion import key_measures, mask_digest, measure_one, segment_one
from LiverMetsReviewLib.phantom import generate_phantom


def ras_to_lps(p):
    """The edge's conversion (LiverMetsReviewSlicer.volumes.rasToLps), restated: the sign of x and y."""
    return (-p[0], -p[1], p[2])


@pytest.fixture(scope="module", params=[(21, False), (22, True)], ids=["fixed", "vary"])
def study(request):
    seed, vary = request.param
    return generate_phantom(seed=seed, size="small", vary=vary)


def _truth(study, lesion, reference, role):
    label = next(s["label"] for s in study.segments if s["id"] == lesion["id"])
    return sitk.GetArrayFromImage(study.labelmap_on(role, reference)) == label


def _liver(study, reference, role):
    label = next(s["label"] for s in study.segments if s["id"] == "liver")
    return sitk.GetArrayFromImage(study.labelmap_on(role, reference)) == label


def test_click_gives_the_truth_segment_and_its_measures(study):
    lesion = max(study.truth["lesions"], key=lambda les: float(les["diameter_mm"]))
    click_ras = (-lesion["centre_mm"][0], -lesion["centre_mm"][1], lesion["centre_mm"][2])
    images, seg = segment_one(study.series, ras_to_lps(click_ras))
    ref = images.reference
    role = images.roles[next(n for n, img in images.channels.items() if img is ref)]
    mask, truth = seg.full_mask(), _truth(study, lesion, ref, role)
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.8, f"{lesion['id']}: Dice {dice:.2f}"

    liver = _liver(study, ref, role)
    m = key_measures(measure_one(study.series, mask, ref, lesion["id"], liver=liver, couinaud=study.couinaud))
    voxel_ml = float(np.prod(ref.GetSpacing())) / 1000.0
    assert m["volume_ml"] == pytest.approx(mask.sum() * voxel_ml, rel=1e-3)
    truth_long = measure_one(study.series, truth, ref, "t")
    assert m["long_axis_mm"] == pytest.approx(key_measures(truth_long)["long_axis_mm"], abs=2 * max(ref.GetSpacing()))
    assert m["short_axis_mm"] <= m["long_axis_mm"]
    assert m["couinaud_segment"] == lesion["couinaud_name"]
    # The scanner ADC: the median lies within the compartments' true ADCs (partial volume with the liver at the
    # edge pulls it a little towards the liver's).
    adcs = [float(c["params"]["adc_1e6_mm2_s"]) for c in lesion["compartments"]]
    assert 0.85 * min(adcs) <= m["adc_median"] <= 1.1 * max(adcs)


def test_drawn_mask_is_measured_like_a_segmented_one(study):
    """The re-measure path after a Segment Editor edit: a mask grown by one voxel has more volume, a new
    digest, and the same numbers when measured twice."""
    lesion = max(study.truth["lesions"], key=lambda les: float(les["diameter_mm"]))
    images, seg = segment_one(study.series, lesion["centre_mm"])
    ref, mask = images.reference, seg.full_mask()
    edited = mask.copy()
    z, y, x = np.argwhere(mask)[0]
    edited[z, y, x - 1] = True if not mask[z, y, x - 1] else edited[z, y, x - 1]
    edited[z, y, x] = False
    assert mask_digest(edited) != mask_digest(mask)
    assert mask_digest(mask.copy()) == mask_digest(mask)
    a = key_measures(measure_one(study.series, edited, ref, "L1"))
    b = key_measures(measure_one(study.series, edited, ref, "L1"))
    assert a == b
    with pytest.raises(GeometryError, match="reference grid"):
        measure_one(study.series, mask[:-1], ref, "L1")


def test_other_lesions_are_never_taken(study):
    """Voxels of lesions already outlined (here: the upper half of this one) stay theirs."""
    lesion = max(study.truth["lesions"], key=lambda les: float(les["diameter_mm"]))
    images, seg = segment_one(study.series, lesion["centre_mm"])
    first = seg.full_mask()
    zc = images.reference.TransformPhysicalPointToIndex([float(v) for v in lesion["centre_mm"]])[2]
    others = first.copy()
    others[: zc + 1] = False
    assert others.any()
    _, again = segment_one(study.series, lesion["centre_mm"], others=others)
    assert again.full_mask().any() and not (again.full_mask() & others).any()
