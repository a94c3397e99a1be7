"""Write :class:`~LiverMetsReviewLib.series.Series` as classic MR Image Storage DICOM, as a scanner would.

One folder per series (``S0007_T2_FS/``), one file per slice per stack, explicit VR little endian with a
proper File Meta. Headers carry what a reader needs to recognise each series from the headers alone
(ImageType words, echo times, b-values in (0018,9087) *and* the vendor's private tag, acquisition times,
contrast) and what Slicer/ITK need to rebuild the volume (classic slices positioned along the normal).

Geometry: world coordinates are LPS, as in DICOM and ITK. For a stack with origin ``o``, spacing
``(sx, sy, sz)`` and direction columns ``(u, v, w)``: ImageOrientationPatient = ``u, v``; PixelSpacing =
``[sy, sx]`` (row spacing first); slice ``k`` sits at ``o + k·sz·w``; SliceLocation = its position
projected on ``u × v``. A left-handed direction (``w = −u × v``) is written faithfully, but readers sort
slices along ``u × v`` and give back the right-handed equivalent (same voxels in space, ``k`` flipped).

Slicer import (checked against DICOMScalarVolumePlugin of Slicer 5.10/main and the bundled MultiVolumeImporter,
Testing/Python/test_dicom_slicer_import.py): every stack of a series has its own AcquisitionNumber and
the same ImageType, orientation, AcquisitionTime/ContentTime and no TriggerTime or gradient direction, so
the scalar plugin splits by AcquisitionNumber alone (one volume per b-value or echo) and MultiVolumeImporter
frames the series by the b-value tag or EchoTime, not by time. Instance numbers run stack by stack.

Pixels: unsigned 16-bit, one RescaleSlope per series (so all stacks of a series share it — ITK applies
the first file's slope to the whole volume), intercept 0, stored value = round(value / slope): the
read-back error is at most slope/2. Integer data that fit (and scanner ADC in 10^-6 mm^2/s, rounded to
integers like scanners store it) keep slope 1.
"""

from __future__ import annotations

import inspect
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset

from ..errors import GeometryError, LiverMetsError
from ..roles import role_label
from ..series import Series
from .atomic import atomic_path
from .dicom_vendors import (
    VendorProfile,
    gyromagnetic_ratio_mhz_per_t,
    role_sequence,
    study_defaults,
    vendor_profile,
)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "LiverMetsReview/dicom_writer")


def derived_uid(*parts: str) -> str:
    """A deterministic UID '2.25.<uuid as integer>' (PS3.5 B.2) from a name-based UUID of ``parts``.

    pydicom's ``generate_uid(prefix=None, ...)`` ignores its entropy sources and returns a random UUID,
    so the same seed would not give the same UIDs; a UUID-5 of the parts does.
    """
    return "2.25." + str(uuid.uuid5(_UID_NAMESPACE, "\x1f".join(str(p) for p in parts)).int)


IMPLEMENTATION_CLASS_UID = derived_uid("implementation", "1")
IMPLEMENTATION_VERSION_NAME = "LMR_DCMWRITER_1"
ADC_UNITS = "10^-6 mm^2/s"
ORTHONORMAL_TOLERANCE = 1e-4
NEGATIVE_TOLERANCE = 1e-6  # relative to the series maximum: resampling round-off, clipped to 0

STUDY_KEYS = frozenset(study_defaults()) | {"image_comments", "contrast_injection_offset_s"}
DEFAULT_IMAGE_COMMENTS = "Synthetic image of the LiverMetsReview digital phantom, not patient data"

# Maximum lengths of the value representations written here (PS3.5 table 6.2-1).
_MAX_LEN = {"SH": 16, "LO": 64, "CS": 16, "PN": 64, "LT": 10240}


# ----------------------------------------------------------------------------------------------------------
# small value formatters


def _ascii(text: Any) -> str:
    """ASCII-only, no backslash (the DICOM value separator) and no control characters."""
    norm = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    norm = norm.replace("\\", "/")
    return "".join(ch for ch in norm if 32 <= ord(ch) < 127).strip()


def _text(text: Any, vr: str = "LO") -> str:
    return _ascii(text)[: _MAX_LEN[vr]].rstrip()


