"""Quantitative maps from the series in the scene: inputs found by role, computed by the core, pushed back.

The computations are the core's (``LiverMetsReviewLib.maps``, the same as ``livermets adc|fat|enhancement``).
Here: find the input volumes by their role attribute, pull them as SimpleITK images (LPS), push the results
with the core's metadata (quantity, units, method, masked voxels) as node attributes. Node names are the
pipeline's map names (``adc``, ``ff_chemical_shift``, ``sii``, ``ff_dixon``, ``pdff``, ``r2star``, ``re_<phase>``,
``sub_<phase>``), which the CLI, the demo and the hanging protocols use too.
"""

from __future__ import annotations

import json
from typing import Any

import slicer

from LiverMetsReviewLib.errors import MissingDataError

from . import attributes
from .volumes import pullImage, pushImage, showAutoWindowLevel

CONTRAST_PHASES = ("t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary")
ADC_METHODS = ("lls", "wls", "nlls")
# What a map needs its series for, in the message when a warping transform moves one: a map is computed from
# exactly its inputs, so none of them is left out (the Lesions and Checklist sections leave such a series out).
FAT_NEED, RE_NEED, ALIGN_NEED = "the fat fraction", "the relative enhancement", "the alignment"


def nodesByRole(role: str) -> list:
    """Scalar volumes whose role attribute is ``role``, in scene order."""
    return [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
            if not n.IsA("vtkMRMLLabelMapVolumeNode") and n.GetAttribute(attributes.ROLE) == role]


def _one(role: str, purpose: str):
    nodes = nodesByRole(role)
    if not nodes:
        raise MissingDataError(f"No series has the role '{role}', needed for {purpose}: load a study or set the "
                               "role in the series table.")
    return nodes[-1]  # the most recently loaded one


def _float_attribute(node, key: str) -> float | None:
    text = node.GetAttribute(key)
    return float(text) if text not in (None, "") else None


def latestPerValue(role: str, key: str) -> tuple[list, list]:
    """Per distinct value of attribute ``key`` (b-value, echo time) the most recent node of ``role``, sorted by value.

    A second phantom load or an aligned copy adds nodes with the same role and value; as ``_one`` does, the most
    recently loaded one wins, so a fit never sees one b-value (echo) twice. Returns (used, ignored) nodes.
    """
    latest: dict[float, Any] = {}
    ignored = []
    for node in nodesByRole(role):  # scene order: later nodes replace earlier ones
        value = _float_attribute(node, key)
        if value is None:
            continue
        if value in latest:
            ignored.append(latest[value])
        latest[value] = node
    return [latest[v] for v in sorted(latest)], ignored


def _inputs_note(used: list, ignored: list, label: str) -> str:
    """Which nodes went into a map (and which older duplicates did not): the reader sees what was fitted."""
    text = "Inputs: " + ", ".join(f"{n.GetName()} ({label} {_attribute_text(n)})" for n in used)
    if ignored:
        text += "; not used (an older node with the same value): " + ", ".join(n.GetName() for n in ignored)
    return text


def _attribute_text(node) -> str:
    value = _float_attribute(node, attributes.B_VALUE)
    if value is None:
        value = _float_attribute(node, attributes.ECHO_TIME_MS)
    return f"{value:g}" if value is not None else "?"


def setMapAttributes(node, meta: dict[str, Any]) -> None:
    """The core's per-output metadata as node attributes (strings; lists and dicts as JSON)."""
    for key, value in meta.items():
        node.SetAttribute(attributes.PREFIX + str(key), value if isinstance(value, str) else json.dumps(value))
    if "units" in meta:
        node.SetAttribute(attributes.UNITS, str(meta["units"]))
    node.SetAttribute(attributes.SOURCE, "map")


def mapDisplay(name: str) -> dict[str, Any] | None:
    """Display defaults of map ``name`` (colour node ID, range, units) from the core's map_display.json, or None.

    The demo figures read the same file, so a map looks the same in the PNG and in Slicer.
    """
    from LiverMetsReviewLib.resources import load_json

    data = load_json("map_display.json")
    entry = data["maps"].get(name)
    if entry is None:
        return None
    return {"colorNodeId": data["colour_tables"][entry["colour"]]["slicer_color_node_id"],
            "range": (float(entry["range"][0]), float(entry["range"][1])), "units": entry["units"]}


