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
    with pytest.raises(LiverMetsError, match="not a LiverMetsReview study index"):
        read_study_folder(tmp_path)
