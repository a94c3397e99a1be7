"""Lesion measurements against the phantom's truth: diameters, volume, Couinaud segment, per-series values
against the tissue parameters, rim/core signs of the hallmarks, the background-liver reference, the capsule."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import SimpleITK as sitk
from lesion_fixtures import LIVER_LABEL, STUDY, catalogue_lesions, liver_image, phantom

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.lesions.diameters import axial_diameters
from LiverMetsReviewLib.lesions.markups import Seed
from LiverMetsReviewLib.lesions.measure import (
    MeasuredImage,
    Measurement,
    StudyContext,
    measure_lesion,
    quantity,
    reference_region,
    rim_core,
)
from LiverMetsReviewLib.lesions.review import review_lesions
from LiverMetsReviewLib.pipeline import compute_study_maps


@cache
def review():
    study = phantom(*STUDY)
    maps = compute_study_maps(study.series, which=("adc", "enhancement"))
    seeds = [Seed(les["id"], tuple(les["centre_mm"])) for les in study.truth["lesions"]]
    return review_lesions(study.series, seeds, liver_mask=liver_image(study), couinaud=study.couinaud, maps=maps)


def _lesion(lesion_id):
    rv = review()
    it = next(x for x in rv.lesions if x.seed.label == lesion_id)
    truth = next(x for x in phantom(*STUDY).truth["lesions"] if x["id"] == lesion_id)
    return it.measures, truth


# Focal hypersteatosis is fatty parenchyma with vessels running through it, not a mass: its outline is not
# held to a lesion's diameter tolerance (the vessels through it cut its edge), but its volume, centroid and
# Couinaud segment are (with the fat-signal channel it is outlined from the fat itself).
def _ids(with_hypersteatosis: bool = False):
    return [les["id"] for les in catalogue_lesions(STUDY[1])
            if with_hypersteatosis or les["type"] != "focal_hypersteatosis"]


@pytest.mark.parametrize("lesion_id", _ids())
def test_diameters_and_endpoints(lesion_id):
    m, truth = _lesion(lesion_id)
    # One voxel spacing (the tolerance): each end sits on the image's half-way edge (lesions/edge.py)
    spacing = max(review().reference.GetSpacing()[:2])
    assert m.value("long_axis") == pytest.approx(truth["diameter_mm"], abs=spacing)
    (a, b), (c, d) = np.array(m.long_axis_lps), np.array(m.short_axis_lps)
    # endpoints are rounded to 0.01 mm per coordinate
    assert np.linalg.norm(b - a) == pytest.approx(m.value("long_axis"), abs=0.02)
    assert np.linalg.norm(d - c) == pytest.approx(m.value("short_axis"), abs=0.02)
    assert abs(np.dot((b - a) / np.linalg.norm(b - a), (d - c) / np.linalg.norm(d - c))) < 0.05  # perpendicular
    assert abs(a[2] - b[2]) < 1e-6 and abs(c[2] - a[2]) < 1e-6  # one axial slice
    assert m.value("short_axis") <= m.value("long_axis") + 1e-9


@pytest.mark.parametrize("lesion_id", _ids(with_hypersteatosis=True))
def test_volume_centroid_couinaud(lesion_id):
    m, truth = _lesion(lesion_id)
    # Dice >= 0.85 allows this much; the phantom's volume is counted on its 1.5 mm truth grid.
    assert m.value("volume") == pytest.approx(truth["volume_ml"], rel=0.2)
    assert np.linalg.norm(np.array(m.centroid_lps) - truth["centre_mm"]) < 3.0
    assert m.couinaud_segment == truth["couinaud_segment"]


# One-compartment lesions with a core inside a 3 mm rim (>= 10 mm; the 7 mm one has none: see the last test).
SINGLE = [les["id"] for les in catalogue_lesions(STUDY[1])
          if len(les["compartments"]) == 1 and les["diameter_mm"] >= 10.0]


@pytest.mark.parametrize("lesion_id", SINGLE)
def test_core_values_match_tissue_parameters(lesion_id):
    """Core (deeper than the rim) median / background median = the noise-free signal ratio of the truth; ADC =
    the compartment's ADC. Tolerance 10 %: noise. On the 6 mm T2/DWI slices the core is read only on voxels that
    see no rim or liver (lesions/footprint.py): a core too small for that is None with the reason (a reference
    slice mixes two 6 mm slices, so a core needs a 12 mm span; DWI's 3 mm pixels likewise in-plane)."""
    m, truth = _lesion(lesion_id)
    comp = truth["compartments"][0]
    measured = {}
    for key, role in (("signal", "t1_hepatobiliary"), ("signal", "t1_portal_venous"), ("signal", "t1_pre"),
                      ("signal", "t2"), ("adc", "adc")):
        v = m.value(key, role, "core", "median")
        if v is None:
            why = next(x.why for x in m.measurements if (x.image, x.region, x.statistic) == (role, "core", "median"))
            assert "too small for" in why and role in ("t2", "adc"), (role, why)
            continue
        measured[role] = v
    for role, v in measured.items():
        if role == "adc":
            assert v == pytest.approx(comp["params"]["adc_1e6_mm2_s"], rel=0.1)
        else:
            ratio = v / m.value("signal", role, "reference", "median")
            assert ratio == pytest.approx(comp["expected_noise_free"]["to_liver"][role], rel=0.1), role
    # the reference grid's own series (the pre-contrast core: what a region's gain over pre-contrast divides by)
    assert {"t1_hepatobiliary", "t1_portal_venous", "t1_pre"} <= set(measured)
    hbp_ratio = m.value("lesion_to_liver_ratio", "t1_hepatobiliary")
    assert hbp_ratio == pytest.approx(comp["expected_noise_free"]["to_liver"]["t1_hepatobiliary"], rel=0.15)


def test_rim_core_signs_follow_the_lesion_types():
    crc, _ = _lesion("crc_met")  # ring-enhancing colorectal metastasis, necrotic centre
    rim = lambda k, img: crc.value(k, img, "rim", "median")  # noqa: E731
    core = lambda k, img: crc.value(k, img, "core", "median")  # noqa: E731
    assert rim("relative_enhancement", "re_arterial") > core("relative_enhancement", "re_arterial")  # ring
    if rim("adc", "adc") is None:  # a 3 mm shell on 3 x 3 x 6 mm DWI voxels: no rim voxel sees only lesion
        why = next(x.why for x in crc.measurements if (x.image, x.region, x.statistic) == ("adc", "rim", "median"))
        assert "too thin for adc" in why
    else:
        assert rim("adc", "adc") < core("adc", "adc")  # rim restriction, shine-through centre
    assert rim("signal", "t1_hepatobiliary") < core("signal", "t1_hepatobiliary")  # HBP target
    assert rim("signal", "t2") < core("signal", "t2")  # necrotic centre brighter on T2
    abl, _ = _lesion("ablation_expected")  # thin granulation rim, coagulated core
    assert abl.value("relative_enhancement", "re_arterial", "rim", "median") > \
        abl.value("relative_enhancement", "re_arterial", "core", "median")


@pytest.mark.parametrize("lesion_id", ["ablation_expected", "crc_met"])
def test_pre_contrast_rim_and_core_follow_the_truth(lesion_id):
    """The pre-contrast T1 is read on the rim and the core (a region's gain over pre-contrast needs its own
    pre-contrast value): their order follows the truth's compartments (an ablation zone's T1-bright debris inside a
    darker granulation rim, S29; a colorectal metastasis's necrotic centre darker than its viable rim), and the rim's
    ratio to the liver lies between the liver's (1) and its compartment's (the 3 mm shell's edge voxels hold liver)."""
    m, truth = _lesion(lesion_id)
    comps = {c["name"]: c["expected_noise_free"]["to_liver"]["t1_pre"] for c in truth["compartments"]}
    ref = m.value("signal", "t1_pre", "reference", "median")
    rim, core = (m.value("signal", "t1_pre", r, "median") / ref for r in ("rim", "core"))
    assert np.sign(core - rim) == np.sign(comps["core"] - comps["rim"])
    lo, hi = sorted((1.0, comps["rim"]))
    assert lo - 0.05 <= rim <= hi + 0.05, (rim, comps)


def test_reference_is_liver_without_vessels_or_lesions():
    rv, study = review(), phantom(*STUDY)
    labels = sitk.GetArrayFromImage(study.labelmap_on("t1_hepatobiliary", rv.reference))
    ctx = StudyContext(rv.reference, {}, liver=rv.liver, lesions=np.any([it.mask for it in rv.lesions], axis=0))
    for it in rv.lesions:
        mask = it.mask
        nz = np.nonzero(mask)
        sl = tuple(slice(max(0, int(a.min()) - 12), int(a.max()) + 13) for a in nz)
        region, info = reference_region(ctx, mask, sl)
        assert info["voxels"] > 100
        assert np.mean(labels[sl][region] == LIVER_LABEL) >= 0.97, it.seed.label
        assert it.measures.reference["voxels"] > 100 and len(it.measures.reference["centroid_lps"]) == 3


def test_capsule_distance_on_a_known_geometry():
    """A sphere 6 mm under the flat surface of a liver block: the edge-to-capsule distance is 6 mm (+- 1 voxel)."""
    ref = sitk.Image([80, 80, 40], sitk.sitkUInt8)
    ref.SetSpacing([1.0, 1.0, 2.0])
    z, y, x = np.mgrid[:40, :80, :80]
    liver = x >= 10  # the capsule is the plane x = 9.5 (voxel centres in mm: x index)
    lesion = (x - 26) ** 2 + (y - 40) ** 2 + ((z - 20) * 2.0) ** 2 <= 10 ** 2  # edge at x = 16
    ctx = StudyContext(ref, {}, liver=liver & ~lesion, lesions=lesion)
    m = measure_lesion(ctx, lesion, "known")
    assert m.value("capsule_distance") == pytest.approx(16 - 10, abs=1.0)
    touching = (x - 18) ** 2 + (y - 40) ** 2 + ((z - 20) * 2.0) ** 2 <= 8 ** 2
    ctx2 = StudyContext(ref, {}, liver=liver & ~touching, lesions=touching)
    assert measure_lesion(ctx2, touching, "t").value("capsule_distance") == pytest.approx(0.0, abs=1.0)


def test_diameter_of_a_known_disc():
    ref = sitk.Image([100, 100, 5], sitk.sitkUInt8)
    ref.SetSpacing([0.8, 0.8, 3.0])
    _, y, x = np.mgrid[:5, :100, :100]
    disc = ((x - 50) * 0.8) ** 2 + ((y - 50) * 0.8) ** 2 <= 15.0 ** 2
    long_, _, short, _ = axial_diameters(disc, ref)
    assert long_ == pytest.approx(30.0, abs=0.8) and short == pytest.approx(30.0, abs=0.8)


def test_rim_and_core_split():
    mask = np.zeros((20, 40, 40), bool)
    z, y, x = np.mgrid[:20, :40, :40]
    mask[((x - 20) ** 2 + (y - 20) ** 2 + (z - 10) ** 2) <= 8 ** 2] = True
    rim, core = rim_core(mask, (1.0, 1.0, 1.0), 3.0)
    assert not (rim & core).any() and ((rim | core) == mask).all()
    assert core.sum() == pytest.approx(4 / 3 * np.pi * 5 ** 3, rel=0.15)


def test_measurements_carry_units_and_reasons():
    m, _ = _lesion("small_met")
    for x in m.measurements:
        assert quantity(x.key)["unit"][1]
        assert x.value is not None or x.why
    assert Measurement("adc", 1000.0).unit == "um2/s"
    # 7 mm: inside a 3 mm rim at most a voxel or two of core (its truth has one voxel 3.35 mm deep), too few for a
    # statistic, and it says so
    assert m.value("adc", "adc", "core", "median") is None
    assert all(("too thin" in x.why or "fewer than" in x.why or "too small for" in x.why)
               for x in m.measurements if x.region == "core")


def _ablation_zone(rng: np.random.Generator, nodule: bool) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    mask, re, spacing, _ = _ablation_zone_parts(rng, nodule)
    return mask, re, spacing


def _ablation_zone_parts(rng: np.random.Generator, nodule: bool
                         ) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], np.ndarray]:
    """A drawn ablation zone (radius 9-15 mm): no enhancement inside, an arterially enhancing 3 mm rim, and
    optionally an enhancing nodule (radius 4-6 mm) on the rim in a random direction; noise of 20 % per voxel."""
    spacing = (3.0, 1.5, 1.5)
    z, y, x = np.mgrid[:24, :48, :48]
    pos = np.stack([z * spacing[0], y * spacing[1], x * spacing[2]], axis=-1) - np.array([36.0, 36.0, 36.0])
    r = float(rng.uniform(9.0, 15.0))
    dist = np.linalg.norm(pos, axis=-1)
    mask = dist <= r
    re = np.where(mask & (dist > r - 3.0), 40.0, 0.0)
    near = np.zeros(mask.shape, bool)
    if nodule:
        d = rng.normal(size=3)
        d[0] *= 0.3  # nearer the axial plane than the poles (where a sphere's rim is thin in-plane)
        d /= np.linalg.norm(d)
        near = np.linalg.norm(pos - (r - 2.5) * d, axis=-1) <= rng.uniform(4.0, 6.0)
        re = np.where(near & mask, 120.0, re)
    return mask, re + rng.normal(0.0, 20.0, re.shape), spacing, near & mask


