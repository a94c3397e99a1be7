"""The project's phantom written as DICOM by the project's writer, read back by the study loader.

Ground truth: the role, b-values, echo times and geometry of every phantom series (the phantom knows
what it wrote). Several seeds, scenarios, field strengths and vendor header conventions.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

generate = pytest.importorskip("LiverMetsReviewLib.phantom.generate", reason="phantom generator not available yet")
writer = pytest.importorskip("LiverMetsReviewLib.io.dicom_writer", reason="DICOM writer not available yet")

from LiverMetsReviewLib.study.classify import classify_folder  # noqa: E402
from LiverMetsReviewLib.study.load import load_dwi, load_study  # noqa: E402

CASES = [(0, "normal", 1.5, "siemens"), (1, "steatosis", 3.0, "ge"), (2, "reduced_hbp", 1.5, "philips"),
         (3, "pseudocirrhosis", 3.0, "siemens")]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"seed{c[0]}-{c[1]}-{c[2]}T-{c[3]}")
def written(request, tmp_path_factory):
    seed, scenario, b0, vendor = request.param
    study = generate.generate_phantom(seed=seed, scenario=scenario, field_strength_t=b0, size="small")
    out = tmp_path_factory.mktemp(f"phantom{seed}")
    writer.write_series_dicom(study.series, out, vendor=vendor, seed=seed)
    return study, out, classify_folder(out)


def test_every_phantom_series_classified(written):
    study, _, scan = written
    expected = {s.meta["series_number"]: s.role for s in study.series}
    got = {s.series_number: s.role for s in scan.series}
    assert got == expected, {n: (got.get(n), r) for n, r in expected.items() if got.get(n) != r}
    assert not scan.skipped
    assert all(s.confidence >= 0.75 for s in scan.series)


def test_phantom_b_values_and_echo_times(written):
    study, _, scan = written
    by_num = {s.series_number: s for s in scan.series}
    for ser in study.series:
        info = by_num[ser.meta["series_number"]]
        if ser.role == "dwi":
            assert [st.b_value for st in info.stacks] == pytest.approx(ser.b_values)
        if ser.role == "multi_echo_gre":
            assert info.echo_times_ms == pytest.approx(ser.echo_times_ms, abs=1e-3)


def test_loaded_volumes_match_the_phantom(written):
    study, _, scan = written
    loaded = {s.role: s for s in load_study(scan, dwi_trace=False)}
    assert set(loaded) == {s.role for s in study.series}
    infos = {s.role: s for s in scan.series}
    for ser in study.series:
        got = loaded[ser.role]
        assert len(got.stacks) == len(ser.stacks)
        for k, (img, ref) in enumerate(zip(got.stacks, ser.stacks, strict=True)):
            assert img.GetSize() == ref.GetSize()
            assert np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-3)
            assert np.allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-4)
            assert np.allclose(img.GetDirection(), ref.GetDirection(), atol=1e-5)
            a, b = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref).astype(np.float32)
            # the writer quantises to integers x RescaleSlope: rounding error at most slope/2
            slope = max(float(pydicom.dcmread(f.path, stop_before_pixels=True).get("RescaleSlope", 1.0))
                        for f in infos[ser.role].stacks[k].frames)
            float32_eps = 4 * np.finfo(np.float32).eps * float(np.abs(b).max())
            assert np.abs(a - b).max() <= slope / 2 + float32_eps


def test_load_dwi_on_the_phantom_dwi_folder(written):
    study, out, scan = written
    dwi = next(s for s in scan.series if s.role == "dwi")
    folder = {p.parent for p in map(__import__("pathlib").Path, dwi.files)}
    assert len(folder) == 1
    series = load_dwi(folder.pop())
    assert series.role == "dwi"
    assert series.b_values == pytest.approx(study.series_by_role("dwi").b_values)


# the words each role's console name must carry, whatever the vendor (GE and Philips names from the writer's
# vendor profiles, Siemens from the phantom protocol): role -> keyword families of which at least one must hit
ROLE_WORDS = {
    "t1_in_phase": ("chemical_shift", "t1_in_phase"), "t1_opposed_phase": ("chemical_shift", "t1_opposed_phase"),
    "multi_echo_gre": ("multi_echo_gre",), "dixon_water": ("dixon",), "dixon_fat": ("dixon",), "t2": ("t2",),
    "dwi": ("dwi",), "adc_scanner": ("adc",), "t1_pre": ("pre",), "t1_arterial": ("t1_dynamic",),
    "t1_portal_venous": ("t1_dynamic",), "t1_transitional": ("t1_dynamic",), "t1_hepatobiliary": ("t1_dynamic",),
}


def test_vendor_series_names_carry_their_role_words(written):
    """GE 'Ax LAVA-Flex ART', Philips 'eTHRIVE_BH_ART', 'mDIXON-Quant_BH', 'dADC_DWI_b...': the words are found."""
    from LiverMetsReviewLib.study.classify import keyword
    from LiverMetsReviewLib.study.dynamic import _keyword_phase

    study, _, scan = written
    roles = {s.meta["series_number"]: s.role for s in study.series}
    for info in scan.series:
        role = roles[info.series_number]
        hits = [f for f in ROLE_WORDS[role] if keyword(info, f)]
        assert hits, (role, info.description)
        if role in ("t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"):
            assert _keyword_phase(info) == role, info.description
            assert "description" in info.reason and info.confidence >= 0.95  # timing and the word agree
        if role.startswith("t1_") and role not in ("t1_in_phase", "t1_opposed_phase"):
            assert not keyword(info, "multi_echo_gre"), info.description


def test_phantom_roles_json_overrides_the_phantom_dicom(written, tmp_path):
    """The roles.json of the phantom's NRRD folder names series by number; used as overrides on its DICOM export."""
    import copy
    import json

    from LiverMetsReviewLib.io.study_folder import write_study_folder
    from LiverMetsReviewLib.study.classify import apply_overrides, load_overrides

    study, _, scan = written
    index_path = write_study_folder(study.series, tmp_path / "nrrd")
    index = json.loads(index_path.read_text())
    hbp = next(e for e in index["series"] if e["role"] == "t1_hepatobiliary")
    hbp["role"] = "unassigned"  # the reader drops a hepatobiliary phase (e.g. motion)
    t2 = next(e for e in index["series"] if e["role"] == "t2")
    t2["role"] = "t1_hepatobiliary"  # and, for the test, calls the T2 series something else
    index_path.write_text(json.dumps(index))
    series = copy.deepcopy(scan.series)
    apply_overrides(series, load_overrides(index_path))
    got = {s.series_number: s.role for s in series}
    want = {s.meta["series_number"]: s.role for s in study.series}
    want[hbp["meta"]["series_number"]] = "unassigned"
    want[t2["meta"]["series_number"]] = "t1_hepatobiliary"
    assert got == want
    edited = {hbp["meta"]["series_number"], t2["meta"]["series_number"]}
    for s in series:  # the edited ones are the reader's; the others keep the classifier's evidence
        assert s.confidence == 1.0
        assert s.reason == "set by the reader" if s.series_number in edited else \
            s.reason.startswith("set by the reader, as classified (")
