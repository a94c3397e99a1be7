"""The guided checklist: hallmarks and pitfalls as data (``resources/checklist.json``), a pure engine that
returns suggestions with their evidence, and the reader's answers kept in ``review.json``."""

from .data import categories, load_checklist, validate_checklist
from .engine import review

__all__ = ["categories", "load_checklist", "review", "validate_checklist"]
