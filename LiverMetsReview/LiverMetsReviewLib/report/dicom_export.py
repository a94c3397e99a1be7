"""A review as DICOM a PACS stores and other viewers open: ``seg.dcm`` and ``sr.dcm`` in the output folder.

``seg.dcm``: DICOM Segmentation (BINARY, so the liver and the lesions inside it overlap), one segment per
segment of ``lesions.seg.nrrd`` (liver, every lesion, an ablation zone when drawn) with the same terminology
codes, referencing the source series the segmentation's grid belongs to (``dicom_seg.py``). ``sr.dcm``: DICOM SR
TID 1500 Measurement Report, one measurement group per lesion with its diameters, volume, ADC / fat fraction /
enhancement statistics (UCUM units) and its impression, each group referencing its segment (``dicom_sr.py``).
What goes in, units and codes: ``resources/dicom_export.json`` and ``quantities.json``.

The study must have been loaded from DICOM (``dicom_sources.json`` in its folder, written by ``livermets
load``): objects derived from images reference those images and copy their patient and study. Real scanners'
quirks are met in the in-memory header copies only (never in their files): enhanced (multi-frame) sources are
referenced per frame, geometry groups a scanner repeats per frame are shared, absent Type 2 patient/study
attributes are set empty, and an object switches to UTF-8 when one of its texts does not fit the source's
character set. highdicom is
imported here, only when exporting; without it the export says what to install.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LiverMetsError
from ..resources import load_json, read_json_file
from .build import ReportInputs, _locate, _review

TABLE = "dicom_export.json"
_GRID_TOLERANCE_MM = 1e-3
_DIRECTION_TOLERANCE = 1e-4
NO_HIGHDICOM = ("DICOM SEG/SR export needs the highdicom package, which is not installed: for the command line "
                "run pip install 'livermetsreview[dicom]'; in Slicer use Slicer 5.12 or later, which ships it")


def highdicom_module() -> Any:
    """highdicom, or one sentence saying how to get it (never installed silently)."""
    try:
        import highdicom
    except ImportError as exc:
        raise LiverMetsError(NO_HIGHDICOM) from exc
    return highdicom


def table() -> dict[str, Any]:
    return load_json(TABLE)


@dataclass
class ExportSource:
    """Everything the SEG and SR are built from."""

    review: dict[str, Any]
    measurements: dict[str, Any]
    seg_path: Path
    study_dir: Path
    series: dict[str, Any]          # the dicom_sources.json series record the segmentation grid belongs to
    stack: dict[str, Any]           # its stack record (slices in the segmentation's slice order)
    datasets: list[Any]             # the source images' headers (pydicom): one per slice, or one enhanced image
    frame_order: list[int]          # per source image/frame, in source order, its slice index in the segmentation


def _study_sources(study_dir: Path | None) -> dict[str, Any]:
    from ..study.sources import read_dicom_sources

    if study_dir is None:
        raise LiverMetsError("the review names no study folder; give --study (the folder 'livermets load' wrote) so "
                             "that SEG/SR can reference the DICOM images")
    sources = read_dicom_sources(study_dir)
    if sources is None:
        raise LiverMetsError(f"the study {study_dir} has no DICOM sources (e.g. the NRRD phantom); SEG/SR need a study "
                             "loaded from DICOM ('livermets load', or in Slicer from its DICOM database)")
    return sources


def same_grid(ref: Any, geometry: dict[str, Any]) -> bool:
    """Is the SimpleITK image ``ref`` on the DICOM grid ``geometry`` (size, spacing, origin, direction)?"""
    return (list(ref.GetSize()) == [int(v) for v in geometry["size"]]
            and np.allclose(ref.GetSpacing(), geometry["spacing"], atol=_GRID_TOLERANCE_MM)
            and np.allclose(ref.GetOrigin(), geometry["origin"], atol=_GRID_TOLERANCE_MM)
            and np.allclose(ref.GetDirection(), geometry["direction"], atol=_DIRECTION_TOLERANCE))


def _grid_text(ref: Any) -> str:
    size = "x".join(str(v) for v in ref.GetSize())
    spacing = "x".join(f"{v:.3g}" for v in ref.GetSpacing())
    return f"{size} voxels of {spacing} mm"


def source_stack(sources: dict[str, Any], ref: Any, prefer: list[str], seg_path: Path) -> tuple[dict, dict]:
    """The source series and stack whose DICOM grid is the segmentation's grid (roles in ``prefer`` first)."""
    hits = [(s, st) for s in sources["series"] for st in s.get("stacks", []) if same_grid(ref, st["geometry"])]
    if not hits and sources.get("not_recorded"):  # a viewer's study: say which series could not be referenced
        raise LiverMetsError(f"{seg_path} is on a grid ({_grid_text(ref)}) that is none of the DICOM source series' "
                             f"own grids ({'; '.join(sources['not_recorded'])}); SEG export needs the lesions drawn "
                             "on a series loaded from Slicer's DICOM database as it is")
    if not hits:
        raise LiverMetsError(f"{seg_path} is on a grid ({_grid_text(ref)}) that is none of the DICOM source series' "
                             "own grids (a resampled study, e.g. 'livermets load --resample-to'); SEG export needs "
                             "the segmentation on a source series' grid: load the study without resampling")
    order = {role: k for k, role in enumerate(prefer)}
    hits.sort(key=lambda h: order.get(h[0]["role"], len(order)))
    return hits[0]


