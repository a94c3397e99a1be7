"""Classified DICOM series -> :class:`Series` volumes on their own grids (LPS), and resampling on request.

Pixels come from pydicom (SimpleITK/GDCM as a fallback for compressed files pydicom cannot decode);
geometry is ours: slices sorted along the normal of ImageOrientationPatient, uniform spacing checked,
origin = ImagePositionPatient of the first slice, direction columns = row, column and slice normal
(DICOM patient coordinates are LPS, as in SimpleITK). Values are *display values*: stored value x
RescaleSlope + RescaleIntercept (per frame for enhanced files). Philips' private scale slope
(2005,100E) is NOT applied (as dcm2niix and Slicer do by default); it is recorded in the stack
metadata when present, because ratios within one series (ADC) do not need it when the slopes agree.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, LiverMetsError, MissingDataError
from ..roles import UNASSIGNED
from ..series import Series
from .bvalues import numbers
from .classify import Override, apply_overrides, classify_scan, stack_roles_of
from .integrity import expected_pixel_bytes, undecodable_pixels
from .scan import FrameInfo, SeriesInfo, StackInfo, StudyScan, open_dataset, scan_folder

_SPACING_TOLERANCE = 0.05  # relative deviation of a slice gap from the median gap still called uniform


class _PixelCache:
    """Decoded arrays per file, so an enhanced file holding many stacks is decoded once."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[np.ndarray, float, float, float | None]] = {}

    def frame(self, f: FrameInfo, label: str) -> np.ndarray:
        if f.path not in self._data:
            self._data[f.path] = _read_pixels(f.path, label)
        arr, slope, intercept, _ = self._data[f.path]
        img = arr[f.frame] if (f.frame is not None and arr.ndim == 3) else arr
        if f.rescale is not None:
            slope, intercept = f.rescale
        return img.astype(np.float32) * np.float32(slope) + np.float32(intercept)

    def philips_scale_slope(self, path: str) -> float | None:
        return self._data[path][3] if path in self._data else None


