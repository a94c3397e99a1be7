"""``livermets classify`` and ``livermets load`` end to end on a synthetic study (roles known by construction)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from test_study_classify import write_liver_study, write_series

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.io.study_folder import read_study_folder


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_study")
    expected = write_liver_study(root / "dicom", field_t=1.5, seed=5)
    (root / "dicom" / "README.txt").write_text("export notes")
    return root, expected


def test_classify_json(study, capsys):
    root, expected = study
    assert main(["classify", str(root / "dicom"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["series_number"]: r for r in out["series"]}
    assert {n: r["role"] for n, r in rows.items()} == expected
    dwi = rows[7]
    assert dwi["b_values"] == [50.0, 400.0, 800.0] and dwi["field_strength_t"] == 1.5
    assert rows[2]["echo_times_ms"] == [2.3, 4.6]
    for key in ("series_uid", "description", "confidence", "reason", "n_instances", "acquisition_time"):
        assert key in dwi
    assert dwi["n_instances"] == 9  # 3 slices x 3 b-values
    assert [s["reason"] for s in out["skipped"]] == ["is not a DICOM file (no 'DICM' marker and no DICOM image "
                                                     "attributes)"]


def test_classify_table(study, capsys):
    root, _ = study
    assert main(["classify", str(root / "dicom")]) == 0
    text = capsys.readouterr().out
    assert "t1_hepatobiliary" in text and "why:" in text and "README.txt" in text


def test_load_writes_study_folder_with_roles(study, tmp_path, capsys):
    root, expected = study
    assert main(["load", str(root / "dicom"), "-o", str(tmp_path / "out")]) == 0
    series = read_study_folder(tmp_path / "out")
    roles = sorted(s.role for s in series)
    want = sorted(r for v in expected.values() if v != "unassigned" for r in v.split("+"))
    assert roles == want
    dwi = next(s for s in series if s.role == "dwi")
    assert dwi.b_values == [50.0, 400.0, 800.0]
    assert (tmp_path / "out" / "dwi_b800.nrrd").exists()
    bvals = json.loads((tmp_path / "out" / "dwi_bvalues.json").read_text())
    assert bvals["b_values_s_mm2"] == [50.0, 400.0, 800.0]
    index = json.loads((tmp_path / "out" / "roles.json").read_text())
    assert index["coordinate_system"] == "LPS" and len(index["classification"]) == len(expected)


def test_load_with_reader_overrides(study, tmp_path):
    root, _ = study
    roles = tmp_path / "override.json"
    # the reader says series 6 is not wanted and the localizer's stack is a T2 (to see the override take effect)
    roles.write_text(json.dumps({"overrides": {"6": "unassigned", "1": "t2"}}))
    assert main(["load", str(root / "dicom"), "-o", str(tmp_path / "out"), "--roles", str(roles)]) == 0
    index = json.loads((tmp_path / "out" / "roles.json").read_text())
    t2 = [e for e in index["series"] if e["role"] == "t2"]
    assert len(t2) == 1 and t2[0]["meta"]["series_number"] == 1
    assert t2[0]["meta"]["role_reason"] == "set by the reader"
    img = sitk.ReadImage(str(tmp_path / "out" / t2[0]["files"][0]))
    assert np.allclose(img.GetSpacing(), (1.5, 2.0, 4.0))


def _entries(index: dict) -> dict[tuple[int, tuple[int, ...]], str]:
    """(series number, stack indices) -> role of every series entry of a study index."""
    return {(e["meta"]["series_number"], tuple(e["meta"]["stack_indices"])): e["role"] for e in index["series"]}


def test_roles_json_written_by_load_is_accepted_by_load_roles(study, tmp_path, capsys):
    """classify -> load -> edit one role in roles.json -> load --roles roles.json: the edited role is used."""
    root, expected = study
    assert main(["classify", str(root / "dicom"), "--json"]) == 0
    classified = {r["series_number"]: r["role"] for r in json.loads(capsys.readouterr().out)["series"]}
    assert classified == expected
    first = tmp_path / "first"
    assert main(["load", str(root / "dicom"), "-o", str(first)]) == 0
    index = json.loads((first / "roles.json").read_text())
    before = _entries(index)
    # the dual-echo series 2 came out as two entries, one per stack
    assert before[(2, (0,))] == "t1_opposed_phase" and before[(2, (1,))] == "t1_in_phase"
    # the reader decides the Dixon water image (series 3) is the pre-contrast image of the dynamic
    (dixon,) = [e for e in index["series"] if e["meta"]["series_number"] == 3]
    dixon["role"] = "t1_pre"
    (first / "roles.json").write_text(json.dumps(index, indent=2))
    second = tmp_path / "second"
    assert main(["load", str(root / "dicom"), "-o", str(second), "--roles", str(first / "roles.json")]) == 0
    after_index = json.loads((second / "roles.json").read_text())
    after = _entries(after_index)
    assert after == {**before, (3, (0,)): "t1_pre"}
    (edited,) = [e for e in after_index["series"] if e["meta"]["series_number"] == 3]
    assert edited["meta"]["role_reason"] == "set by the reader"
    same = sitk.GetArrayFromImage(sitk.ReadImage(str(second / edited["files"][0])))
    assert np.array_equal(same, sitk.GetArrayFromImage(sitk.ReadImage(str(first / "dixon_water.nrrd"))))
    assert not (second / "dixon_water.nrrd").exists()


def test_series_left_out_stay_out_when_roles_json_is_reused(study, tmp_path, capsys):
    """A series the first load left out (here by an overrides file) is not brought back by its roles.json."""
    root, expected = study
    overrides = tmp_path / "role_overrides.json"
    overrides.write_text(json.dumps({"overrides": {"6": "unassigned", "2": ["unassigned", "t1_in_phase"]}}))
    assert main(["load", str(root / "dicom"), "-o", str(tmp_path / "a"), "--roles", str(overrides)]) == 0
    first = _entries(json.loads((tmp_path / "a" / "roles.json").read_text()))
    assert 6 not in {n for n, _ in first} and first[(2, (1,))] == "t1_in_phase" and (2, (0,)) not in first
    # the study folder itself may be given instead of its roles.json
    assert main(["load", str(root / "dicom"), "-o", str(tmp_path / "b"), "--roles", str(tmp_path / "a")]) == 0
    assert _entries(json.loads((tmp_path / "b" / "roles.json").read_text())) == first
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"format": "some-other-tool", "series": []}))
    assert main(["load", str(root / "dicom"), "-o", str(tmp_path / "c"), "--roles", str(bad)]) == 2
    err = capsys.readouterr().err
    assert '"overrides"' in err and "livermets-study-folder" in err


def test_bad_input_exit_codes(tmp_path, capsys):
    assert main(["classify", str(tmp_path)]) == 2
    assert "empty" in capsys.readouterr().err
    (tmp_path / "junk.bin").write_bytes(b"abc")
    assert main(["classify", str(tmp_path)]) == 2
    assert "no MR image series" in capsys.readouterr().err
    for sub in ("a", "b"):
        write_series(tmp_path / sub, study_uid=generate_uid(), number=1, description="t2", te=90.0, tr=2000.0)
    assert main(["load", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "--study" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["classify", str(tmp_path / "a"), "--roles", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_load_resampled_onto_one_grid(tmp_path):
    """--resample-to puts every volume on the reference grid; a constant image stays constant inside it."""
    study = generate_uid()
    write_series(tmp_path / "dicom", study_uid=study, number=1, description="t2 haste", te=90.0, tr=1500.0,
                 n_slices=6, rows=10, cols=12, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    write_series(tmp_path / "dicom", study_uid=study, number=2, description="dwi", te=60.0, tr=4000.0,
                 b_values=[50.0, 800.0], n_slices=4, rows=5, cols=6, spacing=(2.5, 2.5, 3.0), origin=(-1.0, -1.0, 1.0),
                 pixels=lambda k, b, te: np.full((5, 6), 500 if b == 50 else 100, np.uint16))
    assert main(["load", str(tmp_path / "dicom"), "-o", str(tmp_path / "out"), "--resample-to", "t2"]) == 0
    t2 = sitk.ReadImage(str(tmp_path / "out" / "t2.nrrd"))
    for name, value in (("dwi_b50.nrrd", 500.0), ("dwi_b800.nrrd", 100.0)):
        img = sitk.ReadImage(str(tmp_path / "out" / name))
        assert img.GetSize() == t2.GetSize() and np.allclose(img.GetOrigin(), t2.GetOrigin())
        arr = sitk.GetArrayFromImage(img)
        assert np.allclose(arr[1:4, 1:8, 1:10], value)  # voxels well inside the DWI field of view
    assert main(["load", str(tmp_path / "dicom"), "-o", str(tmp_path / "out2"), "--resample-to", "t1_pre"]) == 2


def test_classify_with_a_hanging_protocol(study, capsys):
    root, expected = study
    assert main(["classify", str(root / "dicom"), "--json", "--layout", "lesion_review"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)["layouts"]
    number = {role: n for n, role in expected.items()}
    shown = [v["node_id"] for v in plan["viewports"]]
    # series 7 holds b 50/400/800 as stacks 0/1/2; no computed ADC in a DICOM folder, so the scanner's
    assert shown == [str(number["t2"]), "7[2]", str(number["adc_scanner"]), str(number["t1_arterial"]),
                     str(number["t1_portal_venous"]), str(number["t1_hepatobiliary"])]
    assert plan["viewports"][2]["fallback"] and plan["viewports"][1]["stack_meta"]["b_value"] == 800.0
    assert main(["classify", str(root / "dicom"), "--layout", "chemical_shift"]) == 0
    text = capsys.readouterr().out
    assert "hanging protocol for study" in text and "2[0]" in text and "2[1]" in text
    assert main(["classify", str(root / "dicom"), "--layout", "nope"]) == 2
    assert "unknown hanging protocol 'nope'" in capsys.readouterr().err
