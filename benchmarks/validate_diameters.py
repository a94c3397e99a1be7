"""Longest axial diameter and its perpendicular against the drawn phantom's analytic truth, by size band.

The diameter criterion of ``validate_measures.py`` (criterion 3) alone, with its error distributions: per drawn
study (``generate_phantom(seed, scenario, vary=True)``, scenarios in turn) every lesion is segmented from one
click at its centre and outlined by its truth mask (the truth labelmap on the reference grid, as in
``validate_measures.py``); both are measured, and the long axis is compared with the truth's ``diameter_mm``
(the drawn analytic outline's longest axial chord), the short axis with the truth shape's perpendicular
(``truth_axes`` of ``validate_measures.py``: one in-plane spacing plus one truth-grid voxel of tolerance).

``--cache DIR`` keeps, per study, what the diameters are computed from (each lesion's mask, its reference
region and the images cropped round it), so a change of the diameter method is re-assessed in seconds:
``--from-cache`` skips the phantom and the segmentation. Nothing here is read by the method checked.
Run: ``python benchmarks/validate_diameters.py [--studies N] [--first-seed S] [--small] [--cache DIR]``.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "LiverMetsReview"))
sys.path.insert(0, str(REPO / "benchmarks"))

from LiverMetsReviewLib.lesions import measure as measure_mod  # noqa: E402
from LiverMetsReviewLib.lesions.measure import MeasuredImage, StudyContext  # noqa: E402

SCENARIOS = ("normal", "steatosis", "reduced_hbp", "pseudocirrhosis")
BANDS = ((0.0, 10.0), (10.0, 20.0), (20.0, 200.0))


def _crop(ctx: StudyContext, mask: np.ndarray, sl: tuple[slice, ...], ref: np.ndarray) -> dict:
    """What ``_diameters`` reads, cropped to the lesion's box (a sub-image of the reference keeps LPS)."""
    start = [s.start for s in sl][::-1]
    size = [s.stop - s.start for s in sl][::-1]
    sub = sitk.RegionOfInterest(ctx.reference, size, start)
    images = {n: (im.values[sl].copy(), im.key, None if im.valid is None else im.valid[sl].copy(), im.voxel_mm3)
              for n, im in ctx.images.items()}
    return {"origin": sub.GetOrigin(), "spacing": sub.GetSpacing(), "direction": sub.GetDirection(),
            "size": size, "mask": mask[sl].copy(), "ref": ref.copy(), "images": images}


def _context(c: dict) -> tuple[StudyContext, np.ndarray, tuple[slice, ...], np.ndarray]:
    img = sitk.Image([int(v) for v in c["size"]], sitk.sitkUInt8)
    img.SetOrigin(c["origin"])
    img.SetSpacing(c["spacing"])
    img.SetDirection(c["direction"])
    images = {n: MeasuredImage(v, k, ok, vox) for n, (v, k, ok, vox) in c["images"].items()}
    full = tuple(slice(0, n) for n in c["mask"].shape)
    return StudyContext(img, images), c["mask"], full, c["ref"]


def collect(seed: int, scenario: str, size: str) -> list[dict]:
    """Every lesion of one drawn study: truth values and the cropped inputs of its two measurements."""
    from validate_measures import truth_axes, truth_on

    from LiverMetsReviewLib.lesions.liver import segment_liver
    from LiverMetsReviewLib.lesions.markups import Seed
    from LiverMetsReviewLib.lesions.review import OutlinedLesion, review_lesions, review_of_outlines
    from LiverMetsReviewLib.phantom import generate_phantom
    from LiverMetsReviewLib.pipeline import compute_study_maps

    study = generate_phantom(seed, scenario, size=size, vary=True)
    images = {s.role: s.image for s in study.series}
    liver = segment_liver(images).mask
    maps = compute_study_maps(study.series, which=("enhancement",))
    captured: list[dict] = []
    original = measure_mod._diameters

    def capture(ctx, mask, sl, ref):
        captured.append(_crop(ctx, mask, sl, ref))
        return original(ctx, mask, sl, ref)

    measure_mod._diameters = capture
    try:
        seeds = [Seed(les["id"], tuple(les["centre_mm"])) for les in study.truth["lesions"]]
        refused: dict[str, str] = {}
        rv = review_lesions(study.series, seeds, liver_mask=liver, maps=maps, refused=refused)
        click = dict(zip([it.seed.label for it in rv.lesions], captured, strict=True))
        captured.clear()
        truths = {les["id"]: truth_on(study, study.labelmap, rv.reference, "t1_hepatobiliary", les["label"])
                  for les in study.truth["lesions"]}
        outlines = [OutlinedLesion(k, "lesion", v) for k, v in truths.items() if v.any()]
        rv_t = review_of_outlines(study.series, outlines, liver_mask=liver, maps=maps)
        truth = dict(zip([it.seed.label for it in rv_t.lesions], captured, strict=True))
    finally:
        measure_mod._diameters = original
    lab = sitk.GetArrayFromImage(study.labelmap)
    fine = study.labelmap.GetSpacing()[0]
    out = []
    for les in study.truth["lesions"]:
        _, t_short = truth_axes(lab == les["label"], fine)
        out.append({"study": f"seed {seed} {scenario}", "id": les["id"], "type": les["type"],
                    "shape": les.get("shape", ""), "diameter_mm": float(les["diameter_mm"]), "short_mm": t_short,
                    "fine_mm": fine, "lesion": les, "click": click.get(les["id"]), "truth": truth.get(les["id"]),
                    "refused": refused.get(les["id"], "")})
    return out


