"""The phantom's DICOM as Slicer's DICOM module groups it into volumes (what a user gets on "Load").

Slicer is not importable here, so its grouping rules are re-implemented below from reading the plugins' source
(my own code, no copy), for the versions a user runs:

- Slicer v5.10.0 and main (583e9b37d5) ``Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py``: the series is split
  into sub-series by each of SeriesInstanceUID, AcquisitionNumber, ImageType, ImageOrientationPatient (numeric, 1e-6)
  and DiffusionGradientOrientation (+ ContentTime and TriggerTime when "Allow loading subseries by time" is on); files
  are sorted along the slice normal and a loadable gets a warning when the slice steps differ by more than 0.01 mm.
  When the all-files loadable has a warning and only one tag splits the series, the warning-free sub-series are
  selected (confidence 0.5) and the all-files loadable drops to 0.45; otherwise the all-files loadable stays
  selected (stacks merged). Grouping is identical in v5.10.0 and main.
- MultiVolumeImporter (bundled with Slicer; c8a37eb pinned by v5.10.0, 144b2e4 by main, same plugin logic):
  per series, one multivolume per frame tag (TriggerTime, EchoTime, FlipAngle, RepetitionTime, AcquisitionTime,
  SeriesTime, ContentTime, CardiacCycle, NominalPercentageOfCardiacPhase, (0019,100C), (0043,1039) modulo 100000,
  TemporalPositionIdentifier, (2001,1003), (0018,9087), (0043,101E)) with >= 2 values, the same number of files per
  value, distinct positions and one orientation per value, and equal frame origins; plus the ImagePosition+
  AcquisitionTime and ImagePosition+InstanceNumber strategies; confidence 1.0, each also offered as a Volume
  Sequence (listed first). With several series and no multivolume in any, all files are tried together by
  SeriesTime/AcquisitionTime/FlipAngle/CardiacCycle.
- DICOMImageSequencePlugin (cine MRI): an MR series with several instance numbers and <= 3 trigger times: 0.4.
- DICOMUtils.selectHighestConfidenceLoadables: per series (of a loadable's first file) every loadable with the top
  confidence is selected; the DICOM browser then keeps, per plugin, only the first selected loadable of one file set.
  ``DICOMUtils.loadSeriesByUID`` skips that last step.

Ground truth of which stack a file belongs to comes from its pixels: each file's slice is matched against the
phantom's own stacks (within the writer's quantisation bound), not from header values the grouping reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

generate = pytest.importorskip("LiverMetsReviewLib.phantom.generate", reason="phantom generator not available")
from LiverMetsReviewLib.io.dicom_writer import write_series_dicom  # noqa: E402

VENDORS = ("siemens", "ge", "philips")
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SPACING_EPSILON = 0.01       # DICOMScalarVolumePlugin spacingEpsilon
ORIENTATION_EPSILON = 1e-6   # DICOMScalarVolumePlugin orientationEpsilon
MV_ORIGIN_EPSILON = 0.01     # MultiVolumeImporterPlugin epsilon
B_TAGS = {"siemens": "Siemens.B-value", "ge": "GE.B-value", "philips": "Philips.B-value"}

# (name, tag) in the order MultiVolumeImporterPlugin.__init__ lists them: the order loadables are offered in
MV_TAGS = [("TriggerTime", (0x0018, 0x1060)), ("EchoTime", (0x0018, 0x0081)), ("FlipAngle", (0x0018, 0x1314)),
           ("RepetitionTime", (0x0018, 0x0080)), ("AcquisitionTime", (0x0008, 0x0032)),
           ("SeriesTime", (0x0008, 0x0031)), ("ContentTime", (0x0008, 0x0033)), ("CardiacCycle", (0x0018, 0x0022)),
           ("NominalPercentageOfCardiacPhase", (0x0020, 0x9241)), ("Siemens.B-value", (0x0019, 0x100C)),
           ("GE.B-value", (0x0043, 0x1039)), ("TemporalPositionIdentifier", (0x0020, 0x0100)),
           ("Philips.B-value", (0x2001, 0x1003)), ("Standard.B-value", (0x0018, 0x9087)),
           ("DeltaStartTime", (0x0043, 0x101E))]
OTHER_TAGS = {"SOPClassUID": (0x0008, 0x0016), "SeriesInstanceUID": (0x0020, 0x000E),
              "SeriesNumber": (0x0020, 0x0011), "SeriesDescription": (0x0008, 0x103E),
              "AcquisitionNumber": (0x0020, 0x0012), "ImageType": (0x0008, 0x0008),
              "ImageOrientationPatient": (0x0020, 0x0037), "ImagePositionPatient": (0x0020, 0x0032),
              "DiffusionGradientOrientation": (0x0018, 0x9089), "InstanceNumber": (0x0020, 0x0013),
              "NumberOfFrames": (0x0028, 0x0008)}
TIME_TAGS = ("AcquisitionTime", "SeriesTime", "ContentTime")


# ------------------------------------------------------------------------------------------- the database


def _text(elem) -> str:
    """A value as the DICOM database returns it: a string, multiple values joined by backslashes."""
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


class Database:
    """File -> tag values (as slicer.dicomDatabase.fileValue would give them) and the file's pixels."""

    def __init__(self, files: list[Path]):
        self.values: dict[str, dict[str, str]] = {}
        self.pixels: dict[str, np.ndarray] = {}
        for path in files:
            ds = pydicom.dcmread(path)
            tags = {**dict(MV_TAGS), **OTHER_TAGS}
            self.values[str(path)] = {name: _text(ds.get(tag)) for name, tag in tags.items()}
            slope = float(ds.get("RescaleSlope", 1.0))
            self.pixels[str(path)] = ds.pixel_array.astype(np.float64) * slope

    def value(self, f: str, name: str) -> str:
        return self.values[f][name]

    def vector(self, f: str, name: str) -> np.ndarray:
        return np.array([float(x) for x in self.value(f, name).split("\\")])


