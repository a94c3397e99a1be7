"""``report.pdf``: the same HTML as ``report.html`` laid out by Qt (``QTextDocument``) onto A4 pages (``QPdfWriter``).

One function serves both worlds: Slicer passes its PythonQt ``qt`` module, the CLI passes PySide6 (the ``pdf``
extra) through :func:`pyside_qt`. ``QTextDocument`` does not load ``data:`` URIs, so each embedded PNG is handed to
the document as a named image resource and the ``src`` rewritten to that name. ``print_`` is PySide6's name for
``QTextDocument::print``; PythonQt finds ``print`` from ``print_`` too (it strips one trailing underscore when a
name is not found, ``PythonQtClassInfo::member``).
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import LiverMetsError

MARGIN_MM = 15.0
RESOLUTION_DPI = 300
_DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
NO_PYSIDE = ("report.pdf needs Qt for Python on the command line: install the 'pdf' extra "
             "(pip install 'livermetsreview[pdf]', i.e. PySide6-Essentials); HTML and text were written")


def pyside_qt() -> Any:
    """PySide6's QtCore and QtGui as one namespace shaped like Slicer's ``qt`` module, with a QGuiApplication
    (offscreen when no display is set). Raises LiverMetsError with one sentence when PySide6 is missing."""
    try:
        from PySide6 import QtCore, QtGui
    except ImportError as exc:
        raise LiverMetsError(NO_PYSIDE) from exc
    if QtGui.QGuiApplication.instance() is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        pyside_qt.app = QtGui.QGuiApplication(["livermets"])  # kept alive for the process
    names = {k: getattr(m, k) for m in (QtCore, QtGui) for k in dir(m) if k.startswith("Q")}
    return SimpleNamespace(**names)


def _embed_images(qt: Any, doc: Any, html: str) -> str:
    """Hand each data: PNG to the document as an image resource; returns the HTML with the names as ``src``."""
    count = 0

    def swap(match: re.Match) -> str:
        nonlocal count
        count += 1
        name = f"keyimage-{count}.png"
        image = qt.QImage()
        image.loadFromData(qt.QByteArray(base64.b64decode(match[1])), "PNG")
        doc.addResource(qt.QTextDocument.ImageResource, qt.QUrl(name), image)
        return f'src="{name}"'

    return _DATA_URI.sub(swap, html)


def _layout_dpi(qt: Any) -> float:
    """The dpi QTextDocument lays out in when it has no paint device: Qt's ``qt_defaultDpi`` (96 when the
    application forces it or has no screen, else the primary screen's logical dpi; qtextdocument.cpp /
    qfont.cpp)."""
    gui = getattr(qt, "QGuiApplication", None)
    app = gui.instance() if gui is not None else None
    if app is None or app.testAttribute(qt.Qt.AA_Use96Dpi):
        return 96.0
    screen = gui.primaryScreen()
    return float(round(screen.logicalDotsPerInchX())) if screen is not None else 96.0


def html_to_pdf(qt: Any, html: str, path: str | Path) -> Path:
    """Lay ``html`` out on A4 portrait pages with ``MARGIN_MM`` margins and write the PDF to ``path``.

    ``qt``: a namespace with QTextDocument, QPdfWriter, QPageLayout, QPageSize, QMarginsF, QSizeF, QImage,
    QByteArray and QUrl (Slicer's ``qt`` or :func:`pyside_qt`). Writes through a temporary file (atomic).
    """
    from ..io.atomic import atomic_path

    path = Path(path)
    doc = qt.QTextDocument()
    doc.setHtml(_embed_images(qt, doc, html))
    layout = qt.QPageLayout(qt.QPageSize(qt.QPageSize.A4), qt.QPageLayout.Portrait,
                            qt.QMarginsF(MARGIN_MM, MARGIN_MM, MARGIN_MM, MARGIN_MM), qt.QPageLayout.Millimeter)
    # QTextDocument lays text out in the pixels of Qt's default dpi (a 10 pt font is 10/72 inch of those) and
    # print() scales the page size given here onto the writer's page; so the printable area is given in those
    # pixels, not in points (in points the whole report came out 96/72 too large: 10 pt printed as 13.3 pt).
    area = layout.paintRect(qt.QPageLayout.Point)
    scale = _layout_dpi(qt) / 72.0
    doc.setPageSize(qt.QSizeF(area.width() * scale, area.height() * scale))
    with atomic_path(path) as tmp:
        writer = qt.QPdfWriter(str(tmp))
        writer.setResolution(RESOLUTION_DPI)
        writer.setPageLayout(layout)
        writer.setTitle("Liver MRI lesion report")
        writer.setCreator("LiverMetsReview")
        doc.print_(writer)
        del writer  # the file is complete once the writer is gone
    return path
