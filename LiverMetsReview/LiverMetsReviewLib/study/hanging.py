"""Hanging protocols: which series goes in which viewport, chosen by role, as a plan the viewer applies.

A protocol (``resources/hanging_protocols.json``) is a grid of viewports; each viewport lists the roles or map
names it would show, best first, with an optional stack selector (e.g. the highest b-value, at least 400).
:func:`choose_layout` matches that against what a study offers and returns a :class:`LayoutPlan`: the grid,
what goes where, which viewport fell back to a second choice and which stays empty, each with the reason.
It is a pure function of its inputs, so the Slicer module, the CLI and tests get the same plan; applying it
(layout XML, linked slice views) is the Slicer edge's job (``LiverMetsReviewSlicer/hanging.py``).

``available`` maps a role or map name to the images that can show it, as ``(id, stack meta)`` pairs in the
caller's order of preference (the first wins unless a selector decides); ``id`` is whatever the caller uses to
find the image again (a Slicer node ID, ``"dwi[2]"``...). Stack meta keys are those of
:class:`~LiverMetsReviewLib.series.Series` (``b_value`` in s/mm², ``echo_time_ms``...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..resources import load_json, read_json_file
from ..roles import UNASSIGNED, role_ids, role_label

Candidate = tuple[str, Mapping[str, Any]]

_SELECTOR_KEYS = {"pick", "key", "at_least", "unit"}
_KEY_WORDS = {"b_value": "b-value", "echo_time_ms": "echo time"}


def _key_word(key: str) -> str:
    return _KEY_WORDS.get(key, key.replace("_", " "))


@dataclass(frozen=True)
class ViewportPlan:
    """One viewport: what it shows (``node_id`` None when empty) and why."""

    index: int
    row: int
    col: int
    label: str
    orientation: str
    source: str | None
    node_id: str | None
    stack_meta: Mapping[str, Any] = field(default_factory=dict)
    fallback: bool = False
    reason: str = ""

    @property
    def empty(self) -> bool:
        return self.node_id is None

    @property
    def caption(self) -> str:
        """Short text for the view's corner: the viewport label, and the b-value when one was chosen."""
        if self.empty:
            return f"{self.label}: (none)"
        b = self.stack_meta.get("b_value")
        extra = f" b={float(b):g}" if b is not None else ""
        alt = f" [{source_label(self.source)}]" if self.fallback and self.source else ""
        return f"{self.label}{extra}{alt}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "row": self.row, "col": self.col, "label": self.label,
                "orientation": self.orientation, "source": self.source, "node_id": self.node_id,
                "stack_meta": dict(self.stack_meta), "fallback": self.fallback, "reason": self.reason}


