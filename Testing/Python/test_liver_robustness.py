"""The liver mask on the real CHAOS T2-SPIR abdomen perturbed as other scanners and protocols would give it
(``liver_perturb``): a coil bias field, low SNR, another stored intensity scale, other voxel sizes, axes stored in
another order and direction, several together; clicks drawn near the capsule and near vessels, not only deep.
The truth is the expert label moved with the image; the bar is issue 8's Dice >= 0.85. The full study (every kind
and level, several seeds, the automatic mask too) is ``benchmarks/validate_liver.py``; here a drawn subset.
"""

from __future__ import annotations

import liver_perturb as lp
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from conftest import shared_path
from LiverMetsReviewLib.lesions.liver import segment_liver

BAR = 0.85


@pytest.fixture(scope="session")
def chaos_t2():
    folder = shared_path("data", "chaos-abdomen-mr", "t2spir")
    image = sitk.ReadImage(str(folder / "case1_t2spir.nii.gz"), sitk.sitkFloat32)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "case1_labels.nii.gz"))) == 1
    return image, truth


def _one_click(case: lp.Case, kind: str, seed: int) -> float:
    (click,) = lp.clicks(case, kind, 1, np.random.default_rng(seed))
    return lp.dice(segment_liver({"t2": case.image}, click).mask, case.truth)


def test_perturbations_keep_world_positions(chaos_t2):
    """The perturbations themselves: the label's centroid stays where it was in the world (LPS)."""
    image, truth = chaos_t2

    def centroid(case: lp.Case) -> np.ndarray:
        idx = np.argwhere(case.truth).mean(axis=0)[::-1]
        return np.asarray(case.image.TransformContinuousIndexToPhysicalPoint(idx.tolist()))

    ref = centroid(lp.Case(image, truth, "none", ""))
    for perm_flip in lp.ORIENTATIONS.values():
        assert np.allclose(centroid(lp.reorient(image, truth, *perm_flip)), ref, atol=1e-3)
    for spacing in lp.SPACINGS:
        assert np.allclose(centroid(lp.resample(image, truth, spacing)), ref, atol=2.0)


@pytest.mark.parametrize("amplitude,seed", [(0.35, 102)])
def test_bias_field(chaos_t2, amplitude, seed):
    """A smooth +-35 % coil field across the body (drawn shape): automatic and near-capsule click (a steeper +-40 % draw
    that still fails is listed in benchmarks/README.md, liver robustness)."""
    image, truth = chaos_t2
    case = lp.bias(image, truth, amplitude, np.random.default_rng(seed))
    assert lp.dice(segment_liver({"t2": case.image}).mask, case.truth) >= BAR, case.level
    assert _one_click(case, "edge", seed) >= BAR, case.level


def test_low_snr_and_vendor_scale(chaos_t2):
    """Rician noise down to SNR 10 in the liver, then stored x0.1 and x20 as int16: clicks by vessels."""
    image, truth = chaos_t2
    noisy = lp.rician(image, truth, 10.0, np.random.default_rng(7))
    for scale in (0.1, 20.0):
        case = lp.rescale(noisy.image, truth, scale)
        assert _one_click(case, "vessel", int(scale * 10)) >= BAR, case.level


@pytest.mark.parametrize("spacing", [(0.9, 1.8, 4.0)])
def test_other_voxel_sizes(chaos_t2, spacing):
    image, truth = chaos_t2
    case = lp.resample(image, truth, spacing)
    assert _one_click(case, "edge", 3) >= BAR, case.level


@pytest.mark.parametrize("name", ["flipped x", "sagittal storage"])
def test_other_storage_orders(chaos_t2, name):
    """Axes stored reversed or permuted (the anatomy where it was): the automatic mask finds the same liver."""
    image, truth = chaos_t2
    case = lp.reorient(image, truth, *lp.ORIENTATIONS[name])
    assert lp.dice(segment_liver({"t2": case.image}).mask, case.truth) >= BAR, case.level


def test_field_of_view_without_the_tip(chaos_t2):
    image, truth = chaos_t2
    case = lp.cut_fov(image, truth, "tip", 0.35)
    assert _one_click(case, "deep", 5) >= BAR, case.level


def test_compound_perturbation(chaos_t2):
    """Bias, noise, grid, storage order and scale drawn together, as one real study differs from another."""
    image, truth = chaos_t2
    case = lp.compound(image, truth, np.random.default_rng(11))
    assert _one_click(case, "vessel", 11) >= BAR, case.level