@dataclass
class Loadable:
    plugin: str
    name: str
    files: list[str]
    confidence: float = 0.5
    selected: bool = True
    warning: str = ""
    frames: list[list[str]] | None = None   # multivolume: files of each frame, in frame order
    labels: list[float] = field(default_factory=list)
    tag: str = ""


def _series_name(db: Database, f: str) -> str:
    desc = db.value(f, "SeriesDescription") or "Unnamed Series"
    number = db.value(f, "SeriesNumber")
    return f"{number}: {desc}" if number else desc


# ------------------------------------------------------------------------------- DICOMScalarVolumePlugin


def sorted_files(db: Database, files: list[str]) -> tuple[list[str], str]:
    """Order along the first file's slice normal; warn on missing geometry or unequal slice steps."""
    if not files:
        return files, ""
    warning = ""
    if db.value(files[0], "NumberOfFrames") not in ("", "1"):
        warning += "Multi-frame image. "
    if not db.value(files[0], "ImagePositionPatient") or not db.value(files[0], "ImageOrientationPatient"):
        return files, warning + "Reference image in series does not contain geometry information."
    iop = db.vector(files[0], "ImageOrientationPatient")
    normal = np.cross(iop[:3], iop[3:])
    origin = db.vector(files[0], "ImagePositionPatient")
    dist = []
    for f in files:
        if not db.value(f, "ImagePositionPatient") or not db.value(f, "ImageOrientationPatient"):
            return files, warning + "One or more images is missing geometry information."
        dist.append(float((db.vector(f, "ImagePositionPatient") - origin) @ normal))
    order = sorted(range(len(files)), key=lambda i: dist[i])  # stable, as Python's sorted in the plugin
    files = [files[i] for i in order]
    d = [dist[i] for i in order]
    if len(d) > 1:
        steps = np.diff(d)
        if np.any(np.abs(steps - steps[0]) > SPACING_EPSILON):
            warning += "Image slices are not equally spaced."
    return files, warning


