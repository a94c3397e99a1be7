"""Lesion files Slicer opens unmodified: the layered .seg.nrrd (read by slicerio), markups valid against the
schema, round trips, and bad files refused in one sentence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import shared_path
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.lesions.markups import Line, Seed, read_lines, read_seeds, write_lines, write_seeds
from LiverMetsReviewLib.lesions.review import terminology_for
from LiverMetsReviewLib.lesions.seg_file import pack_layers, read_layered_segmentation, write_layered_segmentation


def _reference() -> sitk.Image:
    ref = sitk.Image([30, 24, 12], sitk.sitkUInt8)
    ref.SetSpacing([1.5, 1.2, 3.0])
    ref.SetOrigin([-20.0, 10.0, -5.0])
    ref.SetDirection([0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # rotated: catches an axis mix-up
    return ref


def _segments() -> list[dict]:
    z, y, x = np.mgrid[:12, :24, :30]
    liver = (x > 2) & (y > 2) & (z > 1)
    a = (x - 10) ** 2 + (y - 10) ** 2 + (z - 5) ** 2 <= 9
    b = (x - 20) ** 2 + (y - 14) ** 2 + (z - 6) ** 2 <= 12
    out = []
    for sid, kind, mask in (("liver", "liver", liver), ("met_1", "metastasis", a), ("cyst_2", "cyst", b)):
        term, color = terminology_for(kind)
        out.append({"id": sid, "name": sid.replace("_", " ").title(), "mask": mask, "color": color,
                    "terminology": term, "tags": {"LiverMetsReview.LesionId": sid}})
    return out


def test_layers_pack_overlapping_segments():
    segs = _segments()
    layers, where = pack_layers([s["mask"] for s in segs])
    assert layers.shape[0] == 2  # the liver in one layer, both lesions (disjoint) share the other
    assert where[1][0] == where[2][0] != where[0][0]
    for s, (layer, value) in zip(segs, where, strict=True):
        assert ((layers[layer] == value) == s["mask"]).all()


def test_seg_nrrd_opens_with_slicerio(tmp_path):
    slicerio = pytest.importorskip("slicerio")
    ref, segs = _reference(), _segments()
    path = write_layered_segmentation(ref, segs, tmp_path / "lesions.seg.nrrd")
    seg = slicerio.read_segmentation(str(path))
    assert [s["name"] for s in seg["segments"]] == [s["name"] for s in segs]
    ijk_to_lps = np.array(seg["ijkToLPS"])
    d = np.array(ref.GetDirection()).reshape(3, 3) * np.array(ref.GetSpacing())
    assert np.allclose(ijk_to_lps[:3, :3], d) and np.allclose(ijk_to_lps[:3, 3], ref.GetOrigin())
    for s, mine in zip(seg["segments"], segs, strict=True):
        assert np.allclose(s["color"], mine["color"], atol=1e-5)
        assert s["terminology"]["type"] == mine["terminology"]["type"]
        assert s["terminology"]["category"] == mine["terminology"]["category"]
        if "anatomic_region" in mine["terminology"]:
            assert s["terminology"]["anatomicRegion"] == ["SCT", "10200004", "Liver"]
        mask_ijk = slicerio.segment_mask(seg, s["id"])
        assert (mask_ijk.transpose(2, 1, 0) == mine["mask"]).all(), s["id"]
        assert s["tags"]["LiverMetsReview.LesionId"] == mine["id"]


def test_seg_nrrd_round_trip_and_single_layer(tmp_path):
    ref, segs = _reference(), _segments()
    path = write_layered_segmentation(ref, segs, tmp_path / "a.seg.nrrd")
    back_ref, back = read_layered_segmentation(path)
    assert np.allclose(back_ref.GetDirection(), ref.GetDirection()) and np.allclose(back_ref.GetOrigin(),
                                                                                    ref.GetOrigin())
    assert [b["id"] for b in back] == [s["id"] for s in segs]
    for b, s in zip(back, segs, strict=True):
        assert (b["mask"] == s["mask"]).all() and b["name"] == s["name"]
    # disjoint segments: one layer, a plain 3-D NRRD that SimpleITK reads with the same geometry
    path2 = write_layered_segmentation(ref, segs[1:], tmp_path / "b.seg.nrrd")
    img = sitk.ReadImage(str(path2))
    assert img.GetNumberOfComponentsPerPixel() == 1 and np.allclose(img.GetSpacing(), ref.GetSpacing())
    assert (sitk.GetArrayFromImage(img) > 0).sum() == sum(int(s["mask"].sum()) for s in segs[1:])


def test_seg_nrrd_refuses_bad_input(tmp_path):
    ref, segs = _reference(), _segments()
    with pytest.raises(LiverMetsError, match=r"\.seg\.nrrd"):
        write_layered_segmentation(ref, segs, tmp_path / "x.nrrd")
    with pytest.raises(LiverMetsError, match="unique"):
        write_layered_segmentation(ref, [segs[0], segs[0]], tmp_path / "x.seg.nrrd")
    (tmp_path / "bad.seg.nrrd").write_text("not a nrrd")
    with pytest.raises(LiverMetsError, match="not a NRRD"):
        read_layered_segmentation(tmp_path / "bad.seg.nrrd")
    assert not (tmp_path / "x.seg.nrrd").exists()


def _validate(doc: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(shared_path("slicer-schemas", "markups-schema-v1.0.3.json").read_text())
    jsonschema.validate(doc, schema)


def test_markups_validate_and_round_trip(tmp_path):
    seeds = [Seed("met 1", (-93.25, 43.75, 49.25), "type=metastasis"), Seed("cyst", (1.0, -2.5, 3.0))]
    lines = [Line("met 1 long axis", (0.0, 0.0, 10.0), (30.0, 4.0, 10.0)),
             Line("met 1 short axis", (15.0, -10.0, 10.0), (13.0, 18.0, 10.0))]
    write_seeds(tmp_path / "lesions.mrk.json", seeds)
    write_lines(tmp_path / "diameters.mrk.json", lines)
    for name in ("lesions.mrk.json", "diameters.mrk.json"):
        doc = json.loads((tmp_path / name).read_text())
        _validate(doc)
        assert all(m["coordinateSystem"] == "LPS" for m in doc["markups"])
    assert read_seeds(tmp_path / "lesions.mrk.json") == seeds
    assert read_seeds(tmp_path / "lesions.mrk.json")[0].kind == "metastasis"
    back = read_lines(tmp_path / "diameters.mrk.json")
    assert back == lines
    lengths = [m["measurements"][0]["value"] for m in json.loads((tmp_path / "diameters.mrk.json").read_text())[
        "markups"]]
    assert lengths == pytest.approx([ln.length_mm for ln in lines], abs=1e-3)


def test_markups_in_ras_are_converted(tmp_path):
    doc = {"@schema": "x", "markups": [{"type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": [
        {"id": "1", "label": "a", "position": [10.0, -20.0, 5.0], "positionStatus": "defined"}]}]}
    (tmp_path / "ras.mrk.json").write_text(json.dumps(doc))
    assert read_seeds(tmp_path / "ras.mrk.json")[0].position_lps == (-10.0, 20.0, 5.0)


def test_markups_bad_input(tmp_path):
    (tmp_path / "empty.mrk.json").write_text(json.dumps({"markups": [{"type": "Fiducial", "controlPoints": []}]}))
    with pytest.raises(LiverMetsError, match="no placed point"):
        read_seeds(tmp_path / "empty.mrk.json")
    write_seeds(tmp_path / "dup.mrk.json", [Seed("a", (0, 0, 0)), Seed("a", (1, 1, 1))])
    with pytest.raises(LiverMetsError, match="more than one seed"):
        read_seeds(tmp_path / "dup.mrk.json")
    (tmp_path / "junk.mrk.json").write_text("{")
    with pytest.raises(LiverMetsError, match="not valid JSON"):
        read_seeds(tmp_path / "junk.mrk.json")
    (tmp_path / "nopos.mrk.json").write_text(json.dumps({"markups": [{"type": "Fiducial", "controlPoints": [
        {"label": "a", "position": [0, "x", 1]}]}]}))
    with pytest.raises(LiverMetsError, match="no valid position"):
        read_seeds(tmp_path / "nopos.mrk.json")


def test_terminology_kinds_are_data():
    term, color = terminology_for("metastasis")
    assert term["type"] == ["SCT", "14799000", "Neoplasm, Secondary"] and len(color) == 3
    with pytest.raises(LiverMetsError, match="unknown"):
        terminology_for("tumourish")
