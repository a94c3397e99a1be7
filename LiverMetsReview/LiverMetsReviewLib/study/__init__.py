"""DICOM study -> series -> roles -> volumes.

``scan_folder`` reads headers (classic and enhanced MR, gzip too) into :class:`SeriesInfo`/:class:`StackInfo`;
``classify_scan`` / ``classify_folder`` give each series a role, a confidence and a reason; ``load_study``,
``load_series`` and ``load_dwi`` turn them into :class:`~LiverMetsReviewLib.series.Series` volumes (LPS);
``resample_to_reference`` puts a series on another grid. Rules are data: ``resources/role_rules.json``.
"""

from .classify import apply_overrides, classify_folder, classify_scan, classify_series, echo_phase, load_overrides
from .load import combine_trace, load_dwi, load_series, load_study, resample_to_reference
from .scan import SeriesInfo, Skipped, StackInfo, StudyScan, scan_folder

__all__ = [
    "SeriesInfo", "Skipped", "StackInfo", "StudyScan", "apply_overrides", "classify_folder", "classify_scan",
    "classify_series", "combine_trace", "echo_phase", "load_dwi", "load_overrides", "load_series", "load_study",
    "resample_to_reference", "scan_folder",
]