def scalar_examine(db: Database, files: list[str], by_time: bool = False) -> list[Loadable]:
    name = _series_name(db, files[0])
    all_files = Loadable("DICOMScalarVolumePlugin", name, list(files))
    tags = ["SeriesInstanceUID", "AcquisitionNumber", "ImageType", "ImageOrientationPatient",
            "DiffusionGradientOrientation"] + (["ContentTime", "TriggerTime"] if by_time else [])
    vector_tags = ("ImageOrientationPatient", "DiffusionGradientOrientation")
    groups: dict[str, dict[str, list[str]]] = {t: {} for t in tags}
    distinct: dict[str, list[str]] = {t: [] for t in tags}
    for f in files:
        for tag in tags:
            value = db.value(f, tag).replace(",", "_")
            if tag in vector_tags:
                if value:
                    same = [v for v in distinct[tag]
                            if np.allclose(db.vector(f, tag), np.array([float(x) for x in v.split("\\")]),
                                           rtol=0.0, atol=ORIENTATION_EPSILON)]
                    if same:
                        value = same[0]
                    else:
                        distinct[tag].append(value)
            elif value not in distinct[tag]:
                distinct[tag].append(value)
            groups[tag].setdefault(value, []).append(f)
    loadables = [all_files]
    splitting = 0
    localizer_free = []
    for tag in tags:
        if len(distinct[tag]) < 2:
            continue
        splitting += 1
        for k, value in enumerate(distinct[tag]):
            key = tag[0].lower() + tag[1:]  # the plugin's own key names the sub-series
            shown = k + 1 if tag in ("SeriesInstanceUID", *vector_tags) else value
            sub = Loadable("DICOMScalarVolumePlugin", f"{name} - {key} {shown}", list(groups[tag][value]),
                           selected=False)
            loadables.append(sub)
            if len(distinct[tag]) == 2:
                other = distinct[tag][1 - k]
                if len(groups[tag][value]) > 1 and len(groups[tag][other]) == 1:
                    localizer_free.append(sub)
    for loadable in loadables:
        loadable.files, loadable.warning = sorted_files(db, loadable.files)
    better = []
    if all_files.warning:
        better = [sub for sub in localizer_free if not sub.warning]
        if not better and splitting == 1:
            better = [sub for sub in loadables if sub is not all_files and not sub.warning]
    preferred = better or [all_files]
    for loadable in loadables:
        loadable.selected = loadable in preferred
        if not loadable.selected:
            loadable.confidence = min(loadable.confidence, 0.45)
    return loadables


# ---------------------------------------------------------------------------------- MultiVolumeImporter


def _tm_ms(text: str) -> float:
    if len(text) < 6:
        return 0.0
    main, _, frac = text.partition(".")
    sec = float("0." + frac) if frac else 0.0
    if len(main) == 6:
        sec += int(main[:2]) * 3600 + int(main[2:4]) * 60 + int(main[4:6])
    elif len(main) == 4:
        sec += int(main[:2]) * 3600 + int(main[2:4]) * 60
    elif len(main) == 2:
        sec += int(main[:2]) * 3600
    return sec * 1000.0


def _frame_value(tag: str, text: str) -> float | None:
    try:
        if tag in TIME_TAGS:
            return _tm_ms(text)
        if tag == "GE.B-value":
            return float(int(text.split("\\")[0]) % 100000)
        if tag == "CardiacCycle":
            return float(re.search(r"TP(\d+)PC(\d+)", text.split("\\")[0]).group(1))
        return float(text)
    except (ValueError, AttributeError):
        return None


