"""Scan a folder of DICOM files, headers only, into series and stacks.

A *series* is one SeriesInstanceUID; inside it a *stack* is one 3-D volume: the images that share a
b-value, diffusion direction, echo time, ImageType, orientation/matrix and temporal position. Enhanced
(multi-frame) MR files are expanded through their per-frame functional groups. Repeated positions
within one stack (e.g. several diffusion directions without a readable direction tag) are split into
repeats in acquisition order. Gzipped DICOM files are read transparently (some archives and test sets
store them so). Anything that is not an MR image - presentation states, DICOMDIR, vendors' private
objects, unreadable or corrupt files - is listed in ``skipped`` with the reason.
Positions and directions are DICOM patient coordinates (LPS, mm).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from ..errors import LiverMetsError
from .bvalues import Diffusion, diffusion_from_dataset, numbers
from .fastheader import read_fast_header
from .integrity import truncation_reason

MR_IMAGE_SOP = {
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
}
_KNOWN_OBJECTS = {
    "1.2.840.10008.1.3.10": "a DICOMDIR (media index, not an image)",
    "1.2.840.10008.5.1.4.1.1.11.1": "a presentation state (display settings, not an image)",
    "1.2.840.10008.5.1.4.1.1.7": "a secondary capture (screenshot), not an MR acquisition",
    "1.2.840.10008.5.1.4.1.1.4.2": "MR spectroscopy, not an image",
    "1.2.840.10008.5.1.4.1.1.66": "raw data, not an image",
}
_SKIP_DIRS = {".git", "__pycache__"}


@dataclass
class Skipped:
    """A file that is not used, and why (one sentence)."""

    path: str
    reason: str


@dataclass
class FrameInfo:
    """One 2-D image: a classic file or one frame of an enhanced file."""

    path: str
    frame: int | None
    rows: int
    cols: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    echo_time_ms: float | None
    diffusion: Diffusion
    image_type: tuple[str, ...]
    instance_number: int
    acquisition_s: float | None
    temporal_index: int | None
    rescale: tuple[float, float] | None  # (slope, intercept) of the frame when given per frame
    sop_uid: str = ""  # SOPInstanceUID of its file: what a DICOM SEG/SR derived from it references


@dataclass
class StackInfo:
    """One 3-D volume of a series."""

    frames: list[FrameInfo]
    b_value: float | None = None
    b_source: str | None = None
    direction: tuple[float, float, float] | None = None
    label: str | None = None
    is_trace: bool = False
    echo_time_ms: float | None = None
    image_type: tuple[str, ...] = ()
    temporal_index: int | None = None
    repeat: int = 0

    @property
    def acquisition_s(self) -> float | None:
        times = [f.acquisition_s for f in self.frames if f.acquisition_s is not None]
        return min(times) if times else None

    def meta(self) -> dict[str, Any]:
        """Per-stack metadata in the Series model's keys."""
        out: dict[str, Any] = {"image_type": list(self.image_type)}
        if self.b_value is not None:
            out["b_value"] = float(self.b_value)
            out["b_value_source"] = self.b_source
            if self.is_trace:
                out["is_trace"] = True
            if self.direction is not None:
                out["diffusion_direction"] = [float(c) for c in self.direction]
            if self.label:
                out["diffusion_label"] = self.label
        if self.echo_time_ms is not None:
            out["echo_time_ms"] = float(self.echo_time_ms)
        if self.temporal_index is not None:
            out["temporal_index"] = int(self.temporal_index)
        if self.repeat:
            out["repeat"] = int(self.repeat)
        return out