@dataclass(frozen=True)
class LayoutPlan:
    """A protocol resolved against one study: a ``rows`` x ``cols`` grid, viewports row by row."""

    protocol_id: str
    label: str
    rows: int
    cols: int
    linked: bool
    viewports: tuple[ViewportPlan, ...]

    @property
    def n_viewports(self) -> int:
        return len(self.viewports)

    @property
    def arrangement(self) -> str:
        return f"{self.rows}x{self.cols}"

    @property
    def missing(self) -> list[ViewportPlan]:
        return [v for v in self.viewports if v.empty]

    @property
    def shown(self) -> dict[int, str]:
        """Viewport index -> id of the image it shows."""
        return {v.index: v.node_id for v in self.viewports if v.node_id is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"protocol_id": self.protocol_id, "label": self.label, "rows": self.rows, "cols": self.cols,
                "linked": self.linked, "viewports": [v.to_dict() for v in self.viewports]}

    def text(self) -> str:
        """A few lines for a reader or a log: one per viewport."""
        lines = [f"{self.label} ({self.arrangement}{', linked' if self.linked else ''})"]
        for v in self.viewports:
            what = v.node_id if not v.empty else "(empty)"
            lines.append(f"  [{v.row + 1},{v.col + 1}] {v.label}: {what} - {v.reason}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- protocol data
def _fail(where: str, what: str) -> LiverMetsError:
    return LiverMetsError(f"hanging protocols, {where}: {what}")


def _map_table(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    maps = data.get("maps", {})
    names = maps.get("names", {}) if isinstance(maps, Mapping) else {}
    if not isinstance(names, Mapping):
        raise _fail("maps", "'names' must be an object {map name: {label, aliases}}")
    return {str(k): dict(v) for k, v in names.items()}


def _check_selector(where: str, sel: Any, named: Mapping[str, Any]) -> dict[str, Any] | None:
    if sel is None or sel == "first":
        return None
    if isinstance(sel, str):
        if sel not in named:
            raise _fail(where, f"stack selector '{sel}' is not defined in 'stack_selectors' "
                               f"(defined: {', '.join(sorted(named)) or 'none'})")
        sel = named[sel]
    if not isinstance(sel, Mapping) or sel.get("pick") not in ("max", "min") or not isinstance(sel.get("key"), str):
        raise _fail(where, 'a stack selector must be "first", a named selector, or {"pick": "max"|"min", '
                           '"key": "<stack key>"}')
    unknown = set(sel) - _SELECTOR_KEYS
    if unknown:
        raise _fail(where, f"unknown stack selector field(s) {', '.join(sorted(unknown))}")
    if "at_least" in sel and not isinstance(sel["at_least"], int | float):
        raise _fail(where, "'at_least' must be a number")
    return dict(sel)


def validate_protocols(data: Any) -> dict[str, Any]:
    """Check a protocols document (the shipped one or a site's own) and return it normalised.

    Each viewport's ``show`` entries become ``{"source": name, "stack": selector or None}``; every source must
    be a role id or a map name listed under ``maps``; ``rows * cols`` must equal the number of viewports.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("protocols"), list) or not data["protocols"]:
        raise _fail("document", 'expected {"protocols": [{"id", "rows", "cols", "viewports": [...]}, ...]}')
    maps = _map_table(data)
    roles = set(role_ids()) - {UNASSIGNED}
    known = roles | set(maps)
    named = {k: v for k, v in data.get("stack_selectors", {}).items() if k not in ("source", "sources")}
    orientations = list(data.get("orientations") or ["Axial", "Sagittal", "Coronal"])
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, proto in enumerate(data["protocols"]):
        pid = proto.get("id") if isinstance(proto, Mapping) else None
        if not isinstance(pid, str) or not pid:
            raise _fail(f"protocol #{i + 1}", "every protocol needs a string 'id'")
        if pid in seen:
            raise _fail(pid, "this id is used twice; protocol ids must be unique")
        seen.add(pid)
        rows, cols, views = proto.get("rows"), proto.get("cols"), proto.get("viewports")
        if not (isinstance(rows, int) and isinstance(cols, int) and rows >= 1 and cols >= 1):
            raise _fail(pid, "'rows' and 'cols' must be positive integers")
        if not isinstance(views, list) or len(views) != rows * cols:
            n = len(views) if isinstance(views, list) else 0
            raise _fail(pid, f"{rows}x{cols} grid needs {rows * cols} viewports but {n} are listed")
        vps = []
        for k, vp in enumerate(views):
            where = f"{pid} viewport {k + 1}"
            show = vp.get("show") if isinstance(vp, Mapping) else None
            if not isinstance(show, list) or not show:
                raise _fail(where, "'show' must list at least one role or map name")
            prefs = []
            for entry in show:
                src, sel = (entry, None) if isinstance(entry, str) else (
                    (entry.get("source"), entry.get("stack")) if isinstance(entry, Mapping) else (None, None))
                if src not in known:
                    raise _fail(where, f"'{src}' is neither a role ({', '.join(sorted(roles))}) nor a map listed "
                                       "under 'maps'")
                prefs.append({"source": src, "stack": _check_selector(where, sel, named)})
            orientation = vp.get("orientation", proto.get("orientation", "Axial"))
            if orientation not in orientations:
                raise _fail(where, f"orientation '{orientation}' is not one of {', '.join(orientations)}")
            vps.append({"label": str(vp.get("label") or prefs[0]["source"]), "show": prefs,
                        "orientation": orientation, "allow_repeat": bool(vp.get("allow_repeat", False))})
        out.append({"id": pid, "label": str(proto.get("label") or pid), "why": str(proto.get("why", "")),
                    "rows": rows, "cols": cols, "linked": bool(proto.get("linked", True)), "viewports": vps})
    return {"protocols": out, "maps": maps, "validated": True}


_BUILTIN: dict[str, Any] | None = None


def builtin_protocols() -> dict[str, Any]:
    """The shipped protocols, validated once."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = validate_protocols(load_json("hanging_protocols.json"))
    return _BUILTIN


def load_protocols(path: str | Path) -> dict[str, Any]:
    """A site's own protocols file (same shape as the shipped one), validated."""
    data = read_json_file(path, "a hanging protocols file (the shape of resources/hanging_protocols.json)")
    return validate_protocols(data)


def protocol_ids(protocols: Mapping[str, Any] | None = None) -> list[str]:
    """Protocol ids in the document's order (the order a UI lists them)."""
    return [p["id"] for p in (protocols or builtin_protocols())["protocols"]]


def protocol_label(protocol_id: str, protocols: Mapping[str, Any] | None = None) -> str:
    return _protocol(protocol_id, protocols or builtin_protocols())["label"]


def source_label(name: str | None, protocols: Mapping[str, Any] | None = None) -> str:
    """Readable name of a role or map."""
    if name is None:
        return ""
    maps = (protocols or builtin_protocols())["maps"]
    return maps[name]["label"] if name in maps else role_label(name)


def _protocol(protocol_id: str, protocols: Mapping[str, Any]) -> dict[str, Any]:
    for p in protocols["protocols"]:
        if p["id"] == protocol_id:
            return p
    raise LiverMetsError(f"unknown hanging protocol '{protocol_id}'; choose one of "
                         f"{', '.join(p['id'] for p in protocols['protocols'])}")


# ----------------------------------------------------------------------------------------- resolution
def _normalise(available: Mapping[str, Any], maps: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Candidate]]:
    """Candidates per canonical source name (map aliases folded in), ids as strings, order kept."""
    if not isinstance(available, Mapping):
        raise LiverMetsError("available images must be a mapping {role or map name: [(id, stack meta), ...]}")
    alias = {a: name for name, m in maps.items() for a in m.get("aliases", [])}
    out: dict[str, list[Candidate]] = {}
    for key in available:  # keys in the caller's order, but the result does not depend on it
        entries = available[key]
        if isinstance(entries, str | tuple):
            entries = [entries]
        cands: list[Candidate] = []
        for e in entries:
            if isinstance(e, str):
                cands.append((e, {}))
            elif isinstance(e, Sequence) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], Mapping):
                cands.append((e[0], e[1]))
            else:
                raise LiverMetsError(f"available['{key}'] holds {e!r}; each entry must be an id or (id, stack meta)")
        out.setdefault(alias.get(str(key), str(key)), []).extend(cands)
    return out


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def _select(cands: Sequence[Candidate], sel: Mapping[str, Any] | None, name: str) -> tuple[Candidate | None, str]:
    """(chosen candidate, note) or (None, why not)."""
    if not cands:
        return None, f"no {source_label(name)} image"
    if sel is None:
        more = f" (first of {len(cands)})" if len(cands) > 1 else ""
        return cands[0], more
    key, pick, unit = sel["key"], sel["pick"], sel.get("unit", "")
    valued = [(v, i, c) for i, c in enumerate(cands) if (v := _number(c[1].get(key))) is not None]
    if not valued:
        return None, f"no {source_label(name)} image carries a {_key_word(key)}"
    # ties keep the caller's order; distinct values make the choice independent of it
    v, _, best = max(valued, key=lambda t: (t[0], -t[1])) if pick == "max" else min(valued, key=lambda t: (t[0], t[1]))
    word = "highest" if pick == "max" else "lowest"
    values = "/".join(f"{x:g}" for x in sorted({t[0] for t in valued}))
    unit_text = f" {unit}" if unit else ""
    if "at_least" in sel and v < float(sel["at_least"]):
        return None, (f"{source_label(name)}: the {word} {_key_word(key)} is {v:g}{unit_text}, below "
                      f"{float(sel['at_least']):g}{unit_text}")
    return best, f" ({_key_word(key)} {v:g}{unit_text}, {word} of {values})"


