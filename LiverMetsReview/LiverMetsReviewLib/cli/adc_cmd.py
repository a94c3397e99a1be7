"""``livermets adc``: ADC, S0, fit quality and computed DWI from one image per b-value, a DICOM DWI folder or a
study folder's dwi series, around :func:`..maps.adc.fit_adc`.

The maps are imported inside the command: building the parser costs nothing (``livermets classify --help``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LiverMetsError
from .map_io import add_compress_option, check_outputs, emit, examples, read, skipped_of, study_index, study_series
from .skipped import attach as attach_skipped

if TYPE_CHECKING:  # annotations only: the imports happen inside the command
    import SimpleITK as sitk


def _load_dicom_dwi(folder: Path) -> tuple[list[sitk.Image], list[float], list[bool], list[str], list[dict]]:
    """Stacks, b-values, trace flags, a note and the skipped files of the one DWI series in a DICOM folder."""
    try:
        from ..study.load import load_dwi  # optional stage, loaded only for DICOM input
    except ImportError as exc:
        raise LiverMetsError(
            f"{folder} is a folder: DICOM input needs the study loader, which is not part of this installation; "
            "give one image file per b-value with --bvalues"
        ) from exc
    series = load_dwi(folder)
    b_values, trace = [], []
    for meta in series.stack_meta:
        if "b_value" not in meta:
            raise LiverMetsError(f"a DWI stack in {folder} has no b-value in its headers; convert it and use --bvalues")
        b_values.append(float(meta["b_value"]))
        trace.append(bool(meta.get("is_trace", False)))
    skipped = list(series.meta.pop("skipped_files", []))
    return list(series.stacks), b_values, trace, [f"DICOM folder {folder} ({len(series.stacks)} stacks)"], skipped


def _adc_from_study(path: str) -> tuple[list[sitk.Image], list[float], list[bool], list[str], list[str]]:
    """Stacks, b-values, trace flags, files and a note of a study folder's DWI series."""
    series, files = study_series(path, "dwi", "give one image file per b-value with --bvalues, or a DICOM folder")
    b_values = []
    for f, meta in zip(files, series.stack_meta, strict=True):
        if "b_value" not in meta:
            raise LiverMetsError(f"{f} has no b-value in the study index; give the image files with --bvalues")
        b_values.append(float(meta["b_value"]))
    trace = [bool(m.get("is_trace", False)) for m in series.stack_meta]
    return list(series.stacks), b_values, trace, files, [f"study folder {path}: the dwi series ({len(files)} stacks)"]


def _images_from_files(args: argparse.Namespace, inputs: list[str]) -> tuple[list[sitk.Image], list[float],
                                                                              list[str], list[dict]]:
    """Images, b-values (given, else from the files' metadata), notes and skipped files of one image per b-value;
    directions sharing a b-value are combined with --trace, refused without it."""
    from ..io.images import get_metadata
    from ..maps.adc import combine_directions, repeated_b_values

    notes: list[str] = []
    images = [read(p) for p in inputs]
    skipped = skipped_of(None, images)
    if args.bvalues:
        b_values = [float(b) for b in args.bvalues]
    else:
        metas = [get_metadata(img) for img in images]
        if not all("b_value" in m for m in metas):
            raise LiverMetsError("give --bvalues with one b-value per input image (in the same order)")
        b_values = [float(m["b_value"]) for m in metas]
        notes.append("b-values read from the files' metadata")
    if len(b_values) != len(images):
        raise LiverMetsError(f"{len(images)} input images but {len(b_values)} b-values: give one per image")
    if args.trace:
        images, b_values, cnotes = combine_directions(images, b_values)
        notes += cnotes
    elif repeated := repeated_b_values(b_values):
        shown = ", ".join(f"{b:g}" for b in repeated)
        raise LiverMetsError(f"b-value {shown} s/mm^2 is given more than once, for several input images "
                             "(diffusion directions or repeats): add --trace to combine them into one trace image "
                             "per b-value, or leave the extra images out")
    return images, b_values, notes, skipped


def _adc_inputs(args: argparse.Namespace, computed_b: list[float], computed_out: list[str]) -> dict[str, Any]:
    """What to fit: images, b-values, input files, the study folder (or None), notes and skipped files; every output
    is checked against the inputs before anything is read."""
    from ..maps.adc import combine_directions

    inputs = [str(p) for p in args.inputs]
    if args.study and inputs:
        raise LiverMetsError("give either input images (or one folder) or --study, not both")
    if not args.study and not inputs:
        raise LiverMetsError("give one image per b-value, a DICOM folder, or a study folder (or --study STUDY)")
    study = args.study or (inputs[0] if len(inputs) == 1 and study_index(inputs[0]) is not None else None)
    if len(computed_b) != len(computed_out):
        raise LiverMetsError("give one --computed-out path per --computed-b value")
    outs = [args.output, args.s0, args.quality, args.mask_out, *computed_out]
    check_outputs(outs, inputs)        # before anything is read or computed
    if study:
        if args.bvalues:
            raise LiverMetsError("--bvalues is for image files; a study folder's b-values are read from its index")
        images, b_values, trace, inputs, notes = _adc_from_study(study)
        skipped = skipped_of(study, images)
        check_outputs(outs, inputs)    # now against the study's files too
    elif len(inputs) == 1 and Path(inputs[0]).is_dir():
        if args.bvalues:
            raise LiverMetsError("--bvalues is for image files; a DICOM folder's b-values are read from its headers")
        images, b_values, trace, notes, skipped = _load_dicom_dwi(Path(inputs[0]))
    else:                              # directions already combined (or refused) with --trace
        images, b_values, notes, skipped = _images_from_files(args, inputs)
        trace = None
    if trace is not None:              # a study's or DICOM folder's stacks: one image per b-value
        images, b_values, cnotes = combine_directions(images, b_values, is_trace=trace)
        notes = notes + cnotes
    return {"images": images, "b_values": b_values, "files": inputs, "study": study, "notes": notes,
            "skipped": skipped}


