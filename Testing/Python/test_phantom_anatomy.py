"""Phantom anatomy, lesions and scenarios checked on the tissue model (no signal needed).

Reference ranges: adult organ volumes from general anatomy (liver ~1.0-2.0 L, spleen ~0.1-0.4 L, kidney
~0.1-0.25 L each, gallbladder ~0.015-0.08 L); lesion sizes, segments and parameters from the catalogue data.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.phantom import build_model
from LiverMetsReviewLib.phantom.anatomy import axes_mm, couinaud_segment_at
from LiverMetsReviewLib.phantom.lesions import catalogue, semi_axes_mm
from LiverMetsReviewLib.phantom.scenarios import get_scenario, scenario_names
from LiverMetsReviewLib.phantom.tissues import tissue_params


@pytest.fixture(scope="module")
def standard_steatosis():
    return build_model("steatosis", size="standard")


@pytest.fixture(scope="module")
def small_models():
    return {name: build_model(name, size="small") for name in scenario_names()}


def _volume_ml(anatomy, names) -> float:
    sp = np.prod(anatomy.grid.GetSpacing())
    return float(np.isin(anatomy.labels, [anatomy.label_of(n) for n in names]).sum() * sp / 1000.0)


def _lesion_mask(anatomy, lesion_id):
    labs = [i for i, n in enumerate(anatomy.compartment_names) if n.startswith(lesion_id + ".")]
    return np.isin(anatomy.labels, labs)


def test_organ_volumes_plausible(standard_steatosis):
    anatomy = standard_steatosis[0]
    lesion_comps = [n for n in anatomy.compartment_names if "." in n]
    liver = _volume_ml(anatomy, ["liver", "portal_vein", "hepatic_veins"] + lesion_comps)
    assert 1000 <= liver <= 2100
    assert 100 <= _volume_ml(anatomy, ["spleen"]) <= 400
    for side in ("right", "left"):
        assert 100 <= _volume_ml(anatomy, [f"{side}_kidney_cortex", f"{side}_kidney_medulla"]) <= 250
    assert 15 <= _volume_ml(anatomy, ["gallbladder"]) <= 80
    # great vessels: ~2.4 cm aorta over the 20 cm field -> ~90 mL; the vessels inside the liver are thin
    assert 40 <= _volume_ml(anatomy, ["aorta"]) <= 150
    assert 3 <= _volume_ml(anatomy, ["portal_vein"]) <= 60
    assert 2 <= _volume_ml(anatomy, ["hepatic_veins"]) <= 40


def test_liver_contains_its_vessels_and_they_are_connected(standard_steatosis):
    anatomy = standard_steatosis[0]
    for name in ("portal_vein", "hepatic_veins"):
        m = anatomy.mask(name)
        assert m.sum() > 0
        # every intrahepatic vessel voxel lies in the liver envelope (where Couinaud segments are defined) ...
        assert np.all(anatomy.couinaud[m] > 0), name
        # ... and the tree is one piece (no floating fragments); hepatic veins: three veins joined at the IVC
        n = ndi.label(m, structure=np.ones((3, 3, 3)))[1]
        assert n <= (1 if name == "portal_vein" else 3), (name, n)


def test_couinaud_segments_all_present_with_plausible_shares(standard_steatosis):
    anatomy = standard_steatosis[0]
    seg = anatomy.couinaud
    counts = np.bincount(seg[seg > 0], minlength=9)[1:]
    share = counts / counts.sum()
    assert np.all(share > 0.01), share
    assert np.all(share < 0.35), share
    right = share[4:8].sum()  # V-VIII
    assert 0.5 < right < 0.8  # the right lobe is the larger one


def test_couinaud_planes_by_landmark():
    # far right posterior & superior -> VII; right anterior inferior -> V; far left superior -> II
    assert couinaud_segment_at(-130.0, 60.0, 50.0) == 7
    assert couinaud_segment_at(-70.0, -40.0, -20.0) == 5
    assert couinaud_segment_at(-120.0, 50.0, -30.0) == 6
    assert couinaud_segment_at(60.0, -40.0, 40.0) == 2
    assert couinaud_segment_at(60.0, -40.0, 0.0) == 3
    assert couinaud_segment_at(-10.0, -70.0, 40.0) == 4


@pytest.mark.parametrize("scenario", ["normal", "steatosis", "reduced_hbp", "pseudocirrhosis"])
def test_lesions_inside_liver_apart_and_in_their_segment(small_models, scenario):
    anatomy, lesions, _model, _sc = small_models[scenario]
    sp = anatomy.grid.GetSpacing()[0]
    envelope = anatomy.couinaud > 0
    inside_dist = ndi.distance_transform_edt(envelope) * sp
    masks = {les["id"]: _lesion_mask(anatomy, les["id"]) for les in lesions}
    x, y, z = axes_mm(anatomy.grid)
    for les in lesions:
        m = masks[les["id"]]
        expected = 4.0 / 3.0 * np.pi * np.prod(semi_axes_mm(les))
        got = m.sum() * sp**3
        assert 0.75 * expected < got < 1.25 * expected, (les["id"], got, expected)
        assert np.all(envelope[m]), f"{les['id']} leaves the liver"
        if les["id"] != "fat_sparing":  # sparing is meant to touch the gallbladder fossa
            # at least one voxel of parenchyma (>= 3 mm) between the lesion and the capsule
            assert inside_dist[m].min() >= max(3.0, sp) + 0.5, f"{les['id']} touches the liver edge"
        c = les["centre_mm"]
        assert couinaud_segment_at(*c) == les["couinaud_segment"], les["id"]
        zz, yy, xx = np.nonzero(m)
        segs = couinaud_segment_at(x[xx], y[yy], z[zz])
        # a focal fat area may straddle a hepatic-vein plane (vessels run through it); a mass sits in its segment
        share = np.mean(segs == les["couinaud_segment"])
        assert share > (0.5 if les.get("vessels_run_through") else 0.9), (les["id"], share)
    # no two lesions touch: dilate each by 3 mm and look for another lesion
    grown = int(np.ceil(3.0 / sp))
    for a in masks:
        near = ndi.binary_dilation(masks[a], iterations=grown)
        for b in masks:
            if a != b:
                assert not np.any(near & masks[b]), (a, b)


def _longest_axial_diameter_mm(mask: np.ndarray, spacing: float) -> float:
    best = 0.0
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        sl = mask[k]
        edge = sl & ~ndi.binary_erosion(sl)
        pts = np.argwhere(edge).astype(float) * spacing
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max() if len(pts) > 1 else 0.0
        best = max(best, d + spacing)  # centre-to-centre distance + one voxel = edge-to-edge extent
    return best


def test_lesion_diameter_on_labelmap_within_one_voxel(standard_steatosis):
    anatomy, lesions, _model, _sc = standard_steatosis
    sp = anatomy.grid.GetSpacing()[0]
    assert len(lesions) == len(catalogue()["lesions"])
    for les in lesions:
        m = _lesion_mask(anatomy, les["id"])
        measured = _longest_axial_diameter_mm(m, sp)
        assert abs(measured - les["diameter_mm"]) <= sp, (les["id"], measured, les["diameter_mm"])


def test_compartments_follow_the_catalogue(standard_steatosis):
    anatomy, lesions, model, _sc = standard_steatosis
    by_name = {c.name: c for c in model.compartments}
    liver = by_name["liver"]
    # rim: a shell of the stated thickness around the core
    crc_rim = anatomy.labels == anatomy.label_of("crc_met.rim")
    crc_core = anatomy.labels == anatomy.label_of("crc_met.core")
    core_volume = crc_core.sum() * anatomy.grid.GetSpacing()[0] ** 3
    assert core_volume == pytest.approx(4 / 3 * np.pi * (15.0 - 5.0) ** 3, rel=0.15)
    assert crc_rim.sum() > crc_core.sum()
    # parameters: factors relative to the liver, absolute ADC, no hepatocyte uptake in a metastasis
    assert by_name["crc_met.rim"].params["t1_ms"] == pytest.approx(1.6 * liver.params["t1_ms"])
    assert by_name["crc_met.core"].params["adc_1e6_mm2_s"] > 1.5 * by_name["crc_met.rim"].params["adc_1e6_mm2_s"]
    assert all(v == 0 for v in by_name["crc_met.rim"].gd_hep_mM.values())
    # FNH-like nodule: the rim retains gadoxetate at or above the liver, the centre less (peripheral retention)
    assert by_name["fnh_like.rim"].gd_hep_mM["t1_hepatobiliary"] >= liver.gd_hep_mM["t1_hepatobiliary"]
    fnh_hbp = {part: by_name[f"fnh_like.{part}"].gd_hep_mM["t1_hepatobiliary"] for part in ("rim", "core")}
    assert fnh_hbp["core"] < fnh_hbp["rim"]
    assert by_name["melanoma_met.core"].params["t1_ms"] < liver.params["t1_ms"]
    assert by_name["cyst.core"].params["t2_ms"] > 10 * liver.params["t2_ms"]
    # the hemangioma follows the blood pool: it still holds more contrast than the liver's ECS at PV
    assert by_name["hemangioma.core"].gd_ecs_mM["t1_portal_venous"] > 2 * liver.gd_ecs_mM["t1_portal_venous"]


def test_steatosis_sets_liver_pdff_and_gates_fat_lesions(small_models):
    _a, lesions_n, model_n, _ = small_models["normal"]
    _a, lesions_s, model_s, sc = small_models["steatosis"]
    liver_s = next(c for c in model_s.compartments if c.name == "liver")
    assert liver_s.params["pdff_percent"] == pytest.approx(sc["liver_pdff_percent"])
    ids_n = {les["id"] for les in lesions_n}
    ids_s = {les["id"] for les in lesions_s}
    gated = {"fat_sparing", "hypersteatosis", "sparing_mimic_met"}
    assert gated <= ids_s and not gated & ids_n
    by_name = {c.name: c for c in model_s.compartments}
    assert by_name["fat_sparing.core"].params["pdff_percent"] < 0.5 * liver_s.params["pdff_percent"]
    assert by_name["hypersteatosis.core"].params["pdff_percent"] > 1.5 * liver_s.params["pdff_percent"]
    # the requested liver fat fraction wins over the scenario's
    _a, lesions_x, model_x, _ = build_model("normal", liver_fat_percent=25.0, size="small")
    assert next(c for c in model_x.compartments if c.name == "liver").params["pdff_percent"] == 25.0
    assert gated <= {les["id"] for les in lesions_x}


def test_reduced_hbp_lowers_hepatocyte_uptake(small_models):
    def hep(model, name):
        return next(c for c in model.compartments if c.name == name).gd_hep_mM["t1_hepatobiliary"]

    normal, reduced = small_models["normal"][2], small_models["reduced_hbp"][2]
    factor = get_scenario("reduced_hbp")["hepatocyte_uptake_factor"]
    assert factor < 1
    assert hep(reduced, "liver") == pytest.approx(factor * hep(normal, "liver"))
    assert hep(reduced, "fnh_like.core") < hep(normal, "fnh_like.core")
    assert hep(normal, "liver") == pytest.approx(tissue_params("liver", 1.5)["gd_hep_mM"]["t1_hepatobiliary"])


def test_pseudocirrhosis_changes_the_liver(small_models):
    normal, pseudo = small_models["normal"][0], small_models["pseudocirrhosis"][0]
    assert _volume_ml(pseudo, ["ascites"]) > 20
    assert "ascites" not in normal.compartment_names or _volume_ml(normal, ["ascites"]) == 0
    caudate = [np.sum(a.couinaud == 1) for a in (normal, pseudo)]
    assert caudate[1] > 1.5 * caudate[0]  # caudate enlargement ...
    right = [np.isin(a.couinaud, [5, 6, 7, 8]).sum() for a in (normal, pseudo)]
    assert right[1] < 0.97 * right[0]  # ... with right-lobe volume loss
    # nodular contour: a rougher surface = more surface voxels per liver volume
    def roughness(a):
        env = a.couinaud > 0
        return (env & ~ndi.binary_erosion(env)).sum() / env.sum() ** (2 / 3)

    assert roughness(pseudo) > 1.05 * roughness(normal)


def test_field_strength_3t_lengthens_liver_t1():
    t15 = tissue_params("liver", 1.5)["params"]["t1_ms"]
    t30 = tissue_params("liver", 3.0)["params"]["t1_ms"]
    assert 550 <= t15 <= 620 and 780 <= t30 <= 840  # de Bazelaire 2004: 586 +/- 39 and 809 +/- 71 ms


def test_bad_inputs_raise_one_sentence():
    with pytest.raises(LiverMetsError, match="scenario 'cirrhosis' is unknown"):
        build_model("cirrhosis", size="small")
    with pytest.raises(LiverMetsError, match="field strength 7 T"):
        build_model("normal", field_strength_t=7.0, size="small")
    with pytest.raises(LiverMetsError, match="0-60 %"):
        build_model("normal", liver_fat_percent=90.0, size="small")
    with pytest.raises(LiverMetsError, match="size 'huge'"):
        build_model("normal", size="huge")
