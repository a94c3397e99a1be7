"""Vendor profiles for the DICOM writer: which words, names and private tags each scanner maker uses.

The choices live in ``resources/dicom_vendor_profiles.json`` (knowledge is data); this module only reads
them and applies them to a pydicom dataset, so that a reader tuned on real Siemens, GE or Philips files
(b-value private tags, ImageType words, description prefixes) recognises the phantom's series.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from ..errors import LiverMetsError
from ..resources import load_json

PROFILE_FILE = "dicom_vendor_profiles.json"


def _profiles() -> dict[str, Any]:
    return load_json(PROFILE_FILE)


def vendor_names() -> list[str]:
    """Vendors the writer can imitate (keys of the profile file)."""
    return sorted(_profiles()["vendors"])


def study_defaults() -> dict[str, Any]:
    """Fake phantom identities and exam defaults (without the 'source' note)."""
    return {k: v for k, v in _profiles()["study_defaults"].items() if k != "source"}


def gyromagnetic_ratio_mhz_per_t() -> float:
    return float(_profiles()["physics"]["gyromagnetic_ratio_mhz_per_t"])


def role_sequence(role: str) -> dict[str, Any]:
    """ScanningSequence / SequenceVariant / ScanOptions / MRAcquisitionType typical of a role."""
    roles = _profiles()["roles"]
    return dict(roles.get(role, roles["default"]))


@dataclass(frozen=True)
class VendorProfile:
    """One vendor's tag choices, as read from the profile file."""

    name: str
    data: dict[str, Any]

    @property
    def manufacturer(self) -> str:
        return str(self.data["manufacturer"])

    def model_name(self, field_strength_t: float) -> str:
        """The model of the profile whose nominal field is closest to ``field_strength_t``."""
        models = self.data["models"]
        key = min(models, key=lambda k: abs(float(k) - field_strength_t))
        return str(models[key])

    @property
    def software_versions(self) -> list[str]:
        return [str(v) for v in self.data["software_versions"]]

    @property
    def device_serial_number(self) -> str:
        return str(self.data["device_serial_number"])

    @property
    def bits_stored(self) -> int:
        return int(self.data["bits_stored"])

    @property
    def own_words_first(self) -> bool:
        """GE/Philips profiles use their own ImageType and sequence names over the caller's Siemens-style ones."""
        return bool(self.data.get("own_words_first"))

    def image_type(self, role: str, series_value: list[str] | None, stack_value: list[str] | None) -> list[str]:
        """ImageType of a stack: the stack's own, else series/profile in the profile's order of preference.

        Siemens-style profiles keep the caller's series ImageType (the phantom writes Siemens words);
        GE/Philips profiles put their own words first so a GE series does not carry Siemens' DIXON.
        """
        if stack_value:
            return [str(v) for v in stack_value]
        table = self.data["image_types"]
        from_profile = table.get(role)
        if self.own_words_first and from_profile:
            return list(from_profile)
        if series_value:
            return [str(v) for v in series_value]
        return list(from_profile or table["default"])

    def sequence_name(self, role: str, series_value: str | None, **fields: Any) -> str | None:
        """SequenceName (0018,0024); templates may use {b}, {b_min}, {b_max}. None: leave the tag out."""
        table = self.data.get("sequence_names", {})
        own = table.get(role, table.get("default"))
        template = own if self.own_words_first or not series_value else series_value
        if not template:
            return None
        try:
            return str(template).format(**fields)
        except (KeyError, IndexError, ValueError):
            return str(template).split("{")[0] or None

    def description(self, role: str, text: str, *, own_names: bool = True, **fields: Any) -> str:
        """SeriesDescription: the vendor's scanner-like name for the role, else ``text`` with the vendor's prefix.

        With ``own_names`` a profile that lists ``series_descriptions`` names each role as that scanner's
        console would (GE 'Ax LAVA-Flex ART', Philips 'eTHRIVE_BH_ART'); templates may use {b_list}, {b_min},
        {b_max} and the first template whose fields are all known is used. Otherwise (Siemens, or a role the
        profile does not name) the caller's text is kept and only the vendor's prefix is added (GE 'WATER: ...').
        """
        if own_names:
            named = _first_template(self.data.get("series_descriptions", {}).get(role), fields)
            if named:
                return named
        prefix = self.data.get("description_prefixes", {}).get(role, "")
        if prefix and text.lower().startswith(prefix.strip().lower().rstrip(":")):
            return text
        return prefix + text

    def protocol_name(self, series_value: str | None, description: str, *, own_names: bool = True) -> str:
        """ProtocolName: GE writes the exam protocol on every series, Philips repeats the scan name.

        The profile's ``protocol_name`` is a template with {description}; without one (Siemens) or without
        ``own_names`` the series' own protocol name, else its description, is kept.
        """
        rule = self.data.get("protocol_name") if own_names else None
        if not rule:
            return str(series_value or description)
        return str(rule).replace("{description}", description)

    def add_private_sequence_name(self, ds: Dataset, role: str) -> None:
        """GE keeps its pulse-sequence name in a private tag; other profiles write none."""
        spec = self.data.get("private_sequence_name")
        if not spec:
            return
        names = spec["names"]
        name = names.get(role, names.get("default"))
        if name:
            block = ds.private_block(int(spec["group"], 16), spec["creator"], create=True)
            block.add_new(int(spec["element"], 16), spec["vr"], str(name))

    def add_diffusion_private(self, ds: Dataset, b_value: float) -> None:
        """The vendor's own b-value (and direction) tags for an isotropic (trace) image."""
        for spec in self.data.get("diffusion_private_tags", []):
            block = ds.private_block(int(spec["group"], 16), spec["creator"], create=True)
            vr = str(spec["vr"])
            block.add_new(int(spec["element"], 16), vr, self._private_value(spec["value"], vr, b_value))

    def _private_value(self, kind: str, vr: str, b_value: float) -> Any:
        b_int = int(round(b_value))
        if kind == "b_value":
            return float(b_value) if vr in ("FL", "FD") else str(b_int)
        if kind == "directionality":
            return "ISOTROPIC" if b_value > 0 else "NONE"
        if kind == "direction_label":
            return "I"
        if kind == "ge_slop_int_6_9":
            return [str(b_int + int(self.data.get("ge_b_value_offset", 0))), "0", "0", "0"]
        raise LiverMetsError(f"the vendor profile '{self.name}' asks for an unknown private value '{kind}'; "
                             f"fix {PROFILE_FILE}")


def _first_template(candidates: str | Sequence[str] | None, fields: dict[str, Any]) -> str | None:
    """The first template whose fields are all given and non-empty, filled in; None when none fits."""
    if not candidates:
        return None
    for template in [candidates] if isinstance(candidates, str) else list(candidates):
        names = {name for _, name, _, _ in string.Formatter().parse(str(template)) if name}
        if all(fields.get(name) not in (None, "") for name in names):
            return str(template).format(**{name: fields[name] for name in names})
    return None


def vendor_profile(vendor: str) -> VendorProfile:
    """The profile of ``vendor`` (case-insensitive); unknown names get one sentence listing the known ones."""
    key = str(vendor).strip().lower()
    vendors = _profiles()["vendors"]
    if key not in vendors:
        raise LiverMetsError(f"unknown DICOM vendor '{vendor}'; choose one of {', '.join(sorted(vendors))}")
    return VendorProfile(key, vendors[key])
