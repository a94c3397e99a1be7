"""``livermets adc | fat | enhancement | register``: file I/O and argument parsing around :mod:`..maps`.

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
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LiverMetsError, MissingDataError
from .skipped import attach as attach_skipped
from .skipped import record as record_skipped

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


def _format_of(path: Path) -> str:
    """The extension that names the file format: '.nrrd', or two parts for compressed ones ('.nii.gz')."""
    suffixes = [x.lower() for x in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in (".gz", ".bz2", ".zip"):
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


_FORMAT_REASON: dict[tuple[str, str], str | None] = {}


def _unwritable_format(ext: str, kind: str) -> str | None:
    """Why SimpleITK cannot write a 3-D float image (``kind`` 'image') or a transform in format ``ext``; None if
    it can. Decided by writing a tiny probe to a temporary folder: exactly what this installation supports."""
    key = (ext, kind)
    if key not in _FORMAT_REASON:
        import tempfile

        import SimpleITK as sitk

        with tempfile.TemporaryDirectory() as tmp:
            target = str(Path(tmp) / f"probe{ext}")
            try:
                if kind == "image":
                    sitk.WriteImage(sitk.Image([2, 2, 2], sitk.sitkFloat32), target)
                else:
                    sitk.WriteTransform(sitk.Euler3DTransform(), target)
                _FORMAT_REASON[key] = None
            except RuntimeError as exc:
                text = str(exc).strip().replace(target, f"*{ext}")   # the reason, without the probe's path
                _FORMAT_REASON[key] = text.splitlines()[-1].strip() if text else "not supported"
    return _FORMAT_REASON[key]


def _folder_problem(path: Path) -> str | None:
    """Why ``path``'s folder cannot hold a new file (None when it exists or can be created and is writable)."""
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, so the folder {folder} cannot be created"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the folder {existing} is not writable"
    return None


def add_compress_option(parser: argparse.ArgumentParser) -> None:
    """``--compress``: zlib (level 1) for the output images. Off by default: on float maps it only shrinks the
    masked background (about 30 % of a body volume's file) and makes writing several times slower, which a process
    per study feels (a 256x256x40 float32 map: ~0.06 s against ~0.01 s)."""
    parser.add_argument("--compress", action="store_true",
                        help="write compressed images (smaller files where much of the map is masked; slower)")


def check_outputs(outputs: Sequence[str | Path | None], inputs: Sequence[str | Path],
                  transforms: Sequence[str | Path | None] = ()) -> None:
    """Refuse, before anything is read or computed, every output path that could not be written: a format
    SimpleITK does not write (images: a 3-D float map; ``transforms``: a transform), an existing folder, a folder
    that cannot be created, an input, or the same path twice. Shared by the map commands and ``pdff``."""
    seen: dict[Path, str] = {}
    ins = {Path(p).absolute().resolve() for p in inputs}
    for kind, paths in (("image", outputs), ("transform", transforms)):
        for raw in paths:
            if not raw:
                continue
            path = Path(raw).absolute()
            real = path.resolve()
            if real in ins:
                raise LiverMetsError(f"output {raw} is also an input; choose another output path")
            if real in seen:
                raise LiverMetsError(f"{raw} is given for two outputs ({seen[real]} and this one); "
                                     "give each output its own path")
            seen[real] = str(raw)
            if path.is_dir():
                raise LiverMetsError(f"output {raw} is a folder; give a file name such as {path / 'out.nrrd'}")
            ext = _format_of(path)
            examples = ".nrrd, .nii.gz or .mha" if kind == "image" else ".tfm, .txt or .h5"
            if not ext:
                raise LiverMetsError(f"output {raw} has no file extension; end it with {examples}")
            why = _unwritable_format(ext, kind)
            if why is not None:
                raise LiverMetsError(f"output {raw}: SimpleITK cannot write this {kind} as '{ext}' ({why}); "
                                     f"use {examples}")
            problem = _folder_problem(path)
            if problem:
                raise LiverMetsError(f"output {raw} cannot be written: {problem}; choose another output path")


# ---------------------------------------------------------------- study folders
def study_index(path: str | Path) -> Path | None:
    """The ``roles.json`` of a study folder given as the folder or as the index file; None when it is neither."""
    p = Path(path)
    if p.is_dir():
        return p / "roles.json" if (p / "roles.json").is_file() else None
    if p.is_file() and p.suffix.lower() == ".json":
        return p
    return None


