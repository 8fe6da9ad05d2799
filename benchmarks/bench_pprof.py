"""pprof decode + normalise (``decode_pprof`` → canonical Profile) vs protobuf's
``ParseFromString`` alone on the same uncompressed bytes.

Ratio = ParseFromString time / decode_pprof time (target: ≥ 0.3). Inputs: the
largest shared pprof fixture and a seeded synthetic profile of ~100k samples, depth ~30
(20k distinct stacks sharing prefixes, Zipf-distributed counts, two sample types, a
thread label on some samples), built with the generated ``profile_pb2`` classes.

Both sides are timed in CPU time (``time.process_time``, best of R interleaved pairs of
runs; 40 R for the fixture, whose pairs take milliseconds) so that other load on a shared
machine counts less; the load average is printed
alongside. The fixture is measured again in a fresh process with glibc's mmap and trim
thresholds raised (``--warm-allocator``): there neither side pays page faults for fresh
memory, which otherwise weigh on both depending on the heap's state.

Run: ``.venv/bin/python -m benchmarks.bench_pprof [--samples N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import ctypes
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fleetprof.formats.pprof import decode_pprof
from fleetprof.formats.proto import profile_pb2

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "pprof"


def synthetic_profile(n_samples: int = 100_000, n_stacks: int = 20_000, depth: int = 30, seed: int = 7) -> bytes:
    """Seeded synthetic pprof (uncompressed bytes)."""
    rng = np.random.default_rng(seed)
    p = profile_pb2.Profile()
    strings = [""]

    def s(text: str) -> int:
        strings.append(text)
        return len(strings) - 1

    for t, u in (("samples", "count"), ("cpu", "nanoseconds")):
        p.sample_type.add(type=s(t), unit=s(u))
    p.period_type.type, p.period_type.unit = 3, 4
    p.period = 10_000_000
    p.time_nanos = 1_700_000_000_000_000_000
    p.duration_nanos = 10_000_000_000
    p.mapping.add(id=1, memory_start=0x400000, memory_limit=0x2000000, filename=s("/usr/local/bin/app"), has_functions=True)
    n_funcs, n_files = 6000, 400
    files = [s(f"/src/pkg{i}/file{i}.go") for i in range(n_files)]
    for f in range(1, n_funcs + 1):
        name = s(f"github.com/acme/pkg{f % n_files}.(*Type{f % 97}).Method{f}")
        p.function.add(id=f, name=name, system_name=name, filename=files[f % n_files], start_line=f % 900)
    n_locs = 15_000
    fn_of_loc = rng.integers(1, n_funcs + 1, size=n_locs)
    for i in range(1, n_locs + 1):
        loc = p.location.add(id=i, mapping_id=1, address=0x400000 + 24 * i)
        loc.line.add(function_id=int(fn_of_loc[i - 1]), line=int(10 + i % 500))
        if i % 10 == 0:  # some inlined frames
            loc.line.add(function_id=int(fn_of_loc[(i * 7) % n_locs]), line=int(20 + i % 300))
    # distinct stacks (root first): extend a random prefix of an earlier stack
    stacks: list[np.ndarray] = [rng.integers(1, n_locs + 1, size=depth)]
    for _ in range(n_stacks - 1):
        parent = stacks[int(rng.integers(0, len(stacks)))]
        d = int(np.clip(rng.normal(depth, 6), 5, 64))
        keep = int(rng.integers(min(3, d), min(d, len(parent)) + 1))
        stacks.append(np.concatenate([parent[:keep], rng.integers(1, n_locs + 1, size=d - keep)]))
    weights = 1.0 / np.arange(1, n_stacks + 1) ** 1.1
    pick = rng.choice(n_stacks, size=n_samples, p=weights / weights.sum())
    counts = rng.integers(1, 6, size=n_samples)
    key, vals = s("thread"), [s(f"worker-{i}") for i in range(8)]
    labelled = rng.random(n_samples) < 0.3
    thread = rng.integers(0, 8, size=n_samples)
    for i in range(n_samples):
        smp = p.sample.add()
        smp.location_id.extend(stacks[pick[i]][::-1].tolist())  # leaf first
        c = int(counts[i])
        smp.value.extend((c, c * 10_000_000))
        if labelled[i]:
            smp.label.add(key=key, str=vals[thread[i]])
    p.string_table.extend(strings)
    return p.SerializeToString()


def _cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def measure(name: str, raw: bytes, repeat: int) -> float:
    """Best CPU time of each side over ``repeat`` interleaved pairs of runs (a burst of
    load on the shared machine then hits both sides alike)."""
    prof = decode_pprof(raw)  # warm up
    parse = ours = float("inf")
    for _ in range(repeat):
        parse = min(parse, _cpu(lambda: profile_pb2.Profile().ParseFromString(raw)))
        ours = min(ours, _cpu(lambda: decode_pprof(raw)))
    ratio = parse / ours
    print(
        f"{name}: {len(raw) / 1e6:.1f} MB, {prof.samples.height} sample rows, {prof.nodes.height} nodes | "
        f"ParseFromString {parse * 1e3:.2f} ms, decode_pprof {ours * 1e3:.2f} ms | ratio {ratio:.2f} (target >= 0.3)"
    )
    return ratio


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--warm-allocator", action="store_true", help="raise glibc's mmap and trim thresholds first (no page faults)")
    ap.add_argument("--fixture-only", action="store_true")
    args = ap.parse_args(argv)
    if args.warm_allocator and not _warm_allocator():
        print("(not glibc: --warm-allocator ignored)")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; CPU time (process_time), best of runs")
    files = [p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".md"]
    largest = max(files, key=lambda p: len(_raw(p.read_bytes())))
    tag = " (allocator warm)" if args.warm_allocator else ""
    r1 = measure(f"fixture {largest.name}{tag}", _raw(largest.read_bytes()), args.repeat * 40)  # ~6 ms a pair: many pairs
    if args.fixture_only:
        return
    t = time.perf_counter()
    raw = synthetic_profile(args.samples)
    print(f"(synthetic profile generated in {time.perf_counter() - t:.1f} s)")
    r2 = measure(f"synthetic {args.samples} samples", raw, args.repeat)
    print(f"pprof decode ratio (ParseFromString / decode_pprof): fixture {r1:.2f}, synthetic {r2:.2f}")
    if not args.warm_allocator:  # the same fixture without page faults, in a fresh process
        cmd = [sys.executable, "-m", "benchmarks.bench_pprof", "--warm-allocator", "--fixture-only", "--repeat", str(args.repeat)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout
        print(out.strip().splitlines()[-1])


def _warm_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB: freed arrays stay in the heap and
    are reused, so neither side pays page faults for fresh memory."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def _raw(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


if __name__ == "__main__":
    main()
