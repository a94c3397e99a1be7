"""Where the automatic liver mask looks for the liver (``lesions/liver_auto.py``): the anatomy a region grown without a
click must have, checked on the real CHAOS T2-SPIR abdomen's expert labels (liver, kidneys, spleen) stored as other
scanners store it (drawn axis order and direction, a world origin shifted by a drawn offset as a crop that kept the
uncropped origin leaves it), and on a body-wall band drawn from the image's own outline."""

from __future__ import annotations

import liver_perturb as lp
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from conftest import shared_path
from LiverMetsReviewLib.lesions.liver import not_liver_like, prepared, wall_distance


@pytest.fixture(scope="module")
def chaos_labels():
    folder = shared_path("data", "chaos-abdomen-mr", "t2spir")
    image = sitk.ReadImage(str(folder / "case1_t2spir.nii.gz"), sitk.sitkFloat32)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "case1_labels.nii.gz"))).astype(np.int16)
    return image, labels


def _stored_otherwise(image: sitk.Image, labels: np.ndarray, rng: np.random.Generator):
    """The image and its labels with a drawn storage order/direction and a drawn world origin offset."""
    names = sorted(lp.ORIENTATIONS)
    case = lp.reorient(image, labels, *lp.ORIENTATIONS[names[int(rng.integers(len(names)))]])
    moved = sitk.Image(case.image)
    moved.SetOrigin(tuple(np.asarray(moved.GetOrigin()) + rng.uniform(-150.0, 150.0, 3)))
    lab = sitk.GetImageFromArray(case.truth)
    lab.CopyInformation(moved)
    return moved, lab, case.level


@pytest.mark.parametrize("seed", [int(s) for s in np.random.default_rng(18).integers(0, 10_000, 2)])
def test_expert_liver_lies_where_the_liver_lies_and_its_neighbours_do_not(chaos_labels, seed):
    image, labels = chaos_labels
    moved, lab, level = _stored_otherwise(image, labels, np.random.default_rng(seed))
    work, _, body = prepared(moved)
    on_work = sitk.GetArrayFromImage(sitk.Resample(lab, work, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    wall = wall_distance(body, work.GetSpacing()[::-1])
    assert not_liver_like(on_work == lp.LIVER, body, work, wall) == [], level
    for organ in (lp.RIGHT_KIDNEY, lp.SPLEEN):  # the right kidney lies behind the liver, the spleen on the left
        assert not_liver_like(on_work == organ, body, work, wall) != [], (level, organ)
    # the body wall beside the liver: the outer 15 mm of the body on the liver's slices
    levels = (on_work == lp.LIVER).any(axis=(1, 2))
    band = body & (wall < 15.0) & levels[:, None, None]
    assert not_liver_like(band, body, work, wall) != [], level


@pytest.mark.parametrize("seed", [int(s) for s in np.random.default_rng(81).integers(0, 10_000, 2)])
def test_a_field_of_view_cutting_the_liver_at_the_side_is_no_body_wall(chaos_labels, seed):
    """A field of view narrower than the patient cuts the body, and the liver with it, on the patient's right: the
    image's edge there is not the body's outline (the wall lies beyond it), so the cut liver still qualifies."""
    image, labels = chaos_labels
    lab = sitk.GetImageFromArray(labels)
    lab.CopyInformation(image)
    image, lab = sitk.DICOMOrient(image, "LPS"), sitk.DICOMOrient(lab, "LPS")  # index x grows to the patient's left
    cols = np.nonzero((sitk.GetArrayViewFromImage(lab) == lp.LIVER).any(axis=(0, 1)))[0]
    cut = int(cols.min() + np.random.default_rng(seed).uniform(0.15, 0.35) * np.ptp(cols))
    size = list(image.GetSize())
    size[0] -= cut
    image, lab = (sitk.RegionOfInterest(im, size, [cut, 0, 0]) for im in (image, lab))
    work, _, body = prepared(image)
    on_work = sitk.GetArrayFromImage(sitk.Resample(lab, work, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    assert not_liver_like(on_work == lp.LIVER, body, work, wall_distance(body, work.GetSpacing()[::-1])) == [], cut


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (2.0, 3.0), (0.7, 1.9)])
def test_section_solidity_against_exact_areas(spacing):
    """Filled share of the convex outline, against plane geometry: a filled rectangle fills it wholly; an L of two
    20 x 5 voxel bars fills 175 of 400 - 15 x 15 / 2 = 287.5 voxel areas; a section of fewer than 10 voxels is not
    counted; the share does not depend on the voxel size."""
    from LiverMetsReviewLib.lesions.liver_auto import section_solidity

    region = np.zeros((3, 40, 40), bool)
    region[0, 5:25, 5:30] = True
    assert section_solidity(region[:1], spacing) == pytest.approx(1.0)
    region[1, 10:30, 10:15] = True
    region[1, 25:30, 10:30] = True
    assert section_solidity(region[1:2], spacing) == pytest.approx(175.0 / 287.5)
    region[2, 0, 0:9] = True  # 9 voxels: too few to count
    both = (20 * 25 + 175.0) / (20 * 25 + 287.5)
    assert section_solidity(region, spacing) == pytest.approx(both)


def test_loops_glued_together_are_not_one_solid_organ(chaos_labels):
    """The expert liver fills most of its sections' convex outline; the same liver with each section hollowed to a
    frame of 3 working voxels (a ring of loops, as a leak along bowel and wall grows round a space) does not."""
    image, labels = chaos_labels
    lab = sitk.GetImageFromArray(labels)
    lab.CopyInformation(image)
    work, _, body = prepared(image)
    liver = sitk.GetArrayFromImage(sitk.Resample(lab, work, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) == lp.LIVER
    wall = wall_distance(body, work.GetSpacing()[::-1])
    assert not [w for w in not_liver_like(liver, body, work, wall) if "convex outline" in w]
    inner = np.stack([ndi.binary_erosion(section, iterations=3) for section in liver])
    assert any("convex outline" in w for w in not_liver_like(liver & ~inner, body, work, wall))
