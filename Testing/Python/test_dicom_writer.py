"""The phantom's DICOM writer: headers as scanners write them, and an exact round trip through pydicom and ITK.

A synthetic multi-series study (oblique and axial grids, 3-b DWI, 6-echo GRE, five dynamic phases with
acquisition offsets, Dixon, in/opposed phase, scanner ADC) is written once per vendor and read back.
Truth is the input itself: arrays must come back within the quantisation bound slope/2, geometry within
1e-4 mm, every header value equal to what the Series said; vendor private tags are decoded with the same
routine that decodes the real scanner files in ../shared/data.
"""

from __future__ import annotations

import gzip
import io
import shutil
import subprocess
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom import config as pydicom_config
from pydicom.valuerep import validate_value

from conftest import shared_path
from LiverMetsReviewLib.errors import GeometryError, LiverMetsError
from LiverMetsReviewLib.io.dicom_writer import write_series_dicom
from LiverMetsReviewLib.series import Series

VENDORS = ("siemens", "ge", "philips")
GAMMA_MHZ_PER_T = 42.577478  # CODATA 2018, proton
INJECTION_OFFSET_S = 320.0
DYNAMIC = {  # role: (series number, offset after first acquisition in s, contrast?)
    "t1_pre": (20, 290.0, False),
    "t1_arterial": (21, 345.0, True),
    "t1_portal_venous": (22, 390.0, True),
    "t1_transitional": (23, 500.0, True),
    "t1_hepatobiliary": (24, 1520.0, True),
}
B_VALUES = (50.0, 400.0, 800.0)
ECHOES_MS = (1.2, 2.4, 3.6, 4.8, 6.0, 7.2)


# ------------------------------------------------------------------------------------------------ the study


