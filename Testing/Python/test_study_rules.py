"""The classifier's rules as data: description keywords (vendor names), confidence tiers, and the two role files.

Truth here is the vendors' console names (GE LAVA-Flex, IDEAL IQ; Philips eTHRIVE, mDIXON-Quant, dADC),
which words they contain, and the stated semantics of ``role_rules.json`` (tier order, conflict margin).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.resources import load_json
from LiverMetsReviewLib.roles import role_ids
from LiverMetsReviewLib.study import classify
from LiverMetsReviewLib.study.classify import keyword, load_overrides, normalise_text, overrides_from_study_index

RULES = load_json("role_rules.json")


def _series(description: str, protocol: str = "") -> SimpleNamespace:
    return SimpleNamespace(description=description, protocol_name=protocol)


# ------------------------------------------------------------------------------------------ keywords
@pytest.mark.parametrize("text, want", [
    ("mDIXON-Quant_BH", "mdixon quant bh"),
    ("Ax LAVA-Flex  ART", "ax lava flex art"),
    ("ep2d_diff__b50-800", "ep2d diff b50 800"),
    ("  T2W_SPAIR ", "t2w spair"),
])
def test_normalise_text(text, want):
    assert normalise_text(text) == want


@pytest.mark.parametrize("description, family, word", [
    ("eTHRIVE_BH_ART", "t1_dynamic", "ethrive"),       # Philips dynamic
    ("e-THRIVE_BH_PV", "t1_dynamic", "thrive"),  # the hyphen splits words
    ("THRIVE_pre", "t1_dynamic", "thrive"),
    ("mDIXON-Quant_BH", "multi_echo_gre", "mdixon quant"),  # Philips PDFF
    ("Ax IDEAL IQ BH", "multi_echo_gre", "ideal iq"),      # GE PDFF
    ("dADC_DWI_b50-400-800", "adc", "dadc"),                # Philips derived ADC
    ("ADC (10^-6 mm2/s):Ax DWI", "adc", "adc"),             # GE inline ADC
    ("Ax LAVA-Flex ART", "dixon", "lava flex"),             # only the two words together are a Dixon word
    ("WATER: Ax LAVA-Flex", "dixon", "lava flex"),
    ("T1_mDIXON_BH", "dixon", "mdixon"),
    ("Ax LAVA-Flex ART", "t1_arterial", "art"),
    ("eTHRIVE_BH_3MIN", "t1_transitional", "3min"),
    ("Ax LAVA-Flex 3 MIN", "t1_transitional", "3 min"),
    ("pre-contrast vibe", "pre", "pre"),
    ("T2W_SPAIR", "fat_suppressed", "spair"),
])
def test_vendor_descriptions_hit_their_family(description, family, word):
    assert keyword(_series(description), family) == word


@pytest.mark.parametrize("description, family", [
    ("Ax FLEX T1", "dixon"),             # 'flex' alone never says Dixon
    ("Flex_coil_survey", "dixon"),
    ("ADCdwi", "dwi"),                   # 'dwi' must start a word
    ("artefact check", "t1_arterial"),   # 3-letter words must end one ('art')
    ("T1_FFE_DUAL_ECHO", "t1_in_phase"),  # the word 'echo' is neither in nor opposed phase
    ("LIVER GADOXETATE", "t1_dynamic"),   # GE's exam protocol name says nothing about the series
])
def test_words_that_must_not_hit(description, family):
    assert keyword(_series(description), family) is None


def test_protocol_name_counts_too():
    assert keyword(_series("Ax 3D T1", protocol="eTHRIVE_BH_ART"), "t1_dynamic") == "ethrive"


def test_keywords_are_distinct_after_normalising():
    """Two spellings that normalise alike would be dead data; 'flex' alone must not be a Dixon word."""
    for family, words in RULES["keywords"].items():
        if family == "source":
            continue
        norm = [normalise_text(w) for w in words]
        assert len(norm) == len(set(norm)), family
    assert "flex" not in {normalise_text(w) for w in RULES["keywords"]["dixon"]}


# ------------------------------------------------------------------------------------------ confidences
def _results(expr: ast.expr) -> set[str]:
    """The strings an expression can evaluate to (a constant, or either branch of a conditional)."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _results(expr.body) | _results(expr.orelse)
    return set()


def _classifier_trees() -> list[ast.Module]:
    """Every module of the study package (the classifier is split in clues, families, dynamic and the combiner)."""
    files = sorted(Path(classify.__file__).parent.glob("*.py"))
    assert {"clues.py", "families.py", "dynamic.py", "classify.py"} <= {f.name for f in files}
    return [ast.parse(f.read_text(encoding="utf-8")) for f in files]


def _conf_names_in_code() -> set[str]:
    names = set()
    for node in (n for tree in _classifier_trees() for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_conf":
            names |= _results(node.args[0])
        # one call takes its name through a local variable
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "which" for t in node.targets):
            names |= _results(node.value)
    return names