@pytest.mark.parametrize("end,fraction", [("dome", 0.35)])
def test_field_of_view_cutting_the_liver(chaos_t2, end, fraction):
    """A slab that misses the top third of the liver: the automatic mask still holds the rest of it (the opening
    takes the image edge for anatomy continuing beyond it, not for a boundary to strip)."""
    image, truth = chaos_t2
    case = lp.cut_fov(image, truth, end, fraction)
    assert lp.dice(segment_liver({"t2": case.image}).mask, case.truth) >= BAR, case.level


@pytest.mark.parametrize("dome,tip", [(0.5, 0.2), (0.45, 0.3)])
def test_slab_holding_part_of_the_liver(chaos_t2, dome, tip):
    """A slab that holds only a middle part of the liver (less than any whole liver's volume): clicks deep and near
    the capsule keep the largest region grown, not the click's first piece, and the warning says the slab cuts
    the liver."""
    image, truth = chaos_t2
    case = lp.cut_fov(image, truth, "dome", dome)
    case = lp.cut_fov(case.image, case.truth, "tip", tip / (1.0 - dome))
    clicks = lp.clicks(case, "deep", 2, np.random.default_rng(3)) + lp.clicks(case, "edge", 2, np.random.default_rng(3))
    results = [segment_liver({"t2": case.image}, click) for click in clicks]
    assert min(lp.dice(r.mask, case.truth) for r in results) >= BAR, [lp.dice(r.mask, case.truth) for r in results]
    for r in results:
        assert any("slab cuts the liver" in w for w in r.warnings), r.warnings


@pytest.fixture(scope="session")
def chaos_labels():
    folder = shared_path("data", "chaos-abdomen-mr", "t2spir")
    return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "case1_labels.nii.gz")))


def test_organ_contrast_of_other_sequences(chaos_t2, chaos_labels):
    """The spleen and kidneys remapped to a hepatobiliary-phase contrast (0.5-0.7 of the liver: the liver is the
    brightest solid organ) and to an unenhanced T1 one (spleen 1/1.4-1/1.2, kidneys 0.8-1.0 of the liver), the
    texture kept: the automatic mask on the first, a click by a vessel on the second."""
    image, _ = chaos_t2
    rng = np.random.default_rng(31)
    hbp = lp.organ_contrast(image, chaos_labels, "hbp", rng)
    assert lp.dice(segment_liver({hbp.role: hbp.image}).mask, hbp.truth) >= BAR, hbp.level
    t1 = lp.organ_contrast(image, chaos_labels, "t1", rng)
    (click,) = lp.clicks(t1, "vessel", 1, rng)
    assert lp.dice(segment_liver({t1.role: t1.image}, click).mask, t1.truth) >= BAR, t1.level


@pytest.mark.parametrize("seed", [21, 23])
def test_click_on_a_metastasis(chaos_t2, chaos_labels, seed):
    """A liver with four HBP-dark metastases (10-45 mm, one necrotic, two reaching the capsule): a click that
    lands on a lesion grows the lesion (a few mL, or nothing), so the liver is grown from the tissue around it.
    Without that step the Dice is ~0."""
    image, _ = chaos_t2
    rng = np.random.default_rng(seed)
    case = lp.metastases(lp.organ_contrast(image, chaos_labels, "hbp", rng), rng, "hypo", n=4)
    for click in lp.lesion_clicks(case, 2, rng):
        assert lp.dice(segment_liver({case.role: case.image}, click).mask, case.truth) >= BAR, case.level


@pytest.mark.parametrize("contrast", sorted(lp.CONTRASTS))
def test_organ_contrast_reaches_its_ratios(chaos_t2, chaos_labels, contrast):
    """The perturbation itself: the spleen's and kidneys' median signal ends in the drawn range times the liver's."""
    image, _ = chaos_t2
    case = lp.organ_contrast(image, chaos_labels, contrast, np.random.default_rng(5))
    arr = sitk.GetArrayFromImage(case.image)
    liver = lp._core_median(arr, chaos_labels == lp.LIVER)
    for organ, labs in lp.ORGANS.items():
        lo, hi = lp.CONTRASTS[contrast][1][organ]
        ratio = lp._core_median(arr, np.isin(chaos_labels, labs)) / liver
        assert lo - 0.05 <= ratio <= hi + 0.05, (organ, ratio)


