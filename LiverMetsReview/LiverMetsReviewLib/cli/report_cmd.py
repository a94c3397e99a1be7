"""``livermets report``: the structured report of a review -> ``report.html`` (key images embedded),
``report.txt`` (the impression to paste into the RIS) and, with ``--format dicom``, ``seg.dcm`` + ``sr.dcm``."""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("html", "pdf", "txt", "dicom")  # the choices of --format; core formats in report.build.FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="structured report (HTML with key images, plain-text impression) of a review",
                       description="Write the review's report: study, technique, liver background, a table of the "
                                   "lesions, key images per lesion and the items behind each impression.")
    p.add_argument("--review", type=Path, required=True, help="output folder of 'livermets review' (review.json)")
    p.add_argument("--lesions", type=Path, default=None,
                   help="output folder of 'livermets measure' (default: the one the review names, if any)")
    p.add_argument("--study", type=Path, default=None,
                   help="study folder (roles.json) for the key images (default: the one liver_figures.json names)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output folder (report.html, report.pdf, report.txt; with --format dicom also seg.dcm "
                        "and sr.dcm)")
    p.add_argument("--format", nargs="+", choices=FORMATS, default=["html", "pdf", "txt"],
                   help="what to write (pdf needs the 'pdf' extra, PySide6; dicom: DICOM Segmentation + TID 1500 "
                        "SR, needs highdicom and a study loaded from DICOM)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import ReportInputs, write_report

    notes: list[str] = []
    files = write_report(ReportInputs(args.review, args.lesions, args.study), args.output, tuple(args.format),
                         notes=notes)
    print(f"wrote {', '.join(f.name for f in files)} to {args.output}")
    for note in notes:
        print(f"note: {note}")
    return 0
