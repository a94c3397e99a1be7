"""A fast, read-only DICOM header reader for classic little-endian files.

Why: scanning a 3,000-file study with pydicom spends most of its time building every element of every
header. This walker jumps over the elements with ``struct`` and keeps only the tags the classifier uses
(plus the private groups that carry b-values), decoding them lazily. It answers the small part of the
pydicom ``Dataset`` interface the study code uses (``in``, ``get``, ``[]``, attribute access by
keyword). Anything unusual - no 'DICM' preamble, big-endian or deflated transfer syntax, enhanced
multi-frame objects, sequences the classifier needs - returns ``None`` and the caller uses pydicom.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UT", "UC", "UR"}
_SINGLE_TEXT = {"LT", "ST", "UT"}
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_NUMERIC = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_EXPLICIT_LE = {"1.2.840.10008.1.2.1"}
_IMPLICIT_LE = "1.2.840.10008.1.2"
_ENHANCED = {"1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.4"}
# private elements read by bvalues.py / load.py (group -> element low bytes), under any block 0x10-0x1F
_PRIVATE_LOWS = {0x0019: (0x0C, 0x0D, 0x0E, 0xBB, 0xBC, 0xBD), 0x0029: (0x10,), 0x0043: (0x39,),
                 0x0065: (0x09, 0x37), 0x2001: (0x03, 0x04), 0x2005: (0x0E, 0xB0, 0xB1, 0xB2)}
_PRIVATE_KEEP = frozenset(
    [(g << 16) | (block << 8) | low for g, lows in _PRIVATE_LOWS.items() for block in range(0x10, 0x20)
     for low in lows] + [(g << 16) | block for g in _PRIVATE_LOWS for block in range(0x10, 0x100)])
_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "ProtocolName", "Modality", "Manufacturer", "ManufacturerModelName", "MagneticFieldStrength", "ImagingFrequency",
    "ImageType", "EchoTime", "RepetitionTime", "FlipAngle", "ScanningSequence", "SequenceVariant", "SequenceName",
    "PulseSequenceName", "MRAcquisitionType", "ContrastBolusAgent", "ContrastBolusStartTime", "AcquisitionDate",
    "AcquisitionTime", "ContentDate", "ContentTime", "SeriesDate", "SeriesTime", "StudyDate", "AcquisitionDateTime",
    "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows",
    "Columns", "NumberOfFrames", "ImageComments", "PatientID", "TemporalPositionIdentifier", "DiffusionBValue",
    "DiffusionDirectionality", "DiffusionGradientOrientation", "RescaleSlope", "RescaleIntercept", "BitsAllocated",
    "SamplesPerPixel", "PatientName", "PatientBirthDate",
)
_WANTED = {tag_for_keyword(k) for k in _KEYWORDS}
# sequences that carry what the classifier needs: when present, let pydicom read the file
_NEEDS_PYDICOM = {tag_for_keyword(k) for k in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
                                               "MRDiffusionSequence", "DiffusionGradientDirectionSequence")}
_PIXEL_DATA = 0x7FE00010


class _Unsupported(Exception):
    pass


class Element:
    """A decoded element: ``.tag``, ``.VR``, ``.value`` (as pydicom's, close enough for reading)."""

    __slots__ = ("tag", "VR", "value")

    def __init__(self, tag: int, vr: str, value: Any) -> None:
        self.tag, self.VR, self.value = tag, vr, value


_TAG_OF: dict[str, int | None] = {}


@cache
def _keyword_tag(keyword: str) -> int | None:
    return tag_for_keyword(keyword)


@cache
def _implicit_vr(tag: int) -> str:
    group, elem = tag >> 16, tag & 0xFFFF
    if group % 2:
        return "LO" if 0x0010 <= elem <= 0x00FF else "UN"
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr.split(" or ")[0] if vr else "UN"


def _decode(vr: str, raw: bytes) -> Any:
    if vr in _STRING_VRS:
        text = raw.decode("latin-1").rstrip("\x00 ")
        if vr in _SINGLE_TEXT or "\\" not in text:
            return text.strip()
        return [p.strip() for p in text.split("\\")]
    fmt = _NUMERIC.get(vr)
    if fmt:
        size = struct.calcsize(fmt)
        n = len(raw) // size
        if n == 0:
            return None
        vals = struct.unpack(f"<{n}{fmt}", raw[:n * size])
        return vals[0] if n == 1 else list(vals)
    return raw


class FastHeader:
    """The kept elements of one file; a read-only stand-in for ``pydicom.Dataset``."""

    def __init__(self, raw: dict[int, tuple[str, bytes]], file_meta: FastHeader | None = None) -> None:
        self._raw = raw
        self._cache: dict[int, Element] = {}
        self.file_meta = file_meta

    @staticmethod
    def _tag(key: Any) -> int | None:
        if type(key) is int:
            return key
        if isinstance(key, str):
            tag = _TAG_OF.get(key)
            if tag is None:
                tag = _TAG_OF[key] = _keyword_tag(key)
            return tag
        if isinstance(key, tuple):
            return (key[0] << 16) | key[1]
        return int(key)

    def __contains__(self, key: Any) -> bool:
        return (key if type(key) is int else self._tag(key)) in self._raw

    def _element(self, tag: int | None) -> Element | None:
        elem = self._cache.get(tag)
        if elem is None:
            item = self._raw.get(tag)
            if item is None:
                return None
            elem = self._cache[tag] = Element(tag, item[0], _decode(item[0], item[1]))
        return elem

    def __getitem__(self, key: Any) -> Element:
        elem = self._element(key if type(key) is int else self._tag(key))
        if elem is None:
            raise KeyError(key)
        return elem

    def get(self, key: Any, default: Any = None) -> Any:
        elem = self._element(key if type(key) is int else self._tag(key))
        return default if elem is None else elem.value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not name[:1].isupper():
            raise AttributeError(name)
        if name in self:
            return self[name].value
        raise AttributeError(name)


_LONG_VR_BYTES = {vr.encode() for vr in _LONG_VRS}
_STOP_AFTER = max(max(_WANTED), 0x2005FFFF)  # nothing the classifier reads lies beyond this tag


def _walk(buf: bytes, pos: int, end: int, implicit: bool, keep: frozenset[int] | None,
          stop_at_pixels: bool = True) -> tuple[dict[int, tuple[str, bytes]], int]:
    """Elements from ``pos`` to ``end`` (or to an item delimiter); returns the kept ones and the end position.

    ``keep`` is the set of tags to keep (None keeps all); the loop is the hot path of a folder scan.
    """
    unpack = struct.unpack_from
    long_vrs = _LONG_VR_BYTES
    needs = _NEEDS_PYDICOM
    stop = _STOP_AFTER if stop_at_pixels else 0xFFFFFFFF
    out: dict[int, tuple[str, bytes]] = {}
    end8 = end - 8
    while pos <= end8:
        if implicit:
            group, elem, length = unpack("<HHI", buf, pos)
            vr_b = None
            start = pos + 8
        else:
            group, elem, vr_b, length = unpack("<HH2sH", buf, pos)
            if vr_b in long_vrs:
                (length,) = unpack("<I", buf, pos + 8)
                start = pos + 12
            else:
                start = pos + 8
        if group == 0xFFFE:  # item / delimiters inside undefined-length content
            return out, pos
        tag = (group << 16) | elem
        if tag > stop:
            return out, pos
        if tag in needs:
            raise _Unsupported("needs sequence parsing")
        if length == 0xFFFFFFFF:
            if not implicit and vr_b not in (b"SQ", b"UN"):
                raise _Unsupported("undefined length outside a sequence")
            pos = _skip_undefined(buf, start, end, implicit)
            continue
        pos = start + length
        if pos > end:
            raise _Unsupported("truncated element")
        if keep is None or tag in keep:
            vr = _implicit_vr(tag) if vr_b is None else vr_b.decode("latin-1")
            if vr != "SQ":
                out[tag] = (vr, buf[start:pos])
    return out, pos


def _skip_undefined(buf: bytes, pos: int, end: int, implicit: bool) -> int:
    """Position after an undefined-length sequence (items walked, nested sequences included)."""
    unpack = struct.unpack_from
    while pos + 8 <= end:
        group, elem, length = unpack("<HHI", buf, pos)
        pos += 8
        if group != 0xFFFE:
            raise _Unsupported("bad sequence item")
        if elem == 0xE0DD:  # sequence delimitation
            return pos
        if elem != 0xE000:
            raise _Unsupported("unexpected delimiter")
        if length != 0xFFFFFFFF:
            pos += length
            continue
        # undefined-length item: walk its elements until the item delimiter
        _, pos = _walk(buf, pos, end, implicit, frozenset(), stop_at_pixels=False)
        if pos + 8 > end or unpack("<HH", buf, pos) != (0xFFFE, 0xE00D):
            raise _Unsupported("unterminated item")
        pos += 8
    raise _Unsupported("unterminated sequence")


_KEEP = frozenset(_WANTED) | _PRIVATE_KEEP


def read_fast_header(data: bytes) -> FastHeader | None:
    """Header of a classic little-endian Part-10 file, or None when pydicom should read it."""
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    try:
        pos = 132  # the file meta group (always explicit VR little endian) ends where group 0002 ends
        while pos + 8 <= len(data) and struct.unpack_from("<H", data, pos)[0] == 0x0002:
            vr = data[pos + 4:pos + 6].decode("latin-1")
            if vr in _LONG_VRS:
                pos += 12 + struct.unpack_from("<I", data, pos + 8)[0]
            else:
                pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
        meta, _ = _walk(data, 132, pos, False, None)
        file_meta = FastHeader(meta)
        syntax = str(file_meta.get("TransferSyntaxUID", "")).strip("\x00 ")
        sop_class = str(file_meta.get("MediaStorageSOPClassUID", "")).strip("\x00 ")
        if sop_class in _ENHANCED:
            return None
        if syntax == _IMPLICIT_LE:
            implicit = True
        elif syntax in _EXPLICIT_LE or (syntax.startswith("1.2.840.10008.1.2.4") or syntax == "1.2.840.10008.1.2.5"):
            implicit = False  # encapsulated pixel data: the data set itself is explicit VR little endian
        else:
            return None
        raw, _ = _walk(data, pos, len(data), implicit, _KEEP)
    except (_Unsupported, struct.error, UnicodeDecodeError):
        return None
    header = FastHeader(raw, file_meta)
    if header.get("NumberOfFrames") not in (None, "", "1", 1):
        return None
    return header
