"""Hanging protocols in Slicer: the core's LayoutPlan applied to the view layout.

The core (``LiverMetsReviewLib.study.hanging``) decides what goes where; here a custom layout with one slice
view per viewport (rows x cols) is registered with the layout manager, each view gets its volume as background
and its orientation, and the views are linked (Slicer broadcasts navigation between slice views whose
composite nodes have linked control on and whose slice nodes share a view group). The views use their own
view group, so linking them leaves Red/Yellow/Green alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import slicer

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.study.hanging import LayoutPlan, builtin_protocols, choose_layout, protocol_ids

from . import attributes

LAYOUT_ID_BASE = 53000  # + 10 * rows + cols: one custom layout per grid shape, well clear of Slicer's own ids
VIEW_PREFIX = "LiverMets"  # slice views are LiverMets1, LiverMets2, ... (row by row)
VIEW_GROUP = 53  # linking stays among these views
VIEW_COLORS = ("#5B8DB8", "#C0A048", "#6EA86E", "#B86E6E", "#8A6EB8", "#6EB8B0")


def viewName(index: int) -> str:
    """Layout name (singleton tag) of the slice view that shows viewport ``index`` (0-based)."""
    return f"{VIEW_PREFIX}{index + 1}"


def layoutId(rows: int, cols: int) -> int:
    return LAYOUT_ID_BASE + 10 * rows + cols


def layoutXml(plan: LayoutPlan) -> str:
    """Slicer layout description: ``rows`` horizontal rows of ``cols`` slice views, stacked vertically."""

    def view(k: int) -> str:
        v = plan.viewports[k]
        return (f'<item><view class="vtkMRMLSliceNode" singletontag="{viewName(k)}">'
                f'<property name="orientation" action="default">{v.orientation}</property>'
                f'<property name="viewlabel" action="default">{k + 1}</property>'
                f'<property name="viewcolor" action="default">{VIEW_COLORS[k % len(VIEW_COLORS)]}</property>'
                f'<property name="viewgroup" action="default">{VIEW_GROUP}</property>'
                "</view></item>")

    rows = []
    for r in range(plan.rows):
        cells = "".join(view(r * plan.cols + c) for c in range(plan.cols))
        rows.append(f'<item><layout type="horizontal">{cells}</layout></item>')
    return f'<layout type="vertical">{"".join(rows)}</layout>'


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def availableFromScene() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """What the scene can show, for ``choose_layout``: series by their role attribute, maps by node name.

    Newest node first in each role, as the maps section uses the most recently loaded (or aligned) series.
    A map pushed twice is named ``adc_1``; the suffix is dropped to find its map name.
    """
    maps = builtin_protocols()["maps"]
    mapNames = set(maps) | {a for m in maps.values() for a in m.get("aliases", [])}
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    nodes = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
             if not n.IsA("vtkMRMLLabelMapVolumeNode")]
    for node in reversed(nodes):
        role = node.GetAttribute(attributes.ROLE)
        meta: dict[str, Any] = {"name": node.GetName()}
        for key, attr in (("b_value", attributes.B_VALUE), ("echo_time_ms", attributes.ECHO_TIME_MS)):
            value = _number(node.GetAttribute(attr))
            if value is not None:
                meta[key] = value
        if role and role != attributes.UNASSIGNED:
            out.setdefault(role, []).append((node.GetID(), meta))
        elif node.GetAttribute(attributes.SOURCE) == "map":
            name = node.GetName()
            base = re.sub(r"_\d+$", "", name)
            key = name if name in mapNames else base
            if key in mapNames:
                out.setdefault(key, []).append((node.GetID(), meta))
    return out


def _registerLayout(layoutNode, plan: LayoutPlan) -> int:
    """Add (or update) the custom layout of ``plan``'s grid shape in ``layoutNode``; returns its id."""
    lid = layoutId(plan.rows, plan.cols)
    xml = layoutXml(plan)
    if layoutNode.IsLayoutDescription(lid):
        layoutNode.SetLayoutDescription(lid, xml)  # orientations may differ from the last plan of this shape
    else:
        layoutNode.AddLayoutDescription(lid, xml)
    return lid


