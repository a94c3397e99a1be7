"""Series -> roles on synthetic DICOM studies written here with pydicom, headers the way scanners write them.

Ground truth is the role each synthetic series was built to be; the physics tests use the analytic
fat-water phase (γ·B0·3.4 ppm). Also bad input: corrupt files, empty folders, mixed studies, missing tags.
The builder (``write_series``) is reused by the other test_study_* modules.
"""

from __future__ import annotations

import inspect
import itertools
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.study.classify import apply_overrides, classify_folder, echo_phase, load_overrides
from LiverMetsReviewLib.study.scan import scan_folder

MR = "1.2.840.10008.5.1.4.1.1.4"
_counter = itertools.count(1)


def save(ds: Dataset, path: Path) -> None:
    """Write with a proper file meta on pydicom 2.4 and 3.x."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if "enforce_file_format" in inspect.signature(pydicom.dcmwrite).parameters:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.4
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


def write_series(folder: Path, *, study_uid: str, description: str, number: int | None = None,
                 te: float | list[float] = 2.0, tr: float = 5.0, flip: float = 12.0, field_t: float | None = 1.5,
                 image_type: list[str] | list[list[str]] | None = None, b_values: list[float] | None = None,
                 vendor: str = "siemens", acq_time: str = "100000", contrast: str | None = None,
                 n_slices: int = 3, rows: int = 6, cols: int = 5, orientation=(1, 0, 0, 0, 1, 0),
                 spacing=(1.5, 2.0, 4.0), origin=(-10.0, -20.0, 30.0), slope: float = 1.0, intercept: float = 0.0,
                 pixels=None, trace_label: str | None = None, omit: tuple[str, ...] = (),
                 b_standard: bool = True, ge_offset: bool = False, series_uid: str | None = None,
                 contrast_start: str | None = None) -> Path:
    """One classic MR series: one file per slice per stack (stack = TE, b-value or ImageType variant)."""
    number = number if number is not None else next(_counter)
    series_uid = series_uid or generate_uid()
    tes = te if isinstance(te, list) else [te]
    types = image_type if (image_type and isinstance(image_type[0], list)) else [image_type or
                                                                                ["ORIGINAL", "PRIMARY", "M", "ND"]]
    bs = b_values or [None]
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row, col)
    out = folder / f"S{number:03d}"
    inst = 0
    for t_echo, itype, b in itertools.product(tes, types, bs):
        for k in range(n_slices):
            inst += 1
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = MR
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SOPClassUID = MR
            ds.Modality = "MR"
            ds.Manufacturer = {"siemens": "SIEMENS", "ge": "GE MEDICAL SYSTEMS", "philips": "Philips"}[vendor]
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = number
            ds.InstanceNumber = inst
            ds.SeriesDescription = description
            ds.PatientID = "SYNTH"
            ds.StudyDate = ds.AcquisitionDate = "20260101"
            ds.AcquisitionTime = acq_time
            ds.ImageType = list(itype)
            ds.EchoTime = f"{t_echo:g}"
            ds.RepetitionTime = f"{tr:g}"
            ds.FlipAngle = f"{flip:g}"
            if field_t is not None:
                ds.MagneticFieldStrength = f"{field_t:g}"
            if contrast:
                ds.ContrastBolusAgent = contrast
            if contrast_start:
                ds.ContrastBolusStartTime = contrast_start
            pos = np.asarray(origin, float) + k * spacing[2] * normal
            ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
            ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
            ds.SliceThickness = f"{spacing[2]:g}"
            ds.Rows, ds.Columns = rows, cols
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
            arr = pixels(k, b, t_echo) if pixels else np.full((rows, cols), 100 + k, np.uint16)
            ds.PixelData = np.ascontiguousarray(arr, dtype=np.uint16).tobytes()
            if b is not None:
                if b_standard:
                    ds.DiffusionBValue = float(b)
                if vendor == "siemens":
                    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
                    block.add_new(0x0C, "IS", str(int(b)))
                elif vendor == "ge":
                    block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
                    block.add_new(0x39, "IS", [int(b) + (1_000_000_000 if ge_offset else 0), 8, 0, 0])
                elif vendor == "philips":
                    block = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
                    block.add_new(0x03, "FL", float(b))
                    block.add_new(0x04, "CS", trace_label or "I")
            for keyword in omit:
                if keyword in ds:
                    delattr(ds, keyword)
            save(ds, out / f"IM{inst:04d}.dcm")
    return out


def write_liver_study(root: Path, *, field_t: float = 1.5, vendor: str = "siemens", seed: int = 0) -> dict[int, str]:
    """A full gadoxetate liver study; returns series number -> expected role (stack roles joined by '+')."""
    study = generate_uid()
    rng = np.random.default_rng(seed)
    op, ip = (2.3, 4.6) if field_t == 1.5 else (1.15, 2.3)
    exp: dict[int, str] = {}

    def add(number: int, role: str, **kw) -> None:
        write_series(root, study_uid=study, number=number, field_t=field_t, vendor=vendor, **kw)
        exp[number] = role

    add(1, "unassigned", description="localizer", image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"], acq_time="090000")
    add(2, "t1_opposed_phase+t1_in_phase", description="t1_fl2d_dual_echo_tra", te=[op, ip], tr=150.0,
        acq_time="090100")
    add(3, "dixon_water", description="t1_vibe_dixon_tra_W", te=2.39, image_type=["DERIVED", "PRIMARY", "DIXON",
                                                                                     "WATER"], acq_time="090200")
    add(4, "dixon_fat", description="t1_vibe_dixon_tra_F", te=2.39, image_type=["DERIVED", "PRIMARY", "DIXON", "FAT"],
        acq_time="090200")
    add(5, "multi_echo_gre", description="gre_6echo_tra", te=[1.2 * k for k in range(1, 7)], tr=9.0,
        acq_time="090300")
    add(6, "t2", description="t2_haste_fs_tra", te=float(rng.uniform(80, 100)), tr=1400.0, flip=160.0,
        acq_time="090400")
    add(7, "dwi", description="ep2d_diff_b50_400_800_tra", te=60.0, tr=5000.0, b_values=[50.0, 400.0, 800.0],
        image_type=["DERIVED", "PRIMARY", "DIFFUSION", "TRACEW"], acq_time="090500")
    add(8, "adc_scanner", description="ep2d_diff_tra_ADC", te=60.0, tr=5000.0,
        image_type=["DERIVED", "PRIMARY", "DIFFUSION", "ADC"], acq_time="090500")
    # dynamic: pre, then injection at 09:10:00; arterial +25 s, PV +70 s, transitional +3 min, HBP +20 min
    jitter = rng.uniform(-3, 3, size=4)
    times = [0.0, 25 + jitter[0], 70 + jitter[1], 180 + jitter[2], 1200 + jitter[3]]
    roles = ["t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"]
    for k, (dt, role) in enumerate(zip(times, roles, strict=True)):
        t = 9 * 3600 + (9 * 60 + 30 if k == 0 else 10 * 60 + dt)
        clock = f"{int(t // 3600):02d}{int(t % 3600 // 60):02d}{t % 60:09.6f}"
        add(11 + k, role, description=f"t1_vibe_fs_tra_dyn{k}", te=1.8, tr=4.0, flip=10.0, acq_time=clock,
            contrast=None if k == 0 else "Gd-EOB-DTPA")
    return exp


def _roles(folder: Path) -> dict[int, str]:
    return {s.series_number: s.role for s in classify_folder(folder).series}


@pytest.fixture(scope="module")
def study_15(tmp_path_factory) -> tuple[Path, dict[int, str]]:
    root = tmp_path_factory.mktemp("study15")
    return root, write_liver_study(root, field_t=1.5)


def test_every_series_of_a_15T_study_gets_its_role(study_15):
    root, expected = study_15
    assert _roles(root) == expected


def test_reasons_name_the_evidence(study_15):
    root, _ = study_15
    by_num = {s.series_number: s for s in classify_folder(root).series}
    assert "50/400/800" in by_num[7].reason and "(0018,9087)" in by_num[7].reason
    assert "2.3/4.6" in by_num[2].reason and "1.5 T" in by_num[2].reason
    assert "+20" in by_num[15].reason and "hepatobiliary" in by_num[15].reason
    # dual-echo stacks in TE order: opposed first
    assert by_num[2].stack_roles == ["t1_opposed_phase", "t1_in_phase"]


@pytest.mark.parametrize("vendor,seed", [("ge", 1), ("philips", 2)])
def test_3T_study_other_vendors(tmp_path, vendor, seed):
    expected = write_liver_study(tmp_path, field_t=3.0, vendor=vendor, seed=seed)
    assert _roles(tmp_path) == expected


@pytest.mark.parametrize("b0,te,state", [(1.5, 2.3, "opposed"), (1.5, 4.6, "in"), (3.0, 1.15, "opposed"),
                                          (3.0, 2.3, "in"), (3.0, 4.6, "in"), (1.5, 6.9, "opposed"),
                                          (1.5, 3.45, None), (1.5, 1.0, None), (3.0, 1.7, None)])
def test_echo_phase_physics(b0, te, state):
    # analytic: Δf = 42.577 MHz/T · B0 · 3.4 ppm; opposed at (n+½)/Δf, in phase at n/Δf
    df = 42.577e6 * b0 * 3.4e-6
    cycles = te * 1e-3 * df
    got, got_cycles = echo_phase(te, b0)
    assert got == state
    assert got_cycles == pytest.approx(cycles, rel=1e-9)


def test_3T_echoes_2p3_4p6_are_not_a_pair(tmp_path):
    study = generate_uid()
    write_series(tmp_path, study_uid=study, description="t1_in_opp", te=[2.3, 4.6], field_t=3.0)
    s = classify_folder(tmp_path).series[0]
    assert s.role == "unassigned"
    assert "in/in phase" in s.reason


def test_field_strength_from_imaging_frequency(tmp_path):
    study = generate_uid()
    folder = write_series(tmp_path, study_uid=study, description="dual", te=[1.15, 2.3], field_t=None)
    for f in folder.iterdir():  # 3 T by frequency only: 127.7 MHz
        ds = pydicom.dcmread(f)
        ds.ImagingFrequency = "127.73"
        save(ds, f)
    s = classify_folder(tmp_path).series[0]
    assert s.stack_roles == ["t1_opposed_phase", "t1_in_phase"]
    assert "imaging frequency" in s.reason


def test_dual_echo_without_field_strength_is_unassigned(tmp_path):
    write_series(tmp_path, study_uid=generate_uid(), description="dual", te=[2.3, 4.6], field_t=None)
    s = classify_folder(tmp_path).series[0]
    assert s.role == "unassigned" and "field strength" in s.reason


def test_single_echo_phase_series_checked_by_physics(tmp_path):
    study = generate_uid()
    write_series(tmp_path, study_uid=study, number=1, description="t1 opposed phase", te=2.3)
    write_series(tmp_path, study_uid=study, number=2, description="t1 in phase", te=4.6)
    write_series(tmp_path, study_uid=study, number=3, description="t1 opposed phase", te=4.6)  # wrong TE
    roles = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert roles[1].role == "t1_opposed_phase"
    assert roles[2].role == "t1_in_phase"
    assert roles[3].role == "unassigned" and "in phase" in roles[3].reason


def test_dixon_series_with_four_image_types_gets_stack_roles(tmp_path):
    types = [["DERIVED", "PRIMARY", "DIXON", t] for t in ("WATER", "FAT", "IN_PHASE", "OPP_PHASE")]
    write_series(tmp_path, study_uid=generate_uid(), description="vibe dixon", te=2.39, image_type=types)
    s = classify_folder(tmp_path).series[0]
    got = {st.image_type[3]: r for st, r in zip(s.stacks, s.stack_roles, strict=True)}
    assert got == {"WATER": "dixon_water", "FAT": "dixon_fat", "IN_PHASE": "t1_in_phase",
                   "OPP_PHASE": "t1_opposed_phase"}


@pytest.mark.parametrize("vendor,kw", [("siemens", {}), ("ge", {"ge_offset": True}), ("philips", {})])
def test_dwi_b_values_from_private_tags_only(tmp_path, vendor, kw):
    write_series(tmp_path, study_uid=generate_uid(), description="abdomen diffusion", te=65.0, tr=4000.0,
                 b_values=[0.0, 50.0, 800.0], vendor=vendor, b_standard=False, **kw)
    s = classify_folder(tmp_path).series[0]
    assert s.role == "dwi"
    assert [st.b_value for st in s.stacks] == [0.0, 50.0, 800.0]
    assert s.b_sources and all(vendor.lower() in src.lower() for src in s.b_sources)


def test_philips_trace_label_marks_trace_stacks(tmp_path):
    write_series(tmp_path, study_uid=generate_uid(), description="dwi", te=65.0, tr=4000.0, b_values=[0.0, 800.0],
                 vendor="philips", trace_label="I")
    s = classify_folder(tmp_path).series[0]
    assert [(st.b_value, st.is_trace) for st in s.stacks] == [(0.0, False), (800.0, True)]


def test_diffusion_without_readable_b_is_unassigned_with_reason(tmp_path):
    write_series(tmp_path, study_uid=generate_uid(), description="ep2d_diff_tra", te=65.0, tr=4000.0,
                 image_type=["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"])
    s = classify_folder(tmp_path).series[0]
    assert s.role == "unassigned"
    assert "no b-value is readable" in s.reason and "(0043,1039)" in s.reason


def test_dynamic_by_time_only_without_contrast_tags_or_words(tmp_path):
    study = generate_uid()
    clocks = ["100000", "100200", "100245", "100500", "102200"]  # pre, +2:00 (art), +45 s, +5 min, +22 min
    expected = ["t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"]
    for k, clock in enumerate(clocks):
        write_series(tmp_path, study_uid=study, number=20 + k, description="t1 vibe fs", te=1.8, tr=4.0,
                     acq_time=clock)
    got = [s.role for s in sorted(classify_folder(tmp_path).series, key=lambda s: s.series_number)]
    assert got == expected


def test_dynamic_windows_relative_to_injection_when_known(tmp_path):
    study = generate_uid()
    # injection at 10:01:00; the first post at +65 s is portal venous (no arterial phase acquired)
    write_series(tmp_path, study_uid=study, number=1, description="t1 vibe", te=1.8, tr=4.0, acq_time="100000")
    for number, clock in ((2, "100205"), (3, "102100")):
        write_series(tmp_path, study_uid=study, number=number, description="t1 vibe", te=1.8, tr=4.0,
                     acq_time=clock, contrast="Primovist", contrast_start="100100")
    roles = _roles(tmp_path)
    assert roles == {1: "t1_pre", 2: "t1_portal_venous", 3: "t1_hepatobiliary"}


def test_timing_contradicting_the_description_is_unassigned(tmp_path):
    study = generate_uid()
    write_series(tmp_path, study_uid=study, number=1, description="t1 vibe pre", te=1.8, tr=4.0, acq_time="100000")
    write_series(tmp_path, study_uid=study, number=2, description="t1 vibe art", te=1.8, tr=4.0, acq_time="100100",
                 contrast="Gd")
    write_series(tmp_path, study_uid=study, number=3, description="t1 vibe hbp", te=1.8, tr=4.0, acq_time="100150",
                 contrast="Gd")  # +50 s after the first post: portal venous by timing, 'hbp' by words
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert by_num[2].role == "t1_arterial"
    assert by_num[3].role == "unassigned" and "portal venous" in by_num[3].reason and "hepatobiliary" in by_num[
        3].reason


def test_two_series_claiming_one_role_stay_unassigned(tmp_path):
    study = generate_uid()
    for n in (1, 2):
        write_series(tmp_path, study_uid=study, number=n, description="t2 haste", te=90.0, tr=1500.0)
    scan = classify_folder(tmp_path)
    assert [s.role for s in scan.series] == ["unassigned", "unassigned"]
    assert all("ambiguous" in s.reason for s in scan.series)
    # the reader decides, by series number; the other becomes unassigned explicitly
    apply_overrides(scan.series, {"2": "t2", "1": "unassigned"})
    assert [s.role for s in scan.series] == ["unassigned", "t2"]
    assert scan.series[1].confidence == 1.0 and scan.series[1].reason == "set by the reader"


def test_overrides_are_validated(tmp_path):
    write_series(tmp_path, study_uid=generate_uid(), number=4, description="x", te=90.0, tr=2000.0)
    scan = classify_folder(tmp_path)
    with pytest.raises(LiverMetsError, match="unknown role"):
        apply_overrides(scan.series, {"4": "t3"})
    with pytest.raises(LiverMetsError, match="no series"):
        apply_overrides(scan.series, {"99": "t2"})
    with pytest.raises(LiverMetsError, match="give a role"):
        apply_overrides(scan.series, {"4": 5})
    with pytest.raises(LiverMetsError, match="stack '1', which does not exist"):
        apply_overrides(scan.series, {"4": {"1": "t2"}})
    apply_overrides(scan.series, {"4": {"0": "t2"}})
    assert scan.series[0].stack_roles == ["t2"]
    bad = tmp_path / "roles.json"
    bad.write_text('{"series": []}')
    with pytest.raises(LiverMetsError, match="overrides"):
        load_overrides(bad)


# ------------------------------------------------------------------------------------------ bad input
def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(LiverMetsError, match="empty"):
        scan_folder(tmp_path)
    with pytest.raises(LiverMetsError, match="does not exist"):
        scan_folder(tmp_path / "nope")


def test_corrupt_and_foreign_files_are_skipped_with_reasons(tmp_path):
    folder = write_series(tmp_path, study_uid=generate_uid(), description="t2", te=90.0, tr=2000.0)
    good = sorted(folder.iterdir())[0].read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(good[:400])
    (tmp_path / "notes.txt").write_text("not dicom")
    (tmp_path / "noise.dcm").write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(0).bytes(300))
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    scan = scan_folder(tmp_path)
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert set(reasons) == {"truncated.dcm", "notes.txt", "noise.dcm", "broken.gz"}
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "gzip" in reasons["broken.gz"]
    assert len(scan.series) == 1 and scan.series[0].n_instances == 3


def test_folder_mixing_studies_classifies_each_study(tmp_path):
    a, b = generate_uid(), generate_uid()
    write_series(tmp_path / "a", study_uid=a, number=1, description="t2 haste", te=90.0, tr=1500.0)
    write_series(tmp_path / "b", study_uid=b, number=1, description="t2 haste", te=90.0, tr=1500.0)
    scan = classify_folder(tmp_path)
    assert len(scan.study_uids) == 2
    assert [s.role for s in scan.series] == ["t2", "t2"]  # one per study: no false ambiguity


def test_series_with_missing_tags(tmp_path):
    study = generate_uid()
    write_series(tmp_path, study_uid=study, number=1, description="", te=90.0, tr=1500.0,
                 omit=("EchoTime", "RepetitionTime", "SeriesDescription", "MagneticFieldStrength"))
    write_series(tmp_path, study_uid=study, number=2, description="t2 tse", te=90.0,
                 omit=("ImagePositionPatient", "ImageOrientationPatient", "AcquisitionTime"))
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert by_num[1].role == "unassigned" and "no role matches" in by_num[1].reason
    assert by_num[2].role == "t2"


def test_two_single_echo_series_paired_by_physics(tmp_path):
    study = generate_uid()
    write_series(tmp_path, study_uid=study, number=1, description="t1_fl2d_tra_bh", te=2.3, tr=150.0,
                 acq_time="100000")
    write_series(tmp_path, study_uid=study, number=2, description="t1_fl2d_tra_bh", te=4.6, tr=150.0,
                 acq_time="100000")
    # same echo times on another grid and 5 min later: not a pair
    write_series(tmp_path, study_uid=study, number=3, description="t1_fl2d_tra_bh", te=2.3, tr=150.0,
                 acq_time="100500", origin=(0.0, 0.0, 80.0))
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert by_num[1].role == "t1_opposed_phase" and "paired with series 2" in by_num[1].reason
    assert by_num[2].role == "t1_in_phase"
    assert by_num[3].role not in ("t1_opposed_phase", "t1_in_phase")


def test_dixon_based_dynamics(tmp_path):
    """Water images of a Dixon dynamic: the pre-contrast pair is the Dixon W/F, post-contrast W are the phases."""
    study = generate_uid()
    w = ["DERIVED", "PRIMARY", "DIXON", "WATER"]
    f = ["DERIVED", "PRIMARY", "DIXON", "FAT"]
    write_series(tmp_path, study_uid=study, number=1, description="vibe dixon", te=2.39, image_type=w,
                 acq_time="100000")
    write_series(tmp_path, study_uid=study, number=2, description="vibe dixon", te=2.39, image_type=f,
                 acq_time="100000")
    posts = {3: ("100125", "t1_arterial"), 4: ("100210", "t1_portal_venous"), 5: ("100400", "t1_transitional"),
             6: ("102100", "t1_hepatobiliary")}
    for n, (clock, _) in posts.items():
        write_series(tmp_path, study_uid=study, number=n, description="vibe dixon", te=2.39, image_type=w,
                     acq_time=clock, contrast="Primovist", contrast_start="100100")
    write_series(tmp_path, study_uid=study, number=7, description="vibe dixon", te=2.39, image_type=f,
                 acq_time="100125", contrast="Primovist")
    # a separate Dixon for fat quantification (other flip angle and TR) is not part of the dynamic
    write_series(tmp_path, study_uid=study, number=8, description="vibe dixon", te=2.39, tr=7.0, flip=5.0,
                 image_type=w, acq_time="095500")
    roles = _roles(tmp_path)
    assert roles == {1: "t1_pre", 2: "dixon_fat", **{n: r for n, (_, r) in posts.items()}, 7: "unassigned",
                     8: "dixon_water"}
    pre = next(s for s in classify_folder(tmp_path).series if s.series_number == 1)
    assert "Dixon water image with the sequence and grid of the post-contrast water series" in pre.reason


def test_dixon_pre_on_another_grid_stays_dixon_water(tmp_path):
    """Same sequence but another matrix: not the dynamic's pre-contrast series."""
    study = generate_uid()
    w = ["DERIVED", "PRIMARY", "DIXON", "WATER"]
    write_series(tmp_path, study_uid=study, number=1, description="vibe dixon", te=2.39, image_type=w,
                 acq_time="100000", rows=8)
    write_series(tmp_path, study_uid=study, number=2, description="vibe dixon", te=2.39, image_type=w,
                 acq_time="100125", contrast="Primovist", contrast_start="100100")
    assert _roles(tmp_path) == {1: "dixon_water", 2: "t1_arterial"}


