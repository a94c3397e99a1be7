"""Volumes that another reader made from a series (Slicer's DICOM plugins) matched to the classified stacks.

The classifier works on stacks (one 3-D volume per b-value, echo, phase...); a DICOM viewer groups files by
its own rules and may merge stacks (a dual-echo series when no tag it splits by differs) or keep frames of one
enhanced file together. A volume is *this* stack only when it holds exactly that stack's files and no other
stack has the same files; anything else is reported, never guessed, and the caller loads the stack itself.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .classify import stack_roles_of
from .load import series_meta
from .scan import SeriesInfo


@dataclass
class StackMatch:
    """How the volumes of one series relate to its stacks."""

    matched: dict[str, int] = field(default_factory=dict)      # volume key -> the one stack it holds exactly
    merged: dict[str, list[int]] = field(default_factory=dict)  # volume key -> stacks it holds in part or together
    unmatched: list[int] = field(default_factory=list)          # stacks no volume holds exactly

    def reason(self, key: str) -> str:
        """Why a volume was not taken as a stack (one sentence for the reader)."""
        stacks = self.merged.get(key, [])
        if not stacks:
            return "holds none of the classified stacks' files"
        if len(stacks) == 1:
            return f"holds part of stack {stacks[0] + 1}, or the same files as another volume"
        return f"holds files of {len(stacks)} stacks ({', '.join(str(k + 1) for k in stacks)}) in one volume"


def match_volumes_to_stacks(info: SeriesInfo, volumes: Mapping[str, Iterable[str]],
                            normalise: Callable[[str], str] = os.path.normpath) -> StackMatch:
    """Match ``volumes`` (key -> the files it was read from) to the stacks of ``info`` by their files."""
    stack_files = [frozenset(normalise(f.path) for f in stack.frames) for stack in info.stacks]
    shared = Counter(stack_files)  # enhanced multi-frame: every stack is the same single file
    result = StackMatch()
    taken: set[int] = set()
    for key, files in volumes.items():
        held = frozenset(normalise(f) for f in files)
        touched = [k for k, sf in enumerate(stack_files) if sf & held]
        if len(touched) == 1 and stack_files[touched[0]] == held and shared[held] == 1 and touched[0] not in taken:
            result.matched[key] = touched[0]
            taken.add(touched[0])
        else:
            result.merged[key] = touched
    result.unmatched = [k for k in range(len(info.stacks)) if k not in taken]
    return result


def stack_attributes(info: SeriesInfo, index: int, t0: float | None = None) -> tuple[str, dict, dict]:
    """(role, stack metadata, series metadata) of stack ``index``: what a loaded volume of it should carry."""
    role = stack_roles_of(info)[index]
    return role, info.stacks[index].meta(), series_meta(info, role, [index], t0)


def needs_trace(info: SeriesInfo) -> bool:
    """A diffusion series with several images per b-value (directions, repeats): the ADC needs the trace that
    ``combine_trace`` computes, not one direction, so its volumes cannot be used one by one."""
    per_b = Counter(s.b_value for s, r in zip(info.stacks, stack_roles_of(info), strict=True)
                    if r == "dwi" and s.b_value is not None)
    return any(n > 1 for n in per_b.values())
