"""A second series checks the liver mask (lesions/liver_confirm.py): a neighbour iso to the liver on the series the
mask was grown on, but not on another, is taken out; vessels and lesions inside the liver stay; a breath-hold
shift between the series does not eat the dome; with nothing to tell apart nothing changes."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.lesions.liver import segment_liver
from LiverMetsReviewLib.lesions.liver_confirm import confirm_liver
from LiverMetsReviewLib.phantom import generate_phantom

SPACING = (3.0, 3.0, 6.0)  # x, y, z mm


def _grid() -> tuple[np.ndarray, ...]:
    z, y, x = np.mgrid[0:24, 0:64, 0:64].astype(float)
    return z * SPACING[2], y * SPACING[1], x * SPACING[0]


def _anatomy() -> dict[str, np.ndarray]:
    """An ellipsoidal liver (z 18-126 mm), a 12 mm body-wall muscle layer against its right side, a vessel
    running through it and a lesion inside it."""
    z, y, x = _grid()
    liver = ((x - 100) / 70) ** 2 + ((y - 96) / 60) ** 2 + ((z - 72) / 54) ** 2 <= 1.0
    r = np.sqrt(((x - 100) / 70) ** 2 + ((y - 96) / 60) ** 2 + ((z - 72) / 54) ** 2)
    muscle = ~liver & (x < 90) & (r <= 1.0 + 12.0 / 70) & (np.abs(z - 72) <= 40)
    vessel = liver & (np.hypot(x - 110, y - 90) <= 5)
    lesion = liver & (np.sqrt((x - 80) ** 2 + (y - 110) ** 2 + (z - 60) ** 2) <= 12)
    return {"liver": liver, "muscle": muscle, "vessel": vessel, "lesion": lesion}


def _image(values: dict[str, float], anatomy: dict[str, np.ndarray], rng: np.random.Generator,
           origin_z: float = 0.0) -> sitk.Image:
    arr = np.full(anatomy["liver"].shape, 60.0)
    for name in ("muscle", "liver", "vessel", "lesion"):
        arr[anatomy[name]] = values[name]
    arr = arr + rng.normal(0.0, 15.0, arr.shape)
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing(SPACING)
    img.SetOrigin((0.0, 0.0, origin_z))
    return img


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


PV = {"liver": 1000.0, "muscle": 1000.0, "vessel": 1800.0, "lesion": 700.0}
HBP = {"liver": 2000.0, "muscle": 1300.0, "vessel": 500.0, "lesion": 900.0}


def _leaky_mask(anatomy: dict[str, np.ndarray]) -> sitk.Image:
    mask = sitk.GetImageFromArray((anatomy["liver"] | anatomy["muscle"]).astype(np.uint8))
    mask.SetSpacing(SPACING)
    return mask


@pytest.mark.parametrize("shift_mm", [0.0, 12.0, -12.0])
def test_a_neighbour_iso_on_one_series_is_taken_out_by_another(shift_mm):
    rng = np.random.default_rng(7)
    anatomy = _anatomy()
    images = {"t1_portal_venous": _image(PV, anatomy, rng),
              # a later breath-hold: the anatomy sits shift_mm higher in the world
              "t1_hepatobiliary": _image(HBP, anatomy, rng, origin_z=shift_mm)}
    notes: list[str] = []
    out = sitk.GetArrayFromImage(confirm_liver(_leaky_mask(anatomy), images, "t1_portal_venous", notes)) > 0
    liver = anatomy["liver"]
    assert _dice(out, liver) >= 0.97, notes
    # most of the layer goes; its tapered ends, thinner than the partial-volume depth, may stay
    assert (out & anatomy["muscle"]).sum() <= 0.2 * anatomy["muscle"].sum(), notes
    assert out[anatomy["vessel"]].mean() >= 0.97 and out[anatomy["lesion"]].all(), notes
    assert not (out & ~(liver | anatomy["muscle"])).any()  # never beyond the first mask
    assert "taken out" in notes[-1] and f"{shift_mm:+.0f} mm x, y, z" in notes[-1]


def test_nothing_changes_when_no_other_series_tells_the_neighbour_apart():
    rng = np.random.default_rng(8)
    anatomy = _anatomy()
    iso = dict(HBP, muscle=HBP["liver"])
    images = {"t1_portal_venous": _image(PV, anatomy, rng), "t1_hepatobiliary": _image(iso, anatomy, rng)}
    mask = _leaky_mask(anatomy)
    notes: list[str] = []
    out = confirm_liver(mask, images, "t1_portal_venous", notes)
    assert np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(mask))
    assert "nothing to take out" in notes[-1]
    alone = confirm_liver(mask, {"t1_portal_venous": images["t1_portal_venous"]}, "t1_portal_venous", notes)
    assert np.array_equal(sitk.GetArrayFromImage(alone), sitk.GetArrayFromImage(mask))


def test_drawn_fatty_liver_keeps_the_body_wall_out():
    """A drawn steatosis study with ~28 % liver fat: on the portal venous phase the liver's signal falls to the
    body-wall muscle's, and the mask took in the muscle along the right lobe (Dice 0.91 before the check)."""
    study = generate_phantom(seed=6009, scenario="steatosis", size="small", vary=True)
    assert study.truth["liver_background"]["pdff_percent"] >= 20.0  # the case this test is about
    images = {s.role: s.image for s in study.series}
    result = segment_liver(images)
    truth = sitk.GetArrayFromImage(study.couinaud_on(result.series_used,
                                                     study.series_by_role(result.series_used).image)) > 0
    assert _dice(sitk.GetArrayFromImage(result.mask) > 0, truth) >= 0.95, result.notes
    assert "checked on the study's other series" in result.method  # the liver figures' method says so