def applyMapDisplay(node, name: str) -> None:
    """Colour table and fixed window of a map (ADC 0-3000, fat fraction 0-50 %...); signal images keep auto W/L."""
    display = mapDisplay(name)
    if display is None:
        showAutoWindowLevel(node)
        return
    node.CreateDefaultDisplayNodes()
    displayNode = node.GetScalarVolumeDisplayNode()
    if not displayNode:
        return
    displayNode.SetAndObserveColorNodeID(display["colorNodeId"])
    low, high = display["range"]
    if high > low:
        displayNode.SetAutoWindowLevel(0)
        displayNode.SetWindowLevelMinMax(low, high)
    else:
        displayNode.AutoWindowLevelOn()


def coreProgress(function, progress) -> dict[str, Any]:
    """``{"progress": progress}`` when the core ``function`` takes a progress callback
    ``progress(fraction, message)``, else nothing: the Slicer side is ready before every core function is."""
    import inspect

    if progress is None:
        return {}
    try:
        takes = "progress" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        takes = False
    return {"progress": progress} if takes else {}


def _within(progress, low: float, high: float):
    """``progress`` with a core function's fractions 0..1 mapped onto ``low..high`` of the bar (the steps before it
    already moved the bar: it must not run backwards)."""
    if progress is None:
        return None

    def scaled(fraction: float | None, message: str = "") -> None:
        progress(None if fraction is None else low + (high - low) * float(fraction), message)

    return scaled


