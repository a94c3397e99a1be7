"""A progress dialog for computations that take seconds to minutes (phantom, DICOM study, ADC, PDFF, alignment).

``busy(label)`` yields a ``Progress``: a callable ``progress(fraction, message)`` that a core function can take as
its progress callback. Until the first call the bar is indeterminate (maximum 0); each call sets the bar and the
text and repaints. The dialog has a Cancel button only when the work can really stop (``cancellable=True``):
Qt's QProgressDialog shows one by default (slicer.util.createProgressDialog keeps it), and a button that does
nothing is worse than none. A cancelled run raises ``OperationCancelled`` from the next ``progress`` call, so a
core loop that reports steps stops there; DICOMUtils wants a callback that returns True instead
(``dicomCallback``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import slicer

from LiverMetsReviewLib.errors import LiverMetsError


class OperationCancelled(LiverMetsError):
    """The reader pressed Cancel: nothing was added after the step that was running."""


class Progress:
    """The callback handed to long work: ``progress(fraction, message)``, fraction in 0..1 or None (unknown)."""

    def __init__(self, dialog, cancellable: bool) -> None:
        self.dialog = dialog
        self.cancellable = cancellable
        self.steps: list[tuple[float | None, str]] = []  # what was reported (shown in the log on error)

    @property
    def cancelled(self) -> bool:
        return bool(self.cancellable and self.dialog.wasCanceled)

    def update(self, fraction: float | None, message: str = "") -> None:
        """Show the step without raising (for callers that check ``cancelled`` themselves)."""
        self.steps.append((fraction, message))
        if fraction is not None:
            self.dialog.maximum = 100
            self.dialog.value = max(0, min(100, int(round(100.0 * float(fraction)))))
        if message:
            self.dialog.labelText = message
        slicer.app.processEvents()

    def __call__(self, fraction: float | None, message: str = "") -> None:
        self.update(fraction, message)
        if self.cancelled:
            raise OperationCancelled("Cancelled by the reader: the step that was running did not finish.")

    def dicomCallback(self, name: str, percent: float) -> bool:
        """DICOMUtils' ``progressCallback(name, percent)``: returning True cancels the loading (read in Slicer's
        DICOMUtils.loadLoadables: an exception there would leave its scene observer behind)."""
        self.update(float(percent) / 100.0, name)
        return self.cancelled


@contextlib.contextmanager
def busy(labelText: str, cancellable: bool = False) -> Iterator[Progress]:
    """Show ``labelText`` in a modal progress dialog while the body runs; the status bar says it too."""
    slicer.util.showStatusMessage(labelText)
    dialog = slicer.util.createProgressDialog(labelText=labelText, maximum=0, windowTitle="LiverMetsReview")
    if not cancellable:
        dialog.setCancelButton(None)  # QProgressDialog: no button at all
    slicer.app.processEvents()  # paint the dialog before the blocking call
    try:
        yield Progress(dialog, cancellable)
    finally:
        dialog.close()
        slicer.util.showStatusMessage("")
