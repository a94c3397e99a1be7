"""Couinaud segments I-VIII from the liver mask and approximate planes through landmarks found in the images.

The usual approximation (parameters and sources in ``resources/couinaud.json``): vertical planes from the IVC axis
along the right, middle and left hepatic veins separate the sectors; the horizontal plane of the portal
bifurcation separates the superior segments (VII, VIII, IVa) from the inferior ones (VI, V, IVb); in the left
lateral sector the plane of the left portal vein separates II (above) from III; the caudate lobe (I) is an
ellipsoid in front of and to the left of the IVC, from just below the portal level upwards. Planes only
approximate boundaries that follow the veins, so a lesion near one is reported on the border of the two segments
(:func:`segment_border`), as a reader would write 'VII/VIII border'.

Landmarks are named LPS points the reader can move (:func:`segments_from_landmarks` takes them back); they are
found on a contrast-enhanced phase (vessels brighter than the parenchyma): the IVC as the bright vertical vessel
most embraced by the liver at its top, the hepatic veins as the three main directions of the bright intrahepatic
vessels above the portal level around that axis, the portal bifurcation at the level where the intrahepatic
vessels run most in-plane. A reader's labelmap may replace all of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..anatomy import COUINAUD_ROMAN
from ..errors import LiverMetsError, MissingDataError
from ..resources import load_json
from .liver import morph, working_image

LANDMARKS = ("ivc", "right_hepatic_vein", "middle_hepatic_vein", "left_hepatic_vein", "portal_bifurcation",
             "left_portal_vein")
ROMAN = COUINAUD_ROMAN


@dataclass
class CouinaudResult:
    labels: sitk.Image                      # uint8 1..8 inside the liver, on the liver mask's grid
    landmarks: dict[str, list[float]]       # LPS mm
    series_used: str | None
    notes: list[str] = field(default_factory=list)


def _p(key: str):
    return load_json("couinaud.json")[key]["value"]


def _world(img: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z (LPS mm) of every voxel of ``img`` as (z, y, x) arrays."""
    nx, ny, nz = img.GetSize()
    idx = np.stack(np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1).reshape(-1, 3)
    d = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    w = idx @ d.T + np.asarray(img.GetOrigin())
    return tuple(w[:, a].reshape(nx, ny, nz).transpose(2, 1, 0) for a in range(3))  # type: ignore[return-value]


def segments_from_landmarks(liver_mask: sitk.Image, landmarks: Mapping[str, Sequence[float]]) -> sitk.Image:
    """Couinaud labels (uint8 1..8) of the liver mask's voxels from the six landmarks (LPS mm)."""
    missing = [k for k in LANDMARKS if k not in landmarks]
    if missing:
        raise MissingDataError(f"the Couinaud planes need the landmarks {', '.join(missing)}; place them or let "
                               "them be found on a portal venous phase")
    x, y, z = _world(liver_mask)
    seg = segment_of_points(x, y, z, landmarks)
    inside = sitk.GetArrayViewFromImage(liver_mask) > 0
    out = sitk.GetImageFromArray(np.where(inside, seg, 0).astype(np.uint8))
    out.CopyInformation(liver_mask)
    return out


def hepatic_vein_angle(ivc: Sequence[float], point: Sequence[float]) -> float:
    """Angle (degrees) of ``point`` around the IVC axis in the axial plane: 0 straight anterior, negative towards
    the patient's right (LPS: anterior = -y, right = -x)."""
    return float(np.degrees(np.arctan2(point[0] - ivc[0], -(point[1] - ivc[1]))))


def segment_of_points(x, y, z, lm: Mapping[str, Sequence[float]]) -> np.ndarray:
    """Couinaud segment (1..8) of world points (LPS mm), ignoring whether they are in the liver."""
    ivc, bif = lm["ivc"], lm["portal_bifurcation"]
    a_r, a_m, a_l = (hepatic_vein_angle(ivc, lm[k]) for k in ("right_hepatic_vein", "middle_hepatic_vein",
                                                                "left_hepatic_vein"))
    ang = np.degrees(np.arctan2(x - ivc[0], -(y - ivc[1])))
    sup = z >= bif[2]
    seg = np.where(ang < a_r, np.where(sup, 7, 6),
                   np.where(ang < a_m, np.where(sup, 8, 5),
                            np.where(ang < a_l, 4, np.where(z >= lm["left_portal_vein"][2], 2, 3))))
    return np.where(_in_caudate(x, y, z, ivc, bif) & (ang > a_m), 1, seg).astype(np.uint8)


