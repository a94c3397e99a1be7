"""Files left out while reading the inputs, carried into every output's record.

A DICOM folder may hold corrupt, truncated or duplicate files that the scan skipped. Whoever reads a map later
must see that part of the series may be missing, so the list travels: scan -> ``roles.json`` ("skipped") and
every NRRD written by ``load`` (key ``skipped_inputs``) -> the ``--json`` of each map command and the key/value
record of each map it writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MAX_LISTED = 100  # a key/value record holds the first ones; the count says how many there were


def _clean(items: Any) -> list[dict[str, str]]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and "path" in item:
            out.append({"path": str(item["path"]), "reason": str(item.get("reason", ""))})
    return out


def merge(*lists: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """One list, each file once, in order of first appearance."""
    seen: set[str] = set()
    out = []
    for items in lists:
        for item in items:
            if item["path"] not in seen:
                seen.add(item["path"])
                out.append(item)
    return out


def from_scan(scan: Any) -> list[dict[str, str]]:
    """(path, reason) of every file a :class:`StudyScan` skipped."""
    return [{"path": s.path, "reason": s.reason} for s in scan.skipped]


def from_study_folder(path: str | Path) -> list[dict[str, str]]:
    """The files ``livermets load`` skipped for a study folder (its ``roles.json`` "skipped"); [] when none."""
    from ..io.study_folder import read_study_index

    p = Path(path)
    try:
        _, index = read_study_index(p)
    except ValueError:  # not a study folder: the command reports that itself
        return []
    return _clean(index.get("skipped"))


def from_images(images: Iterable[Any]) -> list[dict[str, str]]:
    """The skipped files recorded in input images' metadata (written by ``livermets load``)."""
    from ..io.images import get_metadata

    return merge(*(_clean(get_metadata(img).get("skipped_inputs")) for img in images))


def record(skipped: list[dict[str, str]]) -> dict[str, Any]:
    """Key/value entries for an output image: the count and the first :data:`MAX_LISTED` files."""
    if not skipped:
        return {"skipped_inputs_count": 0}
    return {"skipped_inputs_count": len(skipped), "skipped_inputs": skipped[:MAX_LISTED]}


def attach(metadata: Mapping[str, Mapping[str, Any]], skipped: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Each output's metadata with the skipped-inputs record added."""
    extra = record(skipped)
    return {name: {**meta, **extra} for name, meta in metadata.items()}
