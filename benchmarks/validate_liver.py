"""Robustness of the liver mask on real MRI: the CHAOS T2-SPIR abdomen (expert liver label) perturbed as other
scanners and protocols would give it (bias field, SNR, stored intensity scale, voxel size, axis order and
direction, field of view), the label moved with the image. For each perturbation kind and level, over several
seeds: Dice of the automatic mask and of one-click masks (clicks drawn deep, near the capsule and near vessels)
against the perturbed label, and the time per mask. The bar (issue 8) is Dice >= 0.85.
Run: ``python benchmarks/validate_liver.py [--seeds N] [--clicks N] [--kinds bias,noise,...]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "LiverMetsReview"))
sys.path.insert(0, str(REPO / "Testing" / "Python"))

import liver_perturb as lp  # noqa: E402

from LiverMetsReviewLib.errors import LiverMetsError  # noqa: E402
from LiverMetsReviewLib.lesions.liver import segment_liver  # noqa: E402

CHAOS = REPO.parent / "shared" / "data" / "chaos-abdomen-mr" / "t2spir"
BAR = 0.85
DETERMINISTIC = ("none", "scale", "resample", "orientation", "fov")


def run(case: lp.Case, seed_lps, role: str = "t2") -> tuple[float, float, str]:
    t0 = time.perf_counter()
    try:
        mask = segment_liver({role: case.image}, seed_lps).mask
    except LiverMetsError as exc:
        return 0.0, time.perf_counter() - t0, str(exc)
    return lp.dice(mask, case.truth), time.perf_counter() - t0, ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="draws per perturbation (default 3)")
    ap.add_argument("--clicks", type=int, default=1, help="clicks of each kind per case (default 1)")
    ap.add_argument("--kinds", default="", help="comma-separated kinds to run (default: all)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="first draw (default 0; draws not used while developing are a fair check)")
    args = ap.parse_args()
    if not CHAOS.is_dir():
        print(f"{CHAOS} is absent: nothing to validate")
        return 0
    image = sitk.ReadImage(str(CHAOS / "case1_t2spir.nii.gz"), sitk.sitkFloat32)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(CHAOS / "case1_labels.nii.gz")))
    truth = labels == lp.LIVER
    kinds = set(filter(None, args.kinds.split(",")))
    rows: dict[tuple[str, str], list] = defaultdict(list)  # (kind, level) -> (mode, dice, seconds)
    failures = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rng = np.random.default_rng(1000 + seed)
        cases = [] if kinds and not kinds - {"contrast", "mets"} else lp.catalogue(image, truth, 100 + seed)
        if not kinds or kinds & {"contrast", "mets"}:
            cases += lp.sequence_catalogue(image, labels, 200 + seed)
        for case in cases:
            if kinds and case.kind not in kinds:
                continue
            level = {"compound": "drawn"}.get(case.kind, case.level)
            if case.kind in ("contrast", "mets"):  # drawn ratios and lesions: one row per sequence
                level = case.level.split(":")[0]
            if seed == args.first_seed or case.kind not in DETERMINISTIC:  # else the same image again: only new clicks
                d, t, err = run(case, None, case.role)
                rows[(case.kind, level)].append(("auto", d, t))
                if d < BAR:
                    failures.append((case.kind, case.level, "auto", None, d, err))
            for click_kind in ("deep", "edge", "vessel", "lesion"):
                drawn = (lp.lesion_clicks(case, args.clicks, rng) if click_kind == "lesion"
                         else lp.clicks(case, click_kind, args.clicks, rng))
                for p in drawn:
                    d, t, err = run(case, p, case.role)
                    rows[(case.kind, level)].append((click_kind, d, t))
                    if d < BAR:
                        failures.append((case.kind, case.level, click_kind, p, d, err))
    print(f"CHAOS case 1 T2-SPIR, {args.seeds} seed(s) from {args.first_seed}; Dice against the expert label moved "
          f"with the image (bar {BAR})")
    print(f"{'kind':<12}{'level':<28}{'auto':>14}{'deep':>14}{'edge':>14}{'vessel':>14}{'lesion':>14}{'s/mask':>8}")
    times = []
    for (kind, level), vals in rows.items():
        cells = []
        for mode in ("auto", "deep", "edge", "vessel", "lesion"):
            ds = [v[1] for v in vals if v[0] == mode]
            cells.append(f"{min(ds):.3f}/{np.median(ds):.3f}" if ds else "-")
        ts = [v[2] for v in vals]
        times += ts
        print(f"{kind:<12}{level:<28}" + "".join(f"{c:>14}" for c in cells) + f"{np.median(ts):8.2f}")
    print("cells: min/median Dice over seeds and clicks")
    all_d = [v[1] for vals in rows.values() for v in vals]
    print(f"masks: {len(all_d)}; below {BAR}: {sum(d < BAR for d in all_d)}; median Dice {np.median(all_d):.3f}; "
          f"time per mask median {np.median(times):.2f} s, max {max(times):.2f} s")
    for kind, level, mode, p, d, err in failures:
        where = "" if p is None else " at (" + ", ".join(f"{v:.0f}" for v in p) + ")"
        print(f"  below bar: {kind} {level} {mode}{where}: Dice {d:.3f} {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
