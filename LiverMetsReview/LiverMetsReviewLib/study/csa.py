"""A small reader for Siemens CSA headers ((0029,xx10) image, (0029,xx20) series).

Why our own: the b-value and gradient direction of classic Siemens DWI live there, pydicom does not
decode it and nibabel is not a runtime dependency. Two layouts exist: "SV10" (CSA2, VB13 and later)
and the older CSA1 without the signature. Each tag is a 64-byte name, VM, 4-byte VR, a SyngoDT code,
a number of items and a check word; each item is four int32 (the second is the value length) and
the value padded to 4 bytes. Values are ASCII; numbers are parsed on request.
"""

from __future__ import annotations

import struct

_MAX_TAGS = 1000
_MAX_ITEMS = 1000


def parse_csa(raw: bytes | None) -> dict[str, list[str]]:
    """Tag name -> list of non-empty item strings; an empty dict when ``raw`` is not a CSA header."""
    if not raw or len(raw) < 16:
        return {}
    try:
        if raw[:4] == b"SV10":
            n_tags, check = struct.unpack_from("<2I", raw, 8)
            pos = 16
        else:  # CSA1
            n_tags, check = struct.unpack_from("<2I", raw, 0)
            pos = 8
        if not 0 < n_tags <= _MAX_TAGS or check != 77:
            return {}
        out: dict[str, list[str]] = {}
        for _ in range(n_tags):
            name = raw[pos:pos + 64].split(b"\x00", 1)[0].decode("latin-1")
            (n_items,) = struct.unpack_from("<i", raw, pos + 76)
            pos += 84
            if not 0 <= n_items <= _MAX_ITEMS:
                return out
            values: list[str] = []
            for _ in range(n_items):
                length = struct.unpack_from("<4i", raw, pos)[1]
                pos += 16
                if length < 0 or pos + length > len(raw):
                    return out
                text = raw[pos:pos + length].split(b"\x00", 1)[0].decode("latin-1").strip()
                if text:
                    values.append(text)
                pos += (length + 3) // 4 * 4
            out[name] = values
        return out
    except (struct.error, UnicodeDecodeError):
        return {}


def csa_floats(csa: dict[str, list[str]], name: str) -> list[float]:
    """Numeric values of one CSA tag (empty when absent or not numeric)."""
    out = []
    for text in csa.get(name, []):
        try:
            out.append(float(text))
        except ValueError:
            return []
    return out
