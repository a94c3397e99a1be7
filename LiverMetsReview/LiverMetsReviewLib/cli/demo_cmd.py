"""``livermets demo``: the whole pipeline on the built-in digital phantom (what ``make demo`` runs)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the full pipeline on the digital phantom and write demo-output/",
                       description="Generate the digital phantom, write it (NRRD, DICOM, ground truth), compute "
                                   "every map, tabulate each lesion's measurements beside its ground truth and "
                                   "draw figures.")
    p.add_argument("-o", "--output", default="demo-output", help="output folder (default demo-output)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the phantom (default 0)")
    p.add_argument("--scenario", default="steatosis",
                   help="phantom scenario (default steatosis: every lesion type of the catalogue appears)")
    p.add_argument("--small", action="store_true", help="reduced-size phantom (faster)")
    p.add_argument("--breath-hold-shift", type=float, default=5.0, metavar="MM",
                   help="largest displacement between breath-holds (default 5 mm; the dynamic phases are then "
                        "registered to the pre-contrast image and the recovered shifts reported; 0 turns both off)")
    p.add_argument("--no-dicom", action="store_true", help="skip the DICOM copy of the study")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(args.output, seed=args.seed, scenario=args.scenario, size="small" if args.small else "standard",
             breath_hold_shift_mm=args.breath_hold_shift, dicom=not args.no_dicom, figures=not args.no_figures)
    return 0
