"""What every GUI section of the module has in common: its own .ui, its own parameters, the same life cycle.

The module widget (``LiverMetsReviewWidget``) owns the parameter node and composes sections in reading order
(Study, Maps; Lesions, Checklist, Report join the same way). A section:

* names its .ui (``UI_FILE``, under ``Resources/``) and its parameter pack (``PACK``: the attribute of the
  module's parameter node, e.g. ``study``); widgets in the .ui bind with dotted names (``study.phantomSeed``),
  which ``connectGui`` resolves into the pack (Slicer's parameterNodeWrapper, v5.10 and main);
* gets ``setup(ui, logic)`` once, ``setParameterNode(params)`` whenever the node changes (None on scene close),
  ``onSceneClosed()`` after a scene close (forget every cached node ID and state: a new scene reuses IDs),
  ``refresh()`` when the scene's volumes change, and ``cleanup()`` when the module is destroyed.

Sections never call each other: what one produces reaches the next through the scene (node attributes) or the
parameter node, as the one-way flow of the architecture asks. One exception, wired by the module widget: the
Report section's Generate asks the Checklist section (the owner of review.json) to recompute the review from the
measures it has just stored on the segments, so that one button gives a report whose numbers are the review's.
"""

from __future__ import annotations

from typing import Any


class Section:
    """Base class of a GUI section (see the module docstring)."""

    UI_FILE = ""  # e.g. "UI/StudySection.ui"
    PACK = ""  # attribute of the parameter node holding this section's parameters

    def __init__(self) -> None:
        self.ui: Any = None
        self.logic: Any = None
        self.params: Any = None  # the module's parameter node (the section reads ``params.<PACK>``)
        self._guiTag = None

    def setup(self, ui, logic) -> None:
        """Keep the widgets and the logic; subclasses connect their buttons here."""
        self.ui, self.logic = ui, logic

    def setParameterNode(self, params) -> None:
        """Bind this section's widgets to ``params`` (None: unbind, e.g. while the scene closes)."""
        if self.params is not None and self._guiTag is not None:
            self.params.disconnectGui(self._guiTag)
        self.params, self._guiTag = params, None
        if params is not None:
            self._guiTag = params.connectGui(self.ui)
            self.afterBinding()

    @property
    def pack(self) -> Any:
        """This section's parameters (``params.<PACK>``), None when unbound."""
        return getattr(self.params, self.PACK) if self.params is not None and self.PACK else None

    def afterBinding(self) -> None:
        """Widgets the binding fills (combo box texts...) can be touched up here."""

    def onParametersModified(self) -> None:
        """Some parameter of the node changed (any section's)."""

    def onSceneClosed(self) -> None:
        """Forget cached node IDs and state."""

    def refresh(self) -> None:
        """The scene's volumes changed."""

    def cleanup(self) -> None:
        """The module is being destroyed."""


def labelChoices(combo, labels: list[str]) -> None:
    """Show human labels in a combo box bound to a ``Choice`` parameter.

    Slicer's QComboBoxToStringableConnector (parameterNodeWrapper/guiConnectors.py, v5.10 and main) fills the box
    with ``str(choice)`` and reads and writes by *index*, so the item texts can be replaced after binding without
    changing what is stored. Call it after every ``connectGui`` (which refills the box).
    """
    for index, label in enumerate(labels[: combo.count]):
        combo.setItemText(index, label)
