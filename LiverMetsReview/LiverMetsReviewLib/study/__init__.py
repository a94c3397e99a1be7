"""DICOM study -> series -> roles -> volumes.

``scan_folder`` reads headers (classic and enhanced MR, gzip too) into :class:`SeriesInfo`/:class:`StackInfo`;
``classify_scan`` / ``classify_folder`` give each series a role, a confidence and a reason; ``load_study``,
``load_series`` and ``load_dwi`` turn them into :class:`~LiverMetsReviewLib.series.Series` volumes (LPS);
``resample_to_reference`` puts a series on another grid; ``choose_layout`` turns roles into a hanging-protocol
plan; ``write_dicom_sources`` / ``read_dicom_sources`` record where a study folder's stacks came from
(``dicom_sources.json``: UIDs, files, grid). Rules are data: ``resources/role_rules.json``,
``resources/hanging_protocols.json``.

Names are imported on first use (PEP 562), so ``import LiverMetsReviewLib.study.hanging`` or the classifier
does not pull in SimpleITK, and the command line starts quickly.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "classify_folder": "classify", "classify_scan": "classify", "classify_series": "classify",
    "echo_phase": "clues",
    "apply_overrides": "overrides", "load_overrides": "overrides", "overrides_from_study_index": "overrides",
    "combine_trace": "load", "load_dwi": "load", "load_series": "load", "load_study": "load",
    "resample_to_reference": "load",
    "read_dicom_sources": "sources", "write_dicom_sources": "sources",
    "SeriesInfo": "scan", "Skipped": "scan", "StackInfo": "scan", "StudyScan": "scan", "scan_folder": "scan",
    "LayoutPlan": "hanging", "ViewportPlan": "hanging", "choose_layout": "hanging", "protocol_ids": "hanging",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