# Patient and study attributes a SEG/SR copies from its source (Type 2 there: present, possibly empty). highdicom
# reads them as attributes, so a source that leaves one out gets it empty in the in-memory header (never in the file).
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _header_of(path: Path, uid: str, label: str) -> Any:
    """One source file's header, checked against the SOP instance UID ``dicom_sources.json`` recorded."""
    from ..study.scan import open_dataset

    if not path.exists():
        raise LiverMetsError(f"{path}, a DICOM source of the {label} series, is missing (the DICOM folder moved?); "
                             "load the study again with 'livermets load' from where the files are now")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = open_dataset(path, pixels=False)
    if str(ds.get("SOPInstanceUID", "")) != uid:
        raise LiverMetsError(f"{path} is no longer the image recorded in dicom_sources.json (another "
                             "SOPInstanceUID); load the study again with 'livermets load'")
    for keyword in _TYPE2_COPIED:  # anonymised or minimal files leave them out; Type 2 allows them empty
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def _enhanced_source(stack: dict[str, Any], label: str) -> tuple[list[Any], list[int]]:
    """An enhanced (multi-frame) source: its one header and, per source frame (1..N), the segmentation slice on it.

    A SEG references one multi-frame image and carries one segmentation frame per source frame, so the stack must
    be every frame of one file exactly once; anything else (a stack spread over several enhanced files, or a file
    that also holds other b-values or echoes) is refused in one sentence."""
    slices = stack["slices"]
    files = {(sl["path"], sl["sop_instance_uid"]) for sl in slices}
    if len(files) != 1:
        raise LiverMetsError(f"the {label} series' slices come from {len(files)} enhanced (multi-frame) files; a "
                             "DICOM SEG can reference one multi-frame image only, so draw the lesions on a series "
                             "stored as one file per volume or as classic single-frame images")
    path, uid = next(iter(files))
    ds = _header_of(Path(path), uid, label)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    frames = [int(sl["frame"]) for sl in slices]
    if sorted(frames) != list(range(1, n + 1)):
        raise LiverMetsError(f"{path} holds {n} frames of which the {label} stack uses {len(set(frames))} (other "
                             "b-values, echoes or phases share the file); a DICOM SEG of part of an enhanced image is "
                             "not supported, so draw the lesions on a series stored as one file per volume")
    order = [0] * n
    for k, f in enumerate(frames):
        order[f - 1] = k
    _share_frame_geometry(ds, path, label)
    return [ds], order


# Functional groups a SEG copies from the source's shared groups; some scanners (Siemens XA) repeat them per frame.
_GEOMETRY_GROUPS = {"PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
                    "PlaneOrientationSequence": ("ImageOrientationPatient",)}


def _group_values(item: Any, keywords: tuple[str, ...]) -> tuple:
    return tuple(tuple(float(v) for v in np.atleast_1d(item.get(k))) if item.get(k) not in (None, "") else ()
                 for k in keywords)


