"""Compaction scaling: ``.venv/bin/python -m benchmarks.scaling_compaction --cpus N``.

Seeds ``4·N`` (service, hour) partitions of L0 data, compacts a copy serially and a copy on a
local Ray with ``N`` CPUs, and prints the speedup (target on a machine with N free cores:
>= 0.7·N). Each Ray task compacts one partition and reads its inputs from storage itself.
"""

from __future__ import annotations

import argparse
import shutil

from benchmarks.bench_compaction import run, scratch_roots, urls
from benchmarks.compaction_data import write_fleet
from workers.storage_io import open_backends


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cpus", type=int, required=True)
    p.add_argument("--instances", type=int, default=10)
    a = p.parse_args()
    with scratch_roots("scalecompact") as (s_root, r_root):
        store, index = open_backends(*urls(s_root))
        c = write_fleet(store, index, services=4 * a.cpus, instances=a.instances, hours=1)
        shutil.copytree(s_root, r_root)
        ts, _ = run(s_root, "serial")
        import ray

        ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
        tr, _ = run(r_root, "ray", max_in_flight=a.cpus)
        ray.shutdown()
        sp = ts / tr
        print(f"{c['rows']:,} rows, {4 * a.cpus} partitions: serial {ts:.2f} s, ray({a.cpus}) {tr:.2f} s, "
              f"speedup {sp:.2f}x = {sp / a.cpus:.2f}·N (target >= 0.7·N)")


if __name__ == "__main__":
    main()