def _in_caudate(x, y, z, ivc: Sequence[float], bif: Sequence[float]) -> np.ndarray:
    """The caudate lobe (I) as the rounded lobe it is: an ellipsoid in front of and to the left of the IVC, from
    the caudate process below the portal bifurcation upwards (a box with its corners at the hepatic-vein
    confluence took liver of segment II above the lobe: drawn studies 5904 and 5906)."""
    half = np.array([float(_p(k)) / 2 for k in ("caudate_width_mm", "caudate_depth_mm", "caudate_height_mm")])
    centre = (ivc[0] + half[0], ivc[1] - half[1], bif[2] - float(_p("caudate_below_portal_mm")) + half[2])
    q = ((x - centre[0]) / half[0]) ** 2 + ((y - centre[1]) / half[1]) ** 2 + ((z - centre[2]) / half[2]) ** 2
    return q <= 1.0


# ---------------------------------------------------------------- landmarks from the images

def _spacing_zyx(x, y, z) -> tuple[float, float, float]:
    """Voxel spacing (mm) along z, y, x of the world-coordinate arrays (any orientation)."""
    out = []
    for axis in range(3):
        sl0 = [0, 0, 0]
        sl1 = [0, 0, 0]
        sl1[axis] = 1 if x.shape[axis] > 1 else 0
        d = [float(c[tuple(sl1)] - c[tuple(sl0)]) for c in (x, y, z)]
        out.append(float(np.hypot(np.hypot(*d[:2]), d[2])) or 1.0)
    return tuple(out)  # type: ignore[return-value]


