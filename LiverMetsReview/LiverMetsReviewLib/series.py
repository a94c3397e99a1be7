"""The in-memory series model shared by the phantom, the DICOM writer, the loader and the maps.

A :class:`Series` is one acquired (or derived) series: one or more 3-D *stacks* on one grid
(several b-values of a DWI, several echoes of a multi-echo GRE), each a ``SimpleITK.Image``
in LPS world coordinates, with per-stack and per-series acquisition metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import SimpleITK as sitk


@dataclass
class Series:
    """One series: ``stacks[i]`` is described by ``stack_meta[i]``.

    Per-stack keys in use: ``b_value`` (s/mm^2), ``echo_time_ms``, ``image_type`` (list of str).
    Series keys in use: ``description``, ``series_number``, ``field_strength_t``,
    ``repetition_time_ms``, ``echo_time_ms``, ``flip_angle_deg``, ``image_type`` (list of str),
    ``acquisition_offset_s`` (seconds after the study's first acquisition), ``contrast_agent``,
    ``units`` (of the pixel values), ``sequence_name``.
    """

    role: str
    stacks: list[sitk.Image]
    stack_meta: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stacks:
            raise ValueError(f"series '{self.role}' has no image")
        if not self.stack_meta:
            self.stack_meta = [{} for _ in self.stacks]
        if len(self.stack_meta) != len(self.stacks):
            raise ValueError(
                f"series '{self.role}': {len(self.stacks)} stacks but {len(self.stack_meta)} stack descriptions"
            )

    @property
    def image(self) -> sitk.Image:
        """The first (often only) stack."""
        return self.stacks[0]

    @property
    def b_values(self) -> list[float]:
        return [float(m["b_value"]) for m in self.stack_meta if "b_value" in m]

    @property
    def echo_times_ms(self) -> list[float]:
        return [float(m["echo_time_ms"]) for m in self.stack_meta if "echo_time_ms" in m]
