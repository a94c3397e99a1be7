"""The liver mask on many real abdomens: every CHAOS-style case in a folder (``image_N.nii.gz`` with an expert
``label_N.nii.gz``: 1 liver, 2 right kidney, 3 left kidney, 4 spleen), automatic and from clicks drawn deep,
near the capsule and near vessels (``Testing/Python/liver_perturb.clicks``, seeded by the case number).
Prints per case the Dice against the liver label, the false-positive voxels by what they fell on and the missed
voxels; the bar (issue 8) is Dice >= 0.85.

The repository holds no such data (``../shared/data/chaos-abdomen-mr`` has case 1 only, which the tests use). A
public copy of 20 CHAOS T2-SPIR cases with labels (Kavur et al., Medical Image Analysis 2021,
doi:10.1016/j.media.2020.101950; CC BY-SA 4.0; preprocessed upstream: brightest 0.5 % clipped, resampled to
1.25 x 1.25 x 7.7 mm, cropped to 256 x 256) is in github.com/shenqq377/Q-Net @ 70a828d,
``data/CHAOST2/chaos_MR_T2_normalized/``; extract it outside the repository, e.g.
``git -C Q-Net archive 70a828d data/CHAOST2/chaos_MR_T2_normalized | tar -x -C /tmp``.
Session 18 split the cases before looking at any: development 1 2 3 5 8 10 13 15 19 20, held out 21 22 31 32 33
34 36 37 38 39 (run once per change, never looked at while developing).

A T1-weighted abdomen (gradient echo, fat bright, 3 mm isotropic, 20 slices: the slab cuts the liver) is the
TotalSegmentator MRI example, github.com/wasserth/TotalSegmentator @ acd2ff6 (Apache-2.0),
``tests/reference_files/example_mr_sm.nii.gz`` with ``example_seg_mr.nii.gz``, whose labels are that model's
output (total_mr: 5 liver, 2/3 kidneys, 1 spleen), not an expert's: copy them as ``image_1.nii.gz`` and
``label_1.nii.gz`` into a folder and run with ``--labels total_mr --role t1_opposed_phase``.

Run: ``python benchmarks/validate_liver_cases.py DIR [--cases 1,2,...] [--clicks N] [--role ROLE]
[--labels chaos|total_mr]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "LiverMetsReview"))
sys.path.insert(0, str(REPO / "Testing" / "Python"))

import liver_perturb as lp  # noqa: E402

from LiverMetsReviewLib.errors import LiverMetsError  # noqa: E402
from LiverMetsReviewLib.lesions.liver import segment_liver  # noqa: E402

BAR = 0.85
MODES = ("auto", "deep", "edge", "vessel")
ORGANS = (("bg", 0), ("r.kidney", 2), ("l.kidney", 3), ("spleen", 4))
# label values (liver, right kidney, left kidney, spleen) of each source, mapped to CHAOS's 1 2 3 4
LABEL_MAPS = {"chaos": (1, 2, 3, 4), "total_mr": (5, 2, 3, 1)}


def chaos_labels(labels: np.ndarray, source: str) -> np.ndarray:
    """``labels`` with the liver, kidneys and spleen renumbered as CHAOS's (everything else 0)."""
    out = np.zeros_like(labels)
    for new, old in enumerate(LABEL_MAPS[source], start=1):
        out[labels == old] = new
    return out


def one_mask(image: sitk.Image, labels: np.ndarray, seed_lps, role: str = "t2") -> tuple[float, float, str]:
    """Dice, seconds and what went wrong (false positives by label, missed voxels, or the refusal)."""
    truth = labels == 1
    t0 = time.perf_counter()
    try:
        mask = segment_liver({role: image}, seed_lps).mask
    except LiverMetsError as exc:
        return 0.0, time.perf_counter() - t0, f"refused: {exc}"
    dt = time.perf_counter() - t0
    m = sitk.GetArrayViewFromImage(mask) > 0
    fp = " ".join(f"{name} {int((m & (labels == v)).sum())}" for name, v in ORGANS)
    return lp.dice(mask, truth), dt, f"false positive: {fp}; missed {int((truth & ~m).sum())}"


def cases_in(folder: Path) -> list[int]:
    found = (re.fullmatch(r"image_(\d+)\.nii\.gz", p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m and (folder / f"label_{m.group(1)}.nii.gz").is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--cases", default="", help="comma-separated case numbers (default: every case in the folder)")
    ap.add_argument("--clicks", type=int, default=1, help="clicks of each kind per case (default 1)")
    ap.add_argument("--verbose", action="store_true", help="print the false positives and misses of every mask")
    ap.add_argument("--role", default="t2", help="the series role the images are given as (default t2)")
    ap.add_argument("--labels", choices=sorted(LABEL_MAPS), default="chaos", help="the label files' numbering")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"{args.folder} is not a folder: see this script's docstring for where the cases come from")
        return 2
    cases = [int(c) for c in args.cases.split(",") if c] or cases_in(args.folder)
    print(f"{'case':>5}" + "".join(f"{m:>9}" for m in MODES) + f"{'s/mask':>8}")
    dices: dict[str, list[float]] = {m: [] for m in MODES}
    times = []
    for c in cases:
        image = sitk.ReadImage(str(args.folder / f"image_{c}.nii.gz"), sitk.sitkFloat32)
        stored = sitk.GetArrayFromImage(sitk.ReadImage(str(args.folder / f"label_{c}.nii.gz"))).astype(int)
        labels = chaos_labels(stored, args.labels)
        case = lp.Case(image, labels == 1, "none", "none")
        rng = np.random.default_rng(c)
        cells, notes = [], []
        for mode in MODES:
            points = [None] if mode == "auto" else lp.clicks(case, mode, args.clicks, rng)
            ds = []
            for p in points:
                d, dt, why = one_mask(image, labels, p, args.role)
                ds.append(d)
                times.append(dt)
                if d < BAR or args.verbose:
                    notes.append(f"      {mode}: Dice {d:.3f}; {why}")
            dices[mode] += ds
            cells.append(f"{min(ds):9.3f}" if ds else f"{'-':>9}")
        print(f"{c:>5}" + "".join(cells) + f"{np.median(times[-4 * args.clicks:]):8.2f}", flush=True)
        for n in notes:
            print(n)
    print("cells: lowest Dice of the case's masks of that kind")
    for mode in MODES:
        ds = dices[mode]
        print(f"{mode:>7}: {len(ds)} masks, below {BAR}: {sum(d < BAR for d in ds)}, median Dice {np.median(ds):.3f}")
    print(f"time per mask median {np.median(times):.2f} s, max {max(times):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
