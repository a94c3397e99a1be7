"""Where drawn lesions go: a Couinaud segment drawn first, then a centre in that segment's parenchyma such that
the whole outline, grown by a clearance, lies in liver parenchyma (clear of the capsule, the large vessels, the
gallbladder and the IVC) and keeps a gap to every lesion already placed.

The test is done on points along rays from the centre (outline, two inner shells, the centre) looked up in the
truth grid's labels, so no distance map of the whole grid is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .anatomy import PORTAL_PLANE_Z, Anatomy, axes_mm
from .lesions import bounding_radius_mm, outline_points_mm

ATTEMPTS_PER_SEGMENT = 60
SEGMENT_DRAWS = 5


class _Lookup:
    """Nearest-voxel label lookup of world points on the (identity-direction) truth grid."""

    def __init__(self, anatomy: Anatomy):
        self.labels = anatomy.labels
        self.origin = np.asarray(anatomy.grid.GetOrigin(), float)
        self.spacing = np.asarray(anatomy.grid.GetSpacing(), float)
        self.shape_xyz = np.asarray(anatomy.labels.shape[::-1])

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        idx = np.rint((pts - self.origin) / self.spacing).astype(int)
        ok = np.all((idx >= 0) & (idx < self.shape_xyz), axis=1)
        out = np.full(len(pts), -1, np.int64)
        i = idx[ok]
        out[ok] = self.labels[i[:, 2], i[:, 1], i[:, 0]]
        return out


def _probe_points(lesion: dict[str, Any], margin_mm: float) -> np.ndarray:
    outer = outline_points_mm(lesion, 300, margin_mm)
    c = np.asarray(lesion["centre_mm"], float)
    shells = [c + f * (outer - c) for f in (0.4, 0.75)]
    return np.concatenate([outer, *shells, c[None, :]])


def _segment_weights(anatomy: Anatomy, parenchyma: np.ndarray, spec_segments: dict[str, Any] | None) -> np.ndarray:
    if spec_segments:
        w = np.zeros(9)
        for k, v in spec_segments.items():
            if k.isdigit():
                w[int(k)] = float(v)
    else:  # by volume: a lesion is as likely anywhere in the parenchyma
        w = np.bincount(anatomy.couinaud[parenchyma].ravel(), minlength=9).astype(float)
    w[0] = 0.0
    return w / w.sum()


def place_lesions(rng: np.random.Generator, anatomy: Anatomy, lesions: list[dict[str, Any]],
                  type_specs: dict[str, Any], clearance: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Set ``centre_mm``/``couinaud_segment`` of each lesion (in place); returns (placed, dropped).

    A lesion that finds no place after the stated attempts is dropped (and reported), never forced.
    """
    look = _Lookup(anatomy)
    liver = anatomy.label_of("liver")
    vessels = [anatomy.label_of(n) for n in ("portal_vein", "hepatic_veins") if n in anatomy.compartment_names]
    parenchyma = anatomy.labels == liver
    by_segment = {s: np.flatnonzero((anatomy.couinaud == s) & parenchyma) for s in range(1, 9)}
    x, y, z = axes_mm(anatomy.grid)
    nz, ny, nx = anatomy.labels.shape
    margin = float(clearance["parenchyma"]) + float(max(anatomy.grid.GetSpacing()))
    gap = float(clearance["between_lesions"])
    placed: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for les in lesions:
        spec = type_specs[les["type"]]
        weights = _segment_weights(anatomy, parenchyma, spec.get("segments"))
        allowed = [liver] + (vessels if les.get("vessels_run_through") else [])
        radius = bounding_radius_mm(les)
        ok = False
        for _ in range(SEGMENT_DRAWS):
            seg = int(rng.choice(9, p=weights))
            pool = by_segment[seg]
            if pool.size == 0:
                continue
            for _ in range(ATTEMPTS_PER_SEGMENT):
                flat = int(pool[rng.integers(pool.size)])
                k, j, i = np.unravel_index(flat, (nz, ny, nx))
                centre = np.array([x[i], y[j], z[k]], float)
                if any(np.linalg.norm(centre - np.asarray(o["centre_mm"])) < radius + o["_radius"] + gap
                       for o in placed):
                    continue
                les["centre_mm"] = [float(v) for v in centre]
                if np.all(np.isin(look(_probe_points(les, margin)), allowed)):
                    ok = True
                    break
            if ok:
                break
        if not ok:
            les.pop("centre_mm", None)
            dropped.append({"type": les["type"], "diameter_mm": les["diameter_mm"],
                            "reason": "no place in the parenchyma with the required clearance"})
            continue
        les["_radius"] = radius
        les["couinaud_segment"] = seg
        les.pop("couinaud_subsegment", None)
        if seg == 4:
            les["couinaud_subsegment"] = "IVa" if les["centre_mm"][2] >= PORTAL_PLANE_Z else "IVb"
        placed.append(les)
    for les in placed:
        les.pop("_radius", None)
    return placed, dropped
