"""A busy indicator for computations that take seconds to minutes (phantom, DICOM study, ADC, PDFF, alignment).

The core functions are single blocking calls without progress callbacks, so the dialog shows an indeterminate
bar (maximum 0) with what is running, painted before the call starts and closed when it ends, also on error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import slicer


@contextlib.contextmanager
def busy(labelText: str) -> Iterator[None]:
    """Show ``labelText`` in a modal busy dialog while the body runs; the status bar says it too."""
    slicer.util.showStatusMessage(labelText)
    dialog = slicer.util.createProgressDialog(labelText=labelText, maximum=0, windowTitle="LiverMetsReview")
    slicer.app.processEvents()  # paint the dialog before the blocking call
    try:
        yield
    finally:
        dialog.close()
        slicer.util.showStatusMessage("")
