"""``.seg.nrrd`` writing: what Slicer (via slicerio, the reference reader) sees must be what we wrote."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.io.segmentation import read_segmentation, terminology_string, write_segmentation

slicerio = pytest.importorskip("slicerio", reason="slicerio (test extra) is the reference .seg.nrrd reader")

LIVER_TERM = {"category": ["SCT", "123037004", "Anatomical Structure"], "type": ["SCT", "10200004", "Liver"]}
MET_TERM = {"category": ["SCT", "49755003", "Morphologically Altered Structure"],
            "type": ["SCT", "14799000", "Neoplasm, Secondary"], "anatomic_region": ["SCT", "10200004", "Liver"]}


@pytest.fixture()
def oblique_labelmap() -> sitk.Image:
    arr = np.zeros((6, 9, 11), np.uint16)
    arr[1:5, 2:7, 1:9] = 1           # "liver"
    arr[2:4, 3:5, 3:5] = 101         # a lesion inside it
    arr[5, 8, 10] = 7                # one voxel in the far corner
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 1.2, 3.5))
    img.SetOrigin((-12.5, 40.25, 7.0))
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    return img


SEGMENTS = [
    {"label": 1, "id": "liver", "name": "Liver", "color": [0.87, 0.51, 0.40], "terminology": LIVER_TERM},
    {"label": 101, "id": "crc_met", "name": "Colorectal metastasis", "color": [0.85, 0.16, 0.16],
     "terminology": MET_TERM, "tags": {"LiverMetsReview.LesionType": "colorectal_metastasis"}},
    {"label": 7, "id": "speck", "name": "Corner | voxel", "color": [0.0, 1.0, 0.25]},
]


def test_slicerio_reads_names_colours_labels_geometry(tmp_path, oblique_labelmap):
    path = write_segmentation(oblique_labelmap, SEGMENTS, tmp_path / "truth.seg.nrrd")
    seg = slicerio.read_segmentation(str(path))
    segs = seg["segments"]
    assert len(segs) == 3
    assert [s["name"] for s in segs] == ["Liver", "Colorectal metastasis", "Corner / voxel"]
    assert [s["labelValue"] for s in segs] == [1, 101, 7]
    assert [s["id"] for s in segs] == ["liver", "crc_met", "speck"]
    for s, ref in zip(segs, SEGMENTS, strict=True):
        assert s["color"] == pytest.approx(ref["color"], abs=1e-6)
    assert seg["masterRepresentation"] == "Binary labelmap"
    # geometry: IJK -> LPS from spacing, direction, origin
    img = oblique_labelmap
    d = np.array(img.GetDirection()).reshape(3, 3)
    expected = np.eye(4)
    expected[:3, :3] = d * np.array(img.GetSpacing())[None, :]
    expected[:3, 3] = img.GetOrigin()
    assert np.allclose(seg["ijkToLPS"], expected, atol=1e-6)
    # voxels: slicerio returns (i, j, k) order
    vox = np.asarray(seg["voxels"])
    assert np.array_equal(vox.transpose(2, 1, 0), sitk.GetArrayFromImage(img))
    # extents: inclusive IJK bounding boxes of each label
    assert segs[1]["extent"] == [3, 4, 3, 4, 2, 3]
    assert segs[2]["extent"] == [10, 10, 8, 8, 5, 5]
    # terminology survives
    assert segs[0]["terminology"]["type"] == ["SCT", "10200004", "Liver"]
    assert segs[1]["terminology"]["type"] == ["SCT", "14799000", "Neoplasm, Secondary"]
    assert segs[1]["terminology"]["anatomicRegion"] == ["SCT", "10200004", "Liver"]
    assert segs[1]["tags"]["LiverMetsReview.LesionType"] == "colorectal_metastasis"


def test_own_reader_round_trip(tmp_path, oblique_labelmap):
    path = write_segmentation(oblique_labelmap, SEGMENTS, tmp_path / "a.seg.nrrd")
    img, segs = read_segmentation(path)
    assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(oblique_labelmap))
    assert np.allclose(img.GetDirection(), oblique_labelmap.GetDirection())
    assert [s["label"] for s in segs] == [1, 101, 7]
    entry = segs[1]["tags"]["TerminologyEntry"]
    assert entry.startswith("Segmentation category and type - DICOM master list~SCT^49755003")


def test_terminology_string_format():
    s = terminology_string(MET_TERM)
    parts = s.split("~")
    assert len(parts) == 7
    assert parts[2] == "SCT^14799000^Neoplasm, Secondary" and parts[5] == "SCT^10200004^Liver"
    from slicerio.segmentation import terminology_entry_from_string

    assert terminology_entry_from_string(s)["anatomicRegion"] == ["SCT", "10200004", "Liver"]


def test_bad_segment_lists_are_refused(tmp_path, oblique_labelmap):
    with pytest.raises(LiverMetsError, match="no segment describes"):
        write_segmentation(oblique_labelmap, SEGMENTS[:2], tmp_path / "x.seg.nrrd")
    with pytest.raises(LiverMetsError, match="unique"):
        write_segmentation(oblique_labelmap, SEGMENTS + [dict(SEGMENTS[0])], tmp_path / "x.seg.nrrd")
    with pytest.raises(LiverMetsError, match=r"\.seg\.nrrd"):
        write_segmentation(oblique_labelmap, SEGMENTS, tmp_path / "x.nrrd")
    bad = [dict(s) for s in SEGMENTS]
    bad[0]["color"] = [255, 0, 0]
    with pytest.raises(LiverMetsError, match="0..1"):
        write_segmentation(oblique_labelmap, bad, tmp_path / "x.seg.nrrd")
    with pytest.raises(LiverMetsError, match="integer"):
        write_segmentation(sitk.Cast(oblique_labelmap, sitk.sitkFloat32), SEGMENTS, tmp_path / "x.seg.nrrd")
