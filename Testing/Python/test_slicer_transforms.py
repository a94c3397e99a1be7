"""Series moved by a parent transform (a registration kept as a transform): every section measures them where the
views show them.

Stand-ins as Slicer behaves (read in Slicer v5.12.3): ``sitkUtils.PullVolumeFromSlicer`` builds the image from the
node's own IJK-to-RAS matrix only, whatever transform the node is under; ``vtkMRMLTransformableNode::HardenTransform``
multiplies that matrix by the transform to world when the transform is linear. Truth: the point a voxel is shown at,
T @ (IJK-to-RAS) @ ijk, computed here with numpy; and for the maps, the core's map of the images as they were before
they were moved away and brought back by the transform.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.phantom import generate_phantom

MODULE_DIR = Path(__file__).resolve().parents[2] / "LiverMetsReview"
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS <-> RAS
ROLE, SOURCE, B_VALUE = "LiverMetsReview.Role", "LiverMetsReview.Source", "LiverMetsReview.BValue"


class Matrix4x4:
    """vtkMatrix4x4 as far as the Slicer side uses it."""

    def __init__(self) -> None:
        self.m = np.eye(4)

    def GetElement(self, row, col):  # noqa: N802 - VTK's spelling
        return float(self.m[row, col])

    def MultiplyPoint(self, point):  # noqa: N802
        return tuple(self.m @ np.asarray(point, dtype=float))


def ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """A volume node's IJK-to-RAS matrix for an LPS image, as sitkUtils.PushVolumeToSlicer sets it."""
    m = np.eye(4)
    m[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    m[:3, 3] = image.GetOrigin()
    return FLIP @ m


class Transform:
    def __init__(self, to_world: np.ndarray | None, name: str = "Registration") -> None:
        self.to_world, self.name = to_world, name

    def GetName(self):  # noqa: N802
        return self.name

    def IsTransformToWorldLinear(self):  # noqa: N802
        return self.to_world is not None  # None: a warping (grid / B-spline) transform

    def GetMatrixTransformToWorld(self, matrix):  # noqa: N802
        matrix.m = np.array(self.to_world)


class Volume:
    """A scalar volume node: its voxels and geometry (as loaded) and, optionally, the transform it is under."""

    def __init__(self, image: sitk.Image, name: str, attributes: dict[str, str], transform=None) -> None:
        self.image, self.name, self.attributes, self.transform = image, name, dict(attributes), transform

    def GetName(self):  # noqa: N802
        return self.name

    def GetID(self):  # noqa: N802
        return "vtkMRMLScalarVolumeNode" + self.name

    def GetAttribute(self, key):  # noqa: N802
        return self.attributes.get(key)

    def SetAttribute(self, key, value):  # noqa: N802
        self.attributes[key] = value

    def IsA(self, class_name):  # noqa: N802
        return class_name in ("vtkMRMLScalarVolumeNode", "vtkMRMLVolumeNode")

    def GetParentTransformNode(self):  # noqa: N802
        return self.transform

    def GetIJKToRASMatrix(self, matrix):  # noqa: N802
        matrix.m = ijk_to_ras(self.image)

    def GetRASToIJKMatrix(self, matrix):  # noqa: N802
        matrix.m = np.linalg.inv(ijk_to_ras(self.image))

    def GetImageData(self):  # noqa: N802 - vtkImageData as far as the series table reads it
        return types.SimpleNamespace(GetDimensions=lambda: tuple(self.image.GetSize()))

    def GetSpacing(self):  # noqa: N802 - the node's own spacing (its IJK-to-RAS matrix's columns)
        return tuple(self.image.GetSpacing())

    def __getattr__(self, name):  # display nodes, window/level: not under test
        if name[:1].isupper():
            return lambda *args: None
        raise AttributeError(name)


def pull_volume_from_slicer(node: Volume) -> sitk.Image:
    """sitkUtils.PullVolumeFromSlicer (v5.12.3): the node's voxels with the geometry of its own IJK-to-RAS matrix."""
    image = sitk.Image(node.image)
    m = FLIP @ ijk_to_ras(node.image)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    image.SetOrigin(m[:3, 3].tolist())
    image.SetDirection((m[:3, :3] / spacing).ravel().tolist())
    return image


@pytest.fixture()
def scene(monkeypatch):
    nodes: list[Volume] = []

    def push(image, targetNode=None, name=None, className="vtkMRMLScalarVolumeNode"):  # noqa: N803
        nodes.append(Volume(sitk.Image(image), name, {}))
        return nodes[-1]

    slicer = types.ModuleType("slicer")
    slicer.util = types.SimpleNamespace(getNodesByClass=lambda cls: list(nodes))
    for cls in ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLMarkupsFiducialNode"):
        setattr(slicer, cls, type(cls, (), {}))
    vtk = types.ModuleType("vtk")
    vtk.vtkMatrix4x4 = Matrix4x4
    sitk_utils = types.ModuleType("sitkUtils")
    sitk_utils.PullVolumeFromSlicer, sitk_utils.PushVolumeToSlicer = pull_volume_from_slicer, push
    for name, module in {"slicer": slicer, "vtk": vtk, "sitkUtils": sitk_utils}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(MODULE_DIR))
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        monkeypatch.delitem(sys.modules, name)
    yield nodes
    for name in [m for m in sys.modules if m.startswith("LiverMetsReviewSlicer")]:
        del sys.modules[name]


