"""``livermets phantom``: generate the digital reference study with its ground truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import LiverMetsError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phantom",
        help="generate the digital gadoxetate liver MRI phantom with ground truth",
        description="Generate the digital reference study (every series computed from tissue physics) and its "
                    "ground truth (ground_truth.json, ground_truth.seg.nrrd, couinaud.seg.nrrd). World "
                    "coordinates are LPS (mm).",
    )
    p.add_argument("-o", "--output", type=Path, help="output folder")
    p.add_argument("--seed", type=int, default=0,
                   help="noise and breath-hold seed (default 0); with --vary it also draws the study")
    p.add_argument("--vary", action="store_true",
                   help="the seed also draws the lesions (types, number, size, outline, position, tissue "
                        "parameters), liver background, field strength, SNR, DICOM vendor and clinical context "
                        "from resources/phantom_lesion_ranges.json; without it the fixed catalogue")
    p.add_argument("--format", choices=("nrrd", "dicom"), default="nrrd", help="series as NRRD study folder or DICOM")
    p.add_argument("--vendor", choices=("siemens", "ge", "philips"), default=None,
                   help="DICOM header conventions (with --format dicom; default siemens, or drawn with --vary)")
    p.add_argument("--scenario", default="normal", help="scenario id (see --list-scenarios)")
    p.add_argument("--field-strength", type=float, default=None, metavar="T",
                   help="1.5 (default) or 3.0; drawn with --vary unless given")
    p.add_argument("--liver-fat", type=float, default=None, metavar="PCT",
                   help="liver PDFF in percent (overrides the scenario)")
    p.add_argument("--snr", type=float, default=None, help="SNR for every series (default: the protocol's)")
    p.add_argument("--breath-hold-shift", type=float, default=0.0, metavar="MM",
                   help="largest breath-hold displacement between series in mm (default 0)")
    p.add_argument("--b-values", type=float, nargs="+", default=[50.0, 400.0, 800.0], metavar="B",
                   help="DWI b-values in s/mm^2 (default 50 400 800)")
    p.add_argument("--small", action="store_true", help="reduced size (fast; for tests)")
    p.add_argument("--montage", action="store_true", help="also write montage.png (needs matplotlib)")
    p.add_argument("--list-scenarios", action="store_true", help="list the scenarios and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..phantom import describe_scenarios, generate_phantom, write_phantom

    if args.list_scenarios:
        for sc in describe_scenarios():
            print(f"{sc['id']:<16} {sc['label']}: {sc['description']}")
        return 0
    if args.output is None:
        raise LiverMetsError("no output folder given; add -o DIR (or use --list-scenarios)")
    t0 = time.perf_counter()
    study = generate_phantom(args.seed, args.scenario, field_strength_t=args.field_strength,
                             b_values=tuple(args.b_values), snr=args.snr, liver_fat_percent=args.liver_fat,
                             breath_hold_shift_mm=args.breath_hold_shift, size="small" if args.small else "standard",
                             vary=args.vary)
    manifest = write_phantom(study, args.output, args.format, vendor=args.vendor)
    if args.montage:
        from ..phantom.montage import write_montage

        manifest["files"]["montage"] = write_montage(study, args.output / "montage.png").name
    truth = study.truth
    drawn = " (varied: lesions, context, field strength, SNR and vendor drawn)" if args.vary else ""
    print(f"phantom: scenario {truth['scenario']['id']}, {truth['field_strength_t']:g} T, seed {truth['seed']}, "
          f"liver PDFF {truth['liver_background']['pdff_percent']:g} % -> {args.output} ({args.format}){drawn}")
    print(f"{len(manifest['series'])} series:")
    for s in manifest["series"]:
        size = "x".join(str(v) for v in s["size"])
        stacks = f", {s['stacks']} stacks" if s["stacks"] > 1 else ""
        print(f"  {s['role']:<18} {size}{stacks}  {s['description']}")
    print(f"{len(truth['lesions'])} lesions:")
    for les in truth["lesions"]:
        print(f"  {les['id']:<22} {les['type']:<32} segment {les['couinaud_name']:<5} {les['diameter_mm']:g} mm")
    for d in truth.get("vary", {}).get("dropped", []):
        print(f"  (not placed: a {d['diameter_mm']:g} mm {d['type']}: {d['reason']})")
    print(f"ground truth: {', '.join(v for k, v in manifest['files'].items() if isinstance(v, str) and k != 'roles')}"
          f"  ({time.perf_counter() - t0:.1f} s)")
    return 0
