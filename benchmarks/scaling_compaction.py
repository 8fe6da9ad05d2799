"""Compaction scaling: ``.venv/bin/python -m benchmarks.scaling_compaction --cpus N``.

Seeds ``4·N`` services × 1 hour of single-service L0 segments (one bucket, ``4·N`` service
groups: one task each; ``--shape flush``: segments holding every service, as the server's
segment writer flushes them, hence one group and one task per bucket), compacts one copy
serially in this process and one copy on a fresh local Ray per CPU count in ``--ray-cpus``
(default ``N``), and prints the speedups (target on a machine with N free cores: >= 0.7·N).
Each Ray task compacts its service group and reads its inputs from storage itself.

``--threads-per-task K`` (default 1) pins the libraries' thread pools (polars, pyarrow's
CPU pool, numba, OpenMP/BLAS; pyarrow's IO pool too in this process) to K threads here and
in every Ray worker (:func:`workers.parallel.ray_task_options`), so the speedup measures
task parallelism rather than libraries already using every core in the serial run; 0
leaves them at the libraries' defaults. Ray workers are started and warmed (modules
imported) before each timed run; their start-up is printed apart.

``--breakdown`` prints, per run, where the time goes (driver planning, per-step task time,
task sizes, Ray dispatch gaps, bytes passed as task arguments and results, and the cores
the tasks actually got: on a shared machine other processes take some) and an Amdahl
prediction for ``--predict`` CPU counts from the measured serial part and per-task costs.
``--unsplit`` also runs Ray with one task per bucket (no service split) for comparison.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("open", "plan", "read", "decode", "merge", "encode", "write", "index")


def pin_pyarrow(threads: int) -> None:
    """Size pyarrow's CPU and IO pools (no-op for 0)."""
    if threads > 0:
        import pyarrow as pa

        pa.set_cpu_count(threads)
        pa.set_io_thread_count(threads)


def pools() -> dict[str, int]:
    """This process's library pool sizes (what the pinning achieved)."""
    import polars as pl
    import pyarrow as pa

    return {"pid": os.getpid(), "polars": pl.thread_pool_size(), "arrow_cpu": pa.cpu_count(), "arrow_io": pa.io_thread_count()}


def _warm() -> dict[str, int]:
    """Ray warm-up task: import what compaction imports, report the pools."""
    import fleetprof.segment.format  # noqa: F401
    import workers.compact  # noqa: F401

    time.sleep(0.3)  # hold this worker so the other warm-up tasks land on other workers
    return pools()


@dataclass
class Run:
    """One timed compaction run and what its tasks reported."""

    label: str
    cpus: int
    wall: float
    summary: dict[str, Any]
    tasks: list[dict[str, Any]] = field(default_factory=list)
    arg_bytes: list[int] = field(default_factory=list)
    t0: float = 0.0
    """Wall-clock time the run started (for the tasks' start/end)."""


def timed(root: Path, mode: str, label: str, cpus: int, threads: int, **kw: Any) -> Run:
    """Compact L1 under ``root`` and record each task's summary."""
    from benchmarks.bench_compaction import run
    from workers.compact import CompactJob
    from workers.storage_io import backend_env

    got: list[dict[str, Any]] = []
    sizes: list[int] = []
    job = CompactJob("x", "y", backend_env())

    def on_result(part: Any, r: dict[str, Any]) -> None:
        got.append(r)
        sizes.append(len(pickle.dumps((job, [part]))))

    t0 = time.time()
    if mode == "serial":
        pin_pyarrow(threads)
    wall, out = run(root, mode, max_in_flight=cpus if mode == "ray" else None, on_result=on_result, **kw)
    return Run(label, cpus, wall, out, got, sizes, t0)


