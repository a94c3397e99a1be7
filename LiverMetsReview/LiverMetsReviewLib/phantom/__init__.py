"""The digital reference phantom: a gadoxetate liver MRI study computed from tissue physics, with ground truth.

``generate_phantom`` builds the anatomy (``anatomy``), paints the lesion catalogue (``lesions``), sets the
scenario's liver background (``scenarios``, ``tissues``) and simulates every series (``protocol``, with the
signal equations of ``..physics`` that the maps share); ``write_phantom`` writes the study (NRRD folder or DICOM)
with its ground truth. World coordinates are LPS (mm).
"""

from .generate import PhantomStudy, build_model, generate_phantom, write_phantom
from .scenarios import describe_scenarios, scenario_names

__all__ = ["PhantomStudy", "build_model", "describe_scenarios", "generate_phantom", "scenario_names", "write_phantom"]
