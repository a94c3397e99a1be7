"""PNG figures for people to look at (demo, reports). matplotlib is a CLI-only extra, imported inside functions.

Axial slices are shown in radiological convention (patient's left on the image's right, anterior up), which
is the natural numpy orientation of an LPS grid with identity direction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .resources import load_json


def _map_display() -> dict[str, tuple[str, str, tuple[float, float], str]]:
    """name -> (title, matplotlib colour map, display range, units), from resources/map_display.json.

    The same file sets the colour tables and windows of the maps in Slicer, so the figures and the viewer agree.
    """
    data = load_json("map_display.json")
    tables, maps = data["colour_tables"], data["maps"]
    return {name: (maps[name]["title"], tables[maps[name]["colour"]]["matplotlib"],
                   (float(maps[name]["range"][0]), float(maps[name]["range"][1])), maps[name]["units"])
            for name in data["figure_order"]}


# the maps figure's panels, in order
MAP_DISPLAY: dict[str, tuple[str, str, tuple[float, float], str]] = _map_display()


def axial_slice_at(image: sitk.Image, point_lps: Any) -> np.ndarray:
    """The axial slice of ``image`` nearest to a world point (LPS mm)."""
    k = image.TransformPhysicalPointToContinuousIndex([float(v) for v in point_lps])[2]
    k = int(np.clip(round(k), 0, image.GetSize()[2] - 1))
    return sitk.GetArrayViewFromImage(image)[k].copy()  # a copy: the slice may outlive the image


def write_maps_figure(study, maps, path: str | Path, names: tuple[str, ...] | None = None) -> Path:
    """A grid of the study's maps on one axial level through the first lesion, with colour bars and units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = tuple(n for n in (names or MAP_DISPLAY) if n in maps.images)
    lesion = study.truth["lesions"][0]
    centre = lesion["centre_mm"]
    cols = 3
    rows = max(1, int(np.ceil(len(names) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names, strict=False):
        title, cmap, (lo, hi), units = MAP_DISPLAY[name]
        arr = axial_slice_at(maps.images[name], centre)
        if hi <= lo:  # signal images: window on the slice's robust range
            lo, hi = 0.0, float(np.percentile(arr, 99.5)) or 1.0
        valid = maps.valid.get(name)
        shown = np.ma.masked_where(axial_slice_at(valid, centre) == 0, arr) if valid is not None else arr
        colours = matplotlib.colormaps[cmap].with_extremes(bad="black")
        sp = maps.images[name].GetSpacing()
        im = ax.imshow(shown, cmap=colours, vmin=lo, vmax=hi, aspect=sp[1] / sp[0], interpolation="nearest")
        ax.set_title(f"{title}", fontsize=10)
        bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        bar.set_label(units, fontsize=8)
    fig.suptitle(f"LiverMetsReview maps on the digital phantom: axial level of '{lesion['name']}' "
                 f"(z = {centre[2]:.0f} mm LPS); radiological view; masked voxels black", fontsize=11)
    fig.tight_layout()
    from .io.atomic import write_figure_atomic

    return write_figure_atomic(fig, path, dpi=90)
