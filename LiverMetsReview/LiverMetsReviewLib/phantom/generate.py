"""Generate the digital phantom study and write it (NRRD study folder or DICOM) with its ground truth.

The anatomy and the lesion positions are fixed (data); the seed drives the noise and the breath-hold
shifts, so one seed gives bit-identical images and another seed different noise over the same truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..context import write_clinical_context
from ..errors import LiverMetsError, MissingDataError
from ..io.atomic import write_json_atomic
from ..io.images import write_image
from ..io.segmentation import write_segmentation
from ..io.study_folder import write_study_folder
from ..series import Series
from .anatomy import GRID_SPACING_MM, Anatomy, build_anatomy
from .lesions import paint_lesions, select_lesions
from .model import TissueModel
from .scenarios import get_scenario
from .tissues import build_tissue_model, check_field_strength
from .truth import build_truth, couinaud_segments, image_like, structure_labels

SIZES = tuple(GRID_SPACING_MM)


@dataclass
class PhantomStudy:
    """A generated study: series (each on its own grid), ground-truth labelmap and segments, truth document.

    ``labelmap`` and ``couinaud`` are on the *truth grid* (the fine grid the signals were computed from);
    use :meth:`labelmap_on` for a series' grid.
    """

    series: list[Series]
    labelmap: sitk.Image
    segments: list[dict[str, Any]]
    couinaud: sitk.Image
    truth: dict[str, Any]
    model: TissueModel | None = field(default=None, repr=False)

    def series_by_role(self, role: str) -> Series:
        for s in self.series:
            if s.role == role:
                return s
        raise MissingDataError(f"the phantom has no '{role}' series; roles present: "
                               f"{', '.join(s.role for s in self.series)}")

    def shift_mm(self, role: str) -> list[float]:
        """Breath-hold displacement of the anatomy in that series (LPS mm)."""
        facts = self.truth.get("acquisition", {}).get("series", {}).get(role, {})
        return [float(v) for v in facts.get("shift_mm", [0.0, 0.0, 0.0])]

    def _on(self, truth_image: sitk.Image, role: str, image: sitk.Image | None) -> sitk.Image:
        from ..region_stats import resample_labels

        ref = image if image is not None else self.series_by_role(role).image
        return resample_labels(truth_image, ref, self.shift_mm(role))

    def compartment_labels(self) -> sitk.Image:
        """The tissue model's compartment labels (rim, core, nodule… as in the truth) on the truth grid."""
        img = sitk.GetImageFromArray(self.model.labels.astype(np.int32))
        img.CopyInformation(self.labelmap)
        return img

    def compartments_on(self, role: str, image: sitk.Image | None = None) -> sitk.Image:
        """Compartment labels seen on a series' grid (nearest neighbour, breath-hold shift applied)."""
        return self._on(self.compartment_labels(), role, image)

    def labelmap_on(self, role: str, image: sitk.Image | None = None) -> sitk.Image:
        """The ground-truth labelmap seen on a series' grid (nearest neighbour, breath-hold shift applied)."""
        return self._on(self.labelmap, role, image)

    def couinaud_on(self, role: str, image: sitk.Image | None = None) -> sitk.Image:
        """The Couinaud segment map (1..8) seen on a series' grid (nearest neighbour, shift applied)."""
        return self._on(self.couinaud, role, image)


def _check_args(seed: int, size: str, b_values: Sequence[float], snr: float | None, shift: float) -> list[float]:
    if size not in SIZES:
        raise LiverMetsError(f"phantom size '{size}' is unknown; use one of {', '.join(SIZES)}")
    if int(seed) < 0:
        raise LiverMetsError(f"seed {seed} is negative; give a seed >= 0")
    bl = [float(b) for b in b_values]
    if len(bl) < 2 or len(set(bl)) != len(bl) or min(bl) < 0:
        raise LiverMetsError("give at least two distinct, non-negative b-values (s/mm^2), e.g. 50 400 800")
    if snr is not None and not (snr > 0):
        raise LiverMetsError(f"SNR {snr} is not positive; give a positive SNR (or leave it out for the protocol's)")
    if not (math.isfinite(shift) and 0.0 <= shift <= 30.0):
        raise LiverMetsError(f"breath-hold shift {shift} mm is outside 0-30 mm; give a plausible displacement")
    return bl


def build_model(scenario: str = "normal", *, field_strength_t: float = 1.5, liver_fat_percent: float | None = None,
                size: str = "standard") -> tuple[Anatomy, list[dict[str, Any]], TissueModel, dict[str, Any]]:
    """Anatomy + lesions + tissue parameters without any signal: (anatomy, lesions, tissue model, scenario)."""
    fs = check_field_strength(field_strength_t)
    sc = get_scenario(scenario, liver_fat_percent)
    anatomy = build_anatomy(size, sc.get("anatomy"))
    lesions = select_lesions(float(sc["liver_pdff_percent"]))
    lesion_labels = paint_lesions(anatomy, lesions)
    model = build_tissue_model(anatomy, lesions, lesion_labels, sc, fs)
    return anatomy, lesions, model, sc


