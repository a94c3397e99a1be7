"""Atomic output: a file appears under its final name complete, or not at all.

A killed process must never leave a partly written file under the name a reader or the next command
opens. Every writer therefore writes to a hidden temporary name in the *same folder* (so the final
``os.replace`` is a rename on one file system, atomic on POSIX and Windows), flushes it to disk, and only
then renames it. The temporary name keeps the whole final name as its tail, so writers that choose the
format by extension (SimpleITK, matplotlib) still see ``.nrrd``, ``.seg.nrrd``, ``.nii.gz``, ``.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".~partial-"


def temporary_name(path: str | Path) -> Path:
    """A hidden, unique sibling of ``path`` that ends with ``path``'s full name."""
    path = Path(path)
    # os.urandom, as secrets.token_hex uses, without importing secrets (hashlib, hmac, random: ~7 ms per process)
    return path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{path.name}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder (Windows), which is fine.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; on success it is synced and renamed into place.

    On any exception the temporary file is removed and the previous file under ``path`` (if any) is left
    untouched. The folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"the writer did not create {tmp}")
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | Path, obj: Any, **dumps_kwargs: Any) -> Path:
    """Serialise ``obj`` first (a value JSON cannot hold fails before anything is written), then write it."""
    dumps_kwargs.setdefault("indent", 2)
    return write_text_atomic(path, json.dumps(obj, **dumps_kwargs) + "\n")


def write_figure_atomic(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically, then close it (pyplot keeps every open figure alive).
    matplotlib is imported here only when a figure is written: it has made the figure already."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    plt.close(fig)
    return path