def _write_maps(args: argparse.Namespace, res: Any, computed: list[tuple[float, str]]) -> dict[str, str]:
    """Write the ADC and every other map asked for; output name -> path."""
    from ..io.images import write_image

    written = [("adc", res.adc, args.output, "adc"), ("s0", res.s0, args.s0, "s0"),
               ("quality", res.quality, args.quality, "quality"), ("mask", res.mask, args.mask_out, "mask")]
    written += [(f"computed_b{b:g}", res.computed[b], path, f"computed_b{b:g}") for b, path in computed]
    return {name: str(write_image(image, path, res.metadata[key], compress=args.compress))
            for name, image, path, key in written if path}


def _cmd_adc(args: argparse.Namespace) -> int:
    from ..maps.adc import ADC_UNITS, fit_adc

    computed_b = list(args.computed_b or [])
    computed_out = list(args.computed_out or [])
    got = _adc_inputs(args, computed_b, computed_out)
    notes = got["notes"]
    mask = read(args.mask) if args.mask else None
    res = fit_adc(got["images"], got["b_values"], method=args.method, exclude_below=args.exclude_below,
                  include=args.include, mask=mask, noise_floor=args.noise_floor, noise_sigma=args.noise_sigma,
                  computed_b=computed_b,
                  quality=bool(args.quality),   # the R^2 map only when it is written, and so S0 and mask
                  maps=[name for name, path in (("s0", args.s0), ("mask", args.mask_out)) if path])
    res.summary["notes"] = notes + res.summary["notes"]
    # directions resampled before the fit (combine_directions) are warnings too, like the fit's own resampling
    res.summary["warnings"] = [n for n in notes if "resampled onto the reference grid" in n] + res.summary["warnings"]
    res.metadata = attach_skipped(res.metadata, got["skipped"])
    outputs = _write_maps(args, res, [(float(b), path) for b, path in zip(computed_b, computed_out, strict=True)])
    s = res.summary
    payload = {
        "command": "adc", "outputs": outputs, "units": s["units"], "method": s["method"],
        "inputs": {"study": got["study"], "files": got["files"], "b_values": s["b_values_given"],
                   "b_values_used": s["b_values_used"], "b_values_excluded": s["b_values_excluded"]},
        "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "skipped": got["skipped"], "summary": s,
    }
    return emit(args, payload, [
        f"ADC ({ADC_UNITS}, {s['method']}, b = {', '.join(f'{b:g}' for b in s['b_values_used'])}) -> {args.output}",
        f"fitted {s['voxels_fitted']} voxels, masked {s['masked_voxels']}",
    ])


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``adc`` to the ``livermets`` parser."""
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "adc", help="ADC map (10^-6 mm^2/s) from DWI images, a DICOM DWI folder or a study folder",
        description="Mono-exponential ADC, S0, fit quality and computed DWI.", formatter_class=raw,
        epilog=examples("livermets adc b50.nrrd b400.nrrd b800.nrrd --bvalues 50 400 800 -o adc.nrrd",
                        "livermets adc DICOM_DWI_FOLDER -o adc.nrrd",
                        "livermets adc STUDY_DIR -o adc.nrrd            (its dwi series; same as --study STUDY_DIR)"))
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="one image per b-value (with --bvalues, or files carrying b_value metadata), one DICOM "
                        "folder holding one DWI series, or one study folder (or its roles.json)")
    p.add_argument("--study", metavar="STUDY",
                   help="study folder written by 'livermets load'/'phantom' (or its roles.json): use its dwi series")
    p.add_argument("-o", "--output", required=True, help="ADC output image")
    p.add_argument("--bvalues", nargs="+", type=float, metavar="B", help="b-values (s/mm^2), in the inputs' order")
    p.add_argument("--exclude-below", type=float, metavar="B", help="leave out b-values below B (e.g. 100)")
    p.add_argument("--include", nargs="+", type=float, metavar="B", help="use only these b-values")
    p.add_argument("--method", choices=("lls", "wls", "nlls"), default="lls",
                   help="lls: log-linear (default); wls: weighted log-linear; nlls: nonlinear, least biased at low SNR")
    p.add_argument("--trace", action="store_true",
                   help="several inputs share a b-value (diffusion directions): combine them by geometric mean")
    p.add_argument("--mask", help="only fit voxels where this image is nonzero")
    p.add_argument("--noise-floor", type=float,
                   help="lowest-b signal at or below which a voxel is background (replaces the statistical test)")
    p.add_argument("--noise-sigma", type=float,
                   help="Rician noise sigma for the background test and nlls (default: estimated from the background)")
    p.add_argument("--s0", help="S0 output image")
    p.add_argument("--quality", help="fit-quality (R^2) output image")
    p.add_argument("--mask-out", help="output image of fitted (1) / masked (0) voxels")
    p.add_argument("--computed-b", nargs="+", type=float, metavar="B", help="b-value(s) of computed DWI")
    p.add_argument("--computed-out", nargs="+", metavar="PATH", help="output image(s) for --computed-b, same order")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_compress_option(p)
    p.set_defaults(func=_cmd_adc)
