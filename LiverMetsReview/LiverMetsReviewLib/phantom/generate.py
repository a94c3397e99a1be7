"""Generate the digital phantom study and write it (NRRD study folder or DICOM) with its ground truth.

Fixed catalogue (default): the anatomy and the lesion positions are fixed (data); the seed drives the noise and
the breath-hold shifts, so one seed gives bit-identical images and another seed different noise over the same
truth. ``vary=True``: the seed also draws the study and its lesions (:mod:`.vary`); one (seed, scenario, size)
still gives bit-identical output, but the placement depends on the truth grid, so ``small`` and ``standard``
studies of one seed hold different lesions.
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
from ..io.study_folder import read_study_index, write_study_folder
from ..series import Series
from .anatomy import GRID_SPACING_MM, Anatomy, build_anatomy
from .lesions import catalogue, paint_lesions, select_lesions
from .model import TissueModel
from .scenarios import get_scenario
from .tissues import build_tissue_model, check_field_strength, liver_params
from .truth import build_truth, couinaud_segments, image_like, structure_labels

SIZES = tuple(GRID_SPACING_MM)
# Second entropy word of the random stream the varied phantom draws from (the noise uses the seed alone).
VARY_STREAM = 8


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


def build_varied_model(seed: int, scenario: str = "normal", *, field_strength_t: float | None = None,
                       liver_fat_percent: float | None = None, size: str = "standard"
                       ) -> tuple[Anatomy, list[dict[str, Any]], TissueModel, dict[str, Any], dict[str, Any]]:
    """As :func:`build_model`, with everything the seed draws (see :mod:`.vary`); the fifth item records the draw.

    Arguments given explicitly (field strength, liver fat) win over the draw. The draws use their own random
    stream (``[seed, VARY_STREAM]``), so the noise of a study stays the noise of its seed.
    """
    from .placement import place_lesions
    from .vary import RANGES, draw_lesions, draw_settings, lesion_ranges, name_lesions
    from .vary_context import draw_context

    rng = np.random.default_rng([int(seed), VARY_STREAM])
    sc = get_scenario(scenario, liver_fat_percent)
    settings = draw_settings(rng, sc["id"])
    fs = check_field_strength(settings["field_strength_t"] if field_strength_t is None else field_strength_t)
    lv = settings["liver"]
    if liver_fat_percent is None:
        sc["liver_pdff_percent"] = lv["pdff_percent"]
    sc["hepatocyte_uptake_factor"] = lv["hepatocyte_uptake_factor"]
    sc["liver_overrides"] = {k: lv[k] for k in ("adc_1e6_mm2_s", "t1_factor", "t2_factor")}
    steatotic = float(sc["liver_pdff_percent"]) >= float(catalogue()["steatosis_dependent_min_liver_pdff_percent"])
    anatomy = build_anatomy(size, sc.get("anatomy"))
    ranges = lesion_ranges()
    lesions = draw_lesions(rng, settings, steatotic, liver_params(sc, fs), fs)
    placed, dropped = place_lesions(rng, anatomy, lesions, ranges["lesion_types"], ranges["study"]["clearance_mm"])
    name_lesions(placed)
    sc["clinical_context"] = draw_context(rng, sc, settings, placed, steatotic, int(seed))
    model = build_tissue_model(anatomy, placed, paint_lesions(anatomy, placed), sc, fs)
    record = {"enabled": True, "seed": int(seed), "stream": [int(seed), VARY_STREAM],
              "ranges": {"file": RANGES, "format": ranges["format"], "version": ranges["version"]},
              "field_strength_t": fs, "field_strength_drawn": field_strength_t is None,
              "snr_scale": settings["snr_scale"], "vendor": settings["vendor"],
              "primary_tumour": settings["primary_tumour"], "liver": lv,
              "liver_pdff_drawn": liver_fat_percent is None, "steatotic": steatotic,
              "lesion_types": [les["type"] for les in placed], "dropped": dropped}
    return anatomy, placed, model, sc, record


def _snr_scaled(protocol: dict[str, Any], scale: float) -> dict[str, Any]:
    for group in protocol["noise_groups"].values():
        group["snr"] = float(group["snr"]) * scale
    return protocol


def generate_phantom(seed: int = 0, scenario: str = "normal", *, field_strength_t: float | None = None,
                     b_values: Sequence[float] = (50, 400, 800), snr: float | None = None,
                     liver_fat_percent: float | None = None, breath_hold_shift_mm: float = 0.0,
                     size: str = "standard", vary: bool = False) -> PhantomStudy:
    """Build the phantom for a scenario and simulate every series (noise and shifts from ``seed``).

    ``vary=False``: the fixed lesion catalogue at 1.5 T unless ``field_strength_t`` says otherwise.
    ``vary=True``: the seed also draws field strength, SNR, vendor, liver background, the lesions (types, count,
    size, outline, position, heterogeneity, tissue parameters) and the clinical context; the truth's ``vary``
    key records the draw.
    """
    bl = _check_args(seed, size, b_values, snr, breath_hold_shift_mm)
    from .protocol import load_protocol, simulate_study  # imported here: the series simulation is the heavy part

    protocol = load_protocol(size)
    if vary:
        anatomy, lesions, model, sc, record = build_varied_model(
            seed, scenario, field_strength_t=field_strength_t, liver_fat_percent=liver_fat_percent, size=size)
        protocol = _snr_scaled(protocol, record["snr_scale"])
    else:
        anatomy, lesions, model, sc = build_model(scenario, field_strength_t=1.5 if field_strength_t is None
                                                  else field_strength_t, liver_fat_percent=liver_fat_percent,
                                                  size=size)
        record = {"enabled": False}
    rng = np.random.default_rng(int(seed))
    series, acquisition = simulate_study(model, rng, protocol, bl, snr, float(breath_hold_shift_mm))
    labels, segments = structure_labels(anatomy, model, lesions)
    truth = build_truth(seed=int(seed), scenario=sc, size=size, field_strength_t=model.field_strength_t,
                        b_values=bl, snr=snr, breath_hold_shift_mm=float(breath_hold_shift_mm), anatomy=anatomy,
                        model=model, lesions=lesions, labels=labels, series=series, acquisition=acquisition)
    truth["vary"] = record
    return PhantomStudy(series=series, labelmap=image_like(labels, anatomy.grid), segments=segments,
                        couinaud=image_like(anatomy.couinaud, anatomy.grid), truth=truth, model=model)


def _study_info(study: PhantomStudy) -> dict[str, Any]:
    ctx = study.truth.get("clinical_context", {})
    date = str(ctx.get("study_date", "2026-03-10")).replace("-", "")
    return {"study_date": date, "study_description": "MR LIVER GADOXETATE (PHANTOM)",
            "patient_id": f"LMR-PHANTOM-{study.truth['scenario']['id'].upper()}-{study.truth['seed']}"}


def write_phantom(study: PhantomStudy, out_dir: str | Path, fmt: str | Sequence[str] = "nrrd", *,
                  vendor: str | None = None) -> dict[str, Any]:
    """Write the series (NRRD study folder and/or DICOM under ``dicom/``) and, once, the ground truth.

    ``fmt`` is ``"nrrd"``, ``"dicom"`` or both as a sequence. ``vendor`` chooses the DICOM writer's vendor
    profile (header conventions, private b-value tags); default: the vendor a varied study drew, else siemens.
    Returns a manifest.
    """
    vendor = vendor or study.truth.get("vary", {}).get("vendor") or "siemens"
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
        if "nrrd" in formats:  # the NRRD study folder records the DICOM it was also written as (SEG/SR export)
            from ..study.sources import record_written_dicom

            record_written_dicom(out, folders, study.series, read_study_index(out)[1])
            manifest["files"]["dicom_sources"] = "dicom_sources.json"
    elif (out / "dicom_sources.json").exists() and "nrrd" in formats:  # from an earlier write with DICOM
        (out / "dicom_sources.json").unlink()
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