def _rotation(axis: tuple[float, float, float], angle_deg: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def _image(arr: np.ndarray, spacing, origin, direction=None) -> sitk.Image:
    img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        img.SetDirection(tuple(float(d) for d in np.asarray(direction).ravel()))
    return img


def _smooth(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    base = 0.5 + 0.4 * np.sin(3 * x + 1) * np.cos(2 * y) + 0.1 * z
    return scale * np.clip(base + 0.05 * rng.standard_normal(shape), 0.01, None)


def _meta(description: str, number: int, offset: float, te: float | None = None, **extra) -> dict:
    meta = {"description": description, "series_number": number, "field_strength_t": 1.5,
            "repetition_time_ms": extra.pop("tr", 4.2), "flip_angle_deg": extra.pop("flip", 10.0),
            "acquisition_offset_s": offset, "units": "a.u."}
    if te is not None:
        meta["echo_time_ms"] = te
    meta.update(extra)
    return meta


def build_study(seed: int = 1) -> list[Series]:
    rng = np.random.default_rng(seed)
    oblique = _rotation((1.0, 0.3, 0.2), 17.0)
    out: list[Series] = []
    # T2 on an oblique grid
    t2 = _image(_smooth(rng, (7, 26, 30), 640.0), (1.4, 1.55, 6.0), (-150.2, -120.7, -40.3), oblique)
    out.append(Series("t2", [t2], [{}], _meta("t2_haste_fs_tra_mbh", 5, 60.0, 92.0, tr=1400.0, flip=160.0,
                                  image_type=["ORIGINAL", "PRIMARY", "M", "ND", "NORM"])))
    # DWI: S = S0 exp(-b ADC)
    s0 = _smooth(rng, (6, 20, 24), 900.0)
    adc = _smooth(rng, (6, 20, 24), 2.2e-3)
    dwi_geo = ((3.1, 3.1, 6.0), (-170.0, -140.0, -45.0), _rotation((0, 0, 1), 5.0))
    stacks = [_image(s0 * np.exp(-b * adc), *dwi_geo) for b in B_VALUES]
    out.append(Series("dwi", stacks, [{"b_value": b} for b in B_VALUES],
                      _meta("ep2d_diff_b50_400_800_tra_TRACEW", 7, 150.0, 62.0, tr=5200.0, flip=90.0,
                            image_type=["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW", "ND", "NORM"])))
    out.append(Series("adc_scanner", [_image(adc * 1e6, *dwi_geo)], [{}],
                      _meta("ep2d_diff_b50_400_800_tra_ADC", 8, 150.0, 62.0, tr=5200.0, flip=90.0,
                            units="10^-6 mm^2/s", image_type=["DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND", "NORM"])))
    # multi-echo GRE: 6 echoes, axial, anisotropic
    me_geo = ((2.5, 2.6, 5.0), (-160.0, -130.0, -30.0), None)
    out.append(Series("multi_echo_gre", [_image(_smooth(rng, (5, 18, 22), 500.0) * np.exp(-te / 30.0), *me_geo)
                                         for te in ECHOES_MS],
                      [{"echo_time_ms": te} for te in ECHOES_MS],
                      _meta("qdixon_6echo_tra", 9, 200.0, tr=9.0, flip=4.0)))
    # in / opposed phase (two series on one grid), Dixon water/fat with integer values (slope 1)
    ipop_geo = ((1.5, 1.5, 5.0), (-180.0, -150.0, -50.0), _rotation((0, 1, 0), -8.0))
    out.append(Series("t1_in_phase", [_image(_smooth(rng, (6, 22, 26), 700.0), *ipop_geo)], [{}],
                      _meta("t1_fl2d_in_opp_tra_in", 3, 0.0, 4.6, tr=120.0, flip=70.0,
                            image_type=["DERIVED", "PRIMARY", "DIXON", "IN_PHASE"])))
    out.append(Series("t1_opposed_phase", [_image(_smooth(rng, (6, 22, 26), 600.0), *ipop_geo)], [{}],
                      _meta("t1_fl2d_in_opp_tra_opp", 4, 0.0, 2.3, tr=120.0, flip=70.0,
                            image_type=["DERIVED", "PRIMARY", "DIXON", "OPP_PHASE"])))
    for role, number, word in (("dixon_water", 11, "WATER"), ("dixon_fat", 12, "FAT")):
        counts = np.rint(_smooth(rng, (6, 16, 20), 1800.0))
        out.append(Series(role, [_image(counts, (2.0, 2.0, 3.0), (-160.0, -128.0, -20.0))], [{}],
                          _meta(f"t1_vibe_dixon_tra_{word[0]}", number, 250.0, 2.39,
                                image_type=["DERIVED", "PRIMARY", "DIXON", word])))
    # dynamic phases, given out of time order on purpose
    dyn_geo = ((1.7, 1.7, 3.0), (-165.0, -135.0, -35.0), None)
    for role in ("t1_hepatobiliary", "t1_pre", "t1_transitional", "t1_arterial", "t1_portal_venous"):
        number, offset, contrast = DYNAMIC[role]
        extra = {"contrast_agent": "Gd-EOB-DTPA (Primovist/Eovist)"} if contrast else {}
        out.append(Series(role, [_image(_smooth(rng, (8, 18, 20), 400.0), *dyn_geo)], [{}],
                          _meta(f"t1_vibe_fs_tra_{role.split('_', 1)[1]}", number, offset, 1.9, tr=4.1,
                                contrast_injection_offset_s=INJECTION_OFFSET_S if contrast else None, **extra)))
    return out


@pytest.fixture(scope="module")
def study() -> list[Series]:
    return build_study()


@pytest.fixture(scope="module")
def written(study, tmp_path_factory) -> dict[str, tuple[Path, list[Path]]]:
    """vendor -> (study folder, series folders). Writing raises no pydicom warning (values valid per VR)."""
    out = {}
    for vendor in VENDORS:
        root = tmp_path_factory.mktemp(f"dicom_{vendor}")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            folders = write_series_dicom(study, root, vendor=vendor, seed=3)
        out[vendor] = (root, folders)
    return out


def _headers(folder: Path) -> list[tuple[Path, pydicom.Dataset]]:
    return [(f, pydicom.dcmread(f, stop_before_pixels=True)) for f in sorted(folder.glob("*.dcm"))]


def _tm_seconds(ds: pydicom.Dataset, date_kw: str, time_kw: str) -> float:
    d = datetime.strptime(str(getattr(ds, date_kw)), "%Y%m%d")
    t = str(getattr(ds, time_kw))
    hh, mm, ss = int(t[0:2]), int(t[2:4]), float(t[4:])
    return d.timestamp() + hh * 3600 + mm * 60 + ss


# ------------------------------------------------------------------- vendor b-value decoding (shared with real data)


def private_b_value(ds: pydicom.Dataset) -> float | None:
    """b-value from the vendor's private tag, found through its private creator (as a reader must)."""
    maker = str(ds.get("Manufacturer", "")).upper()
    try:
        if "SIEMENS" in maker:
            return float(ds.get_private_item(0x0019, 0x0C, "SIEMENS MR HEADER").value)
        if "GE" in maker:
            first = ds.get_private_item(0x0043, 0x39, "GEMS_PARM_01").value[0]
            return float(int(first) % 1_000_000_000)
        if "PHILIPS" in maker:
            return float(ds.get_private_item(0x2001, 0x03, "Philips Imaging DD 001").value)
    except KeyError:
        return None
    return None


def _read_real(path: Path) -> pydicom.Dataset:
    if path.suffix == ".gz":
        return pydicom.dcmread(io.BytesIO(gzip.open(path).read()), stop_before_pixels=True)
    return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.mark.parametrize(("folder", "pattern", "expected"), [
    ("header-only-dwi-tags/nibabel", "siemens_dwi_1000.dcm.gz", 1000.0),
    ("header-only-dwi-tags/nibabel", "siemens_dwi_0.dcm.gz", 0.0),
    ("ge-mr750-dwi-phantom/In/mr_0003", "axial_4_directions_3_shells-00006.dcm", 750.0),
    ("ge-mr750-dwi-phantom/In/mr_0003", "axial_4_directions_3_shells-00001.dcm", 100.0),
    ("philips-achieva-dwi-2018/Vanderbilt_2018_subset", "0032.dcm", 2000.0),
    ("philips-achieva-dwi-2018/Vanderbilt_2018_subset", "0016.dcm", 0.0),
])
def test_private_b_value_decoder_reads_real_scanner_files(folder, pattern, expected):
    """The decoder used on our files recovers the b-values the real files' inventories list."""
    path = shared_path("data", *folder.split("/"), pattern)
    assert private_b_value(_read_real(path)) == expected


def _role_folder(study: list[Series], written, vendor: str, role: str) -> Path:
    return next(f for s, f in zip(study, written[vendor][1], strict=True) if s.role == role)


def test_private_tag_layout_matches_real_files(study, written):
    """Same group, element, VR and creator as the real scanners' files (the element a reader would hard-code)."""
    real = {
        "siemens": _read_real(shared_path("data", "header-only-dwi-tags", "nibabel", "siemens_dwi_1000.dcm.gz")),
        "ge": _read_real(shared_path("data", "ge-mr750-dwi-phantom", "In", "mr_0003",
                                     "axial_4_directions_3_shells-00006.dcm")),
        "philips": _read_real(shared_path("data", "philips-achieva-dwi-2018", "Vanderbilt_2018_subset", "0032.dcm")),
    }
    tags = {"siemens": [(0x0019, 0x100C), (0x0019, 0x100D)], "ge": [(0x0043, 0x1039)],
            "philips": [(0x2001, 0x1003), (0x2001, 0x1004)]}
    for vendor, ref in real.items():
        folder = _role_folder(study, written, vendor, "dwi")
        ours = pydicom.dcmread(sorted(folder.glob("*.dcm"))[-1], stop_before_pixels=True)
        for tag in tags[vendor]:
            creator_tag = (tag[0], tag[1] >> 8)
            assert ours[creator_tag].value == ref[creator_tag].value, (vendor, creator_tag)
            assert ours[tag].VR == ref[tag].VR, (vendor, tag)
        assert ours.Manufacturer == ref.Manufacturer
    # real files' words for a trace-weighted DWI: ours use the same
    ours_ph = pydicom.dcmread(sorted(_role_folder(study, written, "philips", "dwi").glob("*.dcm"))[-1])
    assert ours_ph[0x2001, 0x1004].value == real["philips"][0x2001, 0x1004].value == "I"
    assert list(ours_ph.ImageType) == list(real["philips"].ImageType)
    ours_ge = pydicom.dcmread(sorted(_role_folder(study, written, "ge", "dwi").glob("*.dcm"))[0])
    assert list(ours_ge.ImageType) == list(real["ge"].ImageType)
    assert int(ours_ge[0x0043, 0x1039].value[0]) // 1_000_000_000 == int(real["ge"][0x0043, 0x1039].value[0]) // 10**9


# ------------------------------------------------------------------------------------------- structure, UIDs


def test_one_folder_and_one_itk_series_per_series(study, written):
    root, folders = written["siemens"]
    assert len(folders) == len(study) == len([p for p in root.iterdir() if p.is_dir()])
    reader = sitk.ImageSeriesReader()
    for s, folder in zip(study, folders, strict=True):
        assert folder.parent == root
        assert folder.name.startswith(f"S{s.meta['series_number']:04d}_")
        ids = reader.GetGDCMSeriesIDs(str(folder))
        assert len(ids) == 1, folder
        n_expected = sum(img.GetSize()[2] for img in s.stacks)
        assert len(reader.GetGDCMSeriesFileNames(str(folder), ids[0])) == n_expected
        assert len(list(folder.glob("*.dcm"))) == n_expected


def test_uids_study_frame_series_instance(study, written, tmp_path):
    _, folders = written["siemens"]
    heads = [ds for folder in folders for _, ds in _headers(folder)]
    assert len({ds.StudyInstanceUID for ds in heads}) == 1
    assert len({ds.FrameOfReferenceUID for ds in heads}) == 1
    assert len({ds.SeriesInstanceUID for ds in heads}) == len(study)
    assert len({ds.SOPInstanceUID for ds in heads}) == len(heads)
    for ds in heads:
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert ds.file_meta.ImplementationClassUID
    # deterministic for a seed: the same call writes byte-identical files; another seed other UIDs
    subset = study[:2]
    a = write_series_dicom(subset, tmp_path / "a", seed=3)
    b = write_series_dicom(subset, tmp_path / "b", seed=3)
    c = write_series_dicom(subset, tmp_path / "c", seed=4)
    for fa, fb in zip(sorted(a[0].glob("*.dcm")), sorted(b[0].glob("*.dcm")), strict=True):
        assert fa.read_bytes() == fb.read_bytes()
    first = pydicom.dcmread(sorted(a[0].glob("*.dcm"))[0])
    other = pydicom.dcmread(sorted(c[0].glob("*.dcm"))[0])
    assert first.StudyInstanceUID != other.StudyInstanceUID
    assert first.SOPInstanceUID != other.SOPInstanceUID
    assert first.StudyInstanceUID == heads[0].StudyInstanceUID  # same seed, same study identity


# ------------------------------------------------------------------------------------------- round trip


def _stack_key(ds: pydicom.Dataset) -> float:
    if "DiffusionBValue" in ds:
        return float(ds.DiffusionBValue)
    return float(ds.EchoTime)


def _stack_truth(s: Series, k: int) -> float:
    m = {**s.meta, **s.stack_meta[k]}
    return float(m["b_value"]) if "b_value" in m else float(m["echo_time_ms"])


@pytest.mark.parametrize("vendor", VENDORS)
def test_itk_round_trip_arrays_and_geometry(study, written, vendor):
    """Per stack: ITK reads the files back to the input array within slope/2 and the same grid within 1e-4 mm."""
    _, folders = written[vendor]
    reader = sitk.ImageSeriesReader()
    for s, folder in zip(study, folders, strict=True):
        series_max = max(float(sitk.GetArrayViewFromImage(img).max()) for img in s.stacks)
        files = reader.GetGDCMSeriesFileNames(str(folder))
        keys = {f: _stack_key(pydicom.dcmread(f, stop_before_pixels=True)) for f in files}
        assert len(set(keys.values())) == len(s.stacks), folder
        for k, stack in enumerate(s.stacks):
            truth_key = _stack_truth(s, k)
            mine = [f for f in files if abs(keys[f] - truth_key) < 1e-6]
            assert len(mine) == stack.GetSize()[2]
            reader.SetFileNames(mine)
            back = reader.Execute()
            np.testing.assert_allclose(back.GetOrigin(), stack.GetOrigin(), atol=1e-4)
            np.testing.assert_allclose(back.GetSpacing(), stack.GetSpacing(), atol=1e-4)
            np.testing.assert_allclose(back.GetDirection(), stack.GetDirection(), atol=1e-4)
            ds = pydicom.dcmread(mine[0], stop_before_pixels=True)
            slope = float(ds.get("RescaleSlope", 1.0))
            truth = sitk.GetArrayFromImage(stack).astype(np.float64)
            got = sitk.GetArrayFromImage(back).astype(np.float64)
            if s.role == "adc_scanner":
                assert slope == 1.0 and "RescaleSlope" not in ds  # natural units, like scanners
            if s.role.startswith("dixon"):
                assert slope == 1.0
                np.testing.assert_array_equal(got, truth)  # integers that fit are stored exactly
            bound = slope / 2 * (1 + 1e-9) + 1e-9
            assert np.abs(got - truth).max() <= bound, (folder.name, k, np.abs(got - truth).max(), slope)
            # the bound is tight, not vacuous: the series' largest value maps to the top of the stored range
            assert slope <= series_max / (2 ** int(ds.BitsStored) - 1) * (1 + 1e-6) or slope == 1.0


def test_pydicom_pixels_and_positions_along_the_normal(study, written):
    """pydicom view: IPP of slice k = origin + k·sz·w; SliceLocation = IPP·(u×v); pixels × slope = input."""
    _, folders = written["siemens"]
    for s, folder in zip(study, folders, strict=True):
        stack = s.stacks[0]
        direction = np.array(stack.GetDirection()).reshape(3, 3)
        u, v, w = direction[:, 0], direction[:, 1], direction[:, 2]
        origin, sz = np.array(stack.GetOrigin()), stack.GetSpacing()[2]
        truth = sitk.GetArrayFromImage(stack).astype(np.float64)
        files = [f for f, ds in _headers(folder) if int(ds.AcquisitionNumber) == 1]
        assert len(files) == stack.GetSize()[2]
        files.sort(key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber))
        for z, f in enumerate(files):
            ds = pydicom.dcmread(f)
            np.testing.assert_allclose([float(x) for x in ds.ImagePositionPatient], origin + z * sz * w, atol=1e-4)
            np.testing.assert_allclose([float(x) for x in ds.ImageOrientationPatient], [*u, *v], atol=1e-6)
            assert float(ds.SliceLocation) == pytest.approx(float((origin + z * sz * w) @ np.cross(u, v)), abs=1e-4)
            sx, sy = stack.GetSpacing()[:2]
            np.testing.assert_allclose([float(x) for x in ds.PixelSpacing], [sy, sx])
            assert ds.Rows == stack.GetSize()[1] and ds.Columns == stack.GetSize()[0]
            slope = float(ds.get("RescaleSlope", 1.0))
            assert np.abs(ds.pixel_array * slope - truth[z]).max() <= slope / 2 + 1e-9


# ------------------------------------------------------------------------------------------- header values


@pytest.mark.parametrize("vendor", VENDORS)
def test_header_values_per_stack(study, written, vendor):
    _, folders = written[vendor]
    for s, folder in zip(study, folders, strict=True):
        heads = [ds for _, ds in _headers(folder)]
        for ds in heads:
            assert ds.Modality == "MR"
            assert float(ds.MagneticFieldStrength) == s.meta["field_strength_t"]
            assert float(ds.ImagingFrequency) == pytest.approx(GAMMA_MHZ_PER_T * s.meta["field_strength_t"], rel=1e-8)
            assert ds.ImagedNucleus == "1H"
            assert float(ds.RepetitionTime) == pytest.approx(s.meta["repetition_time_ms"])
            assert float(ds.FlipAngle) == pytest.approx(s.meta["flip_angle_deg"])
            assert int(ds.SeriesNumber) == s.meta["series_number"]
            if vendor == "siemens":  # Siemens keeps the series' own (Siemens-style) names
                assert ds.SeriesDescription == ds.ProtocolName == s.meta["description"]
            assert ds.BodyPartExamined == "ABDOMEN"
            assert ds.PatientPosition in ("HFS", "FFS")
            assert float(ds.SliceThickness) == pytest.approx(s.stacks[0].GetSpacing()[2])
            assert float(ds.SpacingBetweenSlices) == pytest.approx(s.stacks[0].GetSpacing()[2])
            assert float(ds.WindowWidth) > 0
        if s.role == "dwi":
            bs_std = sorted({float(ds.DiffusionBValue) for ds in heads})
            bs_private = sorted({private_b_value(ds) for ds in heads})
            assert bs_std == bs_private == list(B_VALUES)
            assert all(ds.DiffusionDirectionality == "ISOTROPIC" for ds in heads)
            assert all(float(ds.EchoTime) == 62.0 for ds in heads)
            assert len({int(ds.AcquisitionNumber) for ds in heads}) == len(B_VALUES)  # Slicer splits stacks by it
            if vendor == "siemens":
                assert all(ds.get_private_item(0x0019, 0x0D, "SIEMENS MR HEADER").value == "ISOTROPIC" for ds in heads)
                assert all("TRACEW" in ds.ImageType and "DIFFUSION" in ds.ImageType for ds in heads)
                assert {ds.SequenceName for ds in heads} == {f"*ep_b{int(b)}t" for b in B_VALUES}
        else:
            assert all("DiffusionBValue" not in ds and private_b_value(ds) is None for ds in heads)
        if s.role == "multi_echo_gre":
            te_by_echo = {int(ds.EchoNumbers): float(ds.EchoTime) for ds in heads}
            assert te_by_echo == {k + 1: te for k, te in enumerate(ECHOES_MS)}
        elif "echo_time_ms" in s.meta:
            assert {float(ds.EchoTime) for ds in heads} == {s.meta["echo_time_ms"]}
        if s.role == "adc_scanner":
            assert all("ADC" in ds.ImageType for ds in heads)


def test_image_type_words_per_vendor(study, written):
    """Dixon / in-opposed / ADC words as each vendor writes them (Siemens keeps the series' own ImageType)."""
    expected = {
        "siemens": {"dixon_water": "WATER", "dixon_fat": "FAT", "t1_in_phase": "IN_PHASE",
                    "t1_opposed_phase": "OPP_PHASE", "adc_scanner": "ADC"},
        "ge": {"dixon_water": "WATER", "dixon_fat": "FAT", "t1_in_phase": "IN_PHASE",
               "t1_opposed_phase": "OUT_PHASE", "adc_scanner": "ADC"},
        "philips": {"dixon_water": "W", "dixon_fat": "F", "t1_in_phase": "IP", "t1_opposed_phase": "OP",
                    "adc_scanner": "ADC"},
    }
    for vendor, words in expected.items():
        _, folders = written[vendor]
        for s, folder in zip(study, folders, strict=True):
            ds = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0], stop_before_pixels=True)
            if s.role in words:
                assert words[s.role] in ds.ImageType, (vendor, s.role, ds.ImageType)
            if vendor == "siemens":
                assert list(ds.ImageType) == s.meta["image_type"] if "image_type" in s.meta else True
    ge_water = next(f for s, f in zip(study, written["ge"][1], strict=True) if s.role == "dixon_water")
    assert pydicom.dcmread(sorted(ge_water.glob("*.dcm"))[0]).SeriesDescription.startswith("WATER: ")


