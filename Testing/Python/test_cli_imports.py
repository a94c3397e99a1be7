"""Start-up cost of ``livermets``: a process per study over a cohort pays every import, so `--help` and the
parser load no heavy package, and the maps' background decision loads no ``scipy.stats``.

Each check runs in a fresh interpreter (``sys.modules`` of the test process is already full).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("scipy.stats", "SimpleITK", "matplotlib")


def _loaded_after(code: str) -> set[str]:
    """Module names loaded by a fresh interpreter after running ``code`` (stdout of the code is discarded)."""
    probe = (
        "import contextlib, io, json, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _subcommands() -> list[str]:
    from LiverMetsReviewLib.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def _heavy(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_there_are_subcommands_to_check():
    assert {"adc", "fat", "enhancement", "classify"} <= set(_subcommands())


@pytest.mark.parametrize("argv", [[], ["--help"], *[[c, "--help"] for c in _subcommands()]],
                         ids=lambda a: " ".join(a) or "parser-only")
def test_help_imports_no_heavy_package(argv):
    code = ("from LiverMetsReviewLib.cli import main\n"
            + ("try:\n    main(" + repr(argv) + ")\nexcept SystemExit:\n    pass" if argv else "pass"))
    loaded = _loaded_after(code)
    assert "LiverMetsReviewLib.cli" in loaded      # the probe really imported the CLI
    assert _heavy(loaded) == []


@pytest.mark.parametrize("module", ["adc", "enhancement", "fat", "noise_mask", "noise"])
def test_map_modules_load_no_scipy_stats(module):
    """The background decision of every map uses closed forms: importing a map module loads no scipy.stats (about a
    second of start-up), and the ADC path no scipy at all."""
    loaded = _loaded_after(f"import LiverMetsReviewLib.maps.{module}")
    assert f"LiverMetsReviewLib.maps.{module}" in loaded
    assert not any(m == "scipy.stats" or m.startswith("scipy.stats.") for m in loaded)
    if module in ("adc", "noise_mask", "noise"):
        assert not any(m == "scipy" or m.startswith("scipy.") for m in loaded)


def test_adc_without_quality_map_gives_the_same_maps():
    """The CLI skips the R^2 map unless --quality is given: ADC, S0, mask and computed DWI stay the same, and the
    ADC is the drawn truth (noise-free mono-exponential signal)."""
    import numpy as np
    import SimpleITK as sitk

    from LiverMetsReviewLib.maps.adc import fit_adc

    rng = np.random.default_rng(21)
    adc = rng.uniform(500.0, 3000.0, (6, 20, 24))
    s0 = rng.uniform(200.0, 2000.0, adc.shape)
    b = [0.0, 50.0, 400.0, 800.0]
    images = [sitk.GetImageFromArray((s0 * np.exp(-v * adc * 1e-6)).astype(np.float32)) for v in b]
    full = fit_adc(images, b, computed_b=[1500.0], noise_floor=1.0)
    lean = fit_adc(images, b, computed_b=[1500.0], noise_floor=1.0, quality=False)
    assert lean.quality is None and full.quality is not None
    for name in ("adc", "s0", "mask"):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(getattr(lean, name)),
                                      sitk.GetArrayFromImage(getattr(full, name)))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lean.computed[1500.0]),
                                  sitk.GetArrayFromImage(full.computed[1500.0]))
    np.testing.assert_allclose(sitk.GetArrayFromImage(lean.adc), adc, rtol=1e-3)


def test_adc_builds_s0_and_mask_images_only_when_asked(tmp_path):
    """The CLI asks fit_adc only for the S0 and mask images it writes: leaving them out changes no value, count or
    summary, and when written they are the drawn truth (S0; 1 exactly where there is signal)."""
    import numpy as np
    import SimpleITK as sitk

    from LiverMetsReviewLib.cli import main
    from LiverMetsReviewLib.maps.adc import fit_adc

    rng = np.random.default_rng(22)
    adc = rng.uniform(500.0, 3000.0, (5, 18, 22))
    s0 = rng.uniform(200.0, 2000.0, adc.shape)
    s0[:, : int(rng.integers(2, 6))] = 0.0             # a drawn band of background rows
    b = [0.0, 50.0, 400.0, 800.0]
    images = [sitk.GetImageFromArray((s0 * np.exp(-v * adc * 1e-6)).astype(np.float32)) for v in b]
    full = fit_adc(images, b, noise_floor=1.0)
    lean = fit_adc(images, b, noise_floor=1.0, maps=())
    assert lean.s0 is None and lean.mask is None and full.s0 is not None and full.mask is not None
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lean.adc), sitk.GetArrayFromImage(full.adc))
    assert lean.summary == full.summary
    paths = []
    for v, img in zip(b, images, strict=True):
        paths.append(str(tmp_path / f"b{v:g}.nrrd"))
        sitk.WriteImage(img, paths[-1])
    out = {name: str(tmp_path / f"{name}.nrrd") for name in ("adc", "s0", "mask")}
    assert main(["adc", *paths, "--bvalues", *map(str, b), "--noise-floor", "1", "-o", out["adc"],
                 "--s0", out["s0"], "--mask-out", out["mask"]]) == 0
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(out["s0"])), s0, rtol=1e-3)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(out["mask"])), (s0 > 0).astype(np.uint8))


def test_fat_and_enhancement_build_only_the_images_asked_for():
    """Fat and enhancement read float32 inputs through views and build only the images asked for (the CLI asks for
    those it writes): the maps, counts and summaries stay the same, the callers' images are left as they were (NaN
    voxels are zeroed in a copy of our own), and a second image on another grid is still read correctly."""
    import numpy as np
    import SimpleITK as sitk

    from LiverMetsReviewLib.maps.enhancement import relative_enhancement
    from LiverMetsReviewLib.maps.fat import chemical_shift_fat

    rng = np.random.default_rng(23)
    shape = (4, 16, 18)
    ip = rng.uniform(500.0, 1500.0, shape)
    ff_true = rng.uniform(0.0, 0.4, shape)
    pre = rng.uniform(300.0, 900.0, shape)
    post = pre * rng.uniform(1.1, 2.5, shape)
    pre[0, 0, 0] = np.nan                                   # a corrupt voxel: masked and counted, input untouched
    images = {k: sitk.GetImageFromArray(v.astype(np.float32)) for k, v in
              (("ip", ip), ("op", ip * (1 - 2 * ff_true)), ("pre", pre), ("post", post))}
    shift = int(rng.integers(1, 3))                         # slices: the OP grid starts further on (resampled)
    images["op"].SetOrigin((0.0, 0.0, float(shift)))
    before = {k: sitk.GetArrayFromImage(v) for k, v in images.items()}
    full = chemical_shift_fat(images["ip"], images["op"], noise_floor=1.0)
    lean = chemical_shift_fat(images["ip"], images["op"], noise_floor=1.0, maps=())
    assert lean.flags is None and lean.sii is None and full.flags is not None and full.sii is not None
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lean.ff), sitk.GetArrayFromImage(full.ff))
    assert lean.summary == full.summary
    op = ip * (1 - 2 * ff_true)
    expected = (ip[shift:] - op[:-shift]) / (2 * ip[shift:]) * 100.0   # IP slice k meets OP slice k - shift
    ff = sitk.GetArrayFromImage(lean.ff)
    check = (expected > 0) & (expected < 45)
    assert check.sum() > 100
    np.testing.assert_allclose(ff[shift:][check], expected[check], rtol=1e-4, atol=1e-3)
    assert np.all(ff[:shift] == 0)                           # outside the OP grid: masked
    e_full = relative_enhancement(images["pre"], images["post"], noise_floor=1.0)
    e_lean = relative_enhancement(images["pre"], images["post"], noise_floor=1.0, maps=())
    assert e_lean.subtraction is None and e_lean.mask is None and e_full.subtraction is not None
    re = sitk.GetArrayFromImage(e_lean.re)
    np.testing.assert_array_equal(re, sitk.GetArrayFromImage(e_full.re))
    assert e_lean.summary == e_full.summary and e_lean.summary["masked_reasons"]["non_finite_input"] == 1
    ok = np.isfinite(pre)
    np.testing.assert_allclose(re[ok], ((post - pre) / pre * 100.0)[ok], rtol=1e-4)
    assert re[0, 0, 0] == 0.0
    for k, v in images.items():
        np.testing.assert_array_equal(sitk.GetArrayFromImage(v), before[k])


def test_command_table_names_each_command_s_module():
    """A run of one command builds only its group's parser (COMMANDS): the table must name every command the modules
    register, with the module that registers it, or that command would be missing or built from the wrong group."""
    import argparse
    import importlib

    from LiverMetsReviewLib.cli import COMMAND_MODULES, COMMANDS

    registered = {}
    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"LiverMetsReviewLib.cli.{name}").register(sub)
        registered.update({command: name for command in sub.choices})
    assert registered == COMMANDS


def test_one_command_loads_only_its_group():
    """``livermets adc --help`` imports the maps commands and none of the other groups."""
    loaded = _loaded_after("from LiverMetsReviewLib.cli import main\ntry:\n    main(['adc', '--help'])\n"
                           "except SystemExit:\n    pass")
    assert "LiverMetsReviewLib.cli.maps_cmd" in loaded
    assert not {"LiverMetsReviewLib.cli.phantom_cmd", "LiverMetsReviewLib.cli.demo_cmd"} & loaded


def test_pydicom_is_silenced_after_its_import_and_map_commands_load_no_logging(tmp_path):
    """The CLI silences pydicom's logger during a command. pydicom's own import sets that logger's level, so the
    silencing must come after it (a level set before the import was undone); afterwards pydicom's level is back and
    no import hook is left. A map command on NRRD files imports neither pydicom nor ``logging``."""
    probe = (
        "import json, sys\n"
        "from LiverMetsReviewLib.cli import _quiet_libraries\n"
        "with _quiet_libraries():\n"
        "    import logging, pydicom\n"
        "    inside = logging.getLogger('pydicom').level\n"
        "left = [h for h in sys.meta_path if type(h).__name__ == '_AfterImport']\n"
        "print(json.dumps([inside, logging.getLogger('pydicom').level, len(left)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    inside, after, left = json.loads(out.stdout.strip().splitlines()[-1])
    assert (inside, after, left) == (50, 30, 0)      # CRITICAL during the command, pydicom's WARNING after

    import numpy as np
    import SimpleITK as sitk

    for name, value in (("ip", 1000.0), ("op", 600.0)):
        sitk.WriteImage(sitk.GetImageFromArray(np.full((2, 8, 8), value, np.float32)), str(tmp_path / f"{name}.nrrd"))
    argv = ["fat", "--in-phase", str(tmp_path / "ip.nrrd"), "--opposed-phase", str(tmp_path / "op.nrrd"),
            "-o", str(tmp_path / "ff.nrrd"), "--noise-floor", "0"]
    loaded = _loaded_after(f"from LiverMetsReviewLib.cli import main\nmain({argv!r})")
    assert (tmp_path / "ff.nrrd").exists()
    assert "logging" not in loaded and "pydicom" not in loaded