def _read_pixels(path: str, label: str) -> tuple[np.ndarray, float, float, float | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = open_dataset(path, pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on a file cut short
        raise LiverMetsError(f"{label}: {undecodable_pixels(path, None, exc)}") from exc
    slope = numbers(ds.get("RescaleSlope", 1.0))
    intercept = numbers(ds.get("RescaleIntercept", 0.0))
    scale_slope = None
    if (0x2005, 0x100E) in ds:
        vals = numbers(ds[0x2005, 0x100E].value, "f")
        scale_slope = vals[0] if vals else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - decoder availability varies; try GDCM through SimpleITK
        if expected_pixel_bytes(ds) is not None:  # native samples: nothing to decode, the file itself is bad
            raise LiverMetsError(f"{label}: {undecodable_pixels(path, ds, exc)}") from exc
        try:
            img = sitk.ReadImage(path)  # GDCM applies the rescale itself
            arr = sitk.GetArrayFromImage(img)
            arr = arr[0] if arr.ndim == 3 and arr.shape[0] == 1 else arr
            return arr.astype(np.float32), 1.0, 0.0, scale_slope
        except RuntimeError:
            raise LiverMetsError(f"{label}: {undecodable_pixels(path, ds, exc)}") from exc
    if arr.ndim == 3 and "NumberOfFrames" not in ds:
        raise LiverMetsError(f"{label}: {path} holds colour or multi-sample pixels; only greyscale MR is supported")
    return arr, (slope[0] if slope else 1.0), (intercept[0] if intercept else 0.0), scale_slope


def _geometry(frames: Sequence[FrameInfo], label: str) -> tuple[list[FrameInfo], tuple, tuple, tuple]:
    """Frames sorted along the slice normal, and (origin, spacing, direction) in LPS."""
    if any(f.position is None or f.orientation is None for f in frames):
        raise MissingDataError(f"{label}: images lack ImagePositionPatient/ImageOrientationPatient, so they cannot "
                               "be placed in space; re-export the series from the scanner or PACS")
    ori = np.asarray(frames[0].orientation, dtype=float)
    for f in frames[1:]:
        if np.abs(np.asarray(f.orientation) - ori).max() > 1e-3:
            raise GeometryError(f"{label}: slices of one stack have different orientations; cannot build one volume")
    row, col = ori[:3] / np.linalg.norm(ori[:3]), ori[3:] / np.linalg.norm(ori[3:])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    dist = np.array([np.dot(normal, f.position) for f in frames])
    order = np.argsort(dist, kind="stable")
    frames = [frames[i] for i in order]
    dist = dist[order]
    ps = frames[0].pixel_spacing
    if ps is None:
        raise MissingDataError(f"{label}: PixelSpacing is missing; cannot know the voxel size")
    if len(frames) > 1:
        gaps = np.diff(dist)
        if gaps.min() <= 1e-3:
            raise GeometryError(f"{label}: two images share one slice position; the stack mixes volumes")
        median = float(np.median(gaps))
        if np.abs(gaps - median).max() > _SPACING_TOLERANCE * median + 1e-3:
            raise GeometryError(f"{label}: slices are not evenly spaced (gaps {gaps.min():.2f}-{gaps.max():.2f} mm); "
                                "load the series in a viewer that resamples, or re-export it without gaps")
        dz = median
    else:
        dz = frames[0].slice_thickness or 1.0
    direction = np.column_stack([row, col, normal])
    origin = tuple(float(v) for v in frames[0].position)
    return frames, origin, (float(ps[1]), float(ps[0]), float(dz)), tuple(float(v) for v in direction.ravel())


def load_stack(stack: StackInfo, label: str = "series", cache: _PixelCache | None = None) -> sitk.Image:
    """One stack as a float32 3-D image in LPS with display values (rescale applied)."""
    if any("MOSAIC" in f.image_type for f in stack.frames[:1]):
        raise LiverMetsError(f"{label} is a Siemens mosaic: its headers are read (b-values, roles) but loading "
                             "mosaic pixels is not supported; export the series as single slices")
    cache = cache or _PixelCache()
    frames, origin, spacing, direction = _geometry(stack.frames, label)
    planes = [cache.frame(f, label) for f in frames]
    shapes = {p.shape for p in planes}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise GeometryError(f"{label}: images of one stack have different sizes {sorted(shapes)}")
    img = sitk.GetImageFromArray(np.stack(planes).astype(np.float32, copy=False))
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    return img


def _series_meta(info: SeriesInfo, t0: float | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "description": info.description,
        "series_number": info.series_number,
        "series_uid": info.series_uid,
        "study_uid": info.study_uid,
        "manufacturer": info.manufacturer,
        "field_strength_t": info.field_strength_t,
        "repetition_time_ms": info.repetition_time_ms,
        "flip_angle_deg": info.flip_angle_deg,
        "image_type": list(info.image_type),
        "sequence_name": info.sequence_name,
        "role_confidence": round(float(info.confidence), 3),
        "role_reason": info.reason,
        "source": "DICOM",
        "coordinate_system": "LPS",
    }
    if len(info.echo_times_ms) == 1:
        meta["echo_time_ms"] = info.echo_times_ms[0]
    if info.contrast_agent:
        meta["contrast_agent"] = info.contrast_agent
    if t0 is not None and info.acquisition_s is not None:
        meta["acquisition_offset_s"] = round(info.acquisition_s - t0, 3)
    return meta


def load_series(info: SeriesInfo, role: str | None = None, *, stack_indices: Sequence[int] | None = None,
                t0: float | None = None) -> Series:
    """One series (or the chosen stacks of it) as a :class:`Series` with every stack on its own grid."""
    indices = list(range(len(info.stacks))) if stack_indices is None else list(stack_indices)
    if not indices:
        raise LiverMetsError(f"{info.label} has no stack to load")
    role = role or info.role
    cache = _PixelCache()
    stacks, metas = [], []
    for k in indices:
        st = info.stacks[k]
        stacks.append(load_stack(st, info.label, cache))
        meta = st.meta()
        ss = cache.philips_scale_slope(st.frames[0].path)
        if ss is not None:
            meta["philips_scale_slope_not_applied"] = ss
        metas.append(meta)
    return Series(role, stacks, metas, series_meta(info, role, indices, t0))


def series_meta(info: SeriesInfo, role: str, indices: Sequence[int], t0: float | None = None) -> dict[str, Any]:
    """The series metadata of ``load_series`` (without reading pixels): header facts, role reason, units."""
    meta = _series_meta(info, t0)
    meta["stack_indices"] = list(indices)  # which stacks of the DICOM series (classify order): roles.json -> --roles
    meta["units"] = "10^-6 mm^2/s" if role == "adc_scanner" else "a.u."
    if role == "adc_scanner":
        meta["units_note"] = "scanner convention assumed (Siemens/GE/Philips store ADC as 10^-6 mm^2/s)"
    return meta


def combine_trace(series: Series) -> Series:
    """One stack per b-value: the scanner's trace when present, else the geometric mean over directions/repeats.

    The geometric mean of the directional images is the trace-weighted image (exp(-b·mean ADC)).
    """
    by_b: dict[float, list[int]] = defaultdict(list)
    for k, m in enumerate(series.stack_meta):
        by_b[float(m.get("b_value", -1.0))].append(k)
    stacks, metas = [], []
    for b in sorted(by_b):
        ks = by_b[b]
        trace = [k for k in ks if series.stack_meta[k].get("is_trace")]
        if trace:
            stacks.append(series.stacks[trace[0]])
            metas.append({**series.stack_meta[trace[0]], "is_trace": True, "trace_from": "scanner"})
            continue
        if len(ks) == 1:
            stacks.append(series.stacks[ks[0]])
            metas.append(dict(series.stack_meta[ks[0]]))
            continue
        ref = series.stacks[ks[0]]
        arrays = []
        for k in ks:
            img = series.stacks[k]
            if img.GetSize() != ref.GetSize() or not np.allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-3):
                img = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
            arrays.append(np.maximum(sitk.GetArrayViewFromImage(img).astype(np.float64), 0.0))
        floor = 1e-6
        geo = np.exp(np.mean(np.log(np.maximum(np.stack(arrays), floor)), axis=0))
        geo[geo <= floor * 1.0001] = 0.0
        out = sitk.GetImageFromArray(geo.astype(np.float32))
        out.CopyInformation(ref)
        stacks.append(out)
        meta = {k2: v for k2, v in series.stack_meta[ks[0]].items()
                if k2 not in ("diffusion_direction", "diffusion_label", "repeat")}
        meta.update({"b_value": b, "is_trace": b > 0, "trace_from": f"geometric mean of {len(ks)} images"})
        metas.append(meta)
    return Series(series.role, stacks, metas, dict(series.meta))


def load_study(infos: Sequence[SeriesInfo] | StudyScan, roles: Mapping[str, Override] | None = None, *,
               dwi_trace: bool = True) -> list[Series]:
    """Every assigned series as :class:`Series`, one per role (a dual-echo series gives two).

    ``roles`` are the reader's overrides ({series UID or number: role or per-stack roles}). DWI comes out
    as one stack per b-value (``dwi_trace``; directions combined) and ``acquisition_offset_s`` is counted
    from the study's first acquisition.
    """
    infos = list(infos.series) if isinstance(infos, StudyScan) else list(infos)
    if len({s.study_uid for s in infos}) > 1:
        raise LiverMetsError("the series come from several studies; load one study at a time (choose it with "
                             "--study)")
    if roles:
        apply_overrides(infos, roles)
    times = [s.acquisition_s for s in infos if s.acquisition_s is not None]
    t0 = min(times) if times else None
    out: list[Series] = []
    for info in infos:
        per_stack = stack_roles_of(info)
        by_role: dict[str, list[int]] = defaultdict(list)
        for k, r in enumerate(per_stack):
            if r != UNASSIGNED:
                by_role[r].append(k)
        for role, ks in by_role.items():
            series = load_series(info, role, stack_indices=ks, t0=t0)
            if role == "dwi" and dwi_trace:
                series = combine_trace(series)
            out.append(series)
    if not out:
        raise LiverMetsError("no series has a role: check 'livermets classify' and set roles with --roles")
    return out


def _dwi_candidates(scan: StudyScan) -> list[SeriesInfo]:
    dwi = [s for s in scan.series if len(s.b_values) >= 2]
    if len(dwi) > 1:
        assigned = [s for s in dwi if "dwi" in stack_roles_of(s)]
        if len(assigned) == 1:
            return assigned
    return dwi


def load_dwi(dicom_dir: str | Path) -> Series:
    """The one DWI series under ``dicom_dir``: role "dwi", one stack per b-value and direction.

    Stack metadata: ``b_value`` (s/mm²), ``b_value_source``, and ``diffusion_direction`` [x, y, z] (LPS) or
    ``is_trace`` True where the header says so; repeats without a direction carry ``repeat``.
    """
    scan = classify_scan(scan_folder(dicom_dir))
    dwi = _dwi_candidates(scan)
    if len({s.study_uid for s in dwi}) > 1:
        scan.one_study(None, f"write the study you want with 'livermets load {dicom_dir} --study UID -o FOLDER' and "
                             "give FOLDER to 'livermets adc'")
    if not dwi:
        found = ", ".join(f"{s.label}: {s.role}" for s in scan.series) or "no MR image series"
        raise MissingDataError(f"{dicom_dir} holds no DWI series with two or more readable b-values ({found})")
    if len(dwi) > 1:
        names = "; ".join(s.label for s in dwi)
        raise LiverMetsError(f"{dicom_dir} holds {len(dwi)} DWI series ({names}); give the folder of one series")
    series = load_series(dwi[0], "dwi")
    series.meta["skipped_files"] = [{"path": s.path, "reason": s.reason} for s in scan.skipped]
    return series


def resample_to_reference(series: Series, reference: sitk.Image, *,
                          interpolator: int = sitk.sitkLinear) -> Series:
    """Every stack of ``series`` resampled onto ``reference``'s grid (identity transform, LPS; outside = 0)."""
    stacks = [sitk.Resample(img, reference, sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32)
              for img in series.stacks]
    meta = dict(series.meta)
    meta["resampled_to"] = {"size": list(reference.GetSize()), "spacing": list(reference.GetSpacing()),
                            "origin": list(reference.GetOrigin()), "direction": list(reference.GetDirection())}
    return Series(series.role, stacks, [dict(m) for m in series.stack_meta], meta)
