"""``livermets``: the headless entry point. Argument parsing only; work is done by the core.

Each command group lives in its own module exposing ``register(subparsers)``; every parser sets
``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import LiverMetsError

# Command-group modules, in help order. Each one registers its own sub-commands.
COMMAND_MODULES = ("phantom_cmd", "study_cmd", "maps_cmd", "pdff_cmd", "liver_cmd", "measure_cmd", "review_cmd",
                   "report_cmd", "demo_cmd")
# Which module registers each command: a run of one command imports and builds only its group (a process per study
# over a cohort pays every import). test_cli_imports checks this table against what the modules register.
COMMANDS = {"phantom": "phantom_cmd", "classify": "study_cmd", "load": "study_cmd", "adc": "maps_cmd",
            "fat": "maps_cmd", "enhancement": "maps_cmd", "register": "maps_cmd", "pdff": "pdff_cmd",
            "liver": "liver_cmd", "measure": "measure_cmd", "review": "review_cmd", "report": "report_cmd",
            "demo": "demo_cmd"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command table, or (``command`` named in :data:`COMMANDS`) only the group that holds it."""
    parser = argparse.ArgumentParser(
        prog="livermets",
        description="LiverMetsReview headless tools: digital phantom, quantitative maps, study loading.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(name):
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


class _AfterImport:
    """A one-shot import hook (``sys.meta_path`` finder): runs ``action`` right after the module ``name`` is first
    imported, so a setting that needs the module's own machinery costs nothing when the module is never used."""

    def __init__(self, name: str, action: Callable[[], None]) -> None:
        self.name, self.action = name, action

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)                       # once; the real finders find the module
        from importlib.util import find_spec

        spec = find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is not None and hasattr(loader, "exec_module"):
            run = loader.exec_module

            def exec_module(module: object) -> None:
                run(module)
                self.action()

            loader.exec_module = exec_module
        return spec


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Readers' complaints about odd header values (pydicom warns per value) are not for the user: what matters
    reaches them as a skipped file with its reason or as one error sentence. pydicom's logger is silenced right
    after pydicom is imported: its import sets the logger's level itself (a level set before would be undone), and
    a map command on NRRD files never imports it, nor ``logging`` (~7 ms per process)."""
    import warnings

    saved: list[tuple[object, int]] = []

    def silence() -> None:
        import logging

        logger = logging.getLogger("pydicom")
        saved.append((logger, logger.level))
        logger.setLevel(logging.CRITICAL)

    hook = None
    if "pydicom" in sys.modules:
        silence()
    else:
        hook = _AfterImport("pydicom", silence)
        sys.meta_path.insert(0, hook)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
            yield
    finally:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        for logger, level in saved:
            logger.setLevel(level)  # type: ignore[attr-defined]


def _keep_freed_memory() -> None:
    """Let the C allocator keep freed memory for the next array instead of returning it to the system.

    glibc hands every large array back to the system when it is freed (and maps arrays above its threshold
    separately), so the next volume-sized array of a map command is page-faulted in afresh, page by page, as
    zeroed memory. A command allocates such arrays one after another; reusing freed memory saves that work (peak
    memory stays that of the largest live set). A no-op where the C library has no ``mallopt``.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):   # TypeError: Windows has no process-wide CDLL(None)
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)   # glibc's largest allowed value
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_top_pad, 64 << 20)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if sys.argv and Path(sys.argv[0]).name == "livermets":
        _keep_freed_memory()   # a process of its own (not a library call inside Slicer or the tests)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _quiet_libraries():
            return int(args.func(args) or 0)
    except LiverMetsError as exc:
        print(f"livermets {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"livermets {args.command}: error: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
