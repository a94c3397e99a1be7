"""View layout and which volume the slice views show after a study is loaded."""

from __future__ import annotations

import slicer


def showStudy(backgroundNode: slicer.vtkMRMLScalarVolumeNode | None, fourUp: bool = True) -> None:
    """Show ``backgroundNode`` in all slice views (fitted) in the four-up layout.

    Segmentations display themselves; only the background volume has to be chosen.
    """
    layoutManager = slicer.app.layoutManager()
    if layoutManager and fourUp:
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
    if backgroundNode is not None:
        slicer.util.setSliceViewerLayers(background=backgroundNode, fit=True)
