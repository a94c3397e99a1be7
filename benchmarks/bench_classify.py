"""Benchmark: classify a 3,000-file DICOM folder, against dcm2niix parsing the same folder in the same run.

The folder is generated in a temporary directory: real vendor headers from ../shared/data (GE, Siemens
with CSA, Philips; private b-value tags included) cloned into series with fresh UIDs and small pixel
matrices, plus synthetic T1/T2 series; without ../shared only synthetic series are written.
dcm2niix runs with ``-b o`` (BIDS sidecars only, no NIfTI written): it parses every header and groups
series, which is the comparable work. Goal: our scan + classification within 3x of dcm2niix.
Run: ``python benchmarks/bench_classify.py [--files N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import inspect
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "LiverMetsReview"))

from LiverMetsReviewLib.study.classify import classify_scan  # noqa: E402
from LiverMetsReviewLib.study.scan import scan_folder  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
TEMPLATES = [
    "header-only-dwi-tags/dicom2nifti/ge/dti/001/IM-0001-0076-0001.dcm",
    "header-only-dwi-tags/dicom2nifti/siemens/dti_classic/001/005.dcm",
    "header-only-dwi-tags/dicom2nifti/philips/dti/002/IM-0001-0008-0001.dcm",
    "philips-achieva-dwi-2018/Vanderbilt_2018_subset/0016.dcm",
    "ge-mr750-dwi-phantom/In/mr_0003/axial_4_directions_3_shells-00001.dcm",
]
MATRIX = 96


def _save(ds: Dataset, path: Path) -> None:
    if "enforce_file_format" in inspect.signature(pydicom.dcmwrite).parameters:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.4
        ds.save_as(path, write_like_original=False)


def _small_pixels(ds: Dataset, value: int) -> None:
    ds.Rows = ds.Columns = MATRIX
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.full((MATRIX, MATRIX), value, np.uint16).tobytes()
    ds["PixelData"].VR = "OW"


def _synthetic_template(kind: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.Modality, ds.Manufacturer, ds.MagneticFieldStrength = "MR", "SIEMENS", "1.5"
    ds.PatientID, ds.StudyDate, ds.AcquisitionDate = "BENCH", "20260101", "20260101"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SeriesDescription, ds.EchoTime, ds.RepetitionTime = [("t2_haste_fs", "90", "1400"),
                                                            ("t1_vibe_fs", "1.8", "4.0")][kind % 2]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1.5, 1.5]
    ds.SliceThickness = "3"
    return ds


def make_folder(out: Path, n_files: int, per_series: int = 200) -> int:
    """Write ``n_files`` files in series of ``per_series`` slices; returns the number of series."""
    templates = [pydicom.dcmread(SHARED / t) for t in TEMPLATES if (SHARED / t).exists()]
    templates += [_synthetic_template(k) for k in range(2)]
    study = generate_uid()
    n_series = (n_files + per_series - 1) // per_series
    written = 0
    for s in range(n_series):
        ds = templates[s % len(templates)]
        series_uid = generate_uid()
        folder = out / f"series{s:03d}"
        folder.mkdir(parents=True)
        for k in range(min(per_series, n_files - written)):
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study, series_uid, s + 1
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = k + 1
            ds.AcquisitionTime = f"{10 + s // 60:02d}{s % 60:02d}00"
            ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]  # one stack per series: b/TE fixed per template
            _small_pixels(ds, k)
            _save(ds, folder / f"IM{k:05d}.dcm")
            written += 1
    return n_series


def run(n_files: int = 3000, keep: Path | None = None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_classify_"))
    try:
        src = tmp / "dicom"
        t = time.perf_counter()
        n_series = make_folder(src, n_files)
        t_make = time.perf_counter() - t
        # warm the OS file cache once so both tools read from memory
        for p in src.rglob("*"):
            if p.is_file():
                p.read_bytes()
        def best(fn, repeat: int = 3) -> tuple[float, float]:
            """Least disturbed wall time and CPU time (user+sys, this process and its children) of ``fn``."""
            walls, cpus = [], []
            for _ in range(repeat):
                r0, c0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time(), time.perf_counter()
                fn()
                t1, c1, r1 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
                walls.append(t1 - t0)
                cpus.append((c1 - c0) + (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
            return min(walls), min(cpus)

        scan = classify_scan(scan_folder(src))
        assert len(scan.series) == n_series and not scan.skipped, (len(scan.series), scan.skipped[:3])
        t_ours = best(lambda: classify_scan(scan_folder(src)))
        t_cli = best(lambda: subprocess.run([sys.executable, "-m", "LiverMetsReviewLib.cli", "classify", str(src),
                                             "--json"], check=True, stdout=subprocess.DEVNULL,
                                            cwd=REPO / "LiverMetsReview"))
        dcm2niix = shutil.which("dcm2niix")
        t_ref = None
        if dcm2niix:
            out = tmp / "nii"
            out.mkdir()

            def ref() -> None:
                subprocess.run([dcm2niix, "-b", "o", "-v", "0", "-f", "%s_%p", "-o", str(out), str(src)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            t_ref = best(ref)
        # start-up alone: the CLI on a one-series folder, and which heavy packages the command pulled in
        tiny = tmp / "tiny"
        tiny.mkdir()
        shutil.copytree(next(p for p in sorted(src.iterdir()) if p.is_dir()), tiny / "s", dirs_exist_ok=True)
        for extra in sorted((tiny / "s").iterdir())[1:]:
            extra.unlink()
        t_start = best(lambda: subprocess.run([sys.executable, "-m", "LiverMetsReviewLib.cli", "classify", str(tiny),
                                               "--json"], check=True, stdout=subprocess.DEVNULL,
                                              cwd=REPO / "LiverMetsReview"), repeat=5)
        probe = ("import sys, io, contextlib\nfrom LiverMetsReviewLib.cli import main\n"
                 "with contextlib.redirect_stdout(io.StringIO()):\n    main(['classify', sys.argv[1], '--json'])\n"
                 "print(' '.join(m for m in ('numpy', 'pydicom', 'SimpleITK', 'scipy') if m in sys.modules))")
        loaded = subprocess.run([sys.executable, "-c", probe, str(tiny)], check=True, capture_output=True, text=True,
                                cwd=REPO / "LiverMetsReview").stdout.strip()
        result = {"files": n_files, "series": n_series, "make_s": t_make, "ours_s": t_ours, "ours_cli_s": t_cli,
                  "dcm2niix_s": t_ref, "cli_start_s": t_start, "cli_start_modules": loaded}
        print(f"bench_classify: {n_files} files in {n_series} series (written in {t_make:.1f} s); best of 3 runs, "
              "wall / CPU seconds")
        print(f"  livermets scan+classify (in process): {t_ours[0]:.2f} / {t_ours[1]:.2f} s  "
              f"({t_ours[0] / n_files * 1e3:.2f} ms/file wall)")
        print(f"  livermets classify --json (CLI, incl. Python start): {t_cli[0]:.2f} / {t_cli[1]:.2f} s")
        print(f"  CLI start-up (classify on a one-file folder): {t_start[0]:.2f} / {t_start[1]:.2f} s; "
              f"packages loaded: {loaded or 'none of numpy/pydicom/SimpleITK/scipy'}")
        if t_ref:
            print(f"  dcm2niix -b o (parse + BIDS sidecars): {t_ref[0]:.2f} / {t_ref[1]:.2f} s  "
                  f"({t_ref[0] / n_files * 1e3:.2f} ms/file wall)")
            print(f"  ratio ours/dcm2niix, wall: {t_ours[0] / t_ref[0]:.2f} in process, {t_cli[0] / t_ref[0]:.2f} CLI; "
                  f"CPU: {t_ours[1] / t_ref[1]:.2f} in process, {t_cli[1] / t_ref[1]:.2f} CLI (goal <= 3)")
        else:
            print("  dcm2niix not found: no baseline")
        if keep:
            shutil.copytree(src, keep, dirs_exist_ok=True)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--keep", type=Path, help="copy the generated folder here")
    args = parser.parse_args()
    run(args.files, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
