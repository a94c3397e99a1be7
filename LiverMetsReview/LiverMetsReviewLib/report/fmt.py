"""How each number of the report is written (one place, so the HTML, the text and the tests agree)."""

from __future__ import annotations

from ..anatomy import roman, segment_text  # noqa: F401  (roman: re-exported for the report's sections)

DECIMALS = {"long_axis": 1, "short_axis": 1, "volume": 2, "adc": 0, "fat": 1, "liver_volume": 0,
            "background_fat": 1, "hbp_re": 0, "ratio": 2}
UNITS = {"long_axis": "mm", "short_axis": "mm", "volume": "mL", "adc": "10^-6 mm2/s", "fat": "%",
         "liver_volume": "mL", "background_fat": "%", "hbp_re": "%", "ratio": ""}


def number(kind: str, value: float | None) -> str:
    return "" if value is None else f"{value:.{DECIMALS[kind]}f}"


def with_unit(kind: str, value: float | None, missing: str = "not measured") -> str:
    return missing if value is None else f"{number(kind, value)} {UNITS[kind]}".rstrip()


segment = segment_text  # "segment VII (VII/VIII border)": one wording for every output (..anatomy)


def pitfalls_text(in_play: list[str]) -> str:
    """``["lesion: pitfall", ...]`` grouped by pitfall: "pitfall (lesion, lesion); ..." or "none"."""
    by: dict[str, list[str]] = {}
    for entry in in_play:
        lesion, _, pitfall = entry.partition(": ")
        by.setdefault(pitfall or lesion, []).append(lesion if pitfall else "study")
    return "; ".join(f"{p.replace('_', ' ')} ({', '.join(ls)})" for p, ls in by.items()) or "none"
