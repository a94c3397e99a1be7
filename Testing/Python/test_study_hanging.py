"""Hanging protocols: every shipped protocol against the phantom's roles and maps, and how plans degrade.

Ground truth: the phantom knows every series' role and b-values; the map names are those the study pipeline
actually writes for it; the expected grids and choices are the protocol definitions in the issue.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.resources import load_json
from LiverMetsReviewLib.study.hanging import (
    available_from_series,
    builtin_protocols,
    choose_layout,
    load_protocols,
    protocol_choices,
    protocol_ids,
    validate_protocols,
)

generate = pytest.importorskip("LiverMetsReviewLib.phantom.generate", reason="phantom generator not available yet")
pipeline = pytest.importorskip("LiverMetsReviewLib.pipeline", reason="study pipeline not available yet")

SLICER_MAPS = Path(__file__).resolve().parents[2] / "LiverMetsReview" / "LiverMetsReviewSlicer" / "maps.py"


@pytest.fixture(scope="module")
def phantom():
    study = generate.generate_phantom(seed=0, size="small")
    maps = pipeline.compute_study_maps(study.series)
    return study, maps


@pytest.fixture(scope="module")
def available(phantom):
    study, maps = phantom
    return available_from_series(study.series, maps.images)


def _first_choice(protocol_id: str, k: int) -> str:
    proto = next(p for p in builtin_protocols()["protocols"] if p["id"] == protocol_id)
    return proto["viewports"][k]["show"][0]["source"]


def test_protocol_map_names_are_written_by_the_pipeline_and_the_slicer_module(phantom):
    _, maps = phantom
    assert not maps.skipped, maps.skipped
    table = load_json("hanging_protocols.json")["maps"]["names"]
    assert set(table) <= set(maps.images), set(table) - set(maps.images)
    slicer_source = SLICER_MAPS.read_text(encoding="utf-8") if SLICER_MAPS.exists() else None
    for name, entry in table.items():
        if slicer_source is not None:  # the Slicer module names its map nodes like the pipeline (or an alias)
            assert any(f'"{n}"' in slicer_source or f'f"{n.split("_")[0]}_{{short}}"' in slicer_source
                       for n in [name, *entry["aliases"]]), f"map {name} is not a node name in {SLICER_MAPS}"


@pytest.mark.parametrize("pid,grid", [("dynamic", (1, 4)), ("diffusion", (1, 3)), ("chemical_shift", (1, 3)),
                                      ("overview", (2, 2)), ("lesion_review", (2, 3)), ("subtraction", (1, 3))])
def test_every_protocol_resolves_fully_on_the_phantom(available, phantom, pid, grid):
    study, _ = phantom
    plan = choose_layout(pid, available)
    assert (plan.rows, plan.cols) == grid and plan.n_viewports == grid[0] * grid[1]
    assert plan.linked
    assert not plan.missing, plan.text()
    assert [(v.row, v.col) for v in plan.viewports] == [divmod(k, grid[1]) for k in range(plan.n_viewports)]
    roles = {s.role for s in study.series}
    max_b = max(next(s for s in study.series if s.role == "dwi").b_values)
    for k, v in enumerate(plan.viewports):
        assert not v.fallback and v.source == _first_choice(pid, k), v
        if v.source in roles:
            assert v.node_id.startswith(v.source)
        else:
            assert v.node_id == f"map:{v.source}"
        if v.source == "dwi":
            assert v.stack_meta["b_value"] == max_b
        assert v.orientation == "Axial"
    assert len(set(plan.shown.values())) == plan.n_viewports  # nothing shown twice


def test_protocol_contents_follow_the_issue(available):
    def sources(pid):
        return [v.source for v in choose_layout(pid, available).viewports]

    assert sources("dynamic") == ["t1_pre", "t1_arterial", "t1_portal_venous", "t1_hepatobiliary"]
    assert sources("diffusion") == ["dwi", "adc", "t2"]
    assert sources("chemical_shift") == ["t1_in_phase", "t1_opposed_phase", "ff_chemical_shift"]
    assert sources("overview") == ["t2", "dwi", "t1_arterial", "t1_hepatobiliary"]
    assert sources("lesion_review") == ["t2", "dwi", "adc", "t1_arterial", "t1_portal_venous", "t1_hepatobiliary"]


def test_missing_role_falls_back_or_leaves_viewport_empty_with_reason(available):
    av = {k: v for k, v in available.items() if k not in ("t1_portal_venous", "adc")}
    lesion = choose_layout("lesion_review", av)
    pv, adc = lesion.viewports[4], lesion.viewports[2]
    assert pv.source == "t1_transitional" and pv.fallback and "t1_portal_venous" in pv.reason
    assert adc.source == "adc_scanner" and adc.fallback and "'adc' map" in adc.reason
    dyn = choose_layout("dynamic", av)
    assert [v.index for v in dyn.missing] == [2]
    assert dyn.viewports[2].node_id is None and "t1_portal_venous" in dyn.viewports[2].reason
    assert [v.node_id for v in dyn.viewports if not v.empty] == ["t1_pre", "t1_arterial", "t1_hepatobiliary"]


def test_empty_study_gives_the_full_grid_with_reasons():
    for pid in protocol_ids():
        plan = choose_layout(pid, {})
        assert len(plan.missing) == plan.n_viewports == plan.rows * plan.cols
        for v in plan.viewports:
            assert v.reason.startswith("nothing to show: ") and ("no series with role" in v.reason
                                                                 or "map (" in v.reason), v.reason


def test_high_b_selector_picks_the_largest_b_whatever_the_order():
    stacks = [(f"node{k}", {"b_value": b}) for k, b in enumerate((0.0, 500.0, 1000.0, 50.0))]
    picks = set()
    rng = random.Random(1)
    for _ in range(10):
        rng.shuffle(stacks)
        picks.add(choose_layout("diffusion", {"dwi": list(stacks)}).viewports[0].node_id)
    assert picks == {"node2"}


def test_high_b_selector_rejects_a_low_b_only_dwi():
    plan = choose_layout("diffusion", {"dwi": [("a", {"b_value": 0}), ("b", {"b_value": 50})], "t2": ["t2node"]})
    v = plan.viewports[0]
    assert v.empty and "50" in v.reason and "400" in v.reason
    no_b = choose_layout("diffusion", {"dwi": [("a", {}), ("b", {})]}).viewports[0]
    assert no_b.empty and "b-value" in no_b.reason


def test_map_alias_is_understood():
    doc = {"maps": {"names": {"ff_chemical_shift": {"label": "FF", "aliases": ["fat_fraction_chemical_shift"]}}},
           "protocols": [{"id": "ff", "rows": 1, "cols": 1, "viewports": [{"show": ["ff_chemical_shift"]}]}]}
    plan = choose_layout("ff", {"fat_fraction_chemical_shift": ["vtkMRMLScalarVolumeNode7"]}, validate_protocols(doc))
    assert plan.viewports[0].node_id == "vtkMRMLScalarVolumeNode7" and plan.viewports[0].source == "ff_chemical_shift"


def test_plan_is_deterministic_and_independent_of_role_order(available):
    keys = list(available)
    for pid in protocol_ids():
        ref = choose_layout(pid, available)
        assert choose_layout(pid, available) == ref
        for seed in range(3):
            random.Random(seed).shuffle(keys)
            assert choose_layout(pid, {k: available[k] for k in keys}) == ref
        json.dumps(ref.to_dict(), allow_nan=False)


def test_an_image_is_not_shown_twice_unless_allowed():
    doc = {"protocols": [{"id": "twice", "rows": 1, "cols": 2, "viewports": [
        {"label": "A", "show": ["t2"]}, {"label": "B", "show": ["t2"]}]}]}
    plan = choose_layout("twice", {"t2": ["x"]}, validate_protocols(doc))
    assert plan.viewports[0].node_id == "x" and plan.viewports[1].empty
    assert "already shown in viewport 1" in plan.viewports[1].reason
    doc["protocols"][0]["viewports"][1]["allow_repeat"] = True
    assert choose_layout("twice", {"t2": ["x"]}, validate_protocols(doc)).shown == {0: "x", 1: "x"}
    # a second image of the role is used instead of repeating the first
    assert choose_layout("twice", {"t2": ["x", "y"]}, validate_protocols(
        {"protocols": [{"id": "twice", "rows": 1, "cols": 2, "viewports": [
            {"show": ["t2"]}, {"show": ["t2"]}]}]})).shown == {0: "x", 1: "y"}


def test_protocol_choices_count_filled_viewports(available):
    only_dynamic = {k: available[k] for k in ("t1_pre", "t1_arterial", "t1_portal_venous", "t1_hepatobiliary")}
    choices = {pid: (filled, n) for pid, _, filled, n in protocol_choices(only_dynamic)}
    assert choices["dynamic"] == (4, 4)
    assert choices["diffusion"] == (0, 3)
    assert choices["lesion_review"] == (3, 6)
    assert choices["subtraction"] == (2, 3)


@pytest.mark.parametrize("bad,words", [
    ({"protocols": []}, "expected"),
    ({"protocols": [{"id": "x", "rows": 1, "cols": 2, "viewports": [{"show": ["t2"]}]}]}, "needs 2 viewports"),
    ({"protocols": [{"id": "x", "rows": 1, "cols": 1, "viewports": [{"show": ["t3"]}]}]}, "'t3' is neither"),
    ({"protocols": [{"id": "x", "rows": 1, "cols": 1, "viewports": [{"show": [{"source": "dwi", "stack": "top"}]}]}]},
     "'top' is not defined"),
    ({"protocols": [{"id": "x", "rows": 1, "cols": 1, "viewports": [
        {"show": [{"source": "dwi", "stack": {"pick": "median", "key": "b_value"}}]}]}]}, "stack selector"),
    ({"protocols": [{"id": "x", "rows": 1, "cols": 1, "viewports": [{"show": ["t2"], "orientation": "Oblique"}]}]},
     "orientation"),
    ({"protocols": [{"id": "x", "rows": 1, "cols": 1, "viewports": [{"show": ["t2"]}]},
                    {"id": "x", "rows": 1, "cols": 1, "viewports": [{"show": ["t2"]}]}]}, "used twice"),
])
def test_bad_protocol_documents_are_refused(bad, words):
    with pytest.raises(LiverMetsError, match=words):
        validate_protocols(bad)


def test_bad_calls_are_refused(tmp_path):
    with pytest.raises(LiverMetsError, match="unknown hanging protocol 'nope'; choose one of dynamic"):
        choose_layout("nope", {})
    with pytest.raises(LiverMetsError, match="each entry must be an id"):
        choose_layout("dynamic", {"t1_pre": [42]})
    with pytest.raises(LiverMetsError, match="must be a mapping"):
        choose_layout("dynamic", [("t1_pre", "x")])
    path = tmp_path / "p.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(LiverMetsError, match="not valid JSON"):
        load_protocols(path)
    with pytest.raises(LiverMetsError, match="not found: give the path of a hanging protocols file"):
        load_protocols(tmp_path / "absent.json")


def test_site_protocol_file_round_trip(tmp_path):
    path = tmp_path / "site.json"
    path.write_text(json.dumps({"protocols": [{"id": "hbp_vs_dwi", "rows": 1, "cols": 2, "linked": False,
                                               "viewports": [{"label": "HBP", "show": ["t1_hepatobiliary"]},
                                                             {"label": "DWI", "show": [
                                                                 {"source": "dwi",
                                                                  "stack": {"pick": "min", "key": "b_value"}}]}]}]}),
                    encoding="utf-8")
    protos = load_protocols(path)
    plan = choose_layout("hbp_vs_dwi", {"t1_hepatobiliary": ["h"], "dwi": [("d8", {"b_value": 800}),
                                                                           ("d0", {"b_value": 0})]}, protos)
    assert plan.shown == {0: "h", 1: "d0"} and not plan.linked and plan.arrangement == "1x2"
    raw = json.loads(path.read_text(encoding="utf-8"))  # an unvalidated document is validated on use
    assert choose_layout("hbp_vs_dwi", {"t1_hepatobiliary": ["h"]}, raw).shown == {0: "h"}
