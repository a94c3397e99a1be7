"""The key-image strip of every lesion: its outline from ``lesions.seg.nrrd`` on each series of the study."""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from .key_images import crop_fov, render_key_image


def _series_images(data: dict[str, Any]) -> tuple[dict[str, sitk.Image], dict[str, str]]:
    """{caption: image} of the strip's series and {caption: why absent}."""
    from ..io.study_folder import read_study_folder
    from .build import STRIP

    roles = {cap: data["channels"].get(key, role) for key, role, cap in STRIP}
    if data["study_dir"] is None:
        return {}, {cap: "no study folder was given (use --study)" for cap in roles}
    series = {s.role: s for s in read_study_folder(data["study_dir"], set(roles.values()))}
    images, why = {}, {}
    for cap, role in roles.items():
        s = series.get(role)
        if s is None:
            why[cap] = f"no {role} series in the study"
            continue
        bs = [m.get("b_value") for m in s.stack_meta]
        k = int(np.argmax([b if b is not None else -1 for b in bs])) if any(b is not None for b in bs) else 0
        images[cap] = s.stacks[k]
    return images, why


def _masks(data: dict[str, Any]) -> dict[str, sitk.Image]:
    from ..lesions.seg_file import read_layered_segmentation

    path = data["lesions_dir"] / "lesions.seg.nrrd" if data["lesions_dir"] else None
    if path is None or not path.exists():
        return {}
    ref, segments = read_layered_segmentation(path)
    out = {}
    for seg in segments:
        img = sitk.GetImageFromArray(np.asarray(seg["mask"], dtype=np.uint8))
        img.CopyInformation(ref)
        out[str(seg["id"])] = img
    return out


def lesion_strips(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """{lesion id: [{caption, png bytes, pixel_mm, window (black, white), liver (mid-grey)} or {caption, why}]}."""
    from .build import STRIP

    images, why = _series_images(data)
    masks = _masks(data)
    out: dict[str, list[dict[str, Any]]] = {}
    for les in data["lesions"]:
        rec = les.get("record") or {}
        centre = rec.get("centroid_lps")
        strip = []
        for _, _, cap in STRIP:
            if centre is None:
                strip.append({"caption": cap, "why": "the lesion's centroid is not known (no measurements folder)"})
            elif cap not in images:
                strip.append({"caption": cap, "why": why[cap]})
            else:
                k = render_key_image(images[cap], masks.get(les["id"]), centre, crop_fov(les["long_axis"]["value"]),
                                     None, rec.get("long_axis_lps"))
                strip.append({"caption": cap, "png": k.png, "pixel_mm": k.pixel_mm, "window": k.window,
                              "liver": k.liver})
        out[les["id"]] = strip
    return out
