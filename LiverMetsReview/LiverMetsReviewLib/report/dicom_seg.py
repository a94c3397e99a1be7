"""``lesions.seg.nrrd`` as a DICOM Segmentation (BINARY): one segment per segment, overlaps kept.

Frames are the source series' slices one to one (the segmentation's grid is that series' grid, checked by
``dicom_export.source_stack``), so every frame references the image it was drawn on: a classic image per slice, or
for an enhanced (multi-frame) source the frame number, the frames put in the source file's frame order. Segment
labels are the segment ids (the lesion ids); property category, type and anatomic region are read back from each
segment's Slicer ``TerminologyEntry``, so the DICOM codes are the ``.seg.nrrd``'s (private 99LMR codes included).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import __version__
from ..errors import LiverMetsError

_TERMINOLOGY_FIELDS = ("context", "category", "type", "modifier", "anatomic_context", "anatomic_region",
                       "anatomic_region_modifier")


def parse_terminology(entry: str) -> dict[str, tuple[str, str, str] | None]:
    """Slicer's ``TerminologyEntry`` (context~category~type~modifier~anatomicContext~region~regionModifier; codes
    as scheme^value^meaning) -> {field: (scheme, value, meaning) or None}."""
    parts = entry.split("~")
    if len(parts) != len(_TERMINOLOGY_FIELDS):
        raise LiverMetsError(f"terminology entry '{entry[:60]}' has {len(parts)} fields, not 7; write the "
                             "segmentation again with 'livermets measure' or Slicer")
    out: dict[str, tuple[str, str, str] | None] = {}
    for name, text in zip(_TERMINOLOGY_FIELDS, parts, strict=True):
        if name.endswith("context"):
            continue
        code = text.split("^")
        out[name] = (code[0], code[1], "^".join(code[2:])) if len(code) >= 3 and code[0] and code[1] else None
    return out


def coded(hd: Any, triplet: Any) -> Any:
    """[scheme, value, meaning] -> highdicom CodedConcept."""
    scheme, value, meaning = triplet
    return hd.sr.CodedConcept(value=str(value), scheme_designator=str(scheme), meaning=str(meaning))


def _description(hd: Any, number: int, seg: dict[str, Any], algorithm: Any, tracking_uid: str) -> Any:
    entry = seg["tags"].get("TerminologyEntry")
    if not entry:
        raise LiverMetsError(f"segment '{seg['id']}' has no terminology (category and type); SEG needs them: set "
                             "them in Slicer's Segment Editor or write the segmentation with 'livermets measure'")
    term = parse_terminology(entry)
    if term["category"] is None or term["type"] is None:
        raise LiverMetsError(f"segment '{seg['id']}' lacks a category or type code in its terminology; set them")
    region = term["anatomic_region"]
    rgb = tuple(int(round(255 * min(1.0, max(0.0, float(c))))) for c in seg["color"][:3])
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=str(seg["id"])[:64],
        segmented_property_category=coded(hd, term["category"]), segmented_property_type=coded(hd, term["type"]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC, algorithm_identification=algorithm,
        tracking_uid=tracking_uid, tracking_id=str(seg["id"])[:64],
        anatomic_regions=[coded(hd, region)] if region else None,
        display_color=hd.color.CIELabColor.from_rgb(*rgb))


def build_seg(hd: Any, src: Any, spec: dict[str, Any]) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The Segmentation dataset and, per segment id, its number, property type and tracking UID (for the SR)."""
    from ..lesions.seg_file import read_layered_segmentation

    _, segments = read_layered_segmentation(src.seg_path)
    if not segments:
        raise LiverMetsError(f"{src.seg_path} holds no segment; there is nothing to export")
    algorithm = hd.AlgorithmIdentificationSequence(name="LiverMetsReview", family=coded(hd, spec["algorithm_family"]),
                                                   version=__version__)
    numbers: dict[str, dict[str, Any]] = {}
    descriptions = []
    for n, seg in enumerate(segments, 1):
        uid = str(hd.UID())
        descriptions.append(_description(hd, n, seg, algorithm, uid))
        numbers[str(seg["id"])] = {"number": n, "type": descriptions[-1].SegmentedPropertyTypeCodeSequence[0],
                                   "tracking_uid": uid}
    pixels = np.stack([s["mask"] for s in segments], axis=-1).astype(np.uint8)  # (slices, rows, cols, segments)
    pixels = pixels[np.asarray(src.frame_order, int)]  # one frame per source image / frame, in the source's order
    eq = spec["equipment"]
    seg = hd.seg.Segmentation(
        source_images=src.datasets, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=spec["series_numbers"]["seg"],
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=eq["manufacturer"],
        manufacturer_model_name=eq["model"], software_versions=__version__,
        device_serial_number=eq["device_serial_number"], content_label="LESIONS",
        content_description=spec["series_descriptions"]["seg"][:64])
    seg.SeriesDescription = spec["series_descriptions"]["seg"]
    return seg, numbers
