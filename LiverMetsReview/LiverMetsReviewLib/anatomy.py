"""Names of liver anatomy shared by the phantom (its truth), the lesions (their measurements), the checklist and
the report, kept in one place so every output writes a Couinaud segment the same way."""

from __future__ import annotations

from typing import Any

# Couinaud's numbering written as radiology reports do (Roman numerals; segment I is the caudate lobe)
COUINAUD_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}


def roman(seg: Any) -> str:
    """"VII" for 7 (or "7"); what was given when it is not a segment number; "not known" when empty."""
    if not seg:
        return "not known"
    try:
        return COUINAUD_ROMAN.get(int(seg), str(seg))
    except (TypeError, ValueError):
        return str(seg)


def segment_text(seg: Any, border: str | None = None) -> str:
    """"segment VII", or "segment VII (VII/VIII border)" when the centre lies at a boundary of the approximate
    Couinaud planes, where the neighbour is as likely."""
    if not seg:
        return "segment not known"
    return f"segment {roman(seg)}" + (f" ({border})" if border else "")
