"""Run every ``benchmarks/bench_*.py`` in turn (each in its own interpreter) and print their reports.

Each benchmark is a standalone script that times our code against a baseline in the same run and prints
its figures; this runner only collects them. Exit status is non-zero when a benchmark crashed.
Run: ``python benchmarks/run_all.py [-k SUBSTRING]`` (``make bench`` does this).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run every benchmarks/bench_*.py.")
    ap.add_argument("-k", dest="pattern", default="", help="only benchmarks whose file name contains this")
    args = ap.parse_args(argv)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if args.pattern in p.name)
    if not scripts:
        print(f"no benchmark matches '{args.pattern}'", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False)
        print(f"--- {script.name}: exit {proc.returncode}, {time.perf_counter() - t0:.1f} s wall\n", flush=True)
        if proc.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
