"""``livermets pdff``: multi-echo PDFF (percent) and R2* (1/s) maps; file I/O and argument parsing only.

Inputs: one magnitude image per echo with ``--echo-times`` (or files carrying ``echo_time_ms`` metadata), or one
NRRD study folder (the folder or its ``roles.json``, also as ``--study``) whose ``multi_echo_gre`` series gives the
echoes, echo times and field strength. Every output path is checked before anything is computed (the same check as
the other map commands). Outputs carry units, method, echo times and the fat model's source as key/value metadata.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LiverMetsError, MissingDataError
from .skipped import attach as attach_skipped
from .skipped import from_images as skipped_from_images
from .skipped import from_study_folder as skipped_from_study

if TYPE_CHECKING:  # heavy modules are imported inside the commands: `livermets --help` stays fast
    import SimpleITK as sitk


def _from_study_folder(folder: Path) -> tuple[list[sitk.Image], list[float], float | None, str, list[str]]:
    """Echoes, echo times, field strength, a description and the files of the study folder's multi_echo_gre
    series (the folder or its roles.json)."""
    from .map_io import study_index, study_series

    if study_index(folder) is None:
        raise LiverMetsError(f"{folder} is a folder without roles.json; give echo image files or a study folder")
    s, files = study_series(folder, "multi_echo_gre", "give echo image files instead")
    tes = s.echo_times_ms or [float(t) for t in s.meta.get("echo_times_ms", [])]
    fs = s.meta.get("field_strength_t")
    return list(s.stacks), tes, (float(fs) if fs is not None else None), f"study folder {folder}", files


def _number(meta: dict[str, Any], key: str) -> float | None:
    try:
        return float(meta[key]) if key in meta else None
    except (TypeError, ValueError):
        return None


def _with_phase(magnitudes: list[sitk.Image], phase_paths: list[str], phase_range: list[float] | None
                ) -> list[sitk.Image]:
    """Complex echoes from magnitude and phase images; phase in radians, or raw values mapped from ``phase_range``."""
    import numpy as np
    import SimpleITK as sitk

    from ..io.images import read_image

    if len(phase_paths) != len(magnitudes):
        raise LiverMetsError(f"{len(magnitudes)} echo images but {len(phase_paths)} phase images: give one phase "
                             "image per echo, in the same order")
    out = []
    for mag, path in zip(magnitudes, phase_paths, strict=True):
        ph = read_image(path)
        if ph.GetSize() != mag.GetSize():
            raise LiverMetsError(f"the phase image {path} has size {ph.GetSize()} but its magnitude has "
                                 f"{mag.GetSize()}; give the phase of the same echo and grid")
        v = sitk.GetArrayFromImage(ph).astype(np.float64)
        if phase_range:
            lo, hi = phase_range
            if not hi > lo:
                raise LiverMetsError(f"--phase-range {lo:g} {hi:g}: the second value must be larger")
            v = (v - lo) / (hi - lo) * 2.0 * np.pi - np.pi
        elif v.size and np.max(np.abs(v)) > np.pi + 1e-3:
            raise LiverMetsError(f"the phase image {path} holds values up to {np.max(np.abs(v)):g}, not radians; "
                                 "give --phase-range with the raw values that stand for -pi and +pi "
                                 "(e.g. -4096 4096)")
        m = sitk.GetArrayFromImage(mag).astype(np.float64)
        z = m * np.exp(1j * v)
        re, im = sitk.GetImageFromArray(z.real), sitk.GetImageFromArray(z.imag)
        re.CopyInformation(mag)
        im.CopyInformation(mag)
        out.append(sitk.RealAndImaginaryToComplex(re, im))
    return out


def _cmd_pdff(args: argparse.Namespace) -> int:
    from ..io.images import get_metadata, read_image, write_image
    from ..maps.pdff import PDFF_UNITS, R2STAR_UNITS, fit_pdff
    from .map_io import check_outputs, study_index

    inputs = [str(p) for p in args.echoes]
    if args.study and inputs:
        raise LiverMetsError("give either echo image files (or one study folder) or --study, not both")
    if not (args.study or inputs):
        raise LiverMetsError("give one magnitude image per echo, or a study folder (or --study STUDY)")
    outs = [args.output, args.r2star, args.water, args.fat, args.quality, args.flags, args.field_map]
    check_outputs(outs, inputs + [str(p) for p in args.phase or []])    # before anything is read or computed
    field = args.field_strength
    study = args.study or (inputs[0] if len(inputs) == 1 and (Path(inputs[0]).is_dir()
                                                               or study_index(inputs[0]) is not None) else None)
    if study:
        echoes, tes, fs, source, inputs = _from_study_folder(Path(study))
        check_outputs(outs, inputs + [str(p) for p in args.phase or []])
        field = field if field is not None else fs
    else:
        echoes = [read_image(p) for p in inputs]
        metas = [get_metadata(img) for img in echoes]
        tes = [_number(m, "echo_time_ms") for m in metas]
        source = f"{len(inputs)} echo image files"
        if field is None:
            fss = {_number(m, "field_strength_t") for m in metas} - {None}
            field = fss.pop() if len(fss) == 1 else None
    if args.echo_times:
        tes = [float(t) for t in args.echo_times]
    elif not tes or any(t is None for t in tes):
        raise LiverMetsError("give --echo-times with one echo time (ms) per echo image, in the same order")
    if field is None:
        raise MissingDataError("the field strength is unknown; give --field-strength in tesla (e.g. 1.5 or 3)")
    method = "magnitude"
    if args.phase:
        echoes = _with_phase(echoes, [str(p) for p in args.phase], args.phase_range)
        method = "complex"
        inputs = inputs + [str(p) for p in args.phase]
    elif args.field_map:
        raise LiverMetsError("--field-map needs --phase images (the field map comes from the complex fit)")
    mask = read_image(args.mask) if args.mask else None
    fat_model = None
    if args.fat_model:
        try:
            fat_model = json.loads(Path(args.fat_model).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise LiverMetsError(f"the fat model {args.fat_model} is not a readable JSON file ({exc})") from exc
    skipped = skipped_from_study(study) if study else skipped_from_images(echoes)
    res = fit_pdff(echoes, tes, field_strength_t=field, fat_model=fat_model, mask=mask, method=method,
                   noise_floor=args.noise_floor, noise_sigma=args.noise_sigma)
    res.metadata = attach_skipped(res.metadata, skipped)
    outputs = {"pdff": str(write_image(res.pdff, args.output, res.metadata["pdff"], compress=args.compress))}
    for name, path in (("r2star", args.r2star), ("water", args.water), ("fat", args.fat),
                       ("quality", args.quality), ("flags", args.flags), ("field_map", args.field_map)):
        if path:
            outputs[name] = str(write_image(getattr(res, name), path, res.metadata[name], compress=args.compress))
    s = res.summary
    payload = {"command": "pdff", "outputs": outputs, "units": s["units"], "method": s["method"],
               "inputs": {"source": source, "files": inputs, "echo_times_ms": s["echo_times_ms"],
                          "field_strength_t": s["field_strength_t"]},
               "masked_voxels": s["masked_voxels"], "ambiguous_voxels": s["ambiguous_voxels"],
               "warnings": s["warnings"], "skipped": skipped, "summary": s}
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(f"PDFF ({PDFF_UNITS}) -> {args.output}" + (f", R2* ({R2STAR_UNITS}) -> {args.r2star}"
                                                         if args.r2star else ""))
        print(f"{len(s['echo_times_ms'])} echoes at {s['field_strength_t']:g} T; fitted {s['voxels_fitted']} "
              f"voxels, masked {s['masked_voxels']}, fat-water ambiguous {s['ambiguous_voxels']}")
        for w in s["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pdff`` to the ``livermets`` parser."""
    from .map_io import add_compress_option

    p = subparsers.add_parser(
        "pdff", help="PDFF (percent, 0-100) and R2* (1/s) from a multi-echo gradient echo",
        description="Multi-echo magnitude fit with a multi-peak fat spectrum and one R2*; the fat-water ambiguity "
                    "of magnitude data is resolved by fitting from both sides of 50 %% and flagged where unsure.")
    p.add_argument("echoes", nargs="*", metavar="ECHO",
                   help="one magnitude image per echo, or one NRRD study folder (or its roles.json) with a "
                        "multi_echo_gre series")
    p.add_argument("--study", metavar="STUDY",
                   help="study folder written by 'livermets load'/'phantom' (or its roles.json): use its "
                        "multi_echo_gre series (echo times and field strength from its index)")
    p.add_argument("--echo-times", nargs="+", type=float, metavar="MS",
                   help="echo times (ms) in the order of the images (default: from the files' metadata)")
    p.add_argument("--field-strength", type=float, metavar="T", help="field strength in tesla (e.g. 1.5 or 3)")
    p.add_argument("-o", "--output", required=True, help="PDFF output image (percent)")
    p.add_argument("--r2star", metavar="PATH", help="R2* output image (1/s)")
    p.add_argument("--water", metavar="PATH", help="water signal output image")
    p.add_argument("--fat", metavar="PATH", help="fat signal output image")
    p.add_argument("--quality", metavar="PATH", help="fit-quality output image (RMS residual, percent of signal)")
    p.add_argument("--flags", metavar="PATH", help="flags output image (0 valid, 1 masked, 2 ambiguous, 3 R2* bound)")
    p.add_argument("--phase", nargs="+", metavar="PHASE",
                   help="one phase image per echo (same order): fit the complex signal, with a field map")
    p.add_argument("--phase-range", nargs=2, type=float, metavar=("LO", "HI"),
                   help="raw phase values that stand for -pi and +pi (default: the phase images are in radians)")
    p.add_argument("--field-map", metavar="PATH", help="field map output image (Hz; needs --phase)")
    p.add_argument("--mask", help="only fit voxels where this image is nonzero")
    p.add_argument("--noise-floor", type=float, help="mean echo signal below which a voxel is background")
    p.add_argument("--noise-sigma", type=float, help="noise sigma of the magnitudes (default: from the background)")
    p.add_argument("--fat-model", metavar="JSON",
                   help="JSON file with 'ppm' and 'amplitudes' (and 'source') to replace the default fat spectrum")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_compress_option(p)
    p.set_defaults(func=_cmd_pdff)
