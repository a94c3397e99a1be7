"""The clinical context of a study (``clinical_context.json``): format, validation, reading and writing.

The same file is written by the phantom beside ``ground_truth.json`` and taken by the checklist's
``--context``. Format ``livermets-clinical-context`` version 1 (vocabulary and field list in
``resources/clinical_context_format.json``)::

    {"format": "livermets-clinical-context", "version": 1,
     "study_date": "2026-03-10",
     "primary_tumour": "colorectal", "primary_tumour_detail": "sigmoid adenocarcinoma, resected",
     "systemic_therapies": [{"regimen": "FOLFOX", "agents": ["oxaliplatin", "fluorouracil"],
                             "start": "2025-03-01", "end": "2025-08-15"}],
     "locoregional_therapies": [{"id": "rfa_1", "type": "RFA", "date": "2025-10-20",
                                 "target": "segment V metastasis", "lesion": "ablation_expected"}],
     "stem_cell_transplant_date": null,
     "bilirubin_umol_l": 12.0, "liver_function": "normal",
     "known_steatosis": false, "prior_study_date": "2025-12-02", "other_history": ""}

Validation is strict about what a rule reads (dates, vocabulary, numbers) and says in one sentence what is
wrong, in which file, and what to write instead.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any

from .errors import LiverMetsError
from .resources import load_json, read_json_file

FORMAT_FILE = "clinical_context_format.json"
FORMAT = "livermets-clinical-context"
VERSION = 1


def context_vocabulary() -> dict[str, Any]:
    """The format's vocabulary (primary tumours, locoregional types, agent classes)."""
    return load_json(FORMAT_FILE)


def agents_of_class(name: str) -> set[str]:
    """Agent names of a class in the vocabulary, e.g. ``platinum`` -> {oxaliplatin, cisplatin, carboplatin}."""
    classes = context_vocabulary()["agent_classes"]
    if name not in classes:
        raise LiverMetsError(f"agent class '{name}' is unknown; use one of {', '.join(classes)}")
    return set(classes[name])


def has_agent_class(context: dict[str, Any], name: str) -> bool:
    """Whether any systemic therapy of the context contains an agent of that class."""
    members = agents_of_class(name)
    return any(a in members for th in context.get("systemic_therapies", []) for a in th.get("agents", []))


def clinical_context_document(context: dict[str, Any]) -> dict[str, Any]:
    """A context as a versioned document: format and version first, optional keys filled with null/""."""
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    doc.update({k: v for k, v in context.items() if k not in ("format", "version")})
    doc.setdefault("primary_tumour_detail", None)
    doc.setdefault("stem_cell_transplant_date", None)
    doc.setdefault("other_history", "")
    return doc


def _fail(where: str, what: str) -> None:
    raise LiverMetsError(f"{where}: {what}")


def _date(value: Any, where: str, key: str, *, nullable: bool = False) -> _dt.date | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        _fail(where, f"'{key}' must be a date written YYYY-MM-DD{' or null' if nullable else ''}, not {value!r}")
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        _fail(where, f"'{key}' is '{value}', not a date; write it as YYYY-MM-DD")
    return None  # unreachable


def _check_systemic(doc: dict[str, Any], where: str, study: _dt.date) -> None:
    items = doc["systemic_therapies"]
    if not isinstance(items, list):
        _fail(where, "'systemic_therapies' must be a list (empty when there was none)")
    for i, th in enumerate(items):
        key = f"systemic_therapies[{i}]"
        if not isinstance(th, dict) or not isinstance(th.get("regimen"), str):
            _fail(where, f"{key} must be an object with a 'regimen' text, 'agents', 'start' and 'end'")
        agents = th.get("agents")
        if not isinstance(agents, list) or not agents or not all(isinstance(a, str) and a for a in agents):
            _fail(where, f"{key} needs 'agents', a non-empty list of agent names such as [\"oxaliplatin\"]")
        if any(a != a.strip().lower() for a in agents):
            _fail(where, f"{key}: write agent names in lower case without spaces around them, e.g. oxaliplatin")
        start = _date(th.get("start"), where, f"{key}.start")
        end = _date(th.get("end"), where, f"{key}.end", nullable=True)
        if end is not None and end < start:
            _fail(where, f"{key} ends ({end}) before it starts ({start}); correct the dates")
        if start > study:
            _fail(where, f"{key} starts after the study date {study}; a therapy in the context must precede the study")


