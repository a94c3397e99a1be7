"""What every map command shares: output checks before any work, reading inputs, study folders, and the answer.

Every output path is checked (a format SimpleITK writes, not a folder, a folder that exists or can be created, not
an input) before anything is read or computed. A study folder written by ``livermets load`` or ``livermets
phantom`` (the folder or its ``roles.json``) gives its series by role. ``--json`` prints one JSON object on stdout:
output paths, units, inputs used, masked voxels, warnings; otherwise a few lines, warnings on stderr.
Used by the ``adc``, ``fat``, ``enhancement``, ``register`` and ``pdff`` commands; SimpleITK is imported inside.
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

if TYPE_CHECKING:  # annotations only: the imports happen inside the functions
    import SimpleITK as sitk


def emit(args: argparse.Namespace, payload: dict[str, Any], lines: list[str]) -> int:
    """The command's answer: ``payload`` as JSON with ``--json``, else ``lines`` and the warnings on stderr."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        for line in lines:
            print(line)
        for w in payload.get("warnings", []):
            print(f"warning: {w}", file=sys.stderr)
    return 0


def read(path: str) -> sitk.Image:
    """One input image; a missing or unreadable file is one clear sentence (:func:`..io.images.read_image`)."""
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


def skipped_of(study: str | None, images: Sequence[Any]) -> list[dict[str, str]]:
    """Files left out of the inputs: a study folder's record, else what the input images carry."""
    from . import skipped

    return skipped.from_study_folder(study) if study else skipped.from_images(images)


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
