"""Atomic writes: the final name holds the old file or the complete new one, never a partial one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from LiverMetsReviewLib.io.atomic import TEMP_PREFIX, atomic_path, write_json_atomic, write_text_atomic


def test_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "a.json"
    write_json_atomic(target, {"x": 1})
    write_json_atomic(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failing_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_unserialisable_json_writes_nothing(tmp_path):
    target = tmp_path / "a.json"
    with pytest.raises(ValueError):
        write_json_atomic(target, {"x": float("nan")}, allow_nan=False)
    assert not target.exists()


def test_temporary_name_keeps_the_extension(tmp_path):
    with atomic_path(tmp_path / "lesions.seg.nrrd") as tmp:
        assert tmp.name.startswith(TEMP_PREFIX) and tmp.name.endswith("lesions.seg.nrrd")
        assert tmp.parent == tmp_path
        tmp.write_bytes(b"x")


def test_killed_writer_leaves_old_or_nothing(tmp_path):
    """SIGKILL a process in the middle of a large write: the final name holds the old content or nothing."""
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    script = textwrap.dedent(f"""
        import sys
        from LiverMetsReviewLib.io.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as fh:
                print("writing", flush=True)
                for _ in range(100000):
                    fh.write(b"n" * 65536)
                    fh.flush()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old"
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert partial, "the writer was killed before it started; the test proves nothing"