def test_rim_asymmetry_separates_a_nodular_rim_from_a_uniform_one():
    """Recurrence after ablation (nodular arterial enhancement of the rim) against a uniform rim, on drawn zones:
    every nodular rim's asymmetry lies beyond the uniform rims' by more than the noise of the figure explains."""
    rng = np.random.default_rng(8)
    figures = {}
    for nodule in (False, True):
        figures[nodule] = []
        for _ in range(8):
            mask, re, spacing = _ablation_zone(rng, nodule)
            ref = sitk.GetImageFromArray(re.astype(np.float32))
            ref.SetSpacing(spacing[::-1])
            ctx = StudyContext(ref, {"re_arterial": MeasuredImage(re, "relative_enhancement")})
            m = measure_lesion(ctx, mask, "zone")
            figures[nodule].append(m.value("relative_enhancement", "re_arterial", "rim", "asymmetry"))
    uniform, nodular = np.array(figures[False]), np.array(figures[True])
    assert uniform.max() < 20.0  # a sector median's noise, far below the rim's own 40 %
    assert nodular.min() > uniform.max() + 3.0 * uniform.std(), (uniform, nodular)


def test_rim_asymmetry_key_reads_as_the_checklist_expects():
    from LiverMetsReviewLib.checklist.values import lesion_values

    mask, re, spacing = _ablation_zone(np.random.default_rng(1), True)
    ref = sitk.GetImageFromArray(re.astype(np.float32))
    ref.SetSpacing(spacing[::-1])
    m = measure_lesion(StudyContext(ref, {"re_arterial": MeasuredImage(re, "relative_enhancement")}), mask, "z")
    values, _ = lesion_values(m.measurements)
    assert values["lesion.re_arterial.rim.asymmetry"] > 0
    tiny = np.zeros_like(mask)
    tiny[12, 24:26, 24:26] = True  # four voxels: no sectors to compare
    m = measure_lesion(StudyContext(ref, {"re_arterial": MeasuredImage(re, "relative_enhancement")}), tiny, "t")
    assert m.value("relative_enhancement", "re_arterial", "rim", "asymmetry") is None


