"""Where a study folder's stacks came from: ``dicom_sources.json`` beside ``roles.json``.

Why: a review exported as DICOM (SEG, SR) must reference the very images its outlines were drawn on - their
study, series and SOP instance UIDs and frame of reference - and a PACS needs the patient and study header
copied, not invented. Patient identifiers are never written here: ``patient_identifiers`` reads them from the
DICOM files when a report shows them. ``livermets load`` (and ``livermets phantom`` when it also writes DICOM)
records, per series and per written stack (NRRD file), the DICOM slices in the NRRD's slice order (k = 0 first)
with their files, and the grid the slices span (LPS), so an exporter can tell whether a segmentation's grid is the
source series' own grid or a resampled one. A study folder of NRRD files alone (the NRRD phantom) has none.

Format ``livermets-dicom-sources`` version 1::

    {"format", "version", "header": {patient_sex, study_date, study_time, study_description, manufacturer,
     magnetic_field_strength_t, institution_name},
     "series": [{"role", "study_uid", "series_uid", "frame_of_reference_uid", "modality", "series_number",
                 "description", "manufacturer", "magnetic_field_strength_t",
                 "stacks": [{"file" (NRRD name in the study folder), "combined_from" (images per slice),
                             "geometry": {"size", "spacing", "origin", "direction"} (DICOM grid, LPS),
                             "slices": [{"sop_class_uid", "sop_instance_uid", "path", "frame"}]}]}]}

``frame`` is the 1-based frame number in an enhanced (multi-frame) file, null for a classic file. A stack
computed from several images per slice (the DWI trace) lists the slices of the first of them and how many
were combined. A study folder written by a viewer (3D Slicer: ``viewer_sources``) may add ``not_recorded``: one
sentence per series it could not reference (not read from DICOM, or resampled by the viewer).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LiverMetsError
from ..io.atomic import write_json_atomic
from ..resources import read_json_file
from ..series import Series
from .load import _geometry as sorted_geometry  # one slice order for pixels and references
from .scan import SeriesInfo, open_dataset

SOURCES = "dicom_sources.json"
FORMAT = "livermets-dicom-sources"
VERSION = 1
# header keys of dicom_sources.json -> DICOM keyword (study level: read from the study's first file). Nothing that
# identifies the patient is stored (no output of livermets carries it, test_hardening.py); a report or an export
# that must show or copy it reads it from the DICOM files when it needs it (``patient_identifiers``).
HEADER_FIELDS = {"patient_sex": "PatientSex", "study_date": "StudyDate", "study_time": "StudyTime",
                 "study_description": "StudyDescription", "manufacturer": "Manufacturer",
                 "magnetic_field_strength_t": "MagneticFieldStrength", "institution_name": "InstitutionName"}
IDENTIFYING_FIELDS = {"patient_name": "PatientName", "patient_id": "PatientID",
                      "patient_birth_date": "PatientBirthDate", "accession_number": "AccessionNumber"}


def _first_header(path: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_dataset(path, pixels=False)


def _text(ds: Any, keyword: str) -> str | float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if keyword == "MagneticFieldStrength":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return str(value).strip()


def study_header(info: SeriesInfo) -> dict[str, Any]:
    """The patient/study fields a report or an exported object copies, from the first file of ``info``."""
    ds = _first_header(info.files[0])
    return {key: _text(ds, kw) for key, kw in HEADER_FIELDS.items()}


def _contributing(info: SeriesInfo, series: Series) -> list[list[int]]:
    """Per stack of ``series``, the stacks of ``info`` it was made from (one, or several for a computed trace)."""
    indices = [int(i) for i in series.meta.get("stack_indices", range(len(info.stacks)))]
    if len(indices) == len(series.stacks):
        return [[i] for i in indices]
    out = []
    for meta in series.stack_meta:  # combine_trace: one stack per b-value, from the scanner's trace or a mean
        b = meta.get("b_value")
        same = [i for i in indices if info.stacks[i].b_value is not None and float(info.stacks[i].b_value) == b]
        trace = [i for i in same if info.stacks[i].is_trace]
        out.append(trace[:1] if meta.get("trace_from") == "scanner" and trace else same)
    if any(not ks for ks in out):
        raise LiverMetsError(f"{info.label}: a written stack matches none of the series' stacks; cannot record its "
                             "DICOM sources")
    return out


def stack_record(info: SeriesInfo, ks: Sequence[int], file: str) -> dict[str, Any]:
    """One written stack: its DICOM slices in NRRD slice order and the grid they span."""
    frames, origin, spacing, direction = sorted_geometry(info.stacks[ks[0]].frames, info.label)
    size = [int(frames[0].cols), int(frames[0].rows), len(frames)]
    slices = [{"sop_class_uid": info.sop_class, "sop_instance_uid": f.sop_uid, "path": str(Path(f.path).resolve()),
               "frame": None if f.frame is None else int(f.frame) + 1} for f in frames]
    return {"file": file, "combined_from": len(ks),
            "geometry": {"size": size, "spacing": list(spacing), "origin": list(origin),
                         "direction": list(direction)},
            "slices": slices}


def series_record(info: SeriesInfo, role: str, groups: Sequence[Sequence[int]], files: Sequence[str]) -> dict[str, Any]:
    """One series: its UIDs and, per written stack (``files``), the stacks of ``info`` it was made from."""
    ds = _first_header(info.files[0])
    return {"role": role, "study_uid": info.study_uid, "series_uid": info.series_uid,
            "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"), "modality": _text(ds, "Modality") or "MR",
            "series_number": info.series_number, "description": info.description,
            "manufacturer": info.manufacturer, "magnetic_field_strength_t": info.field_strength_t,
            "stacks": [stack_record(info, ks, f) for ks, f in zip(groups, files, strict=True)]}


def _document(infos: Sequence[SeriesInfo], records: list[dict[str, Any]]) -> dict[str, Any]:
    if not infos:
        raise LiverMetsError("no DICOM series was scanned; there are no sources to record")
    return {"format": FORMAT, "version": VERSION, "coordinate_system": "LPS", "header": study_header(infos[0]),
            "series": records}


def write_dicom_sources(study_dir: str | Path, infos: Sequence[SeriesInfo], series: Sequence[Series],
                        index: dict[str, Any]) -> Path:
    """``dicom_sources.json`` for the series ``livermets load`` wrote (``index``: its roles.json, entries in the
    order of ``series``); each series is found in ``infos`` by its SeriesInstanceUID."""
    by_uid = {i.series_uid: i for i in infos}
    records = []
    for s, entry in zip(series, index["series"], strict=True):
        info = by_uid.get(str(s.meta.get("series_uid")))
        if info is None:
            raise LiverMetsError(f"the {s.role} series has no DICOM series among the scanned ones; cannot record its "
                                 "sources")
        records.append(series_record(info, s.role, _contributing(info, s), entry["files"]))
    return write_json_atomic(Path(study_dir) / SOURCES, _document(infos, records))


def _same_stack(info: SeriesInfo, meta: dict[str, Any], several: bool) -> list[int]:
    """The stack of a just-written series that holds the stack described by ``meta`` (b-value, echo time)."""
    ks = list(range(len(info.stacks)))
    if "b_value" in meta:
        ks = [k for k in ks if info.stacks[k].b_value is not None
              and abs(float(info.stacks[k].b_value) - float(meta["b_value"])) < 0.5]
    if several and "echo_time_ms" in meta:
        ks = [k for k in ks if info.stacks[k].echo_time_ms is not None
              and abs(float(info.stacks[k].echo_time_ms) - float(meta["echo_time_ms"])) < 0.01]
    if len(ks) != 1:
        raise LiverMetsError(f"{info.label}: {len(ks)} written stacks match {meta}; cannot record its DICOM sources")
    return ks


def record_written_dicom(study_dir: str | Path, folders: Sequence[str | Path], series: Sequence[Series],
                         index: dict[str, Any]) -> Path:
    """``dicom_sources.json`` of a study folder whose series were also written as DICOM, one folder per series
    in the order of ``series`` (``livermets phantom`` with DICOM): the written files are scanned back."""
    from .scan import scan_folder

    infos, records = [], []
    for folder, s, entry in zip(folders, series, index["series"], strict=True):
        found = scan_folder(folder).series
        if len(found) != 1:
            raise LiverMetsError(f"{folder} holds {len(found)} series, expected the one written there")
        info = found[0]
        infos.append(info)
        groups = [_same_stack(info, m, len(s.stacks) > 1) for m in s.stack_meta]
        records.append(series_record(info, s.role, groups, entry["files"]))
    return write_json_atomic(Path(study_dir) / SOURCES, _document(infos, records))


def patient_identifiers(sources: dict[str, Any]) -> dict[str, Any]:
    """Patient name, ID, birth date and accession number, read from the first recorded DICOM file now (never
    stored in the study folder); empty when the files are gone."""
    for series in sources.get("series", []):
        for stack in series.get("stacks", []):
            for sl in stack.get("slices", [])[:1]:
                if Path(sl["path"]).exists():
                    ds = _first_header(sl["path"])
                    return {key: _text(ds, kw) for key, kw in IDENTIFYING_FIELDS.items()}
    return {}


def read_dicom_sources(study_dir: str | Path) -> dict[str, Any] | None:
    """The study folder's ``dicom_sources.json``, or None when it has none (a study not loaded from DICOM)."""
    path = Path(study_dir) / SOURCES
    if not path.exists():
        return None
    doc = read_json_file(path, "the dicom_sources.json that 'livermets load' writes")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("series"), list):
        raise LiverMetsError(f"{path} is not a DICOM sources file written by 'livermets load'; load the study again")
    return doc


