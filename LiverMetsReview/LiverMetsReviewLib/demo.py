"""The end-to-end demonstration on the digital phantom: study → maps → per-lesion table against ground truth.

``run_demo`` is what ``make demo`` (``livermets demo``) runs. It writes the phantom (NRRD study folder, DICOM
and ground truth), computes every map the series allow, measures each lesion compartment and the liver on
each map, and puts the truth beside the measurement so a reader sees at once whether the pipeline is right.
Figures need matplotlib (a CLI-only extra) and are skipped with a note when it is absent.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LiverMetsError
from .io.atomic import write_json_atomic, write_text_atomic
from .io.images import write_image
from .phantom import PhantomStudy, generate_phantom, write_phantom
from .pipeline import LESION_MAPS, StudyMaps, compute_study_maps
from .region_stats import labels_on_grid, region_medians

# Which series each map is computed on (its grid and breath-hold shift), and which truth parameter it estimates.
MAP_SOURCE_ROLE = {
    "adc": "dwi", "ff_chemical_shift": "t1_in_phase", "ff_dixon": "dixon_water", "pdff": "multi_echo_gre",
    "re_arterial": "t1_pre", "re_portal_venous": "t1_pre", "re_transitional": "t1_pre", "re_hepatobiliary": "t1_pre",
}
TABLE_MAPS = tuple(MAP_SOURCE_ROLE)


def lesion_table(study: PhantomStudy, maps: StudyMaps) -> list[dict[str, Any]]:
    """One row per lesion compartment and one for the liver: truth parameters beside the maps' medians."""
    compartments = study.compartment_labels()
    liver_label = next(s["label"] for s in study.segments if s["id"] == "liver")
    rows: list[dict[str, Any]] = []
    regions: list[tuple[dict[str, Any], str, int]] = []  # (row, which label image, label)
    bg = study.truth["liver_background"]
    regions.append(({"lesion": "liver", "type": "background", "compartment": "parenchyma",
                     **{f"truth_{p}": bg["params"][p] for p in ("adc_1e6_mm2_s", "pdff_percent")}},
                    "organs", liver_label))
    for lesion in study.truth["lesions"]:
        for comp in lesion["compartments"]:
            regions.append(({"lesion": lesion["id"], "type": lesion["type"], "compartment": comp["name"],
                             **{f"truth_{p}": comp["params"][p] for p in ("adc_1e6_mm2_s", "pdff_percent")}},
                            "compartments", comp["compartment_label"]))
    label_views: dict[str, dict[str, Any]] = {}  # per source series: the maps computed on it share its grid
    for name in TABLE_MAPS:
        if name not in maps.images:
            continue
        image = maps.images[name]
        role = MAP_SOURCE_ROLE[name]
        if role not in label_views:
            shift = study.shift_mm(role)
            label_views[role] = {"organs": labels_on_grid(study.labelmap, image, shift),
                                 "compartments": labels_on_grid(compartments, image, shift)}
        on_grid = label_views[role]
        for kind in on_grid:
            wanted = [label for _, k, label in regions if k == kind]
            stats = region_medians(image, on_grid[kind], wanted)
            for row, k, label in regions:
                if k == kind:
                    row[name] = None if stats[label].median is None else round(stats[label].median, 1)
    for row, _, _ in regions:
        rows.append(row)
    return rows