# Console names of the written study (B_VALUES 50/400/800), spelled out from the vendors' naming conventions.
GE_NAMES = {"t1_in_phase": "InPhase: Ax T1 DUAL ECHO", "t1_opposed_phase": "OutPhase: Ax T1 DUAL ECHO",
            "multi_echo_gre": "Ax IDEAL IQ BH", "dixon_water": "WATER: Ax LAVA-Flex", "dixon_fat": "FAT: Ax LAVA-Flex",
            "t2": "Ax T2 FSE FS RTr", "dwi": "Ax DWI b50-400-800",
            "adc_scanner": "ADC (10^-6 mm2/s):Ax DWI b50-400-800",
            "t1_pre": "Ax LAVA-Flex PRE", "t1_arterial": "Ax LAVA-Flex ART", "t1_portal_venous": "Ax LAVA-Flex PV",
            "t1_transitional": "Ax LAVA-Flex 3 MIN", "t1_hepatobiliary": "Ax LAVA-Flex HBP 20 MIN"}
PHILIPS_NAMES = {"t1_in_phase": "T1_FFE_DUAL_ECHO", "t1_opposed_phase": "T1_FFE_DUAL_ECHO",
                 "multi_echo_gre": "mDIXON-Quant_BH", "dixon_water": "T1_mDIXON_BH", "dixon_fat": "T1_mDIXON_BH",
                 "t2": "T2W_SPAIR", "dwi": "DWI_b50-400-800", "adc_scanner": "dADC_DWI_b50-400-800",
                 "t1_pre": "eTHRIVE_BH_PRE", "t1_arterial": "eTHRIVE_BH_ART", "t1_portal_venous": "eTHRIVE_BH_PV",
                 "t1_transitional": "eTHRIVE_BH_3MIN", "t1_hepatobiliary": "eTHRIVE_BH_HBP_20MIN"}