def _vessels(image: sitk.Image, liver: sitk.Image) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """Working image, liver mask on it, and the bright-vessel map (signal > liver median + k robust sigmas)."""
    work = working_image(image)
    arr = sitk.GetArrayFromImage(work)
    m = sitk.GetArrayFromImage(sitk.Resample(liver, work, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    if m.sum() < 100:
        raise LiverMetsError("the liver mask hardly overlaps the contrast phase used for the Couinaud landmarks; "
                             "check that both belong to this study")
    vals = arr[ndi.binary_erosion(m, iterations=2) if ndi.binary_erosion(m, iterations=2).sum() > 50 else m]
    med = float(np.median(vals))
    sigma = max(1.4826 * float(np.median(np.abs(vals - med))), 0.03 * med)
    return work, m, arr > med + float(_p("vessel_sigmas")) * sigma


def _find_ivc(work: sitk.Image, liver: np.ndarray, vessels: np.ndarray, x, y, z) -> tuple[float, float, float]:
    """The IVC axis (x, y) and the top of the liver's vessel confluence (z). In each slice of the upper half of the
    liver, every bright vessel cross-section embraced by liver is a candidate (scored by area x fraction embraced);
    the IVC is the vertical track of candidates found in the most slices (it runs through the liver's whole upper
    half, while a bright lesion, however large and embraced, spans only its own height), and its axis the median
    of the track's best candidate per slice."""
    zs = np.nonzero(liver.any(axis=(1, 2)))[0]
    z0, z1 = zs.min(), zs.max()
    upper = range(int(z0 + 0.5 * (z1 - z0)), int(z1) + 1)
    ring = ndi.generate_binary_structure(2, 1)
    found = []  # (slice, x, y, z, score)
    for k in upper:
        lab, n = ndi.label(vessels[k])
        if n == 0:
            continue
        grown = ndi.grey_dilation(lab, footprint=ndi.iterate_structure(ring, 2))
        touching = np.bincount(grown[liver[k] & (lab == 0)].ravel(), minlength=n + 1)
        border = np.bincount(grown[lab == 0].ravel(), minlength=n + 1)
        embrace = touching[1:] / np.maximum(border[1:], 1)
        area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        for i in np.flatnonzero(embrace >= float(_p("ivc_min_embrace"))):
            sel = lab == i + 1
            found.append((k, float(x[k][sel].mean()), float(y[k][sel].mean()), float(z[k][sel].mean()),
                          float(area[i] * embrace[i])))
    if not found:
        raise LiverMetsError("no IVC was found beside the liver on the contrast phase; place the landmarks")
    f = np.asarray(found)
    near = np.hypot(f[:, None, 1] - f[None, :, 1], f[:, None, 2] - f[None, :, 2]) <= float(_p("ivc_track_mm"))
    support = [len(np.unique(f[near[i], 0])) + f[i, 4] / (1.0 + f[:, 4].max()) for i in range(len(f))]
    track = f[near[int(np.argmax(support))]]
    best = np.array([row for row in track if row[4] == track[track[:, 0] == row[0], 4].max()])
    return float(np.median(best[:, 1])), float(np.median(best[:, 2])), float(best[:, 3].max())


def _in_plane_runs(inside: np.ndarray, x, y, min_run_mm: float) -> np.ndarray:
    """Voxels per slice of the 2-D vessel pieces longer than ``min_run_mm`` in-plane (bounding-box diagonal):
    vessels running in the slice (the portal branches), not veins crossing it steeply (hepatic veins)."""
    counts = np.zeros(inside.shape[0])
    for k in range(inside.shape[0]):
        lab, n = ndi.label(inside[k])
        if n == 0:
            continue
        idx = np.arange(1, n + 1)
        dx = ndi.maximum(x[k], lab, idx) - ndi.minimum(x[k], lab, idx)
        dy = ndi.maximum(y[k], lab, idx) - ndi.minimum(y[k], lab, idx)
        size = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        counts[k] = float(size[np.hypot(dx, dy) >= min_run_mm].sum())
    return counts


def _portal_level(liver: np.ndarray, vessels: np.ndarray, signal: np.ndarray, x, y, z, ivc) -> list[float]:
    """Portal bifurcation: the level (below the upper fifth of the liver) where the intrahepatic vessels run most
    in-plane near the hilum (anterior to the IVC, within ``hilum_radius_mm`` of it: the bifurcation and the first
    centimetres of the right and left portal veins, not the umbilical portion that rises into the left lobe),
    and the centre of those vessels in that slice. The slice is the one nearest the branches' partial-volume
    height (:func:`_branch_height`): their count fills a plateau of 2-3 slices where noise picked any of them
    (drawn studies 5905-5907: 15.5 mm for a bifurcation at 10). The plane is put at that slice's centre, so the
    slice holding the branches counts as superior: the right and left portal veins rise from the bifurcation,
    which lies at the lower side of their mass."""
    hilum = (y < ivc[1]) & (np.hypot(x - ivc[0], y - ivc[1]) < float(_p("hilum_radius_mm")))
    inside = vessels & ndi.binary_erosion(liver, iterations=1) & hilum
    zs = np.nonzero(liver.any(axis=(1, 2)))[0]
    z0, z1 = zs.min(), zs.max()
    count = _in_plane_runs(inside, x, y, float(_p("portal_min_run_mm")))
    count[int(z0 + 0.8 * (z1 - z0)):] = 0
    if count.max() <= 0:
        raise LiverMetsError("no portal vein branch was found in the liver; place the landmarks")
    height = _branch_height(count, inside, liver, signal, z, int(np.argmax(count)))
    levels = np.array([float(z[j][liver[j]].mean()) if liver[j].any() else np.inf for j in range(len(count))])
    k = int(np.argmin(np.where(count > 0, np.abs(levels - height), np.inf)))
    sel = inside[k]
    main = _main_portal_vein(vessels & hilum, sel, x, y, z, k)
    cx, cy = main if main is not None else (float(x[k][sel].mean()), float(y[k][sel].mean()))
    return [cx, cy, float(z[k][sel].mean())]


def _main_portal_vein(bright: np.ndarray, branches: np.ndarray, x, y, z, k: int) -> tuple[float, float] | None:
    """Centre (x, y) of the main portal vein just below the bifurcation. Of the bright hilar vessels that join
    the branches of slice ``k`` from below, the main portal vein is the one reaching lowest (it comes up from the
    confluence; the branches' own descending limbs soon leave the hilum); it is followed upwards from there, one
    overlapping section per slice, while its section stays compact (it climbs steeply to the porta hepatis; near
    the bifurcation it merges with the branches' lower edges), and its axis through the last compact sections is
    carried up to the branches' level.
    The centroid of the branches themselves is pulled towards the longer, wider branch (the right portal vein on
    the phantom: 21 mm to the right), and Harbin's line and the caudate's border stand on the main portal vein.
    Not limited to the liver mask: the main portal vein reaches the bifurcation outside the parenchyma. ``None``
    when none is found."""
    lo = max(k - max(1, int(np.ceil(float(_p("main_portal_search_mm")) / _slice_step(z, k)))), 0)
    if lo == k:
        return None
    block = bright[lo:k + 1].copy()
    block[-1] &= branches
    full = ndi.generate_binary_structure(3, 3)
    lab, _ = ndi.label(block, full)
    limbs, m = ndi.label(np.isin(lab, np.setdiff1d(np.unique(lab[-1][branches]), [0]))[:-1], full)
    if m == 0:
        return None
    boxes, sizes = ndi.find_objects(limbs), np.bincount(limbs.ravel())
    main = limbs == 1 + min(range(m), key=lambda i: (boxes[i][0].start, -int(sizes[i + 1])))
    min_run, ring = float(_p("portal_min_run_mm")), ndi.generate_binary_structure(2, 2)
    j = int(np.nonzero(main.any(axis=(1, 2)))[0][0])
    pieces, _ = ndi.label(main[j], ring)
    section = pieces == 1 + int(np.argmax(np.bincount(pieces.ravel())[1:]))
    track: list[tuple[float, float, float]] = []
    while np.hypot(np.ptp(x[lo + j][section]), np.ptp(y[lo + j][section])) < min_run:
        track.append((float(z[lo + j][section].mean()), float(x[lo + j][section].mean()),
                      float(y[lo + j][section].mean())))
        j += 1
        if j >= main.shape[0]:
            break
        pieces, _ = ndi.label(main[j], ring)
        touched = np.setdiff1d(np.unique(pieces[ndi.binary_dilation(section, ring)]), [0])
        if touched.size == 0:
            break
        section = np.isin(pieces, touched)
    return _extrapolate(track[-3:], float(z[k][branches].mean())) if track else None


def _extrapolate(track: list[tuple[float, float, float]], level: float) -> tuple[float, float]:
    """The vessel's axis (x, y against z, least squares through the last sections) at ``level``: the main portal
    vein is oblique, so its last clear section lies a few millimetres off the point where it meets the branches."""
    zs, xs, ys = (np.array(c) for c in zip(*track, strict=True))
    if len(track) < 2 or np.ptp(zs) <= 0:
        return float(xs[-1]), float(ys[-1])
    return tuple(float(np.polyval(np.polyfit(zs, v, 1), level)) for v in (xs, ys))  # type: ignore[return-value]


def _slice_step(z, k: int) -> float:
    """Distance (mm) between the slice centres around slice ``k``."""
    a, b = max(k - 1, 0), min(k + 1, len(z) - 1)
    return max(abs(float(z[b].mean() - z[a].mean())) / max(b - a, 1), 1e-3)


def _branch_height(count: np.ndarray, inside: np.ndarray, liver: np.ndarray, signal: np.ndarray, z,
                   k: int) -> float:
    """Height of the portal branches between slice centres. The nearly horizontal right and left portal veins
    fill several consecutive slices about equally (a plateau of the in-plane count); their signal above the
    parenchyma, summed over their footprint, is the partial volume of each slice with the veins, and its
    centroid along the slices their height."""
    lo = hi = k
    frac = float(_p("portal_plateau_fraction")) * count[k]
    while lo > 0 and count[lo - 1] >= frac:
        lo -= 1
    while hi < len(count) - 1 and count[hi + 1] >= frac:
        hi += 1
    foot = inside[lo:hi + 1].any(axis=0)
    band = range(max(lo - 1, 0), min(hi + 1, len(count) - 1) + 1)
    base = float(np.median(signal[liver]))
    excess = np.array([np.clip(signal[j][foot & liver[j]] - base, 0.0, None).sum() for j in band])
    heights = np.array([float(z[j][foot].mean()) for j in band])
    if excess.sum() <= 0:
        return float(z[k][inside[k]].mean())
    return float((excess * heights).sum() / excess.sum())


def _radial_tubes(sel: np.ndarray, r: np.ndarray, ang: np.ndarray) -> np.ndarray:
    """Keep the vessel pieces that run towards the IVC axis: longer radially than across (hepatic veins drain
    into the IVC); rings of rim-enhancing lesions and cross-cut branches are as wide as long."""
    lab, n = ndi.label(sel, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return sel
    idx = np.arange(1, n + 1)
    radial = ndi.maximum(r, lab, idx) - ndi.minimum(r, lab, idx)
    across = (ndi.maximum(ang, lab, idx) - ndi.minimum(ang, lab, idx)) * ndi.mean(r, lab, idx)
    keep = (radial >= float(_p("hepatic_vein_min_length_mm"))) & (radial >= float(_p("tube_ratio")) * across)
    return np.isin(lab, idx[keep])


def _hepatic_veins(liver: np.ndarray, vessels: np.ndarray, x, y, z, ivc, bif) -> dict[str, list[float]]:
    """The three main directions of the bright intrahepatic vessels above the portal level around the IVC axis."""
    core = ndi.binary_erosion(liver, iterations=1)
    # Bright blobs thicker than a hepatic vein (enhancing lesions: haemangioma, FNH-like nodule, fat sparing) are
    # not vessels: what survives an opening with a ball wider than the veins is removed, with a voxel's margin.
    spacing = _spacing_zyx(x, y, z)
    blobs = morph("open", vessels, float(_p("blob_radius_mm")), spacing)
    vessels = vessels & ~ndi.binary_dilation(blobs)
    r = np.hypot(x - ivc[0], y - ivc[1])
    sel = vessels & core & (z > bif[2] + float(_p("hepatic_vein_above_portal_mm"))) & (r > float(_p("ivc_clear_mm")))
    if sel.sum() < 10:
        raise LiverMetsError("too few hepatic-vein voxels were found above the portal level; place the landmarks")
    sel = _radial_tubes(sel, r, np.arctan2(x - ivc[0], -(y - ivc[1])))
    if sel.sum() < 10:
        raise LiverMetsError("no hepatic vein running towards the IVC was found; place the landmarks")
    ang = np.degrees(np.arctan2(x[sel] - ivc[0], -(y[sel] - ivc[1])))
    hist, edges = np.histogram(ang, bins=180, range=(-180, 180), weights=r[sel])
    hist = ndi.gaussian_filter1d(hist.astype(float), 2.0, mode="wrap")
    centres = (edges[:-1] + edges[1:]) / 2
    gap = float(_p("hepatic_vein_min_separation_deg"))
    peaks: list[float] = []
    for i in np.argsort(hist)[::-1]:
        if hist[i] <= 0 or len(peaks) == 3:
            break
        if all(abs(centres[i] - p) >= gap for p in peaks):
            peaks.append(float(centres[i]))
    if len(peaks) < 3:
        raise LiverMetsError("three hepatic veins could not be told apart; place the landmarks")
    out = {}
    for name, a in zip(("right_hepatic_vein", "middle_hepatic_vein", "left_hepatic_vein"), sorted(peaks),
                       strict=True):
        pick = np.abs(ang - a) <= gap / 3
        out[name] = [float(x[sel][pick].mean()), float(y[sel][pick].mean()), float(z[sel][pick].mean())]
    return out


def find_landmarks(image: sitk.Image, liver_mask: sitk.Image) -> dict[str, list[float]]:
    """The six landmarks (LPS mm) on a contrast-enhanced phase where the vessels are brighter than the liver."""
    work, liver, vessels = _vessels(image, liver_mask)
    x, y, z = _world(work)
    ivc = _find_ivc(work, liver, vessels, x, y, z)
    bif = _portal_level(liver, vessels, sitk.GetArrayViewFromImage(work), x, y, z, ivc)
    lm = {"ivc": list(ivc), "portal_bifurcation": bif}
    lm.update(_hepatic_veins(liver, vessels, x, y, z, ivc, bif))
    lm["left_portal_vein"] = [bif[0], bif[1], bif[2] + float(_p("left_portal_vein_above_bifurcation_mm"))]
    return lm


def couinaud_segments(images: Mapping[str, sitk.Image], liver_mask: sitk.Image, *,
                      landmarks: Mapping[str, Sequence[float]] | None = None,
                      labelmap: sitk.Image | None = None) -> CouinaudResult:
    """Couinaud labels on the liver mask's grid: from a reader's ``labelmap``, the reader's ``landmarks``, or
    landmarks found on the first contrast phase present (``vessel_series`` order)."""
    if labelmap is not None:
        lab = sitk.Resample(labelmap, liver_mask, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        arr = sitk.GetArrayFromImage(lab)
        if arr.max() > 8 or arr.min() < 0:
            raise LiverMetsError("the Couinaud labelmap must hold the segments 1-8 (0 outside)")
        out = sitk.GetImageFromArray(np.where(sitk.GetArrayViewFromImage(liver_mask) > 0, arr, 0).astype(np.uint8))
        out.CopyInformation(liver_mask)
        return CouinaudResult(out, {}, None, ["Couinaud segments from the reader's labelmap"])
    if landmarks is not None:
        lm = {k: [float(v) for v in p] for k, p in landmarks.items()}
        return CouinaudResult(segments_from_landmarks(liver_mask, lm), lm, None,
                              ["Couinaud planes from the reader's landmarks"])
    role = next((r for r in _p("vessel_series") if r in images), None)
    if role is None:
        raise MissingDataError("the Couinaud landmarks are found on a contrast phase (portal venous, transitional "
                               "or arterial) and the study has none; place the landmarks or give a labelmap")
    lm = find_landmarks(images[role], liver_mask)
    return CouinaudResult(segments_from_landmarks(liver_mask, lm), lm, role,
                          [f"Couinaud planes from landmarks found on {role} (approximate: check and move them)"])


# ---------------------------------------------------------------- a lesion near a boundary

@dataclass
class SegmentBorder:
    """Where a lesion lies against the segment boundaries: its centre's distance (mm) to the nearest liver of
    another segment, that segment, and whether the lesion is reported on the border of the two."""

    distance_mm: float | None
    neighbour: int | None
    border: bool

    def name(self, segment: int | None) -> str | None:
        """'VII/VIII border' when on the border, else None."""
        if not self.border or not segment or not self.neighbour:
            return None
        a, b = sorted((segment, self.neighbour))
        return f"{ROMAN[a]}/{ROMAN[b]} border"


def segment_border(labels: np.ndarray, spacing_zyx: Sequence[float], centre_zyx: Sequence[float],
                   radius_mm: float = 0.0, segment: int | None = None) -> SegmentBorder:
    """The nearest liver of another segment seen from a lesion centre (continuous voxel index z, y, x) in a
    Couinaud label array (any source: planes from landmarks or a reader's labelmap). Each label voxel is its box,
    so the distance is to the boundary as drawn, not to the neighbour's voxel centre. On the border when nearer
    than ``border_mm`` or the lesion's own radius (it then reaches into both). No distance when no other segment
    lies within ``boundary_search_mm``. ``segment``: the lesion's segment when the caller decided it otherwise
    (else the label under the centre)."""
    sp = np.asarray(spacing_zyx, float)
    c = np.asarray(centre_zyx, float)
    own_idx = tuple(int(np.clip(np.floor(v + 0.5), 0, n - 1)) for v, n in zip(c, labels.shape, strict=True))
    own = int(segment) if segment else int(labels[own_idx])
    limit = max(float(_p("border_mm")), float(radius_mm))
    reach = max(limit, float(_p("boundary_search_mm"))) + 2.0 * float(sp.max())
    lo = np.maximum(np.floor(c - reach / sp).astype(int), 0)
    hi = np.minimum(np.ceil(c + reach / sp).astype(int) + 1, labels.shape)
    window = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    other = np.argwhere((window > 0) & (window != own))
    if own == 0 or other.size == 0:
        return SegmentBorder(None, None, False)
    gap = np.maximum(np.abs((other + lo - c) * sp) - sp / 2.0, 0.0)
    dist = np.sqrt((gap ** 2).sum(axis=1))
    i = int(np.argmin(dist))
    near = int(window[tuple(other[i])])
    return SegmentBorder(round(float(dist[i]), 1), near, bool(dist[i] < limit))