def _step(progress, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def _push(image, name: str, meta: dict[str, Any]):
    node = pushImage(image, name)
    setMapAttributes(node, meta)
    applyMapDisplay(node, name)
    return node


def computeAdc(method: str = "lls", progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """ADC (10^-6 mm^2/s) from the DWI stacks in the scene (one node per b-value, b from the attribute)."""
    from LiverMetsReviewLib.maps import fit_adc

    dwi, ignored = latestPerValue("dwi", attributes.B_VALUE)
    if len(dwi) < 2:
        raise MissingDataError("An ADC needs diffusion-weighted series at two or more b-values (role 'dwi' with a "
                               "b-value); load a study that has them.")
    _step(progress, 0.0, "Reading the diffusion-weighted series")
    images = [pullImage(n, "the ADC") for n in dwi]
    _step(progress, 0.2, "Fitting the ADC")
    result = fit_adc(images, [_float_attribute(n, attributes.B_VALUE) for n in dwi], method=method,
                     **coreProgress(fit_adc, progress))
    nodes = {"adc": _push(result.adc, "adc", result.metadata["adc"])}
    return nodes, _with_inputs(result.summary, _inputs_note(dwi, ignored, "b"))


def _with_inputs(summary: dict[str, Any], note: str) -> dict[str, Any]:
    """The core's summary plus which nodes were used, under 'inputs' (shown first by summaryText)."""
    return {**summary, "inputs": note}


def computeChemicalShiftFat(progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Signal fat fraction and SII (percent) from the in-phase / opposed-phase pair, echo times checked."""
    from LiverMetsReviewLib.maps import chemical_shift_fat

    ip = _one("t1_in_phase", "the chemical-shift fat fraction")
    op = _one("t1_opposed_phase", "the chemical-shift fat fraction")
    te_ip, te_op = _float_attribute(ip, attributes.ECHO_TIME_MS), _float_attribute(op, attributes.ECHO_TIME_MS)
    field = _float_attribute(ip, attributes.FIELD_STRENGTH_T)
    _step(progress, 0.0, "Computing the fat fraction")
    result = chemical_shift_fat(pullImage(ip, FAT_NEED), pullImage(op, FAT_NEED), field_strength_t=field,
                                echo_times_ms=(te_ip, te_op) if te_ip is not None and te_op is not None else None)
    nodes = {"ff_chemical_shift": _push(result.ff, "ff_chemical_shift", result.metadata["ff"])}
    if result.sii is not None:
        nodes["sii"] = _push(result.sii, "sii", result.metadata["sii"])
    return nodes, result.summary


def computeDixonFat(progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dixon fat fraction F / (W + F) in percent, with the core's fat-water swap warning."""
    from LiverMetsReviewLib.maps import dixon_fat

    _step(progress, 0.0, "Computing the fat fraction")
    result = dixon_fat(pullImage(_one("dixon_water", "the Dixon fat fraction"), FAT_NEED),
                       pullImage(_one("dixon_fat", "the Dixon fat fraction"), FAT_NEED))
    return {"ff_dixon": _push(result.ff, "ff_dixon", result.metadata["ff"])}, result.summary


def computePdff(progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Proton-density fat fraction (percent) and R2* (1/s) from the multi-echo GRE echoes (three or more)."""
    from LiverMetsReviewLib.maps.pdff import fit_pdff

    echoes, ignored = latestPerValue("multi_echo_gre", attributes.ECHO_TIME_MS)
    times = [_float_attribute(n, attributes.ECHO_TIME_MS) for n in echoes]
    if len(times) < 3:
        raise MissingDataError("PDFF needs one multi-echo GRE series with three or more echoes of distinct echo "
                               "times (role 'multi_echo_gre' with an echo time); load a study that has one.")
    field = _float_attribute(echoes[0], attributes.FIELD_STRENGTH_T)
    if field is None:
        raise MissingDataError("The multi-echo series has no field strength: PDFF needs it for the fat spectrum.")
    _step(progress, 0.0, "Reading the echoes")
    images = [pullImage(n, "PDFF") for n in echoes]
    _step(progress, 0.1, "Fitting PDFF and R2*")
    result = fit_pdff(images, times, field_strength_t=field, **coreProgress(fit_pdff, _within(progress, 0.1, 1.0)))
    nodes = {"pdff": _push(result.pdff, "pdff", result.metadata["pdff"]),
             "r2star": _push(result.r2star, "r2star", result.metadata["r2star"])}
    return nodes, _with_inputs(result.summary, _inputs_note(echoes, ignored, "TE ms"))


def computeEnhancement(phase: str = "t1_hepatobiliary", progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Relative enhancement (percent) and subtraction of a contrast phase against the pre-contrast T1."""
    from LiverMetsReviewLib.maps import relative_enhancement

    if phase not in CONTRAST_PHASES:
        raise MissingDataError(f"'{phase}' is not a contrast phase: choose one of {', '.join(CONTRAST_PHASES)}.")
    pre = _one("t1_pre", "the relative enhancement")
    post = _one(phase, "the relative enhancement")
    _step(progress, 0.0, "Computing the relative enhancement")
    result = relative_enhancement(pullImage(pre, RE_NEED), pullImage(post, RE_NEED), phase=phase)
    short = phase.removeprefix("t1_")
    nodes = {f"re_{short}": _push(result.re, f"re_{short}", result.metadata["re"]),
             f"sub_{short}": _push(result.subtraction, f"sub_{short}", result.metadata["subtraction"])}
    return nodes, result.summary


def alignSeries(fixedNode, movingNode, affine: bool = False, progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``movingNode`` registered to ``fixedNode`` (rigid, or affine) and resampled on its grid.

    The aligned copy keeps the moving series' role and acquisition attributes, so maps computed afterwards use
    it (the most recently loaded series of a role is the one used).
    """
    from LiverMetsReviewLib.maps import register

    if fixedNode is None or movingNode is None:
        raise MissingDataError("Choose the reference series and the series to align.")
    if fixedNode.GetID() == movingNode.GetID():
        raise MissingDataError("The reference and the series to align are the same: choose two different series.")
    _step(progress, 0.0, "Registering the series")
    result = register(pullImage(fixedNode, ALIGN_NEED), pullImage(movingNode, ALIGN_NEED), affine=affine,
                      **coreProgress(register, progress))
    name = f"{movingNode.GetName()}_aligned"
    node = pushImage(result.resampled, name)
    for key in (attributes.ROLE, attributes.B_VALUE, attributes.ECHO_TIME_MS, attributes.FIELD_STRENGTH_T,
                attributes.DESCRIPTION):
        value = movingNode.GetAttribute(key)
        if value is not None:
            node.SetAttribute(key, value)
    setMapAttributes(node, result.metadata)
    node.SetAttribute(attributes.SOURCE, "aligned")
    node.SetAttribute(attributes.PREFIX + "AlignedTo", fixedNode.GetName())
    showAutoWindowLevel(node)
    return {name: node}, result.summary


def summaryText(summary: dict[str, Any]) -> str:
    """A few lines for the reader: masked voxels, alignment quality and every warning (never hidden)."""
    lines = [summary["inputs"]] if summary.get("inputs") else []
    if "masked_voxels" in summary:
        lines.append(f"Masked voxels: {summary['masked_voxels']}")
    if "ncc_before" in summary and "ncc_after" in summary:
        lines.append(f"Correlation with the reference: {summary['ncc_before']:.3f} before, "
                     f"{summary['ncc_after']:.3f} after alignment")
    lines += [f"Warning: {w}" for w in summary.get("warnings", [])]
    lines += [f"Note: {n}" for n in summary.get("notes", [])]
    return "\n".join(lines)