def _cs(text: Any) -> str:
    """Code String: upper case letters, digits, space and underscore, at most 16 characters."""
    return re.sub(r"[^A-Z0-9_ ]", "_", _ascii(text).upper())[:16]


def _ds(x: float) -> str:
    """Decimal String of at most 16 characters with 10 significant digits (well below 1e-4 mm)."""
    x = float(x)
    if not np.isfinite(x):
        raise LiverMetsError(f"a header number is {x}; give finite acquisition parameters (TR, TE, flip, field)")
    if abs(x) < 1e-12:
        return "0"
    for digits in (10, 9, 8, 7, 6):
        s = f"{x:.{digits}g}"
        if len(s) <= 16:
            return s
    return f"{x:.5g}"


def _age(value: Any) -> str:
    """Age String nnnY: a number of years or an AS text such as '066Y'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{min(max(int(value), 0), 999):03d}Y"
    text = _ascii(value).upper()
    return text if re.fullmatch(r"\d{3}[DWMY]", text) else ""


def _da(d: date) -> str:
    return d.strftime("%Y%m%d")


def _tm(t: datetime) -> str:
    return t.strftime("%H%M%S.%f")


def _parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = re.sub(r"[^0-9]", "", str(value))
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise LiverMetsError(f"study date '{value}' is not a date; give it as YYYYMMDD") from exc


def _parse_time(value: Any) -> time:
    if isinstance(value, datetime):
        return value.time()
    if isinstance(value, time):
        return value
    text = str(value).replace(":", "")
    main, _, frac = text.partition(".")
    try:
        t = datetime.strptime(main.ljust(6, "0")[:6], "%H%M%S").time()
    except ValueError as exc:
        raise LiverMetsError(f"study time '{value}' is not a time; give it as HHMMSS") from exc
    micro = int((frac + "000000")[:6]) if frac.isdigit() else 0
    return t.replace(microsecond=micro)


# ----------------------------------------------------------------------------------------------------------
# geometry


@dataclass
class _Geometry:
    """Per-stack slice geometry in LPS."""

    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # (row spacing = along v, column spacing = along u)
    slice_spacing: float | None          # None for a 2-D image
    iop: list[float]
    positions: np.ndarray                # (n_slices, 3)
    normal: np.ndarray

    @property
    def n_slices(self) -> int:
        return int(self.positions.shape[0])


def _geometry(image: sitk.Image, label: str) -> _Geometry:
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise GeometryError(f"{label} is a {dim}-D image; give 2-D or 3-D images")
    spacing = np.array(image.GetSpacing(), dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise GeometryError(f"{label} has spacing {tuple(spacing)}; every spacing must be a positive number of mm")
    direction = np.array(image.GetDirection(), dtype=float).reshape(dim, dim)
    origin = np.array(image.GetOrigin(), dtype=float)
    if dim == 2:
        d3 = np.eye(3)
        d3[:2, :2] = direction
        direction, origin = d3, np.append(origin, 0.0)
        spacing = np.append(spacing, 0.0)
    if not np.all(np.isfinite(direction)) or not np.all(np.isfinite(origin)):
        raise GeometryError(f"{label} has a non-finite origin or direction; fix the image geometry")
    if np.abs(direction.T @ direction - np.eye(3)).max() > ORTHONORMAL_TOLERANCE:
        raise GeometryError(f"{label} has a sheared or scaled direction matrix; DICOM slices need orthonormal "
                            "directions, so resample the image onto an orthonormal grid first")
    u, v, w = direction[:, 0], direction[:, 1], direction[:, 2]
    normal = np.cross(u, v)
    size = image.GetSize()
    n_slices = size[2] if dim == 3 else 1
    k = np.arange(n_slices, dtype=float)[:, None]
    positions = origin[None, :] + k * spacing[2] * w[None, :]
    return _Geometry(rows=int(size[1]), columns=int(size[0]), pixel_spacing=(float(spacing[1]), float(spacing[0])),
                     slice_spacing=float(spacing[2]) if dim == 3 else None,
                     iop=[*u.tolist(), *v.tolist()], positions=positions, normal=normal)


# ----------------------------------------------------------------------------------------------------------
# pixel scaling


@dataclass
class _Pixels:
    """Stored integers of every stack plus the series' rescale and the per-stack display window."""

    stored: list[np.ndarray]        # uint16, (z, y, x) per stack
    slope: float
    slope_text: str
    bits_stored: int
    windows: list[tuple[float, float]] = field(default_factory=list)  # (center, width) per stack


