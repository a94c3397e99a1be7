"""A study as a folder of NRRD files plus ``roles.json``: what ``livermets phantom`` and ``livermets load``
write and what the other commands accept.

Layout: one file per stack, named by role (``t2.nrrd``; ``dwi_b800.nrrd``; ``multi_echo_gre_e3.nrrd``),
and ``roles.json`` listing every series with its files, per-stack metadata (b-value, echo time) and
series metadata. Coordinates in the files are LPS (NRRD ``space: left-posterior-superior``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..resources import read_json_file
from ..series import Series
from .atomic import write_json_atomic
from .images import read_image, write_image

FORMAT = "livermets-study-folder"
VERSION = 1
INDEX = "roles.json"


def _stack_name(series: Series, k: int) -> str:
    if len(series.stacks) == 1:
        return f"{series.role}.nrrd"
    meta = series.stack_meta[k]
    if "b_value" in meta:
        b = float(meta["b_value"])
        return f"{series.role}_b{int(b) if b.is_integer() else b:g}.nrrd"
    return f"{series.role}_e{k + 1}.nrrd"


def _plain(value: Any) -> bool:
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return False


def _file_metadata(series: Series, k: int) -> dict[str, Any]:
    """What each file carries by itself: role, the series' acquisition facts, then the stack's own (which win).

    Commands given single files (``livermets fat``, ``adc``) read field strength, echo times and image type
    from here, so a file keeps what is needed to check that it is used as what it is.
    """
    meta = {key: v for key, v in series.meta.items() if _plain(v)}
    meta.update({key: v for key, v in series.stack_meta[k].items() if _plain(v)})
    return {"role": series.role, **meta}


def write_study_folder(series: list[Series], out_dir: str | Path, extra: dict[str, Any] | None = None,
                       file_meta: dict[str, Any] | None = None) -> Path:
    """Write every series and the ``roles.json`` index; returns the index path. ``file_meta`` is added to every
    image file's key/value record (e.g. the skipped input files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    used: set[str] = set()
    for s in series:
        files = []
        for k, stack in enumerate(s.stacks):
            name = _stack_name(s, k)
            if name in used:  # two series with one role: keep both, never overwrite
                name = name.replace(".nrrd", f"_{len(used)}.nrrd")
            used.add(name)
            write_image(stack, out / name, {**_file_metadata(s, k), **(file_meta or {})})
            files.append(name)
        entries.append({"role": s.role, "files": files, "stack_meta": s.stack_meta, "meta": s.meta})
    index = {"format": FORMAT, "version": VERSION, "coordinate_system": "LPS", "series": entries}
    if extra:
        index.update(extra)
    path = out / INDEX
    write_json_atomic(path, index, default=str)
    return path


def read_study_index(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The validated ``roles.json`` of a study folder (given as the folder or the file) and its path."""
    path = Path(path)
    index_path = path / INDEX if path.is_dir() else path
    index = read_json_file(index_path, "a study folder written by 'livermets phantom' or 'livermets load'")
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("series"), list):
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise LiverMetsError(f"{index_path} is not a study index written by 'livermets load' or 'livermets phantom' "
                             f"(format '{found}')")
    return index_path, index


def read_study_folder(path: str | Path, roles: Iterable[str] | None = None) -> list[Series]:
    """Read a folder (or its ``roles.json``) back into :class:`Series` objects; only ``roles`` when given.

    Restricting the roles reads only those series' image files (a study folder holds the whole study).
    """
    index_path, index = read_study_index(path)
    wanted = set(roles) if roles is not None else None
    base = index_path.parent
    out = []
    for entry in index["series"]:
        if not isinstance(entry, dict) or (wanted is not None and entry.get("role") not in wanted):
            continue
        role = str(entry.get("role"))
        try:
            stacks = [read_image(base / f) for f in entry.get("files") or []]
            out.append(Series(role, stacks, entry.get("stack_meta") or [], entry.get("meta") or {}))
        except ValueError as exc:  # no file, or stack descriptions that do not match the files
            raise LiverMetsError(f"the {role} series in {index_path} is incomplete ({exc}); write the study folder "
                                 "again with 'livermets load'") from exc
    return out
