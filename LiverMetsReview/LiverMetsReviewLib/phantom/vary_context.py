"""The clinical context of a varied phantom, drawn to fit its lesions (brief sections 4 and 6).

Every lesion's history is in the context: an ablation zone has its RFA/MWA with a date (``treated_by`` links
them), an FNH-like nodule has platinum chemotherapy or a stem-cell transplant, a metastasis has the drawn
primary; a fatty liver after colorectal cancer has irinotecan; regimens and their probabilities are data
(``phantom_lesion_ranges.json`` ``therapy``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from ..context import agents_of_class, clinical_context_document, context_vocabulary
from .truth import ROMAN
from .vary import lesion_ranges, uniform

DAYS_PER_MONTH = 30.44


def _before(date: dt.date, months: float) -> dt.date:
    return date - dt.timedelta(days=int(round(months * DAYS_PER_MONTH)))


def _study_date(rng: np.random.Generator, spec: dict[str, str]) -> dt.date:
    lo, hi = dt.date.fromisoformat(spec["from"]), dt.date.fromisoformat(spec["to"])
    return lo + dt.timedelta(days=int(rng.integers(0, (hi - lo).days + 1)))


def _regimens(rng: np.random.Generator, primary: str, need_platinum: bool, steatotic: bool) -> tuple[list, bool]:
    """Regimens drawn for the primary (at least one); returns (regimens, whether a platinum agent was needed
    but none exists for this primary)."""
    th = lesion_ranges()["therapy"]
    options = th["regimens"].get(primary, [])
    chosen = [r for r in options if rng.random() < float(r["p"])]
    if options and not chosen:
        chosen = [options[0]]
    steat = th["steatosis_regimen"].get(primary)
    if steatotic and steat and all(r["regimen"] != steat for r in chosen):
        chosen += [r for r in options if r["regimen"] == steat]
    platinum = agents_of_class("platinum")
    has_pt = any(a in platinum for r in chosen for a in r["agents"])
    if need_platinum and not has_pt:
        pt = [r for r in options if any(a in platinum for a in r["agents"])]
        chosen += pt[:1]
        has_pt = bool(pt)
    return chosen, need_platinum and not has_pt


def _lines(rng: np.random.Generator, regimens: list[dict[str, Any]], study: dt.date) -> list[dict[str, Any]]:
    """Systemic lines one after the other, the last ending a few months before the study."""
    th = lesion_ranges()["therapy"]
    end = _before(study, uniform(rng, th["months_before_study"]))
    out = []
    for r in regimens:
        start = _before(end, uniform(rng, th["line_months"]))
        out.append({"regimen": r["regimen"], "agents": list(r["agents"]), "start": start.isoformat(),
                    "end": end.isoformat()})
        end = _before(start, float(rng.uniform(0.0, 2.0)))
    return out[::-1]


def _ablations(rng: np.random.Generator, lesions: list[dict[str, Any]], study: dt.date) -> list[dict[str, Any]]:
    """One RFA or MWA per ablation zone, dated by the zone's drawn age; links the lesion to it."""
    kinds = context_vocabulary()["ablation_types"]
    out = []
    for les in lesions:
        months = les.get("drawn", {}).get("months_since_ablation")
        if months is None:
            continue
        kind = kinds[int(rng.integers(len(kinds)))]
        tid = f"{kind.lower()}_{len(out) + 1}"
        out.append({"id": tid, "type": kind, "date": _before(study, months).isoformat(),
                    "target": f"segment {ROMAN[int(les['couinaud_segment'])]} metastasis", "lesion": les["id"]})
        les["treated_by"] = tid
    return out


def draw_context(rng: np.random.Generator, scenario: dict[str, Any], settings: dict[str, Any],
                 lesions: list[dict[str, Any]], steatotic: bool, seed: int) -> dict[str, Any]:
    """The clinical context document (``clinical_context.json`` format) for the drawn study."""
    th = lesion_ranges()["therapy"]
    study = _study_date(rng, th["study_date"])
    primary = settings["primary_tumour"]
    need_pt = any(les["type"] == "fnh_like_nodule" for les in lesions)
    regimens, needs_sct = _regimens(rng, primary, need_pt, steatotic)
    loco = _ablations(rng, lesions, study)
    if rng.random() < float(th["resection_probability"]):
        loco.append({"id": "resection_1", "type": "resection",
                     "date": _before(study, float(rng.uniform(6.0, 36.0))).isoformat(),
                     "target": "metastasectomy", "lesion": None})
    prior = None
    if rng.random() < float(th["prior_study"]["probability"]):
        prior = _before(study, uniform(rng, th["prior_study"]["months_before"])).isoformat()
    low_function = "low_hbp_function" in scenario.get("scenario_pitfalls", [])
    return clinical_context_document({
        "study_date": study.isoformat(), "primary_tumour": primary, "primary_tumour_detail": None,
        "systemic_therapies": _lines(rng, regimens, study), "locoregional_therapies": loco,
        "stem_cell_transplant_date": _before(study, float(rng.uniform(12.0, 60.0))).isoformat() if needs_sct else None,
        "bilirubin_umol_l": settings["liver"]["bilirubin_umol_l"],
        "liver_function": "reduced" if low_function else "normal",
        "known_steatosis": bool(steatotic), "prior_study_date": prior,
        "other_history": f"drawn by the varied phantom (seed {seed}, scenario {scenario['id']})",
    })