def _is_adc(series: Series) -> bool:
    units = str(series.meta.get("units", "")).replace(" ", "").lower()
    return series.role == "adc_scanner" or units in (ADC_UNITS.replace(" ", "").lower(), "1e-6mm2/s", "10^-6mm2/s")


def _window(values: np.ndarray, slope: float) -> tuple[float, float]:
    """Display window over the 1st–99.5th percentile of the non-zero voxels (real-world units)."""
    flat = values.ravel()
    if flat.size > 200_000:
        flat = flat[:: flat.size // 200_000]
    nonzero = flat[flat > 0]
    if nonzero.size == 0:
        return 0.0, max(1.0, slope)
    lo, hi = np.percentile(nonzero, [1.0, 99.5])
    width = max(float(hi - lo), slope, 1e-12)
    return float((lo + hi) / 2.0), width


def _pixels(series: Series, profile: VendorProfile, label: str) -> _Pixels:
    arrays = []
    for k, stack in enumerate(series.stacks):
        if stack.GetNumberOfComponentsPerPixel() != 1:
            raise LiverMetsError(f"{label} stack {k + 1} has {stack.GetNumberOfComponentsPerPixel()} components "
                                 "per pixel; give one scalar (magnitude) image per stack")
        if "complex" in stack.GetPixelIDTypeAsString():
            raise LiverMetsError(f"{label} stack {k + 1} is complex; write its magnitude")
        arr = sitk.GetArrayFromImage(stack).astype(np.float64, copy=False)
        if arr.ndim == 2:
            arr = arr[None, :, :]
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise LiverMetsError(f"{label} stack {k + 1} has {bad} NaN or infinite voxels; mask them (e.g. set to 0) "
                                 "before writing DICOM")
        arrays.append(arr)
    vmax = max(float(a.max()) for a in arrays)
    vmin = min(float(a.min()) for a in arrays)
    if vmin < -NEGATIVE_TOLERANCE * max(vmax, 0.0) or (vmin < 0 and vmax <= 0):
        raise LiverMetsError(f"{label} has negative values (minimum {vmin:g}); DICOM magnitude images are unsigned, "
                             "so clip or offset the image before writing")
    arrays = [np.clip(a, 0.0, None) for a in arrays]
    bits = profile.bits_stored
    top = 2**bits - 1
    if _is_adc(series):  # scanners store ADC as integers in 10^-6 mm^2/s with slope 1
        rounded_max = int(np.rint(vmax))
        if rounded_max <= 65535:
            if rounded_max > top:
                bits = 16
            stored = [np.rint(a).astype(np.uint16) for a in arrays]
            return _with_windows(stored, arrays, 1.0, "1", bits)
    integral = all(np.array_equal(a, np.rint(a)) for a in arrays)
    if integral and vmax <= top:
        stored = [a.astype(np.uint16) for a in arrays]
        return _with_windows(stored, arrays, 1.0, "1", bits)
    slope_text = _ds(vmax / top) if vmax > 0 else "1"
    slope = float(slope_text)
    stored = [np.clip(np.rint(a / slope), 0, top).astype(np.uint16) for a in arrays]
    return _with_windows(stored, arrays, slope, slope_text, bits)


def _with_windows(stored: list[np.ndarray], arrays: list[np.ndarray], slope: float, slope_text: str,
                  bits: int) -> _Pixels:
    px = _Pixels(stored=stored, slope=slope, slope_text=slope_text, bits_stored=bits)
    px.windows = [_window(a, slope) for a in arrays]
    return px


# ----------------------------------------------------------------------------------------------------------
# study-level choices


def _study(study_info: dict | None) -> dict[str, Any]:
    info = study_defaults()
    info["image_comments"] = DEFAULT_IMAGE_COMMENTS
    if study_info:
        unknown = sorted(set(study_info) - STUDY_KEYS)
        if unknown:
            raise LiverMetsError(f"study_info has unknown keys {unknown}; use only {sorted(STUDY_KEYS)}")
        info.update({k: v for k, v in study_info.items() if v is not None})
    if str(info["patient_position"]).upper() not in ("HFS", "FFS", "HFP", "FFP", "HFDR", "HFDL", "FFDR", "FFDL"):
        raise LiverMetsError(f"patient_position '{info['patient_position']}' is not a DICOM patient position; "
                             "use HFS or FFS")
    info["study_datetime"] = datetime.combine(_parse_date(info["study_date"]), _parse_time(info["study_time"]))
    return info


def _series_numbers(series: list[Series]) -> list[int]:
    given = [s.meta.get("series_number") for s in series]
    numbers: list[int | None] = []
    for s, n in zip(series, given, strict=True):
        if n is None:
            numbers.append(None)
            continue
        try:
            value = int(n)
        except (TypeError, ValueError) as exc:
            raise LiverMetsError(f"series '{s.role}' has series_number '{n}'; give a positive integer") from exc
        if value < 1:
            raise LiverMetsError(f"series '{s.role}' has series_number {value}; give a positive integer")
        numbers.append(value)
    taken = [n for n in numbers if n is not None]
    duplicates = sorted({n for n in taken if taken.count(n) > 1})
    if duplicates:
        raise LiverMetsError(f"series numbers {duplicates} are used by more than one series; give each series "
                             "its own series_number")
    next_free = max(taken, default=0) + 1
    out = []
    for n in numbers:
        if n is None:
            n, next_free = next_free, next_free + 1
        out.append(n)
    return out


def _injection_offset_s(series: list[Series], info: dict[str, Any]) -> float | None:
    """Injection time in seconds after the first acquisition (for ContrastBolusStartTime)."""
    if info.get("contrast_injection_offset_s") is not None:
        return float(info["contrast_injection_offset_s"])
    post = [s for s in series if s.meta.get("contrast_agent")]
    if not post:
        return None
    explicit = [float(s.meta["contrast_injection_offset_s"]) for s in post
                if s.meta.get("contrast_injection_offset_s") is not None]
    if explicit:
        return min(explicit)
    first_post = min(float(s.meta.get("acquisition_offset_s", 0.0)) for s in post)
    return first_post - float(info["first_post_contrast_delay_s"])


def _folder_name(number: int, description: str, role: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", _ascii(description)).strip("_")[:40] or re.sub(r"\W+", "_", role)
    return f"S{number:04d}_{slug}"


def _save(ds: Dataset, path: Path) -> None:
    """Write with a File Meta on pydicom 2.4 and 3.x alike."""
    with atomic_path(path) as tmp:
        if "enforce_file_format" in inspect.signature(pydicom.dcmwrite).parameters:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        else:  # pragma: no cover - pydicom 2.x
            ds.is_little_endian = True
            ds.is_implicit_VR = False
            ds.save_as(tmp, write_like_original=False)


# ----------------------------------------------------------------------------------------------------------
# the writer


@dataclass
class _Plan:
    series: Series
    number: int
    description: str       # as written in SeriesDescription (the vendor's name for the role, or the series' own)
    protocol_name: str
    folder: Path
    uid: str
    geometries: list[_Geometry]
    pixels: _Pixels


def write_series_dicom(series: list[Series], out_dir: Path, *, study_info: dict | None = None,
                       vendor: str = "siemens", seed: int = 0, names: str = "vendor") -> list[Path]:
    """Write every series as classic MR DICOM under ``out_dir``; returns the series folders, in input order.

    ``study_info`` may set patient_name, patient_id, patient_birth_date, patient_sex, patient_age,
    patient_weight_kg, study_date (YYYYMMDD), study_time (HHMMSS), accession_number, study_id,
    study_description, referring_physician, institution, station_name, patient_position (HFS/FFS),
    first_acquisition_delay_s (study start to first acquisition), contrast_* (agent text, ingredient, route,
    volume_ml, injection_offset_s relative to the first acquisition), image_comments. A series without
    ``field_strength_t`` is written as 1.5 T. ``names="vendor"`` names each series as the vendor's console
    would (GE 'Ax LAVA-Flex ART', Philips 'eTHRIVE_BH_ART'; Siemens keeps the series' own Siemens-style
    description); ``names="series"`` always writes the series' own description and protocol name. UIDs are deterministic
    for (seed, vendor, patient id, study date/time, accession). Everything is checked before the first file
    is written, so bad input leaves no half-written study.
    """
    if not series:
        raise LiverMetsError("no series to write; give at least one Series")
    for s in series:
        if not isinstance(s, Series):
            raise LiverMetsError(f"write_series_dicom takes Series objects, not {type(s).__name__}")
    profile = vendor_profile(vendor)
    if names not in ("vendor", "series"):
        raise LiverMetsError(f"names='{names}' is unknown; use 'vendor' (scanner-like names) or 'series' (as given)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise LiverMetsError(f"seed {seed!r} is not an integer; give an integer seed")
    info = _study(study_info)
    out_dir = Path(out_dir)
    numbers = _series_numbers(series)
    entropy = ["LiverMetsReview", "phantom-dicom", str(int(seed)), profile.name,
               json.dumps([str(info["patient_id"]), _da(info["study_datetime"]), _tm(info["study_datetime"]),
                           str(info["accession_number"])])]
    study_uid = derived_uid(*entropy, "study")
    frame_uid = derived_uid(*entropy, "frame-of-reference")

    dwi_b = sorted({b for s in series for b in s.b_values})
    b_fields = {"b_list": "-".join(f"{b:g}" for b in dwi_b), "b_min": f"{dwi_b[0]:g}" if dwi_b else "",
                "b_max": f"{dwi_b[-1]:g}" if dwi_b else ""}
    own = names == "vendor"
    plans: list[_Plan] = []
    folders: set[str] = set()
    for s, number in zip(series, numbers, strict=True):
        given = str(s.meta.get("description") or role_label(s.role))
        description = profile.description(s.role, given, own_names=own, **b_fields)
        protocol = profile.protocol_name(s.meta.get("protocol_name"), given if not own else description,
                                         own_names=own)
        label = f"series {number} '{description}' ({s.role})"
        folder = _folder_name(number, description, s.role)
        if folder in folders:  # pragma: no cover - numbers are unique, so folders are too
            raise LiverMetsError(f"two series map to the folder {folder}; give them distinct series numbers")
        folders.add(folder)
        geometries = [_geometry(img, f"{label} stack {k + 1}") for k, img in enumerate(s.stacks)]
        plans.append(_Plan(series=s, number=number, description=description, protocol_name=protocol,
                           folder=out_dir / folder,
                           uid=derived_uid(*entropy, "series", str(number)),
                           geometries=geometries, pixels=_pixels(s, profile, label)))

    injection = _injection_offset_s(series, info)
    commons = [_common(plan, profile, info, study_uid, frame_uid, injection) for plan in plans]  # checks headers
    written: list[Path] = []
    for plan, common in zip(plans, commons, strict=True):
        _write_plan(plan, common, profile, entropy, dwi_b)
        written.append(plan.folder)
    return written


def _series_datetime(info: dict[str, Any], offset_s: float) -> datetime:
    return info["study_datetime"] + timedelta(seconds=float(info["first_acquisition_delay_s"]) + float(offset_s))


def _common(plan: _Plan, profile: VendorProfile, info: dict[str, Any], study_uid: str, frame_uid: str,
            injection: float | None) -> dict[str, Any]:
    """Attributes shared by every image of a series (keyword -> value)."""
    s, meta = plan.series, plan.series.meta
    field_t = float(meta.get("field_strength_t", 1.5))
    acq = _series_datetime(info, float(meta.get("acquisition_offset_s", 0.0)))
    seq = role_sequence(s.role)
    for key, meta_key in (("scanning_sequence", "scanning_sequence"), ("sequence_variant", "sequence_variant"),
                          ("scan_options", "scan_options"), ("acquisition_type", "mr_acquisition_type")):
        if meta.get(meta_key):  # the series' own acquisition words win over the role's typical ones
            value = meta[meta_key]
            if key != "acquisition_type":
                value = value.split("\\") if isinstance(value, str) else list(value)
            seq[key] = value
    study_dt = info["study_datetime"]
    c: dict[str, Any] = {
        "SpecificCharacterSet": "ISO_IR 100",
        "SOPClassUID": MR_IMAGE_STORAGE,
        "StudyDate": _da(study_dt), "SeriesDate": _da(acq), "AcquisitionDate": _da(acq), "ContentDate": _da(acq),
        "StudyTime": _tm(study_dt), "SeriesTime": _tm(acq), "AcquisitionTime": _tm(acq), "ContentTime": _tm(acq),
        "AccessionNumber": _text(info["accession_number"], "SH"),
        "Modality": "MR",
        "Manufacturer": _text(profile.manufacturer),
        "InstitutionName": _text(info["institution"]),
        "ReferringPhysicianName": _text(info["referring_physician"], "PN"),
        "StationName": _text(info["station_name"], "SH"),
        "StudyDescription": _text(info["study_description"]),
        "SeriesDescription": _text(plan.description),
        "ManufacturerModelName": _text(profile.model_name(field_t)),
        "PatientName": _text(info["patient_name"], "PN"),
        "PatientID": _text(info["patient_id"]),
        "PatientBirthDate": _da(_parse_date(info["patient_birth_date"])) if info["patient_birth_date"] else "",
        "PatientSex": _cs(info["patient_sex"]) if str(info["patient_sex"]).upper() in ("M", "F", "O") else "O",
        "PatientAge": _age(info["patient_age"]),
        "PatientWeight": _ds(float(info["patient_weight_kg"])),
        "BodyPartExamined": "ABDOMEN",
        "ScanningSequence": [_cs(v) for v in seq["scanning_sequence"]],
        "SequenceVariant": [_cs(v) for v in seq["sequence_variant"]],
        "ScanOptions": [_cs(v) for v in seq["scan_options"]] or "",
        "MRAcquisitionType": _cs(seq["acquisition_type"]),
        "AngioFlag": "N",
        "RepetitionTime": _ds(meta["repetition_time_ms"]) if meta.get("repetition_time_ms") is not None else "",
        "NumberOfAverages": "1",
        "ImagingFrequency": _ds(meta.get("imaging_frequency_mhz") or gyromagnetic_ratio_mhz_per_t() * field_t),
        "ImagedNucleus": "1H",
        "MagneticFieldStrength": _ds(field_t),
        "EchoTrainLength": str(int(meta.get("echo_train_length", seq.get("echo_train_length", 1)))),
        "DeviceSerialNumber": _text(profile.device_serial_number),
        "SoftwareVersions": [_text(v) for v in profile.software_versions],
        "ProtocolName": _text(plan.protocol_name),
        "PatientPosition": str(info["patient_position"]).upper(),
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": plan.uid,
        "StudyID": _text(info["study_id"], "SH"),
        "SeriesNumber": str(plan.number),
        "FrameOfReferenceUID": frame_uid,
        "PositionReferenceIndicator": "",
        "ImageComments": _text(info["image_comments"], "LT"),
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "BitsAllocated": 16,
        "BitsStored": plan.pixels.bits_stored,
        "HighBit": plan.pixels.bits_stored - 1,
        "PixelRepresentation": 0,
    }
    if plan.pixels.slope != 1.0:  # like Philips; integer series (ADC, counts) carry no rescale, like Siemens
        c["RescaleIntercept"] = "0"
        c["RescaleSlope"] = plan.pixels.slope_text
    if meta.get("flip_angle_deg") is not None:
        c["FlipAngle"] = _ds(meta["flip_angle_deg"])
    agent = meta.get("contrast_agent")
    if agent:
        agent_text = info["contrast_agent"] if agent is True else str(agent)
        c["ContrastBolusAgent"] = _text(agent_text)
        c["ContrastBolusRoute"] = _text(meta.get("contrast_route") or info["contrast_route"])
        c["ContrastBolusVolume"] = _ds(float(meta.get("contrast_dose_ml") or info["contrast_volume_ml"]))
        c["ContrastBolusIngredient"] = _cs(info["contrast_ingredient"])
        if injection is not None:
            c["ContrastBolusStartTime"] = _tm(_series_datetime(info, injection))
    return c


def _write_plan(plan: _Plan, common: dict[str, Any], profile: VendorProfile, entropy: list[str],
                dwi_b: list[float]) -> None:
    s, meta = plan.series, plan.series.meta
    plan.folder.mkdir(parents=True, exist_ok=True)
    for stale in plan.folder.glob("IM[0-9][0-9][0-9][0-9][0-9].dcm"):  # a previous write of this series
        stale.unlink()
    multi_echo = len(s.stacks) > 1 and any("echo_time_ms" in m for m in s.stack_meta)
    series_te = meta.get("echo_time_ms")
    instance = 0
    for k, (geometry, stored) in enumerate(zip(plan.geometries, plan.pixels.stored, strict=True)):
        smeta = s.stack_meta[k]
        te = smeta.get("echo_time_ms", series_te)
        b_value = smeta.get("b_value")
        fields = {"b": int(round(float(b_value))) if b_value is not None else "",
                  "b_min": int(round(min(dwi_b))) if dwi_b else "", "b_max": int(round(max(dwi_b))) if dwi_b else ""}
        image_type = [_cs(v) for v in profile.image_type(s.role, meta.get("image_type"), smeta.get("image_type"))]
        sequence_name = profile.sequence_name(s.role, smeta.get("sequence_name") or meta.get("sequence_name"), **fields)
        center, width = plan.pixels.windows[k]
        per_stack: dict[str, Any] = {
            "ImageType": image_type,
            "EchoTime": _ds(te) if te is not None else "",
            "EchoNumbers": str(int(smeta.get("echo_number", k + 1 if multi_echo else 1))),
            # one acquisition number per stack: Slicer's scalar plugin splits a series into volumes by it; times stay
            # per series, or a second splitting tag would make Slicer load the stacks merged (see module docstring)
            "AcquisitionNumber": str(k + 1),
            "WindowCenter": _ds(center),
            "WindowWidth": _ds(width),
            "Rows": geometry.rows,
            "Columns": geometry.columns,
            "PixelSpacing": [_ds(geometry.pixel_spacing[0]), _ds(geometry.pixel_spacing[1])],
            "ImageOrientationPatient": [_ds(x) for x in geometry.iop],
            "SliceThickness": _ds(meta.get("slice_thickness_mm", geometry.slice_spacing or 1.0)),
        }
        if geometry.slice_spacing is not None:
            per_stack["SpacingBetweenSlices"] = _ds(geometry.slice_spacing)
        if sequence_name:
            per_stack["SequenceName"] = _text(sequence_name, "SH")
        if b_value is not None:
            per_stack["DiffusionBValue"] = float(b_value)
            per_stack["DiffusionDirectionality"] = "ISOTROPIC" if float(b_value) > 0 else "NONE"
        for z in range(geometry.n_slices):
            instance += 1
            position = geometry.positions[z]
            sop_uid = derived_uid(*entropy, "instance", str(plan.number), str(instance))
            ds = Dataset()
            for key, value in common.items():
                setattr(ds, key, value)
            for key, value in per_stack.items():
                setattr(ds, key, value)
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = str(instance)
            ds.ImagePositionPatient = [_ds(x) for x in position]
            ds.SliceLocation = _ds(float(position @ geometry.normal))
            if b_value is not None:
                profile.add_diffusion_private(ds, float(b_value))
            profile.add_private_sequence_name(ds, s.role)
            ds.add_new(0x7FE00010, "OW", np.ascontiguousarray(stored[z], dtype="<u2").tobytes())
            meta_ds = FileMetaDataset()
            meta_ds.FileMetaInformationVersion = b"\x00\x01"
            meta_ds.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
            meta_ds.MediaStorageSOPInstanceUID = sop_uid
            meta_ds.TransferSyntaxUID = EXPLICIT_VR_LITTLE_ENDIAN
            meta_ds.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
            meta_ds.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
            ds.file_meta = meta_ds
            _save(ds, plan.folder / f"IM{instance:05d}.dcm")