def study_series(path: str | Path, role: str, why: str) -> tuple[Any, list[str]]:
    """The one :class:`Series` with ``role`` in the study folder ``path`` (folder or ``roles.json``), and its files.

    Only that series' images are read (a study folder holds every series of the study). ``why`` ends the sentence
    when the role is missing (what to do instead). Two series with the role are refused: which one to use is the
    reader's choice, so give that series' files instead.
    """
    from ..io.study_folder import read_study_folder, read_study_index
    from ..roles import role_label

    index_path = study_index(path)
    if index_path is None:
        raise LiverMetsError(f"{path} is not a study folder (no roles.json in it); give a folder written by "
                             "'livermets load' or 'livermets phantom', or its roles.json")
    index_path, index = read_study_index(index_path)
    entries = [e for e in index["series"] if isinstance(e, dict)]
    chosen = [e for e in entries if e.get("role") == role]
    if not chosen:
        present = sorted({str(e.get("role")) for e in entries})
        raise MissingDataError(f"the study folder {index_path.parent} has no {role} series ({role_label(role)}); it "
                               f"holds {', '.join(present) or 'no series'}; {why}")
    if len(chosen) > 1:
        raise LiverMetsError(f"the study folder {index_path.parent} has {len(chosen)} {role} series; give the image "
                             "files of the one to use instead")
    (series,) = read_study_folder(index_path, roles=[role])
    return series, [str(index_path.parent / f) for f in chosen[0].get("files") or []]


# ---------------------------------------------------------------- adc
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


def _skipped_of(study: str | None, images: Sequence[Any]) -> list[dict[str, str]]:
    """Files left out of the inputs: a study folder's record, else what the input images carry."""
    from . import skipped

    return skipped.from_study_folder(study) if study else skipped.from_images(images)


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