def test_metastasis_where_the_lobes_join(chaos_t2, chaos_labels):
    """A liver with five HBP-dark metastases (drawn as in validate_liver.py's mets row, seed 0), one of them where
    the left lobe joins the right: its dark core and blurred edge cut the tight liver window there, and the
    opening dropped the left lobe (automatic Dice 0.83). Lesions enclosed in liver tissue count as liver before
    the opening (they are liver in the expert outline), so the lobes stay joined."""
    image, _ = chaos_t2
    rng = np.random.default_rng(200)  # the draws of liver_perturb.sequence_catalogue(image, labels, 200)
    contrast = {c: lp.organ_contrast(image, chaos_labels, c, rng) for c in lp.CONTRASTS}
    case = lp.metastases(contrast["hbp"], rng, "hypo")
    assert lp.dice(segment_liver({case.role: case.image}).mask, case.truth) >= BAR, case.level


def test_click_on_a_lesion_at_the_dome_keeps_the_clicked_tissue(chaos_t2, chaos_labels):
    """The T2 liver with eight bright metastases of validate_liver.py's draw 12 (``--first-seed 10``), clicked
    "deep" in a lesion at the dome, where the click's ball holds lesion and liver and almost no calm tissue: the
    mixed window's first region took in the dome and the later passes kept its far piece, 589 mL of heart and
    bowel 135 mm from the click (Dice 0.000). A region that does not reach the seed's ball is not the tissue the
    seed is in: it is discarded and the liver grown from the tissue round the click."""
    image, _ = chaos_t2
    case = lp.sequence_catalogue(image, chaos_labels, 212)[5]
    assert case.level.startswith("t2 hyper mets")
    click = (-111.0, 28.0, 177.0)
    idx = case.image.TransformPhysicalPointToIndex(click)[::-1]
    assert case.lesions[idx], "the click must lie on a drawn lesion"
    mask = segment_liver({case.role: case.image}, click).mask
    m = sitk.GetArrayFromImage(mask) > 0
    depth = ndi.distance_transform_edt(~m, sampling=case.image.GetSpacing()[::-1])
    assert depth[idx] <= 12.0, "the mask must reach the click's neighbourhood"
    assert lp.dice(mask, case.truth) >= BAR, case.level


@pytest.mark.parametrize("seed", [41])
def test_dome_slices_mixed_with_lung_are_liver(chaos_t2, seed):
    """On 7.7 mm axial slices the top slices of the dome hold liver and the lung above it: their signal is 0.9-0.4
    of the liver's and their own plane shows no other tissue. The boundary step looks for the adjoining tissue in
    the adjacent slices too, so a voxel more than half liver through the slice is liver. The expert label's top
    sixth (cranio-caudal) was 53 % covered with the in-plane rule; at a drawn SNR it must be >= 75 %."""
    image, truth = chaos_t2
    rng = np.random.default_rng(seed)
    case = lp.rician(image, truth, float(rng.uniform(15.0, 30.0)), rng)
    mask = sitk.GetArrayFromImage(segment_liver({"t2": case.image}).mask) > 0
    zs = np.nonzero(case.truth.any(axis=(1, 2)))[0]
    top = case.truth.copy()
    top[: zs.max() + 1 - int(np.ceil((zs.max() - zs.min() + 1) / 6))] = False  # superior = higher k on this image
    assert mask[top].mean() >= 0.75, (case.level, float(mask[top].mean()))
    assert lp.dice(sitk.GetImageFromArray(mask.astype(np.uint8)), case.truth) >= BAR


@pytest.mark.parametrize("seed", [4])
def test_tissue_of_liver_signal_against_the_tip(chaos_t2, seed):
    """Abdominal wall or bowel of the liver's T2 signal touching the inferior tip broadly, widening caudally (drawn):
    the region must stop at the tip (the liver narrows there), not follow that tissue down the abdomen. Truth-based:
    the mask below the label's lowest section holds under 5 % of the liver's volume (one partial-volume section of
    the tip is about 2 %), and Dice stays at the bar."""
    image, truth = chaos_t2
    case = lp.tip_contact(image, truth, np.random.default_rng(seed))
    (click,) = lp.clicks(case, "deep", 1, np.random.default_rng(seed))
    mask = sitk.GetArrayFromImage(segment_liver({"t2": case.image}, click).mask) > 0
    d = np.asarray(case.image.GetDirection()).reshape(3, 3)
    present = np.nonzero(case.truth.any(axis=(1, 2)))[0]
    below = mask[: present.min()] if d[2, 2] > 0 else mask[present.max() + 1:]
    assert below.sum() < 0.05 * case.truth.sum(), case.level
    assert lp.dice(sitk.GetImageFromArray(mask.astype(np.uint8)), case.truth) >= BAR, case.level