def registration_table(study: PhantomStudy, maps: StudyMaps) -> list[dict[str, Any]]:
    """Per post-contrast phase: the translation registration found beside the true breath-hold displacement.

    The rigid transform maps pre-contrast grid points to the phase's points, so its translation estimates
    shift(phase) − shift(pre) (LPS mm); the rotation should stay near zero (the phantom moves rigidly).
    """
    rows = []
    pre = np.asarray(study.shift_mm("t1_pre"))
    for key, summary in maps.summaries.items():
        if not key.startswith("registration_"):
            continue
        role = "t1_" + key.removeprefix("registration_")
        params = summary["transform_parameters"]
        found, truth = np.asarray(params[3:6]), np.asarray(study.shift_mm(role)) - pre
        rows.append({"phase": role, "found_mm": [round(float(v), 2) for v in found],
                     "truth_mm": [round(float(v), 2) for v in truth],
                     "error_mm": round(float(np.linalg.norm(found - truth)), 2),
                     "rotation_deg": [round(float(np.degrees(v)), 2) for v in params[:3]],
                     "ncc_before": summary.get("ncc_before"), "ncc_after": summary.get("ncc_after")})
    return rows


# The segment kind (lesion_terminology.json) a reader would give each phantom lesion type.
READER_KIND = {"simple_cyst": "cyst", "flash_filling_hemangioma": "haemangioma", "fnh_like_nodule": "fnh_like",
               "post_ablation_zone": "ablation_zone", "post_ablation_zone_recurrence": "ablation_zone",
               "focal_fat_sparing": "fat_sparing", "focal_hypersteatosis": "focal_fat"}


def _reader_kind(lesion_type: str) -> str:
    return "metastasis" if "metastasis" in lesion_type else READER_KIND.get(lesion_type, "lesion")


def _truth_fraction(study: PhantomStudy, label: int) -> Any:
    """The fraction of each truth voxel inside a label (the phantom's fine grid), for outlines and Dice."""
    import SimpleITK as sitk

    return sitk.Cast(study.labelmap == label, sitk.sitkFloat32)


def _aligned_study(study: PhantomStudy, maps: StudyMaps, *, seed: int, scenario: str, size: str,
                   breath_hold_shift_mm: float) -> tuple[PhantomStudy, StudyMaps, str]:
    """The study the lesion stage reads: the demo's own when its series are aligned, else the same phantom (seed,
    scenario, size) generated without breath-hold shifts, with its maps."""
    if breath_hold_shift_mm <= 0:
        return study, maps, "the demo's study (no breath-hold shifts)"
    aligned = generate_phantom(seed, scenario, size=size)
    maps = compute_study_maps(aligned.series, which=LESION_MAPS)
    return aligned, maps, ("the same phantom without breath-hold shifts (T2 and DWI of the shifted study are not "
                           "registered, and the lesion outline reads every series together)")


def _lesions_stage(out: Path, study: PhantomStudy, maps: StudyMaps, *, figures: bool, log=print) -> dict[str, Any]:
    """Seeds at the phantom's lesions (the truth plays the reader's clicks), lesions and liver segmented and
    measured, Slicer files written into ``out/lesions``, and a PNG of each outline beside the truth's.

    The lesion segmentation uses every series together, so it needs them co-registered: ``study`` must have no
    breath-hold shifts (see :func:`_aligned_study`).
    """
    from .cli.liver_cmd import (
        analyse_liver,
        liver_segment,
        liver_summary,
        role_images,
        write_liver_figures,
        write_segmentation_atomic,
    )
    from .lesions.markups import Seed
    from .lesions.review import review_lesions, write_review

    t0 = time.perf_counter()
    lesion_dir = out / "lesions"
    images, _, notes = role_images(study.series)
    found = analyse_liver(images, None)
    log(f"lesions: liver outlined automatically on {found.series_used}")
    truth = {les["id"]: les for les in study.truth["lesions"]}
    seeds = [Seed(les["id"], tuple(les["centre_mm"]), f"type={_reader_kind(les['type'])}") for les in truth.values()]
    refused: dict[str, str] = {}   # the demo goes on without a refused lesion, as a reader would
    review = review_lesions(study.series, seeds, liver_mask=found.mask,
                            couinaud=found.couinaud.labels if found.couinaud is not None else None, maps=maps,
                            liver_note=f"automatic on {found.series_used}", refused=refused)
    for label, why in refused.items():
        log(f"  lesion {label}: not segmented: {why}")
    files = write_review(review, lesion_dir, maps)
    write_segmentation_atomic(found.mask, [liver_segment()], lesion_dir / "liver.seg.nrrd")
    files["liver"] = str(lesion_dir / "liver.seg.nrrd")
    files["liver_figures"] = write_liver_figures(liver_summary(found, images, "phantom (unshifted)",
                                                               {"liver": files["liver"]}, notes), lesion_dir)
    rows = _lesion_rows(study, review, truth)
    for r in rows:
        log(f"  {r['id']:<28} Dice {r['dice']:.2f}  long axis {r['long_axis_mm']:.1f} mm (truth "
            f"{r['truth_diameter_mm']:.1f})  Couinaud {r['couinaud']} (truth {r['truth_couinaud']})")
    if figures:
        files["outlines"] = str(_outline_png(study, review, rows, truth, lesion_dir / "outlines.png"))
    log(f"lesions: {len(rows)} segmented, {len(refused)} refused; files in {lesion_dir} "
        f"({time.perf_counter() - t0:.1f} s)")
    return {"files": files, "lesions": rows, "refused": refused, "liver_series": found.series_used}


