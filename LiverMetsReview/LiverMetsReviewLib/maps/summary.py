"""What a map's output file carries besides units and method: the notes and warnings of its computation."""

from __future__ import annotations

from typing import Any


def stated(summary: dict[str, Any]) -> dict[str, Any]:
    """``notes`` (e.g. "resampled onto the reference grid") and ``warnings`` of a summary, when there are any."""
    return {k: list(summary[k]) for k in ("notes", "warnings") if summary.get(k)}
