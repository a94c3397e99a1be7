"""``livermets liver``: the liver mask (one click or automatic), its Couinaud segments and the study figures.

Reads a study folder written by ``livermets load`` or ``livermets phantom`` (any series it holds: a single T2 is
enough) and writes into the output folder ``liver.seg.nrrd`` (one segment ``Liver``, DICOM terminology as the
phantom's ground truth writes it), ``couinaud.seg.nrrd`` when the segments could be computed, and
``liver_figures.json`` (figures, series used, seed, landmarks in LPS, notes). Every file is written atomically.
Heavy imports happen inside the command.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LiverMetsError

if TYPE_CHECKING:
    import SimpleITK as sitk

FIGURES_FILE = "liver_figures.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``liver`` to the ``livermets`` parser."""
    p = subparsers.add_parser(
        "liver", help="liver mask (one click or automatic), Couinaud segments and liver figures of a study",
        description="Outline the liver from one click (--seed, LPS mm) or automatically on the best series the "
                    "study folder holds (portal venous, hepatobiliary, T2 ...), find the Couinaud segments when a "
                    "contrast phase is present, and measure the study figures (volume, fat, HBP function, "
                    "caudate-to-right-lobe ratio, surface nodularity).")
    p.add_argument("--study", required=True, metavar="DIR",
                   help="study folder written by 'livermets load' or 'livermets phantom' (or its roles.json)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created when missing)")
    p.add_argument("--seed", nargs=3, type=float, metavar=("X", "Y", "Z"),
                   help="a point inside the liver in LPS mm (default: found automatically)")
    p.add_argument("--series", metavar="ROLE", help="outline the liver on this series (default: the best present)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.set_defaults(func=_cmd_liver)


def _study_images(study: str) -> tuple[dict[str, sitk.Image], dict[str, Any], list[str]]:
    """Role -> first stack of each series, role -> series meta, and notes (duplicate roles)."""
    from ..io.study_folder import read_study_folder
    from .map_io import study_index

    if study_index(study) is None:
        raise LiverMetsError(f"{study} is not a study folder (no roles.json in it); give a folder written by "
                             "'livermets load' or 'livermets phantom'")
    images, meta, notes = role_images(read_study_folder(study))
    if not images:
        raise LiverMetsError(f"the study folder {study} holds no series; write it again with 'livermets load'")
    return images, meta, notes


def role_images(series: list) -> tuple[dict[str, sitk.Image], dict[str, Any], list[str]]:
    """Role -> first stack of each series of a study, role -> its meta, and notes (duplicate roles)."""
    images: dict[str, sitk.Image] = {}
    meta: dict[str, Any] = {}
    notes: list[str] = []
    for s in series:
        if s.role in images:
            notes.append(f"the study holds several {s.role} series; the first was used")
            continue
        images[s.role], meta[s.role] = s.image, s.meta
    return images, meta, notes


def _fat_map(images: dict[str, sitk.Image], notes: list[str]) -> sitk.Image | None:
    """A fat map from the study's Dixon pair, else its in/opposed-phase pair; None (with a note) without."""
    from ..maps.fat import chemical_shift_fat, dixon_fat

    try:
        if "dixon_water" in images and "dixon_fat" in images:
            notes.append("liver fat from the Dixon pair: F / (W + F)")
            return dixon_fat(images["dixon_water"], images["dixon_fat"]).ff
        if "t1_in_phase" in images and "t1_opposed_phase" in images:
            notes.append("liver fat from the in/opposed-phase pair: (IP - OP) / (2 IP), valid 0-50 %")
            return chemical_shift_fat(images["t1_in_phase"], images["t1_opposed_phase"]).ff
    except LiverMetsError as exc:
        notes.append(f"no fat map: {exc}")
    return None


def liver_segment() -> dict[str, Any]:
    """The ``Liver`` segment entry: name, colour and DICOM terminology as the phantom's ground truth writes them."""
    from ..phantom.tissues import organ_table

    liver = next(o for o in organ_table() if o["id"] == "liver")
    term = {"category": liver["terminology"]["category"], "type": liver["terminology"]["type"]}
    return {"label": 1, "id": "liver", "name": "Liver", "color": liver["color"], "terminology": term}


def write_segmentation_atomic(image: sitk.Image, segments: list[dict[str, Any]], path: Path) -> None:
    from ..io.atomic import atomic_path
    from ..io.segmentation import write_segmentation

    with atomic_path(path) as tmp:
        write_segmentation(image, segments, tmp)


@dataclass
class LiverAnalysis:
    """The liver mask of a study, its Couinaud segments (or why not) and how both were obtained."""

    mask: sitk.Image
    series_used: str | None
    seed_lps: list[float] | None
    seed_given: bool
    method: str
    couinaud: Any = None                      # lesions.couinaud.CouinaudResult, or None
    couinaud_why: str = ""
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def analyse_liver(images: dict[str, sitk.Image], seed: list[float] | None, series: str | None = None, *,
                  mask: sitk.Image | None = None, mask_source: str = "",
                  couinaud_labelmap: sitk.Image | None = None) -> LiverAnalysis:
    """The liver (segmented from ``seed`` or automatically, or the reader's ``mask``) and its Couinaud segments:
    from the reader's labelmap, else from landmarks found on a contrast phase; None with the reason otherwise."""
    from ..lesions.couinaud import couinaud_segments
    from ..lesions.liver import segment_liver

    if mask is not None:
        found = LiverAnalysis(mask, None, None, False, f"the reader's mask ({mask_source})")
    else:
        result = segment_liver(images, seed, series=series)
        found = LiverAnalysis(result.mask, result.series_used, [round(v, 2) for v in result.seed_lps],
                              seed is not None, result.method, notes=list(result.notes),
                              warnings=list(result.warnings))
    try:
        found.couinaud = couinaud_segments(images, found.mask, labelmap=couinaud_labelmap)
        found.notes += found.couinaud.notes
    except LiverMetsError as exc:
        found.couinaud_why = f"Couinaud segments not computed: {exc}"
        found.notes.append(found.couinaud_why)
    return found


def liver_summary(found: LiverAnalysis, images: dict[str, sitk.Image], study: str,
                  files: dict[str, str], notes: list[str]) -> dict[str, Any]:
    """The ``liver_figures.json`` document: the study figures, the series and seed used, landmarks, notes."""
    from ..lesions.liver import pick_series
    from ..lesions.liver_figures import liver_figures

    notes = notes + found.notes
    landmarks = found.couinaud.landmarks if found.couinaud is not None else {}
    spleen_on = found.series_used or pick_series(images)[0]
    figures = liver_figures(found.mask, images, fat_map=_fat_map(images, notes), landmarks=landmarks or None,
                            find_spleen_on=spleen_on)
    return {"format": "livermets-liver-figures", "version": 1, "coordinate_system": "LPS",
            "study": str(study), "series_used": found.series_used,
            "seed_lps_mm": found.seed_lps, "seed_given": found.seed_given,
            "method": found.method, "figures": figures,
            "couinaud_landmarks_lps_mm": {k: [round(v, 2) for v in p] for k, p in landmarks.items()},
            "files": files, "notes": notes, "warnings": found.warnings,
            "disclaimer": "figures are evidence for the reader, not a diagnosis"}


def write_liver_figures(summary: dict[str, Any], out: Path) -> str:
    """Write the summary as ``liver_figures.json`` in ``out`` (atomically); returns the path."""
    from ..io.atomic import write_json_atomic

    path = out / FIGURES_FILE
    summary["files"]["figures"] = str(path)
    write_json_atomic(path, summary, indent=2)
    return str(path)


def run_liver(study: str, out: Path, seed: list[float] | None, series: str | None) -> dict[str, Any]:
    """Everything the command does, returning the summary that is also written as ``liver_figures.json``."""
    from ..phantom.truth import couinaud_segments as couinaud_segment_list

    if out.exists() and not out.is_dir():
        raise LiverMetsError(f"{out} exists and is not a folder; give a folder for the outputs")
    images, _, notes = _study_images(study)
    found = analyse_liver(images, seed, series)
    out.mkdir(parents=True, exist_ok=True)
    files = {"liver": str(out / "liver.seg.nrrd")}
    write_segmentation_atomic(found.mask, [liver_segment()], out / "liver.seg.nrrd")
    if found.couinaud is not None:
        write_segmentation_atomic(found.couinaud.labels, couinaud_segment_list(), out / "couinaud.seg.nrrd")
        files["couinaud"] = str(out / "couinaud.seg.nrrd")
    summary = liver_summary(found, images, study, files, notes)
    write_liver_figures(summary, out)
    return summary


def _cmd_liver(args: argparse.Namespace) -> int:
    summary = run_liver(args.study, Path(args.output), args.seed, args.series)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    f = summary["figures"]
    print(f"liver outlined on {summary['series_used']} from "
          f"{'the seed' if summary['seed_given'] else 'an automatic seed'} "
          f"({', '.join(f'{v:.1f}' for v in summary['seed_lps_mm'])} mm LPS): {f['liver_volume']['value']:.0f} mL")
    for key, fig in f.items():
        if key in ("liver_volume", "spleen"):
            continue
        value = "not measurable: " + fig["why"] if fig["value"] is None else f"{fig['value']:.3g} {fig['unit']}"
        print(f"  {key}: {value}")
    for name, path in summary["files"].items():
        print(f"  wrote {name}: {path}")
    for w in summary["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0
