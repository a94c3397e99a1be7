"""Image I/O and the study folder round-trip pixels, geometry and metadata exactly."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.io.images import get_metadata, read_image, write_image
from LiverMetsReviewLib.io.study_folder import read_study_folder, write_study_folder
from LiverMetsReviewLib.series import Series


def _img(seed: int) -> sitk.Image:
    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray(rng.random((4, 5, 6)).astype(np.float32))
    img.SetSpacing((0.7, 0.8, 5.0))
    img.SetOrigin((-100.0, 20.0, 3.5))
    img.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    return img


def test_image_metadata_roundtrip(tmp_path):
    p = write_image(_img(0), tmp_path / "a.nrrd", {"units": "10^-6 mm^2/s", "b_values": [50, 800]})
    back = read_image(p)
    assert get_metadata(back) == {"units": "10^-6 mm^2/s", "b_values": [50, 800]}
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(_img(0)))
    assert back.GetDirection() == (0, 1, 0, 1, 0, 0, 0, 0, 1)


def test_read_image_errors(tmp_path):
    with pytest.raises(LiverMetsError, match="does not exist"):
        read_image(tmp_path / "missing.nrrd")
    bad = tmp_path / "bad.nrrd"
    bad.write_bytes(b"NRRD0004\ngarbage")
    with pytest.raises(LiverMetsError, match="could not be read"):
        read_image(bad)


def test_study_folder_roundtrip(tmp_path):
    dwi = Series("dwi", [_img(1), _img(2)], [{"b_value": 50}, {"b_value": 800}], {"field_strength_t": 1.5})
    t2 = Series("t2", [_img(3)], meta={"echo_time_ms": 90})
    write_study_folder([dwi, t2], tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.nrrd")) == ["dwi_b50.nrrd", "dwi_b800.nrrd", "t2.nrrd"]
    back = read_study_folder(tmp_path)
    assert [s.role for s in back] == ["dwi", "t2"]
    assert back[0].b_values == [50.0, 800.0]
    assert back[0].meta == {"field_strength_t": 1.5}
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back[0].stacks[1]), sitk.GetArrayFromImage(_img(2)))


def test_study_folder_rejects_foreign_index(tmp_path):
    (tmp_path / "roles.json").write_text('{"format": "other"}')
    with pytest.raises(LiverMetsError, match="not a study index written by"):
        read_study_folder(tmp_path)


def test_each_file_carries_series_facts_with_stack_values_winning(tmp_path):
    ip = Series("t1_in_phase", [_img(4)], [{"echo_time_ms": 4.6}],
                {"field_strength_t": 1.5, "echo_time_ms": 2.3, "image_type": ["ORIGINAL", "PRIMARY", "M", "IN_PHASE"],
                 "not_plain": {"nested": 1}})
    write_study_folder([ip], tmp_path)
    meta = get_metadata(read_image(tmp_path / "t1_in_phase.nrrd"))
    assert meta["role"] == "t1_in_phase"
    assert meta["field_strength_t"] == 1.5
    assert meta["echo_time_ms"] == 4.6  # the stack's own echo time, not the series default
    assert meta["image_type"] == ["ORIGINAL", "PRIMARY", "M", "IN_PHASE"]
    assert "not_plain" not in meta


def test_write_image_refuses_folders_and_unknown_formats(tmp_path):
    with pytest.raises(LiverMetsError, match="is a folder"):
        write_image(_img(0), tmp_path)
    with pytest.raises(LiverMetsError, match="could not be written"):
        write_image(_img(0), tmp_path / "out.unknownformat")


def test_read_json_file_names_what_was_expected(tmp_path):
    from LiverMetsReviewLib.resources import read_json_file

    with pytest.raises(LiverMetsError, match="not found: give the path of a thing"):
        read_json_file(tmp_path / "none.json", "a thing")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(LiverMetsError, match="not valid JSON .* expected a thing"):
        read_json_file(bad, "a thing")
    assert read_json_file(_write(tmp_path / "ok.json", '{"a": 1}'), "a thing") == {"a": 1}


def _write(path, text):
    path.write_text(text)
    return path


def test_study_folder_reads_only_the_roles_asked_for(tmp_path):
    dwi = Series("dwi", [_img(1), _img(2)], [{"b_value": 50}, {"b_value": 800}])
    t2 = Series("t2", [_img(3)])
    write_study_folder([dwi, t2], tmp_path)
    (tmp_path / "dwi_b800.nrrd").unlink()  # a broken series elsewhere must not matter when it is not read
    (only,) = read_study_folder(tmp_path, roles=["t2"])
    assert only.role == "t2"
    with pytest.raises(LiverMetsError, match="does not exist"):
        read_study_folder(tmp_path)
