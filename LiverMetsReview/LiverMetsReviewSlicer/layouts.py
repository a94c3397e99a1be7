"""Which volume the slice views show, without undoing the reader's layout.

After a study loads, ``showStudy`` puts one background in every view of the four-up layout (a fresh start).
Afterwards, choosing a series or computing a map only changes ONE view (``showInView``): the slice view the
reader last pointed at (``FocusTracker``), else the first view of the current layout. The other views keep
their volume, slice position and zoom, so a hanging protocol stays as it was.

From Slicer's source (vtkMRMLSliceLinkLogic::BroadcastSliceCompositeNodeEvent, v5.10 and main): a composite
node's change is copied to the linked views only while it is flagged ``Interacting`` (the slice controller GUI
sets it); setting the background from Python changes that one view even when the views are linked.
"""

from __future__ import annotations

import slicer


def showStudy(backgroundNode: slicer.vtkMRMLScalarVolumeNode | None, fourUp: bool = True) -> None:
    """Show ``backgroundNode`` in all slice views (fitted), in the four-up layout: a newly loaded study."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager and fourUp:
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpView)
    if backgroundNode is not None:
        slicer.util.setSliceViewerLayers(background=backgroundNode, fit=True)


class FocusTracker:
    """Remembers the slice view the mouse was last in (Slicer's crosshair node reports it on every move).

    The cursor leaves the views when the reader clicks the series table, so the last view *seen* is kept.
    ``reset`` forgets it (scene close: the view may not exist in the next layout).
    """

    def __init__(self) -> None:
        self.viewName: str | None = None
        self._crosshair = None
        self._tag = None

    def start(self) -> None:
        self.stop()
        crosshair = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLCrosshairNode")  # slicer-class: vtkMRMLCrosshairNode
        if crosshair is None:
            return
        self._crosshair = crosshair
        self._tag = crosshair.AddObserver(slicer.vtkMRMLCrosshairNode.CursorPositionModifiedEvent, self.onCursorMoved)

    def stop(self) -> None:
        if self._crosshair is not None and self._tag is not None:
            self._crosshair.RemoveObserver(self._tag)
        self._crosshair, self._tag = None, None

    def reset(self) -> None:
        self.viewName = None

    def onCursorMoved(self, caller=None, event=None) -> None:
        if self._crosshair is None:
            return
        sliceNode = self._crosshair.GetCursorPositionXYZ([0.0, 0.0, 0.0])  # None outside the slice views
        if sliceNode is not None:
            self.viewName = sliceNode.GetLayoutName()


def targetView(layoutManager, preferred: str | None) -> str | None:
    """``preferred`` if the current layout shows it, else the layout's first slice view (None: no slice view)."""
    names = [str(n) for n in layoutManager.sliceViewNames()]
    visible = [n for n in names if layoutManager.sliceWidget(n) is not None and layoutManager.sliceWidget(n).visible]
    candidates = visible or names
    if preferred in candidates:
        return preferred
    return candidates[0] if candidates else None


def showInView(node: slicer.vtkMRMLScalarVolumeNode, preferredView: str | None = None) -> str | None:
    """Show ``node`` as the background of one slice view (fitted there only); returns the view's name.

    The layout, the other views and their links are left alone: this is what a click on a series does.
    """
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None or node is None:
        return None
    name = targetView(layoutManager, preferredView)
    if name is None:
        return None
    widget = layoutManager.sliceWidget(name)
    compositeNode = widget.mrmlSliceCompositeNode()  # slicer-class: vtkMRMLSliceCompositeNode
    compositeNode.SetBackgroundVolumeID(node.GetID())
    widget.sliceLogic().FitSliceToAll()
    return name