def test_multi_phase_series_gets_one_role_per_phase(tmp_path):
    """One series holding three post-contrast phases (same positions, distinct times), like GE multi-phase LAVA."""
    study, multi = generate_uid(), generate_uid()
    write_series(tmp_path / "pre", study_uid=study, number=5, description="lava", te=1.7, tr=3.9,
                 acq_time="100000")
    for clock in ("100125", "100210", "100400"):  # injection 10:01:00 -> +25 s, +70 s, +3 min
        write_series(tmp_path / clock, study_uid=study, number=6, description="lava multiphase", te=1.7, tr=3.9,
                     acq_time=clock, contrast="Gd-EOB-DTPA", contrast_start="100100", series_uid=multi)
    write_series(tmp_path / "hbp", study_uid=study, number=7, description="lava", te=1.7, tr=3.9,
                 acq_time="102100", contrast="Gd-EOB-DTPA", contrast_start="100100")
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert by_num[5].role == "t1_pre"
    assert by_num[6].stack_roles == ["t1_arterial", "t1_portal_venous", "t1_transitional"]
    assert "multi-phase" in by_num[6].reason
    assert by_num[7].role == "t1_hepatobiliary"


@pytest.mark.parametrize("description,role", [("t1 vibe late art", "t1_arterial"),
                                              ("t1 vibe delayed", "t1_hepatobiliary"),
                                              ("t1 vibe portal venous", "t1_portal_venous"),
                                              ("t1 vibe 3 min", "t1_transitional")])