def test_series_and_protocol_names_per_vendor(study, written):
    """GE and Philips series carry their own console names, not the Siemens ones the series were built with;
    GE's ProtocolName is the exam protocol (one value for the whole study), Philips repeats the scan name."""
    got = {}
    for vendor in VENDORS:
        for s, folder in zip(study, written[vendor][1], strict=True):
            heads = [ds for _, ds in _headers(folder)]
            assert len({(ds.SeriesDescription, ds.ProtocolName) for ds in heads}) == 1
            got[vendor, s.role] = (heads[0].SeriesDescription, heads[0].ProtocolName)
    roles = [s.role for s in study]
    assert {r: got["ge", r][0] for r in roles} == GE_NAMES
    assert {r: got["philips", r][0] for r in roles} == PHILIPS_NAMES
    assert {got["siemens", s.role] for s in study} == {(s.meta["description"],) * 2 for s in study}
    ge_protocols = {got["ge", r][1] for r in roles}
    assert len(ge_protocols) == 1 and ge_protocols.isdisjoint(GE_NAMES.values())
    assert all(got["philips", r][1] == got["philips", r][0] for r in roles)
    for vendor in ("ge", "philips"):  # no Siemens words left in the other vendors' names
        assert not any(w in got[vendor, r][0].lower() for r in roles for w in ("vibe", "ep2d", "tse", "fl2d", "haste"))
        assert len({got[vendor, r][0] for r in DYNAMIC}) == len(DYNAMIC)  # each phase named apart


