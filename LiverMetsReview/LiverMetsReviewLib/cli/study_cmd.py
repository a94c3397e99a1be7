"""``livermets classify`` and ``livermets load``: a DICOM folder -> series roles -> NRRD study folder.

``--roles`` takes either of two files. (1) An overrides file (call it e.g. ``role_overrides.json``):
``{"overrides": {"<SeriesInstanceUID or series number>": "<role>"}}``; the value may also be a list with one
role per stack (order as in ``classify --json`` "stack_roles"), and "unassigned" leaves a series out.
(2) The ``roles.json`` that ``load`` or ``phantom`` wrote (or its folder), edited or not: each entry's role is
used for the series it names (meta.series_uid, else series_number); series it lists under "classification"
but did not load stay out, series it does not mention keep the classifier's role.
``classify --layout PROTOCOL`` also prints which series a hanging protocol would put in each view.
Heavy packages (pydicom, SimpleITK, numpy) and the study modules are imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import LiverMetsError

ROLES_HELP = ('the reader\'s roles: an overrides file {"overrides": {"<series UID or number>": "<role>"}}, or a '
              "roles.json written by 'livermets load'/'phantom' (edited or not), or its folder")


def _scan(args: argparse.Namespace):
    from ..study.classify import apply_overrides, classify_scan, load_overrides
    from ..study.scan import scan_folder

    scan = classify_scan(scan_folder(args.dicom_dir))
    if getattr(args, "roles", None):
        overrides = load_overrides(args.roles)
        apply_overrides(scan.series, overrides)
    return scan


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ("series_number", "description", "role", "confidence", "b_values", "echo_times_ms", "field_strength_t",
            "n_instances", "acquisition_time")
    heads = ("#", "description", "role", "conf", "b-values", "TE ms", "B0 T", "files", "time")

    def cell(row: dict[str, Any], c: str) -> str:
        v = row.get(c)
        if v is None or v == []:
            return "-"
        if isinstance(v, list):
            return "/".join(f"{x:g}" for x in v)
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)[:40]

    cells = [[cell(r, c) for c in cols] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    for r, c in zip(rows, cells, strict=True):
        lines.append("  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)))
        lines.append(f"    why: {r['reason']}")
        lines.append(f"    uid: {r['series_uid']}")
    return "\n".join(lines)


def _layouts(scan, protocol: str | None) -> list[tuple[str, Any]]:
    """(study UID, LayoutPlan) per study for ``--layout``; ids in the plan are series numbers ('7[2]' = stack 2)."""
    if not protocol:
        return []
    from ..study.hanging import available_from_scan, choose_layout

    return [(uid, choose_layout(protocol, available_from_scan(members))) for uid, members in scan.by_study().items()]


def _identity(info: Any) -> dict[str, str]:
    """Patient ID, name and birth date of a series: shown only with --show-identifiers."""
    pid, name, born = (info.patient_key.split("|") + ["", "", ""])[:3]
    return {"patient_id": pid, "patient_name": name, "patient_birth_date": born}


def _study_list(scan: Any, identifiers: bool) -> list[dict[str, Any]]:
    folders = scan.study_folders()
    out = []
    for uid, members in scan.by_study().items():
        row: dict[str, Any] = {"study_uid": uid, "n_series": len(members), "folder": folders[uid]}
        if identifiers:
            row.update(_identity(members[0]))
        out.append(row)
    return out


def run_classify(args: argparse.Namespace) -> int:
    scan = _scan(args)
    rows = [s.summary() for s in scan.series]
    skipped = [{"path": s.path, "reason": s.reason} for s in scan.skipped]
    if not rows:
        reasons = sorted({s.reason for s in scan.skipped})
        raise LiverMetsError(f"{args.dicom_dir} holds no MR image series ({len(scan.skipped)} files skipped: "
                             f"{'; '.join(reasons[:3])})")
    layouts = _layouts(scan, getattr(args, "layout", None))
    if args.json:
        out = {"folder": str(args.dicom_dir), "studies": scan.study_uids,
               "study_list": _study_list(scan, args.show_identifiers), "series": rows, "skipped": skipped}
        if layouts:
            out["layouts"] = [{"study_uid": uid, **plan.to_dict()} for uid, plan in layouts]
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    studies = scan.by_study()
    folders = scan.study_folders()
    for uid, members in studies.items():
        if len(studies) > 1:
            print(f"study {uid} ({len(members)} series, in {folders[uid]}); load it with --study {uid}")
            if args.show_identifiers:
                print("  " + ", ".join(f"{k}: {v or '-'}" for k, v in _identity(members[0]).items()))
        print(_table([s.summary() for s in members]))
        if len(studies) > 1:
            print()
    for uid, plan in layouts:
        print(f"\nhanging protocol for study {uid} (ids are series numbers, [k] = stack k):")
        print(plan.text())
    if skipped:
        print(f"\nskipped {len(skipped)} of {scan.n_files} files:")
        for s in skipped[:50]:
            print(f"  {s['path']}: {s['reason']}")
        if len(skipped) > 50:
            print(f"  ... and {len(skipped) - 50} more (see --json)")
    return 0


def run_load(args: argparse.Namespace) -> int:
    from ..io.atomic import write_json_atomic
    from ..io.study_folder import read_study_index, write_study_folder
    from ..study.load import load_study, resample_to_reference
    from ..study.sources import write_dicom_sources
    from .skipped import record as record_skipped

    scan = _scan(args)
    if not scan.series:
        raise LiverMetsError(f"{args.dicom_dir} holds no MR image series; run 'livermets classify' to see why")
    infos = scan.one_study(args.study, "choose one with --study UID (as listed here or by 'livermets classify')")
    series = load_study(infos, dwi_trace=not args.keep_directions)
    if args.resample_to:
        refs = [s for s in series if s.role == args.resample_to]
        if not refs:
            raise LiverMetsError(f"--resample-to {args.resample_to}: no series has that role; roles loaded: "
                                 f"{', '.join(s.role for s in series)}")
        reference = refs[0].image
        series = [s if s is refs[0] else resample_to_reference(s, reference) for s in series]
    extra = {
        "source_folder": str(args.dicom_dir),
        "classification": [s.summary() for s in infos],
        "skipped": [{"path": s.path, "reason": s.reason} for s in scan.skipped],
    }
    index = write_study_folder(series, args.output, extra=extra, file_meta=record_skipped(extra["skipped"]))
    write_dicom_sources(index.parent, infos, series, read_study_index(index)[1])
    dwi = [s for s in series if s.role == "dwi"]
    if dwi:
        write_json_atomic(index.parent / "dwi_bvalues.json",
                          {"b_values_s_mm2": dwi[0].b_values, "stack_meta": dwi[0].stack_meta})
    if args.json:
        json.dump({"command": "load", "folder": str(args.dicom_dir), "index": str(index),
                   "series": [{"role": s.role, "stacks": len(s.stacks), "description": s.meta.get("description", ""),
                               "series_uid": s.meta.get("series_uid")} for s in series],
                   "skipped": extra["skipped"]}, sys.stdout, indent=2)
        print()
        return 0
    for s in series:
        print(f"{s.role}: {len(s.stacks)} volume(s) from {s.meta.get('description', '')!r}")
    if extra["skipped"]:
        print(f"skipped {len(extra['skipped'])} file(s) (listed in roles.json; 'livermets classify' shows why)")
    print(f"wrote {index}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("classify", help="list the series of a DICOM folder with their roles and why",
                              description="Read the headers of every file under DICOM_DIR and give each series a "
                                          "role (t2, dwi, t1_arterial, ...), a confidence and the reason.")
    p.add_argument("dicom_dir", help="folder with the study's DICOM files (searched recursively; .gz files too)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.add_argument("--roles", help=ROLES_HELP)
    p.add_argument("--show-identifiers", action="store_true",
                   help="also show each study's patient name, ID and birth date (hidden by default)")
    p.add_argument("--layout", metavar="PROTOCOL",
                   help="also show which series a hanging protocol puts in each view (dynamic, diffusion, "
                        "chemical_shift, overview, lesion_review, subtraction)")
    p.set_defaults(func=run_classify)

    p = subparsers.add_parser("load", help="write the classified series as NRRD files plus roles.json",
                              description="Classify DICOM_DIR, then write every assigned series as NRRD named by "
                                          "role (DWI one file per b-value, dwi_bvalues.json), roles.json and "
                                          "dicom_sources.json (the UIDs and files each stack came from).")
    p.add_argument("dicom_dir")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--roles", help=ROLES_HELP)
    p.add_argument("--study", help="StudyInstanceUID to load when the folder holds several studies")
    p.add_argument("--resample-to", metavar="ROLE",
                   help="resample every series onto the grid of the series with this role (e.g. t1_hepatobiliary)")
    p.add_argument("--keep-directions", action="store_true",
                   help="write every diffusion direction instead of one trace image per b-value")
    p.add_argument("--json", action="store_true", help="print a JSON summary (files written, skipped inputs)")
    p.set_defaults(func=run_load)
