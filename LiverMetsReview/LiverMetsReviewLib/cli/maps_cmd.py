"""``livermets adc | fat | enhancement | register``: file I/O and argument parsing around :mod:`..maps`
(``adc`` in :mod:`.adc_cmd`, what the commands share in :mod:`.map_io`).

Inputs are image files SimpleITK reads (NRRD, NIfTI, MHA...), for ``adc`` also one DICOM folder holding one DWI
series, or - for ``adc``, ``fat``, ``enhancement`` (and ``pdff``) - a study folder written by ``livermets load`` or
``livermets phantom`` (the folder or its ``roles.json``), from which the series are picked by role. Every output
path is checked (a format SimpleITK writes, not a folder, a folder that exists or can be created, not an input)
before anything is read or computed. Outputs are written in the format their extension names, with units, method
and inputs as key/value metadata. ``--json`` prints one JSON object on stdout: output paths, units, inputs used,
masked voxels, warnings.

SimpleITK, numpy and the maps are imported inside the command functions: ``livermets`` builds every command's
parser at start-up, and ``livermets classify --help`` should not pay for them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import LiverMetsError
from .adc_cmd import add_parser as add_adc_parser
from .map_io import add_compress_option, check_outputs, emit, examples, read, skipped_of, study_series
from .skipped import attach as attach_skipped
from .skipped import record as record_skipped

if TYPE_CHECKING:  # annotations only: the imports happen inside the commands
    import SimpleITK as sitk


# ---------------------------------------------------------------- fat
def _echo_time(img: sitk.Image) -> float | None:
    from ..io.images import get_metadata

    v = get_metadata(img).get("echo_time_ms")
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _series_echo_time(series: Any) -> float | None:
    return _number(series.stack_meta[0].get("echo_time_ms", series.meta.get("echo_time_ms")))


def _fat_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Which pair to use: images, file paths, kind ('chemical_shift' or 'dixon'), and for chemical shift the echo
    times and field strength known from the study index (None when the inputs are files)."""
    cs = args.in_phase or args.opposed_phase
    dx = args.water or args.fat
    if args.study:
        if cs or dx:
            raise LiverMetsError("give either --study or the image options (--in-phase/--opposed-phase, "
                                 "--water/--fat), not both")
        if args.dixon:
            w, wf = study_series(args.study, "dixon_water", "give --water and --fat image files instead")
            f, ff = study_series(args.study, "dixon_fat", "give --water and --fat image files instead")
            return {"kind": "dixon", "images": (w.image, f.image), "files": wf + ff, "study": args.study}
        ip, ipf = study_series(args.study, "t1_in_phase", "add --dixon to use the Dixon water and fat series, or "
                                                          "give --in-phase and --opposed-phase image files")
        op, opf = study_series(args.study, "t1_opposed_phase", "give --in-phase and --opposed-phase image files")
        tes = (_series_echo_time(ip), _series_echo_time(op))
        return {"kind": "chemical_shift", "images": (ip.image, op.image), "files": ipf + opf, "study": args.study,
                "echo_times": tes if None not in tes else None, "field": _number(ip.meta.get("field_strength_t"))}
    if args.dixon:
        raise LiverMetsError("--dixon picks the Dixon series of --study STUDY; with image files give --water and --fat")
    if cs and dx:
        raise LiverMetsError("give either --in-phase/--opposed-phase or --water/--fat, not both")
    if cs:
        if not (args.in_phase and args.opposed_phase):
            raise LiverMetsError("chemical-shift fat needs both --in-phase and --opposed-phase")
        return {"kind": "chemical_shift", "files": [args.in_phase, args.opposed_phase], "study": None}
    if not (args.water and args.fat):
        raise LiverMetsError("give --in-phase and --opposed-phase, --water and --fat, or --study STUDY [--dixon]")
    return {"kind": "dixon", "files": [args.water, args.fat], "study": None}