def test_series_names_fall_back_and_can_be_kept(study, tmp_path):
    adc = next(s for s in study if s.role == "adc_scanner")
    water = next(s for s in study if s.role == "dixon_water")
    alone = write_series_dicom([adc], tmp_path / "alone", vendor="ge")[0]  # no DWI in the study: no b list
    assert pydicom.dcmread(next(alone.glob("*.dcm"))).SeriesDescription == "ADC (10^-6 mm2/s):Ax DWI"
    kept = write_series_dicom([adc, water], tmp_path / "kept", vendor="philips", names="series")
    for s, folder in zip((adc, water), kept, strict=True):
        ds = pydicom.dcmread(next(folder.glob("*.dcm")))
        assert ds.SeriesDescription == ds.ProtocolName == s.meta["description"]
    ge_kept = write_series_dicom([water], tmp_path / "gekept", vendor="ge", names="series")[0]
    assert pydicom.dcmread(next(ge_kept.glob("*.dcm"))).SeriesDescription == "WATER: " + water.meta["description"]
    with pytest.raises(LiverMetsError, match="names="):
        write_series_dicom([adc], tmp_path / "bad", names="console")


def test_acquisition_times_order_dynamic_phases_and_contrast(study, written):
    _, folders = written["siemens"]
    times, heads = {}, {}
    for s, folder in zip(study, folders, strict=True):
        ds = _headers(folder)[0][1]
        heads[s.role] = ds
        times[s.role] = _tm_seconds(ds, "AcquisitionDate", "AcquisitionTime")
        assert _tm_seconds(ds, "ContentDate", "ContentTime") == pytest.approx(times[s.role])
        assert _tm_seconds(ds, "SeriesDate", "SeriesTime") == pytest.approx(times[s.role])
        assert times[s.role] >= _tm_seconds(ds, "StudyDate", "StudyTime")
    order = sorted(DYNAMIC, key=lambda r: times[r])
    assert order == ["t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"]
    for role, (_, offset, contrast) in DYNAMIC.items():
        assert times[role] - times["t1_pre"] == pytest.approx(offset - DYNAMIC["t1_pre"][1], abs=1e-3)
        ds = heads[role]
        if contrast:
            assert ds.ContrastBolusAgent == "Gd-EOB-DTPA (Primovist/Eovist)"
            assert ds.ContrastBolusRoute == "IV" and float(ds.ContrastBolusVolume) > 0
            injection = _tm_seconds(ds, "AcquisitionDate", "ContrastBolusStartTime")
            assert times[role] - injection == pytest.approx(offset - INJECTION_OFFSET_S, abs=1e-3)
        else:
            assert "ContrastBolusAgent" not in ds
    hbp_minutes = (times["t1_hepatobiliary"] - _tm_seconds(heads["t1_hepatobiliary"], "AcquisitionDate",
                                                           "ContrastBolusStartTime")) / 60
    assert 15 <= hbp_minutes <= 25


