"""Facts of the clinical context that decide which items apply and how a pitfall is named.

Context narrows, imaging decides: these facts never move an impression by themselves; an impression rule
reads imaging items only. The context document is the ``clinical_context.json`` format (``..context``).
"""

from __future__ import annotations

from typing import Any

from ..context import context_vocabulary, has_agent_class


def context_facts(context: dict[str, Any] | None, hyperbilirubinemia_umol_l: float) -> set[str]:
    """Study-wide facts (lesion-specific ones come from :func:`lesion_facts`)."""
    if not context:
        return set()
    vocab = context_vocabulary()
    facts = {f"primary:{context.get('primary_tumour') or 'unknown'}"}
    if context.get("systemic_therapies"):
        facts.add("chemotherapy")
    for cls in ("platinum", "anti_vegf"):
        if has_agent_class(context, cls):
            facts.add(cls)
    if context.get("stem_cell_transplant_date"):
        facts.add("stem_cell_transplant")
    if facts & {"platinum", "stem_cell_transplant"}:
        facts.add("platinum_or_transplant")
    loco = context.get("locoregional_therapies") or []
    ablations = [t for t in loco if t.get("type") in vocab["ablation_types"]]
    if ablations:
        facts.add("ablation_history")
    if any(not t.get("lesion") for t in ablations):
        facts.add("ablation_unlinked")
    if any(t.get("type") in ("TACE", "Y90") for t in loco):
        facts.add("embolisation")
    bili = context.get("bilirubin_umol_l")
    if isinstance(bili, (int, float)) and bili > hyperbilirubinemia_umol_l:
        facts.add("hyperbilirubinemia")
    if context.get("known_steatosis"):
        facts.add("known_steatosis")
    if context.get("prior_study_date"):
        facts.add("prior_study")
    return facts


def lesion_facts(context: dict[str, Any] | None, lesion_id: str) -> set[str]:
    """Facts about one lesion: whether an ablation in the context names it."""
    if not context:
        return set()
    kinds = context_vocabulary()["ablation_types"]
    ablated = any(t.get("type") in kinds and t.get("lesion") == lesion_id
                  for t in context.get("locoregional_therapies") or [])
    return {"ablated_here"} if ablated else set()
