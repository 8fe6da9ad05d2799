"""Merge benchmark: sum 50M (node id, value) rows over ~1M distinct node ids.

Reference: ``numpy.bincount(dense_ids, weights=values)`` on dense ids ``0..K-1`` (the
fastest possible group-by-sum: no key lookup at all). Ours: the merge kernel
:func:`fleetprof.model.groupsum.sum_by_key` on the same rows keyed by 64-bit node ids
(exact int64 sums), and the whole sample aggregation that :func:`fleetprof.model.merge`
runs (``profile._aggregate`` over a samples table: column extraction, the kernel, zero-row
filtering and the result table). Printed ratios = bincount time / our time (target >= 0.25;
the headline is the full merge aggregation). Best of ``--repeat`` interleaved runs. Seeded.
Times are wall clock: ours runs on every core (numba threads, printed with its CPU time),
``numpy.bincount`` on one.

    .venv/bin/python -m benchmarks.bench_merge [--rows 50000000] [--keys 1000000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import polars as pl
from numba import get_num_threads

from fleetprof.model.groupsum import sum_by_key
from fleetprof.model.hashing import mix
from fleetprof.model.profile import _aggregate


def _best(fn: Callable[[], object], times: list[float], cpu: list[float] | None = None) -> object:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    times.append(time.perf_counter() - t0)
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-polars", action="store_true", help="skip the (slow) polars group-by timing")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(20240611)
    node_ids = mix(np.arange(1, args.keys + 1, dtype=np.uint64), np.full(args.keys, 7, dtype=np.uint64))
    dense = rng.integers(0, args.keys, args.rows)
    ids = node_ids[dense]
    values = rng.integers(1, 10_000, args.rows)
    print(f"rows={args.rows:,} distinct ids={args.keys:,}", flush=True)

    ref_t: list[float] = []
    our_t: list[float] = []
    our_cpu: list[float] = []
    for _ in range(args.repeat):
        ref = _best(lambda: np.bincount(dense, weights=values, minlength=args.keys), ref_t)
        keys, sums = _best(lambda: sum_by_key(ids, values), our_t, our_cpu)  # type: ignore[misc]
    expect = np.asarray(ref).astype(np.int64)  # exact: every partial sum < 2**53
    order = np.argsort(keys)
    want = np.argsort(node_ids)
    ok = np.array_equal(keys[order], node_ids[want][expect[want] != 0]) and np.array_equal(sums[order], expect[want][expect[want] != 0])
    print(f"numpy.bincount (dense ids):   {min(ref_t):.3f} s  (runs: {', '.join(f'{t:.2f}' for t in ref_t)})")
    print(f"fleetprof sum_by_key (u64 ids): {min(our_t):.3f} s  (runs: {', '.join(f'{t:.2f}' for t in our_t)})  exact={ok}; "
          f"{get_num_threads()} numba threads, CPU {min(our_cpu):.3f} s (bincount: one thread)")
    df = pl.DataFrame({"node_id": ids, "labels": np.zeros(args.rows, np.uint64), "v0": values})
    agg_t: list[float] = []
    for _ in range(args.repeat):
        merged = _best(lambda: _aggregate(df, ["v0"]), agg_t)
    ok = ok and int(merged["v0"].sum()) == int(values.sum()) and merged.height == int((expect != 0).sum())  # type: ignore[index,union-attr]
    print(f"fleetprof merge aggregation:  {min(agg_t):.3f} s  (runs: {', '.join(f'{t:.2f}' for t in agg_t)})  exact={ok}")
    if not args.skip_polars:
        pt: list[float] = []
        lazy = df.lazy().group_by("node_id").agg(pl.col("v0").sum())
        _best(lambda: lazy.collect(), pt)
        print(f"plain polars group-by (for information): {pt[0]:.3f} s  -> ratio {min(ref_t) / pt[0]:.3f}")
    print(f"RATIO kernel: bincount / sum_by_key = {min(ref_t) / min(our_t):.3f}")
    print(f"RATIO merge: bincount / fleetprof merge aggregation = {min(ref_t) / min(agg_t):.3f}  (target >= 0.25)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