# ------------------------------------------------------------------------------------------- validity


MODULE_ATTRIBUTES = {  # PS3.3: Type 1 (must have a value) and Type 2 (must be present) of the MR Image IOD modules
    1: ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality", "SeriesInstanceUID", "FrameOfReferenceUID",
        "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SamplesPerPixel",
        "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
        "PixelRepresentation", "ImageType", "ScanningSequence", "SequenceVariant", "SpecificCharacterSet"],
    2: ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
        "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber", "PositionReferenceIndicator",
        "Manufacturer", "InstanceNumber", "SliceThickness", "ScanOptions", "MRAcquisitionType", "EchoTime",
        "EchoTrainLength", "PatientPosition", "RepetitionTime"],
}


def test_pydicom_validation_of_every_file(written):
    """Required attributes present, every value valid for its VR, ASCII only, pixel data the right size."""
    for vendor in VENDORS:
        for folder in written[vendor][1]:
            for f in sorted(folder.glob("*.dcm")):
                ds = pydicom.dcmread(f)
                assert ds.preamble is not None and f.read_bytes()[128:132] == b"DICM"
                for kw in MODULE_ATTRIBUTES[1]:
                    assert kw in ds and ds[kw].value not in (None, "", []), (f, kw)
                for kw in MODULE_ATTRIBUTES[2]:
                    assert kw in ds, (f, kw)
                for elem in ds.iterall():
                    if elem.tag == 0x7FE00010 or elem.VR in ("SQ", "OB", "OW", "UN"):
                        continue
                    values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
                    for value in values:
                        if elem.VR in ("DS", "IS"):  # validate the text as written, not the parsed number
                            value = getattr(value, "original_string", str(value))
                        validate_value(elem.VR, value, pydicom_config.RAISE)
                        if isinstance(value, str):
                            assert value.isascii()
                assert len(ds.PixelData) == ds.Rows * ds.Columns * 2
                assert ds.pixel_array.max() <= 2 ** int(ds.BitsStored) - 1
                assert int(ds.HighBit) == int(ds.BitsStored) - 1 and int(ds.PixelRepresentation) == 0


