"""``livermets adc | fat | enhancement | register``: file I/O and argument parsing around :mod:`..maps`.

Inputs are image files SimpleITK reads (NRRD, NIfTI, MHA...) or, for ``adc``, one DICOM folder holding one DWI
series. Outputs are written in the format their extension names, with units, method and inputs as key/value
metadata. ``--json`` prints one JSON object on stdout: output paths, units, inputs used, masked voxels, warnings.

SimpleITK, numpy and the maps are imported inside the command functions: ``livermets`` builds every command's
parser at start-up, and ``livermets classify --help`` should not pay for them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LiverMetsError

if TYPE_CHECKING:  # annotations only: the imports happen inside the commands
    import SimpleITK as sitk


def _emit(args: argparse.Namespace, payload: dict[str, Any], lines: list[str]) -> int:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        for line in lines:
            print(line)
        for w in payload.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr)
    return 0


def _read(path: str) -> sitk.Image:
    from ..io.images import read_image

    return read_image(path)


def _check_out(path: str | None, inputs: list[str]) -> None:
    """Refuse to overwrite an input with an output."""
    if path and any(Path(path).resolve() == Path(p).resolve() for p in inputs):
        raise LiverMetsError(f"output {path} is also an input; choose another output path")


# ---------------------------------------------------------------- adc
def _load_dicom_dwi(folder: Path) -> tuple[list[sitk.Image], list[float], list[bool], list[str]]:
    """Stacks, b-values and trace flags of the one DWI series in a DICOM folder (via the study loader)."""
    try:
        from ..study.load import load_dwi  # optional stage, loaded only for DICOM input
    except ImportError as exc:
        raise LiverMetsError(
            f"{folder} is a folder: DICOM input needs the study loader (LiverMetsReviewLib.study.load.load_dwi), "
            "which is not available in this installation; give one image file per b-value with --bvalues"
        ) from exc
    series = load_dwi(folder)
    b_values, trace = [], []
    for meta in series.stack_meta:
        if "b_value" not in meta:
            raise LiverMetsError(f"a DWI stack in {folder} has no b-value in its headers; convert it and use --bvalues")
        b_values.append(float(meta["b_value"]))
        trace.append(bool(meta.get("is_trace", False)))
    return list(series.stacks), b_values, trace, [f"DICOM folder {folder} ({len(series.stacks)} stacks)"]


def _cmd_adc(args: argparse.Namespace) -> int:
    from ..io.images import get_metadata, write_image
    from ..maps.adc import ADC_UNITS, combine_directions, fit_adc

    inputs = [str(p) for p in args.inputs]
    notes: list[str] = []
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        if args.bvalues:
            raise LiverMetsError("--bvalues is for image files; a DICOM folder's b-values are read from its headers")
        images, b_values, trace, notes = _load_dicom_dwi(Path(inputs[0]))
        images, b_values, cnotes = combine_directions(images, b_values, is_trace=trace)
        notes += cnotes
    else:
        images = [_read(p) for p in inputs]
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
    computed_b = list(args.computed_b or [])
    computed_out = list(args.computed_out or [])
    if len(computed_b) != len(computed_out):
        raise LiverMetsError("give one --computed-out path per --computed-b value")
    for p in [args.output, args.s0, args.quality, args.mask_out, *computed_out]:
        _check_out(p, inputs)
    mask = _read(args.mask) if args.mask else None
    res = fit_adc(images, b_values, method=args.method, exclude_below=args.exclude_below, include=args.include,
                  mask=mask, noise_floor=args.noise_floor, noise_sigma=args.noise_sigma, computed_b=computed_b)
    res.summary["notes"] = notes + res.summary["notes"]
    outputs = {"adc": str(write_image(res.adc, args.output, res.metadata["adc"]))}
    if args.s0:
        outputs["s0"] = str(write_image(res.s0, args.s0, res.metadata["s0"]))
    if args.quality:
        outputs["quality"] = str(write_image(res.quality, args.quality, res.metadata["quality"]))
    if args.mask_out:
        outputs["mask"] = str(write_image(res.mask, args.mask_out, res.metadata["mask"]))
    for b, path in zip(computed_b, computed_out, strict=True):
        key = f"computed_b{float(b):g}"
        outputs[key] = str(write_image(res.computed[float(b)], path, res.metadata[key]))
    s = res.summary
    payload = {
        "command": "adc", "outputs": outputs, "units": s["units"], "method": s["method"],
        "inputs": {"files": inputs, "b_values": s["b_values_given"], "b_values_used": s["b_values_used"],
                   "b_values_excluded": s["b_values_excluded"]},
        "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "summary": s,
    }
    return _emit(args, payload, [
        f"ADC ({ADC_UNITS}, {s['method']}, b = {', '.join(f'{b:g}' for b in s['b_values_used'])}) -> {args.output}",
        f"fitted {s['voxels_fitted']} voxels, masked {s['masked_voxels']}",
    ])


# ---------------------------------------------------------------- fat
def _echo_time(img: sitk.Image) -> float | None:
    from ..io.images import get_metadata

    v = get_metadata(img).get("echo_time_ms")
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _cmd_fat(args: argparse.Namespace) -> int:
    from ..io.images import get_metadata, write_image
    from ..maps.fat import chemical_shift_fat, dixon_fat

    cs = args.in_phase or args.opposed_phase
    dx = args.water or args.fat
    if cs and dx:
        raise LiverMetsError("give either --in-phase/--opposed-phase or --water/--fat, not both")
    mask = _read(args.mask) if args.mask else None
    outputs: dict[str, str] = {}
    if cs:
        if not (args.in_phase and args.opposed_phase):
            raise LiverMetsError("chemical-shift fat needs both --in-phase and --opposed-phase")
        inputs = [args.in_phase, args.opposed_phase]
        for p in (args.output, args.sii, args.flags):
            _check_out(p, inputs)
        ip, op = _read(args.in_phase), _read(args.opposed_phase)
        tes = tuple(args.echo_times) if args.echo_times else None
        if tes is None and _echo_time(ip) is not None and _echo_time(op) is not None:
            tes = (_echo_time(ip), _echo_time(op))
        field = args.field_strength
        if field is None:
            fs = get_metadata(ip).get("field_strength_t")
            field = float(fs) if isinstance(fs, (int, float)) else None
        res = chemical_shift_fat(ip, op, field_strength_t=field, echo_times_ms=tes,
                                 allow_any_echo_times=args.allow_any_echo_times, mask=mask,
                                 noise_floor=args.noise_floor)
        if args.sii:
            outputs["sii"] = str(write_image(res.sii, args.sii, res.metadata["sii"]))
        used = {"files": inputs, "field_strength_t": field,
                "echo_times_ms": {"in_phase": tes[0], "opposed_phase": tes[1]} if tes else None}
    else:
        if not (args.water and args.fat):
            raise LiverMetsError("Dixon fat needs both --water and --fat")
        inputs = [args.water, args.fat]
        for p in (args.output, args.flags):
            _check_out(p, inputs)
        ref = _read(args.reference_mask) if args.reference_mask else None
        res = dixon_fat(_read(args.water), _read(args.fat), reference_mask=ref, reference_kind=args.reference_kind,
                        mask=mask, noise_floor=args.noise_floor)
        used = {"files": inputs, "reference_mask": args.reference_mask}
        if args.sii:
            raise LiverMetsError("--sii needs in-phase/opposed-phase input; Dixon gives a fat fraction only")
    outputs["ff"] = str(write_image(res.ff, args.output, res.metadata["ff"]))
    if args.flags:
        outputs["flags"] = str(write_image(res.flags, args.flags, res.metadata["flags"]))
    s = res.summary
    payload = {"command": "fat", "outputs": outputs, "units": s["units"], "method": s["map"], "inputs": used,
               "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "summary": s}
    return _emit(args, payload, [f"fat fraction (percent, {s['map']}) -> {args.output}",
                                 f"masked {s['masked_voxels']} voxels"])


# ---------------------------------------------------------------- enhancement
def _cmd_enhancement(args: argparse.Namespace) -> int:
    from ..io.images import write_image
    from ..maps.enhancement import liver_function, relative_enhancement

    inputs = [args.pre, args.post]
    for p in (args.output, args.subtraction):
        _check_out(p, inputs)
    pre, post = _read(args.pre), _read(args.post)
    mask = _read(args.mask) if args.mask else None
    res = relative_enhancement(pre, post, mask=mask, noise_floor=args.noise_floor, phase=args.phase)
    outputs = {"re": str(write_image(res.re, args.output, res.metadata["re"]))}
    if args.subtraction:
        outputs["subtraction"] = str(write_image(res.subtraction, args.subtraction, res.metadata["subtraction"]))
    s = res.summary
    payload: dict[str, Any] = {"command": "enhancement", "outputs": outputs, "units": s["units"],
                               "inputs": {"pre": args.pre, "post": args.post, "phase": args.phase},
                               "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "summary": s}
    lines = [f"relative enhancement (percent) -> {args.output}", f"masked {s['masked_voxels']} voxels"]
    if args.labels:
        if args.liver_label is None or args.spleen_label is None:
            raise LiverMetsError("--labels needs --liver-label and --spleen-label")
        lf = liver_function(pre, post, _read(args.labels), args.liver_label, args.spleen_label)
        payload["liver_function"] = lf
        lines.append(f"liver RE {lf['liver_relative_enhancement_percent']:.1f} %, "
                     f"liver-to-spleen ratio {lf['liver_to_spleen_ratio_hbp']:.2f}")
    return _emit(args, payload, lines)


# ---------------------------------------------------------------- register
def _cmd_register(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from ..io.images import write_image
    from ..maps.registration import register

    inputs = [args.fixed, args.moving]
    for p in (args.output, args.transform):
        _check_out(p, inputs)
    mask = _read(args.fixed_mask) if args.fixed_mask else None
    res = register(_read(args.fixed), _read(args.moving), affine=args.affine, fixed_mask=mask)
    outputs = {"resampled": str(write_image(res.resampled, args.output, res.metadata))}
    if args.transform:
        Path(args.transform).parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteTransform(res.transform, str(args.transform))
        outputs["transform"] = str(args.transform)
    s = res.summary
    payload = {"command": "register", "outputs": outputs, "units": {"metric": "Mattes MI (lower is better)",
                                                                    "ncc": "1", "translation": "mm"},
               "inputs": {"fixed": args.fixed, "moving": args.moving, "transform_type": s["transform_type"]},
               "masked_voxels": 0, "warnings": s["warnings"], "summary": s}
    return _emit(args, payload, [
        f"{s['transform_type']} registration -> {args.output}",
        f"metric {s['metric_before']:.4f} -> {s['metric_after']:.4f}; "
        f"NCC {s['ncc_before']:.3f} -> {s['ncc_after']:.3f}",
    ])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the map commands to the ``livermets`` parser."""
    p = subparsers.add_parser("adc", help="ADC map (10^-6 mm^2/s) from DWI images or a DICOM DWI folder",
                              description="Mono-exponential ADC, S0, fit quality and computed DWI.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="one image per b-value (with --bvalues, or files carrying b_value metadata), "
                        "or one DICOM folder holding one DWI series")
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
    p.set_defaults(func=_cmd_adc)

    p = subparsers.add_parser("fat", help="fat fraction (percent) from in/opposed phase or Dixon water/fat",
                              description="Signal fat fraction and SII from IP/OP, or Dixon F/(W+F) with a swap check.")
    p.add_argument("--in-phase", help="in-phase magnitude image")
    p.add_argument("--opposed-phase", help="opposed-phase magnitude image")
    p.add_argument("--water", help="Dixon water image")
    p.add_argument("--fat", help="Dixon fat image")
    p.add_argument("-o", "--output", required=True, help="fat-fraction output image (percent)")
    p.add_argument("--sii", help="signal-intensity-index output image (percent; IP/OP only)")
    p.add_argument("--flags", help="flags output image (0 valid, 1 background, 2 invalid, 3 ambiguous)")
    p.add_argument("--field-strength", type=float, metavar="T", help="field strength in tesla, for the echo check")
    p.add_argument("--echo-times", nargs=2, type=float, metavar=("TE_IP", "TE_OP"),
                   help="echo times (ms) of the in-phase and opposed-phase images (default: from file metadata)")
    p.add_argument("--allow-any-echo-times", action="store_true",
                   help="compute even when the echoes are not an in/opposed-phase pair (a warning is kept)")
    p.add_argument("--reference-mask", help="Dixon: mask of a reference tissue for the swap check")
    p.add_argument("--reference-kind", choices=("water", "fat"), default="water",
                   help="Dixon: the reference tissue is water-dominant (liver, spleen, muscle) or fat")
    p.add_argument("--mask", help="only compute where this image is nonzero")
    p.add_argument("--noise-floor", type=float, help="signal below which a voxel is background")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_cmd_fat)

    p = subparsers.add_parser("enhancement", help="relative enhancement (percent) and subtraction",
                              description="RE = (post - pre)/pre x 100 and post - pre on the pre-contrast grid.")
    p.add_argument("--pre", required=True, help="pre-contrast image")
    p.add_argument("--post", required=True, help="post-contrast image (any dynamic phase)")
    p.add_argument("-o", "--output", required=True, help="relative-enhancement output image (percent)")
    p.add_argument("--subtraction", help="subtraction (post - pre) output image")
    p.add_argument("--phase", help="name of the post-contrast phase, recorded in the outputs")
    p.add_argument("--mask", help="only compute where this image is nonzero")
    p.add_argument("--noise-floor", type=float, help="pre-contrast signal below which RE is masked")
    p.add_argument("--labels", help="label map for HBP liver function (with --liver-label, --spleen-label)")
    p.add_argument("--liver-label", type=int, help="liver label value in --labels")
    p.add_argument("--spleen-label", type=int, help="spleen label value in --labels")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_cmd_enhancement)

    p = subparsers.add_parser("register", help="align a moving series to a reference (rigid or affine)",
                              description="Mattes mutual information, multi-resolution; resample onto the fixed grid.")
    p.add_argument("--fixed", required=True, help="reference image")
    p.add_argument("--moving", required=True, help="image to align")
    p.add_argument("-o", "--output", required=True, help="moving image resampled on the fixed grid")
    p.add_argument("--transform", help="transform output (.tfm / .txt / .h5)")
    p.add_argument("--affine", action="store_true", help="affine (12 parameters) instead of rigid")
    p.add_argument("--fixed-mask", help="restrict the metric to this region of the fixed image")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_cmd_register)
