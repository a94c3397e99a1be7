"""The Maps section: ADC, fat fractions, enhancement and alignment from the series in the scene, by role.

Each button runs one map with the logic under a progress dialog and writes what was computed, from which
series, how many voxels were masked and every warning into the section's result text (not only the log). The
new map becomes the displayed series, which the Study section shows in one view (the layout is kept).
"""

from __future__ import annotations

from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterPack

from LiverMetsReviewLib.roles import role_label

from . import maps as sceneMaps
from .progress import busy
from .section import Section, labelChoices

ADC_METHOD_LABELS = {"lls": "Log-linear (fast)", "wls": "Weighted log-linear", "nlls": "Non-linear, Rician (slow)"}


@parameterPack
class MapsParameters:
    """adcMethod: ADC fit. enhancementPhase: the phase compared with the pre-contrast T1. align*: series
    alignment (reference, moving series, affine or rigid)."""

    adcMethod: Annotated[str, Choice(list(sceneMaps.ADC_METHODS))] = "lls"
    enhancementPhase: Annotated[str, Choice(list(sceneMaps.CONTRAST_PHASES))] = "t1_hepatobiliary"
    alignReferenceVolume: vtkMRMLScalarVolumeNode
    alignMovingVolume: vtkMRMLScalarVolumeNode
    alignAffine: bool = False


class MapsSection(Section):
    UI_FILE = "UI/MapsSection.ui"
    PACK = "maps"

    def setup(self, ui, logic) -> None:
        super().setup(ui, logic)
        ui.computeAdcButton.connect("clicked(bool)", lambda: self.runMap(
            _("ADC"), _("Computing the ADC..."), self.logic.computeAdc, self.pack.adcMethod))
        ui.computeFatButton.connect("clicked(bool)", lambda: self.runMap(
            _("Fat fraction (in/opposed phase)"), _("Computing the chemical-shift fat fraction..."),
            self.logic.computeChemicalShiftFat))
        ui.computeDixonFatButton.connect("clicked(bool)", lambda: self.runMap(
            _("Fat fraction (Dixon)"), _("Computing the Dixon fat fraction..."), self.logic.computeDixonFat))
        ui.computePdffButton.connect("clicked(bool)", lambda: self.runMap(
            _("PDFF and R2*"), _("Fitting PDFF and R2* (this can take a minute)..."), self.logic.computePdff))
        ui.computeEnhancementButton.connect("clicked(bool)", lambda: self.runMap(
            _("Relative enhancement"), _("Computing the relative enhancement..."), self.logic.computeEnhancement,
            self.pack.enhancementPhase))
        ui.alignButton.connect("clicked(bool)", lambda: self.runMap(
            _("Aligned series"), _("Aligning the series (registration)..."), self.logic.alignSeries,
            self.pack.alignReferenceVolume, self.pack.alignMovingVolume, self.pack.alignAffine))

    def afterBinding(self) -> None:
        labelChoices(self.ui.adcMethodComboBox, [ADC_METHOD_LABELS.get(m, m) for m in sceneMaps.ADC_METHODS])
        labelChoices(self.ui.enhancementPhaseComboBox, [role_label(p) for p in sceneMaps.CONTRAST_PHASES])

    def onSceneClosed(self) -> None:
        self.ui.mapsResultLabel.text = ""

    def runMap(self, title: str, label: str, compute, *args) -> None:
        """Compute one map (the progress dialog says what runs), show it, and report it under the buttons."""
        self.ui.mapsResultLabel.text = ""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the map."), waitCursor=True):
            with busy(label) as progress:
                nodes, summary = compute(*args, progress=progress)
            self.ui.mapsResultLabel.text = resultText(title, nodes, summary)
            if self.params is not None:
                self.params.study.displayedVolume = next(iter(nodes.values()))


def resultText(title: str, nodes: dict, summary: dict) -> str:
    """What the reader sees after a map: the map's nodes, then inputs, masked voxels, warnings (sceneMaps)."""
    head = f"{title}: " + ", ".join(node.GetName() for node in nodes.values())
    details = sceneMaps.summaryText(summary)
    return f"{head}\n{details}" if details else head