def _lesion_rows(study: PhantomStudy, review: Any, truth: dict[str, dict]) -> list[dict[str, Any]]:
    """Per segmented lesion: Dice against the truth (voxels at least half inside it), diameter and Couinaud."""
    import SimpleITK as sitk

    rows = []
    for it in review.lesions:
        les = truth[it.seed.label]
        frac = sitk.Resample(_truth_fraction(study, les["label"]), review.reference, sitk.Transform(),
                             sitk.sitkLinear, 0.0)
        t = sitk.GetArrayFromImage(frac) >= 0.5
        dice = 2.0 * float((t & it.mask).sum()) / max(1, int(t.sum()) + int(it.mask.sum()))
        rows.append({"id": les["id"], "type": les["type"], "dice": round(dice, 3),
                     "long_axis_mm": it.measures.value("long_axis"), "truth_diameter_mm": les["diameter_mm"],
                     "couinaud": it.measures.couinaud_segment, "truth_couinaud": les.get("couinaud_segment")})
    return rows


def _outline_png(study: PhantomStudy, review: Any, rows: list[dict], truth: dict[str, dict], path: Path) -> Path:
    import SimpleITK as sitk

    from .lesion_figures import outline_tiles, write_outline_figure

    dice = {r["id"]: r["dice"] for r in rows}
    lesions = []
    for it in review.lesions:
        les = truth[it.seed.label]
        ours = sitk.GetImageFromArray(it.mask.astype(np.uint8))
        ours.CopyInformation(review.reference)
        lesions.append({**les, "ours": ours, "truth": _truth_fraction(study, les["label"]),
                        "dice": dice[les["id"]]})
    images = {s.role: s.image for s in study.series}
    return write_outline_figure(outline_tiles(images, lesions), path)


