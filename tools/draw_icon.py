#!/usr/bin/env python3
"""Draw the extension and module icons (128x128 PNG) with matplotlib, so they can be regenerated and reviewed.

The motif: a liver seen in an axial slice (radiological view: the large right lobe on the image's left,
tapering into the left lobe), bright as in the hepatobiliary phase, with one dark "target" lesion (dark rim,
brighter centre) and a reading cross-hair on it.

Usage: python tools/draw_icon.py   (writes Resources/Icons/LiverMetsReview.png and
       LiverMetsReview/Resources/Icons/LiverMetsReview.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch, PathPatch  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = (
    REPO_ROOT / "Resources" / "Icons" / "LiverMetsReview.png",
    REPO_ROOT / "LiverMetsReview" / "Resources" / "Icons" / "LiverMetsReview.png",
)
SIZE_PX = 128

BACKGROUND = "#1d2b3a"
LIVER = "#c9a27a"        # bright parenchyma (hepatocyte uptake in the hepatobiliary phase)
LIVER_EDGE = "#f1dcc4"
LESION_RIM = "#3a2a24"   # no hepatocytes: dark
LESION_CORE = "#8c6a52"  # central fibrosis retains some contrast: the target appearance
CROSSHAIR = "#ffd54a"


def liver_path() -> MplPath:
    """A closed Bezier outline in icon coordinates (0..1), drawn once by hand."""
    verts = [
        (0.14, 0.55),
        (0.12, 0.80), (0.40, 0.86), (0.58, 0.78),   # dome of the right lobe to the falciform region
        (0.72, 0.72), (0.86, 0.74), (0.90, 0.64),   # left lobe, tapering
        (0.93, 0.56), (0.80, 0.50), (0.62, 0.47),   # under-surface of the left lobe
        (0.50, 0.45), (0.48, 0.34), (0.40, 0.24),   # hilum notch and inferior right lobe
        (0.30, 0.12), (0.16, 0.26), (0.14, 0.55),   # back to the start
    ]
    codes = [MplPath.MOVETO] + [MplPath.CURVE4] * (len(verts) - 1)
    return MplPath(verts, codes)


def draw(path: Path) -> None:
    dpi = 100
    fig = plt.figure(figsize=(SIZE_PX / dpi, SIZE_PX / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    fig.patch.set_alpha(0.0)
    ax.add_patch(FancyBboxPatch((0.03, 0.03), 0.94, 0.94, boxstyle="round,pad=0,rounding_size=0.16",
                                facecolor=BACKGROUND, edgecolor="none"))
    ax.add_patch(PathPatch(liver_path(), facecolor=LIVER, edgecolor=LIVER_EDGE, linewidth=2.0))
    centre, radius = (0.36, 0.55), 0.13
    ax.add_patch(Circle(centre, radius, facecolor=LESION_RIM, edgecolor="none"))
    ax.add_patch(Circle(centre, radius * 0.45, facecolor=LESION_CORE, edgecolor="none"))
    gap, arm = radius + 0.03, 0.09
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ax.plot([centre[0] + dx * gap, centre[0] + dx * (gap + arm)],
                [centre[1] + dy * gap, centre[1] + dy * (gap + arm)],
                color=CROSSHAIR, linewidth=2.6, solid_capstyle="round")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, transparent=True)
    plt.close(fig)


def main() -> int:
    for out in OUTPUTS:
        draw(out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