def generate_phantom(seed: int = 0, scenario: str = "normal", *, field_strength_t: float = 1.5,
                     b_values: Sequence[float] = (50, 400, 800), snr: float | None = None,
                     liver_fat_percent: float | None = None, breath_hold_shift_mm: float = 0.0,
                     size: str = "standard") -> PhantomStudy:
    """Build the phantom for a scenario and simulate every series (noise and shifts from ``seed``)."""
    bl = _check_args(seed, size, b_values, snr, breath_hold_shift_mm)
    from .protocol import load_protocol, simulate_study  # signal physics (engineer B's module)

    anatomy, lesions, model, sc = build_model(scenario, field_strength_t=field_strength_t,
                                              liver_fat_percent=liver_fat_percent, size=size)
    rng = np.random.default_rng(int(seed))
    series, acquisition = simulate_study(model, rng, load_protocol(size), bl, snr, float(breath_hold_shift_mm))
    labels, segments = structure_labels(anatomy, model)
    truth = build_truth(seed=int(seed), scenario=sc, size=size, field_strength_t=model.field_strength_t,
                        b_values=bl, snr=snr, breath_hold_shift_mm=float(breath_hold_shift_mm), anatomy=anatomy,
                        model=model, lesions=lesions, labels=labels, series=series, acquisition=acquisition)
    return PhantomStudy(series=series, labelmap=image_like(labels, anatomy.grid), segments=segments,
                        couinaud=image_like(anatomy.couinaud, anatomy.grid), truth=truth, model=model)


def _study_info(study: PhantomStudy) -> dict[str, Any]:
    ctx = study.truth.get("clinical_context", {})
    date = str(ctx.get("study_date", "2026-03-10")).replace("-", "")
    return {"study_date": date, "study_description": "MR LIVER GADOXETATE (PHANTOM)",
            "patient_id": f"LMR-PHANTOM-{study.truth['scenario']['id'].upper()}-{study.truth['seed']}"}


def write_phantom(study: PhantomStudy, out_dir: str | Path, fmt: str | Sequence[str] = "nrrd", *,
                  vendor: str = "siemens") -> dict[str, Any]:
    """Write the series (NRRD study folder and/or DICOM under ``dicom/``) and, once, the ground truth.

    ``fmt`` is ``"nrrd"``, ``"dicom"`` or both as a sequence. ``vendor`` chooses the DICOM writer's vendor
    profile (header conventions, private b-value tags). Returns a manifest.
    """
    out = Path(out_dir)
    formats = (fmt,) if isinstance(fmt, str) else tuple(fmt)
    unknown = [f for f in formats if f not in ("nrrd", "dicom")]
    if unknown or not formats:
        raise LiverMetsError(f"output format '{', '.join(unknown)}' is unknown; use nrrd or dicom")
    if out.exists() and not out.is_dir():
        raise LiverMetsError(f"{out} exists and is not a folder; give a folder path")
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"format": "+".join(formats), "out_dir": str(out), "series": [], "files": {}}
    if "nrrd" in formats:
        index = write_study_folder(study.series, out, extra={"phantom": {"seed": study.truth["seed"],
                                                                        "scenario": study.truth["scenario"]["id"],
                                                                        "ground_truth": "ground_truth.json"}})
        manifest["files"]["roles"] = index.name
    if "dicom" in formats:
        from ..io.dicom_writer import write_series_dicom  # engineer C's writer

        folders = write_series_dicom(study.series, out / "dicom", study_info=_study_info(study),
                                     vendor=vendor, seed=int(study.truth["seed"]))
        manifest["files"]["dicom"] = [str(Path(f).relative_to(out)) for f in folders]
    manifest["series"] = [{"role": s.role, "stacks": len(s.stacks), "size": list(s.image.GetSize()),
                           "description": s.meta.get("description", "")} for s in study.series]
    write_segmentation(study.labelmap, study.segments, out / "ground_truth.seg.nrrd")
    write_image(study.labelmap, out / "ground_truth_labels.nrrd",
                {"content": "phantom ground-truth labels (organs 1..99, lesions 101..)", "grid": "truth_grid"})
    write_segmentation(study.couinaud, couinaud_segments(), out / "couinaud.seg.nrrd")
    write_json_atomic(out / "ground_truth.json", study.truth, indent=1, allow_nan=False)
    write_clinical_context(study.truth["clinical_context"], out / "clinical_context.json")
    manifest["files"].update({"ground_truth": "ground_truth.json", "clinical_context": "clinical_context.json",
                              "segmentation": "ground_truth.seg.nrrd",
                              "labels": "ground_truth_labels.nrrd", "couinaud": "couinaud.seg.nrrd"})
    manifest["lesions"] = [{"id": les["id"], "type": les["type"], "couinaud": les["couinaud_name"],
                            "diameter_mm": les["diameter_mm"]} for les in study.truth["lesions"]]
    return manifest
