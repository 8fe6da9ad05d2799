"""Run one task per partition, serially or on Ray, with bounded concurrency and retries.

Contract of :func:`run_tasks`:

* ``fn(job, item)`` is a module-level function; ``job`` is a small picklable description
  (URLs, options) and ``item`` a small partition key. Each task opens its own store/index
  and reads its own inputs: nothing large goes through the driver, only small summaries
  come back.
* Items whose ``weight`` is below ``min_task_weight`` are bundled into one task until the
  bundle reaches it (so each task does enough work to amortise scheduling; the default
  targets roughly half a second of compaction on one core).
* Each Ray task reserves ``threads_per_task`` CPUs and its worker's library thread pools
  (polars, pyarrow via OpenMP's variable, numba, BLAS) are sized to the same number
  through the task's ``runtime_env`` (:func:`thread_env`): by default the cluster's CPUs
  shared by the tasks that run at once (:func:`task_threads`), so N concurrent tasks on N
  cores run one thread each instead of N each, and a lone task may use a node's cores;
  ``threads_per_task=0`` leaves the libraries' defaults.
* At most ``max_in_flight`` tasks are submitted at once (default: the cluster's CPUs divided
  by the CPUs per task);
  each task is retried up to ``retries`` times on worker death or exception (Ray's
  ``max_retries`` + ``retry_exceptions``): task bodies must be idempotent (they are).
* Results come back in the order of ``items``. With ``on_result`` each result is also
  passed as soon as its task finishes (checkpointing). A rich progress bar shows progress
  on stderr when ``progress`` is true; Ray job logs show the same lines.
* ``mode="serial"`` runs the same functions in-process (benchmarks' reference, laptops
  without Ray).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fleetprof import telemetry

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MIN_TASK_WEIGHT = 20_000
DEFAULT_RETRIES = 3
THREAD_VARS = ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "MKL_NUM_THREADS", "RAYON_NUM_THREADS")
"""Environment variables that size the libraries' thread pools when a worker starts
(pyarrow's CPU pool follows ``OMP_NUM_THREADS``)."""


def task_threads(cluster_cpus: float, node_cpus: float, tasks: int, max_in_flight: int | None = None) -> int:
    """CPUs (and library threads) per task: the cluster's CPUs divided by the tasks that run
    at once (``tasks``, bounded by ``max_in_flight``), at most one node's CPUs, at least 1."""
    at_once = max(min(tasks, max_in_flight or tasks), 1)
    return max(1, min(int(node_cpus), int(cluster_cpus) // at_once))


def thread_env(threads: int) -> dict[str, str]:
    """The environment that sizes a worker's library thread pools to ``threads`` (empty for 0)."""
    return {} if threads <= 0 else dict.fromkeys(THREAD_VARS, str(threads))


def ray_task_options(threads: int, retries: int = DEFAULT_RETRIES) -> dict[str, Any]:
    """``ray.remote`` options of a task running ``threads`` library threads (0: reserve one
    CPU and leave the libraries' defaults)."""
    opts: dict[str, Any] = {"num_cpus": max(threads, 1), "max_retries": retries, "retry_exceptions": True}
    if threads > 0:
        opts["runtime_env"] = {"env_vars": thread_env(threads)}
    return opts


def _node_cpus() -> float:
    """The most CPUs one alive Ray node has."""
    import ray

    return max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=1.0)


def add_ray_args(p: argparse.ArgumentParser) -> None:
    """The Ray options shared by the job entry points."""
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster address (ray://host:10001, host:6379 or 'auto'); default: start a local Ray")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--max-in-flight", type=int, default=None, help="bound on concurrent tasks (default: cluster CPUs)")
    p.add_argument("--serial", action="store_true", help="run in this process without Ray")


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to ``address`` (or ``RAY_ADDRESS``, set inside ``ray job submit`` jobs), else
    start a local Ray. Idempotent."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, ignore_reinit_error=True, log_to_driver=True)


def bundles(items: Sequence[T], weight: Callable[[T], float] | None, min_task_weight: float) -> list[list[int]]:
    """Indices of ``items`` grouped so each group weighs >= ``min_task_weight`` (the last may not)."""
    if weight is None or min_task_weight <= 0:
        return [[i] for i in range(len(items))]
    out: list[list[int]] = []
    cur: list[int] = []
    acc = 0.0
    for i, it in enumerate(items):
        cur.append(i)
        acc += float(weight(it))
        if acc >= min_task_weight:
            out.append(cur)
            cur, acc = [], 0.0
    if cur:
        out.append(cur)
    return out


def _run_bundle(fn: Callable[[Any, Any], Any], job: Any, items: list[Any], trace: dict[str, str] | None = None,
                label: str = "tasks") -> list[Any]:
    """Task body: ``fn`` over ``items``, in a span continuing the driver's trace."""
    with telemetry.remote_task(trace, f"task {label}", {"fleetprof.items": len(items)}):
        return [fn(job, it) for it in items]


class _Progress:
    """A rich bar on a terminal; otherwise a log line per ~10 % (what Ray job logs show)."""

    def __init__(self, enabled: bool, label: str, total: int) -> None:
        self.label, self.total, self.done, self.next_log = label, total, 0, 0.0
        self.tty = enabled and sys.stderr.isatty()
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich import progress as rp
            from rich.console import Console

            self.bar = rp.Progress(rp.TextColumn("[bold]{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                                   rp.TimeElapsedColumn(), rp.TimeRemainingColumn(), console=Console(stderr=True))
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.advance(self.task, n)
        elif self.enabled and (self.done >= self.next_log or self.done == self.total):
            print(f"{self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)
            self.next_log = self.done + max(self.total / 10, 1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def run_tasks(
    fn: Callable[[Any, T], R],
    job: Any,
    items: Sequence[T],
    *,
    mode: str = "ray",
    max_in_flight: int | None = None,
    retries: int = DEFAULT_RETRIES,
    label: str = "tasks",
    progress: bool = True,
    weight: Callable[[T], float] | None = None,
    min_task_weight: float = DEFAULT_MIN_TASK_WEIGHT,
    on_result: Callable[[T, R], None] | None = None,
    threads_per_task: int | None = None,
) -> list[R]:
    """See the module contract."""
    results: list[Any] = [None] * len(items)
    if not items:
        return results
    if mode == "serial":
        with _Progress(progress, label, len(items)) as prog:
            for i, it in enumerate(items):
                with telemetry.child(f"task {label}", {"fleetprof.items": 1}):
                    results[i] = fn(job, it)
                if on_result:
                    on_result(it, results[i])
                prog.advance()
        return results
    if mode != "ray":
        raise ValueError(f"unknown mode {mode!r} (serial or ray)")
    import ray

    if not ray.is_initialized():
        init_ray()
    groups = bundles(items, weight, min_task_weight)
    cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
    node = _node_cpus()
    threads = task_threads(cpus, node, len(groups), max_in_flight) if threads_per_task is None \
        else min(threads_per_task, max(int(node), 1))
    remote = ray.remote(**ray_task_options(threads, retries))(_run_bundle)
    limit = max_in_flight or max(cpus // max(threads, 1), 1)
    trace = telemetry.carrier()
    pending: dict[Any, list[int]] = {}
    nxt = 0
    with _Progress(progress, label, len(items)) as prog:
        while nxt < len(groups) or pending:
            while nxt < len(groups) and len(pending) < limit:
                idx = groups[nxt]
                pending[remote.remote(fn, job, [items[i] for i in idx], trace, label)] = idx
                nxt += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                idx = pending.pop(ref)
                for i, r in zip(idx, ray.get(ref), strict=True):
                    results[i] = r
                    if on_result:
                        on_result(items[i], r)
                prog.advance(len(idx))
    return results