def _cmd_adc(args: argparse.Namespace) -> int:
    from ..io.images import get_metadata, write_image
    from ..maps.adc import ADC_UNITS, combine_directions, fit_adc, repeated_b_values

    inputs = [str(p) for p in args.inputs]
    if args.study and inputs:
        raise LiverMetsError("give either input images (or one folder) or --study, not both")
    if not args.study and not inputs:
        raise LiverMetsError("give one image per b-value, a DICOM folder, or a study folder (or --study STUDY)")
    study = args.study or (inputs[0] if len(inputs) == 1 and study_index(inputs[0]) is not None else None)
    computed_b = list(args.computed_b or [])
    computed_out = list(args.computed_out or [])
    if len(computed_b) != len(computed_out):
        raise LiverMetsError("give one --computed-out path per --computed-b value")
    outs = [args.output, args.s0, args.quality, args.mask_out, *computed_out]
    check_outputs(outs, inputs)        # before anything is read or computed
    notes: list[str] = []
    if study:
        if args.bvalues:
            raise LiverMetsError("--bvalues is for image files; a study folder's b-values are read from its index")
        images, b_values, trace, inputs, notes = _adc_from_study(study)
        skipped = _skipped_of(study, images)
        check_outputs(outs, inputs)    # now against the study's files too
        images, b_values, cnotes = combine_directions(images, b_values, is_trace=trace)
        notes += cnotes
    elif len(inputs) == 1 and Path(inputs[0]).is_dir():
        if args.bvalues:
            raise LiverMetsError("--bvalues is for image files; a DICOM folder's b-values are read from its headers")
        images, b_values, trace, notes, skipped = _load_dicom_dwi(Path(inputs[0]))
        images, b_values, cnotes = combine_directions(images, b_values, is_trace=trace)
        notes += cnotes
    else:
        images = [_read(p) for p in inputs]
        skipped = _skipped_of(None, images)
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
        elif repeated_b_values(b_values):
            shown = ", ".join(f"{b:g}" for b in repeated_b_values(b_values))
            raise LiverMetsError(f"b-value {shown} s/mm^2 is given more than once, for several input images "
                                 "(diffusion directions or repeats): add --trace to combine them into one trace image "
                                 "per b-value, or leave the extra images out")
    mask = _read(args.mask) if args.mask else None
    res = fit_adc(images, b_values, method=args.method, exclude_below=args.exclude_below, include=args.include,
                  mask=mask, noise_floor=args.noise_floor, noise_sigma=args.noise_sigma, computed_b=computed_b,
                  quality=bool(args.quality),   # the R^2 map only when it is written, and so S0 and mask
                  maps=[name for name, path in (("s0", args.s0), ("mask", args.mask_out)) if path])
    res.summary["notes"] = notes + res.summary["notes"]
    # directions resampled before the fit (combine_directions) are warnings too, like the fit's own resampling
    res.summary["warnings"] = [n for n in notes if "resampled onto the reference grid" in n] + res.summary["warnings"]
    res.metadata = attach_skipped(res.metadata, skipped)
    outputs = {"adc": str(write_image(res.adc, args.output, res.metadata["adc"], compress=args.compress))}
    if args.s0:
        outputs["s0"] = str(write_image(res.s0, args.s0, res.metadata["s0"], compress=args.compress))
    if args.quality:
        outputs["quality"] = str(write_image(res.quality, args.quality, res.metadata["quality"],
                                             compress=args.compress))
    if args.mask_out:
        outputs["mask"] = str(write_image(res.mask, args.mask_out, res.metadata["mask"], compress=args.compress))
    for b, path in zip(computed_b, computed_out, strict=True):
        key = f"computed_b{float(b):g}"
        outputs[key] = str(write_image(res.computed[float(b)], path, res.metadata[key], compress=args.compress))
    s = res.summary
    payload = {
        "command": "adc", "outputs": outputs, "units": s["units"], "method": s["method"],
        "inputs": {"study": study, "files": inputs, "b_values": s["b_values_given"],
                   "b_values_used": s["b_values_used"], "b_values_excluded": s["b_values_excluded"]},
        "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "skipped": skipped, "summary": s,
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
    images = pick.get("images") or tuple(_read(p) for p in inputs)
    skipped = _skipped_of(pick["study"], images)
    mask = _read(args.mask) if args.mask else None
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
                                 noise_floor=args.noise_floor)
        res.metadata = attach_skipped(res.metadata, skipped)
        if args.sii:
            outputs["sii"] = str(write_image(res.sii, args.sii, res.metadata["sii"], compress=args.compress))
        used = {"study": pick["study"], "files": inputs, "field_strength_t": field,
                "echo_times_ms": {"in_phase": tes[0], "opposed_phase": tes[1]} if tes else None}
    else:
        ref = _read(args.reference_mask) if args.reference_mask else None
        res = dixon_fat(images[0], images[1], reference_mask=ref, reference_kind=args.reference_kind,
                        mask=mask, noise_floor=args.noise_floor)
        used = {"study": pick["study"], "files": inputs, "reference_mask": args.reference_mask}
        res.metadata = attach_skipped(res.metadata, skipped)
    outputs["ff"] = str(write_image(res.ff, args.output, res.metadata["ff"], compress=args.compress))
    if args.flags:
        outputs["flags"] = str(write_image(res.flags, args.flags, res.metadata["flags"], compress=args.compress))
    s = res.summary
    payload = {"command": "fat", "outputs": outputs, "units": s["units"], "method": s["map"], "inputs": used,
               "masked_voxels": s["masked_voxels"], "warnings": s["warnings"], "skipped": skipped, "summary": s}
    return _emit(args, payload, [f"fat fraction (percent, {s['map']}) -> {args.output}",
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
        pre, post = _read(args.pre), _read(args.post)
    role_warnings, phase = _role_warnings(pre, post, phase)
    mask = _read(args.mask) if args.mask else None
    res = relative_enhancement(pre, post, mask=mask, noise_floor=args.noise_floor, phase=phase)
    s = res.summary
    s["warnings"] = role_warnings + s["warnings"]
    skipped = _skipped_of(args.study, (pre, post))
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
    check_outputs([args.output], inputs, transforms=[args.transform])
    mask = _read(args.fixed_mask) if args.fixed_mask else None
    fixed, moving = _read(args.fixed), _read(args.moving)
    res = register(fixed, moving, affine=args.affine, fixed_mask=mask)
    skipped = _skipped_of(None, (fixed, moving))
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
    return _emit(args, payload, [
        f"{s['transform_type']} registration -> {args.output}",
        f"metric {s['metric_before']:.4f} -> {s['metric_after']:.4f}; "
        f"NCC {s['ncc_before']:.3f} -> {s['ncc_after']:.3f}",
    ])


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the map commands to the ``livermets`` parser."""
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "adc", help="ADC map (10^-6 mm^2/s) from DWI images, a DICOM DWI folder or a study folder",
        description="Mono-exponential ADC, S0, fit quality and computed DWI.", formatter_class=raw,
        epilog=_examples("livermets adc b50.nrrd b400.nrrd b800.nrrd --bvalues 50 400 800 -o adc.nrrd",
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

    p = subparsers.add_parser(
        "fat", help="fat fraction (percent) from in/opposed phase or Dixon water/fat",
        description="Signal fat fraction and SII from IP/OP, or Dixon F/(W+F) with a swap check.", formatter_class=raw,
        epilog=_examples("livermets fat --in-phase ip.nrrd --opposed-phase op.nrrd --field-strength 1.5 -o ff.nrrd",
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
        epilog=_examples("livermets enhancement --pre pre.nrrd --post hbp.nrrd --phase t1_hepatobiliary -o re.nrrd",
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
