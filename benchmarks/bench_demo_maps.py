"""Benchmark: where the maps stage of ``livermets demo`` spends its time, family by family.

The demo's study (``generate_phantom`` with the demo's defaults: seed 0, scenario 'steatosis', standard size,
5 mm breath-hold shift) goes through ``compute_study_maps`` as the demo calls it (dynamic phases registered), once
whole and once per map family; registration and relative enhancement are timed apart. Figures are wall time and
this process's CPU time (less sensitive to other jobs on a shared machine), with each family's grid and voxels.
This is a breakdown, not a race: the goal it serves (issue 11) is the whole stage in <= 10 s.
Run: ``python benchmarks/bench_demo_maps.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "LiverMetsReview"))

from LiverMetsReviewLib.phantom import generate_phantom  # noqa: E402
from LiverMetsReviewLib.pipeline import POST_CONTRAST, compute_study_maps  # noqa: E402

FAMILIES = ("adc", "fat_chemical_shift", "fat_dixon", "pdff", "enhancement")
INPUT_ROLE = {"adc": "dwi", "fat_chemical_shift": "t1_in_phase", "fat_dixon": "dixon_fat", "pdff": "multi_echo_gre",
              "enhancement": "t1_pre"}


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def _grid(series) -> str:
    size = series.image.GetSize()
    return f"{size[0]}x{size[1]}x{size[2]} x {len(series.stacks)}"


def main() -> int:
    w, c, study = _timed(lambda: generate_phantom(0, "steatosis", size="standard", breath_hold_shift_mm=5.0))
    print(f"demo phantom generated in {w:.1f} s ({len(study.series)} series; not part of the maps stage)")
    roles = {s.role: s for s in study.series}
    w_all, c_all, maps = _timed(lambda: compute_study_maps(study.series, register_dynamic=True))
    print(f"whole maps stage (as the demo runs it): {w_all:.1f} s wall, {c_all:.1f} s CPU; "
          f"{len(maps.images)} maps, skipped: {maps.skipped or 'none'}")
    print(f"  {'family':20s} {'wall s':>7s} {'CPU s':>7s} {'share':>6s}  input grid (x*y*z x stacks)")
    rows = []
    for family in FAMILIES:
        w, c, _ = _timed(lambda family=family: compute_study_maps(study.series, which=[family],
                                                                   register_dynamic=True))
        rows.append((family, w, c))
        print(f"  {family:20s} {w:7.2f} {c:7.2f} {100 * w / w_all:5.0f}%  {_grid(roles[INPUT_ROLE[family]])}")
    from LiverMetsReviewLib.maps.registration import register

    w_reg = c_reg = 0.0
    for phase in POST_CONTRAST:
        if phase in roles:
            w, c, _ = _timed(lambda phase=phase: register(roles["t1_pre"].image, roles[phase].image))
            w_reg, c_reg = w_reg + w, c_reg + c
    enh = next(r for r in rows if r[0] == "enhancement")
    print(f"    of which registration of {len(POST_CONTRAST)} phases: {w_reg:.2f} s wall, {c_reg:.2f} s CPU; "
          f"RE and subtraction: {enh[1] - w_reg:.2f} s wall")
    print(f"  sum of families {sum(r[1] for r in rows):.1f} s wall (whole stage {w_all:.1f} s); goal <= 10 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