def choose_layout(protocol_id: str, available: Mapping[str, Any],
                  protocols: Mapping[str, Any] | None = None) -> LayoutPlan:
    """Resolve ``protocol_id`` against the images a study offers.

    Each viewport takes its first preference that the study can show; a later preference is a fallback (said
    so in ``reason``); when none fits the viewport stays empty and ``reason`` lists why each one failed. An
    image already shown in an earlier viewport is not repeated unless the viewport allows it. Deterministic:
    the same inputs give the same plan, whatever the order of the roles in ``available``.
    """
    protos = builtin_protocols() if protocols is None else protocols
    if not protos.get("validated"):
        protos = validate_protocols(protos)  # a raw document, e.g. read with json.load
    proto = _protocol(protocol_id, protos)
    cands = _normalise(available, protos["maps"])
    used: dict[str, int] = {}
    viewports: list[ViewportPlan] = []
    for k, vp in enumerate(proto["viewports"]):
        row, col = divmod(k, proto["cols"])
        failures: list[str] = []
        chosen: tuple[str, Candidate, str] | None = None
        for pref in vp["show"]:
            name = pref["source"]
            pool = cands.get(name, [])
            fresh = pool if vp["allow_repeat"] else [c for c in pool if c[0] not in used]
            if pool and not fresh:
                failures.append(f"{source_label(name, protos)} is already shown in viewport {used[pool[0][0]] + 1}")
                continue
            if not pool:
                kind = f"no '{name}' map" if name in protos["maps"] else f"no series with role '{name}'"
                failures.append(f"{kind} ({source_label(name, protos)})")
                continue
            cand, note = _select(fresh, pref["stack"], name)
            if cand is None:
                failures.append(note)
                continue
            chosen = (name, cand, note)
            break
        base = dict(index=k, row=row, col=col, label=vp["label"], orientation=vp["orientation"])
        if chosen is None:
            viewports.append(ViewportPlan(**base, source=None, node_id=None,
                                          reason="nothing to show: " + "; ".join(failures)))
            continue
        name, (node_id, meta), note = chosen
        used.setdefault(node_id, k)
        what = f"{source_label(name, protos)}{note}"
        if failures:
            reason = f"{what}, instead of the first choice: " + "; ".join(failures)
        else:
            reason = what
        viewports.append(ViewportPlan(**base, source=name, node_id=node_id, stack_meta=dict(meta),
                                      fallback=bool(failures), reason=reason))
    return LayoutPlan(proto["id"], proto["label"], proto["rows"], proto["cols"], proto["linked"], tuple(viewports))


