"""Compaction scaling: ``.venv/bin/python -m benchmarks.scaling_compaction --cpus N``.

Seeds ``4·N`` (service, hour) partitions of L0 data, compacts a copy serially and a copy on a
local Ray with ``N`` CPUs, and prints the speedup (target on a machine with N free cores:
>= 0.7·N). Each Ray task compacts one partition and reads its inputs from storage itself.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.bench_compaction import urls
from benchmarks.compaction_data import write_fleet
from fleetprof.metastore.index import MAX_TIME_MS
from workers import compact
from workers.storage_io import open_backends


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cpus", type=int, required=True)
    p.add_argument("--instances", type=int, default=10)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scalecompact"))
    try:
        s_root, r_root = tmp / "s", tmp / "r"
        store, index = open_backends(*urls(s_root))
        c = write_fleet(store, index, services=4 * a.cpus, instances=a.instances, hours=1)
        shutil.copytree(s_root, r_root)
        t = time.perf_counter()
        compact.run_compaction(*urls(s_root), levels=(1,), start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="serial", progress=False, gc=False)
        ts = time.perf_counter() - t
        import ray

        ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
        t = time.perf_counter()
        compact.run_compaction(*urls(r_root), levels=(1,), start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="ray",
                               progress=False, gc=False, max_in_flight=a.cpus)
        tr = time.perf_counter() - t
        ray.shutdown()
        sp = ts / tr
        print(f"{c['rows']:,} rows, {4 * a.cpus} partitions: serial {ts:.2f} s, ray({a.cpus}) {tr:.2f} s, "
              f"speedup {sp:.2f}x = {sp / a.cpus:.2f}·N (target >= 0.7·N)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
