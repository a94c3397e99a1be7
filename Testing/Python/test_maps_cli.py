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
    if "more than once" in message:  # names the option to give, not an internal function
        assert "--trace" in err and "combine_directions" not in err


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
    """Building every command's parser (what every ``livermets`` call does) loads no SimpleITK, numpy or maps."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from LiverMetsReviewLib.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('SimpleITK', 'numpy', 'scipy')"
        " or m.startswith('LiverMetsReviewLib.maps')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ study folders as input (review B, M4)
@pytest.fixture()
def study(tmp_path):
    """A study folder with analytic truth: DWI (ADC 600..2800), IP/OP at 1.5 T (FF 0..40 %), Dixon (FF 0..100 %),
    T1 pre, arterial and hepatobiliary (RE 20 % and 80 %)."""
    from LiverMetsReviewLib.io.study_folder import write_study_folder
    from LiverMetsReviewLib.series import Series

    shape = (2, 6, 12)
    x = np.broadcast_to(np.arange(12, dtype=float), shape)

    def img(a):
        i = sitk.GetImageFromArray(np.ascontiguousarray(a, dtype=np.float32))
        i.SetSpacing((1.5, 1.5, 4.0))
        i.SetOrigin((-40.0, -30.0, 10.0))
        return i

    adc = 600.0 + 200.0 * x
    ff_cs = x / 11 * 0.4
    ff_dx = x / 11
    meta = {"field_strength_t": 1.5}
    series = [
        Series("dwi", [img(900.0 * np.exp(-b * adc * 1e-6)) for b in (50.0, 400.0, 800.0)],
               [{"b_value": b} for b in (50.0, 400.0, 800.0)], dict(meta)),
        Series("t1_in_phase", [img(1000.0 * np.ones(shape))], [{"echo_time_ms": 4.6}], {**meta, "echo_time_ms": 4.6}),
        Series("t1_opposed_phase", [img(1000.0 * np.abs(1 - 2 * ff_cs))], [{"echo_time_ms": 2.3}],
               {**meta, "echo_time_ms": 2.3}),
        Series("dixon_water", [img(800.0 * (1 - ff_dx))], [{}], dict(meta)),
        Series("dixon_fat", [img(800.0 * ff_dx)], [{}], dict(meta)),
        Series("t1_pre", [img(np.full(shape, 400.0))], [{}], dict(meta)),
        Series("t1_arterial", [img(np.full(shape, 480.0))], [{}], dict(meta)),
        Series("t1_hepatobiliary", [img(np.full(shape, 720.0))], [{}], dict(meta)),
    ]
    folder = tmp_path / "study"
    write_study_folder(series, folder)
    return folder, {"adc": adc, "ff_cs": 100 * ff_cs, "ff_dx": 100 * ff_dx}


def _map(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.parametrize("how", ["folder", "roles.json", "--study"])
def test_adc_from_a_study_folder_picks_the_dwi_series(capsys, tmp_path, study, how):
    folder, truth = study
    where = {"folder": [str(folder)], "roles.json": [str(folder / "roles.json")],
             "--study": ["--study", str(folder)]}[how]
    out = tmp_path / "adc.nrrd"
    code, stdout, err = _run(capsys, ["adc", *where, "-o", str(out), "--noise-floor", "0", "--json"])
    assert code == 0, err
    payload = json.loads(stdout)
    assert payload["inputs"]["b_values_used"] == [50.0, 400.0, 800.0]
    assert [p.rsplit("/", 1)[-1] for p in payload["inputs"]["files"]] == ["dwi_b50.nrrd", "dwi_b400.nrrd",
                                                                           "dwi_b800.nrrd"]
    np.testing.assert_allclose(_map(out), truth["adc"], rtol=1e-4)


def test_fat_from_a_study_folder_chemical_shift_and_dixon(capsys, tmp_path, study):
    folder, truth = study
    code, stdout, err = _run(capsys, ["fat", "--study", str(folder), "-o", str(tmp_path / "cs.nrrd"),
                                      "--noise-floor", "0", "--json"])
    assert code == 0, err
    used = json.loads(stdout)["inputs"]
    # echo times and field strength come from the study index: the pair was checked at 1.5 T
    assert used["echo_times_ms"] == {"in_phase": 4.6, "opposed_phase": 2.3} and used["field_strength_t"] == 1.5
    assert json.loads(stdout)["summary"]["echo_check"]["opposed_phase"]["state"] == "opposed_phase"
    np.testing.assert_allclose(_map(tmp_path / "cs.nrrd"), truth["ff_cs"], atol=1e-3)
    code, stdout, err = _run(capsys, ["fat", "--study", str(folder / "roles.json"), "--dixon", "-o",
                                      str(tmp_path / "dx.nrrd"), "--noise-floor", "0", "--json"])
    assert code == 0, err
    assert json.loads(stdout)["method"] == "dixon_fat"
    np.testing.assert_allclose(_map(tmp_path / "dx.nrrd"), truth["ff_dx"], atol=1e-3)
    # at 3 T the index's echo times (2.3/4.6 ms) are both in phase: refused, so the index really drove the check
    code, _, err = _run(capsys, ["fat", "--study", str(folder), "--field-strength", "3", "-o",
                                 str(tmp_path / "x.nrrd")])
    assert code != 0 and "not an in-phase/opposed-phase pair" in err


def test_enhancement_from_a_study_folder_picks_the_phase(capsys, tmp_path, study):
    folder, _ = study
    for phase, re in (("t1_hepatobiliary", 80.0), ("t1_arterial", 20.0)):
        out = tmp_path / f"{phase}.nrrd"
        code, stdout, err = _run(capsys, ["enhancement", "--study", str(folder), "--phase", phase, "-o", str(out),
                                          "--noise-floor", "0", "--json"])
        assert code == 0, err
        np.testing.assert_allclose(_map(out), re, rtol=1e-5)
        payload = json.loads(stdout)
        assert payload["inputs"]["phase"] == phase and payload["warnings"] == []
        assert get_metadata(sitk.ReadImage(str(out)))["phase"] == phase


@pytest.mark.parametrize("argv, message", [
    (["enhancement", "--study", "{s}", "-o", "{o}"], "give --phase as one of"),
    (["enhancement", "--study", "{s}", "--phase", "t1_portal_venous", "-o", "{o}"], "has no t1_portal_venous series"),
    (["enhancement", "--study", "{s}", "--phase", "t1_arterial", "--pre", "{s}/t1_pre.nrrd", "-o", "{o}"],
     "not both"),
    (["fat", "--study", "{s}", "--water", "{s}/dixon_water.nrrd", "-o", "{o}"], "not both"),
    (["fat", "--dixon", "--water", "{s}/dixon_water.nrrd", "--fat", "{s}/dixon_fat.nrrd", "-o", "{o}"],
     "--dixon picks the Dixon series of --study"),
    (["fat", "--study", "{s}", "--dixon", "--sii", "{t}/sii.nrrd", "-o", "{o}"], "--sii needs in-phase"),
    (["adc", "{s}", "--bvalues", "50", "400", "800", "-o", "{o}"], "--bvalues is for image files"),
    (["adc", "--study", "{s}", "{s}/dwi_b50.nrrd", "-o", "{o}"], "not both"),
    (["adc", "-o", "{o}"], "give one image per b-value"),
    (["adc", "{t}/overrides/roles.json", "-o", "{o}"], "is not a study index"),
    (["fat", "--study", "{t}/no_study", "-o", "{o}"], "is not a study folder (no roles.json in it)"),
])
def test_study_folder_errors_are_one_sentence(capsys, tmp_path, study, argv, message):
    folder, _ = study
    (tmp_path / "no_study").mkdir()                               # a folder without roles.json
    (tmp_path / "overrides").mkdir()
    (tmp_path / "overrides" / "roles.json").write_text('{"overrides": {}}')   # a classify override file
    argv = [a.format(s=folder, o=tmp_path / "x.nrrd", t=tmp_path) for a in argv]
    code, stdout, err = _run(capsys, argv)
    assert code != 0 and stdout == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nrrd").exists()


def test_a_study_with_two_series_of_a_role_is_refused(capsys, tmp_path, study):
    folder, _ = study
    index = json.loads((folder / "roles.json").read_text())
    index["series"].append(dict(next(e for e in index["series"] if e["role"] == "t1_pre")))
    (folder / "roles.json").write_text(json.dumps(index))
    code, _, err = _run(capsys, ["enhancement", "--study", str(folder), "--phase", "t1_arterial", "-o",
                                 str(tmp_path / "x.nrrd")])
    assert code != 0 and "has 2 t1_pre series" in err


# ------------------------------------------------------------------ output paths checked first (review B, M3)
@pytest.mark.parametrize("bad, message", [
    ("{t}/out.xyz", "cannot write this image as '.xyz'"),
    ("{t}/out.png", "cannot write this image as '.png'"),
    ("{t}/out", "has no file extension"),
    ("{t}", "is a folder"),
    ("{t}/afile.txt/out.nrrd", "is a file, so the folder"),
    ("{t}/b0.nrrd", "also an input"),
    ("{t}/adc.nrrd", "given for two outputs"),
])
def test_every_output_path_is_checked_before_anything_is_written(capsys, tmp_path, dwi_files, bad, message):
    """The ADC map must not be written when a later output (here --s0, then --quality) is unusable: every path is
    checked before the fit, so nothing at all is written."""
    paths, _, _ = dwi_files
    (tmp_path / "afile.txt").write_text("not a folder")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, stdout, err = _run(capsys, ["adc", *paths, "-o", str(tmp_path / "adc.nrrd"), "--s0",
                                      bad.format(t=tmp_path), "--quality", str(tmp_path / "q.nrrd")])
    assert code != 0 and stdout == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("argv", [
    ["fat", "--water", "{s}/dixon_water.nrrd", "--fat", "{s}/dixon_fat.nrrd", "-o", "{t}/ff.nrrd", "--flags",
     "{t}/flags.jpg"],
    ["enhancement", "--study", "{s}", "--phase", "t1_arterial", "-o", "{t}/re.nrrd", "--subtraction", "{t}"],
    ["pdff", "{s}/t1_pre.nrrd", "{s}/t1_pre.nrrd", "{s}/t1_pre.nrrd", "--echo-times", "1", "2", "3",
     "--field-strength", "1.5", "-o", "{t}/p.nrrd", "--r2star", "{t}/r2.bmp"],
    ["register", "--fixed", "{s}/t1_pre.nrrd", "--moving", "{s}/t1_arterial.nrrd", "-o", "{t}/r.nrrd",
     "--transform", "{t}/t.nrrd"],
])
def test_other_commands_check_their_outputs_first(capsys, tmp_path, study, argv):
    folder, _ = study
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, stdout, err = _run(capsys, [a.format(s=folder, t=out_dir) for a in argv])
    assert code != 0 and stdout == "" and len(err.strip().splitlines()) == 1
    assert ("cannot write this" in err or "is a folder" in err) and not any(out_dir.iterdir())


# ------------------------------------------------------------------ warnings (review B, L2 and L3)
def test_adc_resampling_is_a_top_level_warning(capsys, tmp_path, dwi_files):
    paths, _, _ = dwi_files
    arr = sitk.GetArrayFromImage(sitk.ReadImage(paths[2]))
    wider = _write(tmp_path / "b1000_wide.nrrd", np.concatenate([arr, arr[:, :, -1:]], axis=2))   # 13 columns
    code, stdout, err = _run(capsys, ["adc", paths[0], paths[1], wider, "--bvalues", "0", "500", "1000", "-o",
                                      str(tmp_path / "a.nrrd"), "--json"])
    assert code == 0, err
    assert any("b=1000 image was resampled" in w for w in json.loads(stdout)["warnings"])
    code, _, err = _run(capsys, ["adc", paths[0], paths[1], wider, "--bvalues", "0", "500", "1000", "-o",
                                 str(tmp_path / "a.nrrd")])
    assert code == 0 and "warning: the b=1000 image was resampled" in err


def test_enhancement_warns_when_the_roles_are_not_t1_dynamic(capsys, tmp_path, study):
    folder, _ = study
    code, stdout, err = _run(capsys, ["enhancement", "--pre", str(folder / "t1_pre.nrrd"), "--post",
                                      str(folder / "dwi_b50.nrrd"), "-o", str(tmp_path / "re.nrrd"), "--json"])
    assert code == 0, err
    warnings = json.loads(stdout)["warnings"]
    assert any("post-contrast input is a Diffusion-weighted image (role dwi)" in w for w in warnings)
    assert "warnings" in get_metadata(sitk.ReadImage(str(tmp_path / "re.nrrd")))
    code, stdout, _ = _run(capsys, ["enhancement", "--pre", str(folder / "t1_arterial.nrrd"), "--post",
                                    str(folder / "t1_hepatobiliary.nrrd"), "-o", str(tmp_path / "re.nrrd"), "--json"])
    assert any("pre-contrast input is a Late arterial image" in w for w in json.loads(stdout)["warnings"])
    # the right pair: no warning, and the phase is taken from the post file's role
    code, stdout, _ = _run(capsys, ["enhancement", "--pre", str(folder / "t1_pre.nrrd"), "--post",
                                    str(folder / "t1_hepatobiliary.nrrd"), "-o", str(tmp_path / "re.nrrd"),
                                    "--noise-floor", "0", "--json"])
    payload = json.loads(stdout)
    assert payload["warnings"] == [] and payload["inputs"]["phase"] == "t1_hepatobiliary"


def _nrrd_encoding(path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(4096).split(b"\n\n")[0].decode("ascii", "replace")
    return next(line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("encoding:"))


def test_map_files_are_raw_unless_compression_is_asked_for(capsys, tmp_path, dwi_files):
    """Maps are written uncompressed by default (zlib only shrinks the masked background of a float map and makes
    writing several times slower); --compress writes gzip-encoded NRRD with the same voxels."""
    paths, _, _ = dwi_files
    base = ["adc", *paths, "--bvalues", "0", "500", "1000"]
    for extra, out, encoding in (([], "raw.nrrd", "raw"), (["--compress"], "gz.nrrd", "gzip")):
        code, _, err = _run(capsys, [*base, "-o", str(tmp_path / out), *extra])
        assert code == 0, err
        assert _nrrd_encoding(tmp_path / out) == encoding
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "raw.nrrd"))),
                                  sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "gz.nrrd"))))
