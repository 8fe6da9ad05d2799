"""`make bench`: run every ``benchmarks/bench_*.py`` in turn and print its ratios.

Each benchmark is a module with a ``main()`` that measures fleetprof against a reference
in the same run and prints ratios. ``FLAMEGRAPH_PL=/path/to/flamegraph.pl`` is passed on to
the flame-graph benchmarks (a FlameGraph checkout fetched to a temporary directory, never
committed): ``bench_flamegraph`` (in-process) and ``bench_cli`` (whole processes on three
input shapes, ``--help`` and a small file). ``BENCH_ONLY=pprof,merge`` restricts the set.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _modules() -> list[str]:
    only = {x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()}
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    return [n for n in names if not only or n.removeprefix("bench_") in only]


def _args(name: str) -> list[str]:
    fg = os.environ.get("FLAMEGRAPH_PL")
    if name == "bench_flamegraph" and fg:
        return ["--flamegraph-pl", fg]
    return []


def main() -> int:
    failed = []
    for name in _modules():
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *_args(name)], cwd=HERE.parent)
        print(f"--- {name}: exit {rc} in {time.perf_counter() - t0:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
