"""Benchmark: multi-echo PDFF/R2* on a 256 x 256 x 40 x 6-echo study, against the previous method and a per-voxel
fit in the same run.

Data (1.5 T, 6 echoes at 1.2 + 1.2 k ms, Rician noise with SNR 40 on the total signal):

* the "abdomen": an ellipse (PDFF rising 0-100 % from left to right, R2* 20-200 1/s from front to back, smooth),
  air around it;
* block tissue: piecewise-constant blocks of 3 cm (20 voxels of 1.5 mm), PDFF drawn in 0-100 % and R2* in 20-200
  1/s (the case where a neighbourhood vote across tissue edges swaps fat and water), 4 slices of 160 x 160.

Ours: ``fit_pdff`` end to end (checks, noise floor, variable-projection grid, Levenberg-Marquardt of both sides,
fat-water choice, maps), timed on the whole volume, wall and CPU (CPU time counts every thread; on a shared
machine it is the fairer figure). Baseline: the method before this round (``fit_pdff`` and its defaults as of
``--baseline-rev``, read from git), timed on ``--baseline-slices`` slices and extrapolated (in ``--rounds``
alternating rounds with ours), and run on the block tissue; skipped with a reason when git or that revision is
not available. Reference: ``scipy.optimize.least_squares``
per voxel (same magnitude model, two starts) on a random subsample, extrapolated. Every method is compared with the
truth: median |PDFF error| and fat-water swaps (> 20 points off), overall and for PDFF 10-30 %.
The complex method is timed on the first ``--complex-slices`` slices with a smooth field map added.
Run: ``python benchmarks/bench_pdff.py [--subsample N] [--slices N] [--baseline-rev REV] [--baseline-slices N]
[--rounds N] [--complex-slices N]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.optimize import least_squares

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "LiverMetsReview"))

from LiverMetsReviewLib.maps.pdff import fit_pdff, pdff_defaults  # noqa: E402
from LiverMetsReviewLib.physics.fat import default_fat_spectrum, fat_phasor  # noqa: E402

B0 = 1.5
TE = np.array([1.2 + 1.2 * k for k in range(6)])
SNR = 40.0
SIGMA = 1000.0 / SNR
BASELINE_REV = "cfee887"          # default: the last commit with the grid + four-start LM + box-vote method
MAPS = "LiverMetsReview/LiverMetsReviewLib/maps"


def _phasor() -> np.ndarray:
    spec = default_fat_spectrum()
    return fat_phasor(TE, B0, spec["ppm"], spec["amplitudes"], spec["gamma_mhz_per_t"])


def _echo_images(s: np.ndarray, rng: np.random.Generator, complex_data: bool) -> list[sitk.Image]:
    images = []
    for k in range(TE.size):
        noisy = s[..., k] + rng.normal(0, SIGMA, s.shape[:-1]) + 1j * rng.normal(0, SIGMA, s.shape[:-1])
        if complex_data:
            img = sitk.RealAndImaginaryToComplex(sitk.GetImageFromArray(noisy.real.astype(np.float32)),
                                                 sitk.GetImageFromArray(noisy.imag.astype(np.float32)))
        else:
            img = sitk.GetImageFromArray(np.abs(noisy).astype(np.float32))
        img.SetSpacing((1.5, 1.5, 5.0))
        images.append(img)
    return images


def make_study(n_slices: int, seed: int = 0, complex_data: bool = False
               ) -> tuple[list[sitk.Image], np.ndarray, np.ndarray, np.ndarray, float]:
    """Echo images (magnitude, or complex with a smooth field map), true PDFF (percent), R2* (1/s), body, sigma."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:n_slices, :256, :256]
    body = (((y - 128) / 110.0) ** 2 + ((x - 128) / 122.0) ** 2 < 1) & (z >= 0)
    ff = np.where(body, np.clip((x - 6) / 244.0, 0, 1) + 0 * y + 0 * z, 0.0)
    r2 = np.where(body, 20.0 + 180.0 * (y / 255.0) + 0 * x + 0 * z, 0.0)
    psi = 40.0 * np.sin(x / 60.0) + 0.2 * (y - 128) + 0 * z          # Hz, smooth
    s = np.where(body[..., None], 1000.0 * ((1 - ff)[..., None] + ff[..., None] * _phasor())
                 * np.exp(-r2[..., None] * TE / 1000.0), 0.0) * np.exp(2j * np.pi * psi[..., None] * TE / 1000.0)
    return _echo_images(s, rng, complex_data), ff * 100.0, r2, body, SIGMA


def make_blocks(seed: int = 1, n_slices: int = 4, n: int = 160, block: int = 20
                ) -> tuple[list[sitk.Image], np.ndarray]:
    """Piecewise-constant block tissue (no air): echo images and true PDFF (percent)."""
    rng = np.random.default_rng(seed)
    nb = n // block
    ff = np.kron(rng.uniform(0.0, 1.0, (n_slices, nb, nb)), np.ones((1, block, block)))
    r2 = np.kron(rng.uniform(20.0, 200.0, (n_slices, nb, nb)), np.ones((1, block, block)))
    s = 1000.0 * ((1 - ff)[..., None] + ff[..., None] * _phasor()) * np.exp(-r2[..., None] * TE / 1000.0)
    return _echo_images(s, rng, False), ff * 100.0