def test_phase_words_without_times(tmp_path, description, role):
    """No acquisition time at all: the description decides, the most specific word first."""
    write_series(tmp_path, study_uid=generate_uid(), description=description, te=1.8, tr=4.0, contrast="Gd",
                 omit=("AcquisitionTime",))
    s = classify_folder(tmp_path).series[0]
    assert s.role == role and s.confidence <= 0.7 and "no acquisition time" in s.reason


def test_t2_choice_axial_fat_suppressed_and_mrcp(tmp_path):
    study = generate_uid()
    coronal = (1, 0, 0, 0, 0, -1)
    write_series(tmp_path, study_uid=study, number=1, description="haste_cor", te=90.0, tr=1400.0,
                 orientation=coronal)
    write_series(tmp_path, study_uid=study, number=2, description="t2_tse_fs_tra", te=85.0, tr=3000.0)
    write_series(tmp_path, study_uid=study, number=3, description="t2_haste_tra", te=90.0, tr=1400.0)
    write_series(tmp_path, study_uid=study, number=4, description="3d_cor_thick_slab", te=700.0, tr=4500.0,
                 orientation=coronal)
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert by_num[2].role == "t2" and "fat-suppressed" in by_num[2].reason
    assert by_num[1].role == "unassigned" and "preferred" in by_num[1].reason
    assert by_num[3].role == "unassigned" and "preferred" in by_num[3].reason
    assert by_num[4].role == "unassigned" and "MRCP" in by_num[4].reason


