"""Diffusion b-values and directions from DICOM headers, for every vendor we know.

Order of trust: the standard (0018,9087) DiffusionBValue (also inside the per-frame MR Diffusion
Sequence of enhanced files), then the vendor's private tag (Siemens (0019,xx0C) and the CSA header,
GE (0043,xx39) first value modulo 1e9, Philips (2001,xx03), UIH (0065,xx09)), then a "b=800" text in
ImageComments. Private tags are found through their private creator; anonymised files that lost the
creator fall back to block 0x10 when the Manufacturer matches. Values may arrive typed (IS/DS/FL/FD)
or as raw bytes (implicit VR or UN): both are decoded. Tiny b (< ``b_zero_tolerance``, e.g. Philips'
0.001-0.004) count as b = 0.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from ..resources import load_json
from .csa import csa_floats, parse_csa

# (group, element low byte, private creator, manufacturer prefix for the creator-less fallback)
_SIEMENS_B = (0x0019, 0x0C, "SIEMENS MR HEADER", "SIEMENS")
_SIEMENS_DIRECTIONALITY = (0x0019, 0x0D, "SIEMENS MR HEADER", "SIEMENS")
_SIEMENS_DIRECTION = (0x0019, 0x0E, "SIEMENS MR HEADER", "SIEMENS")
_SIEMENS_CSA_IMAGE = (0x0029, 0x10, "SIEMENS CSA HEADER", "SIEMENS")
_GE_B = (0x0043, 0x39, "GEMS_PARM_01", "GE")
_GE_DIRECTION = ((0x0019, 0xBB, "GEMS_ACQU_01", "GE"), (0x0019, 0xBC, "GEMS_ACQU_01", "GE"),
                 (0x0019, 0xBD, "GEMS_ACQU_01", "GE"))
_PHILIPS_B = (0x2001, 0x03, "Philips Imaging DD 001", "PHILIPS")
_PHILIPS_LABEL = (0x2001, 0x04, "Philips Imaging DD 001", "PHILIPS")
_PHILIPS_DIRECTION = ((0x2005, 0xB0, "Philips MR Imaging DD 001", "PHILIPS"),
                      (0x2005, 0xB1, "Philips MR Imaging DD 001", "PHILIPS"),
                      (0x2005, 0xB2, "Philips MR Imaging DD 001", "PHILIPS"))
# UIH: dcm2niix reads (0065,1009) b and (0065,1037) direction whenever the manufacturer is UIH ("*" = any creator)
_UIH_B = (0x0065, 0x09, "*", "UIH")
_UIH_DIRECTION = (0x0065, 0x37, "*", "UIH")
_B_TEXT = re.compile(r"\bb\s*[=:_]?\s*(\d{1,5}(?:\.\d+)?)\b", re.IGNORECASE)

GE_B_OFFSET = 1_000_000_000  # some GE software adds 1e9 to (0043,xx39)[0]


@dataclass
class Diffusion:
    """What the header says about diffusion weighting of one image (frame)."""

    b_value: float | None = None
    source: str | None = None  # e.g. "(0018,9087)", "GE (0043,1039)"
    direction: tuple[float, float, float] | None = None
    label: str | None = None  # Philips (2001,1004) 'I', 'M', 'P', 'S', 'O' or DiffusionDirectionality
    is_trace: bool = False


def b_zero_tolerance() -> float:
    return float(load_json("role_rules.json")["physics"]["b_zero_tolerance_s_mm2"])


def private_element(ds: Any, spec: tuple[int, int, str, str]):
    """The private element ``(group, xx<low>)`` under ``creator`` (or block 0x10 without a creator)."""
    group, low, creator, maker = spec
    for block in range(0x10, 0x100):
        tag = (group << 16) | block
        if tag not in ds:
            break  # creators are written contiguously from 0x10
        value = ds[tag].value
        if isinstance(value, bytes):
            value = value.decode("latin-1", "replace")
        if str(value).strip().upper() == creator.upper():
            elem_tag = (group << 16) | (block << 8) | low
            return ds[elem_tag] if elem_tag in ds else None
    # creator missing (anonymised copies) or not fixed by the vendor ("*"): block 0x10 when the manufacturer matches
    has_creator = ((group << 16) | 0x10) in ds  # creators are written from block 0x10 upwards
    if (creator == "*" or not has_creator) and str(ds.get("Manufacturer", "")).upper().startswith(maker):
        elem_tag = (group << 16) | 0x1000 | low
        return ds[elem_tag] if elem_tag in ds else None
    return None


def numbers(value: Any, binary_format: str | None = None) -> list[float]:
    """Numbers from a typed value, a backslash-separated string, or raw bytes (text or binary).

    A value holding NaN or infinity is no measurement (a corrupt or hand-edited header): it reads as absent, like
    an unparsable one, so every caller's "missing tag" path handles it instead of arithmetic on NaN."""
    out = _numbers(value, binary_format)
    return out if all(math.isfinite(v) for v in out) else []