def _rigid(rng: np.random.Generator, max_shift_mm: float = 25.0) -> np.ndarray:
    """A random rotation (uniform quaternion) and translation, as a 4x4 RAS matrix."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rotation, rng.uniform(-max_shift_mm, max_shift_mm, 3)
    return m


def _oblique_image(rng: np.random.Generator) -> sitk.Image:
    image = sitk.GetImageFromArray(rng.normal(size=(7, 9, 11)).astype(np.float32))
    image.SetSpacing(rng.uniform(0.7, 5.0, 3).tolist())
    image.SetOrigin(rng.uniform(-200, 200, 3).tolist())
    image.SetDirection(_rigid(rng)[:3, :3].ravel().tolist())
    return image


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", ["rigid", "affine"])
def test_pulled_image_is_where_the_views_show_it(scene, seed, kind):
    """Under a linear transform each voxel of the pulled image sits at T @ (IJK-to-RAS) @ ijk (LPS), the voxels
    untouched; worldLpsToIjk finds the voxel back from that point."""
    volumes = importlib.import_module("LiverMetsReviewSlicer.volumes")
    rng = np.random.default_rng(seed)
    image = _oblique_image(rng)
    to_world = _rigid(rng)
    if kind == "affine":  # a registration's scaling and shear
        to_world[:3, :3] = to_world[:3, :3] @ (np.eye(3) + rng.uniform(-0.08, 0.08, (3, 3)))
    node = Volume(image, "dwi_b800", {}, Transform(to_world))
    pulled = volumes.pullImage(node)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(pulled), sitk.GetArrayViewFromImage(image))
    for ijk in rng.integers((0, 0, 0), image.GetSize(), size=(20, 3)):
        shown_ras = to_world @ ijk_to_ras(image) @ np.array([*ijk, 1.0])
        expected_lps = (FLIP @ shown_ras)[:3]
        np.testing.assert_allclose(pulled.TransformIndexToPhysicalPoint([int(v) for v in ijk]), expected_lps,
                                   rtol=0, atol=1e-6)
        assert volumes.worldLpsToIjk(node, expected_lps) == tuple(int(v) for v in ijk)


def test_a_warping_transform_is_refused_with_what_to_do(scene):
    volumes = importlib.import_module("LiverMetsReviewSlicer.volumes")
    node = Volume(_oblique_image(np.random.default_rng(1)), "dwi_b800", {}, Transform(None, "BSpline DWI->HBP"))
    with pytest.raises(LiverMetsError, match=r"'dwi_b800'.*warping.*'BSpline DWI->HBP'.*Harden transform"):
        volumes.pullImage(node)


# ------------------------------------------------------------------ every section that pulls images


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(seed=23, size="small", vary=True)


def _moved(image: sitk.Image, to_world: np.ndarray) -> sitk.Image:
    """The image as a registration would leave it in the scene: its voxels with a geometry that ``to_world`` maps
    back onto the original one (IJK-to-RAS = inverse(to_world) @ original)."""
    moved = sitk.Image(image)
    m = FLIP @ np.linalg.inv(to_world) @ ijk_to_ras(image)
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    moved.SetSpacing(spacing.tolist())
    moved.SetOrigin(m[:3, 3].tolist())
    moved.SetDirection((m[:3, :3] / spacing).ravel().tolist())
    return moved


def _load(nodes: list, phantom, moved_roles: dict[str, Transform]) -> None:
    for s in phantom.series:
        for k, image in enumerate(s.stacks):
            attributes = {ROLE: s.role, SOURCE: "phantom"}
            if "b_value" in s.stack_meta[k]:
                attributes[B_VALUE] = str(s.stack_meta[k]["b_value"])
            transform = moved_roles.get(s.role)
            moving = transform is not None and transform.to_world is not None  # a warp: the voxels as acquired
            stored = _moved(image, transform.to_world) if moving else sitk.Image(image)
            nodes.append(Volume(stored, f"{s.role}{k}", attributes, transform))


def _assert_same_grid(pulled: sitk.Image, truth: sitk.Image) -> None:
    np.testing.assert_allclose(pulled.GetOrigin(), truth.GetOrigin(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(pulled.GetSpacing(), truth.GetSpacing(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(pulled.GetDirection(), truth.GetDirection(), rtol=0, atol=1e-9)


def test_every_section_pulls_the_moved_series_where_it_was_registered(scene, phantom):
    """The HBP (the lesions' reference) and the DWI moved away and registered back by transforms: the lesion work,
    the checklist and the report get them on their original grids, and the maps equal the core's maps of the
    original images."""
    from LiverMetsReviewLib.maps import fit_adc, relative_enhancement

    rng = np.random.default_rng(7)
    moved = {"t1_hepatobiliary": Transform(_rigid(rng)), "dwi": Transform(_rigid(rng))}
    _load(scene, phantom, moved)
    truth = {s.role: s for s in phantom.series}

    lesion_logic = importlib.import_module("LiverMetsReviewSlicer.lesion_logic")
    study = lesion_logic.sceneStudy()
    for s in study.series:
        for pulled, original in zip(s.stacks, truth[s.role].stacks, strict=True):
            _assert_same_grid(pulled, original)

    checklist_scene = importlib.import_module("LiverMetsReviewSlicer.checklist_scene")
    images = checklist_scene.sceneImages()
    _assert_same_grid(images["t1_hepatobiliary"][0], truth["t1_hepatobiliary"].image)
    _assert_same_grid(images["dwi_high_b"][0], truth["dwi"].stacks[int(np.argmax(truth["dwi"].b_values))])

    report_scene = importlib.import_module("LiverMetsReviewSlicer.report_scene")
    notes: list[str] = []
    hbp = next(n for n in scene if n.GetAttribute(ROLE) == "t1_hepatobiliary")
    _assert_same_grid(report_scene.viewerVolume(hbp, None, notes).image, truth["t1_hepatobiliary"].image)
    assert notes == [f"{hbp.name} is moved by a transform: the study folder holds it where the scene shows it, "
                     "not its DICOM images."]

    maps = importlib.import_module("LiverMetsReviewSlicer.maps")
    nodes, _ = maps.computeEnhancement("t1_hepatobiliary")
    core = relative_enhancement(truth["t1_pre"].image, truth["t1_hepatobiliary"].image, phase="t1_hepatobiliary")
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(nodes["re_hepatobiliary"].image),
                               sitk.GetArrayViewFromImage(core.re), rtol=1e-5, atol=1e-3)
    nodes, _ = maps.computeAdc("lls")
    core = fit_adc(truth["dwi"].stacks, truth["dwi"].b_values, method="lls")
    _assert_same_grid(nodes["adc"].image, core.adc)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(nodes["adc"].image), sitk.GetArrayViewFromImage(core.adc),
                               rtol=1e-5, atol=1e-2)


HARDEN = r".*Harden transform"


def test_a_warped_series_is_left_out_of_the_lesion_work_and_named(scene, phantom):
    """A warping transform on the DWI: the lesion work, the checklist's measurements and the report go on with the
    other series, each naming the DWI, the transform and "Harden transform"; the ADC, computed from exactly those
    series, refuses with the same advice."""
    _load(scene, phantom, {"dwi": Transform(None, "Warp")})
    left_out = re.compile(r"'dwi\d' left out: .*warping.*'Warp'" + HARDEN)
    others = sorted(s.role for s in phantom.series if s.role != "dwi")

    lesion_logic = importlib.import_module("LiverMetsReviewSlicer.lesion_logic")
    study = lesion_logic.sceneStudy()
    assert sorted(s.role for s in study.series) == [r for r in others if r in lesion_logic.SERIES_ROLES]
    assert study.notes and all(left_out.match(n) for n in study.notes)

    checklist_scene = importlib.import_module("LiverMetsReviewSlicer.checklist_scene")
    notes: list[str] = []
    images = checklist_scene.sceneImages(notes)
    assert "dwi_high_b" not in images and "t1_hepatobiliary" in images
    assert len(notes) == 1 and left_out.match(notes[0])

    report_scene = importlib.import_module("LiverMetsReviewSlicer.report_scene")
    notes = []
    volumes = report_scene.viewerVolumes(notes)
    assert sorted({v.role for v in volumes}) == others
    assert len(notes) == sum(1 for n in scene if n.GetAttribute(ROLE) == "dwi") and all(map(left_out.match, notes))

    maps = importlib.import_module("LiverMetsReviewSlicer.maps")
    with pytest.raises(LiverMetsError, match=r"'dwi\d' is moved by a warping .*'Warp'.*the ADC cannot do without it"
                       + HARDEN):
        maps.computeAdc("lls")


def test_a_warped_reference_stops_the_lesion_work_with_what_to_do(scene, phantom):
    """The HBP, on whose grid the lesions and the liver are drawn, under a warping transform: the lesion work and
    the checklist's measurement refuse with its name, the transform's and "Harden transform"; a review already drawn
    on another series goes on without the HBP, and the report's study folder leaves it out."""
    _load(scene, phantom, {"t1_hepatobiliary": Transform(None, "Warp")})
    refusal = r"'t1_hepatobiliary0' is moved by a warping .*'Warp'.*outlined on its grid" + HARDEN
    lesion_logic = importlib.import_module("LiverMetsReviewSlicer.lesion_logic")
    with pytest.raises(LiverMetsError, match=refusal):
        lesion_logic.sceneStudy()
    portal = next(n for n in scene if n.GetAttribute(ROLE) == "t1_portal_venous")
    study = lesion_logic.sceneStudy(portal)
    assert "t1_hepatobiliary" not in study.imagesByRole() and "t1_portal_venous" in study.imagesByRole()
    assert [n.split(" left out")[0] for n in study.notes] == ["'t1_hepatobiliary0'"]

    checklist_scene = importlib.import_module("LiverMetsReviewSlicer.checklist_scene")
    with pytest.raises(LiverMetsError, match=r"'t1_hepatobiliary0' is moved by a warping .*'Warp'.*measured on its grid"
                       + HARDEN):
        checklist_scene.measureSegment(types.SimpleNamespace(node=None, segmentId="L1", lesionId="L1"), [])

    report_scene = importlib.import_module("LiverMetsReviewSlicer.report_scene")
    notes: list[str] = []
    assert "t1_hepatobiliary" not in {v.role for v in report_scene.viewerVolumes(notes)}
    assert [n.split(" left out")[0] for n in notes] == ["'t1_hepatobiliary0'"]


def test_a_study_of_a_warped_dwi_alone_is_refused_for_its_grid(scene, phantom):
    """The DWI is the only series (the core draws the lesions on its grid then): refused with the advice, not 'no
    series' after leaving it out."""
    dwi_only = types.SimpleNamespace(series=[s for s in phantom.series if s.role == "dwi"])
    _load(scene, dwi_only, {"dwi": Transform(None, "Warp")})
    lesion_logic = importlib.import_module("LiverMetsReviewSlicer.lesion_logic")
    with pytest.raises(LiverMetsError, match=r"'dwi\d' is moved by a warping .*'Warp'.*outlined on its grid" + HARDEN):
        lesion_logic.sceneStudy()


@pytest.mark.parametrize("seed", range(3))
def test_the_series_table_shows_the_grid_the_sections_compute_on(scene, seed):
    """The Study section's grid column under a transform that scales (an affine registration): the voxel size of
    the image the sections pull, not the node's own; a warped series says it is left out."""
    volumes = importlib.import_module("LiverMetsReviewSlicer.volumes")
    rng = np.random.default_rng(seed)
    image = _oblique_image(rng)
    to_world = _rigid(rng)
    to_world[:3, :3] = to_world[:3, :3] @ np.diag(rng.uniform(1.3, 1.6, 3))  # a registration that scales by 30-60 %
    node = Volume(image, "t2", {}, Transform(to_world))
    size = "x".join(str(n) for n in image.GetSize())
    shown = volumes.pullImage(node).GetSpacing()
    assert volumes.gridSummary(node) == "{}, {:.2g}x{:.2g}x{:.2g} mm".format(size, *shown)
    node.transform = Transform(None, "BSpline T2->HBP")
    assert volumes.gridSummary(node) == f"{size}, warped by 'BSpline T2->HBP': left out until hardened"


def test_report_keeps_no_checklist_values_measured_without_a_series(scene, monkeypatch):
    """The report measures the lesions as they are and stores the checklist's values on each segment; measured with a
    series left out, the tag is emptied instead (the checklist then measures again, once the transform is hardened)."""
    from LiverMetsReviewLib.lesions import one_lesion, viewer_lesions

    report_scene = importlib.import_module("LiverMetsReviewSlicer.report_scene")
    nodes = importlib.import_module("LiverMetsReviewSlicer.lesion_nodes")

    class Segment:
        def __init__(self) -> None:
            self.tags = {report_scene.MEASUREMENTS: '{"values": {"adc_median": 1200}}'}

        def SetTag(self, key, value):  # noqa: N802
            self.tags[key] = value

        def GetName(self):  # noqa: N802
            return "L1"

    segment = Segment()
    segmentation = types.SimpleNamespace(GetSegment=lambda sid: segment)
    node = types.SimpleNamespace(GetSegmentation=lambda: segmentation)
    monkeypatch.setattr(report_scene, "_segmentIdOf", lambda node, lesion_id: "L1")
    monkeypatch.setattr(viewer_lesions, "checklist_values", lambda review: {"L1": {"values": {"adc_median": 1100}}})
    monkeypatch.setattr(one_lesion, "key_measures", lambda measures: {})
    monkeypatch.setattr(one_lesion, "mask_digest", lambda mask: "digest")
    monkeypatch.setattr(nodes, "storeMeasures", lambda *args: None)
    monkeypatch.setattr(nodes, "updateDiameterLines", lambda *args: None)
    lesion = types.SimpleNamespace(seed=types.SimpleNamespace(label="L1"), measures=None, mask=None)
    written = types.SimpleNamespace(review=types.SimpleNamespace(lesions=[lesion]))

    report_scene._storeOnScene(node, written)
    assert "1100" in segment.tags[report_scene.MEASUREMENTS]
    report_scene._storeOnScene(node, written, complete=False)
    assert segment.tags[report_scene.MEASUREMENTS] == ""


class _Observed(Volume):
    """A volume node whose parent transform can be set later, firing TransformModifiedEvent as
    vtkMRMLTransformableNode::SetAndObserveTransformNodeID does (and HardenTransform, which sets it to none)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.observers: dict[int, tuple] = {}

    def AddObserver(self, event, callback):  # noqa: N802
        self.observers[len(self.observers) + 1] = (event, callback)
        return len(self.observers)

    def RemoveObserver(self, tag):  # noqa: N802
        self.observers.pop(tag, None)

    def SetAndObserveTransformNodeID(self, transform):  # noqa: N802 - the stand-in takes the transform itself
        self.transform = transform
        for event, callback in list(self.observers.values()):
            if event == "TransformModifiedEvent":
                callback(self, event)


def test_the_series_table_follows_a_transform_set_after_loading(scene, monkeypatch):
    """A registration's transform put on a series after the table was built (or hardened later): the grid column
    is rebuilt then, not left showing the grid the series had when it was loaded."""
    slicer = sys.modules["slicer"]
    slicer.vtkMRMLTransformableNode = types.SimpleNamespace(TransformModifiedEvent="TransformModifiedEvent")
    slicer.i18n = types.ModuleType("slicer.i18n")
    slicer.i18n.tr = lambda text: text
    slicer.parameterNodeWrapper = types.ModuleType("slicer.parameterNodeWrapper")
    slicer.parameterNodeWrapper.parameterPack = lambda cls: cls
    slicer.parameterNodeWrapper.Choice = slicer.parameterNodeWrapper.WithinRange = lambda *args: args
    qt = types.ModuleType("qt")
    qt.single_shots = []
    qt.QTimer = types.SimpleNamespace(singleShot=lambda msec, callback: qt.single_shots.append(callback))
    qt.Qt = types.SimpleNamespace(UserRole=32, ItemIsSelectable=1, ItemIsEnabled=32)
    qt.QTableWidgetItem = lambda text: types.SimpleNamespace(text=text, setData=lambda *a: None,
                                                              setFlags=lambda *a: None, setToolTip=lambda *a: None)
    for name, module in {"qt": qt, "slicer.i18n": slicer.i18n, "slicer.parameterNodeWrapper":
                         slicer.parameterNodeWrapper, "ctk": types.ModuleType("ctk")}.items():
        monkeypatch.setitem(sys.modules, name, module)
    study_section = importlib.import_module("LiverMetsReviewSlicer.study_section")

    cells: dict[tuple, str] = {}
    table = types.SimpleNamespace(setRowCount=lambda n: None, setCellWidget=lambda *a: None,
                                  resizeColumnsToContents=lambda: None,
                                  setItem=lambda row, col, item: cells.__setitem__((row, col), item.text))
    image = _oblique_image(np.random.default_rng(3))
    node = _Observed(image, "t2", {ROLE: "t2"})
    section = study_section.StudySection()
    section.ui, section.logic = types.SimpleNamespace(seriesTableWidget=table), types.SimpleNamespace(
        seriesNodes=lambda: [node])
    monkeypatch.setattr(section, "_roleComboBox", lambda node: None)
    volumes = importlib.import_module("LiverMetsReviewSlicer.volumes")

    section.refresh()
    assert cells[(0, 2)] == volumes.gridSummary(node)
    to_world = np.eye(4)
    to_world[:3, :3] = np.diag([1.5, 1.5, 1.5])  # the registration scales the series by half again
    node.SetAndObserveTransformNodeID(Transform(to_world))
    while qt.single_shots:
        qt.single_shots.pop(0)()
    spacing = np.array(image.GetSpacing()) * 1.5
    assert cells[(0, 2)].endswith("{:.2g}x{:.2g}x{:.2g} mm".format(*spacing))
    node.SetAndObserveTransformNodeID(Transform(None, "Warp"))
    while qt.single_shots:
        qt.single_shots.pop(0)()
    assert cells[(0, 2)].endswith("warped by 'Warp': left out until hardened")
