"""Benchmark: the one-click liver mask on a 256x256x40 study and on the real CHAOS T2, against SimpleITK's
ConfidenceConnected region growing (what the Segment Editor's simple tools do) from the same click, with the same
hole filling, in the same run; Dice of both against the truth. Goal (issue 8): about 1-2 s per click.
Run: ``python benchmarks/bench_liver.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "LiverMetsReview"))

from LiverMetsReviewLib.lesions.liver import segment_liver  # noqa: E402
from LiverMetsReviewLib.phantom.generate import generate_phantom  # noqa: E402

CHAOS = REPO.parent / "shared" / "data" / "chaos-abdomen-mr" / "t2spir"


def baseline(image: sitk.Image, seed_lps) -> sitk.Image:
    """ConfidenceConnected (mean +/- 2.5 sd of a 2-voxel neighbourhood, 4 re-estimations) + slice hole filling."""
    idx = image.TransformPhysicalPointToIndex([float(v) for v in seed_lps])
    smooth = sitk.CurvatureFlow(sitk.Cast(image, sitk.sitkFloat32), 0.125, 5)
    grown = sitk.ConfidenceConnected(smooth, [idx], numberOfIterations=4, multiplier=2.5, initialNeighborhoodRadius=2,
                                     replaceValue=1)
    arr = sitk.GetArrayFromImage(grown) > 0
    out = sitk.GetImageFromArray(np.stack([ndi.binary_fill_holes(s) for s in arr]).astype(np.uint8))
    out.CopyInformation(image)
    return out


def dice(mask: sitk.Image, truth: np.ndarray) -> float:
    m = sitk.GetArrayViewFromImage(mask) > 0
    return 2.0 * float((m & truth).sum()) / float(m.sum() + truth.sum())


def deepest(truth: np.ndarray, image: sitk.Image):
    depth = ndi.distance_transform_edt(truth, sampling=image.GetSpacing()[::-1])
    k = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return image.TransformIndexToPhysicalPoint([int(v) for v in k[::-1]])


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def report(name: str, image: sitk.Image, truth: np.ndarray, role: str, repeats: int) -> None:
    seed = deepest(truth, image)
    t_ours, ours = timed(lambda: segment_liver({role: image}, seed).mask, repeats)
    t_auto, auto = timed(lambda: segment_liver({role: image}).mask, 1)
    t_base, base = timed(lambda: baseline(image, seed), repeats)
    print(f"{name} {role} {image.GetSize()}: one click {t_ours:.2f} s Dice {dice(ours, truth):.3f}; "
          f"automatic {t_auto:.2f} s Dice {dice(auto, truth):.3f}; "
          f"ConfidenceConnected {t_base:.2f} s Dice {dice(base, truth):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    study = generate_phantom(seed=0, scenario="normal", size="standard")
    for role in ("t1_in_phase", "t1_portal_venous", "t2"):
        image = study.series_by_role(role).image
        truth = sitk.GetArrayFromImage(study.couinaud_on(role, image)) > 0
        report("phantom", image, truth, role, args.repeats)
    if CHAOS.is_dir():
        image = sitk.ReadImage(str(CHAOS / "case1_t2spir.nii.gz"), sitk.sitkFloat32)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(CHAOS / "case1_labels.nii.gz"))) == 1
        report("CHAOS case 1", image, truth, "t2", args.repeats)
    else:
        print(f"{CHAOS} is absent: real-data line skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