def _cmd_fat(args: argparse.Namespace) -> int:
    from ..io.images import get_metadata, write_image
    from ..maps.fat import chemical_shift_fat, dixon_fat

    if args.sii and (args.dixon or args.water or args.fat):
        raise LiverMetsError("--sii needs in-phase/opposed-phase input; Dixon gives a fat fraction only")
    outs = [args.output, args.sii, args.flags]
    check_outputs(outs, [p for p in (args.in_phase, args.opposed_phase, args.water, args.fat) if p])
    pick = _fat_inputs(args)
    inputs = pick["files"]
    check_outputs(outs, inputs)
    images = pick.get("images") or tuple(read(p) for p in inputs)
    skipped = skipped_of(pick["study"], images)
    mask = read(args.mask) if args.mask else None
    outputs: dict[str, str] = {}
    if pick["kind"] == "chemical_shift":
        ip, op = images
        tes = tuple(args.echo_times) if args.echo_times else pick.get("echo_times")
        if tes is None and _echo_time(ip) is not None and _echo_time(op) is not None:
            tes = (_echo_time(ip), _echo_time(op))
        field = args.field_strength if args.field_strength is not None else pick.get("field")
        if field is None:
            field = _number(get_metadata(ip).get("field_strength_t"))
        res = chemical_shift_fat(ip, op, field_strength_t=field, echo_times_ms=tes,
                                 allow_any_echo_times=args.allow_any_echo_times, mask=mask,
                                 noise_floor=args.noise_floor,   # only the images that are written:
                                 maps=[name for name, path in (("flags", args.flags), ("sii", args.sii)) if path])
        res.metadata = attach_skipped(res.metadata, skipped)
        if args.sii:
            outputs["sii"] = str(write_image(res.sii, args.sii, res.metadata["sii"], compress=args.compress))
        used = {"study": pick["study"], "files": inputs, "field_strength_t": field,
                "echo_times_ms": {"in_phase": tes[0], "opposed_phase": tes[1]} if tes else None}
    else:
        ref = read(args.reference_mask) if args.reference_mask else None
        res = dixon_fat(images[0], images[1], reference_mask=ref, reference_kind=args.reference_kind,
                        mask=mask, noise_floor=args.noise_floor, maps=["flags"] if args.flags else [])
        used = {"study": pick["study"], "files": inputs, "reference_mask": args.reference_mask}
        res.metadata = attach_skipped(res.metadata, skipped)
    outputs["ff"] = str(write_image(res.ff, args.output, res.metadata["ff"], compress=args.compress))
    if args.flags:
        outputs["flags"] = str(write_image(res.flags, args.flags, res.metadata["flags"], compress=args.compress))
    s = res.summary
    payload = {"command": "fat", "outputs": outputs, "units": s["units"], "method": s["map"], "inputs": used,
               "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "skipped": skipped, "summary": s}
    return emit(args, payload, [f"fat fraction (percent, {s['map']}) -> {args.output}",
                                 f"masked {s['masked_voxels']} voxels"])


# ---------------------------------------------------------------- enhancement
def _role_warnings(pre: sitk.Image, post: sitk.Image, phase: str | None) -> tuple[list[str], str | None]:
    """Warnings when the files' role metadata (written by 'livermets load' / 'phantom') says they are not a T1
    pre-contrast and a T1 post-contrast dynamic phase, and the phase to record (given, else the post's role)."""
    from ..io.images import get_metadata
    from ..roles import DYNAMIC_ROLES, role_label

    warnings: list[str] = []
    pre_role, post_role = get_metadata(pre).get("role"), get_metadata(post).get("role")
    if isinstance(pre_role, str) and pre_role != "t1_pre":
        warnings.append(f"the pre-contrast input is a {role_label(pre_role)} image (role {pre_role}), not the T1 "
                        "pre-contrast of the dynamic series: its enhancement is not comparable")
    if isinstance(post_role, str) and post_role not in DYNAMIC_ROLES[1:]:
        warnings.append(f"the post-contrast input is a {role_label(post_role)} image (role {post_role}), not a T1 "
                        "post-contrast dynamic phase: its enhancement is not comparable")
    elif isinstance(post_role, str) and phase and phase != post_role:
        warnings.append(f"--phase {phase} was given but the post-contrast input is the {role_label(post_role)} "
                        f"(role {post_role})")
    if phase is None and isinstance(post_role, str) and post_role in DYNAMIC_ROLES[1:]:
        phase = post_role
    return warnings, phase


def _cmd_enhancement(args: argparse.Namespace) -> int:
    from ..io.images import write_image
    from ..maps.enhancement import liver_function, relative_enhancement
    from ..roles import DYNAMIC_ROLES

    if args.labels and (args.liver_label is None or args.spleen_label is None):
        raise LiverMetsError("--labels needs --liver-label and --spleen-label")
    outs = [args.output, args.subtraction]
    check_outputs(outs, [p for p in (args.pre, args.post) if p])
    phase = args.phase
    if args.study:
        if args.pre or args.post:
            raise LiverMetsError("give either --study or --pre and --post, not both")
        if phase not in DYNAMIC_ROLES[1:]:
            raise LiverMetsError(f"with --study, give --phase as one of {', '.join(DYNAMIC_ROLES[1:])} "
                                 f"(got {phase}): the post-contrast series is picked by that role")
        pre_s, pre_files = study_series(args.study, "t1_pre", "give --pre and --post image files instead")
        post_s, post_files = study_series(args.study, phase, "choose another --phase, or give --pre and --post")
        inputs = pre_files + post_files
        check_outputs(outs, inputs)
        pre, post = pre_s.image, post_s.image
    else:
        if not (args.pre and args.post):
            raise LiverMetsError("give --pre and --post image files, or --study STUDY --phase PHASE")
        inputs = [args.pre, args.post]
        pre, post = read(args.pre), read(args.post)
    role_warnings, phase = _role_warnings(pre, post, phase)
    mask = read(args.mask) if args.mask else None
    res = relative_enhancement(pre, post, mask=mask, noise_floor=args.noise_floor, phase=phase,
                               maps=["subtraction"] if args.subtraction else [])   # only the images written
    s = res.summary
    s["warnings"] = role_warnings + s["warnings"]
    skipped = skipped_of(args.study, (pre, post))
    meta_re, meta_sub = (dict(m, **record_skipped(skipped)) for m in (res.metadata["re"], res.metadata["subtraction"]))
    if role_warnings:
        for meta in (meta_re, meta_sub):
            meta["warnings"] = list(s["warnings"])
    outputs = {"re": str(write_image(res.re, args.output, meta_re, compress=args.compress))}
    if args.subtraction:
        outputs["subtraction"] = str(write_image(res.subtraction, args.subtraction, meta_sub, compress=args.compress))
    payload: dict[str, Any] = {"command": "enhancement", "outputs": outputs, "units": s["units"],
                               "inputs": {"study": args.study, "pre": inputs[0], "post": inputs[1], "phase": phase},
                               "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "skipped": skipped,
                               "summary": s}
    lines = [f"relative enhancement (percent) -> {args.output}", f"masked {s['masked_voxels']} voxels"]
    if args.labels:
        lf = liver_function(pre, post, read(args.labels), args.liver_label, args.spleen_label)
        payload["liver_function"] = lf
        lines.append(f"liver RE {lf['liver_relative_enhancement_percent']:.1f} %, "
                     f"liver-to-spleen ratio {lf['liver_to_spleen_ratio_hbp']:.2f}")
    return emit(args, payload, lines)


# ---------------------------------------------------------------- register
def _cmd_register(args: argparse.Namespace) -> int:
    import SimpleITK as sitk

    from ..io.images import write_image
    from ..maps.registration import register

    inputs = [args.fixed, args.moving]
    check_outputs([args.output], inputs, transforms=[args.transform])
    mask = read(args.fixed_mask) if args.fixed_mask else None
    fixed, moving = read(args.fixed), read(args.moving)
    res = register(fixed, moving, affine=args.affine, fixed_mask=mask)
    skipped = skipped_of(None, (fixed, moving))
    outputs = {"resampled": str(write_image(res.resampled, args.output, {**res.metadata, **record_skipped(skipped)},
                                            compress=args.compress))}
    if args.transform:
        from ..io.atomic import atomic_path

        with atomic_path(args.transform) as tmp:
            sitk.WriteTransform(res.transform, str(tmp))
        outputs["transform"] = str(args.transform)
    s = res.summary
    payload = {"command": "register", "outputs": outputs, "units": {"metric": "Mattes MI (lower is better)",
                                                                    "ncc": "1", "translation": "mm"},
               "inputs": {"fixed": args.fixed, "moving": args.moving, "transform_type": s["transform_type"]},
               "masked_voxels": 0, "warnings": s["warnings"], "skipped": skipped, "summary": s}
    return emit(args, payload, [
        f"{s['transform_type']} registration -> {args.output}",
        f"metric {s['metric_before']:.4f} -> {s['metric_after']:.4f}; "
        f"NCC {s['ncc_before']:.3f} -> {s['ncc_after']:.3f}",
    ])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the map commands to the ``livermets`` parser."""
    add_adc_parser(subparsers)
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "fat", help="fat fraction (percent) from in/opposed phase or Dixon water/fat",
        description="Signal fat fraction and SII from IP/OP, or Dixon F/(W+F) with a swap check.", formatter_class=raw,
        epilog=examples("livermets fat --in-phase ip.nrrd --opposed-phase op.nrrd --field-strength 1.5 -o ff.nrrd",
                        "livermets fat --water w.nrrd --fat f.nrrd -o ff.nrrd",
                        "livermets fat --study STUDY_DIR -o ff.nrrd          (t1_in_phase and t1_opposed_phase)",
                        "livermets fat --study STUDY_DIR --dixon -o ff.nrrd  (dixon_water and dixon_fat)"))
    p.add_argument("--study", metavar="STUDY",
                   help="study folder written by 'livermets load'/'phantom' (or its roles.json): use its in-phase "
                        "and opposed-phase series (echo times and field strength from its index), or with --dixon "
                        "its Dixon water and fat")
    p.add_argument("--dixon", action="store_true", help="with --study: use the Dixon water and fat series")
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
    add_compress_option(p)
    p.set_defaults(func=_cmd_fat)

    p = subparsers.add_parser(
        "enhancement", help="relative enhancement (percent) and subtraction",
        description="RE = (post - pre)/pre x 100 and post - pre on the pre-contrast grid. Files whose role "
                    "metadata says they are not T1 pre-contrast / a T1 post-contrast phase get a warning.",
        formatter_class=raw,
        epilog=examples("livermets enhancement --pre pre.nrrd --post hbp.nrrd --phase t1_hepatobiliary -o re.nrrd",
                        "livermets enhancement --study STUDY_DIR --phase t1_hepatobiliary -o re.nrrd  "
                        "(t1_pre against that phase)"))
    p.add_argument("--study", metavar="STUDY",
                   help="study folder written by 'livermets load'/'phantom' (or its roles.json): its t1_pre series "
                        "against the series of --phase")
    p.add_argument("--pre", help="pre-contrast image")
    p.add_argument("--post", help="post-contrast image (any dynamic phase)")
    p.add_argument("-o", "--output", required=True, help="relative-enhancement output image (percent)")
    p.add_argument("--subtraction", help="subtraction (post - pre) output image")
    p.add_argument("--phase", metavar="PHASE",
                   help="post-contrast phase: t1_arterial, t1_portal_venous, t1_transitional or t1_hepatobiliary; "
                        "picks the series with --study, else recorded in the outputs (default: the post file's role)")
    p.add_argument("--mask", help="only compute where this image is nonzero")
    p.add_argument("--noise-floor", type=float, help="pre-contrast signal below which RE is masked")
    p.add_argument("--labels", help="label map for HBP liver function (with --liver-label, --spleen-label)")
    p.add_argument("--liver-label", type=int, help="liver label value in --labels")
    p.add_argument("--spleen-label", type=int, help="spleen label value in --labels")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_compress_option(p)
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
    add_compress_option(p)
    p.set_defaults(func=_cmd_register)