def registerLayouts() -> list[int]:
    """Register the layout of every built-in protocol's grid shape (called once the application has started).

    A scene saved in a hanging layout stores only the layout id in its layout node (vtkMRMLLayoutNode writes
    ``currentViewArrangement``, not the descriptions), so the id must be known before such a scene is opened.
    Each view's orientation and volume come back from the scene's own slice and composite nodes.
    Returns the registered ids; nothing happens without the main window.
    """
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:
        return []
    layoutNode = layoutManager.layoutLogic().GetLayoutNode()  # slicer-class: vtkMRMLLayoutNode
    ids: list[int] = []
    for protocol in protocol_ids():
        plan = choose_layout(protocol, {})  # an empty study: the grid and orientations only
        if layoutId(plan.rows, plan.cols) not in ids:
            ids.append(_registerLayout(layoutNode, plan))
    return ids


def applyLayoutPlan(plan: LayoutPlan, nodesById: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Show ``plan``: register and select its layout, fill and orient the views, link them; returns what was shown.

    ``nodesById`` maps the plan's ids to volume nodes; without it the ids are scene node IDs. The result has
    ``layoutId``, ``views`` (view name -> {label, nodeId, nodeName, orientation, reason}) and ``missing``
    (view name -> reason) for the viewports left empty.
    """
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:
        raise LiverMetsError("Slicer has no view layout (running without the main window): a hanging protocol "
                             "needs the application window.")
    layoutNode = layoutManager.layoutLogic().GetLayoutNode()  # slicer-class: vtkMRMLLayoutNode
    lid = _registerLayout(layoutNode, plan)
    layoutNode.SetViewArrangement(lid)

    views: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {}
    offset = None
    for v in plan.viewports:
        name = viewName(v.index)
        widget = layoutManager.sliceWidget(name)
        if widget is None:
            raise LiverMetsError(f"the layout did not create the slice view {name}; reset the layout and retry.")
        compositeNode = widget.mrmlSliceCompositeNode()  # slicer-class: vtkMRMLSliceCompositeNode
        sliceNode = widget.mrmlSliceNode()  # slicer-class: vtkMRMLSliceNode
        sliceLogic = widget.sliceLogic()  # slicer-class: vtkMRMLSliceLogic
        node = None
        if v.node_id is not None:
            node = nodesById.get(v.node_id) if nodesById is not None else slicer.mrmlScene.GetNodeByID(v.node_id)
        sliceNode.SetViewGroup(VIEW_GROUP)
        sliceNode.SetOrientation(v.orientation)
        compositeNode.SetForegroundVolumeID(None)  # a foreground left by an earlier layout would blend in
        compositeNode.SetBackgroundVolumeID(node.GetID() if node is not None else None)
        compositeNode.SetLinkedControl(bool(plan.linked))
        compositeNode.SetHotLinkedControl(False)
        sliceLogic.FitSliceToAll()
        if node is None:
            missing[name] = v.reason if v.node_id is None else f"node {v.node_id} is not in the scene"
            continue
        if offset is None:
            offset = sliceLogic.GetSliceOffset()
        elif plan.linked:
            sliceLogic.SetSliceOffset(offset)  # start every linked view on the same slice position
        views[name] = {"label": v.label, "caption": v.caption, "nodeId": node.GetID(), "nodeName": node.GetName(),
                       "orientation": v.orientation, "source": v.source, "reason": v.reason}
    return {"layoutId": lid, "protocol": plan.protocol_id, "views": views, "missing": missing}


def showProtocol(protocolId: str) -> tuple[LayoutPlan, dict[str, Any]]:
    """Choose the layout for ``protocolId`` from the volumes in the scene and show it (what the widget calls)."""
    plan = choose_layout(protocolId, availableFromScene())
    return plan, applyLayoutPlan(plan)
