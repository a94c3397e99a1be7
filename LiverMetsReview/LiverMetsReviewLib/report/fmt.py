"""How each number of the report is written (one place, so the HTML, the text and the tests agree)."""

from __future__ import annotations

from ..anatomy import roman, segment_text  # noqa: F401  (roman: re-exported for the report's sections)
from ..checklist.report import pitfalls_text  # noqa: F401  (one wording: review.md and the report)

DECIMALS = {"long_axis": 1, "short_axis": 1, "volume": 2, "adc": 0, "fat": 1, "liver_volume": 0,
            "background_fat": 1, "hbp_re": 0, "ratio": 2}
UNITS = {"long_axis": "mm", "short_axis": "mm", "volume": "mL", "adc": "10^-6 mm2/s", "fat": "%",
         "liver_volume": "mL", "background_fat": "%", "hbp_re": "%", "ratio": ""}


def number(kind: str, value: float | None) -> str:
    return "" if value is None else f"{value:.{DECIMALS[kind]}f}"


def with_unit(kind: str, value: float | None, missing: str = "not measured") -> str:
    return missing if value is None else f"{number(kind, value)} {UNITS[kind]}".rstrip()


segment = segment_text  # "segment VII (VII/VIII border)": one wording for every output (..anatomy)
