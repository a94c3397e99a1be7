"""Validate the checklist engine on phantoms (automatic suggestions only, no reader answers).

1. The fixed lesion catalogue in every scenario: impression against the truth's expected impression.
2. ``--studies N`` varied phantoms (``generate_phantom(seed, scenario, vary=True)``), scenarios in turn.
Pipeline per study: phantom -> seeds at the truth centres -> lesion segmentation and measurement -> review.
Prints the confusion matrix (expected x got), every disagreement with the evidence that drove it, and for
each pitfall of the truth whether the item naming it fired. Lesions the segmentation refused are counted
apart (they never reach the checklist).

    .venv/bin/python benchmarks/validate_checklist.py --studies 50 [--size small] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "LiverMetsReview"))

from LiverMetsReviewLib.checklist.data import categories, load_checklist  # noqa: E402
from LiverMetsReviewLib.checklist.phantom_check import pitfall_fired, review_phantom  # noqa: E402
from LiverMetsReviewLib.phantom import generate_phantom  # noqa: E402
from LiverMetsReviewLib.phantom.scenarios import scenario_names  # noqa: E402


def run_study(seed: int, scenario: str, vary: bool, size: str) -> dict:
    study = generate_phantom(seed, scenario, size=size, vary=vary)
    out = review_phantom(study)
    items = out["result"]["study"]["items"]
    pit = []
    for row in out["rows"]:
        for p in row["expected_pitfalls"]:
            pit.append((p, pitfall_fired(row, items, p)))
    study_yes = {r["id"] for r in items if r["suggested"] == "yes"}
    return {"seed": seed, "scenario": scenario, "vary": vary, "rows": out["rows"], "pitfalls": pit,
            "study_yes": sorted(study_yes), "not_measured": out["not_measured"]}


def confusion(rows: list[dict]) -> str:
    cats = categories(load_checklist())
    short = {c: c.replace("probably benign: ", "pb:").replace("treated lesion: ", "tx:")[:14] for c in cats}
    m = Counter((r["expected"], r["got"]) for r in rows)
    lines = ["expected \\ got".ljust(16) + "".join(short[c].rjust(15) for c in cats)]
    for e in cats:
        if any(m[(e, g)] for g in cats):
            lines.append(short[e].ljust(16) + "".join(str(m[(e, g)] or ".").rjust(15) for g in cats))
    return "\n".join(lines)


def report(title: str, studies: list[dict]) -> dict:
    rows = [dict(r, seed=s["seed"], scenario=s["scenario"]) for s in studies for r in s["rows"]]
    ok = sum(r["expected"] == r["got"] for r in rows)
    refused = sum(len(s["not_measured"]) for s in studies)
    print(f"\n== {title}: {len(studies)} studies, {len(rows)} lesions reviewed, {refused} not measurable "
          f"(segmentation refused); impression = expected for {ok}/{len(rows)} "
          f"({100.0 * ok / max(len(rows), 1):.1f} %)")
    print(confusion(rows))
    pit = Counter()
    for s in studies:
        for p, fired in s["pitfalls"]:
            if fired is not None:
                pit[(p, fired)] += 1
    print("pitfall item fired (yes/no) per truth pitfall:")
    for p in sorted({p for p, _ in pit}):
        print(f"  {p:<52} {pit[(p, True)]:>4} / {pit[(p, True)] + pit[(p, False)]}")
    print("disagreements:")
    for r in rows:
        if r["expected"] != r["got"]:
            ev = "; ".join(f"{x['condition']} [{x['evidence']}]" for x in r["reasons"]) or "no rule held"
            if r.get("evidence"):
                ev += " | measured: " + "; ".join(r["evidence"])
            print(f"  {r['scenario']}/{r['seed']} {r['id']} ({r['type']}): expected '{r['expected']}', got "
                  f"'{r['got']}' by rule {r['rule']}; fired: {', '.join(r['fired'])}; reasons: {ev}")
    return {"title": title, "lesions": len(rows), "agree": ok, "refused": refused}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=50, help="number of varied studies (default 50)")
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--size", default="small", choices=("small", "standard"))
    ap.add_argument("--no-catalogue", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write every row to this file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    scen = scenario_names()
    results, summary = {}, []
    if not args.no_catalogue:
        results["catalogue"] = [run_study(0, s, False, args.size) for s in scen]
        summary.append(report("fixed catalogue, every scenario", results["catalogue"]))
    varied = []
    for i in range(args.studies):
        varied.append(run_study(args.first_seed + i, scen[i % len(scen)], True, args.size))
        print(f"  study {i + 1}/{args.studies} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if varied:
        results["varied"] = varied
        summary.append(report(f"varied phantoms (seeds {args.first_seed}..)", varied))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