def test_every_vote_confidence_is_data_and_used():
    conf = RULES["confidence"]
    in_code = _conf_names_in_code()
    assert in_code == set(conf["votes"]), (in_code ^ set(conf["votes"]))
    assert set(conf["votes"].values()) <= set(conf["tiers"])
    assert set(conf["tiers"]) == set(conf["votes"].values()), "a tier no vote uses"
    assert conf["source"] and all(t["rationale"] for t in conf["tiers"].values())


def test_tiers_are_ordered_and_above_the_floor():
    conf = RULES["confidence"]
    values = [t["value"] for t in conf["tiers"].values()]  # listed strongest first
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    assert min(values) > conf["min_confidence"] and max(values) <= 1.0


def test_no_numeric_confidence_left_in_the_classifier():
    """Every Vote takes its confidence from _conf (or a variable set from it), never a number literal."""
    votes = 0
    for node in (n for tree in _classifier_trees() for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Vote":
            votes += 1
            arg = node.args[1]
            assert not isinstance(arg, ast.Constant), ast.unparse(node)[:80]
    assert votes, "no Vote(...) call found in the study package: where did the classifier go?"


@pytest.mark.parametrize("a, b, close", [(0.9, 0.8, False), (0.95, 0.85, False), (0.8, 0.7, False),
                                         (0.95, 0.9, True), (0.85, 0.8, True), (0.7, 0.6, False)])
def test_conflict_margin_is_decimal(a, b, close):
    """Tiers exactly conflict_margin apart overrule each other whatever the float rounding of a - b."""
    assert classify._close(a, b, RULES["confidence"]["conflict_margin"]) is close


# ------------------------------------------------------------------------------------------ role files
def _index(*entries, classification=()):
    return {"format": "livermets-study-folder", "version": 1, "series": list(entries),
            "classification": list(classification)}


def _entry(role, **meta):
    return {"role": role, "files": [f"{role}.nrrd"], "stack_meta": [{}], "meta": meta}


def test_study_index_to_overrides():
    idx = _index(_entry("t2", series_uid="1.2.3", series_number=6),
                 _entry("t1_opposed_phase", series_uid="1.2.4", series_number=2, stack_indices=[0]),
                 _entry("t1_in_phase", series_uid="1.2.4", series_number=2, stack_indices=[1]),
                 _entry("dwi", series_number=7),
                 classification=[{"series_uid": "1.2.3", "series_number": 6, "role": "t2"},
                                 {"series_uid": "1.2.9", "series_number": 9, "role": "t1_pre"},
                                 {"series_uid": "1.2.7", "series_number": 7, "role": "dwi"}])
    assert overrides_from_study_index(idx) == {
        "1.2.3": "t2",
        "1.2.4": {0: "t1_opposed_phase", 1: "t1_in_phase"},
        "7": "dwi",
        "1.2.9": "unassigned",  # known to the index but not loaded: stays out
    }


@pytest.mark.parametrize("entries, match", [
    ([_entry("t2")], "lacks a role or a meta.series_uid"),
    ([{"files": [], "meta": {"series_uid": "1"}}], "lacks a role"),
    ([_entry("t1_in_phase", series_uid="1"), _entry("t1_opposed_phase", series_uid="1")], "stack_indices"),
    ([_entry("t1_in_phase", series_uid="1", stack_indices=[0]),
      _entry("t1_opposed_phase", series_uid="1", stack_indices=[0])], "listed by two entries"),
])
def test_study_index_problems_are_one_sentence(entries, match):
    with pytest.raises(LiverMetsError, match=match):
        overrides_from_study_index(_index(*entries))


def test_both_role_files_read_and_anything_else_names_both(tmp_path):
    (tmp_path / "o.json").write_text(json.dumps({"overrides": {"4": ["t1_opposed_phase", "t1_in_phase"]}}))
    assert load_overrides(tmp_path / "o.json") == {"4": ["t1_opposed_phase", "t1_in_phase"]}
    study = tmp_path / "study"
    study.mkdir()
    (study / "roles.json").write_text(json.dumps(_index(_entry("t2", series_number=6))))
    assert load_overrides(study / "roles.json") == load_overrides(study) == {"6": "t2"}
    for bad in ({"series": []}, {"format": "something-else", "series": []}, ["t2"]):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(LiverMetsError) as err:
            load_overrides(tmp_path / "bad.json")
        assert '"overrides"' in str(err.value) and "livermets-study-folder" in str(err.value)
    with pytest.raises(LiverMetsError, match="not found"):
        load_overrides(tmp_path / "absent.json")


def test_every_role_in_the_rules_exists():
    """Keyword families named after roles refer to real role ids."""
    roles = set(role_ids())
    role_like = [f for f in RULES["keywords"] if f.startswith("t1_") and f != "t1_dynamic"]
    assert role_like and set(role_like) <= roles
