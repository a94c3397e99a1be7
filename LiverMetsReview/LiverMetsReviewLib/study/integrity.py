"""Tell a truncated or damaged DICOM file from a compressed one, so the advice fits the problem.

A file cut short on disk (an interrupted copy, a full disk, a broken transfer) cannot be fixed by
decompressing it: it has to be copied again. A compressed file that this installation cannot decode is
complete and needs a decoder (or ``gdcmconv --raw``). Both used to get the decompression advice.
"""

from __future__ import annotations

import os
from typing import Any

from .bvalues import numbers

# Transfer syntaxes whose pixel data is stored as plain samples (size known from the header).
NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": "implicit VR little endian",
    "1.2.840.10008.1.2.1": "explicit VR little endian",
    "1.2.840.10008.1.2.2": "explicit VR big endian",
}
RECOPY = "copy it again from the scanner or PACS, or remove it and load the remaining files"


def _int(ds: Any, keyword: str, default: int) -> int:
    vals = numbers(ds.get(keyword)) if keyword in ds else []
    return int(vals[0]) if vals and vals[0] > 0 else default


def transfer_syntax(ds: Any) -> str:
    """The file's TransferSyntaxUID as text ('' when the file has no file meta)."""
    meta = getattr(ds, "file_meta", None)
    value = meta.get("TransferSyntaxUID", "") if meta is not None else ""
    return str(value or "").strip("\x00 ")


def expected_pixel_bytes(ds: Any) -> int | None:
    """Bytes of native pixel data the header promises (None when the syntax is compressed or unknown)."""
    if transfer_syntax(ds) not in NATIVE_SYNTAXES and transfer_syntax(ds) != "":
        return None
    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if not rows or not cols:
        return None
    bits = _int(ds, "BitsAllocated", 16)
    frames = _int(ds, "NumberOfFrames", 1)
    samples = _int(ds, "SamplesPerPixel", 1)
    return rows * cols * frames * samples * ((bits + 7) // 8)


def truncation_reason(ds: Any, path: str) -> str | None:
    """Why a native (uncompressed) file is too short for the image its header describes; None when it is not.

    Checked from the file size alone (no pixel read), so a scan can skip the file with the reason. Gzipped
    files are checked when their pixels are read.
    """
    need = expected_pixel_bytes(ds)
    if need is None:
        return None
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return None
        size = os.path.getsize(path)
    except OSError:
        return None
    if size < need:
        return (f"is truncated: the file has {size} bytes but its image alone needs {need} "
                f"({_int(ds, 'Rows', 0)} x {_int(ds, 'Columns', 0)} pixels); {RECOPY}")
    return None


def undecodable_pixels(path: str, ds: Any | None, exc: BaseException) -> str:
    """One sentence for pixel data that could not be read: truncated/damaged, or compressed without a decoder."""
    if ds is None:
        return (f"{path} is truncated or damaged: it could not be read to the end "
                f"({type(exc).__name__}: {str(exc)[:80]}); {RECOPY}")
    syntax = transfer_syntax(ds)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return f"{path} is truncated: it ends before its pixel data; {RECOPY}"
    need = expected_pixel_bytes(ds)
    if need is not None:
        got = len(ds.PixelData or b"")
        if got < need:
            return f"{path} is truncated: its pixel data has {got} of the {need} bytes the header describes; {RECOPY}"
        return (f"{path} is damaged: its pixel data does not match its header (rows, columns, bits) "
                f"({type(exc).__name__}); {RECOPY}")
    kind = _syntax_kind(syntax)
    if kind == "compressed":
        return (f"{path} is compressed (transfer syntax {syntax}) and neither pydicom's decoders nor GDCM could "
                "decode it here; it may also be damaged. Decompress the series (e.g. 'gdcmconv --raw IN OUT', or "
                "install pylibjpeg/python-gdcm) and try again; if that fails too, copy the file again")
    if kind == "other":
        return (f"{path} uses transfer syntax {syntax}, which cannot be decoded here; convert the series to explicit "
                "VR little endian (e.g. 'gdcmconv --raw IN OUT') and try again")
    return (f"{path} has a transfer syntax '{syntax or 'missing'}' that is not a DICOM transfer syntax, so its "
            f"pixel data cannot be interpreted; {RECOPY}")


def _syntax_kind(syntax: str) -> str:
    """'compressed', 'other' (a real transfer syntax, e.g. deflated) or 'unknown'."""
    from pydicom.uid import UID

    try:
        uid = UID(syntax)
        if not uid.is_transfer_syntax:
            return "unknown"
        return "compressed" if uid.is_compressed else "other"
    except (ValueError, AttributeError):
        return "unknown"
