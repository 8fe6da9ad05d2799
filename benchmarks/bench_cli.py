"""``fleetprof flamegraph FILE -o out.svg`` as whole processes against ``flamegraph.pl``.

For each input shape of :mod:`benchmarks.folded_shapes` (few hot stacks, a large
vocabulary of short names, deep recursion; about 50 MB each) it prints the input size,
stacks, distinct frames, the median wall and CPU time of ``--repeat`` whole
``fleetprof flamegraph`` processes (start-up, imports and kernel loading included), the same
for ``perl flamegraph.pl FILE > out.svg`` (``--perl-repeat`` runs, same file, same run),
their ratios (target >= 20x), and the in-process time of the same path beside them, and
the whole process on the gzip'd file (flamegraph.pl reads plain text only). Then
``fleetprof --help`` and a small file (target < 0.3 s each). CPU time is the children's
user + system time: on a shared, loaded machine it is the steadier of the two figures.

``flamegraph.pl`` is never shipped with fleetprof: pass ``--flamegraph-pl PATH`` or set
``FLAMEGRAPH_PL`` (e.g. a FlameGraph checkout in a temporary directory); without it the
fleetprof figures are printed and the ratios are reported as not measured.

Usage: ``python -m benchmarks.bench_cli [--flamegraph-pl PATH] [--shapes hot,vocab,deep]``
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.folded_shapes import SHAPES, generate

TARGET_RATIO = 20.0
TARGET_START_S = 0.3


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_timed(cmd: list[str], stdout: Path | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one process; raises when it fails."""
    c0, t0 = _children_cpu(), time.perf_counter()
    if stdout is None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    else:
        with stdout.open("wb") as fh:
            subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.PIPE)
    return time.perf_counter() - t0, _children_cpu() - c0


def median_run(cmd: list[str], n: int, stdout: Path | None = None) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``n`` runs of ``cmd``."""
    runs = [run_timed(cmd, stdout) for _ in range(max(1, n))]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def fleetprof_cmd() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m fleetprof``."""
    script = Path(sys.executable).with_name("fleetprof")
    return [str(script)] if script.exists() else [sys.executable, "-m", "fleetprof"]


def in_process(data: bytes, out: Path, n: int) -> float:
    """Best wall seconds of the CLI's folded → SVG path with every module imported."""
    from fleetprof.flame.folded_tree import SAMPLES, folded_call_tree
    from fleetprof.render.svg import min_ticks_of, render_tree_svg

    best = float("inf")
    for _ in range(max(1, n)):
        t0 = time.perf_counter()
        tree = folded_call_tree(data, min_total=min_ticks_of(1200, 0.1))
        if tree is None:
            raise SystemExit("the benchmark input did not take the direct folded path")
        out.write_text(render_tree_svg(tree, SAMPLES, title="bench"))
        best = min(best, time.perf_counter() - t0)
    return best


def describe(data: bytes) -> tuple[int, int]:
    """(stacks, distinct frames) of folded ``data``."""
    from fleetprof.formats.folded import decode_folded

    profile = decode_folded(data)
    return int(profile.samples.height), int(profile.frames.height)


def find_flamegraph_pl(arg: Path | None) -> Path | None:
    path = arg or (Path(os.environ["FLAMEGRAPH_PL"]) if os.environ.get("FLAMEGRAPH_PL") else None)
    return path if path is not None and path.is_file() else None


def _ratio(ref: float | None, ours: float) -> str:
    return f"{ref / ours:5.1f}x" if ref is not None and ours > 0 else "  n/a"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="fleetprof flamegraph vs flamegraph.pl as whole processes")
    ap.add_argument("--flamegraph-pl", type=Path, help="path of flamegraph.pl (default: $FLAMEGRAPH_PL)")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    ap.add_argument("--repeat", type=int, default=5, help="whole fleetprof processes per shape (median)")
    ap.add_argument("--perl-repeat", type=int, default=1, help="flamegraph.pl runs per shape (median)")
    args = ap.parse_args(argv)
    fg = find_flamegraph_pl(args.flamegraph_pl)
    perl = shutil.which("perl")
    if fg is None or perl is None:
        print("flamegraph.pl not found (pass --flamegraph-pl or set FLAMEGRAPH_PL; perl must be installed):"
              " ratios are not measured. Fetch it into a temporary directory, e.g.\n"
              "  git clone --depth 1 https://github.com/brendangregg/FlameGraph /tmp/FlameGraph")
    fp = fleetprof_cmd()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"fleetprof: {' '.join(fp)}; flamegraph.pl: {fg or 'absent'}; load average {load} on {os.cpu_count()} CPUs")
    worst = float("inf")
    with tempfile.TemporaryDirectory(prefix="fleetprof-bench-cli-") as tmp:
        tmpd = Path(tmp)
        for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
            data = generate(shape)
            src = tmpd / f"{shape}.folded"
            src.write_bytes(data)
            stacks, frames = describe(data)
            out = tmpd / f"{shape}.svg"
            wall, cpu = median_run([*fp, "flamegraph", str(src), "-o", str(out)], args.repeat)
            inproc = in_process(data, tmpd / "inproc.svg", 3)
            ref_wall = ref_cpu = None
            if fg is not None and perl is not None:
                ref_wall, ref_cpu = median_run([perl, str(fg), str(src)], args.perl_repeat, stdout=tmpd / "ref.svg")
                worst = min(worst, ref_cpu / cpu, ref_wall / wall)
            print(f"\n[{shape}] {len(data) / 1e6:.1f} MB, {stacks} stacks, {frames} distinct frames, SVG {out.stat().st_size / 1e6:.1f} MB")
            print(f"  fleetprof whole process (median of {args.repeat}): wall {wall:.2f} s, CPU {cpu:.2f} s;"
                  f" in-process {inproc:.2f} s")
            gz = tmpd / f"{shape}.folded.gz"
            gz.write_bytes(gzip.compress(data, compresslevel=6))
            gz_wall, gz_cpu = median_run([*fp, "flamegraph", str(gz), "-o", str(out)], args.repeat)
            print(f"  the same file gzip'd ({gz.stat().st_size / 1e6:.1f} MB):         wall {gz_wall:.2f} s, CPU {gz_cpu:.2f} s")
            if ref_wall is not None and ref_cpu is not None:
                print(f"  flamegraph.pl (median of {args.perl_repeat}):             wall {ref_wall:.2f} s, CPU {ref_cpu:.2f} s")
                print(f"  ratio: wall {_ratio(ref_wall, wall)}, CPU {_ratio(ref_cpu, cpu)} (target >= {TARGET_RATIO:.0f}x);"
                      f" in-process wall {_ratio(ref_wall, inproc)}")
        small = tmpd / "small.folded"
        small.write_bytes(generate("vocab", 200, seed=3))
        help_wall, help_cpu = median_run([*fp, "--help"], args.repeat)
        small_wall, small_cpu = median_run([*fp, "flamegraph", str(small), "-o", str(tmpd / "small.svg")], args.repeat)
        print(f"\nfleetprof --help: wall {help_wall:.2f} s, CPU {help_cpu:.2f} s (target < {TARGET_START_S} s)")
        print(f"small file (200 stacks): wall {small_wall:.2f} s, CPU {small_cpu:.2f} s (target < {TARGET_START_S} s)")
    if fg is not None and worst < float("inf"):
        print(f"\nworst whole-process ratio over shapes and (wall, CPU): {worst:.1f}x (target >= {TARGET_RATIO:.0f}x)")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
