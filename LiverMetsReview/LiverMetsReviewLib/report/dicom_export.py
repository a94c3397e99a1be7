"""A review as DICOM a PACS stores and other viewers open: ``seg.dcm`` and ``sr.dcm`` in the output folder.

``seg.dcm``: DICOM Segmentation (BINARY, so the liver and the lesions inside it overlap), one segment per
segment of ``lesions.seg.nrrd`` (liver, every lesion, an ablation zone when drawn) with the same terminology
codes, referencing the source series the segmentation's grid belongs to (``dicom_seg.py``). ``sr.dcm``: DICOM SR
TID 1500 Measurement Report, one measurement group per lesion with its diameters, volume, ADC / fat fraction /
enhancement statistics (UCUM units) and its impression, each group referencing its segment (``dicom_sr.py``).
What goes in, units and codes: ``resources/dicom_export.json`` and ``quantities.json``.

The study must have been loaded from DICOM (``dicom_sources.json`` in its folder, written by ``livermets
load``): objects derived from images reference those images and copy their patient and study. highdicom is
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
    datasets: list[Any]             # the source slices' headers (pydicom), in that order


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


def _read_sources(stack: dict[str, Any], label: str) -> list[Any]:
    """The headers of the stack's slices, checked against what ``dicom_sources.json`` recorded."""
    from ..study.scan import open_dataset

    if any(sl.get("frame") for sl in stack["slices"]):
        raise LiverMetsError(f"the {label} series is an enhanced (multi-frame) DICOM object; SEG export references "
                             "classic single-frame images only so far")
    out = []
    for sl in stack["slices"]:
        path = Path(sl["path"])
        if not path.exists():
            raise LiverMetsError(f"{path}, a DICOM source of the {label} series, is missing (the DICOM folder moved?); "
                                 "load the study again with 'livermets load' from where the files are now")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = open_dataset(path, pixels=False)
        if str(ds.SOPInstanceUID) != sl["sop_instance_uid"]:
            raise LiverMetsError(f"{path} is no longer the image recorded in dicom_sources.json (another "
                                 "SOPInstanceUID); load the study again with 'livermets load'")
        out.append(ds)
    return out


def declare_private_scheme(ds: Any, scheme: dict[str, str]) -> None:
    """Name the private coding scheme (99LMR) in the SOP Common module, as PS3.3 asks of non-standard schemes."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodingSchemeDesignator = scheme["designator"]
    item.CodingSchemeName = scheme["name"]
    item.CodingSchemeResponsibleOrganization = scheme["organization"]
    ds.CodingSchemeIdentificationSequence = [item]


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
    return ExportSource(review, measurements, seg_path, study_dir, series, stack, _read_sources(stack, label))


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
    seg, numbers = build_seg(hd, src, spec)
    sr = build_sr(hd, src, seg, numbers, spec)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, ds in (("seg", seg), ("sr", sr)):
        declare_private_scheme(ds, spec["private_scheme"])
        path = out / spec["files"][kind]
        with atomic_path(path) as tmp:
            ds.save_as(str(tmp))
        written.append(path)
    return written
