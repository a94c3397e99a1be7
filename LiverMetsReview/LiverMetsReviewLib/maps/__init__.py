"""Quantitative maps: ADC, fat fraction, enhancement, registration.

Pure functions: SimpleITK images and options in, a small result dataclass out (images on the reference input's
grid + a JSON-able summary with units, method, inputs used, masked-voxel count, warnings). No file I/O here: the
CLI (``livermets adc|fat|enhancement|register``) and the Slicer module call these same functions.
Units: ADC 10^-6 mm^2/s, fat fraction / SII / enhancement percent, lengths mm, world coordinates LPS.
ADC, fat and enhancement decide background the same way (:mod:`.noise_mask`): a test with a stated false-positive
rate for pure Rician noise, settings and sources in ``resources/maps_defaults.json`` (section ``noise_mask``); PDFF
still uses its own floor on the mean echo signal (:mod:`.pdff`). Every map, PDFF included, restricts itself to a
user's mask the same way (:func:`.resample.apply_user_mask`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

# ``noise_mask`` (numpy only) loads eagerly: its function shares the submodule's name, and importing the submodule
# later would rebind the package attribute to the module.
from .noise_mask import NoiseMask, SignalDecision, decide_signal, noise_mask

# Public name -> submodule, loaded on first use (PEP 562), so that ``livermets adc`` imports neither the
# registration nor the fat code (nor the scipy parts they need): a whole process per study pays only for its map.
_LAZY = {
    "ADC_UNITS": "adc", "AdcResult": "adc", "combine_directions": "adc", "fit_adc": "adc",
    "EnhancementResult": "enhancement", "liver_function": "enhancement", "relative_enhancement": "enhancement",
    "FatResult": "fat", "check_echo_pair": "fat", "chemical_shift_fat": "fat", "dixon_fat": "fat", "echo_phase": "fat",
    "RegistrationResult": "registration", "register": "registration",
    "apply_user_mask": "resample", "match_to_reference": "resample", "resample_to": "resample", "same_grid": "resample",
}

if TYPE_CHECKING:  # static analysis sees the names; at run time they load lazily
    from .adc import ADC_UNITS, AdcResult, combine_directions, fit_adc
    from .enhancement import EnhancementResult, liver_function, relative_enhancement
    from .fat import FatResult, check_echo_pair, chemical_shift_fat, dixon_fat, echo_phase
    from .registration import RegistrationResult, register
    from .resample import apply_user_mask, match_to_reference, resample_to, same_grid

__all__ = [
    "ADC_UNITS", "AdcResult", "EnhancementResult", "FatResult", "NoiseMask", "RegistrationResult", "SignalDecision",
    "apply_user_mask", "check_echo_pair", "chemical_shift_fat", "combine_directions", "decide_signal", "dixon_fat",
    "echo_phase", "fit_adc", "liver_function", "match_to_reference", "noise_mask", "register", "relative_enhancement",
    "resample_to", "same_grid",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