def test_dciodvfy_reports_no_error(study, written):
    """dicom3tools' IOD checker on the first and last file of every series of every vendor: no 'Error' line."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")
    for vendor in VENDORS:
        for folder in written[vendor][1]:
            files = sorted(folder.glob("*.dcm"))
            for f in (files[0], files[-1]):
                run = subprocess.run([exe, str(f)], capture_output=True, text=True, timeout=60)
                report = run.stdout + run.stderr
                assert "MRImage" in report, report  # it recognised the IOD
                errors = [line for line in report.splitlines() if line.startswith("Error")]
                assert not errors, (vendor, f, errors)


# ------------------------------------------------------------------------------------------- robustness, errors


def _one(role: str, img: sitk.Image, **meta) -> Series:
    return Series(role, [img], [{}], {"description": "test", "series_number": 1, **meta})


def test_2d_image_and_extreme_float_ranges(tmp_path):
    rng = np.random.default_rng(5)
    for scale in (1e-3, 1.0, 3.7e6):
        arr = rng.random((12, 9)) * scale
        img = sitk.GetImageFromArray(arr)  # 2-D, float64
        img.SetSpacing((0.7, 1.3))
        img.SetOrigin((10.0, -20.0))
        folder = write_series_dicom([_one("t2", img)], tmp_path / f"s{scale:g}")[0]
        files = sorted(folder.glob("*.dcm"))
        assert len(files) == 1
        ds = pydicom.dcmread(files[0])
        slope = float(ds.RescaleSlope)
        back = ds.pixel_array * slope
        assert np.abs(back - arr).max() <= slope / 2 * (1 + 1e-9)
        assert slope <= scale / 4095  # 12 bits used: the bound scales with the data range
        assert [float(x) for x in ds.ImagePositionPatient] == [10.0, -20.0, 0.0]
        assert [float(x) for x in ds.PixelSpacing] == [1.3, 0.7]


def test_left_handed_direction_reads_back_as_the_same_voxels(tmp_path):
    """w = −(u×v): slices are written along w; ITK rebuilds the right-handed grid, voxel for voxel in space."""
    arr = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) % 97
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.5, 2.5))
    img.SetOrigin((3.0, 4.0, 5.0))
    img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    folder = write_series_dicom([_one("t2", img)], tmp_path)[0]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    back = reader.Execute()
    np.testing.assert_allclose(back.GetDirection(), (1, 0, 0, 0, 1, 0, 0, 0, 1), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), img.TransformIndexToPhysicalPoint((0, 0, 3)), atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), arr[::-1])


def test_long_and_non_ascii_texts_are_truncated_and_ascii(tmp_path):
    img = sitk.GetImageFromArray(np.ones((2, 4, 4), np.float32))
    desc = "t1_vibe_fs_tra_hepatobiliary_phase_twenty_minutes_after_gadoxetate_injection_breath_hold"
    folder = write_series_dicom([_one("t1_hepatobiliary", img, description=desc)], tmp_path,
                                study_info={"patient_name": "Müller^Zoë", "patient_id": "ÄB\\12",
                                            "institution": "Hôpital Saint-Éloi"})[0]
    ds = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    assert ds.SeriesDescription == desc[:64]
    assert str(ds.PatientName) == "Muller^Zoe"
    assert ds.PatientID == "AB/12"
    assert ds.InstitutionName == "Hopital Saint-Eloi"


def test_default_identity_is_a_fake_phantom(tmp_path):
    img = sitk.GetImageFromArray(np.ones((2, 4, 4), np.float32))
    ds = pydicom.dcmread(sorted(write_series_dicom([_one("t2", img)], tmp_path)[0].glob("*.dcm"))[0])
    assert str(ds.PatientName) == "LiverMetsReview^Phantom"
    assert "phantom" in ds.ImageComments.lower()


@pytest.mark.parametrize(("make", "error", "words"), [
    (lambda: _one("t2", sitk.GetImageFromArray(np.array([[[1.0, np.nan]]]))), LiverMetsError, "NaN"),
    (lambda: _one("t2", sitk.GetImageFromArray(np.array([[[1.0, -5.0]]]))), LiverMetsError, "negative"),
    (lambda: _one("t2", _sheared()), GeometryError, "orthonormal"),
    (lambda: _one("t2", sitk.Image([3, 3, 2], sitk.sitkVectorFloat32, 2)), LiverMetsError, "components"),
])
def test_bad_images_raise_one_clear_sentence_and_write_nothing(tmp_path, make, error, words):
    good = _one("t1_pre", sitk.GetImageFromArray(np.ones((2, 3, 3), np.float32)), series_number=2)
    with pytest.raises(error, match=words):
        write_series_dicom([good, make()], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.dcm"))


def _sheared() -> sitk.Image:
    img = sitk.GetImageFromArray(np.ones((2, 3, 3), np.float32))
    img.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    return img


def test_bad_arguments_raise(tmp_path):
    img = sitk.GetImageFromArray(np.ones((2, 3, 3), np.float32))
    with pytest.raises(LiverMetsError, match="vendor"):
        write_series_dicom([_one("t2", img)], tmp_path, vendor="acme")
    with pytest.raises(LiverMetsError, match="unknown keys"):
        write_series_dicom([_one("t2", img)], tmp_path, study_info={"patient_nmae": "x"})
    with pytest.raises(LiverMetsError, match="series numbers"):
        write_series_dicom([_one("t2", img), _one("t1_pre", img)], tmp_path)
    with pytest.raises(LiverMetsError, match="no series"):
        write_series_dicom([], tmp_path)


# ------------------------------------------------------------------------------------------- a reader on our headers


def _classified_roles(root: Path) -> dict[int, str]:
    classify = pytest.importorskip("LiverMetsReviewLib.study.classify")
    rows = classify.classification_table(classify.classify_folder(root))
    return {int(r["series_number"]): r["role"] for r in rows}


def test_study_classifier_recognises_every_series_from_headers_alone(study, written):
    """The project's DICOM classifier (tuned on real vendor files) assigns every written series its true role."""
    truth = {s.meta["series_number"]: s.role for s in study}
    for vendor in VENDORS:
        assert _classified_roles(written[vendor][0]) == truth, vendor


def _tiny_tissue_model(field_strength_t: float):
    model_mod = pytest.importorskip("LiverMetsReviewLib.phantom.model")
    grid = sitk.Image([48, 40, 20], sitk.sitkUInt8)
    grid.SetSpacing((8.0, 8.0, 10.0))
    grid.SetOrigin((-190.0, -160.0, -100.0))
    z, y, x = np.indices((20, 40, 48))
    labels = np.zeros((20, 40, 48), np.int32)
    labels[((x - 24) / 20) ** 2 + ((y - 20) / 16) ** 2 < 1] = 1
    labels[((x - 20) / 11) ** 2 + ((y - 20) / 9) ** 2 + ((z - 10) / 8) ** 2 < 1] = 2
    labels[((x - 20) / 3) ** 2 + ((y - 20) / 3) ** 2 + ((z - 10) / 2) ** 2 < 1] = 3

    def comp(label, name, t1, t2, adc, ff, ecs, hep):
        params = {"pd": 0.8, "t1_ms": t1, "t2_ms": t2, "t2star_ms": 30.0, "adc_1e6_mm2_s": adc, "pdff_percent": ff}
        phases = model_mod.CONTRAST_PHASES
        return model_mod.Compartment(label, name, params, dict.fromkeys(phases, ecs), dict.fromkeys(phases, hep))

    comps = [comp(1, "muscle", 1000.0, 40.0, 1500.0, 5.0, 0.1, 0.0),
             comp(2, "liver", 586.0, 46.0, 1200.0, 5.0, 0.2, 0.3),
             comp(3, "lesion", 1000.0, 80.0, 900.0, 0.0, 0.3, 0.0)]
    return model_mod.TissueModel(grid=grid, labels=labels, compartments=comps, field_strength_t=field_strength_t)


