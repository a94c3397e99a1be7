"""Files written by ``livermets phantom`` keep what the map commands need to check how they are used."""

from __future__ import annotations

import json

import pytest

from LiverMetsReviewLib.cli import main


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "-o", str(out), "--small", "--seed", "2"]) == 0
    return out


def test_swapped_in_and_opposed_phase_files_are_refused(study_dir, capsys):
    code = main(["fat", "--in-phase", str(study_dir / "t1_opposed_phase.nrrd"),
                 "--opposed-phase", str(study_dir / "t1_in_phase.nrrd"), "-o", str(study_dir / "ff_bad.nrrd")])
    assert code == 2
    assert "not an in-phase/opposed-phase pair" in capsys.readouterr().err
    assert not (study_dir / "ff_bad.nrrd").exists()


def test_right_pair_uses_field_strength_and_echo_times_from_the_files(study_dir, capsys):
    code = main(["fat", "--in-phase", str(study_dir / "t1_in_phase.nrrd"),
                 "--opposed-phase", str(study_dir / "t1_opposed_phase.nrrd"), "-o", str(study_dir / "ff.nrrd"),
                 "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    roles = {s["role"]: s for s in json.loads((study_dir / "roles.json").read_text())["series"]}
    assert report["inputs"]["field_strength_t"] == roles["t1_in_phase"]["meta"]["field_strength_t"]
    assert report["inputs"]["echo_times_ms"]["in_phase"] == pytest.approx(
        roles["t1_in_phase"]["stack_meta"][0]["echo_time_ms"])