def assess(rows: list[dict], diameters=None) -> list[dict]:
    """Measured long and short axes of every lesion (both masks) with their errors (mm and in spacings)."""
    diameters = diameters or measure_mod._diameters
    res = []
    for r in rows:
        for how in ("click", "truth"):
            c = r[how]
            if c is None:  # an empty truth mask is not assessed (as in validate_measures.py); a refusal is a miss
                if how == "click":
                    res.append({**_meta(r), "how": how, "long": None})
                continue
            ctx, mask, sl, ref = _context(c)
            long_, _, short, _ = diameters(ctx, mask, sl, ref)
            sp = max(c["spacing"][:2])
            res.append({**_meta(r), "how": how, "long": long_, "short": short, "spacing": sp,
                        "err": None if long_ is None else long_ - r["diameter_mm"],
                        "err_short": None if short is None else short - r["short_mm"],
                        "tol_short": sp + r["fine_mm"]})
    return res


def _meta(r: dict) -> dict:
    return {k: r[k] for k in ("study", "id", "type", "shape", "diameter_mm", "short_mm")}


def report(res: list[dict]) -> None:
    for how in ("click", "truth"):
        sel = [x for x in res if x["how"] == how]
        ok = sum(1 for x in sel if x["long"] is not None and abs(x["err"]) <= x["spacing"])
        oks = sum(1 for x in sel if x["long"] is not None and abs(x["err_short"]) <= x["tol_short"])
        print(f"\n{how}: long axis within one spacing {ok}/{len(sel)}, short axis within tolerance {oks}/{len(sel)}")
        print("  band (mm)   n   long err mm: median  [min, max]   |err|/spacing: median  p90  max   "
              "short err mm: median [min, max]")
        for lo, hi in BANDS:
            b = [x for x in sel if lo <= x["diameter_mm"] < hi and x["long"] is not None]
            if not b:
                continue
            e = np.array([x["err"] for x in b])
            rel = np.abs(e) / np.array([x["spacing"] for x in b])
            es = np.array([x["err_short"] for x in b])
            print(f"  {lo:3.0f}-{hi:<4.0f} {len(b):4d}   {np.median(e):+6.2f}  [{e.min():+6.2f}, {e.max():+6.2f}]"
                  f"        {np.median(rel):5.2f} {np.percentile(rel, 90):5.2f} {rel.max():5.2f}"
                  f"        {np.median(es):+6.2f} [{es.min():+6.2f}, {es.max():+6.2f}]")
        for x in sel:
            if x["long"] is None or abs(x["err"]) > x["spacing"] or abs(x["err_short"]) > x["tol_short"]:
                print(f"  miss: {x['study']} {x['id']} {x['type']} {x['shape']}: long "
                      f"{x['long']} vs {x['diameter_mm']:.2f}, short {x.get('short')} vs {x['short_mm']:.2f} "
                      f"(spacing {x.get('spacing')})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--first-seed", type=int, default=7200)
    ap.add_argument("--small", action="store_true", help="small phantoms (3 mm pixels)")
    ap.add_argument("--cache", type=Path, help="folder keeping each study's cropped inputs (one pickle per seed)")
    ap.add_argument("--from-cache", action="store_true", help="only studies already in --cache; no phantoms")
    args = ap.parse_args(argv)
    size = "small" if args.small else "standard"
    rows: list[dict] = []
    for i in range(args.studies):
        seed = args.first_seed + i
        path = args.cache / f"{size}-{seed}.pkl" if args.cache else None
        if path is not None and path.exists():
            rows += pickle.loads(path.read_bytes())
            continue
        if args.from_cache:
            continue
        t0 = time.perf_counter()
        got = collect(seed, SCENARIOS[i % len(SCENARIOS)], size)
        print(f"seed {seed}: {len(got)} lesions ({time.perf_counter() - t0:.0f} s)", flush=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(got))
        rows += got
    report(assess(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
