"""A PNG of each lesion's outline over its key series beside the ground truth's outline (the demo's check).

Crops are axial, centred on the lesion, in radiological convention (patient's right on the image's left,
anterior up: rows run anterior to posterior and columns right to left on an LPS crop). matplotlib is a CLI-only
extra, imported inside the writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import LiverMetsError
from .phantom.montage import axial_crop

# The series on which each kind of lesion is read first (brief section 3: the hallmark series); any other
# lesion is shown on the hepatobiliary phase, where a metastasis is darkest.
KEY_SERIES = {"simple_cyst": "t2", "flash_filling_hemangioma": "t1_arterial", "post_ablation_zone": "t1_arterial",
              "post_ablation_zone_recurrence": "t1_arterial", "focal_fat_sparing": "t1_opposed_phase",
              "focal_hypersteatosis": "t1_opposed_phase", "metastasis_mimicking_fat_sparing": "t1_opposed_phase",
              "neuroendocrine_metastasis": "t1_arterial"}
DEFAULT_KEY_SERIES = "t1_hepatobiliary"


def outline_tiles(images: dict[str, sitk.Image], lesions: Sequence[dict[str, Any]], *, fov_margin_mm: float = 15.0,
                  pixels: int = 96) -> list[dict[str, Any]]:
    """Per lesion (dicts with ``id``, ``type``, ``centre_mm``, ``diameter_mm``, ``ours``: mask image on any grid,
    ``truth``: a float fraction image): the key series' crop and both masks on it (testable without matplotlib)."""
    tiles = []
    for les in lesions:
        role = KEY_SERIES.get(les["type"], DEFAULT_KEY_SERIES)
        role = role if role in images else DEFAULT_KEY_SERIES if DEFAULT_KEY_SERIES in images else next(iter(images))
        fov = float(les["diameter_mm"]) + 2.0 * fov_margin_mm
        tiles.append({"id": les["id"], "type": les["type"], "role": role, "dice": les.get("dice"),
                      "image": axial_crop(images[role], les["centre_mm"], fov, pixels),
                      "ours": axial_crop(les["ours"], les["centre_mm"], fov, pixels, nearest=True) > 0.5,
                      "truth": axial_crop(les["truth"], les["centre_mm"], fov, pixels) >= 0.5})
    return tiles


def write_outline_figure(tiles: list[dict[str, Any]], path: str | Path) -> Path:
    """A pair of panels per lesion: our outline (yellow) and the truth's (cyan) over the lesion's key series."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib missing
        raise LiverMetsError("the outline figure needs matplotlib; install the 'demo' extra") from exc
    from .io.atomic import write_figure_atomic

    per_row = min(3, len(tiles))  # lesions per row, each as a pair of panels
    rows = -(-len(tiles) // per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(3.6 * per_row, 2.0 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, t in enumerate(tiles):
        img = t["image"]
        lo, hi = np.percentile(img, [1, 99.5]) if img.any() else (0.0, 1.0)
        pair = axes[i // per_row, 2 * (i % per_row): 2 * (i % per_row) + 2]
        dice = f", Dice {t['dice']:.2f}" if t.get("dice") is not None else ""
        for ax, key, colour, title in ((pair[0], "ours", "yellow", f"{t['id']}: segmented{dice}"),
                                       (pair[1], "truth", "cyan", f"truth ({t['role']})")):
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            if t[key].any():
                ax.contour(t[key].astype(float), levels=[0.5], colors=colour, linewidths=1.2)
            ax.set_title(title, fontsize=7)
        pair[0].text(2, 8, "R", color="white", fontsize=7)
        pair[0].text(img.shape[1] - 9, 8, "L", color="white", fontsize=7)
    fig.suptitle("Lesion outlines (axial, radiological: patient's right on the left)", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return write_figure_atomic(fig, path, dpi=110, format="png")
