"""A lesion-by-series montage PNG of a phantom study, to check by eye that each lesion looks like its type.

Rows are lesions, columns are series; every tile is an axial crop centred on the lesion as it appears in
that series (world LPS position plus the series' breath-hold shift, resampled from the series' own grid),
windowed per series so tiles of one column compare. matplotlib is a CLI-only extra: it is imported
inside :func:`write_montage`, never at module import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import LiverMetsError

# (column title, role, stack selector: None = first stack, "max_b" = highest b-value)
COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("T1 in phase", "t1_in_phase", None), ("T1 opposed", "t1_opposed_phase", None),
    ("Dixon water", "dixon_water", None), ("Dixon fat", "dixon_fat", None), ("T2 FS", "t2", None),
    ("DWI high b", "dwi", "max_b"), ("ADC", "adc_scanner", None), ("T1 pre", "t1_pre", None),
    ("Arterial", "t1_arterial", None), ("Portal venous", "t1_portal_venous", None),
    ("Transitional", "t1_transitional", None), ("HBP 20 min", "t1_hepatobiliary", None),
)
ADC_WINDOW = (0.0, 3000.0)  # 10^-6 mm^2/s
# Display maximum as a multiple of the liver's median signal in that series (so lesion-to-liver contrast reads
# the same in every tile of a column); the fat image also keeps a floor tied to its brightest fat.
LIVER_WINDOW_FACTOR = {"t2": 4.0, "dwi": 3.0, "dixon_fat": 3.0}
DEFAULT_LIVER_WINDOW_FACTOR = 2.0
SHARED_WINDOW = {"t1_opposed_phase": "t1_in_phase"}


def _stack(study, role: str, which: str | None) -> sitk.Image | None:
    try:
        s = study.series_by_role(role)
    except LiverMetsError:
        return None
    if which == "max_b" and s.b_values:
        return s.stacks[int(np.argmax(s.b_values))]
    return s.stacks[0]


def axial_crop(image: sitk.Image, centre_mm, fov_mm: float, pixels: int = 64, nearest: bool = False) -> np.ndarray:
    """An axial pixels x pixels crop (LPS, rows = anterior to posterior) centred on a world point (linear)."""
    sp = fov_mm / pixels
    ref = sitk.Image([pixels, pixels, 1], sitk.sitkFloat32)
    ref.SetSpacing((sp, sp, sp))
    c = np.asarray(centre_mm, float)
    ref.SetOrigin(tuple(c - np.array([sp * (pixels - 1) / 2, sp * (pixels - 1) / 2, 0.0])))
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), ref, sitk.Transform(), interp, 0.0)
    return sitk.GetArrayFromImage(out)[0]


# Shade of each lesion compartment in the truth column (liver parenchyma mid-grey, outside black).
TRUTH_SHADES = {"rim": 1.0, "nodule": 0.8, "core": 0.6, "scar": 0.45}


def truth_tiles(study, fov_min_mm: float = 48.0, pixels: int = 64) -> np.ndarray | None:
    """Per lesion, the compartments as painted on the truth grid (what each tile should show), or None."""
    model = study.model
    if model is None:
        return None
    shade = np.zeros(len(model.compartments) + int(model.labels.max()) + 1, np.float32)
    for c in model.compartments:
        if c.info.get("kind") == "lesion":
            shade[c.label] = TRUTH_SHADES.get(c.info.get("compartment", "core"), 0.6)
        elif c.name == "liver":
            shade[c.label] = 0.3
        else:
            shade[c.label] = 0.12
    img = sitk.GetImageFromArray(shade[model.labels])
    img.CopyInformation(model.grid)
    out = []
    for les in study.truth["lesions"]:
        fov = max(fov_min_mm, 2.6 * float(les["diameter_mm"]))
        out.append(axial_crop(img, les["centre_mm"], fov, pixels, nearest=True))
    return np.asarray(out)


def _window(study, image: sitk.Image, role: str) -> tuple[float, float]:
    if role == "adc_scanner":
        return ADC_WINDOW
    a = sitk.GetArrayViewFromImage(image)
    vals = a[a > 0]
    if vals.size == 0:
        return 0.0, 1.0
    p99 = float(np.percentile(vals, 99.0))
    liver_label = next((s["label"] for s in study.segments if s["id"] == "liver"), None)
    if liver_label is None:
        return 0.0, p99
    liver = sitk.GetArrayFromImage(study.labelmap_on(role, image)) == liver_label
    if not liver.any():
        return 0.0, p99
    hi = LIVER_WINDOW_FACTOR.get(role, DEFAULT_LIVER_WINDOW_FACTOR) * float(np.median(a[liver]))
    if role == "dixon_fat":
        hi = max(hi, 0.25 * p99)
    return 0.0, hi if hi > 0 else p99


def montage_tiles(study, fov_min_mm: float = 48.0, pixels: int = 64) -> dict[str, Any]:
    """The crops (lesion x column) with their windows, without plotting (testable without matplotlib)."""
    lesions = study.truth["lesions"]
    cols = [(t, r, w) for t, r, w in COLUMNS if _stack(study, r, w) is not None]
    tiles = np.zeros((len(lesions), len(cols), pixels, pixels), np.float32)
    windows = []
    for j, (_t, role, which) in enumerate(cols):
        img = _stack(study, role, which)
        if role in SHARED_WINDOW and any(c[1] == SHARED_WINDOW[role] for c in cols[:j]):
            # opposed phase on the in-phase window, so that fat shows as a signal drop between the columns
            windows.append(windows[[c[1] for c in cols].index(SHARED_WINDOW[role])])
        else:
            windows.append(_window(study, img, role))
        for i, les in enumerate(lesions):
            fov = max(fov_min_mm, 2.6 * float(les["diameter_mm"]))
            centre = les["per_series"].get(role, {}).get("centre_mm", les["centre_mm"])
            tiles[i, j] = axial_crop(img, centre, fov, pixels)
    return {"tiles": tiles, "columns": cols, "windows": windows, "lesions": lesions}


def write_montage(study, path: str | Path, fov_min_mm: float = 48.0, pixels: int = 64) -> Path:
    """Render the montage to a PNG (needs matplotlib, the CLI's 'demo' extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise LiverMetsError("the montage needs matplotlib; install the 'demo' extra (pip install matplotlib)") from exc
    m = montage_tiles(study, fov_min_mm, pixels)
    tiles, cols, windows, lesions = m["tiles"], list(m["columns"]), list(m["windows"]), m["lesions"]
    truth = truth_tiles(study, fov_min_mm, pixels)
    if truth is not None:  # last column: the painted compartments (rim bright, nodule, core), liver grey
        tiles = np.concatenate([tiles, truth[:, None]], axis=1)
        cols.append(("Truth (rim/nodule/core)", "", None))
        windows.append((0.0, 1.0))
    nr, nc = tiles.shape[:2]
    fig, axes = plt.subplots(nr, nc, figsize=(1.35 * nc + 1.6, 1.35 * nr + 0.6), squeeze=False)
    for i in range(nr):
        for j in range(nc):
            ax = axes[i, j]
            lo, hi = windows[j]
            ax.imshow(tiles[i, j], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j][0], fontsize=8)
            if j == 0:
                les = lesions[i]
                ax.set_ylabel(f"{les['type'].replace('_', ' ')}\n{les['id']} ({les['couinaud_name']}, "
                              f"{les['diameter_mm']:g} mm)", fontsize=6.5)
    sc = study.truth["scenario"]
    fig.suptitle(f"LiverMetsReview phantom - scenario {sc['id']}, {study.truth['field_strength_t']:g} T, "
                 f"seed {study.truth['seed']} (axial crops centred on each lesion, LPS)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    from ..io.atomic import write_figure_atomic

    return write_figure_atomic(fig, path, dpi=110)