def test_coronal_post_contrast_does_not_take_a_phase(tmp_path):
    study = generate_uid()
    clocks = {1: "100000", 2: "100125", 3: "100210", 4: "100400", 6: "102100"}  # injection 10:01:00
    for n, clock in clocks.items():
        write_series(tmp_path, study_uid=study, number=n, description="t1 vibe fs", te=1.8, tr=4.0, acq_time=clock,
                     contrast=None if n == 1 else "Gd-EOB-DTPA", contrast_start=None if n == 1 else "100100")
    write_series(tmp_path, study_uid=study, number=5, description="t1 vibe fs cor", te=1.8, tr=4.0,
                 acq_time="100430", contrast="Gd-EOB-DTPA", contrast_start="100100", orientation=(1, 0, 0, 0, 0, -1))
    roles = _roles(tmp_path)
    assert roles == {1: "t1_pre", 2: "t1_arterial", 3: "t1_portal_venous", 4: "t1_transitional", 5: "unassigned",
                     6: "t1_hepatobiliary"}


def test_uih_and_canon_b_values(tmp_path):
    """UIH: (0065,1009) FD (as dcm2niix reads it); Canon/Toshiba without (0018,9087): 'b=800(...)' in ImageComments."""
    for vendor, bs in (("uih", [0.0, 600.0]), ("canon", [0.0, 800.0])):  # two studies: one DWI each
        folder = write_series(tmp_path / vendor, study_uid=generate_uid(), number=1 if vendor == "uih" else 2,
                              description="dwi", te=60.0, tr=4000.0, b_values=bs, vendor="siemens", b_standard=False)
        for f in folder.iterdir():
            ds = pydicom.dcmread(f)
            b = int(ds[0x0019, 0x100C].value)
            del ds[0x0019, 0x100C], ds[0x0019, 0x0010]
            if vendor == "uih":
                ds.Manufacturer = "UIH"
                ds.private_block(0x0065, "Image Private Header", create=True).add_new(0x09, "FD", float(b))
            else:
                ds.Manufacturer = "CANON_MEC"
                ds.ImageComments = f"b={b}(0.000,0.000,1.000)"
            save(ds, f)
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert by_num[1].role == "dwi" and by_num[1].b_values == [0.0, 600.0]
    assert by_num[1].b_sources == ["UIH (0065,1009)"]
    assert by_num[2].role == "dwi" and by_num[2].b_values == [0.0, 800.0]
    assert by_num[2].b_sources == ["ImageComments text"]