def mv_candidates(db: Database, files: list[str], tags: list[str] | None = None) -> list[tuple[str, list, list]]:
    """(tag, frame labels, frame file lists) for every tag that splits ``files`` into a multivolume."""
    considered = list(tags or [n for n, _ in MV_TAGS])
    by_value: dict[str, dict[float, list[str]]] = {}
    dropped: list[str] = []
    for f in files:
        for tag in dropped:  # a tag missing in one file is not considered for the files after it
            considered.remove(tag)
        dropped = []
        for tag in considered:
            text = db.value(f, tag)
            if text == "":
                dropped.append(tag)
                continue
            value = _frame_value(tag, text)
            if value is not None:
                by_value.setdefault(tag, {}).setdefault(value, []).append(f)
    out = []
    for tag in considered:
        groups = by_value.get(tag, {})
        if len(groups) < 2 or len({len(g) for g in groups.values()}) > 1:
            continue
        if any(len({db.value(f, "ImagePositionPatient") for f in g}) != len(g)
               or len({db.value(f, "ImageOrientationPatient") for f in g}) != 1 for g in groups.values()):
            continue
        values = sorted(groups)
        labels = [v - values[0] for v in values] if tag in TIME_TAGS else values
        out.append((tag, labels, [groups[v] for v in values]))
    return out


def _origins_agree(db: Database, frames: list[list[str]]) -> bool:
    firsts = [db.vector(sorted_files(db, frame)[0][0], "ImagePositionPatient") for frame in frames]
    return all(np.all(np.abs(o - firsts[0]) <= MV_ORIGIN_EPSILON) for o in firsts)


def _by_position(db: Database, files: list[str], key) -> list[list[str]] | None:
    """Frames of the ImagePosition+key strategies: per position, files ordered by key; None when it does not fit."""
    per_pos: dict[str, dict] = {}
    for f in files:
        per_pos.setdefault(db.value(f, "ImagePositionPatient"), {})[key(f)] = f
    counts = {len(v) for v in per_pos.values()}
    first = len(next(iter(per_pos.values())))
    if first < 2 or len(counts) > 1:
        return None
    return [[per_pos[p][sorted(per_pos[p])[k]] for p in per_pos] for k in range(first)]


def mv_examine(db: Database, file_lists: list[list[str]], sequences: bool = True) -> list[Loadable]:
    plugin = "MultiVolumeImporterPlugin"

    def make(files, tag, labels, frames, description_of=None):
        name = f"{_series_name(db, (description_of or files)[0])} - {len(frames)} frames MultiVolume by {tag}"
        return Loadable(plugin, name, list(files), confidence=0.9 if tag == "TemporalPositionIdentifier" else 1.0,
                        frames=frames, labels=list(labels), tag=tag)

    def strategies(files, prescribed=None):
        found = []
        for series_files in ([files] if prescribed else _split_by_series(db, files)):
            for tag, labels, frames in mv_candidates(db, series_files, prescribed):
                if _origins_agree(db, frames):
                    found.append(make(files if not prescribed else sum(frames, []), tag, labels, frames))
        frames = _by_position(db, files, lambda f: _tm_ms(db.value(f, "AcquisitionTime")))
        if frames:
            t0 = _tm_ms(db.value(sorted_files(db, frames[0])[0][0], "AcquisitionTime"))
            labels = [_tm_ms(db.value(sorted_files(db, fr)[0][0], "AcquisitionTime")) - t0 for fr in frames]
            found.append(make(sum(frames, []), "AcquisitionTime", labels, frames))
        if all(db.value(f, k) for f in files for k in ("InstanceNumber", "ImagePositionPatient", "RepetitionTime")):
            frames = _by_position(db, files, lambda f: int(db.value(f, "InstanceNumber")))
            if frames and all(len(fr) >= 2 for fr in frames):
                tr = float(db.value(files[0], "RepetitionTime"))
                found.append(make(sum(frames, []), "InstanceNumber", [tr * k for k in range(len(frames))], frames))
        return found

    loadables = []
    for files in file_lists:
        loadables += strategies(files)
    all_files = [f for files in file_lists for f in files]
    if not loadables and len(all_files) > len(file_lists[-1]):
        loadables += strategies(all_files, prescribed=["SeriesTime", "AcquisitionTime", "FlipAngle", "CardiacCycle"])
    if sequences:  # the Sequences module is part of Slicer: each is also offered as a volume sequence, listed first
        seq = [Loadable(plugin, lo.name.replace("frames MultiVolume", "frames Volume Sequence"), lo.files,
                        lo.confidence, lo.selected, frames=lo.frames, labels=lo.labels, tag=lo.tag)
               for lo in loadables]
        loadables = seq + loadables
    return loadables