# ------------------------------------------------------------------ a study shown by a viewer (3D Slicer)
# A viewer (Slicer's DICOM plugins) read each volume from DICOM files it knows by SOP instance UID; the study
# folder it writes holds those volumes as NRRD. The document below is the one 'livermets load' writes, built from
# the files' own headers, so the slices are placed by their ImagePositionPatient, not by the viewer's order.

GRID_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4


@dataclass
class ViewerStack:
    """One written stack: its NRRD file in the study folder, the grid the viewer's volume has (LPS: size, spacing,
    origin, direction) and the DICOM images (SOP instance UID, file) the viewer read it from, in any order."""

    file: str
    geometry: dict[str, Any]
    instances: list[tuple[str, str]]


def grid_of(image: Any) -> dict[str, Any]:
    """The grid of a SimpleITK image as the ``geometry`` of a stack record."""
    return {"size": [int(v) for v in image.GetSize()], "spacing": [float(v) for v in image.GetSpacing()],
            "origin": [float(v) for v in image.GetOrigin()], "direction": [float(v) for v in image.GetDirection()]}


def same_geometry(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two grids (``geometry`` records) are one: same size, spacing, origin and axis directions."""
    return ([int(v) for v in a["size"]] == [int(v) for v in b["size"]]
            and np.allclose(a["spacing"], b["spacing"], atol=GRID_TOLERANCE_MM)
            and np.allclose(a["origin"], b["origin"], atol=GRID_TOLERANCE_MM)
            and np.allclose(a["direction"], b["direction"], atol=DIRECTION_TOLERANCE))


def reversed_geometry(g: dict[str, Any]) -> dict[str, Any]:
    """The same grid with its slice axis run backwards (slice 0 is the last slice)."""
    d = np.array(g["direction"], float).reshape(3, 3)
    last = np.array(g["origin"], float) + (int(g["size"][2]) - 1) * float(g["spacing"][2]) * d[:, 2]
    d[:, 2] = -d[:, 2]
    return {**g, "origin": [float(v) for v in last], "direction": [float(v) for v in d.ravel()]}


def _viewer_info(role: str, stacks: Sequence[ViewerStack]) -> SeriesInfo:
    """The headers of every image the viewer read, as one series of one stack per written stack."""
    from .scan import StackInfo, _frames_of, _series_from

    info = None
    for stack in stacks:
        frames = []
        for uid, path in stack.instances:
            if not Path(path).exists():
                raise LiverMetsError(f"{path}, a DICOM file of the {role} series, does not exist (moved or deleted?)")
            ds = _first_header(path)
            if str(ds.get("SOPInstanceUID", "")) != uid:
                raise LiverMetsError(f"{path} is not the image {uid} the viewer read for the {role} series")
            found = _frames_of(ds, str(path))
            if len(found) != 1:
                raise LiverMetsError(f"{path} is an enhanced (multi-frame) image; its frames cannot be told apart here")
            found[0].sop_uid = uid
            frames.extend(found)
            series_uid = str(ds.get("SeriesInstanceUID", ""))
            if info is None:
                info = _series_from(ds, series_uid)
            elif series_uid != info.series_uid:
                raise LiverMetsError(f"the {role} volumes were read from two DICOM series ({info.series_uid}, "
                                     f"{series_uid}); one role must come from one series")
            info.files.append(str(path))
        if info is None or not frames:
            raise LiverMetsError(f"the {role} volume '{stack.file}' names no DICOM image it was read from")
        info.stacks.append(StackInfo(frames))
    return info


def _placed(info: SeriesInfo, k: int, stack: ViewerStack, role: str) -> dict[str, Any]:
    """The stack record of one written stack, its slices in the NRRD's slice order; LiverMetsError (one sentence)
    when the viewer's volume is not the grid its DICOM images span (merged, resampled, cropped)."""
    record = stack_record(info, [k], stack.file)
    if len(record["slices"]) != int(stack.geometry["size"][2]):
        raise LiverMetsError(f"the {role} volume '{stack.file}' has {int(stack.geometry['size'][2])} slices but was "
                             f"read from {len(record['slices'])} DICOM images (merged or split by the viewer)")
    if same_geometry(record["geometry"], stack.geometry):
        return record
    if same_geometry(reversed_geometry(record["geometry"]), stack.geometry):  # the viewer runs k the other way
        return {**record, "geometry": reversed_geometry(record["geometry"]), "slices": record["slices"][::-1]}
    raise LiverMetsError(f"the {role} volume '{stack.file}' is not on the grid of the DICOM images it was read from "
                         "(resampled, cropped or moved by a transform)")


def viewer_sources(series: Sequence[tuple[str, Sequence[ViewerStack]]]) -> tuple[dict[str, Any] | None, list[str]]:
    """``dicom_sources.json`` of a study folder a viewer wrote: per (role, its written stacks) the DICOM images
    read from the files' headers, in the NRRD's slice order, as ``livermets load`` records them. A series whose
    volumes are not the grid of their images is left out with a note (SEG/SR then refuse to reference it);
    returns (None, notes) when no series can be recorded."""
    infos, records, notes = [], [], []
    for role, stacks in series:
        if not stacks or any(not s.instances for s in stacks):
            notes.append(f"{role}: not read from DICOM files (computed or loaded from a file), so it has no DICOM "
                         "sources")
            continue
        try:
            info = _viewer_info(role, stacks)
            placed = [_placed(info, k, s, role) for k, s in enumerate(stacks)]
        except LiverMetsError as exc:
            notes.append(f"{exc}; DICOM SEG/SR cannot reference this series")
            continue
        record = series_record(info, role, [[k] for k in range(len(stacks))], [s.file for s in stacks])
        record["stacks"] = placed
        infos.append(info)
        records.append(record)
    if not records:
        return None, notes
    doc = _document(infos, records)
    if notes:
        doc["not_recorded"] = notes
    return doc, notes
