"""The study a viewer shows, written as a study folder the core reads (``roles.json`` + NRRD stacks, LPS).

Why: the report cuts its key images from the study folder and DICOM SEG/SR reference its ``dicom_sources.json``;
inside 3D Slicer the study is the scene's volumes, each with a role and acquisition facts (node attributes) and,
when Slicer's DICOM plugins read it, the SOP instance UIDs of its images. The Slicer layer hands each volume over
as a :class:`ViewerVolume`; grouping into series, the folder and the DICOM sources are decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LiverMetsError
from ..series import Series

WRITTEN_BY = "LiverMetsReview in 3D Slicer (the scene's volumes)"
NO_DICOM = ("no series was read from DICOM files (e.g. the phantom, or a study read from files), so DICOM SEG/SR "
            "cannot be exported; load the study from Slicer's DICOM database for that")


@dataclass
class ViewerVolume:
    """One volume the viewer shows: its image (LPS), role and facts; ``instances``: the DICOM images (SOP instance
    UID, file) it was read from, empty when it was not read from DICOM files."""

    image: Any
    role: str
    name: str = ""
    b_value: float | None = None
    echo_time_ms: float | None = None
    description: str = ""
    field_strength_t: float | None = None
    units: str = ""
    instances: list[tuple[str, str]] = field(default_factory=list)


def group_volumes(volumes: Sequence[ViewerVolume]) -> list[tuple[str, list[ViewerVolume]]]:
    """Per role (first appearance order) the volumes that make its series: one per b-value (DWI), one per echo
    time when a role has several echoes, else the last volume of the role (the most recent, as the lesion work
    and the maps use)."""
    by_role: dict[str, list[ViewerVolume]] = {}
    for vol in volumes:
        by_role.setdefault(vol.role, []).append(vol)
    out = []
    for role, vols in by_role.items():
        if any(v.b_value is not None for v in vols):
            latest = {float(v.b_value): v for v in vols if v.b_value is not None}  # later volumes replace earlier
            out.append((role, [latest[b] for b in sorted(latest)]))
            continue
        echoes = {float(v.echo_time_ms): v for v in vols if v.echo_time_ms is not None}
        if len(echoes) > 1 and len(echoes) == len(vols):
            out.append((role, [echoes[t] for t in sorted(echoes)]))
        else:
            out.append((role, [vols[-1]]))
    return out


def _series(role: str, vols: list[ViewerVolume]) -> Series:
    first = vols[0]
    meta: dict[str, Any] = {"source": "viewer"}
    if first.description:
        meta["description"] = first.description
    if first.field_strength_t is not None:
        meta["field_strength_t"] = float(first.field_strength_t)
    if first.units:
        meta["units"] = first.units
    if len(vols) == 1:
        stack_meta = [{"b_value": float(first.b_value)}] if first.b_value is not None else [{}]
        if first.echo_time_ms is not None:
            meta["echo_time_ms"] = float(first.echo_time_ms)
            stack_meta[0]["echo_time_ms"] = float(first.echo_time_ms)
    elif first.b_value is not None:
        stack_meta = [{"b_value": float(v.b_value)} for v in vols]
    else:
        stack_meta = [{"echo_time_ms": float(v.echo_time_ms)} for v in vols]
    return Series(role, [v.image for v in vols], stack_meta, meta)


def write_viewer_study(volumes: Sequence[ViewerVolume], out_dir: str | Path) -> tuple[Path, list[str]]:
    """Write the volumes as a study folder with, when some were read from DICOM, ``dicom_sources.json``; returns
    the roles.json path and notes (series without DICOM sources, and why)."""
    from ..io.study_folder import read_study_index, write_study_folder
    from .sources import SOURCES, ViewerStack, grid_of, viewer_sources

    groups = group_volumes([v for v in volumes if v.role and v.role != "unassigned"])
    if not groups:
        raise LiverMetsError("the scene has no series with a role: load a study, or set the roles in the series table")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LiverMetsError(f"{out} exists and is not a folder; give a folder for the study")
    stale = out / SOURCES
    if stale.exists():
        stale.unlink()  # the sources of an earlier write would describe other volumes
    index_path = write_study_folder([_series(role, vols) for role, vols in groups], out,
                                    extra={"written_by": WRITTEN_BY})
    _, index = read_study_index(index_path)
    pairs = [(role, [ViewerStack(name, grid_of(v.image), list(v.instances)) for name, v in zip(entry["files"], vols,
                                                                                            strict=True)])
             for (role, vols), entry in zip(groups, index["series"], strict=True)]
    if not any(v.instances for _, vols in groups for v in vols):
        return index_path, [NO_DICOM]
    doc, notes = viewer_sources(pairs)
    if doc is not None:
        from ..io.atomic import write_json_atomic

        write_json_atomic(out / SOURCES, doc)
    return index_path, notes
