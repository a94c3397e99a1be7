"""``livermets measure``: lesion seeds on a study folder -> lesion segments, diameters and measurements.

Writes into the output folder ``lesions.seg.nrrd`` (every lesion + the liver as segments with DICOM
terminology), ``lesions.mrk.json`` (the seeds), ``diameters.mrk.json`` (a line per diameter),
``measurements.tsv``, ``measurements.json`` and ``liver_figures.json`` (the study figures of the liver, as
``livermets liver`` writes them). Without ``--liver-mask`` the liver is segmented (from ``--liver-seed`` or
automatically) and its Couinaud segments found when a contrast phase allows. Coordinates are LPS (mm) throughout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "measure",
        help="segment and measure the lesions marked by seed points",
        description="From one seed point per lesion (a Slicer point list; each point's label names its lesion and "
                    "becomes its segment's id and name; a description 'type=metastasis' sets its type), outline every "
                    "lesion in 3-D on all co-registered series together and measure it on every series and map. "
                    "Coordinates are LPS (mm).",
    )
    p.add_argument("--study", type=Path, required=True, help="study folder written by 'livermets load' or 'phantom'")
    p.add_argument("--seeds", type=Path, default=None, help="Slicer point list (.mrk.json) with one point per lesion")
    p.add_argument("--drawn", type=Path, default=None,
                   help="lesions drawn by the reader (.seg.nrrd): every segment not named 'liver' is measured as drawn")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--series", nargs="+", metavar="ROLE", default=None,
                   help="roles to outline lesions on (default: all present of t1_hepatobiliary, t1_portal_venous, "
                        "t1_arterial, t1_transitional, t1_pre, t2, dwi, adc_scanner)")
    p.add_argument("--liver-seed", type=float, nargs=3, metavar=("X", "Y", "Z"), default=None,
                   help="a point in the liver (LPS mm) to segment it from")
    p.add_argument("--liver-mask", type=Path, default=None,
                   help="liver mask (.seg.nrrd with a 'liver' segment, or a labelmap: non-zero = liver)")
    p.add_argument("--couinaud", type=Path, default=None,
                   help="Couinaud label image (values 1..8, or a .seg.nrrd named 'Couinaud segment ...')")
    p.add_argument("--max-radius", type=float, default=None, metavar="MM", help="largest lesion radius (default 40)")
    p.add_argument("--rim", type=float, default=None, metavar="MM", help="rim thickness for rim/core (default 3)")
    p.add_argument("--no-maps", action="store_true", help="measure the series only (skip ADC, fat, enhancement maps)")
    p.add_argument("--json", action="store_true", help="print the lesion summaries as JSON")
    p.set_defaults(func=run)


def _read_mask(path: Path, prefer: str) -> Any:
    """A label image from a .seg.nrrd (the segment named ``prefer`` when present) or any image file."""
    import numpy as np
    import SimpleITK as sitk

    if str(path).endswith(".seg.nrrd"):
        from ..lesions.seg_file import read_layered_segmentation

        ref, segments = read_layered_segmentation(path)
        chosen = [s for s in segments if prefer in (s["id"].lower(), s["name"].lower())] or segments
        arr = np.zeros(chosen[0]["mask"].shape, np.uint8)
        for s in chosen:
            arr[s["mask"]] = 1
        img = sitk.GetImageFromArray(arr)
        img.CopyInformation(ref)
        return img
    from ..io.images import read_image

    return read_image(path)


def _read_couinaud(path: Path) -> Any:
    import numpy as np
    import SimpleITK as sitk

    if not str(path).endswith(".seg.nrrd"):
        from ..io.images import read_image

        return read_image(path)
    from ..lesions.couinaud import ROMAN
    from ..lesions.seg_file import read_layered_segmentation

    ref, segments = read_layered_segmentation(path)
    number = {f"couinaud segment {r}".lower(): k for k, r in ROMAN.items()}
    arr = np.zeros(segments[0]["mask"].shape, np.uint8)
    for s in segments:
        k = number.get(s["name"].lower())
        if k is None:
            raise LiverMetsError(f"{path}: segment '{s['name']}' is not named 'Couinaud segment I'..'VIII'")
        arr[s["mask"]] = k
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(ref)
    return img


def _drawn_lesions(path: Path | None) -> list[tuple[str, Any]]:
    if path is None:
        return []
    import SimpleITK as sitk

    from ..lesions.seg_file import read_layered_segmentation

    ref, segments = read_layered_segmentation(path)
    out = []
    for s in segments:
        if s["id"].lower() == "liver" or s["name"].lower() == "liver":
            continue
        img = sitk.GetImageFromArray(s["mask"].astype("uint8"))
        img.CopyInformation(ref)
        out.append((s["name"] or s["id"], img))
    if not out:
        raise LiverMetsError(f"{path} holds no lesion segment (only a liver or nothing); draw the lesions first")
    return out


def _liver_mask_for(study: list, args: argparse.Namespace) -> tuple[Any, str]:
    """The liver for this review (a :class:`liver_cmd.LiverAnalysis`) and a sentence saying how it was obtained.

    The reader's mask (``--liver-mask``) when given; else the liver segmented from ``--liver-seed``, or found
    automatically on the best series the study holds (the series used is named).
    """
    from .liver_cmd import analyse_liver, role_images

    images = role_images(study)[0]
    labelmap = _read_couinaud(args.couinaud) if args.couinaud is not None else None
    if args.liver_mask is not None:
        found = analyse_liver(images, None, mask=_read_mask(args.liver_mask, "liver"),
                              mask_source=str(args.liver_mask), couinaud_labelmap=labelmap)
        return found, f"from {args.liver_mask}"
    found = analyse_liver(images, args.liver_seed, couinaud_labelmap=labelmap)
    how = "from the liver seed" if args.liver_seed is not None else "automatically (no seed given)"
    seed = ", ".join(f"{v:.1f}" for v in found.seed_lps)
    return found, f"segmented {how} on {found.series_used} at ({seed}) mm LPS"


def _couinaud_for(study: list, args: argparse.Namespace, found: Any = None) -> tuple[Any, str]:
    """The Couinaud label image of the review (the reader's, or from landmarks found on a contrast phase) or
    None with the reason (no contrast phase, no liver)."""
    if found is None:
        found = _liver_mask_for(study, args)[0]
    if found.couinaud is None:
        return None, found.couinaud_why
    return found.couinaud.labels, "; ".join(found.couinaud.notes)


def _write_liver_figures(series: list, found: Any, args: argparse.Namespace) -> str:
    """The liver figures (the format ``livermets liver`` writes) into the output folder, for the checklist."""
    from .liver_cmd import liver_summary, role_images, write_liver_figures

    images, _, notes = role_images(series)
    summary = liver_summary(found, images, str(args.study), {"lesions": str(args.output / "lesions.seg.nrrd")},
                            notes)
    return write_liver_figures(summary, args.output)


def run(args: argparse.Namespace) -> int:
    from ..io.study_folder import read_study_folder
    from ..lesions.markups import read_seeds
    from ..lesions.review import lesion_record, review_lesions, write_review

    t0 = time.perf_counter()
    if args.seeds is None and args.drawn is None:
        raise LiverMetsError("no lesions given; add --seeds (a point per lesion) and/or --drawn (drawn segments)")
    seeds = read_seeds(args.seeds) if args.seeds is not None else []
    drawn = _drawn_lesions(args.drawn)
    series = read_study_folder(args.study)
    found, liver_note = _liver_mask_for(series, args)
    couinaud, couinaud_note = _couinaud_for(series, args, found)
    maps = None
    if not args.no_maps:
        from ..pipeline import LESION_MAPS, compute_study_maps

        maps = compute_study_maps(series, which=LESION_MAPS)
    review = review_lesions(series, seeds, roles=args.series, liver_mask=found.mask, couinaud=couinaud,
                            maps=maps, liver_note=liver_note, drawn=drawn, max_radius_mm=args.max_radius,
                            rim_mm=args.rim)
    files = write_review(review, args.output, maps)
    files["liver_figures"] = _write_liver_figures(series, found, args)
    if args.json:
        print(json.dumps({"files": files, "lesions": [lesion_record(it) for it in review.lesions]}, indent=1,
                         default=str))
        return 0
    print(f"measure: {len(review.lesions)} lesion(s) on {', '.join(review.channels.values())}; liver: {liver_note}")
    print(f"  Couinaud: {couinaud_note}")
    for it in review.lesions:
        m = it.measures
        seg = f"segment {m.couinaud_segment}" if m.couinaud_segment else f"segment ? ({m.couinaud_why})"
        print(f"  {it.seed.label:<20} {m.value('long_axis'):6.1f} x {m.value('short_axis'):5.1f} mm  "
              f"{m.value('volume'):7.2f} mL  {seg}" + (f"  [{'; '.join(it.notes)}]" if it.notes else ""))
    print(f"wrote {', '.join(files.values())} to {args.output} ({time.perf_counter() - t0:.1f} s)")
    return 0