def test_phantom_signal_series_written_and_classified(tmp_path):
    """The phantom's simulated series (physics module, small protocol, 3 T) through the writer and the classifier."""
    protocol_mod = pytest.importorskip("LiverMetsReviewLib.phantom.protocol")
    series, _ = protocol_mod.simulate_study(_tiny_tissue_model(3.0), np.random.default_rng(2),
                                            protocol=protocol_mod.load_protocol("small"))
    truth = {s.meta["series_number"]: s.role for s in series}
    for vendor in VENDORS:
        folders = write_series_dicom(series, tmp_path / vendor, vendor=vendor, seed=1)
        assert len(folders) == len(series)
        assert _classified_roles(tmp_path / vendor) == truth, vendor
    hbp = next(s for s in series if s.role == "t1_hepatobiliary")
    folder = next(f for f in folders if f.name.startswith(f"S{hbp.meta['series_number']:04d}_"))
    ds = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0], stop_before_pixels=True)
    assert float(ds.MagneticFieldStrength) == 3.0
    assert float(ds.ImagingFrequency) == pytest.approx(GAMMA_MHZ_PER_T * 3.0, rel=1e-6)
    after_injection = (_tm_seconds(ds, "AcquisitionDate", "AcquisitionTime")
                       - _tm_seconds(ds, "AcquisitionDate", "ContrastBolusStartTime"))
    assert after_injection == pytest.approx(hbp.meta["seconds_after_injection"], abs=1e-3)


def test_b0_images_carry_b_value_zero_and_no_direction(tmp_path):
    """b = 0 is written everywhere too (standard and private), as 'NONE' directionality; GE keeps its 1e9 offset."""
    arr = np.ones((2, 4, 4), np.float32)
    dwi = Series("dwi", [_image(arr * 900, (2, 2, 5), (0, 0, 0)), _image(arr * 300, (2, 2, 5), (0, 0, 0))],
                 [{"b_value": 0.0}, {"b_value": 800.0}], {"description": "ep2d_diff_b0_800", "series_number": 3})
    for vendor in VENDORS:
        folder = write_series_dicom([dwi], tmp_path / vendor, vendor=vendor)[0]
        heads = [ds for _, ds in _headers(folder)]
        by_b = {float(ds.DiffusionBValue): ds for ds in heads}
        assert sorted(by_b) == [0.0, 800.0]
        assert [private_b_value(by_b[b]) for b in (0.0, 800.0)] == [0.0, 800.0]
        assert by_b[0.0].DiffusionDirectionality == "NONE" and by_b[800.0].DiffusionDirectionality == "ISOTROPIC"
        if vendor == "ge":
            assert [int(v) for v in by_b[0.0][0x0043, 0x1039].value] == [1_000_000_000, 0, 0, 0]
        if vendor == "siemens":
            assert by_b[0.0].get_private_item(0x0019, 0x0D, "SIEMENS MR HEADER").value == "NONE"
        if vendor == "philips":  # the real Achieva export labels its b = 0 images 'I' as well
            assert by_b[0.0][0x2001, 0x1004].value == "I"
        assert sum(1 for ds in heads if float(ds.DiffusionBValue) == 0.0) == 2


def test_rewriting_a_series_leaves_no_stale_slices(tmp_path):
    big = _one("t2", sitk.GetImageFromArray(np.ones((6, 4, 4), np.float32)))
    small = _one("t2", sitk.GetImageFromArray(np.ones((2, 4, 4), np.float32)))
    write_series_dicom([big], tmp_path)
    folder = write_series_dicom([small], tmp_path, study_info={"patient_age": 71})[0]
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 2
    reader = sitk.ImageSeriesReader()
    assert len(reader.GetGDCMSeriesFileNames(str(folder))) == 2
    assert pydicom.dcmread(files[0]).PatientAge == "071Y"


def test_series_acquisition_words_override_role_defaults_and_bad_numbers_raise(tmp_path):
    img = sitk.GetImageFromArray(np.ones((2, 3, 3), np.float32))
    s = _one("t2", img, scanning_sequence="EP\\SE", sequence_variant=["SK"], mr_acquisition_type="3D",
             repetition_time_ms=3500.0)
    ds = pydicom.dcmread(sorted(write_series_dicom([s], tmp_path / "ok")[0].glob("*.dcm"))[0])
    assert list(ds.ScanningSequence) == ["EP", "SE"]
    assert ds.SequenceVariant == "SK" and ds.MRAcquisitionType == "3D"
    good = _one("t1_pre", img, series_number=2)
    with pytest.raises(LiverMetsError, match="finite"):
        write_series_dicom([good, _one("t2", img, repetition_time_ms=float("nan"))], tmp_path / "bad")
    assert not any((tmp_path / "bad").rglob("*.dcm"))  # checked before the first file is written


def test_slicer_style_subseries_split_gives_one_clean_volume_per_stack(study, written):
    """Slicer's scalar-volume plugin splits a series by SeriesInstanceUID, AcquisitionNumber, ImageType,
    ImageOrientationPatient and DiffusionGradientOrientation, then needs distinct, equally spaced slice positions
    along the normal (spacing tolerance 0.01 mm). Every stack must come out as exactly one such volume."""
    for vendor in VENDORS:
        for s, folder in zip(study, written[vendor][1], strict=True):
            groups: dict[tuple, list[pydicom.Dataset]] = {}
            for _, ds in _headers(folder):
                key = (ds.SeriesInstanceUID, str(ds.get("AcquisitionNumber", "")), tuple(ds.ImageType),
                       tuple(round(float(x), 6) for x in ds.ImageOrientationPatient),
                       str(ds.get("DiffusionGradientOrientation", "")))
                groups.setdefault(key, []).append(ds)
            assert len(groups) == len(s.stacks), (vendor, folder.name)
            for group, stack in zip(sorted(groups.values(), key=lambda g: int(g[0].AcquisitionNumber)), s.stacks,
                                    strict=True):
                iop = np.array([float(x) for x in group[0].ImageOrientationPatient])
                normal = np.cross(iop[:3], iop[3:])
                dist = np.sort([float(np.dot([float(x) for x in ds.ImagePositionPatient], normal)) for ds in group])
                assert len(group) == stack.GetSize()[2]
                steps = np.diff(dist)
                assert np.all(steps > 0), "two slices at one position"
                assert np.abs(steps - stack.GetSpacing()[2]).max() < 0.01