@dataclass
class SeriesInfo:
    """Header facts of one series, its stacks, and (after classification) its role."""

    series_uid: str
    study_uid: str
    series_number: int | None
    description: str
    protocol_name: str
    manufacturer: str
    model: str
    field_strength_t: float | None
    imaging_frequency_mhz: float | None
    repetition_time_ms: float | None
    flip_angle_deg: float | None
    image_type: tuple[str, ...]
    scanning_sequence: str
    sequence_variant: str
    sequence_name: str
    mr_acquisition_type: str
    contrast_agent: str
    contrast_start_s: float | None
    sop_class: str
    patient_id: str
    patient_key: str = ""  # patient ID, name and birth date: only to tell patients apart, never shown
    files: list[str] = field(default_factory=list)
    frames: list[FrameInfo] = field(default_factory=list)
    stacks: list[StackInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    role: str = "unassigned"
    confidence: float = 0.0
    reason: str = ""
    stack_roles: list[str] = field(default_factory=list)

    @property
    def n_instances(self) -> int:
        return len(self.files)

    @property
    def b_values(self) -> list[float]:
        return sorted({s.b_value for s in self.stacks if s.b_value is not None})

    @property
    def b_sources(self) -> list[str]:
        return sorted({s.b_source for s in self.stacks if s.b_source})

    @property
    def echo_times_ms(self) -> list[float]:
        return sorted({round(s.echo_time_ms, 3) for s in self.stacks if s.echo_time_ms is not None})

    @property
    def acquisition_s(self) -> float | None:
        times = [f.acquisition_s for f in self.frames if f.acquisition_s is not None]
        return min(times) if times else None

    @property
    def acquisition_time(self) -> str | None:
        """Clock time of the first acquisition, HH:MM:SS."""
        t = self.acquisition_s
        if t is None:
            return None
        t = t % 86400
        return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"

    @property
    def label(self) -> str:
        """Short human name: 'series 7 "t1_vibe_fs_art"'."""
        num = self.series_number if self.series_number is not None else "?"
        return f'series {num} "{self.description}"' if self.description else f"series {num}"

    def summary(self) -> dict[str, Any]:
        """JSON-able row for the classify table."""
        return {
            "series_uid": self.series_uid,
            "study_uid": self.study_uid,
            "series_number": self.series_number,
            "description": self.description,
            "role": self.role,
            "stack_roles": self.stack_roles,
            "confidence": round(float(self.confidence), 3),
            "reason": self.reason,
            "b_values": self.b_values,
            "b_value_sources": self.b_sources,
            "echo_times_ms": self.echo_times_ms,
            "field_strength_t": self.field_strength_t,
            "n_instances": self.n_instances,
            "n_stacks": len(self.stacks),
            "acquisition_time": self.acquisition_time,
            "image_type": list(self.image_type),
            "manufacturer": self.manufacturer,
            "notes": self.notes,
        }


@dataclass
class StudyScan:
    """Everything found under one folder."""

    root: str
    series: list[SeriesInfo]
    skipped: list[Skipped]
    n_files: int

    @property
    def study_uids(self) -> list[str]:
        return sorted({s.study_uid for s in self.series})

    def study_folders(self) -> dict[str, str]:
        """The deepest folder holding all files of each study (to point a user at one study's subfolder)."""
        out = {}
        for uid, members in self.by_study().items():
            files = [f for s in members for f in s.files]
            out[uid] = os.path.commonpath([os.path.dirname(f) for f in files]) if files else self.root
        return out

    def describe_studies(self) -> str:
        """'UID (n series, in FOLDER); ...': which studies the folder holds, without identifying the patient."""
        folders = self.study_folders()
        parts = []
        for uid, members in self.by_study().items():
            where = folders[uid]
            place = f", in {where}" if os.path.abspath(where) != os.path.abspath(self.root) else ""
            parts.append(f"{uid} ({len(members)} series{place})")
        return "; ".join(parts)

    def one_study(self, study_uid: str | None, how: str) -> list[SeriesInfo]:
        """The series of the one study a command works on: ``study_uid`` when given, else the only one.

        ``how`` tells how to choose (e.g. "choose one with --study UID"); a separate subfolder per study is
        named when the studies are in separate subfolders.
        """
        studies = self.by_study()
        if study_uid:
            if study_uid not in studies:
                raise LiverMetsError(f"study {study_uid} is not in {self.root}; it holds: {self.describe_studies()}")
            return studies[study_uid]
        if len(studies) > 1:
            raise LiverMetsError(f"{self.root} holds {len(studies)} studies: {self.describe_studies()}; {how}, or give "
                                 "the subfolder of one study")
        return next(iter(studies.values()), [])

    def by_study(self) -> dict[str, list[SeriesInfo]]:
        out: dict[str, list[SeriesInfo]] = defaultdict(list)
        for s in self.series:
            out[s.study_uid].append(s)
        return dict(out)

    def find(self, key: str | int) -> SeriesInfo:
        """A series by SeriesInstanceUID or series number (as given by a reader)."""
        text = str(key).strip()
        hits = [s for s in self.series if s.series_uid == text]
        if not hits:
            hits = [s for s in self.series if s.series_number is not None and str(s.series_number) == text]
        if not hits:
            raise LiverMetsError(f"no series '{text}' in {self.root}: use a SeriesInstanceUID or series number "
                                 "listed by 'livermets classify'")
        if len(hits) > 1:
            raise LiverMetsError(f"series number {text} is used by {len(hits)} series in {self.root}: "
                                 "use the SeriesInstanceUID instead")
        return hits[0]


# --------------------------------------------------------------------------------------------- reading
class _SkipFile(Exception):
    pass


_CHUNK = 1 << 20  # headers live in the first megabyte; the fast reader never needs more


def read_header(path: str | Path) -> Any:
    """Header of one DICOM file (pixels not read); gzip is undone transparently.

    Classic little-endian files go through :mod:`fastheader` (a pydicom-like read-only view); all
    others through ``pydicom.dcmread``.
    """
    path = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(_CHUNK)
            complete = len(data) < _CHUNK
            if data[:2] == b"\x1f\x8b":
                fh.seek(0)
                try:
                    data = gzip.GzipFile(fileobj=fh).read()
                except (OSError, EOFError) as exc:
                    raise _SkipFile(f"gzip file could not be decompressed ({exc})") from exc
                complete = True
            fast = read_fast_header(data)
            if fast is not None:
                return fast
            if complete:
                return _parse(io.BytesIO(data))
            fh.seek(0)
            return _parse(fh)
    except OSError as exc:
        raise _SkipFile(f"could not be opened ({exc.strerror or exc})") from exc


def as_list(value: Any) -> list:
    """A multi-valued element as a list (pydicom gives a plain string when there is one value)."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes, int, float)):
        return [value]
    return list(value)


def open_dataset(path: str | Path, *, pixels: bool) -> pydicom.Dataset:
    """Full dataset (with pixels when asked) of a file that :func:`read_header` accepted."""
    path = str(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
        fh.seek(0)
        src: Any = io.BytesIO(gzip.GzipFile(fileobj=fh).read()) if magic == b"\x1f\x8b" else fh
        try:
            return pydicom.dcmread(src, stop_before_pixels=not pixels)
        except InvalidDicomError:
            if hasattr(src, "seek"):
                src.seek(0)
            return pydicom.dcmread(src, stop_before_pixels=not pixels, force=True)


def _parse(fh: Any) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # odd files are reported as skipped, not as warnings
        return _parse_quiet(fh)


def _parse_quiet(fh: Any) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(fh, stop_before_pixels=True)
    except InvalidDicomError:
        fh.seek(0)
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
        except Exception as exc:  # noqa: BLE001 - any parser failure means "not DICOM"
            raise _SkipFile("is not a DICOM file (no 'DICM' marker and no readable data set)") from exc
        if "SOPClassUID" not in ds and "Rows" not in ds:
            raise _SkipFile("is not a DICOM file (no 'DICM' marker and no DICOM image attributes)") from None
        return ds
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt input
        raise _SkipFile(f"is a damaged DICOM file ({type(exc).__name__}: {str(exc)[:80]})") from exc


def _float(ds: Any, keyword: str) -> float | None:
    if keyword not in ds:
        return None
    vals = numbers(ds[keyword].value)
    return vals[0] if vals else None


def _str(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, list):
        value = "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    return str(value).strip()


def _seconds(date: str, time: str) -> float | None:
    """Absolute seconds (days since year 1 x 86400 + time of day) from DICOM DA/TM; None if unusable."""
    time = time.replace(":", "").strip()
    if len(time) < 2 or not time[:2].isdigit():
        return None
    try:
        hh = int(time[:2])
        mm = int(time[2:4]) if len(time) >= 4 else 0
        ss = float(time[4:]) if len(time) > 4 else 0.0
    except ValueError:
        return None
    tod = hh * 3600 + mm * 60 + ss
    date = date.replace(".", "").strip()
    day = 0
    if len(date) == 8 and date.isdigit():
        try:
            day = _dt.date(int(date[:4]), int(date[4:6]), int(date[6:8])).toordinal()
        except ValueError:
            day = 0
    return day * 86400.0 + tod


def _datetime_seconds(text: str) -> float | None:
    text = text.strip()
    return _seconds(text[:8], text[8:]) if len(text) >= 10 else None


def _acquisition_seconds(ds: Any) -> float | None:
    date = _str(ds, "AcquisitionDate") or _str(ds, "ContentDate") or _str(ds, "SeriesDate") or _str(ds, "StudyDate")
    for keyword in ("AcquisitionTime", "ContentTime", "SeriesTime"):
        t = _str(ds, keyword)
        if t:
            return _seconds(date, t)
    if "AcquisitionDateTime" in ds:
        return _datetime_seconds(_str(ds, "AcquisitionDateTime"))
    return None


def _vec(values: Any, n: int) -> tuple[float, ...] | None:
    vals = numbers(values)
    return tuple(float(v) for v in vals[:n]) if len(vals) >= n else None


def _first(seq_owner: Any, seq: str) -> Any:
    value = seq_owner.get(seq) if seq_owner is not None else None
    return value[0] if value else None


def _frames_of(ds: Any, path: str) -> list[FrameInfo]:
    image_type = tuple(str(t).strip().upper() for t in as_list(ds.get("ImageType")))
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    n_frames = int(numbers(ds.get("NumberOfFrames", 1))[0] if "NumberOfFrames" in ds else 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    instance = int(numbers(ds.get("InstanceNumber", 0))[0]) if numbers(ds.get("InstanceNumber", 0)) else 0
    if per_frame:
        shared = _first(ds, "SharedFunctionalGroupsSequence")
        frames = []
        for k, item in enumerate(per_frame):
            def pick(seq: str, item: Any = item) -> Any:
                return _first(item, seq) or _first(shared, seq)
            pos = pick("PlanePositionSequence")
            ori = pick("PlaneOrientationSequence")
            meas = pick("PixelMeasuresSequence")
            echo = pick("MREchoSequence")
            content = pick("FrameContentSequence")
            pvt = pick("PixelValueTransformationSequence")
            te = _float(echo, "EffectiveEchoTime") if echo is not None else None
            acq = _datetime_seconds(_str(content, "FrameAcquisitionDateTime")) if content is not None else None
            temporal = None
            if content is not None and "TemporalPositionIndex" in content:
                temporal = int(content.TemporalPositionIndex)
            rescale = None
            if pvt is not None and "RescaleSlope" in pvt:
                rescale = (_float(pvt, "RescaleSlope") or 1.0, _float(pvt, "RescaleIntercept") or 0.0)
            frame_group = item if "MRDiffusionSequence" in item else shared
            frames.append(FrameInfo(
                path=path, frame=k, rows=rows, cols=cols,
                position=_vec(pos.get("ImagePositionPatient"), 3) if pos is not None else None,
                orientation=_vec(ori.get("ImageOrientationPatient"), 6) if ori is not None else None,
                pixel_spacing=_vec(meas.get("PixelSpacing"), 2) if meas is not None else None,
                slice_thickness=_float(meas, "SliceThickness") if meas is not None else None,
                echo_time_ms=te if te is not None else _float(ds, "EchoTime"),
                diffusion=diffusion_from_dataset(ds, frame_group),
                image_type=image_type, instance_number=instance * 10000 + k,
                acquisition_s=acq if acq is not None else _acquisition_seconds(ds),
                temporal_index=temporal, rescale=rescale,
            ))
        return frames
    if n_frames > 1:
        raise _SkipFile(f"is a multi-frame file ({n_frames} frames) without per-frame functional groups")
    temporal = None
    if "TemporalPositionIdentifier" in ds and numbers(ds.TemporalPositionIdentifier):
        temporal = int(numbers(ds.TemporalPositionIdentifier)[0])
    return [FrameInfo(
        path=path, frame=None, rows=rows, cols=cols,
        position=_vec(ds.get("ImagePositionPatient"), 3),
        orientation=_vec(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=_vec(ds.get("PixelSpacing"), 2),
        slice_thickness=_float(ds, "SliceThickness"),
        echo_time_ms=_float(ds, "EchoTime"),
        diffusion=diffusion_from_dataset(ds),
        image_type=image_type, instance_number=instance,
        acquisition_s=_acquisition_seconds(ds), temporal_index=temporal, rescale=None,
    )]


def _series_from(ds: Any, series_uid: str) -> SeriesInfo:
    contrast_start = None
    if _str(ds, "ContrastBolusStartTime"):
        date = _str(ds, "AcquisitionDate") or _str(ds, "SeriesDate") or _str(ds, "StudyDate")
        contrast_start = _seconds(date, _str(ds, "ContrastBolusStartTime"))
    number = numbers(ds.get("SeriesNumber")) if "SeriesNumber" in ds else []
    field_t = _float(ds, "MagneticFieldStrength")
    if field_t is not None and field_t > 100:  # some old files store Gauss/mT
        field_t = field_t / 10000.0 if field_t > 1000 else field_t / 1000.0
    return SeriesInfo(
        series_uid=series_uid,
        study_uid=_str(ds, "StudyInstanceUID") or "(no StudyInstanceUID)",
        series_number=int(number[0]) if number else None,
        description=_str(ds, "SeriesDescription"),
        protocol_name=_str(ds, "ProtocolName"),
        manufacturer=_str(ds, "Manufacturer"),
        model=_str(ds, "ManufacturerModelName"),
        field_strength_t=field_t,
        imaging_frequency_mhz=_float(ds, "ImagingFrequency"),
        repetition_time_ms=_float(ds, "RepetitionTime"),
        flip_angle_deg=_float(ds, "FlipAngle"),
        image_type=tuple(str(t).strip().upper() for t in as_list(ds.get("ImageType"))),
        scanning_sequence="\\".join(str(v) for v in as_list(ds.get("ScanningSequence"))),
        sequence_variant="\\".join(str(v) for v in as_list(ds.get("SequenceVariant"))),
        sequence_name=_str(ds, "SequenceName") or _str(ds, "PulseSequenceName"),
        mr_acquisition_type=_str(ds, "MRAcquisitionType"),
        contrast_agent=_str(ds, "ContrastBolusAgent"),
        contrast_start_s=contrast_start,
        sop_class=str(ds.get("SOPClassUID", "")),
        patient_id=_str(ds, "PatientID"),
        patient_key="|".join(_str(ds, k) for k in ("PatientID", "PatientName", "PatientBirthDate")),
    )


def _check_object(ds: Any) -> None:
    sop = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if sop in _KNOWN_OBJECTS:
        raise _SkipFile(f"is {_KNOWN_OBJECTS[sop]}")
    if sop.startswith("1.2.840.10008.5.1.4.1.1.88"):
        raise _SkipFile("is a structured report, not an image")
    if sop and sop not in MR_IMAGE_SOP:
        if sop.startswith("1.3.46.670589"):
            raise _SkipFile(f"is a Philips private object (SOP class {sop}), not an MR image")
        modality = _str(ds, "Modality") or "?"
        raise _SkipFile(f"is not an MR image (SOP class {sop}, modality {modality})")
    if not sop and _str(ds, "Modality") not in ("MR", ""):
        raise _SkipFile(f"is not an MR image (modality {_str(ds, 'Modality')})")
    if not ds.get("Rows") or not ds.get("Columns"):
        raise _SkipFile("has no image (Rows/Columns missing)")


def iter_files(root: Path) -> list[str]:
    """Every regular file under ``root`` (recursive, hidden files and VCS folders skipped), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        out.extend(os.path.join(dirpath, f) for f in filenames if not f.startswith("."))
    return sorted(out)


def scan_folder(folder: str | Path, *, recursive: bool = True) -> StudyScan:
    """Read every file's header under ``folder`` and group the MR images into series and stacks."""
    root = Path(folder)
    if not root.exists():
        raise LiverMetsError(f"{root} does not exist: give the folder that holds the study's DICOM files")
    paths = [str(root)] if root.is_file() else (iter_files(root) if recursive else sorted(
        str(p) for p in root.iterdir() if p.is_file() and not p.name.startswith(".")))
    if not paths:
        raise LiverMetsError(f"{root} is empty: give the folder that holds the study's DICOM files")
    skipped: list[Skipped] = []
    series: dict[str, SeriesInfo] = {}
    seen_sop: dict[str, str] = {}
    for path in paths:
        try:
            ds = read_header(path)
            _check_object(ds)
            truncated = truncation_reason(ds, path)
            if truncated:
                raise _SkipFile(truncated)
            sop_uid = _str(ds, "SOPInstanceUID")
            if sop_uid and sop_uid in seen_sop:
                raise _SkipFile(f"duplicates {seen_sop[sop_uid]} (same SOPInstanceUID)")
            uid = _str(ds, "SeriesInstanceUID")
            if not uid:
                uid = f"(no SeriesInstanceUID) {_str(ds, 'StudyInstanceUID')}/{_str(ds, 'SeriesNumber')}/" \
                      f"{_str(ds, 'SeriesDescription')}"
            frames = _frames_of(ds, path)
            info = series.get(uid)
            if info is None:
                info = series[uid] = _series_from(ds, uid)
                if uid.startswith("(no SeriesInstanceUID)"):
                    info.notes.append("files lack SeriesInstanceUID: grouped by study, series number and description")
            if sop_uid:
                seen_sop[sop_uid] = path
                for f in frames:
                    f.sop_uid = sop_uid
        except _SkipFile as exc:
            skipped.append(Skipped(path, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a damaged header must not stop the scan
            skipped.append(Skipped(path, f"has damaged or unexpected header values ({type(exc).__name__}: "
                                         f"{str(exc)[:80]})"))
            continue
        info.files.append(path)
        info.frames.extend(frames)
    _split_patients(series)
    for info in series.values():
        _build_stacks(info)
    ordered = sorted(series.values(), key=lambda s: (s.study_uid, s.series_number if s.series_number is not None
                                                     else 10**9, s.acquisition_s or 0.0, s.series_uid))
    return StudyScan(str(root), ordered, skipped, len(paths))


def _split_patients(series: dict[str, SeriesInfo]) -> None:
    """Series of different patients never share a study: when one StudyInstanceUID (or a missing one) covers
    several patients (an anonymiser's or a merge's mistake), each patient gets its own study key, numbered."""
    patients: dict[str, set[str]] = defaultdict(set)
    for s in series.values():
        patients[s.study_uid].add(s.patient_key)
    for s in series.values():
        keys = sorted(patients[s.study_uid])
        if len(keys) > 1:
            s.notes.append("the study's UID is shared by several patients: split by patient")
            s.study_uid = f"{s.study_uid} (patient {keys.index(s.patient_key) + 1} of {len(keys)})"


# --------------------------------------------------------------------------------------------- stacks
def _normal(orientation: tuple[float, ...] | None) -> np.ndarray | None:
    if orientation is None:
        return None
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:6])
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 1e-6 else None


def _stack_key(f: FrameInfo) -> tuple:
    d = f.diffusion
    b = None if d.b_value is None else round(d.b_value, 1)
    direction = tuple(round(c, 3) for c in d.direction) if (d.direction is not None and b) else None
    label = d.label if b else None
    ori = tuple(round(c, 3) for c in f.orientation) if f.orientation else None
    te = round(f.echo_time_ms, 2) if f.echo_time_ms is not None else None
    return (b, direction, label, d.is_trace, te, f.image_type, ori, f.rows, f.cols, f.temporal_index)


def _build_stacks(info: SeriesInfo) -> None:
    groups: dict[tuple, list[FrameInfo]] = defaultdict(list)
    for f in info.frames:
        groups[_stack_key(f)].append(f)
    stacks: list[StackInfo] = []
    for key, frames in groups.items():
        n = _normal(frames[0].orientation)
        frames.sort(key=lambda f: (f.acquisition_s if f.acquisition_s is not None else 0.0, f.instance_number))
        occurrence: dict[float, int] = defaultdict(int)
        parts: dict[int, list[FrameInfo]] = defaultdict(list)
        for f in frames:
            d = round(float(np.dot(n, f.position)), 2) if (n is not None and f.position is not None) else None
            k = occurrence[d] if d is not None else 0
            if d is not None:
                occurrence[d] += 1
            parts[k].append(f)
        d0 = frames[0].diffusion
        for repeat, part in sorted(parts.items()):
            stacks.append(StackInfo(
                frames=part, b_value=d0.b_value, b_source=d0.source, direction=d0.direction if d0.b_value else None,
                label=d0.label if d0.b_value else None, is_trace=d0.is_trace, echo_time_ms=key[4],
                image_type=key[5], temporal_index=key[9], repeat=repeat,
            ))
    stacks.sort(key=lambda s: (s.b_value if s.b_value is not None else -1.0,
                               s.echo_time_ms if s.echo_time_ms is not None else -1.0,
                               s.temporal_index or 0, s.label or "", s.direction or (0.0, 0.0, 0.0), s.repeat,
                               s.image_type))
    info.stacks = stacks
    info.stack_roles = [info.role] * len(stacks)
    sources = info.b_sources
    if sources:
        info.notes.append("b-values from " + ", ".join(sources))
