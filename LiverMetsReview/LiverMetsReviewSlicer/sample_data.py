"""The phantom as a Sample Data entry: one click generates it locally and loads it."""

from __future__ import annotations

import os

import slicer
from slicer.i18n import tr as _

from .phantom import defaultScenario, generatePhantomStudy, loadPhantomStudy
from .progress import busy

CATEGORY = "LiverMetsReview"
SAMPLE_NAME = "LiverMetsPhantom"
# SampleData wants a URI per file even when a custom downloader produces the data; this one is never fetched.
GENERATED_URI = "generated://LiverMetsReview/phantom"


def loadDefaultPhantom(source=None) -> None:
    """SampleData's custom downloader: generate the default phantom (seed 0, default scenario, 1.5 T) and load it.

    The Sample Data button ignores what it returns; scripts call the module logic's ``loadPhantom()`` instead
    (SampleData's downloadSample does not call custom downloaders).
    """
    with slicer.util.tryWithErrorDisplay(_("Failed to generate the LiverMetsReview phantom."), waitCursor=True):
        with busy(_("Generating the LiverMetsReview phantom...")):
            loadPhantomStudy(generatePhantomStudy(scenario=defaultScenario()))


def registerSampleData(iconsPath: str) -> None:
    """Add the phantom to the Sample Data module (called once the application has started)."""
    import SampleData

    # Category titles arrived in Slicer 5.12 (registerCustomSampleDataCategory); on 5.10 the source is still
    # registered and the category is shown under its id.
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):
        SampleData.SampleDataLogic.registerCustomSampleDataCategory(CATEGORY, title=_("LiverMetsReview"))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=CATEGORY,
        sampleName=SAMPLE_NAME,
        uris=GENERATED_URI,
        fileNames=SAMPLE_NAME + ".nrrd",
        nodeNames=SAMPLE_NAME,
        thumbnailFileName=os.path.join(iconsPath, "LiverMetsReview.png"),
        customDownloader=loadDefaultPhantom,
    )
