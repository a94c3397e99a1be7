"""clinical_context.json: the format validates what rules read, errors are one sentence naming the file."""

from __future__ import annotations

import copy
import json

import pytest

from LiverMetsReviewLib.context import (
    clinical_context_document,
    has_agent_class,
    read_clinical_context,
    validate_clinical_context,
    write_clinical_context,
)
from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.phantom.scenarios import get_scenario, scenario_names

GOOD = {
    "format": "livermets-clinical-context", "version": 1, "study_date": "2026-03-10",
    "primary_tumour": "colorectal", "primary_tumour_detail": None,
    "systemic_therapies": [{"regimen": "FOLFOX", "agents": ["oxaliplatin", "fluorouracil"],
                            "start": "2025-03-01", "end": "2025-08-15"}],
    "locoregional_therapies": [{"id": "mwa_1", "type": "MWA", "date": "2025-10-20", "target": None,
                                "lesion": None}],
    "bilirubin_umol_l": 12.0, "known_steatosis": False, "prior_study_date": None,
}


@pytest.mark.parametrize("scenario", scenario_names())
def test_every_scenario_context_validates_and_round_trips(tmp_path, scenario):
    doc = clinical_context_document(get_scenario(scenario)["clinical_context"])
    path = write_clinical_context(doc, tmp_path / "clinical_context.json")
    assert read_clinical_context(path) == json.loads(json.dumps(doc))


def test_agent_classes_come_from_the_vocabulary():
    assert has_agent_class(GOOD, "platinum") and not has_agent_class(GOOD, "irinotecan")
    with pytest.raises(LiverMetsError, match="agent class 'chemo' is unknown"):
        has_agent_class(GOOD, "chemo")


def _broken(**changes):
    doc = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is KeyError:
            del doc[key]
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize("changes,message", [
    ({"format": "other"}, "is this a clinical context file"),
    ({"version": 7}, "version 7 is not supported"),
    ({"bilirubin_umol_l": KeyError}, "lacks bilirubin_umol_l"),
    ({"study_date": "10.03.2026"}, "not a date; write it as YYYY-MM-DD"),
    ({"primary_tumour": "colon"}, "primary_tumour 'colon' is unknown"),
    ({"bilirubin_umol_l": -3}, "give total bilirubin in umol/L"),
    ({"known_steatosis": "yes"}, "write true, false or null"),
    ({"prior_study_date": "2026-04-01"}, "after the study date"),
    ({"systemic_therapies": [{"regimen": "x", "agents": [], "start": "2025-01-01", "end": None}]},
     "non-empty list of agent names"),
    ({"systemic_therapies": [{"regimen": "x", "agents": ["Oxaliplatin"], "start": "2025-01-01", "end": None}]},
     "lower case"),
    ({"systemic_therapies": [{"regimen": "x", "agents": ["oxaliplatin"], "start": "2025-05-01",
                              "end": "2025-01-01"}]}, "ends (2025-01-01) before it starts"),
    ({"locoregional_therapies": [{"id": "a", "type": "laser", "date": "2025-01-01"}]}, "type 'laser'"),
    ({"locoregional_therapies": [{"id": "a", "type": "RFA", "date": "2027-01-01"}]}, "after the study date"),
    ({"locoregional_therapies": [{"id": "a", "type": "RFA", "date": "2025-01-01"},
                                 {"id": "a", "type": "TACE", "date": "2025-02-01"}]}, "no other locoregional"),
])
def test_bad_context_one_sentence_naming_the_file(tmp_path, changes, message):
    path = tmp_path / "ctx.json"
    path.write_text(json.dumps(_broken(**changes)))
    with pytest.raises(LiverMetsError) as err:
        read_clinical_context(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_unreadable_files(tmp_path):
    with pytest.raises(LiverMetsError, match="not found"):
        read_clinical_context(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(LiverMetsError, match="not valid JSON"):
        read_clinical_context(tmp_path / "bad.json")
    with pytest.raises(LiverMetsError, match="must be a JSON object"):
        validate_clinical_context([1, 2])