def _review_stage(study: PhantomStudy, maps: StudyMaps | None, out: Path, log=print,
                  lesions_dir: Path | None = None, study_dir: Path | None = None) -> dict[str, Any]:
    """The checklist on the phantom: every lesion's impression beside the truth's and the items that drove it,
    printed and written to ``out/review`` (review.json, review.md). ``lesions_dir``: a ``livermets measure``
    style folder (measurements.json) from an earlier stage; without it the lesions are measured here.
    ``study_dir``: the folder the study was written to, recorded as the review's input (as ``livermets review``
    does) so that ``livermets report --review`` alone finds the key images."""
    from .checklist.inputs import read_lesions
    from .checklist.phantom_check import review_lines, review_phantom, truth_markdown
    from .checklist.report import review_markdown

    t0 = time.perf_counter()
    measured = lesions_dir is not None and (Path(lesions_dir) / "measurements.json").exists()
    lesions = read_lesions(lesions_dir)[0] if measured else None
    result = review_phantom(study, maps, lesions=lesions)
    folder = out / "review"
    doc = dict(result["result"], truth_comparison=result["rows"], not_measured=result["not_measured"],
               lesions_from=str(lesions_dir) if measured else "measured by the review stage")
    if study_dir is not None:
        context = Path(study_dir) / "clinical_context.json"
        doc["inputs"] = {"study": str(Path(study_dir).resolve()),
                         "lesions": str(Path(lesions_dir).resolve()) if measured else None,
                         "context": str(context.resolve()) if context.exists() else None}
    write_json_atomic(folder / "review.json", doc, default=str)
    write_text_atomic(folder / "review.md", review_markdown(doc) + "\n" + truth_markdown(result))
    for line in review_lines(result):
        log(line)
    log(f"review: {folder / 'review.json'}, {folder / 'review.md'} ({time.perf_counter() - t0:.1f} s)")
    return {"agree": sum(r["got"] == r["expected"] for r in result["rows"]), "lesions": len(result["rows"]),
            "not_measured": len(result["not_measured"]), "files": [str(folder / "review.json"),
                                                                    str(folder / "review.md")]}


def _report_stage(out: Path, study_dir: Path, log=print, *, dicom: bool = True) -> dict[str, Any]:
    """The structured report of the review stage's review: ``out/report`` (HTML, PDF when PySide6 is installed,
    text, and with ``dicom`` the DICOM SEG + SR when highdicom is installed); the key images are cut from
    ``study_dir``, the study the lesions were measured on, whose DICOM files the SEG and SR reference."""
    from .report import ReportInputs, write_report

    t0 = time.perf_counter()
    notes: list[str] = []
    inputs = ReportInputs(out / "review", out / "lesions", study_dir)
    files = write_report(inputs, out / "report", ("html", "pdf", "txt"), notes=notes)
    if dicom:
        from .report.dicom_export import write_dicom

        try:
            files.extend(write_dicom(inputs, out / "report"))
        except LiverMetsError as exc:  # no highdicom: the other files stand, the reason is said
            notes.append(str(exc))
    for note in notes:
        log(f"  note: {note}")
    log(f"report: {', '.join(str(f) for f in files)} ({time.perf_counter() - t0:.1f} s)")
    return {"files": [str(f) for f in files], "notes": notes}


def _maps_stage(study, out: Path, breath_hold_shift_mm: float, log) -> tuple[Any, list[dict[str, Any]]]:
    """Every map of the study (dynamic phases registered when the breath-holds differ) written with its
    validity mask; the recovered registration shifts against the truth."""
    maps = compute_study_maps(study.series, register_dynamic=breath_hold_shift_mm > 0)
    registration = registration_table(study, maps)
    for row in registration:
        log(f"registered {row['phase']} to t1_pre: found {row['found_mm']} mm, true {row['truth_mm']} mm "
            f"(error {row['error_mm']} mm)")
    for name, image in maps.images.items():
        write_image(image, out / "maps" / f"{name}.nrrd", maps.metadata.get(name))
        if name in maps.valid:
            write_image(maps.valid[name], out / "maps" / "masks" / f"{name}_valid.nrrd",
                        {"quantity": f"voxels where {name} is measured (1) or masked (0)", "units": "1"})
    return maps, registration


def _write_lesion_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """Per-lesion truth beside the maps' values, as CSV."""
    columns = ["lesion", "type", "compartment", "truth_adc_1e6_mm2_s", "adc", "truth_pdff_percent",
               "ff_chemical_shift", "ff_dixon", "pdff", *[m for m in TABLE_MAPS if m.startswith("re_")]]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, table.getvalue())


def _figures_stage(study, maps, out: Path, log) -> list[str]:
    """The phantom montage and the maps figure (skipped, with the reason, where matplotlib is missing)."""
    try:
        from .figures import write_maps_figure
        from .phantom.montage import write_montage
    except ImportError as exc:  # pragma: no cover - matplotlib missing
        log(f"figures skipped: {exc}")
        return []
    files = [str(write_montage(study, out / "montage.png")), str(write_maps_figure(study, maps, out / "maps.png"))]
    log(f"figures: {', '.join(files)}")
    return files


