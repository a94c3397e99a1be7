"""Benchmark: whole ``livermets`` processes against minimal reference scripts, as a researcher runs them per study.

A cohort run starts one process per study, so start-up, imports, reading and writing count as much as the fit.
Study (written once, not timed): 256 x 256 x 40 float32 NRRD volumes of an elliptical "abdomen" with Rician
noise: DWI at b = 0/50/400/800 s/mm^2, in/opposed phase at 1.5 T, T1 pre/post contrast; and a DICOM study from
``livermets phantom --format dicom`` for ``classify``. Each command is timed against a minimal script doing the
same job the simplest way (SimpleITK read, numpy formula, SimpleITK write; for classify: pydicom header reads
grouped by series). Processes run in interleaved rounds (reference, then ours, order alternating per round);
the report gives medians of wall time, CPU time (user + system, less sensitive to other jobs on a shared
machine) and peak resident memory (``/usr/bin/time -v``; a small fork/exec launcher's ``os.wait4`` when that tool
is missing).
Goal (issue 11): ours within 1.5x of the reference in wall time and in peak memory.
Run: ``python benchmarks/bench_cli.py [--rounds N] [--only adc,fat] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHAPE = (40, 256, 256)
B_VALUES = (0, 50, 400, 800)
GOAL = 1.5
TIME_TOOL = "/usr/bin/time"

# ------------------------------------------------------------------------------------------- reference scripts
REF_ADC = """
import numpy as np
import SimpleITK as sitk
b = np.array([0.0, 50.0, 400.0, 800.0])
imgs = [sitk.ReadImage(f"b{int(v)}.nrrd") for v in b]
logs = np.stack([np.log(np.maximum(sitk.GetArrayViewFromImage(i), 1e-6)) for i in imgs])
db = (b - b.mean()).astype(np.float32)
adc = -np.tensordot(db, logs - logs.mean(axis=0), axes=1) / float(db @ db) * 1e6
out = sitk.GetImageFromArray(np.clip(adc, 0, 5000).astype(np.float32))
out.CopyInformation(imgs[0])
sitk.WriteImage(out, "out/ref_adc.nrrd")
"""

REF_FAT = """
import numpy as np
import SimpleITK as sitk
ip_img, op_img = sitk.ReadImage("ip.nrrd"), sitk.ReadImage("op.nrrd")
ip, op = sitk.GetArrayViewFromImage(ip_img), sitk.GetArrayViewFromImage(op_img)
ff = np.where(ip > 0, (ip - op) / (2 * np.where(ip > 0, ip, 1)) * 100, 0).astype(np.float32)
out = sitk.GetImageFromArray(ff)
out.CopyInformation(ip_img)
sitk.WriteImage(out, "out/ref_ff.nrrd")
"""

REF_ENHANCEMENT = """
import numpy as np
import SimpleITK as sitk
pre_img, post_img = sitk.ReadImage("pre.nrrd"), sitk.ReadImage("post.nrrd")
pre, post = sitk.GetArrayViewFromImage(pre_img), sitk.GetArrayViewFromImage(post_img)
re = np.where(pre > 0, (post - pre) / np.where(pre > 0, pre, 1) * 100, 0).astype(np.float32)
out = sitk.GetImageFromArray(re)
out.CopyInformation(pre_img)
sitk.WriteImage(out, "out/ref_re.nrrd")
"""

REF_CLASSIFY = """
import sys
from collections import defaultdict
from pathlib import Path
import pydicom
series = defaultdict(list)
for f in sorted(p for p in Path("dicom").rglob("*") if p.is_file()):
    try:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
    except Exception:
        continue
    series[ds.SeriesInstanceUID].append(ds)
for uid, dss in series.items():
    print(dss[0].get("SeriesNumber", ""), dss[0].get("SeriesDescription", ""), dss[0].get("EchoTime", ""), len(dss))
"""

FLOOR = "import numpy, SimpleITK"
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
"""


