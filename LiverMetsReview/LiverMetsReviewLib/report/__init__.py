"""The structured report of a review: ``report.html`` (self-contained, key images embedded as PNG) and
``report.txt`` (the impression a radiologist pastes into the RIS). Pure Python + numpy/SimpleITK, so the same
code runs in Slicer (no matplotlib)."""

from .build import ReportInputs, gather_report, write_report

__all__ = ["ReportInputs", "gather_report", "write_report"]