def run_demo(out_dir: str | Path, *, seed: int = 0, scenario: str = "steatosis", size: str = "standard",
             breath_hold_shift_mm: float = 5.0, dicom: bool = True, figures: bool = True,
             log=print) -> dict[str, Any]:
    """Generate, write, map and tabulate, then segment and measure the lesions and the liver
    (:func:`_lesions_stage`); returns the summary also written to ``summary.json``.

    With a breath-hold shift the phases are displaced as between real breath-holds, and the dynamic phases
    are registered to the pre-contrast image before enhancement; the recovered shifts are tabulated.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    study = generate_phantom(seed, scenario, size=size, breath_hold_shift_mm=breath_hold_shift_mm)
    timings["phantom_s"] = time.perf_counter() - t0
    log(f"phantom: scenario '{scenario}', seed {seed}: {len(study.series)} series, "
        f"{len(study.truth['lesions'])} lesions ({timings['phantom_s']:.1f} s)")

    write_phantom(study, out / "phantom", ("nrrd", "dicom") if dicom else "nrrd")
    log(f"study written to {out / 'phantom'} (NRRD{' and DICOM' if dicom else ''}, ground truth beside it)")

    t0 = time.perf_counter()
    maps, registration = _maps_stage(study, out, breath_hold_shift_mm, log)
    timings["maps_s"] = time.perf_counter() - t0
    log(f"maps: {', '.join(sorted(maps.images))} ({timings['maps_s']:.1f} s)")
    for family, reason in maps.skipped.items():
        log(f"  not computed: {family}: {reason}")

    rows = lesion_table(study, maps)
    _write_lesion_table(out / "lesion_table.csv", rows)
    figure_files = _figures_stage(study, maps, out, log) if figures else []

    t0 = time.perf_counter()
    aligned, aligned_maps, which = _aligned_study(study, maps, seed=seed, scenario=scenario, size=size,
                                                  breath_hold_shift_mm=breath_hold_shift_mm)
    log(f"lesions stage on {which}")
    lesions = {**_lesions_stage(out, aligned, aligned_maps, figures=figures, log=log), "study": which}
    timings["lesions_s"] = time.perf_counter() - t0
    study_dir = out / "phantom"
    if aligned is not study:  # the lesions were measured on the unshifted phantom: key images are cut from it
        study_dir = out / "lesions" / "study_unshifted"
        write_phantom(aligned, study_dir, ("nrrd", "dicom") if dicom else "nrrd")
    t0 = time.perf_counter()
    review = _review_stage(aligned, aligned_maps, out, log, lesions_dir=out / "lesions", study_dir=study_dir)
    timings["review_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = _report_stage(out, study_dir, log, dicom=dicom)
    timings["report_s"] = time.perf_counter() - t0

    summary = {
        "review": review, "report": report,
        "seed": seed, "scenario": scenario, "size": size, "coordinate_system": "LPS",
        "series": [s.role for s in study.series], "lesions": [lesion["id"] for lesion in study.truth["lesions"]],
        "maps": {name: maps.metadata.get(name, {}) for name in maps.images},
        "map_summaries": maps.summaries, "skipped_maps": maps.skipped,
        "lesion_table": rows, "registration": registration, "breath_hold_shift_max_mm": breath_hold_shift_mm,
        "figures": figure_files, "timings": timings, "lesion_review": lesions,
        "note": "Measurements are evidence for a reader; nothing here is a diagnosis.",
    }
    write_json_atomic(out / "summary.json", summary, default=str)
    log(f"summary: {out / 'summary.json'}; per-lesion truth vs measurement: {out / 'lesion_table.csv'}")
    return summary