def test_exam_wide_contrast_tag_does_not_hide_the_pre_contrast(tmp_path):
    """ContrastBolusAgent on every series (filled at registration), pre named 'pre': ordering by time."""
    study = generate_uid()
    clocks = {1: ("100000", "t1 vibe pre"), 2: ("100130", "t1 vibe"), 3: ("100215", "t1 vibe"),
              4: ("100430", "t1 vibe"), 5: ("102130", "t1 vibe")}
    for n, (clock, desc) in clocks.items():
        write_series(tmp_path, study_uid=study, number=n, description=desc, te=1.8, tr=4.0, acq_time=clock,
                     contrast="Primovist")
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    assert [by_num[n].role for n in range(1, 6)] == ["t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional",
                                                      "t1_hepatobiliary"]
    assert "not used" in by_num[2].reason


def _exam_wide(tmp_path, series):
    study = generate_uid()
    for n, (clock, desc) in enumerate(series, start=1):
        write_series(tmp_path, study_uid=study, number=n, description=desc, te=1.8, tr=4.0, acq_time=clock,
                     contrast="Primovist")
    return {s.series_number: s for s in classify_folder(tmp_path).series}


def test_exam_wide_contrast_tag_with_the_earliest_standing_apart_in_time(tmp_path):
    """No 'pre' anywhere; the earliest precedes the next by 90 s, the next two are 45 s apart: pre-contrast."""
    by_num = _exam_wide(tmp_path, [("100000", "t1 vibe"), ("100130", "t1 vibe"), ("100215", "t1 vibe"),
                                   ("100430", "t1 vibe"), ("102130", "t1 vibe")])
    assert [by_num[n].role for n in range(1, 6)] == ["t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional",
                                                      "t1_hepatobiliary"]
    assert "longer gap" in by_num[1].reason and "not used" in by_num[2].reason


