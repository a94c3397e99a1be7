"""review.json: answers saved at once, reopened exactly, survive SIGKILL, corrupt sidecar restored from .bak,
older checklist versions read with vanished items reported; and the CLI end to end on a small phantom."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import MODULE_DIR
from LiverMetsReviewLib.checklist import review
from LiverMetsReviewLib.checklist.store import ReviewSession

LESIONS = [{"id": "m1", "values": {"lesion.adc.lesion.median": 900.0, "lesion.adc.reference.median": 1300.0,
                                   "lesion.dwi_high_b.ratio": 1.8, "lesion.t1_hepatobiliary.ratio": 0.5}},
           {"id": "m2", "values": {"lesion.t2.ratio": 5.0, "lesion.re_portal_venous.lesion.median": 2.0}}]
ANSWERS = [("m1", "diffusion_restriction", "no", "motion on DWI"), ("study", "registration_quality", "yes", ""),
           ("m2", "cyst", "yes", ""), ("m1", "hbp_hypointense", "indeterminate", "faint")]


def compute(answers):
    return review(LESIONS, {}, None, answers)


def session(path: Path) -> ReviewSession:
    return ReviewSession(path, compute, ["m1", "m2"])


def test_round_trip_restores_every_answer_and_the_impression(tmp_path):
    s = session(tmp_path / "review.json")
    for scope, item, answer, note in ANSWERS:
        s.answer(scope, item, answer, note)
    again = session(tmp_path / "review.json")
    assert again.answers == s.answers and again.notes == []
    assert again.document()["lesions"] == s.document()["lesions"]
    doc = json.loads((tmp_path / "review.json").read_text())
    m1 = next(les for les in doc["lesions"] if les["id"] == "m1")
    row = next(i for i in m1["items"] if i["id"] == "diffusion_restriction")
    assert (row["answer"], row["note"], row["suggested"]) == ("no", "motion on DWI", "yes")
    assert m1["impression"]["category"] == "indeterminate"  # the override moved it (one hallmark left)


def test_bad_answer_is_one_sentence(tmp_path):
    s = session(tmp_path / "review.json")
    with pytest.raises(Exception, match="not one of"):
        s.answer("m1", "cyst", "maybe")
    with pytest.raises(Exception, match="not a lesion item"):
        s.answer("m1", "pseudocirrhosis", "yes")
    with pytest.raises(Exception, match="not in this review"):
        s.answer("m9", "cyst", "yes")


def test_corrupt_sidecar_is_reported_and_the_last_good_one_kept(tmp_path):
    path = tmp_path / "review.json"
    s = session(path)
    s.answer("m1", "cyst", "no")
    s.answer("m2", "cyst", "yes")  # .bak now holds the state with one answer
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # truncated
    again = session(path)
    assert any("damaged" in n for n in again.notes)
    assert again.answers["m1"]["cyst"]["answer"] == "no"
    assert (tmp_path / "review.json.corrupt").read_text() == text[: len(text) // 2]
    assert json.loads(path.read_text())["format"] == "livermets-review"


def test_older_checklist_version_keeps_answers_and_reports_vanished_items(tmp_path):
    path = tmp_path / "review.json"
    s = session(path)
    s.answer("m1", "cyst", "no")
    doc = json.loads(path.read_text())
    doc["checklist_version"] = "0.9.0"
    doc["answers"]["m1"]["retired_item"] = {"answer": "yes", "note": ""}
    path.write_text(json.dumps(doc))
    again = session(path)
    assert again.answers["m1"]["cyst"]["answer"] == "no"
    assert again.vanished == {"m1": {"retired_item": {"answer": "yes", "note": ""}}}
    assert any("0.9.0" in n for n in again.notes) and any("retired_item" in n for n in again.notes)


CHILD = textwrap.dedent("""
    import sys, json
    sys.path.insert(0, {module!r})
    sys.path.insert(0, {tests!r})
    from test_checklist_store import session, ANSWERS
    from pathlib import Path
    s = session(Path({path!r}))
    for scope, item, answer, note in ANSWERS:
        s.answer(scope, item, answer, note)
        print("saved", item, flush=True)
        sys.stdin.readline()  # wait for the parent, which kills us here
""")


def test_sigkill_after_each_answer_loses_none(tmp_path):
    path = tmp_path / "review.json"
    code = CHILD.format(module=str(MODULE_DIR), tests=str(Path(__file__).parent), path=str(path))
    for k in range(1, len(ANSWERS) + 1):
        path.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(k):
            assert proc.stdout.readline().startswith("saved")
            if _ < k - 1:
                proc.stdin.write("\n")
                proc.stdin.flush()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        got = session(path).answers
        for scope, item, answer, note in ANSWERS[:k]:
            assert got[scope][item] | {"at": None} == {"answer": answer, "note": note, "at": None}