def _share_frame_geometry(ds: Any, path: str, label: str) -> None:
    """In the in-memory header only: pixel measures and orientation that every frame repeats the same are moved into
    the shared functional groups, where a SEG (highdicom) reads them; frames that differ are refused."""
    from pydicom.dataset import Dataset

    if "SharedFunctionalGroupsSequence" not in ds or not ds.SharedFunctionalGroupsSequence:
        ds.SharedFunctionalGroupsSequence = [Dataset()]
    shared = ds.SharedFunctionalGroupsSequence[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    for group, keywords in _GEOMETRY_GROUPS.items():
        if group in shared:
            continue
        items = [f.get(group) for f in per_frame]
        if not per_frame or any(not i for i in items):
            raise LiverMetsError(f"{path} ({label}) gives no {group[:-8]} for its frames; a SEG cannot be placed on it")
        values = [_group_values(i[0], keywords) for i in items]
        if any(not np.allclose(np.concatenate([np.ravel(v) for v in val] or [[0]]),
                               np.concatenate([np.ravel(v) for v in values[0]] or [[0]]), atol=1e-4)
               or [len(v) for v in val] != [len(v) for v in values[0]] for val in values):
            raise LiverMetsError(f"the frames of {path} ({label}) differ in {group[:-8]}; they are not one grid, so a "
                                 "SEG cannot reference them")
        setattr(shared, group, items[0])
        for f in per_frame:
            del f[group]


def _read_sources(stack: dict[str, Any], label: str) -> tuple[list[Any], list[int]]:
    """The headers of the stack's source images, checked against what ``dicom_sources.json`` recorded, and per
    SEG frame (in source order) the index of its segmentation slice (NRRD slice order)."""
    enhanced = [sl.get("frame") is not None for sl in stack["slices"]]
    if all(enhanced):
        return _enhanced_source(stack, label)
    if any(enhanced):
        raise LiverMetsError(f"the {label} stack mixes frames of an enhanced (multi-frame) file with single-frame "
                             "images; load the study again with 'livermets load'")
    datasets = [_header_of(Path(sl["path"]), sl["sop_instance_uid"], label) for sl in stack["slices"]]
    return datasets, list(range(len(datasets)))


def declare_private_scheme(ds: Any, scheme: dict[str, str]) -> None:
    """Name the private coding scheme (99LMR) in the SOP Common module, as PS3.3 asks of non-standard schemes."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodingSchemeDesignator = scheme["designator"]
    item.CodingSchemeName = scheme["name"]
    item.CodingSchemeResponsibleOrganization = scheme["organization"]
    ds.CodingSchemeIdentificationSequence = [item]


_TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}
UTF8 = "ISO_IR 192"


def fit_character_set(ds: Any) -> None:
    """Keep the source's character set when every text of ``ds`` is written in it; otherwise (a lesion named in
    another script than the patient's name, say) switch the object to UTF-8 so that nothing turns into '?'."""
    from pydicom.charset import convert_encodings

    encodings = convert_encodings(ds.get("SpecificCharacterSet") or "ISO_IR 6")

    def fits(text: str) -> bool:
        if len(encodings) > 1:  # ISO 2022 code extensions: only plain ASCII is sure to round-trip as written
            return text.isascii()
        try:
            text.encode(encodings[0])
        except (UnicodeEncodeError, LookupError):
            return False
        return True

    for elem in ds.iterall():
        values = elem.value if isinstance(elem.value, (list, tuple)) else [elem.value]
        if elem.VR in _TEXT_VRS and not all(fits(str(v)) for v in values if v is not None):
            ds.SpecificCharacterSet = UTF8
            return


def gather_export(inputs: ReportInputs) -> ExportSource:
    """Resolve the review, its lesions folder and its study's DICOM sources; one sentence when one is missing."""
    from ..lesions.seg_file import read_layered_segmentation

    review = _review(inputs.review_dir)
    lesions_dir, study_dir = _locate(inputs, review)
    if lesions_dir is None:
        raise LiverMetsError("the review names no lesions folder; give --lesions (the folder 'livermets measure' "
                             "wrote: lesions.seg.nrrd, measurements.json) for SEG/SR")
    sources = _study_sources(study_dir)
    seg_path = lesions_dir / "lesions.seg.nrrd"
    ref, _ = read_layered_segmentation(seg_path)
    measurements = read_json_file(lesions_dir / "measurements.json", "lesion measurements")
    prefer = list((measurements.get("channels") or {}).values())
    series, stack = source_stack(sources, ref, prefer, seg_path)
    label = f"{series['role']} ({series.get('description') or series['series_uid']})"
    datasets, order = _read_sources(stack, label)
    return ExportSource(review, measurements, seg_path, study_dir, series, stack, datasets, order)


def write_dicom(inputs: ReportInputs, out_dir: Path) -> list[Path]:
    """Write ``seg.dcm`` (DICOM Segmentation) and ``sr.dcm`` (TID 1500 Measurement Report) into ``out_dir``
    (atomically); returns both paths. Raises :class:`LiverMetsError` with one sentence when highdicom is
    missing or the study has no DICOM sources."""
    from ..io.atomic import atomic_path
    from .dicom_seg import build_seg
    from .dicom_sr import build_sr

    hd = highdicom_module()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LiverMetsError(f"{out} exists and is not a folder; give a folder for the DICOM files")
    src = gather_export(inputs)
    spec = table()
    with warnings.catch_warnings():  # the patient's name is copied as the scanner wrote it, one component or not
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        seg, numbers = build_seg(hd, src, spec)
        sr = build_sr(hd, src, seg, numbers, spec)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, ds in (("seg", seg), ("sr", sr)):
        declare_private_scheme(ds, spec["private_scheme"])
        fit_character_set(ds)
        path = out / spec["files"][kind]
        with atomic_path(path) as tmp:
            ds.save_as(str(tmp))
        written.append(path)
    return written