def test_a_refused_seed_stops_the_review_or_is_noted_and_skipped():
    """A seed outside the image stops ``review_lesions`` with a sentence naming it; with ``refused`` the sentence
    is noted under its label and the other lesion is segmented and measured as usual."""
    study = phantom(*STUDY)
    les = study.truth["lesions"][0]
    seeds = [Seed(les["id"], tuple(les["centre_mm"])), Seed("outside", (9000.0, 9000.0, 9000.0))]
    with pytest.raises(LiverMetsError, match="'outside'"):
        review_lesions(study.series, seeds, liver_mask=liver_image(study))
    refused: dict[str, str] = {}
    rv = review_lesions(study.series, seeds, liver_mask=liver_image(study), refused=refused)
    assert list(refused) == ["outside"] and "'outside'" in refused["outside"]
    assert [it.seed.label for it in rv.lesions] == [les["id"]]
    assert rv.lesions[0].measures.value("volume") > 0


def test_the_outlying_sector_is_read_on_the_adc_and_portal_venous_images():
    """The rim sector that stands out on the arterial phase is read on companion images (rim_outlier_companions):
    a drawn nodule that restricts (ADC 800-1100 against a rim of 1400-1900) and washes out (darker than the rim on
    the portal venous phase) gives a negative z on both; a nodule that keeps its contrast and diffuses freely
    (granulation-like) gives a positive one. Noise 20 % per voxel on the arterial image, 5 % on the others."""
    rng = np.random.default_rng(17)
    for tumour in (True, False, True, False):
        mask, re, spacing, nodule = _ablation_zone_parts(rng, True)
        rim_adc, rim_pv = rng.uniform(1400, 1900), rng.uniform(1.1, 1.3)
        adc = np.where(mask, rim_adc, 1200.0)
        pv = np.where(mask, rim_pv, 1.0)
        adc = np.where(nodule, rng.uniform(800, 1100) if tumour else rim_adc * 1.2, adc)
        pv = np.where(nodule, rng.uniform(0.7, 0.9) if tumour else rim_pv * 1.2, pv)
        adc = adc * (1 + rng.normal(0, 0.05, adc.shape))
        pv = 1000.0 * pv * (1 + rng.normal(0, 0.05, pv.shape))
        ref = sitk.GetImageFromArray(re.astype(np.float32))
        ref.SetSpacing(spacing[::-1])
        images = {"re_arterial": MeasuredImage(re, "relative_enhancement"), "adc": MeasuredImage(adc, "adc"),
                  "t1_portal_venous": MeasuredImage(pv, "signal")}
        m = measure_lesion(StudyContext(ref, images), mask, "zone")
        shell = max(("rim", "margin"), key=lambda r: m.value("sector_excess_z", "re_arterial", r, "asymmetry_z") or 0)
        adc_z = m.value("sector_excess_z", "adc", shell, "outlier_excess_z")
        pv_z = m.value("sector_excess_z", "t1_portal_venous", shell, "outlier_excess_z")
        if tumour:
            assert adc_z < -1.645 and pv_z < -1.645, (shell, adc_z, pv_z)
        else:
            assert adc_z > 0 and pv_z > 0, (shell, adc_z, pv_z)
