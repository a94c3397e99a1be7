"""The digital phantom in the scene: generate it with the core, push every stack and the ground truth.

Nothing is downloaded: the phantom is computed locally by ``LiverMetsReviewLib.phantom`` (deterministic for
a seed), so the Sample Data entry and the module's "Generate phantom" button give identical studies.
"""

from __future__ import annotations

from typing import Any

import slicer

from LiverMetsReviewLib.resources import load_json
from LiverMetsReviewLib.series import Series

from . import attributes
from .layouts import showStudy
from .segmentations import importLabelmapSegmentation
from .volumes import pushImage, showAutoWindowLevel

SEGMENTATION_KEY = "ground_truth"
COUINAUD_KEY = "couinaud"
BACKGROUND_ROLES = ("t1_hepatobiliary", "t1_portal_venous", "t2")  # shown first after loading, if present


def phantomScenarioNames() -> list[str]:
    """Scenario ids from the phantom's scenario catalogue (data, not code), the default first."""
    from LiverMetsReviewLib.phantom.scenarios import scenario_names

    names = scenario_names()
    default = defaultScenario()
    return [default] + [n for n in names if n != default] if default in names else names


def phantomScenarioLabels(names: list[str]) -> list[str]:
    """The catalogue's human label of each scenario id (the id when it has none)."""
    from LiverMetsReviewLib.phantom.scenarios import describe_scenarios

    labels = {s["id"]: s["label"] for s in describe_scenarios()}
    return [labels.get(n, n) for n in names]


def defaultScenario() -> str:
    """The scenario the catalogue marks as default."""
    return str(load_json("phantom_scenarios.json").get("default", "normal"))


def stackNodeName(series: Series, index: int) -> str:
    """``<role>`` for a one-stack series, ``dwi_b800`` per b-value, ``multi_echo_gre_e3`` per echo."""
    if len(series.stacks) == 1:
        return series.role
    meta = series.stack_meta[index]
    if "b_value" in meta:
        return f"{series.role}_b{float(meta['b_value']):g}"
    return f"{series.role}_e{index + 1}"


def loadSeries(seriesList: list[Series], source: str) -> dict[str, slicer.vtkMRMLScalarVolumeNode]:
    """One scalar volume node per stack, with role and acquisition attributes; keys are node names."""
    nodes: dict[str, Any] = {}
    for series in seriesList:
        for index, stack in enumerate(series.stacks):
            name = stackNodeName(series, index)
            if name in nodes:  # two series with one role: keep both, visibly
                name = f"{name}_{len(nodes)}"
            node = pushImage(stack, name)
            attributes.setSeriesAttributes(node, series.role, series.stack_meta[index], series.meta, source)
            showAutoWindowLevel(node)
            nodes[name] = node
    return nodes


def loadPhantomStudy(study: Any, name: str = "LiverMetsPhantom", show: bool = True) -> dict[str, Any]:
    """Push a ``PhantomStudy`` (series, labelmap, segments) into the scene.

    Returns the loaded nodes by name; the ground-truth segmentation (organs and lesions) is under
    ``"ground_truth"``, the Couinaud segments (hidden at first) under ``"couinaud"``.
    """
    nodes: dict[str, Any] = loadSeries(study.series, source="phantom")
    segmentationNode = importLabelmapSegmentation(study.labelmap, study.segments, name + "_ground_truth")
    nodes[SEGMENTATION_KEY] = segmentationNode
    from LiverMetsReviewLib.phantom.truth import couinaud_segments

    nodes[COUINAUD_KEY] = importLabelmapSegmentation(study.couinaud, couinaud_segments(), name + "_couinaud")
    nodes[COUINAUD_KEY].GetDisplayNode().SetVisibility(False)  # on request: it would hide the lesions
    if show:
        background = next((nodes[r] for r in BACKGROUND_ROLES if r in nodes), None)
        showStudy(background)
    return nodes


def generatePhantomStudy(seed: int = 0, scenario: str = "normal", fieldStrength: float = 1.5,
                         size: str = "standard") -> Any:
    """The core's phantom (no scene involved): a ``PhantomStudy``."""
    from LiverMetsReviewLib.phantom import generate_phantom

    return generate_phantom(seed=int(seed), scenario=str(scenario), field_strength_t=float(fieldStrength),
                            size=str(size))