def _split_by_series(db: Database, files: list[str]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for f in files:
        groups.setdefault(db.value(f, "SeriesInstanceUID") or "Unknown", []).append(f)
    return list(groups.values())


# ------------------------------------------------------------------- cine plugin, selection, what is loaded


def cine_examine(db: Database, files: list[str]) -> list[Loadable]:
    if any(db.value(f, "SOPClassUID") != MR_IMAGE_STORAGE or not db.value(f, "InstanceNumber") for f in files):
        return []
    if len({db.value(f, "InstanceNumber") for f in files}) < 2:
        return []
    triggers = {db.value(f, "TriggerTime") for f in files}
    orientations = {db.value(f, "ImageOrientationPatient") for f in files}
    confidence = (1.05 if len(orientations) > 1 else 0.85) if len(triggers) > 3 else 0.4
    return [Loadable("DICOMImageSequencePlugin", _series_name(db, files[0]), list(files), confidence)]


def loaded(db: Database, file_lists: list[list[str]], *, browser: bool = True, multivolume: bool = True,
           by_time: bool = False) -> list[Loadable]:
    """The loadables Slicer loads: the DICOM browser's Load button (``browser``) or DICOMUtils.loadSeriesByUID."""
    by_plugin: dict[str, list[Loadable]] = {
        "DICOMScalarVolumePlugin": [lo for files in file_lists for lo in scalar_examine(db, files, by_time)],
        "DICOMImageSequencePlugin": [lo for files in file_lists for lo in cine_examine(db, files)],
    }
    if multivolume:
        by_plugin["MultiVolumeImporterPlugin"] = mv_examine(db, file_lists)
    per_series: dict[str, list[Loadable]] = {}
    for loadables in by_plugin.values():
        for lo in loadables:
            per_series.setdefault(db.value(lo.files[0], "SeriesInstanceUID"), []).append(lo)
    for group in per_series.values():
        top = max(lo.confidence for lo in group)
        for lo in group:
            lo.selected = lo.confidence == top
    if browser:
        for loadables in by_plugin.values():
            for i, lo in enumerate(loadables):
                if any(set(lo.files) == set(prev.files) and prev.selected for prev in loadables[:i]):
                    lo.selected = False
    return [lo for loadables in by_plugin.values() for lo in loadables if lo.selected]


def volumes_of(lo: Loadable) -> list[set[str]]:
    """The file sets that become one 3-D volume each."""
    return [set(frame) for frame in lo.frames] if lo.frames else [set(lo.files)]


# ------------------------------------------------------------------------------------------------ fixtures


@dataclass
class Written:
    vendor: str
    study: object
    db: Database
    series_files: dict[str, list[str]]      # role -> files of its series folder
    stack_of: dict[str, tuple[str, int]]    # file -> (role, stack index), from the pixels


def _stack_of_files(db: Database, s, files: list[str]) -> dict[str, tuple[str, int]]:
    """Which stack each file holds: the stack whose slice at the file's position matches its pixels."""
    out = {}
    arrays = [sitk.GetArrayFromImage(st).astype(np.float64) for st in s.stacks]
    for f in files:
        k_best, err_best = None, np.inf
        for k, st in enumerate(s.stacks):
            idx = st.TransformPhysicalPointToContinuousIndex(tuple(db.vector(f, "ImagePositionPatient")))
            z = int(round(idx[2])) if len(idx) == 3 else 0
            if not 0 <= z < arrays[k].shape[0] or abs(idx[0]) > 1e-3 or abs(idx[1]) > 1e-3:
                continue
            err = float(np.abs(db.pixels[f] - arrays[k][z]).max())
            if err < err_best:
                k_best, err_best = k, err
        assert k_best is not None, f"{f}: no stack slice at this position"
        scale = max(float(np.abs(a).max()) for a in arrays)
        assert err_best <= 2e-3 * scale, f"{f}: pixels match no stack slice (max error {err_best:g})"
        out[f] = (s.role, k_best)
    return out


@pytest.fixture(scope="module")
def phantom():
    return generate.generate_phantom(seed=0, scenario="normal", field_strength_t=1.5, size="small")


@pytest.fixture(scope="module", params=VENDORS)
def written(request, phantom, tmp_path_factory) -> Written:
    vendor = request.param
    folders = write_series_dicom(phantom.series, tmp_path_factory.mktemp(f"slicer_{vendor}"), vendor=vendor, seed=0)
    db = Database([p for folder in folders for p in sorted(folder.glob("*.dcm"))])
    series_files, stack_of = {}, {}
    for s, folder in zip(phantom.series, folders, strict=True):
        files = [str(p) for p in sorted(folder.glob("*.dcm"))]
        series_files[s.role] = files
        stack_of.update(_stack_of_files(db, s, files))
    return Written(vendor, phantom, db, series_files, stack_of)


def _stacks(w: Written, role: str) -> list[set[str]]:
    n = len(w.study.series_by_role(role).stacks)
    return [{f for f, (r, k) in w.stack_of.items() if r == role and k == j} for j in range(n)]


# ---------------------------------------------------------------------------------------------------- tests


def test_scalar_volume_plugin_gives_one_volume_per_stack(written):
    """Without MultiVolumeImporter (or with 'Allow loading subseries by time'), every stack is its own volume:
    DWI one per b-value, the 6-echo series one per echo, single-stack series one volume, none merged."""
    w = written
    for by_time in (False, True):
        for s in w.study.series:
            chosen = loaded(w.db, [w.series_files[s.role]], multivolume=False, by_time=by_time)
            assert {lo.plugin for lo in chosen} == {"DICOMScalarVolumePlugin"}, (w.vendor, s.role)
            assert not any(lo.warning for lo in chosen), (w.vendor, s.role, [lo.warning for lo in chosen])
            got = sorted((v for lo in chosen for v in volumes_of(lo)), key=sorted)
            assert got == sorted(_stacks(w, s.role), key=sorted), (w.vendor, s.role, by_time)


def test_browser_load_of_each_series(written):
    """Default Slicer (MultiVolumeImporter bundled): a multi-stack series loads as one volume sequence whose frames
    are exactly the stacks, in b-value / echo-time order and labelled with them; other series as one scalar volume."""
    w = written
    for s in w.study.series:
        chosen = loaded(w.db, [w.series_files[s.role]])
        assert len(chosen) == 1, (w.vendor, s.role, [lo.name for lo in chosen])
        lo = chosen[0]
        if len(s.stacks) == 1:
            assert lo.plugin == "DICOMScalarVolumePlugin" and not lo.warning
            assert set(lo.files) == set(w.series_files[s.role])
            continue
        assert lo.plugin == "MultiVolumeImporterPlugin" and "Volume Sequence" in lo.name
        assert [set(fr) for fr in lo.frames] == _stacks(w, s.role)
        if s.role == "dwi":
            assert lo.tag == B_TAGS[w.vendor]
            assert lo.labels == pytest.approx(s.b_values)
        else:
            assert s.role == "multi_echo_gre" and lo.tag == "EchoTime"
            assert lo.labels == pytest.approx(s.echo_times_ms, abs=1e-6)


def test_load_series_by_uid_never_merges_stacks(written):
    """DICOMUtils.loadSeriesByUID loads every top-confidence loadable (several for DWI and the echoes); each of
    them still has one volume per stack."""
    w = written
    for role in ("dwi", "multi_echo_gre"):
        chosen = loaded(w.db, [w.series_files[role]], browser=False)
        assert chosen and all(lo.plugin == "MultiVolumeImporterPlugin" for lo in chosen)
        for lo in chosen:
            assert [set(fr) for fr in lo.frames] == _stacks(w, role), (w.vendor, role, lo.tag)


def test_whole_study_selected_at_once(written):
    """Loading the whole study: the same volumes as series by series (no cross-series multivolume)."""
    w = written
    chosen = loaded(w.db, list(w.series_files.values()))
    got = sorted((v for lo in chosen for v in volumes_of(lo)), key=sorted)
    expected = sorted((st for s in w.study.series for st in _stacks(w, s.role)), key=sorted)
    assert got == expected


def test_dynamic_phases_selected_together_form_a_time_ordered_sequence(written):
    """Selecting only the five dynamic series: MultiVolumeImporter offers them as one sequence by SeriesTime
    whose frames are the phases in acquisition order (pre, arterial, portal venous, transitional, HBP)."""
    w = written
    phases = ["t1_pre", "t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary"]
    chosen = loaded(w.db, [w.series_files[r] for r in phases])
    seqs = [lo for lo in chosen if lo.plugin == "MultiVolumeImporterPlugin"]
    assert len(seqs) == 1 and seqs[0].tag == "SeriesTime"
    assert [set(fr) for fr in seqs[0].frames] == [set(w.series_files[r]) for r in phases]
    offsets = [w.study.series_by_role(r).meta["acquisition_offset_s"] for r in phases]
    assert np.array(seqs[0].labels) / 1000.0 == pytest.approx(np.array(offsets) - offsets[0], abs=1e-3)
    # the other four phases are also loaded as scalar volumes (the top loadable of their own series)
    scalars = [set(lo.files) for lo in chosen if lo.plugin == "DICOMScalarVolumePlugin"]
    assert sorted(scalars, key=sorted) == sorted((set(w.series_files[r]) for r in phases[1:]), key=sorted)


# ------------------------------------------------------------------ the emulation can see a merged series


def test_emulation_detects_stacks_that_slicer_would_merge(phantom, tmp_path):
    """Negative controls on the phantom DWI: one AcquisitionNumber for all b-values (the scalar plugin then merges
    the b-values into one warned volume), and a ContentTime per b-value with loading by time on (two splitting
    tags: merged again); a ContentTime per b-value also makes MultiVolumeImporter group by time, not b-value."""
    dwi = phantom.series_by_role("dwi")
    folder = write_series_dicom([dwi], tmp_path / "dwi", vendor="siemens", seed=0)[0]
    sources = [str(p) for p in sorted(folder.glob("*.dcm"))]
    truth = _stack_of_files(Database([Path(f) for f in sources]), dwi, sources)

    def one_acquisition(ds, k):
        ds.AcquisitionNumber = "1"

    def time_per_b(ds, k):
        ds.ContentTime = ds.AcquisitionTime = f"0938{20 + 10 * k:02d}.000000"

    for edit, by_time in ((one_acquisition, False), (time_per_b, True)):
        out = tmp_path / edit.__name__
        out.mkdir()
        files = []
        for f in sources:
            ds = pydicom.dcmread(f)
            edit(ds, truth[f][1])
            ds.save_as(out / Path(f).name)
            files.append(str(out / Path(f).name))
        db = Database([Path(f) for f in files])
        stacks = sorted(({str(out / Path(f).name) for f in sources if truth[f][1] == k} for k in range(3)), key=sorted)
        chosen = loaded(db, [files], multivolume=False, by_time=by_time)
        assert len(chosen) == 1 and chosen[0].warning and set(chosen[0].files) == set(files), edit.__name__
        assert sorted(volumes_of(chosen[0]), key=sorted) != stacks
        if edit is time_per_b:
            assert loaded(db, [files])[0].tag == "AcquisitionTime"  # frames by time: labels are not b-values


def test_ge_b_value_rule_reads_the_real_ge_file():
    """MultiVolumeImporter's GE rule (first value of (0043,1039) modulo 100000) on the real GE MR750 series gives
    the b-values its README lists (0/100/750/1500)."""
    from conftest import shared_path

    folder = shared_path("data", "ge-mr750-dwi-phantom", "In", "mr_0003")
    files = sorted(folder.glob("*.dcm"))
    values = {_frame_value("GE.B-value", _text(pydicom.dcmread(f, stop_before_pixels=True).get((0x0043, 0x1039))))
              for f in files}
    assert values == {0.0, 100.0, 750.0, 1500.0}