def _git_show(rev: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def _baseline_modules(rev: str) -> list[str]:
    """The ``maps/pdff*.py`` files of revision ``rev``, ``pdff.py`` last (it imports the others)."""
    out = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", rev, f"{MAPS}/"], capture_output=True,
                         text=True, check=True).stdout.split()
    names = [Path(p).name for p in out if Path(p).name.startswith("pdff") and p.endswith(".py")]
    return sorted(names, key=lambda n: n == "pdff.py")


def load_baseline(rev: str):
    """``fit_pdff`` as of git revision ``rev`` (its ``maps/pdff*.py`` modules, loaded into a private package so that
    they import each other and not today's, and its defaults), or a reason string."""
    pkg = f"LiverMetsReviewLib.maps._baseline_{rev}"
    try:
        sys.modules[pkg] = types.ModuleType(pkg)
        sys.modules[pkg].__path__ = []
        mod = None
        for name in _baseline_modules(rev):
            # relative imports point at today's package, except the PDFF modules of that revision; the fat spectrum
            # moved unchanged from phantom/signal.py to physics/fat.py after cfee887
            src = (_git_show(rev, f"{MAPS}/{name}").replace("from .pdff", f"from {pkg}.pdff")
                   .replace("from ..", "from LiverMetsReviewLib.").replace("from .", "from LiverMetsReviewLib.maps.")
                   .replace("LiverMetsReviewLib.phantom.signal import", "LiverMetsReviewLib.physics.fat import"))
            mod = types.ModuleType(f"{pkg}.{name[:-3]}")
            mod.__package__ = pkg
            sys.modules[mod.__name__] = mod
            exec(compile(src, f"{name}@{rev}", "exec"), mod.__dict__)  # noqa: S102 - our own code, from git
        old_cfg = json.loads(_git_show(rev, "LiverMetsReview/LiverMetsReviewLib/resources/pdff_defaults.json"))["pdff"]
        mod.pdff_defaults = lambda: dict(old_cfg)
        return mod.fit_pdff
    except (OSError, subprocess.CalledProcessError, ImportError, KeyError, SyntaxError, AttributeError) as exc:
        return f"baseline {rev} unavailable ({type(exc).__name__}: {str(exc).strip()[:120]})"