def protocol_choices(available: Mapping[str, Any], protocols: Mapping[str, Any] | None = None
                     ) -> list[tuple[str, str, int, int]]:
    """(id, label, viewports filled, viewports) for every protocol: lets a UI grey out or rank protocols."""
    protos = builtin_protocols() if protocols is None else protocols
    if not protos.get("validated"):
        protos = validate_protocols(protos)
    out = []
    for pid in protocol_ids(protos):
        plan = choose_layout(pid, available, protos)
        out.append((pid, plan.label, plan.n_viewports - len(plan.missing), plan.n_viewports))
    return out


def available_from_series(series: Iterable[Any], maps: Mapping[str, Any] | Iterable[str] = ()
                          ) -> dict[str, list[Candidate]]:
    """``available`` for :func:`choose_layout` from core :class:`~LiverMetsReviewLib.series.Series` and map names.

    A single-stack series is ``"<role>"`` (``"<role>#2"`` for the second series of a role); a multi-stack one
    gives one id per stack, ``"<role>[k]"``, with that stack's meta. Maps are ``"map:<name>"``. Unassigned
    series are left out.
    """
    out: dict[str, list[Candidate]] = {}
    count: dict[str, int] = {}
    for s in series:
        if s.role == UNASSIGNED:
            continue
        count[s.role] = count.get(s.role, 0) + 1
        suffix = "" if count[s.role] == 1 else f"#{count[s.role]}"
        if len(s.stacks) == 1:
            out.setdefault(s.role, []).append((f"{s.role}{suffix}", dict(s.stack_meta[0])))
        else:
            out.setdefault(s.role, []).extend((f"{s.role}{suffix}[{k}]", dict(m)) for k, m in enumerate(s.stack_meta))
    for name in maps:
        out.setdefault(str(name), []).append((f"map:{name}", {}))
    return out


def available_from_scan(series: Iterable[Any]) -> dict[str, list[Candidate]]:
    """``available`` for :func:`choose_layout` from classified :class:`~LiverMetsReviewLib.study.scan.SeriesInfo`.

    One entry per stack with an assigned role, id ``"<series number>"`` (``"<series number>[k]"`` for stack k of
    a multi-stack series); the stack meta adds the series description and UID. Within a role, trace diffusion
    images come before single-direction ones (the reading image).
    """
    out: dict[str, list[Candidate]] = {}
    for s in series:
        roles = s.stack_roles if len(s.stack_roles) == len(s.stacks) else [s.role] * len(s.stacks)
        num = s.series_number if s.series_number is not None else s.series_uid
        for k, (st, role) in enumerate(zip(s.stacks, roles, strict=True)):
            if role == UNASSIGNED or "+" in role:
                continue
            meta = {**st.meta(), "description": s.description, "series_uid": s.series_uid}
            out.setdefault(role, []).append((f"{num}[{k}]" if len(s.stacks) > 1 else str(num), meta))
    for cands in out.values():
        cands.sort(key=lambda c: "diffusion_direction" in c[1] and not c[1].get("is_trace"))
    return out