def test_exam_wide_contrast_tag_without_evidence_leaves_the_earliest_unassigned(tmp_path):
    """Earliest only 40 s before the next: pre + arterial or arterial + portal venous? Only what both agree on."""
    by_num = _exam_wide(tmp_path, [("100000", "t1 vibe"), ("100040", "t1 vibe"), ("100130", "t1 vibe"),
                                   ("100400", "t1 vibe"), ("102100", "t1 vibe")])
    # if 1 is pre: 2 arterial, 3 +50 s portal venous, 4 +200 s transitional, 5 HBP;
    # if 1 is arterial: 2 +40 s portal venous, 3 +90 s portal venous, 4 +240 s transitional, 5 HBP
    assert [by_num[n].role for n in range(1, 6)] == ["unassigned", "unassigned", "t1_portal_venous",
                                                      "t1_transitional", "t1_hepatobiliary"]
    assert "pre-contrast or already arterial" in by_num[1].reason
    assert "arterial if" in by_num[2].reason and "whether or not" in by_num[5].reason


def test_exam_wide_contrast_tag_next_series_named_arterial(tmp_path):
    by_num = _exam_wide(tmp_path, [("100000", "t1 vibe"), ("100040", "t1 vibe art"), ("100125", "t1 vibe pv")])
    assert [by_num[n].role for n in range(1, 4)] == ["t1_pre", "t1_arterial", "t1_portal_venous"]
    assert "named arterial" in by_num[1].reason


def test_exam_wide_contrast_tag_earliest_named_arterial_is_post_contrast(tmp_path):
    by_num = _exam_wide(tmp_path, [("100000", "t1 vibe art"), ("100045", "t1 vibe pv"), ("102000", "t1 vibe hbp")])
    assert [by_num[n].role for n in range(1, 4)] == ["t1_arterial", "t1_portal_venous", "t1_hepatobiliary"]


def test_no_contrast_tags_and_no_clear_gap_is_not_guessed(tmp_path):
    """Without any contrast tag the same evidence is needed: two T1 series 5 min apart, no words."""
    study = generate_uid()
    for n, clock in ((1, "100000"), (2, "100500")):
        write_series(tmp_path, study_uid=study, number=n, description="t1 vibe", te=1.8, tr=4.0, acq_time=clock)
    by_num = {s.series_number: s for s in classify_folder(tmp_path).series}
    # pre + arterial, or arterial + transitional: nothing is certain
    assert by_num[1].role == by_num[2].role == "unassigned"
    assert "set the role by hand" in by_num[1].reason