def reference_fit(sig: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Per-voxel bounded least squares of |W + F c| exp(-R2* TE), two starts: (PDFF percent, R2* 1/s)."""
    cfg = pdff_defaults()
    lo = [0.0, 0.0, cfg["r2star_min_per_s"] / 1000.0]
    hi = [np.inf, np.inf, cfg["r2star_max_per_s"] / 1000.0]
    s0 = float(sig.max())

    def resid(p: np.ndarray) -> np.ndarray:
        return np.abs(p[0] + p[1] * c) * np.exp(-p[2] * TE) - sig

    best = None
    for f in (0.2, 0.8):
        r = least_squares(resid, [s0 * (1 - f), s0 * f, 0.05], bounds=(lo, hi), method="trf")
        if best is None or r.cost < best.cost:
            best = r
    w, fat, rr = best.x
    return 100.0 * fat / max(w + fat, 1e-30), rr * 1000.0


def accuracy(p: np.ndarray, truth: np.ndarray) -> str:
    err = np.abs(p - truth)
    mid = (truth >= 10) & (truth <= 30)
    return (f"median |PDFF error| {np.median(err):.2f} points, swaps (> 20 points) {100 * np.mean(err > 20):.2f} %; "
            f"PDFF 10-30 %: median {np.median(err[mid]):.2f}, swaps {100 * np.mean(err[mid] > 20):.2f} %")


def timed(fn, *args, **kwargs):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def alternating(calls: list, rounds: int) -> list[tuple[object, list[float], list[float]]]:
    """Each zero-argument call run ``rounds`` times, the order reversed every round (a busy machine slows all
    alike): per call (its last result, wall times, CPU times)."""
    out = [[None, [], []] for _ in calls]
    for r in range(max(1, rounds)):
        for i in (range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))):
            res, wall, cpu = timed(calls[i])
            out[i][0] = res
            out[i][1].append(wall)
            out[i][2].append(cpu)
    return [tuple(o) for o in out]


def _times(walls: list[float], cpus: list[float], scale: float = 1.0) -> str:
    if len(cpus) == 1:
        return f"{walls[0] * scale:.1f} s wall, {cpus[0] * scale:.1f} s CPU"
    return (f"wall {' '.join(f'{w * scale:.1f}' for w in walls)} s, CPU {' '.join(f'{c * scale:.2f}' for c in cpus)} s"
            f" (best {min(cpus) * scale:.2f} s CPU)")


def run_volume(args: argparse.Namespace, baseline) -> None:
    images, ff, r2, body, sigma = make_study(args.slices)
    n_total = int(np.prod(images[0].GetSize()))
    print(f"study: 256 x 256 x {args.slices} x {TE.size} echoes at {B0} T, {int(body.sum()):,} body voxels, "
          f"SNR {SNR:g}")
    k = min(args.baseline_slices, args.slices)
    calls = [lambda: fit_pdff(images, TE, field_strength_t=B0, noise_sigma=sigma)]
    if callable(baseline):
        calls.append(lambda: baseline([img[:, :, :k] for img in images], TE, field_strength_t=B0, noise_sigma=sigma))
    runs = alternating(calls, args.rounds)
    res, walls, cpus = runs[0]
    fitted = sitk.GetArrayViewFromImage(res.mask) == 1
    n_fit = int(fitted.sum())
    print(f"ours     fit_pdff: {_times(walls, cpus)} per volume ({n_fit:,} fitted of {n_total:,} voxels; "
          f"{1e6 * min(cpus) / max(n_fit, 1):.2f} us CPU per fitted voxel; issue 11 goal: <= 3 s per volume)")
    p_ours = sitk.GetArrayFromImage(res.pdff)
    print(f"ours     vs truth (body): {accuracy(p_ours[body], ff[body])}")
    if callable(baseline):
        old, bws, bcs = runs[1]
        scale = args.slices / k
        print(f"baseline fit_pdff@{args.baseline_rev} on {k} slices, per volume: {_times(bws, bcs, scale)} "
              f"(x{min(bcs) * scale / max(min(cpus), 1e-9):.2f} ours, best CPU)")
        print(f"baseline vs truth (body, {k} slices): "
              f"{accuracy(sitk.GetArrayFromImage(old.pdff)[body[:k]], ff[:k][body[:k]])}")
    rng = np.random.default_rng(1)
    idx = rng.choice(np.flatnonzero(fitted.ravel()), size=min(args.subsample, n_fit), replace=False)
    stack = np.stack([sitk.GetArrayViewFromImage(img).ravel()[idx] for img in images], axis=1).astype(np.float64)
    t0 = time.perf_counter()
    ref = np.array([reference_fit(stack[i], _phasor()) for i in range(idx.size)])
    t_ref = (time.perf_counter() - t0) / idx.size
    print(f"reference scipy least_squares per voxel (2 starts): {1000 * t_ref:.2f} ms/voxel -> "
          f"{t_ref * n_fit:.0f} s extrapolated; vs truth on {idx.size} voxels: "
          f"median |PDFF error| {np.median(np.abs(ref[:, 0] - ff.ravel()[idx])):.2f}, "
          f"swaps {100 * np.mean(np.abs(ref[:, 0] - ff.ravel()[idx]) > 20):.1f} %")


def run_blocks(baseline, rev: str) -> None:
    images, ff = make_blocks()
    print(f"block tissue: {ff.shape[0]} x {ff.shape[1]} x {ff.shape[2]} voxels, 3 cm blocks, PDFF 0-100 %, "
          "R2* 20-200 1/s")
    for name, fn in (("ours", fit_pdff), (f"baseline@{rev}", baseline)):
        if not callable(fn):
            continue
        res, wall, cpu = timed(fn, images, TE, field_strength_t=B0, noise_floor=0.0, noise_sigma=SIGMA)
        print(f"{name:17s} {accuracy(sitk.GetArrayFromImage(res.pdff), ff)} ({cpu:.1f} s CPU)")


def run_complex(n_slices: int) -> None:
    cimages, cff, _, _, _ = make_study(n_slices, complex_data=True)
    cres, wall, cpu = timed(fit_pdff, cimages, TE, field_strength_t=B0, method="complex", noise_sigma=SIGMA)
    cm = sitk.GetArrayViewFromImage(cres.mask) == 1
    cerr = sitk.GetArrayFromImage(cres.pdff)[cm] - cff[cm]
    print(f"complex  fit_pdff(method='complex') on {n_slices} slices: {wall:.1f} s wall, {cpu:.1f} s CPU for "
          f"{int(cres.summary['voxels_fitted']):,} voxels; median |PDFF error| {np.median(np.abs(cerr)):.2f} points, "
          f"swaps {100 * np.mean(np.abs(cerr) > 20):.2f} %")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subsample", type=int, default=300, help="voxels fitted by the per-voxel reference")
    ap.add_argument("--slices", type=int, default=40, help="number of slices (256 x 256 each)")
    ap.add_argument("--baseline-slices", type=int, default=6, help="slices the previous method is timed on")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the previous method "
                    f"(default {BASELINE_REV}; any revision with maps/pdff*.py)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds of ours and the baseline")
    ap.add_argument("--complex-slices", type=int, default=4, help="slices for the complex method (0: skip)")
    args = ap.parse_args(argv)
    baseline = load_baseline(args.baseline_rev)
    if not callable(baseline):
        print(baseline)
    run_volume(args, baseline)
    run_blocks(baseline, args.baseline_rev)
    if args.complex_slices > 0:
        run_complex(args.complex_slices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
