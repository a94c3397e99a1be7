"""Reading and writing single images (NRRD, NIfTI, MHA…) with their key/value metadata.

Metadata is written as NRRD/MHA key/value pairs so that units, method and inputs travel with the
pixels and show up in Slicer's volume information.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from ..errors import LiverMetsError
from .atomic import atomic_path

META_PREFIX = "LiverMetsReview."
# zlib's fastest level: on a 256x256x40 float32 map it keeps most of the default level's size saving (-32 % against
# -43 %) in less than half its time (0.09 s against 0.20 s), which a whole ``livermets`` process per study feels.
COMPRESSION_LEVEL = 1


def read_image(path: str | Path) -> sitk.Image:
    """Read one image file; a missing or unreadable file gets one clear sentence."""
    path = Path(path)
    if not path.exists():
        raise LiverMetsError(f"{path} does not exist")
    if path.is_dir():
        raise LiverMetsError(f"{path} is a folder; give an image file (NRRD, NIfTI, MHA) or use a DICOM command")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise LiverMetsError(f"{path} could not be read as an image ({_last_line(exc)})") from exc


def set_metadata(image: sitk.Image, meta: Mapping[str, Any]) -> sitk.Image:
    """Attach ``meta`` as ``LiverMetsReview.<key>`` entries (non-strings JSON-encoded)."""
    for key, value in meta.items():
        text = value if isinstance(value, str) else json.dumps(value)
        image.SetMetaData(META_PREFIX + key, text)
    return image


def get_metadata(image: sitk.Image) -> dict[str, Any]:
    """Inverse of :func:`set_metadata` (values JSON-decoded where they were encoded)."""
    out: dict[str, Any] = {}
    for key in image.GetMetaDataKeys():
        if key.startswith(META_PREFIX):
            text = image.GetMetaData(key)
            try:
                out[key[len(META_PREFIX):]] = json.loads(text)
            except json.JSONDecodeError:
                out[key[len(META_PREFIX):]] = text
    return out


def write_image(image: sitk.Image, path: str | Path, meta: Mapping[str, Any] | None = None,
                compress: bool = True) -> Path:
    """Write ``image`` (metadata attached first), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise LiverMetsError(f"{path} is a folder; give an output file name such as {path / 'out.nrrd'}")
    if meta:
        image = sitk.Image(image)
        set_metadata(image, meta)
    try:
        with atomic_path(path) as tmp:
            sitk.WriteImage(image, str(tmp), useCompression=compress, compressionLevel=COMPRESSION_LEVEL)
    except RuntimeError as exc:
        raise LiverMetsError(
            f"{path} could not be written ({_last_line(exc)}); use a format SimpleITK writes, e.g. .nrrd, .nii.gz, .mha"
        ) from exc
    return path


def _last_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1].strip() if text else "unknown reason"