def ray_run(root: Path, cpus: int, threads: int, **kw: Any) -> tuple[Run, float, list[dict[str, int]]]:
    """A fresh local Ray with ``cpus`` CPUs: warm its workers (with the compaction tasks'
    options, so the timed run reuses them), then one timed run."""
    import ray

    from workers.parallel import ray_task_options

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        t = time.perf_counter()
        warm = ray.remote(**ray_task_options(threads))(_warm)
        seen = ray.get([warm.remote() for _ in range(cpus // max(threads, 1) or 1)])
        startup = time.perf_counter() - t
        r = timed(root, "ray", f"ray({cpus})" + (" unsplit" if kw.get("split_services") is False else ""), cpus,
                  threads, threads_per_task=threads, **kw)
    finally:
        ray.shutdown()
    return r, startup, seen


# ---------------------------------------------------------------------------- breakdown
def task_seconds(r: Run) -> list[float]:
    return [t["ended"] - t["started"] for t in r.tasks]


def dispatch_gaps(r: Run) -> list[float]:
    """Per worker, the idle time between one task's end and its next task's start."""
    by_pid: dict[int, list[dict[str, Any]]] = {}
    for t in r.tasks:
        by_pid.setdefault(t["pid"], []).append(t)
    gaps = []
    for ts in by_pid.values():
        ts.sort(key=lambda t: t["started"])
        gaps += [b["started"] - a["ended"] for a, b in zip(ts, ts[1:], strict=False)]
    return gaps


def driver_serial(r: Run) -> float:
    """Seconds the driver spent outside the tasks' span (planning, splitting, dispatching the
    first task, collecting the last result, summing)."""
    if not r.tasks:
        return r.wall
    first = min(t["started"] for t in r.tasks)
    last = max(t["ended"] for t in r.tasks)
    return max(r.wall - (last - first), 0.0)


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     for row in rows)


def breakdown(runs: list[Run]) -> str:
    """The per-run table described in the module docstring."""
    hdr = ("", *(r.label for r in runs))
    lvl = [r.summary["levels"]["L1"] for r in runs]

    def row(name: str, f: Callable[[Run, dict[str, Any]], str]) -> tuple[str, ...]:
        return (name, *(f(r, v) for r, v in zip(runs, lvl, strict=True)))

    def stage(s: str) -> Callable[[Run, dict[str, Any]], str]:
        return lambda r, _v: f"{sum(t['stages'].get(s, 0.0) for t in r.tasks):.2f}"

    rows = [hdr,
            row("wall s", lambda r, _v: f"{r.wall:.2f}"),
            row("driver: plan s", lambda _r, v: f"{v['plan_s']:.3f}"),
            row("driver: split s", lambda _r, v: f"{v['split_s']:.3f}"),
            row("driver: outside tasks s", lambda r, _v: f"{driver_serial(r):.3f}"),
            row("tasks", lambda _r, v: f"{v['tasks']}"),
            row("task s: sum", lambda r, _v: f"{sum(task_seconds(r)):.2f}"),
            *(row(f"  {s}", stage(s)) for s in STAGES),
            row("task CPU s: sum", lambda r, _v: f"{sum(t['cpu'] for t in r.tasks):.2f}"),
            row("task s: mean", lambda r, _v: f"{statistics.fmean(task_seconds(r)):.3f}"),
            row("task s: max", lambda r, _v: f"{max(task_seconds(r)):.3f}"),
            row("max/mean (straggler)", lambda r, _v: f"{max(task_seconds(r)) / statistics.fmean(task_seconds(r)):.2f}"),
            row("inputs per task max", lambda r, _v: f"{max(t['inputs'] for t in r.tasks)}"),
            row("first task start s", lambda r, _v: f"{min(t['started'] for t in r.tasks) - r.t0:.3f}"),
            row("dispatch gap s (mean)", lambda r, _v: f"{statistics.fmean(dispatch_gaps(r) or [0.0]):.4f}"),
            row("workers used", lambda r, _v: f"{len({t['pid'] for t in r.tasks})}"),
            row("task arg bytes max", lambda r, _v: f"{max(r.arg_bytes)}"),
            row("task result bytes max", lambda r, _v: f"{max(len(pickle.dumps(t)) for t in r.tasks)}"),
            row("busy = sum task s / (wall·cpus)", lambda r, _v: f"{sum(task_seconds(r)) / (r.wall * r.cpus):.2f}"),
            row("cores got = task CPU s / wall", lambda r, _v: f"{sum(t['cpu'] for t in r.tasks) / r.wall:.2f}")]
    return table(rows)


def predict(serial: Run, ray: Run, n_data: int, ns: list[int], groups_grow: bool) -> str:
    """Amdahl prediction for the benchmark's own data at each N (data of ``4·N`` services).

    From the serial run on the data of ``n_data``: the driver's serial seconds per input
    segment ``d`` (planning, splitting, summing: it grows with the data) and the task
    seconds of the parallel pass (sum ``W``, max/mean ``m``; the chunks of a group larger
    than one swap when there are any) and of the later passes ``W2`` (merging the chunks'
    outputs: one task per group, after the chunks); from the Ray run: the fixed Ray
    overhead ``o`` (its driver time outside the tasks minus the serial run's), the per-task
    dispatch gap ``g`` and the slowdown ``c`` of a task running beside others: its CPU
    seconds on Ray / serial (more work per task: memory bandwidth, caches, index locks; a
    task's wall time on a shared machine also counts the time others held its core, which
    N dedicated cores would not have). At N the data and its seconds scale by ``N / n_data``;
    the task count too when each service is its own group (``groups_grow``), else it stays
    and each task grows. T1 = D + W(N) + W2(N), TN = D + o + waves·(t(N)·c + g) +
    t(N)·c·(m - 1) + W2(N)·c with D = d·inputs(N), t(N) = W(N) / tasks(N),
    waves = ceil(tasks(N) / N) (the last wave waits for its largest task); speedup = T1 / TN."""
    lv = serial.summary["levels"]["L1"]
    d = driver_serial(serial) / max(lv["inputs"], 1)
    chunked = any(x["chunk"] for x in serial.tasks)
    par = [x["ended"] - x["started"] for x in serial.tasks if x["chunk"] or not chunked]
    w, w2 = sum(par), sum(task_seconds(serial)) - sum(par)
    m = max(par) / statistics.fmean(par)
    o = max(driver_serial(ray) - driver_serial(serial), 0.0)
    g = statistics.fmean(dispatch_gaps(ray) or [0.0])
    c = statistics.fmean(x["cpu"] for x in ray.tasks) / statistics.fmean(x["cpu"] for x in serial.tasks)
    c_wall = statistics.fmean(task_seconds(ray)) / statistics.fmean(task_seconds(serial))
    rows = [("N (prediction)", "tasks", "T1 s", "TN s", "speedup", "·N", "serial fraction")]
    for n in ns:
        scale = n / n_data
        tasks = max(round(len(par) * scale), 1) if groups_grow else len(par)
        drv, wn, w2n = d * lv["inputs"] * scale, w * scale, w2 * scale
        t1 = drv + wn + w2n
        tn = drv + o + -(-tasks // n) * (wn / tasks * c + g) + wn / tasks * c * (m - 1) + w2n * c
        rows.append((str(n), str(tasks), f"{t1:.2f}", f"{tn:.2f}", f"{t1 / tn:.2f}x", f"{t1 / tn / n:.2f}",
                     f"{(drv + o + w2n) / t1:.3f}"))
    return (f"prediction (not a measurement) from {serial.label} and {ray.label}: driver {d * 1e3:.2f} ms per input "
            f"segment, parallel pass {w:.2f} s in {len(par)} tasks (max/mean {m:.2f}), later passes {w2:.2f} s, Ray "
            f"overhead {o:.3f} s, dispatch gap {g * 1e3:.1f} ms, co-running slowdown c = {c:.2f} in CPU seconds "
            f"({c_wall:.2f} in wall seconds)\n" + table(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpus", type=int, required=True, help="N: the data has 4·N service groups")
    p.add_argument("--instances", type=int, default=10)
    p.add_argument("--shape", choices=("services", "flush"), default="services",
                   help="L0 segments of one service each (4·N groups) or of every service, as the segment "
                        "writer flushes them (one group per bucket)")
    p.add_argument("--per-segment-s", type=int, default=60, help="seconds of data per L0 segment")
    p.add_argument("--threads-per-task", type=int, default=1, help="library threads per task (0: library defaults)")
    p.add_argument("--ray-cpus", default=None, help="comma-separated Ray CPU counts to run (default: N)")
    p.add_argument("--breakdown", action="store_true", help="print where the time goes and an Amdahl prediction")
    p.add_argument("--predict", default="4,8,16", help="CPU counts to predict with --breakdown")
    p.add_argument("--unsplit", action="store_true", help="also run Ray with one task per bucket (no service split)")
    a = p.parse_args()
    if a.cpus < 1 or a.instances < 1 or a.threads_per_task < 0 or not 10 <= a.per_segment_s <= 3600:
        p.error("--cpus and --instances must be >= 1, --threads-per-task >= 0, --per-segment-s in 10..3600")
    ray_cpus = [int(x) for x in (a.ray_cpus or str(a.cpus)).split(",")]
    if min(ray_cpus) < 1:
        p.error("--ray-cpus must be >= 1")
    from workers.parallel import thread_env

    os.environ.update(thread_env(a.threads_per_task))  # before polars is imported (below)

    from benchmarks.bench_compaction import scratch_roots, urls
    from benchmarks.compaction_data import write_fleet
    from workers.storage_io import open_backends

    pin_pyarrow(a.threads_per_task)
    services = 4 * a.cpus
    with scratch_roots("scalecompact") as (s_root, r_root):
        store, index = open_backends(*urls(s_root))
        c = write_fleet(store, index, services=services, instances=a.instances, hours=1,
                        per_segment_s=a.per_segment_s, mixed=a.shape == "flush")
        variants = [(k, True) for k in ray_cpus] + ([(max(ray_cpus), False)] if a.unsplit else [])
        roots = []
        for i in range(len(variants)):
            roots.append(r_root.with_name(f"ray{i}"))
            shutil.copytree(s_root, roots[-1])
        groups = services if a.shape == "services" else 1
        print(f"{c['rows']:,} rows in {c['segments']} L0 segments, {services} services in {groups} service groups; threads per task: "
              f"{a.threads_per_task or 'library defaults'}; driver pools {pools()}; load average {os.getloadavg()[0]:.2f}")
        serial = timed(s_root, "serial", "serial", 1, a.threads_per_task)
        runs = [serial]
        for (k, split), root in zip(variants, roots, strict=True):
            r, startup, seen = ray_run(root, k, a.threads_per_task, split_services=split)
            runs.append(r)
            sp = serial.wall / r.wall
            print(f"{r.label}: {r.wall:.2f} s, speedup {sp:.2f}x = {sp / k:.2f}·N (target >= 0.7·N); "
                  f"worker start-up {startup:.2f} s (not timed), pools {sorted({(s['polars'], s['arrow_cpu'], s['arrow_io']) for s in seen})}")
        print(f"serial: {serial.wall:.2f} s ({c['rows'] / serial.wall:,.0f} rows/s); load average {os.getloadavg()[0]:.2f}")
        if a.breakdown:
            print(breakdown(runs))
            main_ray = next(r for r in runs[1:] if r.cpus == max(ray_cpus))
            print(predict(serial, main_ray, a.cpus, [int(x) for x in a.predict.split(",")], a.shape == "services"))


if __name__ == "__main__":
    main()
