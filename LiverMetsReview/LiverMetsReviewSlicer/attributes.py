"""Node attributes that carry a series' role and acquisition facts in the scene (saved with the scene)."""

from __future__ import annotations

import json
from typing import Any

PREFIX = "LiverMetsReview."
ROLE = PREFIX + "Role"
B_VALUE = PREFIX + "BValue"
ECHO_TIME_MS = PREFIX + "EchoTimeMs"
UNITS = PREFIX + "Units"
FIELD_STRENGTH_T = PREFIX + "FieldStrengthT"
DESCRIPTION = PREFIX + "SeriesDescription"
SOURCE = PREFIX + "Source"
ROLE_REASON = PREFIX + "RoleReason"
ROLE_CONFIDENCE = PREFIX + "RoleConfidence"

UNASSIGNED = "unassigned"


def _text(value: Any) -> str:
    """Attributes are strings: integers stay integers ("800", not "800.0")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def setSeriesAttributes(node, role: str, stackMeta: dict[str, Any], seriesMeta: dict[str, Any], source: str) -> None:
    """Write the role and the acquisition facts a later stage needs (b-value, echo time, units)."""
    node.SetAttribute(ROLE, role)
    node.SetAttribute(SOURCE, source)
    if "b_value" in stackMeta:
        node.SetAttribute(B_VALUE, _text(float(stackMeta["b_value"])))
    echo = stackMeta.get("echo_time_ms", seriesMeta.get("echo_time_ms"))
    if echo is not None:
        node.SetAttribute(ECHO_TIME_MS, _text(float(echo)))
    if seriesMeta.get("units"):
        node.SetAttribute(UNITS, str(seriesMeta["units"]))
    if seriesMeta.get("field_strength_t") is not None:
        node.SetAttribute(FIELD_STRENGTH_T, _text(float(seriesMeta["field_strength_t"])))
    if seriesMeta.get("description"):
        node.SetAttribute(DESCRIPTION, str(seriesMeta["description"]))
    if seriesMeta.get("role_reason"):  # why the classifier chose the role: shown to the reader who checks it
        node.SetAttribute(ROLE_REASON, str(seriesMeta["role_reason"]))
    if seriesMeta.get("role_confidence") is not None:
        node.SetAttribute(ROLE_CONFIDENCE, _text(float(seriesMeta["role_confidence"])))


def nodeRole(node) -> str:
    """The role stored on ``node``; a node nobody classified is ``unassigned``."""
    role = node.GetAttribute(ROLE)
    return role if role else UNASSIGNED


def tagJson(value: Any) -> str:
    """JSON safe in a segment tag: a .seg.nrrd stores tags as ``key:value|`` (vtkMRMLSegmentationStorageNode
    GetSegmentTagsAsString), so a '|' inside the value would split it; JSON may spell it as an escape."""
    return json.dumps(value, sort_keys=True, allow_nan=False).replace("|", "\\u007c")
