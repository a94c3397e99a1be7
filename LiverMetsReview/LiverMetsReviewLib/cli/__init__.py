"""``livermets``: the headless entry point. Argument parsing only; work is done by the core.

Each command group lives in its own module exposing ``register(subparsers)``; every parser sets
``func`` (called with the parsed namespace, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import LiverMetsError

# Command-group modules, in help order. Each one registers its own sub-commands.
COMMAND_MODULES = ("phantom_cmd", "study_cmd", "maps_cmd", "pdff_cmd", "liver_cmd", "measure_cmd", "review_cmd",
                   "demo_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livermets",
        description="LiverMetsReview headless tools: digital phantom, quantitative maps, study loading.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(name):
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Readers' complaints about odd header values (pydicom warns per value) are not for the user: what matters
    reaches them as a skipped file with its reason or as one error sentence."""
    import logging
    import warnings

    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
            yield
    finally:
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