def _check_locoregional(doc: dict[str, Any], where: str, study: _dt.date, vocab: dict[str, Any]) -> None:
    items = doc["locoregional_therapies"]
    if not isinstance(items, list):
        _fail(where, "'locoregional_therapies' must be a list (empty when there was none)")
    types = vocab["locoregional_types"]
    ids = set()
    for i, th in enumerate(items):
        key = f"locoregional_therapies[{i}]"
        if not isinstance(th, dict):
            _fail(where, f"{key} must be an object with 'id', 'type' and 'date'")
        if th.get("type") not in types:
            _fail(where, f"{key} has type {th.get('type')!r}; use one of {', '.join(types)}")
        tid = th.get("id")
        if not isinstance(tid, str) or not tid or tid in ids:
            _fail(where, f"{key} needs an 'id' text that no other locoregional therapy uses")
        ids.add(tid)
        if _date(th.get("date"), where, f"{key}.date") > study:
            _fail(where, f"{key} ({tid}) is dated after the study date {study}; it must precede the study")
        for opt in ("target", "lesion"):
            if th.get(opt) is not None and not isinstance(th.get(opt), str):
                _fail(where, f"{key}.{opt} must be a text or null")


def _check_scalars(doc: dict[str, Any], where: str, study: _dt.date, vocab: dict[str, Any]) -> None:
    if doc["primary_tumour"] not in vocab["primary_tumours"]:
        _fail(where, f"primary_tumour {doc['primary_tumour']!r} is unknown; use one of "
                     f"{', '.join(vocab['primary_tumours'])}")
    bili = doc["bilirubin_umol_l"]
    if bili is not None and (isinstance(bili, bool) or not isinstance(bili, int | float)
                             or not math.isfinite(bili) or not 0 < bili < 1000):
        _fail(where, f"bilirubin_umol_l is {bili!r}; give total bilirubin in umol/L (e.g. 12), or null")
    if doc["known_steatosis"] not in (True, False, None):
        _fail(where, f"known_steatosis is {doc['known_steatosis']!r}; write true, false or null")
    prior = _date(doc["prior_study_date"], where, "prior_study_date", nullable=True)
    if prior is not None and prior > study:
        _fail(where, f"prior_study_date {prior} is after the study date {study}; give an earlier study or null")
    _date(doc.get("stem_cell_transplant_date"), where, "stem_cell_transplant_date", nullable=True)
    lf = doc.get("liver_function")
    if lf is not None and lf not in vocab["liver_function"]:
        _fail(where, f"liver_function is {lf!r}; use one of {', '.join(vocab['liver_function'])} (or leave it out)")


def validate_clinical_context(doc: Any, where: str = "clinical context") -> dict[str, Any]:
    """Check a parsed context document; return it unchanged, or raise one :class:`LiverMetsError` sentence."""
    vocab = context_vocabulary()
    if not isinstance(doc, dict):
        _fail(where, "the clinical context must be a JSON object")
    if doc.get("format") != FORMAT:
        _fail(where, f"'format' is {doc.get('format')!r}, not '{FORMAT}'; is this a clinical context file?")
    if doc.get("version") != VERSION:
        _fail(where, f"clinical context version {doc.get('version')!r} is not supported; this software reads "
                     f"version {VERSION}")
    missing = [k for k in vocab["required"] if k not in doc]
    if missing:
        _fail(where, f"the clinical context lacks {', '.join(missing)}; add them (null where unknown)")
    study = _date(doc["study_date"], where, "study_date")
    _check_scalars(doc, where, study, vocab)
    _check_systemic(doc, where, study)
    _check_locoregional(doc, where, study, vocab)
    return doc


def read_clinical_context(path: str | Path) -> dict[str, Any]:
    """Read and validate ``clinical_context.json``; errors name the file and what to correct."""
    path = Path(path)
    doc = read_json_file(path, "a clinical context file (clinical_context.json)")
    return validate_clinical_context(doc, str(path))


def write_clinical_context(context: dict[str, Any], path: str | Path) -> Path:
    """Validate and write a context document atomically (format and version added when missing)."""
    from .io.atomic import write_json_atomic

    doc = validate_clinical_context(clinical_context_document(context), str(path))
    return write_json_atomic(path, doc, allow_nan=False)
