"""Bipolar-readout check of complex multi-echo data (placeholder)."""

from __future__ import annotations

from typing import Any

import numpy as np


def bipolar_warnings(yc: np.ndarray, sides: Any, fat_wins: np.ndarray, te: np.ndarray, c: np.ndarray,
                     cfg: dict[str, Any]) -> list[str]:
    return []