def _numbers(value: Any, binary_format: str | None) -> list[float]:
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        text = raw.rstrip(b"\x00 ")
        if text and re.fullmatch(rb"[0-9+\-.eE\\ ]+", text):
            value = text.decode("ascii")
        else:
            fmt = binary_format or ("d" if len(raw) % 8 == 0 else "f")
            size = struct.calcsize(fmt)
            if not raw or len(raw) % size:
                return []
            return [float(v) for v in struct.unpack(f"<{len(raw) // size}{fmt}", raw)]
    if isinstance(value, str):
        out = []
        for part in value.split("\\"):
            part = part.strip()
            if part:
                try:
                    out.append(float(part))
                except ValueError:
                    return []
        return out
    try:
        return [float(v) for v in value]
    except TypeError:
        try:
            return [float(value)]
        except (TypeError, ValueError):
            return []
    except ValueError:
        return []


def _private_numbers(ds: Any, spec: tuple[int, int, str, str], binary_format: str | None = None) -> list[float]:
    elem = private_element(ds, spec)
    return numbers(elem.value, binary_format) if elem is not None else []


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip("\x00 ")
    return str(value or "").strip()


def _direction(values: list[float]) -> tuple[float, float, float] | None:
    if len(values) >= 3:
        return (float(values[0]), float(values[1]), float(values[2]))
    return None


def diffusion_from_dataset(ds: Any, frame_group: Any = None) -> Diffusion:
    """Diffusion facts of one classic image ``ds`` or of one frame (its per-frame functional group item).

    Standard tags win (per frame, then shared, then the image); vendors' private tags fill what they leave
    open; the result is checked for plausibility last."""
    out = Diffusion()
    _read_standard_tags(out, ds, frame_group)
    _read_private_b_value(out, ds)
    _read_private_direction_and_label(out, ds)
    _tidy(out, ds)
    return out


def _read_standard_tags(out: Diffusion, ds: Any, frame_group: Any) -> None:
    """b-value, directionality and gradient direction from (0018,9087) and its sequences, per frame first."""
    sources = []
    if frame_group is not None and "MRDiffusionSequence" in frame_group and frame_group.MRDiffusionSequence:
        sources.append((frame_group.MRDiffusionSequence[0], "per-frame (0018,9087)"))
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and "MRDiffusionSequence" in shared[0] and shared[0].MRDiffusionSequence:
        sources.append((shared[0].MRDiffusionSequence[0], "shared (0018,9087)"))
    sources.append((ds, "(0018,9087)"))
    for item, name in sources:
        if out.b_value is None and "DiffusionBValue" in item:
            vals = numbers(item["DiffusionBValue"].value, "d")
            if vals:
                out.b_value, out.source = vals[0], name
        if out.label is None and "DiffusionDirectionality" in item:
            out.label = _text(item.DiffusionDirectionality).upper() or None
        if out.direction is None:
            seq = item.get("DiffusionGradientDirectionSequence")
            if seq and "DiffusionGradientOrientation" in seq[0]:
                out.direction = _direction(numbers(seq[0]["DiffusionGradientOrientation"].value, "d"))
            elif "DiffusionGradientOrientation" in item:
                out.direction = _direction(numbers(item["DiffusionGradientOrientation"].value, "d"))