def commands(livermets: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (reference argv, our argv), run in the study folder."""
    py = [sys.executable]
    return {
        "adc": (py + ["-c", REF_ADC],
                livermets + ["adc", *(f"b{b}.nrrd" for b in B_VALUES), "--bvalues", *map(str, B_VALUES),
                             "-o", "out/adc.nrrd"]),
        "fat": (py + ["-c", REF_FAT],
                livermets + ["fat", "--in-phase", "ip.nrrd", "--opposed-phase", "op.nrrd", "--field-strength", "1.5",
                             "--echo-times", "4.6", "2.3", "-o", "out/ff.nrrd"]),
        "enhancement": (py + ["-c", REF_ENHANCEMENT],
                        livermets + ["enhancement", "--pre", "pre.nrrd", "--post", "post.nrrd", "-o", "out/re.nrrd"]),
        "classify": (py + ["-c", REF_CLASSIFY], livermets + ["classify", "dicom"]),
    }


# ------------------------------------------------------------------------------------------------ the study
def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    re = signal + sigma * rng.standard_normal(signal.shape)
    im = sigma * rng.standard_normal(signal.shape)
    return np.hypot(re, im).astype(np.float32)


def _write(array: np.ndarray, path: Path) -> None:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((1.5, 1.5, 5.0))
    sitk.WriteImage(img, str(path))


def write_study(folder: Path, seed: int = 0) -> None:
    """The NRRD volumes (uncompressed, as a converter writes them) of the synthetic abdomen."""
    rng = np.random.default_rng(seed)
    _, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    body = np.broadcast_to(((y - 128) / 110.0) ** 2 + ((x - 128) / 122.0) ** 2 < 1, SHAPE)
    inner = np.broadcast_to(((y - 120) / 70.0) ** 2 + ((x - 140) / 80.0) ** 2 < 1, SHAPE)  # "liver"
    sigma = 1000.0 / 30.0
    adc = np.where(body, 800.0 + 2200.0 * (x / 255.0), 0.0)
    for b in B_VALUES:
        _write(_rician(np.where(body, 1000.0, 0.0) * np.exp(-b * adc * 1e-6), sigma, rng), folder / f"b{b}.nrrd")
    ff = np.where(inner, 0.12, np.where(body, 0.02, 0.0))
    water, fat = np.where(body, 1000.0, 0.0) * (1 - ff), np.where(body, 1000.0, 0.0) * ff
    _write(_rician(water + fat, sigma, rng), folder / "ip.nrrd")
    _write(_rician(np.abs(water - fat), sigma, rng), folder / "op.nrrd")
    pre = np.where(body, 600.0, 0.0)
    _write(_rician(pre, sigma, rng), folder / "pre.nrrd")
    _write(_rician(pre * np.where(inner, 1.8, 1.3), sigma, rng), folder / "post.nrrd")
    (folder / "out").mkdir(exist_ok=True)


def write_dicom(folder: Path, livermets: list[str]) -> None:
    """The phantom's DICOM study (every series, one file per slice) for ``classify``."""
    tmp = folder / "phantom"
    subprocess.run(livermets + ["phantom", "--format", "dicom", "-o", str(tmp)], check=True, capture_output=True)
    (tmp / "dicom").rename(folder / "dicom")
    shutil.rmtree(tmp)


# ---------------------------------------------------------------------------------------------- measuring
def run(argv: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one whole process; raises when it fails."""
    if Path(TIME_TOOL).exists():
        with tempfile.NamedTemporaryFile("r", suffix=".txt") as rep:
            t0 = time.perf_counter()
            proc = subprocess.run([TIME_TOOL, "-v", "-o", rep.name, *argv], cwd=cwd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            text = Path(rep.name).read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])}... failed: {proc.stderr.strip()[-400:]}")

        def field(name: str) -> float:
            return float(re.search(rf"{re.escape(name)}: ([0-9.]+)", text).group(1))

        return wall, field("User time (seconds)") + field("System time (seconds)"), field(
            "Maximum resident set size (kbytes)") / 1024.0
    # no time tool: a small launcher forks, execs and reports the child's rusage (measuring from this process
    # would count its own memory: a forked child's peak RSS starts at its parent's)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *argv], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    code, cpu, rss_kb = proc.stdout.strip().splitlines()[-1].split()
    if int(code) != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed: {proc.stderr.strip()[-400:]}")
    return wall, float(cpu), float(rss_kb) / 1024.0


def compile_bytecode() -> None:
    """Byte-compile our package once, as ``pip install`` does: a user's installed package has its ``.pyc`` files.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the development machine) an editable install never gets them,
    and every ``livermets`` process would compile its ~25 modules from source again (~35 ms of CPU) - a cost of
    this setup, not of the command. The reference scripts only use installed packages, which have bytecode."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "LiverMetsReview" / "LiverMetsReviewLib")],
                   check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})


