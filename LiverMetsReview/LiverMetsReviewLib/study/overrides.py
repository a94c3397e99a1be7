"""The reader's roles: an overrides file or a study folder's ``roles.json`` read as overrides, and applied
to classified series (confidence 1, the classifier's reason kept when it agreed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..resources import read_json_file
from ..roles import UNASSIGNED, role_ids
from .scan import SeriesInfo, StudyScan

_OVERRIDES_FORMATS = ('an overrides file {"overrides": {"<series UID or number>": "<role>"}} or the roles.json that '
                      "'livermets load' or 'livermets phantom' writes (format livermets-study-folder)")


Override = str | Sequence[str] | Mapping[int, str]


def load_overrides(path: str | Path) -> dict[str, Override]:
    """The reader's roles, ``{"<SeriesInstanceUID or series number>": role or [role per stack]}``, from either file.

    1. An overrides file ``{"overrides": {key: role}}``. A role is a role id (applied to every stack) or a list
       with one role id per stack (in the order 'livermets classify --json' lists them), e.g.
       ``["t1_opposed_phase", "t1_in_phase"]``; "unassigned" removes a series from the study.
    2. The ``roles.json`` of a study folder (``livermets load``/``phantom``, possibly edited), or that folder:
       see :func:`overrides_from_study_index`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "roles.json"
    data = read_json_file(path, _OVERRIDES_FORMATS)
    if isinstance(data, dict) and data.get("format") == "livermets-study-folder":
        return overrides_from_study_index(data, path)
    overrides = data.get("overrides") if isinstance(data, dict) else None
    if not isinstance(overrides, dict):
        raise LiverMetsError(f"{path} is neither of the two role files: give {_OVERRIDES_FORMATS}")
    return {str(k): v for k, v in overrides.items()}


def _index_key(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return None
    for key in ("series_uid", "series_number"):
        if meta.get(key) not in (None, ""):
            return str(meta[key])
    return None


def overrides_from_study_index(index: Mapping[str, Any], path: str | Path = "roles.json") -> dict[str, Override]:
    """Overrides from a study folder's ``roles.json``: each series entry's ``role`` for the DICOM series it came from.

    An entry names its series by ``meta.series_uid`` (``livermets load``) or ``meta.series_number`` (the phantom,
    whose DICOM export keeps its numbers). Entries of one series that hold different stacks (a dual-echo series
    loaded as opposed and in phase) list them in ``meta.stack_indices``; its other stacks become unassigned. A
    series the index knows from ``classification`` but does not list among ``series`` was not loaded and stays
    out (unassigned); series the file does not mention keep the classifier's role.
    """
    entries = index.get("series")
    if not isinstance(entries, list):
        raise LiverMetsError(f'{path}: a study index needs a "series" list; give {_OVERRIDES_FORMATS}')
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for k, entry in enumerate(entries):
        role = entry.get("role") if isinstance(entry, dict) else None
        key = _index_key(entry.get("meta")) if isinstance(entry, dict) else None
        if not isinstance(role, str) or key is None:
            raise LiverMetsError(f"{path}: series entry {k + 1} lacks a role or a meta.series_uid/series_number, so "
                                 "it cannot be matched to a DICOM series; fix the entry or use an overrides file")
        grouped.setdefault(key, []).append((role, entry["meta"].get("stack_indices")))
    out: dict[str, Override] = {}
    for key, parts in grouped.items():
        if len(parts) == 1 and parts[0][1] is None:
            out[key] = parts[0][0]
            continue
        indices = [ix for _, ix in parts]
        if any(not isinstance(ix, list) or not all(isinstance(i, int) and i >= 0 for i in ix) for ix in indices):
            raise LiverMetsError(f"{path}: series {key} has {len(parts)} entries but not every one lists its "
                                 "meta.stack_indices, so the stacks cannot be told apart; use an overrides file with "
                                 "one role per stack")
        by_stack: dict[int, str] = {}
        for role, ix in parts:
            for i in ix:
                if i in by_stack:
                    raise LiverMetsError(f"{path}: stack {i} of series {key} is listed by two entries; keep one")
                by_stack[i] = role
        out[key] = by_stack
    mentioned = {str(e["meta"][k]) for e in entries for k in ("series_uid", "series_number")
                 if e["meta"].get(k) not in (None, "")}
    for row in index.get("classification") or []:
        ids = {str(row[k]) for k in ("series_uid", "series_number") if isinstance(row, dict) and row.get(k)}
        key = _index_key(row)
        if key is not None and not ids & mentioned:
            out[key] = UNASSIGNED
    return out


def apply_overrides(series: Sequence[SeriesInfo], overrides: Mapping[str, Override]) -> None:
    """Set roles chosen by the reader (confidence 1, reason 'set by the reader', plus the classifier's if it agreed).

    A value is one role for every stack, a list with one role per stack, or {stack index: role} (the stacks
    it does not name become unassigned).
    """
    valid = set(role_ids())
    scan = StudyScan("(study)", list(series), [], 0)
    for key, value in overrides.items():
        s = scan.find(key)
        if isinstance(value, Mapping):
            roles = [UNASSIGNED] * len(s.stacks)
            for i, r in value.items():
                if not str(i).isdigit() or int(i) >= len(s.stacks):
                    raise LiverMetsError(f"{s.label} has stacks 0-{len(s.stacks) - 1}; the override names stack "
                                         f"'{i}', which does not exist")
                roles[int(i)] = r
        elif isinstance(value, str):
            roles = [value] * len(s.stacks)
        elif isinstance(value, list | tuple):
            roles = list(value)
        else:
            raise LiverMetsError(f"the override for {s.label} is {value!r}; give a role, a list of roles (one per "
                                 "stack) or {stack index: role}")
        if len(roles) != len(s.stacks):
            raise LiverMetsError(f"{s.label} has {len(s.stacks)} stacks but the override lists {len(roles)} roles")
        bad = [r for r in roles if r not in valid]
        if bad:
            raise LiverMetsError(f"unknown role '{bad[0]}' for {s.label}; known roles: {', '.join(sorted(valid))}")
        agreed = stack_roles_of(s) == roles and s.reason and not s.reason.startswith("set by the reader")
        s.stack_roles = roles
        s.role = "+".join(dict.fromkeys(roles))
        s.confidence = 1.0
        # a reused roles.json repeats the classifier's choices: keep why, so the reader still sees the evidence
        s.reason = f"set by the reader, as classified ({s.reason})" if agreed else "set by the reader"


def stack_roles_of(s: SeriesInfo) -> list[str]:
    """One role per stack (``unassigned`` when classification has not run)."""
    return s.stack_roles if len(s.stack_roles) == len(s.stacks) else [s.role] * len(s.stacks)

