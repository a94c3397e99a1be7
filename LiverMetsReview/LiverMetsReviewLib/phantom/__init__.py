"""The digital reference phantom: a gadoxetate liver MRI study computed from tissue physics, with ground truth.

``generate_phantom`` builds the anatomy (``anatomy``), paints the lesion catalogue (``lesions``), sets the
scenario's liver background (``scenarios``, ``tissues``) and simulates every series (``protocol``, with the
signal equations of ``..physics`` that the maps share); ``write_phantom`` writes the study (NRRD folder or
DICOM) with its ground truth. World coordinates are LPS (mm).

Varied studies (``generate_phantom(seed, scenario, vary=True)``, ``livermets phantom --vary``): the seed also
draws the study from ``resources/phantom_lesion_ranges.json`` (``vary``: settings and lesions, ``placement``:
positions, ``vary_context``: the clinical context). Keys the truth gains (the fixed catalogue has only the first):

- ``vary``: ``{"enabled": false}``, or the draw: ``seed``, ``stream``, ``ranges`` (file, format, version),
  ``field_strength_t`` (+ ``field_strength_drawn``), ``snr_scale`` (multiplies every noise group's SNR),
  ``vendor``, ``primary_tumour``, ``liver`` (pdff_percent, hepatocyte_uptake_factor, adc_1e6_mm2_s, t1_factor,
  t2_factor, bilirubin_umol_l), ``steatotic``, ``lesion_types``, ``dropped`` (lesions that found no place).
- per lesion: ``shape`` (sphere/ellipsoid/lobulated/irregular), ``rot_z_deg``, ``outline`` (the radial
  modulation, see ``lesions.radial_modulation``), and for a drawn lesion ``template`` (the catalogue lesion it
  is an instance of) and ``drawn`` (diameter, shape, axis ratios, per compartment every drawn value,
  ``months_since_ablation``, ``hbp_pattern``, ``patches``).
- per compartment: ``patch_of`` when it is one of the three heterogeneity patches of a compartment (the middle
  patch keeps the compartment's name, the others are ``<name>~0`` and ``<name>~2``).

``clinical_context`` (truth) and ``clinical_context.json`` (beside ``ground_truth.json``) are the same document,
format ``livermets-clinical-context`` version 1 (see ``LiverMetsReviewLib.context``).
"""

from .generate import PhantomStudy, build_model, build_varied_model, generate_phantom, write_phantom
from .scenarios import describe_scenarios, scenario_names

__all__ = ["PhantomStudy", "build_model", "build_varied_model", "describe_scenarios", "generate_phantom",
           "scenario_names", "write_phantom"]
