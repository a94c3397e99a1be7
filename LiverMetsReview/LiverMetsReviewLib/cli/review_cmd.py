"""``livermets review``: the guided checklist on measured lesions -> ``review.json`` and ``review.md``.

Reads the output folder of ``livermets measure`` (``measurements.json``), the study folder (echo times;
``liver_figures.json`` when the liver figures were measured), the clinical context and the reader's answers,
and writes the review. Answers already in ``OUT/review.json`` are kept; ``--answers`` adds or replaces some.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review", help="guided checklist: suggestions with evidence and an impression per lesion",
        description="Weigh the hallmarks of liver metastases and the pitfalls that mimic them for every measured "
                    "lesion; suggestions are evidence for the reader, never a diagnosis.")
    p.add_argument("--study", type=Path, required=True, help="study folder (roles.json) the lesions were measured on")
    p.add_argument("--lesions", type=Path, required=True, help="output folder of 'livermets measure'")
    p.add_argument("--context", type=Path, default=None, help="clinical_context.json (livermets-clinical-context)")
    p.add_argument("--answers", type=Path, default=None,
                   help="reader's answers: {\"study\" or lesion id: {item id: answer or {answer, note}}}, "
                        "or a review.json")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder (review.json, review.md)")
    p.set_defaults(func=run)


def _answers_file(path: Path) -> dict:
    from ..errors import LiverMetsError
    from ..resources import read_json_file

    doc = read_json_file(path, "reader's answers (JSON)")
    doc = doc.get("answers", doc) if isinstance(doc, dict) else doc
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise LiverMetsError(f"{path}: answers must be an object {{\"study\" or lesion id: {{item id: answer}}}}")
    return {scope: {k: (v if isinstance(v, dict) else {"answer": v, "note": ""}) for k, v in items.items()}
            for scope, items in doc.items()}


def run(args: argparse.Namespace) -> int:
    from ..checklist.data import load_checklist
    from ..checklist.engine import review
    from ..checklist.inputs import read_lesions, read_study_figures
    from ..checklist.report import review_markdown
    from ..checklist.store import ReviewSession
    from ..context import read_clinical_context
    from ..errors import LiverMetsError
    from ..io.atomic import write_text_atomic

    if args.output.exists() and not args.output.is_dir():
        raise LiverMetsError(f"{args.output} exists and is not a folder; give a folder for review.json")
    checklist = load_checklist()
    lesions, mdoc = read_lesions(args.lesions)
    figures, used = read_study_figures(args.study, args.lesions, mdoc,
                                       checklist["physics"]["fat_water_shift_ppm"]["value"],
                                       checklist["physics"]["liver_t2_ms_by_field"]["value"])
    context = read_clinical_context(args.context) if args.context else None
    args.output.mkdir(parents=True, exist_ok=True)

    def compute(answers: dict) -> dict:
        return review(lesions, figures, context, answers, checklist)

    session = ReviewSession(args.output / "review.json", compute, [les["id"] for les in lesions], checklist)
    session.inputs = {k: str(Path(v).resolve()) for k, v in
                      (("study", args.study), ("lesions", args.lesions), ("context", args.context)) if v}
    if args.answers:
        for scope, items in _answers_file(args.answers).items():
            for item_id, a in items.items():
                session.answer(scope, item_id, a.get("answer"), str(a.get("note") or ""))
    session.save()
    doc = session.document()
    write_text_atomic(args.output / "review.md", review_markdown(doc))
    for note in session.notes:
        print(f"note: {note}")
    print(f"review: {len(lesions)} lesion(s); study figures from {', '.join(used) or 'the lesion measurements only'}")
    for les in doc["lesions"]:
        print(f"  {les['id']:<24} {les['impression']['category']}")
    print(f"wrote review.json and review.md to {args.output}")
    return 0