def _read_private_b_value(out: Diffusion, ds: Any) -> None:
    """The b-value (and a Siemens direction) from vendors' private tags, then the image comments."""
    manufacturer = str(ds.get("Manufacturer", "")).upper()
    if out.b_value is None:
        vals = _private_numbers(ds, _SIEMENS_B)
        if vals:
            out.b_value, out.source = vals[0], "Siemens (0019,100C)"
    if out.b_value is None or (out.direction is None and manufacturer.startswith("SIEMENS")):
        csa_elem = private_element(ds, _SIEMENS_CSA_IMAGE)
        if csa_elem is not None:
            csa = parse_csa(csa_elem.value if isinstance(csa_elem.value, bytes) else None)
            b = csa_floats(csa, "B_value")
            if out.b_value is None and b:
                out.b_value, out.source = b[0], "Siemens CSA B_value"
            if out.direction is None:
                out.direction = _direction(csa_floats(csa, "DiffusionGradientDirection"))
    if out.b_value is None:
        vals = _private_numbers(ds, _GE_B)
        if vals:
            b = vals[0]
            out.b_value, out.source = (b % GE_B_OFFSET if b >= GE_B_OFFSET else b), "GE (0043,1039)"
    if out.b_value is None:
        vals = _private_numbers(ds, _PHILIPS_B, "f")
        if vals:
            out.b_value, out.source = vals[0], "Philips (2001,1003)"
    if out.b_value is None:
        vals = _private_numbers(ds, _UIH_B, "d")
        if vals:
            out.b_value, out.source = vals[0], "UIH (0065,1009)"
    if out.b_value is None:
        match = _B_TEXT.search(_text(ds.get("ImageComments", "")))
        if match:
            out.b_value, out.source = float(match.group(1)), "ImageComments text"


def _read_private_direction_and_label(out: Diffusion, ds: Any) -> None:
    """Gradient direction (GE, Philips, Siemens, UIH) and directionality label (Philips, Siemens) when the
    standard tags had none; a Philips private label, when present, takes precedence over the standard one."""
    if out.direction is None:
        for specs in (_GE_DIRECTION, _PHILIPS_DIRECTION):
            vals = [(_private_numbers(ds, s, "f") or [None])[0] for s in specs]
            if all(v is not None for v in vals):
                out.direction = (float(vals[0]), float(vals[1]), float(vals[2]))
                break
    if out.direction is None:
        out.direction = _direction(_private_numbers(ds, _SIEMENS_DIRECTION, "d") or _private_numbers(ds, _UIH_DIRECTION,
                                                                                                   "d"))
    elem = private_element(ds, _PHILIPS_LABEL)
    if elem is not None and _text(elem.value):
        out.label = _text(elem.value).upper()
    elif out.label is None:
        elem = private_element(ds, _SIEMENS_DIRECTIONALITY)
        if elem is not None and _text(elem.value):
            out.label = _text(elem.value).upper()


def _tidy(out: Diffusion, ds: Any) -> None:
    """Implausible b-values dropped, near-zero ones set to 0, trace images recognised, null directions cleared."""
    if out.b_value is not None:
        if out.b_value < 0 or out.b_value > 1e5:
            out.b_value, out.source = None, f"ignored implausible b from {out.source}"
        elif out.b_value < b_zero_tolerance():
            out.b_value = 0.0
    image_type = ds.get("ImageType", []) or []
    image_type = {str(t).upper() for t in ([image_type] if isinstance(image_type, str) else image_type)}
    if out.b_value:
        out.is_trace = out.label in ("I", "ISOTROPIC") or bool(image_type & {"TRACEW", "TRACE"})
        if out.direction is not None and not any(abs(c) > 1e-6 for c in out.direction):
            out.direction = None
    else:
        out.direction = None


def describe_b_values(values: list[float]) -> str:
    """'0/50/800' style text."""
    return "/".join(f"{v:g}" for v in sorted(set(values)))