def measure(cmds: dict[str, tuple[list[str], list[str]]], cwd: Path, rounds: int) -> dict[str, dict[str, list]]:
    """Interleaved rounds; per command the figures of every round for 'ref' and 'ours' (first run of each is a
    warm-up that fills the file cache and is not counted)."""
    out: dict[str, dict[str, list]] = {n: {"ref": [], "ours": []} for n in cmds}
    for ref, ours in cmds.values():
        run(ref, cwd)
        run(ours, cwd)
    for r in range(rounds):
        for name, (ref, ours) in cmds.items():
            order = (("ref", ref), ("ours", ours)) if r % 2 == 0 else (("ours", ours), ("ref", ref))
            for who, argv in order:
                out[name][who].append(run(argv, cwd))
    return out


def report(results: dict[str, dict[str, list]], floor: list[tuple[float, float, float]], rounds: int) -> bool:
    def med(rows: list, i: int) -> float:
        return statistics.median(r[i] for r in rows)

    print(f"whole processes, median of {rounds} rounds (wall s / CPU s / peak RSS MiB); goal: ours <= {GOAL}x ref")
    print(f"  floor (python -c '{FLOOR}'): {med(floor, 0):.2f} s wall, {med(floor, 1):.2f} s CPU, "
          f"{med(floor, 2):.0f} MiB")
    print(f"  {'command':12s} {'ref wall':>8s} {'ours':>6s} {'ratio':>6s}   {'ref CPU':>7s} {'ours':>6s} {'ratio':>6s}"
          f"   {'ref RSS':>7s} {'ours':>6s} {'ratio':>6s}  goal")
    ok_all = True
    for name, res in results.items():
        ref, ours = res["ref"], res["ours"]
        ratios = [med(ours, i) / med(ref, i) for i in range(3)]
        ok = ratios[0] <= GOAL and ratios[2] <= GOAL
        ok_all &= ok
        print(f"  {name:12s} {med(ref, 0):8.2f} {med(ours, 0):6.2f} {ratios[0]:6.2f}   {med(ref, 1):7.2f} "
              f"{med(ours, 1):6.2f} {ratios[1]:6.2f}   {med(ref, 2):7.0f} {med(ours, 2):6.0f} {ratios[2]:6.2f}  "
              f"{'met' if ok else 'NOT met'}")
    return ok_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Whole-process livermets commands against minimal reference scripts.")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated commands (adc, fat, enhancement, classify)")
    ap.add_argument("--keep", type=Path, default=None, help="write (or reuse) the study in this folder")
    args = ap.parse_args(argv)
    livermets = [str(Path(sys.executable).with_name("livermets"))]
    if not Path(livermets[0]).exists():
        livermets = [sys.executable, "-m", "LiverMetsReviewLib.cli"]
    cmds = commands(livermets)
    if args.only:
        cmds = {k: v for k, v in cmds.items() if k in args.only.split(",")}
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_cli_"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if not (folder / "post.nrrd").exists():
            write_study(folder)
        if "classify" in cmds and not (folder / "dicom").exists():
            write_dicom(folder, livermets)
        print(f"study written in {time.perf_counter() - t0:.1f} s ({folder})", flush=True)
        compile_bytecode()
        floor = [run([sys.executable, "-c", FLOOR], folder) for _ in range(args.rounds)]
        report(measure(cmds, folder, args.rounds), floor, args.rounds)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
