"""The phantom's tissue model: the contract between anatomy (who is where) and signal physics
(what each sequence shows).

Anatomy builds a :class:`TissueModel`: an integer *compartment* label per voxel on a fine
"truth grid" (LPS) and, per compartment, its tissue parameters. Signal physics turns the model into
:class:`~LiverMetsReviewLib.series.Series` on each series' own grid. A lesion may have several
compartments (rim, core, scar) so that rim/core hallmarks come from physics, not painting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

# Dynamic phases that carry contrast (``t1_pre`` has none).
CONTRAST_PHASES = ("t1_arterial", "t1_portal_venous", "t1_transitional", "t1_hepatobiliary")

# Scalar parameters every compartment carries (units in the name).
SCALAR_PARAMETERS = (
    "pd",             # relative proton density, 0..1 (water + fat protons)
    "t1_ms",          # native T1 of the water component at the study's field strength
    "t2_ms",          # T2 of the water component
    "t2star_ms",      # T2* (signal decay in gradient echo)
    "adc_1e6_mm2_s",  # apparent diffusion coefficient, 10^-6 mm^2/s
    "pdff_percent",   # proton-density fat fraction, 0..100 %
)


@dataclass
class Compartment:
    """One tissue compartment: its label value, name and parameters.

    ``gd_ecs_mM[phase]``: gadoxetate concentration in the extracellular space at that phase (mmol/L of tissue);
    ``gd_hep_mM[phase]``: concentration taken up by hepatocytes (relaxes with the hepatocyte relaxivity).
    """

    label: int
    name: str
    params: dict[str, float]
    gd_ecs_mM: dict[str, float] = field(default_factory=dict)
    gd_hep_mM: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TissueModel:
    """Compartment labels on the truth grid plus the compartments' parameters."""

    grid: sitk.Image                     # geometry of the truth grid (pixel values unused), LPS
    labels: np.ndarray                   # int32, shape (z, y, x) matching ``grid``
    compartments: list[Compartment]
    field_strength_t: float = 1.5

    def _lut(self, values: dict[int, float]) -> np.ndarray:
        lut = np.zeros(int(self.labels.max()) + 1, dtype=np.float32)
        for label, v in values.items():
            if label < lut.size:
                lut[label] = v
        return lut

    def param(self, name: str) -> np.ndarray:
        """A scalar parameter as a float32 map on the truth grid (0 where no compartment)."""
        return self._lut({c.label: c.params[name] for c in self.compartments})[self.labels]

    def gd(self, phase: str, space: str = "ecs") -> np.ndarray:
        """Gadoxetate concentration map (mM) at ``phase``; ``space`` is 'ecs' or 'hep'."""
        attr = "gd_ecs_mM" if space == "ecs" else "gd_hep_mM"
        return self._lut({c.label: getattr(c, attr).get(phase, 0.0) for c in self.compartments})[self.labels]
