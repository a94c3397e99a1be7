"""Series roles of a liver MRI study (the brief's section 1 table), loaded from data."""

from __future__ import annotations

from .resources import load_json

UNASSIGNED = "unassigned"


def role_ids() -> list[str]:
    """All role identifiers, in protocol order, ``unassigned`` last."""
    return [r["id"] for r in load_json("roles.json")["roles"]]


def role_label(role: str) -> str:
    """Human-readable label of a role id (the id itself when unknown)."""
    for r in load_json("roles.json")["roles"]:
        if r["id"] == role:
            return r["label"]
    return role


DYNAMIC_ROLES = ("t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary")
