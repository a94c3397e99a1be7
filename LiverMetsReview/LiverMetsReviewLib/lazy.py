"""Lazy package exports (PEP 562): a package names its public functions, their submodules load on first use.

So ``import LiverMetsReviewLib.study.hanging`` or ``livermets adc`` does not pull in SimpleITK, scipy or the map
code it never calls: a whole process per study pays only for what it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], table: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public name -> submodule table is ``table``; a loaded name
    is stored in ``namespace`` (the package's globals) so it is looked up only once."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
