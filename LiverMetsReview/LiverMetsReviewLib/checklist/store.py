"""``review.json``: the reader's answers, saved the moment they are given, never lost.

Every answer is written at once (temporary file, fsync, rename: ``io.atomic``); before each write the last
good sidecar is copied to ``review.json.bak``. Opening a sidecar that is corrupt or truncated reports it,
keeps the damaged file as ``review.json.corrupt`` and restores ``review.json.bak``. A sidecar written with
an older checklist version is read with its answers kept; answers to items that no longer exist are kept
aside under ``vanished_answers`` and reported.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..io.atomic import write_bytes_atomic, write_json_atomic
from .data import load_checklist

FORMAT = "livermets-review"
VERSION = 1


def _read(path: Path) -> dict[str, Any] | None:
    """The parsed sidecar, or None when it is damaged (not JSON, not a review)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT else None


def answers_of(doc: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{scope id: {item id: {answer, note, at}}} from a review document (its ``answers`` section)."""
    return {k: dict(v) for k, v in (doc.get("answers") or {}).items()}


def load_answers(path: str | Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Answers from ``review.json`` (or its backup when it is damaged) and notes about what happened."""
    path = Path(path)
    notes: list[str] = []
    if not path.exists():
        return {}, notes
    doc = _read(path)
    if doc is None:
        bak = path.with_name(path.name + ".bak")
        good = _read(bak) if bak.exists() else None
        os.replace(path, path.with_name(path.name + ".corrupt"))
        if good is None:
            notes.append(f"{path} was damaged (kept as {path.name}.corrupt) and no earlier good copy exists; "
                         "the review starts without answers")
            return {}, notes
        notes.append(f"{path} was damaged (kept as {path.name}.corrupt); restored the last good copy {bak.name}")
        write_bytes_atomic(path, bak.read_bytes())
        doc = good
    current = load_checklist()["version"]
    if doc.get("checklist_version") != current:
        notes.append(f"{path.name} was written with checklist {doc.get('checklist_version')}; read with checklist "
                     f"{current}, answers kept")
    if doc.get("version", 0) > VERSION:
        raise LiverMetsError(f"{path} was written by a newer LiverMetsReview (review format {doc['version']}); "
                             "update LiverMetsReview to open it")
    return answers_of(doc), notes


def reconcile(answers: Mapping[str, Mapping[str, Any]], checklist: Mapping[str, Any], scopes: list[str]
              ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[str]]:
    """Split answers into those of items that exist and those that vanished (kept, reported)."""
    ids = {it["id"]: it["scope"] for it in checklist["items"]}
    kept: dict[str, dict[str, Any]] = {}
    vanished: dict[str, dict[str, Any]] = {}
    notes = []
    for scope, items in answers.items():
        for item_id, a in items.items():
            want = "study" if scope == "study" else "lesion"
            if ids.get(item_id) == want and (scope == "study" or scope in scopes):
                kept.setdefault(scope, {})[item_id] = dict(a)
            else:
                vanished.setdefault(scope, {})[item_id] = dict(a)
                notes.append(f"answer to '{item_id}' ({scope}) kept aside: the item or lesion no longer exists "
                             f"in checklist {checklist['version']}")
    return kept, vanished, notes


class ReviewSession:
    """One review's answers and its sidecar. ``evaluate`` recomputes the engine's output from the answers.

    ``compute(answers) -> engine output`` is injected so this class stays free of measurement reading.
    """

    def __init__(self, path: str | Path, compute: Callable[[dict[str, Any]], dict[str, Any]],
                 scopes: list[str], checklist: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.checklist = checklist or load_checklist()
        self.compute = compute
        self.scopes = list(scopes)
        self.inputs: dict[str, str] = {}  # where the review's inputs came from (study, lesions, context folders)
        raw, self.notes = load_answers(self.path)
        self.answers, self.vanished, more = reconcile(raw, self.checklist, scopes)
        self.notes += more
        self.result = compute(self.answers)

    def answer(self, scope: str, item_id: str, answer: str | None, note: str = "") -> dict[str, Any]:
        """Record (or with None clear) one answer, save at once, and return the updated output."""
        allowed = self.checklist["answers"]
        if answer is not None and answer not in allowed:
            raise LiverMetsError(f"answer '{answer}' to '{item_id}' is not one of {', '.join(allowed)}")
        if scope != "study" and scope not in self.scopes:
            raise LiverMetsError(f"lesion '{scope}' is not in this review; answer for one of "
                                 f"{', '.join(self.scopes) or 'no lesion'} or 'study'")
        known = {it["id"]: it["scope"] for it in self.checklist["items"]}
        if known.get(item_id) != ("study" if scope == "study" else "lesion"):
            raise LiverMetsError(f"'{item_id}' is not a {'study' if scope == 'study' else 'lesion'} item of "
                                 f"checklist {self.checklist['version']}")
        if answer is None:
            self.answers.get(scope, {}).pop(item_id, None)
        else:
            self.answers.setdefault(scope, {})[item_id] = {
                "answer": answer, "note": note, "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
        self.result = self.compute(self.answers)
        self.save()
        return self.result

    def document(self) -> dict[str, Any]:
        return review_document(self.result, self.answers, self.vanished, self.notes, self.inputs)

    def save(self) -> Path:
        """Copy the last good sidecar to .bak, then write the new one atomically."""
        if self.path.exists() and _read(self.path) is not None:
            write_bytes_atomic(self.path.with_name(self.path.name + ".bak"), self.path.read_bytes())
        return write_json_atomic(self.path, self.document(), allow_nan=False)


def _item_out(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "group", "question", "applicable", "not_applicable_because", "suggested", "answer",
            "note", "confidence", "borderline", "evidence", "explanation", "wording", "unreliable", "protocol",
            "series", "sources")
    return {k: row.get(k) for k in keys}


def review_document(result: Mapping[str, Any], answers: Mapping[str, Any], vanished: Mapping[str, Any],
                    notes: list[str], inputs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``review.json`` document: the issue's fields first, then answers, vanished answers and notes; ``inputs``
    (study, lesions, context paths) lets ``livermets report`` find the review's measurements and images."""
    study = result["study"]
    return {
        "format": FORMAT, "version": VERSION, "checklist_version": result["checklist_version"],
        "note": "Suggestions are evidence from the measurements for the reader to accept or override; "
                "nothing here is a diagnosis.",
        "study": {"items": [_item_out(r) for r in study["items"]], "summary": study["summary"],
                  "values": study["values"], "value_origin": study["value_origin"], "progress": study["progress"]},
        "lesions": [{"id": les["id"], "couinaud_segment": les["couinaud_segment"],
                     "couinaud_border": les.get("couinaud_border"),
                     "long_axis_mm": les["long_axis_mm"], "impression": les["impression"],
                     "pitfalls_in_play": les.get("pitfalls_in_play", []),
                     "items": [_item_out(r) for r in les["items"]], "progress": les["progress"]}
                    for les in result["lesions"]],
        "facts": result.get("facts", []), "answers": answers, "vanished_answers": vanished, "notes": notes,
        "inputs": dict(inputs or {}),
    }
