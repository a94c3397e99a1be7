"""Phantom studies and their automatic liver masks, built once per test session and shared by the liver tests."""

from __future__ import annotations

from functools import cache

from LiverMetsReviewLib.lesions.liver import LiverResult, segment_liver
from LiverMetsReviewLib.phantom.generate import PhantomStudy, generate_phantom

SCENARIOS = ("normal", "steatosis", "reduced_hbp", "pseudocirrhosis")


@cache
def phantom(seed: int, scenario: str) -> PhantomStudy:
    return generate_phantom(seed=seed, scenario=scenario, size="small")


@cache
def auto_liver(seed: int, scenario: str) -> LiverResult:
    """The automatic liver mask of the whole study (every series available)."""
    study = phantom(seed, scenario)
    return segment_liver({s.role: s.image for s in study.series})
