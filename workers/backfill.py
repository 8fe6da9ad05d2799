"""Backfill: recompute history from stored segments, resumably.

``python -m workers.backfill --from 2026-11-01 --until 2026-11-21 [--tenant T] [--services a,b]
[--what compact,analyze] [--dry-run] [--restart] [--ray-address …]``, or on a cluster::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m workers.backfill --from 2026-11-01 --until 2026-11-21

* ``compact``: compaction partitions (L1 hours, then L2 days) in the range are planned
  without the settle delay and run as Ray tasks (one per partition, inputs read by the task).
* ``analyze``: the analysis of every day window (``--window-length hour`` for hours) of
  every tenant in the range is (re)computed.
* Checkpoint: after every finished partition the object
  ``checkpoints/backfill/<job id>.json`` (``job id`` = hash of the arguments) lists the
  partitions done; a rerun with the same arguments skips them (``--restart`` ignores it).
  Partition tasks are idempotent, so a partition that ran but was not checkpointed (crash
  in between) is simply redone.
* Progress: a rich bar on a terminal, log lines in Ray job logs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetprof import telemetry

CHECKPOINT_PREFIX = "checkpoints/backfill"


def parse_time(text: str) -> int:
    """Epoch ms from ``YYYY-MM-DD``, ``YYYY-MM-DDTHH[:MM[:SS]]`` (UTC unless an offset is given) or epoch ms."""
    if text.isdigit():
        return int(text)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"bad time {text!r}: expected an ISO date/time (UTC) or epoch milliseconds") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


@dataclass
class Checkpoint:
    """Partitions done so far for one backfill job, stored as one JSON object."""

    key: str
    args: dict[str, Any]
    done: set[str] = field(default_factory=set)

    @staticmethod
    def for_args(args: dict[str, Any]) -> Checkpoint:
        jid = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
        return Checkpoint(f"{CHECKPOINT_PREFIX}/{jid}.json", args)

    def load(self, store: Any) -> Checkpoint:
        try:
            self.done = set(json.loads(store.get(self.key)).get("done", []))
        except KeyError:
            self.done = set()
        return self

    def save(self, store: Any) -> None:
        body = {"args": self.args, "done": sorted(self.done), "updated_ms": int(time.time() * 1000)}
        store.put(self.key, json.dumps(body, indent=1).encode())


class StopRequested(RuntimeError):
    """Raised by ``stop_after`` (tests simulate a driver crash with it)."""


@telemetry.job("backfill")
def run_backfill(storage_url: str, index_url: str, *, start_ms: int, end_ms: int, tenants: Sequence[str] | None = None,
                 services: Sequence[str] | None = None, what: Sequence[str] = ("compact", "analyze"),
                 window_length: str = "day", dry_run: bool = False, restart: bool = False, mode: str = "ray",
                 max_in_flight: int | None = None, progress: bool = True, stop_after: int | None = None) -> dict[str, Any]:
    """Run (or, with ``dry_run``, plan) a backfill; see the module docstring."""
    from workers.analyze import DAY_MS, HOUR_MS, run_analysis, windows_between
    from workers.compact import CompactJob, candidate_inputs, plan, run_partition
    from workers.parallel import run_tasks
    from workers.storage_io import backend_env, open_backends

    store, index = open_backends(storage_url, index_url)
    args = {"from": start_ms, "until": end_ms, "tenants": sorted(tenants or []), "services": sorted(services or []),
            "what": sorted(what), "window_length": window_length}
    ck = Checkpoint.for_args(args)
    if not restart:
        ck.load(store)
    report: dict[str, Any] = {"checkpoint": ck.key, "dry_run": dry_run, "skipped": len(ck.done), "steps": {}}
    counter = {"n": 0}

    def record(key: str) -> None:
        ck.done.add(key)
        ck.save(store)
        counter["n"] += 1
        if stop_after is not None and counter["n"] >= stop_after:
            raise StopRequested(f"stopped after {counter['n']} partitions")

    if "compact" in what:
        job = CompactJob(storage_url, index_url, backend_env())
        for level in (1, 2):
            parts = plan(index, level=level, start_ms=start_ms, end_ms=end_ms, tenants=tenants, settle=False)
            if services:
                wanted = set(services)
                parts = [p for p in parts if any(wanted.intersection(e.services)
                                                 for e in candidate_inputs(index, p.tenant, p.level, p.bucket_start_ms))]
            todo = [p for p in parts if f"compact:{p.key()}" not in ck.done]
            report["steps"][f"compact L{level}"] = {"planned": len(parts), "todo": len(todo)}
            if dry_run or not todo:
                continue
            run_tasks(run_partition, job, todo, mode=mode, max_in_flight=max_in_flight, label=f"backfill compact L{level}",
                      progress=progress, weight=lambda p: p.est_samples, on_result=lambda p, _r: record(f"compact:{p.key()}"))
    if "analyze" in what:
        length = DAY_MS if window_length == "day" else HOUR_MS
        windows = windows_between(start_ms, end_ms, length)
        tlist = list(tenants or index.tenants())
        todo_keys = [(t, w.name) for t in tlist for w in windows if f"analyze:{t}/{w.name}" not in ck.done]
        report["steps"]["analyze"] = {"planned": len(tlist) * len(windows), "todo": len(todo_keys)}
        if not dry_run and todo_keys:
            run_analysis(storage_url, index_url, windows, tenants=tlist, mode=mode, max_in_flight=max_in_flight,
                         progress=progress, skip=lambda k: f"analyze:{k[0]}/{k[1]}" in ck.done,
                         on_result=lambda k, _r: record(f"analyze:{k[0]}/{k[1]}"))
    report["done"] = len(ck.done)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    from workers.parallel import add_ray_args, init_ray
    from workers.storage_io import storage_urls

    p = argparse.ArgumentParser(prog="python -m workers.backfill", description="Recompute compaction levels and analyses for a past range.")
    p.add_argument("--from", dest="start", required=True, help="start (ISO date/time, UTC, or epoch ms)")
    p.add_argument("--until", dest="end", required=True, help="end, exclusive")
    p.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    p.add_argument("--services", default=None, help="comma-separated services (compaction partitions touching them)")
    p.add_argument("--what", default="compact,analyze", help="compact, analyze or both (default)")
    p.add_argument("--window-length", choices=("day", "hour"), default="day")
    p.add_argument("--dry-run", action="store_true", help="print the plan only")
    p.add_argument("--restart", action="store_true", help="ignore the checkpoint")
    p.add_argument("--storage"), p.add_argument("--index")
    add_ray_args(p)
    a = p.parse_args(argv)
    try:
        start, end = parse_time(a.start), parse_time(a.end)
        if end <= start:
            raise ValueError("--until must be after --from")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    storage, index = storage_urls(a.storage, a.index)
    mode = "serial" if a.serial else "ray"
    if mode == "ray" and not a.dry_run:
        init_ray(a.ray_address, a.num_cpus)
    out = run_backfill(storage, index, start_ms=start, end_ms=end, tenants=a.tenant,
                       services=[s for s in (a.services or "").split(",") if s] or None,
                       what=[w for w in a.what.split(",") if w], window_length=a.window_length, dry_run=a.dry_run,
                       restart=a.restart, mode=mode, max_in_flight=a.max_in_flight)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
