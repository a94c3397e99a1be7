"""``livermets adc | fat | enhancement | register`` end to end: files in, files with units out, JSON on stdout,
clear one-sentence errors with a non-zero exit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import shared_path
from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.io.images import get_metadata, write_image


def _write(path, arr, meta=None, spacing=(1.5, 1.5, 4.0), origin=(-40.0, -30.0, 10.0)):
    img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    write_image(img, path, meta)
    return str(path)


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def dwi_files(tmp_path):
    z, y, x = np.mgrid[:3, :10, :12].astype(float)
    adc = 600.0 + 200.0 * x
    s0 = np.full(adc.shape, 900.0)
    s0[:, :2] = 0.0  # 72 background voxels
    paths = [_write(tmp_path / f"b{b}.nrrd", s0 * np.exp(-b * adc * 1e-6), {"b_value": b}) for b in (0, 500, 1000)]
    return paths, adc, s0


def test_adc_command_writes_maps_with_units(capsys, tmp_path, dwi_files):
    paths, adc, s0 = dwi_files
    out = tmp_path / "out" / "adc.nrrd"
    code, stdout, _ = _run(capsys, ["adc", *paths, "--bvalues", "0", "500", "1000", "-o", str(out),
                                    "--s0", str(tmp_path / "s0.nrrd"), "--quality", str(tmp_path / "q.nrrd"),
                                    "--computed-b", "1500", "--computed-out", str(tmp_path / "c1500.nii.gz"),
                                    "--method", "nlls", "--json"])
    assert code == 0
    payload = json.loads(stdout)
    assert payload["units"]["adc"] == "1e-6 mm2/s" and payload["masked_voxels"] == 72
    assert payload["inputs"]["b_values_used"] == [0.0, 500.0, 1000.0]
    img = sitk.ReadImage(str(out))
    meta = get_metadata(img)
    assert meta["units"] == "1e-6 mm2/s" and meta["method"] == "nlls" and meta["b_values_used"] == [0, 500, 1000]
    got = sitk.GetArrayFromImage(img)
    np.testing.assert_allclose(got[:, 2:], adc[:, 2:], rtol=1e-4)
    assert np.all(got[:, :2] == 0)
    assert img.GetSpacing() == (1.5, 1.5, 4.0) and img.GetOrigin() == (-40.0, -30.0, 10.0)
    comp = sitk.GetArrayFromImage(sitk.ReadImage(payload["outputs"]["computed_b1500"]))
    np.testing.assert_allclose(comp[:, 2:], (s0 * np.exp(-1500e-6 * adc))[:, 2:], rtol=2e-4)


def test_adc_b_values_from_file_metadata_and_exclusion(capsys, tmp_path, dwi_files):
    paths, adc, _ = dwi_files
    code, stdout, _ = _run(capsys, ["adc", *paths, "-o", str(tmp_path / "a.mha"), "--exclude-below", "100",
                                    "--json"])
    assert code == 0
    payload = json.loads(stdout)
    assert payload["inputs"]["b_values_used"] == [500.0, 1000.0]
    assert payload["inputs"]["b_values_excluded"] == [0.0]
    got = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "a.mha")))
    np.testing.assert_allclose(got[:, 2:], adc[:, 2:], rtol=1e-4)


@pytest.mark.parametrize("extra, message", [
    (["--bvalues", "0"], "3 input images but 1 b-values"),
    (["--bvalues", "0", "500", "500"], "more than once"),
])
def test_adc_command_errors_are_one_sentence(capsys, tmp_path, dwi_files, extra, message):
    paths, _, _ = dwi_files
    code, stdout, err = _run(capsys, ["adc", *paths, "-o", str(tmp_path / "x.nrrd"), *extra])
    assert code != 0 and stdout == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nrrd").exists()


def test_adc_command_refuses_a_single_image(capsys, tmp_path, dwi_files):
    paths, _, _ = dwi_files
    code, _, err = _run(capsys, ["adc", paths[0], "-o", str(tmp_path / "x.nrrd"), "--bvalues", "0"])
    assert code != 0 and "at least two b-values" in err


def test_adc_command_on_a_dicom_folder(capsys, tmp_path):
    folder = shared_path("data", "ge-mr750-dwi-phantom", "In", "mr_0003")
    out = tmp_path / "ge_adc.nrrd"
    code, stdout, err = _run(capsys, ["adc", str(folder), "-o", str(out), "--json"])
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["inputs"]["b_values_used"] == [0.0, 100.0, 750.0, 1500.0]
    adc = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    for k in range(adc.shape[0]):
        inside = adc[k][adc[k] > 0]
        assert abs(np.median(inside) / 750.0 - 1) < 0.02


def test_fat_command_chemical_shift(capsys, tmp_path):
    ff_true = np.broadcast_to(np.linspace(0.0, 0.4, 9), (2, 4, 9))
    w, f = 1000 * (1 - ff_true), 1000 * ff_true
    ip = _write(tmp_path / "ip.nrrd", w + f, {"echo_time_ms": 4.6})
    op = _write(tmp_path / "op.nrrd", np.abs(w - f), {"echo_time_ms": 2.3})
    out = tmp_path / "ff.nrrd"
    code, stdout, err = _run(capsys, ["fat", "--in-phase", ip, "--opposed-phase", op, "-o", str(out),
                                      "--sii", str(tmp_path / "sii.nrrd"), "--field-strength", "1.5", "--json"])
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["inputs"]["echo_times_ms"] == {"in_phase": 4.6, "opposed_phase": 2.3}
    assert payload["units"]["ff"] == "percent"
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), 100 * ff_true, atol=1e-3)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "sii.nrrd"))), 200 * ff_true,
                               atol=2e-3)
    assert get_metadata(sitk.ReadImage(str(out)))["units"] == "percent"
    # the same echoes at 3 T are both in phase: refused, unless overridden
    code, _, err = _run(capsys, ["fat", "--in-phase", ip, "--opposed-phase", op, "-o", str(out),
                                 "--field-strength", "3"])
    assert code != 0 and "not an in-phase/opposed-phase pair" in err and len(err.strip().splitlines()) == 1
    code, stdout, _ = _run(capsys, ["fat", "--in-phase", ip, "--opposed-phase", op, "-o", str(out),
                                    "--field-strength", "3", "--allow-any-echo-times", "--json"])
    assert code == 0 and json.loads(stdout)["warnings"]


def test_fat_command_dixon(capsys, tmp_path):
    ff_true = np.broadcast_to(np.linspace(0.0, 1.0, 11), (2, 3, 11))
    w = _write(tmp_path / "w.nrrd", 500 * (1 - ff_true))
    f = _write(tmp_path / "f.nrrd", 500 * ff_true)
    code, stdout, err = _run(capsys, ["fat", "--water", w, "--fat", f, "-o", str(tmp_path / "ff.nrrd"), "--json"])
    assert code == 0, err
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ff.nrrd"))), 100 * ff_true,
                               atol=1e-3)
    code, _, err = _run(capsys, ["fat", "--water", w, "--in-phase", f, "-o", str(tmp_path / "x.nrrd")])
    assert code != 0 and "not both" in err


def test_enhancement_command_with_liver_function(capsys, tmp_path):
    labels = np.zeros((3, 12, 12), np.float32)
    labels[:, 1:6, 1:11] = 1
    labels[:, 8:11, 2:10] = 2
    pre = np.where(labels == 1, 400.0, np.where(labels == 2, 300.0, 100.0))
    post = np.where(labels == 1, 600.0, np.where(labels == 2, 330.0, 100.0))
    args = ["enhancement", "--pre", _write(tmp_path / "pre.nrrd", pre), "--post", _write(tmp_path / "hbp.nrrd", post),
            "-o", str(tmp_path / "re.nrrd"), "--subtraction", str(tmp_path / "sub.nrrd"), "--phase",
            "t1_hepatobiliary", "--labels", _write(tmp_path / "lab.nrrd", labels), "--liver-label", "1",
            "--spleen-label", "2", "--json"]
    code, stdout, err = _run(capsys, args)
    assert code == 0, err
    payload = json.loads(stdout)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "re.nrrd"))),
                               (post - pre) / pre * 100, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "sub.nrrd"))), post - pre)
    lf = payload["liver_function"]
    assert lf["liver_relative_enhancement_percent"] == pytest.approx(50.0)
    assert lf["liver_to_spleen_ratio_hbp"] == pytest.approx(600 / 330)
    assert get_metadata(sitk.ReadImage(str(tmp_path / "re.nrrd")))["phase"] == "t1_hepatobiliary"


def test_register_command_writes_transform(capsys, tmp_path):
    z, y, x = np.mgrid[:24, :40, :40].astype(float)
    vol = 100.0 * (((z - 12) / 9) ** 2 + ((y - 20) / 14) ** 2 + ((x - 18) / 12) ** 2 < 1) + 50.0 * (
        ((z - 10) / 4) ** 2 + ((y - 16) / 5) ** 2 + ((x - 24) / 4) ** 2 < 1)
    fixed = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(vol.astype(np.float32)), 1.0)
    fixed.SetSpacing((2.0, 2.0, 3.0))
    moving = sitk.Resample(fixed, fixed, sitk.TranslationTransform(3, (-4.0, 2.0, -6.0)), sitk.sitkLinear, 0.0)
    fpath, mpath = tmp_path / "f.nrrd", tmp_path / "m.nrrd"
    sitk.WriteImage(fixed, str(fpath))
    sitk.WriteImage(moving, str(mpath))
    code, stdout, err = _run(capsys, ["register", "--fixed", str(fpath), "--moving", str(mpath), "-o",
                                      str(tmp_path / "r.nrrd"), "--transform", str(tmp_path / "t.tfm"), "--json"])
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["summary"]["ncc_after"] > payload["summary"]["ncc_before"]
    t = sitk.ReadTransform(str(tmp_path / "t.tfm"))
    p = fixed.TransformContinuousIndexToPhysicalPoint((20.0, 20.0, 12.0))
    # moving(x) = fixed(x + (-4, 2, -6)): the fixed -> moving map is x -> x + (4, -2, 6)
    np.testing.assert_allclose(np.subtract(t.TransformPoint(p), p), (4.0, -2.0, 6.0), atol=0.5)


def test_adc_command_combines_directions_with_trace_flag(capsys, tmp_path):
    s0 = np.full((2, 4, 5), 700.0)
    paths = [_write(tmp_path / "b0.nrrd", s0)]
    for k, d in enumerate((600.0, 1000.0, 1700.0)):
        paths.append(_write(tmp_path / f"b800_{k}.nrrd", s0 * np.exp(-800e-6 * d)))
    out = tmp_path / "adc.nrrd"
    code, _, err = _run(capsys, ["adc", *paths, "--bvalues", "0", "800", "800", "800", "-o", str(out)])
    assert code != 0 and "more than once" in err
    code, stdout, err = _run(capsys, ["adc", *paths, "--bvalues", "0", "800", "800", "800", "--trace", "-o",
                                      str(out), "--json"])
    assert code == 0, err
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), (600 + 1000 + 1700) / 3, rtol=1e-4)
    assert any("geometric mean" in n for n in json.loads(stdout)["summary"]["notes"])


def test_resampling_is_stated_in_the_output_file(capsys, tmp_path):
    pre = _write(tmp_path / "pre.nrrd", np.full((3, 6, 8), 400.0))
    post = _write(tmp_path / "post.nrrd", np.full((3, 6, 8), 600.0), origin=(-40.0 + 3.0, -30.0, 10.0))
    code, _, err = _run(capsys, ["enhancement", "--pre", pre, "--post", post, "-o", str(tmp_path / "re.nrrd")])
    assert code == 0, err
    meta = get_metadata(sitk.ReadImage(str(tmp_path / "re.nrrd")))
    assert any("resampled onto the reference grid" in n for n in meta["notes"])
    re = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "re.nrrd")))
    np.testing.assert_allclose(re[:, :, 2:], 50.0, rtol=1e-5)   # covered by the post image
    assert np.all(re[:, :, :2] == 0) and meta["masked_voxels"] == 3 * 6 * 2


def test_map_commands_import_nothing_heavy_at_start_up():
    """Building the map commands' parsers (what every ``livermets`` call does) loads no SimpleITK, numpy or maps."""
    import subprocess
    import sys

    code = (
        "import argparse, sys\n"
        "from LiverMetsReviewLib.cli import maps_cmd\n"
        "maps_cmd.register(argparse.ArgumentParser().add_subparsers())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('SimpleITK', 'numpy', 'scipy')"
        " or m.startswith('LiverMetsReviewLib.maps')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
