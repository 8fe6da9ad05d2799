"""Compaction benchmark: throughput serial vs Ray, storage after L2 vs gzipped pprof, and a
flame-graph query over 1 h × 100 instances after compaction.

``.venv/bin/python -m benchmarks.bench_compaction [--hours 2] [--instances 10] [--services 10]``
Targets: storage ratio <= 0.2, flame-graph query < 0.3 s.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.compaction_data import CPU, T0, pprof_gzip_bytes_per_profile, write_fleet
from fleetprof.metastore.index import MAX_TIME_MS
from workers import compact
from workers.storage_io import open_backends


def urls(root: Path) -> tuple[str, str]:
    """Storage and index URLs of a benchmark data root."""
    return (root / "data").as_uri(), f"sqlite://{root / 'index.db'}"


@contextmanager
def scratch_roots(prefix: str) -> Iterator[tuple[Path, Path]]:
    """Two data roots (for the serial and the Ray run) in a fresh temporary folder that is
    removed afterwards; neither root exists yet."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp / "serial", tmp / "ray"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(root: Path, mode: str, *, levels: tuple[int, ...] = (1,), max_in_flight: int | None = None,
        **kw: Any) -> tuple[float, dict]:
    """Compact ``levels`` of all time under ``root`` (no settling, no GC; ``kw`` goes to
    :func:`workers.compact.run_compaction`); (seconds, result)."""
    t = time.perf_counter()
    out = compact.run_compaction(*urls(root), levels=levels, start_ms=0, end_ms=MAX_TIME_MS, settle=False,
                                 mode=mode, progress=False, gc=False, max_in_flight=max_in_flight, **kw)
    return time.perf_counter() - t, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hours", type=int, default=1)
    p.add_argument("--services", type=int, default=10)
    p.add_argument("--instances", type=int, default=10)
    a = p.parse_args()
    with scratch_roots("benchcompact") as (serial_root, ray_root):
        store, index = open_backends(*urls(serial_root))
        t = time.perf_counter()
        c = write_fleet(store, index, services=a.services, instances=a.instances, hours=a.hours)
        print(f"seeded {c['segments']} L0 segments, {c['rows']:,} sample rows, {c['profiles']:,} profiles "
              f"({a.services * a.instances} instances × {a.hours} h @10 s) in {time.perf_counter() - t:.1f} s")
        l0_bytes = sum(e.bytes for e in index.query("bench", 0, MAX_TIME_MS))
        shutil.copytree(serial_root, ray_root)
        ts, out = run(serial_root, "serial")
        import ray

        ray.init(include_dashboard=False, log_to_driver=False)
        tr, _ = run(ray_root, "ray")
        cpus = int(ray.cluster_resources().get("CPU", 1))
        ray.shutdown()
        rows = out["levels"]["L1"]["samples_in"]
        print(f"compaction L0->L1 serial: {rows / ts:,.0f} sample rows/s ({ts:.2f} s)")
        print(f"compaction L0->L1 ray ({cpus} CPUs): {rows / tr:,.0f} sample rows/s ({tr:.2f} s); speedup {ts / tr:.2f}x")
        store, index = open_backends(*urls(serial_root))
        run(serial_root, "serial", levels=(2,))
        l2 = index.query("bench", 0, MAX_TIME_MS)
        l2_bytes = sum(e.bytes for e in l2)
        per_pprof = pprof_gzip_bytes_per_profile()
        pprof_total = per_pprof * c["profiles"]
        print(f"storage: L0 {l0_bytes / 1e6:.1f} MB, L2 {l2_bytes / 1e6:.2f} MB ({len(l2)} segments), gzipped pprof "
              f"{pprof_total / 1e6:.1f} MB ({per_pprof:.0f} B/profile × {c['profiles']:,}); L2/pprof = {l2_bytes / pprof_total:.3f} (target <= 0.2)")
        from fleetprof.query.select import select_merge
        from fleetprof.render.flamebearer import to_flamebearer

        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            prof = select_merge(store, index, "bench", CPU, [], T0, T0 + 3_600_000 - 1)
            to_flamebearer(prof, 0, max_nodes=2048)
            best = min(best, time.perf_counter() - t)
        print(f"flame graph query, 1 h × {a.services * a.instances} instances after L2: {best:.3f} s (target < 0.3 s)")


if __name__ == "__main__":
    main()
