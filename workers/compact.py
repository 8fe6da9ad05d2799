"""Compaction: L0 -> L1 per hour, L1 -> L2 per day; GC of compacted inputs.

Partitions and outputs
    A partition is ``(tenant, level, bucket)``: level 1 buckets are UTC hours, level 2
    buckets UTC days. Its inputs are the tenant's ``live`` segments of a level ``<= level``
    whose ``min_time_ms`` falls in the bucket (late L0 data and earlier outputs of the same
    bucket are merged again). Inputs are grouped by service: segments that share no
    service are compacted separately, so the output is one segment per
    ``(tenant, service, bucket)`` whenever the inputs are single-service. Multi-service
    inputs (an L0 flush holds every service of its batch) keep their services together:
    the index's ``swap`` switches exactly one new segment, and splitting them would leave
    some service counted zero or two times between two swaps.
    Service groups are the unit of parallel work: :func:`split_by_service` turns a partition
    into one task per group (``Partition.services``; a group with more inputs than one swap
    takes, or more services or profile types than one index entry may list, becomes one task
    per chunk of :func:`~fleetprof.metastore.index.budget_chunks`, ``Partition.segments``,
    and :func:`run_compaction` merges the chunks' outputs in a further pass while they fit
    together), and a task
    compacts only the groups it owns, those whose first service (sorted) it lists.
    Ownership is decided again when the task runs, so a segment that joins two planned groups makes one group owned by exactly
    one task; a group none of the tasks owns (a service new since planning) waits for the
    next run. Tasks never share an input, so they never conflict on a swap.
    Stacks are re-interned across inputs (node/frame ids are the model's stable hashes:
    unions are de-duplications) and sample times are floored to :data:`STEP_MS` (10 s at
    L1, 1 min at L2), which merges rows.

Steps of one compaction (each a crash point, see ``FailureHook``)::

    read inputs -> encode -> put(new object) -> [re-check inputs live] -> index.swap(new, inputs)

``swap`` makes the new entry live and the inputs ``compacted`` in one index transaction, so a
query sees either all inputs or the output: every sample is counted exactly once before,
during and after compaction. A crash before the swap leaves an unreferenced object that
:func:`fleetprof.metastore.cleanup.collect_orphans` deletes; a rerun recompacts the same
inputs. A crash after the swap leaves a finished compaction; a rerun finds one input and
does nothing. At most :data:`MAX_INPUTS` inputs go into one swap (DynamoDB transactions are
atomic for 100 items: the new entry's two items plus 98 inputs); larger buckets are
compacted in rounds, each round exact.

GC (:func:`gc_compacted`): a ``compacted`` entry whose replacement has been live for the
grace period (queries that listed it have finished) is tombstoned, its object deleted,
then its entry deleted; a crash between the steps is finished by the next run.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetprof import telemetry
from fleetprof.metastore.index import budget_chunks

log = logging.getLogger("workers.compact")

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
BUCKET_MS = {1: HOUR_MS, 2: DAY_MS}
STEP_MS = {1: 10_000, 2: 60_000}
SETTLE_MS = {1: 5 * 60_000, 2: HOUR_MS}
"""A bucket is compacted only once it ended this long ago (late data keeps arriving)."""
MAX_INPUTS = 98
MAX_PASSES = 8
"""Passes per level of :func:`run_compaction` (each divides a group's inputs by up to 98)."""
DEFAULT_GRACE_S = 600.0

FailureHook = Callable[[str], None]
"""Called with a step name (``"read"``, ``"encoded"``, ``"put"``, ``"before_swap"``,
``"swapped"``) before moving on; tests raise from it to inject a crash."""


class InputsChanged(RuntimeError):
    """An input stopped being live during compaction (a concurrent compactor); retry later."""


@dataclass(frozen=True)
class Partition:
    """One unit of compaction work (see module docstring)."""

    tenant: str
    level: int
    bucket_start_ms: int
    est_samples: int = 0
    inputs: int = 0
    kind: str = "profiles"
    """What the segments hold: ``profiles`` or ``spans`` (never compacted together)."""
    services: tuple[str, ...] = ()
    """Empty: every service group of the bucket; else only the groups this task owns
    (see the module docstring)."""
    segments: tuple[str, ...] = ()
    """Non-empty: exactly these inputs (one swap's worth of a group with more than
    :data:`MAX_INPUTS`) are merged into one output, and only if all are still live; a
    later pass merges the chunks' outputs."""

    @property
    def bucket_end_ms(self) -> int:
        return self.bucket_start_ms + BUCKET_MS[self.level]

    def key(self) -> str:
        tail = "" if self.kind == "profiles" else f"/{self.kind}"
        if self.services or self.segments:
            ids = "\0".join(self.services) + "\1" + "\0".join(self.segments)
            tail += "/g" + hashlib.blake2b(ids.encode(), digest_size=8).hexdigest()
        return f"{self.tenant}/L{self.level}/{self.bucket_start_ms}{tail}"

    def owns(self, group: Sequence[Any]) -> bool:
        """Whether this partition's task compacts ``group`` (a :func:`service_groups` item)."""
        return not self.services or group_key(group) in self.services


@dataclass
class CompactResult:
    partition: str
    outputs: list[str] = field(default_factory=list)
    inputs: int = 0
    samples_in: int = 0
    samples_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per step (``plan``, ``read``, ``decode``, ``merge``, ``encode``, ``write``,
    ``index``) summed over this partition's swaps; span partitions report ``spans``."""


def _noop(_step: str) -> None:
    return None


def bucket_of(time_ms: int, level: int) -> int:
    return time_ms - time_ms % BUCKET_MS[level]


def candidate_inputs(index: Any, tenant: str, level: int, bucket_start_ms: int, kind: str = "profiles") -> list[Any]:
    """Live entries of ``kind`` and level ``<= level`` whose ``min_time_ms`` lies in the bucket."""
    end = bucket_start_ms + BUCKET_MS[level]
    entries = index.query(tenant, bucket_start_ms, end - 1, kind=kind)
    return [e for e in entries if e.level <= level and bucket_start_ms <= e.min_time_ms < end]


def needs_work(entries: Sequence[Any], level: int) -> bool:
    return len(entries) > 1 or (len(entries) == 1 and entries[0].level < level)


def plan(index: Any, *, level: int, start_ms: int, end_ms: int, tenants: Sequence[str] | None = None,
         now_ms: int | None = None, settle: bool = True) -> list[Partition]:
    """Partitions of ``level`` with work to do among buckets overlapping ``[start, end)``
    (profile and span segments in partitions of their own)."""
    from fleetprof.metastore.index import KINDS

    now = int(time.time() * 1000) if now_ms is None else now_ms
    out: list[Partition] = []
    for tenant, kind in ((t, k) for t in tenants or index.tenants() for k in KINDS):
        entries = [e for e in index.query(tenant, start_ms - BUCKET_MS[level], end_ms - 1, kind=kind) if e.level <= level]
        buckets: dict[int, list[Any]] = {}
        for e in entries:
            b = bucket_of(e.min_time_ms, level)
            if start_ms - BUCKET_MS[level] < b + BUCKET_MS[level] and b < end_ms:
                buckets.setdefault(b, []).append(e)
        for b, es in sorted(buckets.items()):
            if settle and b + BUCKET_MS[level] + SETTLE_MS[level] > now:
                continue
            if needs_work(es, level):
                out.append(Partition(tenant, level, b, sum(e.samples for e in es), len(es), kind))
    return out


def service_groups(entries: Sequence[Any]) -> list[list[Any]]:
    """Connected components of entries linked by a shared service (deterministic order)."""
    parent = list(range(len(entries)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, e in enumerate(entries):
        for s in e.services or ("",):
            if s in owner:
                parent[find(i)] = find(owner[s])
            else:
                owner[s] = i
    groups: dict[int, list[Any]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(find(i), []).append(e)
    return sorted(groups.values(), key=lambda g: (sorted(g[0].services), g[0].segment_id))


def group_key(group: Sequence[Any]) -> str:
    """The first service (sorted) of a service group; ``""`` stands for entries without one."""
    return min(s for e in group for s in (e.services or ("",)))


def split_by_service(index: Any, parts: Sequence[Partition]) -> list[Partition]:
    """One partition per service group with work to do in each of ``parts``, or per chunk of
    a profile group that one output cannot take (more than :data:`MAX_INPUTS` inputs, or
    services or profile types over an index entry's budget:
    :func:`~fleetprof.metastore.index.budget_chunks`), largest first, so the biggest
    task never starts last. Partitions already split are kept as they are.
    One index query per (tenant, kind) covers all of its buckets."""
    out: list[Partition] = [p for p in parts if p.services]
    todo: dict[tuple[str, str], list[Partition]] = {}
    for p in parts:
        if not p.services:
            todo.setdefault((p.tenant, p.kind), []).append(p)
    for (tenant, kind), ps in todo.items():
        found = index.query(tenant, min(p.bucket_start_ms for p in ps), max(p.bucket_end_ms for p in ps) - 1, kind=kind)
        out += _groups_of(found, ps)
    return sorted(out, key=lambda p: -p.est_samples)


def _groups_of(found: Sequence[Any], parts: Sequence[Partition]) -> list[Partition]:
    """The service groups needing work of each partition, from ``found`` (live entries
    covering every partition's bucket), as :func:`candidate_inputs` would select them."""
    by_bucket: dict[tuple[int, int], list[Any]] = {}
    for level in {p.level for p in parts}:
        for e in found:
            if e.level <= level:
                by_bucket.setdefault((level, bucket_of(e.min_time_ms, level)), []).append(e)
    out: list[Partition] = []
    for part in parts:
        for g in service_groups(by_bucket.get((part.level, part.bucket_start_ms), [])):
            if not needs_work(g, part.level):
                continue
            g.sort(key=lambda e: (e.min_time_ms, e.segment_id))
            chunks = budget_chunks(g, MAX_INPUTS)
            if len(chunks) == 1 or part.kind != "profiles":
                out.append(Partition(part.tenant, part.level, part.bucket_start_ms, sum(e.samples for e in g), len(g),
                                     part.kind, (group_key(g),)))
                continue
            for c in chunks:
                if needs_work(c, part.level):
                    out.append(Partition(part.tenant, part.level, part.bucket_start_ms, sum(e.samples for e in c), len(c),
                                         part.kind, (group_key(g),), tuple(e.segment_id for e in c)))
    return out


class _Clock:
    """Adds the seconds since the previous :meth:`lap` to ``timings[step]``."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings, self.t = timings, time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[step] = self.timings.get(step, 0.0) + now - self.t
        self.t = now

    def skip(self) -> None:
        """Start the next step now (the time since the last lap is nobody's)."""
        self.t = time.perf_counter()


def compact_inputs(store: Any, index: Any, tenant: str, level: int, inputs: Sequence[Any], *,
                   hook: FailureHook = _noop, now_ms: int | None = None,
                   timings: dict[str, float] | None = None) -> tuple[Any, int]:
    """Merge ``inputs`` (<= MAX_INPUTS entries, all of one kind) into one new live segment
    of ``level``; return ``(new entry, input sample rows)``. See the module docstring for
    the steps; span segments are merged by :mod:`fleetprof.traces.compact`. ``timings``
    (if given) accumulates the seconds of each step (see :attr:`CompactResult.stages`)."""
    from fleetprof.metastore.index import SegmentEntry, SwapConflict
    from fleetprof.segment.format import concat_batches, decode_segment, encode_segment
    from fleetprof.segment.keys import new_segment_id, segment_key

    if len(inputs) > MAX_INPUTS:
        raise ValueError(f"at most {MAX_INPUTS} inputs per swap")
    if inputs and inputs[0].kind == "spans":
        from fleetprof.traces.compact import InputsGone, compact_span_inputs

        clock = _Clock(timings)
        try:
            return compact_span_inputs(store, index, tenant, level, inputs, hook=hook, now_ms=now_ms)
        except InputsGone as e:
            raise InputsChanged(str(e)) from None
        finally:
            clock.lap("spans")
    clock = _Clock(timings)
    segs = []
    for e in inputs:
        try:
            raw = store.get(e.key)
        except KeyError:
            raise InputsChanged(f"input {e.segment_id} vanished (collected by a concurrent job)") from None
        clock.lap("read")
        segs.append(decode_segment(raw))
        clock.lap("decode")
    hook("read")
    clock.skip()
    batch = concat_batches(segs, step_ms=STEP_MS[level])
    clock.lap("merge")
    created = int(time.time() * 1000) if now_ms is None else now_ms
    data = encode_segment(batch, tenant=tenant, level=level, created_ms=created)
    clock.lap("encode")
    hook("encoded")
    sid = new_segment_id(created)
    min_t = min(e.min_time_ms for e in inputs)
    max_t = max(e.max_time_ms for e in inputs)
    series: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    complete = all(e.series_complete for e in inputs)
    for e in inputs:
        for s in e.series:
            series.setdefault(tuple(sorted(s.items())), dict(s))
    entry = SegmentEntry(
        tenant=tenant, segment_id=sid, level=level,
        services=tuple(sorted({s for e in inputs for s in e.services})),
        profile_types=tuple(sorted({p for e in inputs for p in e.profile_types})),
        min_time_ms=min_t, max_time_ms=max_t, key=segment_key(tenant, level, sid, min_t),
        bytes=len(data), samples=batch.sample_rows, state="live", created_ms=created,
        series=tuple(series.values()), series_complete=complete,
    )
    clock.lap("encode")
    store.put(entry.key, data)
    clock.lap("write")
    hook("put")
    clock.skip()
    ids = [e.segment_id for e in inputs]
    for e in inputs:  # narrow the window for a concurrent compactor of the same bucket
        cur = index.get(tenant, e.segment_id)
        if cur is None or cur.state != "live":
            store.delete(entry.key)
            raise InputsChanged(f"input {e.segment_id} is no longer live")
    clock.lap("index")
    hook("before_swap")
    clock.skip()
    try:
        index.swap(tenant, entry, ids)
    except SwapConflict as e:
        store.delete(entry.key)
        raise InputsChanged(str(e)) from None
    clock.lap("index")
    hook("swapped")
    return entry, sum(e.samples for e in inputs)


def compact_partition(store: Any, index: Any, part: Partition, *, hook: FailureHook = _noop,
                      now_ms: int | None = None) -> CompactResult:
    """Compact one partition until each service group it owns is a single segment of its
    level (a chunk partition: merge its inputs once, see :attr:`Partition.segments`)."""
    t0 = time.perf_counter()
    res = CompactResult(part.key())
    clock = _Clock(res.stages)
    if part.segments:
        _compact_chunk(store, index, part, res, clock, hook=hook, now_ms=now_ms)
        res.seconds = time.perf_counter() - t0
        return res
    first = True
    for _round in range(64):
        entries = candidate_inputs(index, part.tenant, part.level, part.bucket_start_ms, part.kind)
        groups = [g for g in service_groups(entries) if part.owns(g)]
        clock.lap("plan")
        progressed = False
        for group in groups:
            if not needs_work(group, part.level):
                continue
            group.sort(key=lambda e: (e.min_time_ms, e.segment_id))
            for chunk in budget_chunks(group, MAX_INPUTS):  # outputs' services must fit an index entry
                if not needs_work(chunk, part.level):
                    continue
                new, samples_in = compact_inputs(store, index, part.tenant, part.level, chunk, hook=hook, now_ms=now_ms,
                                                 timings=res.stages)
                res.outputs.append(new.segment_id)
                if first or all(e.level < part.level for e in chunk):
                    res.inputs += len(chunk)
                    res.samples_in += samples_in
                    res.bytes_in += sum(e.bytes for e in chunk)
                progressed = True
        first = False
        clock.skip()
        if not progressed:
            break
    final = [e for g in service_groups(candidate_inputs(index, part.tenant, part.level, part.bucket_start_ms, part.kind))
             if part.owns(g) for e in g]
    clock.lap("plan")
    res.samples_out = sum(e.samples for e in final)
    res.bytes_out = sum(e.bytes for e in final)
    res.seconds = time.perf_counter() - t0
    return res


def _live_totals(index: Any, parts: Sequence[Partition]) -> tuple[int, int]:
    """Sample rows and bytes of the live entries in the buckets of ``parts`` (one index
    query per (tenant, kind))."""
    rows = size = 0
    todo: dict[tuple[str, str], list[Partition]] = {}
    for p in parts:
        todo.setdefault((p.tenant, p.kind), []).append(p)
    for (tenant, kind), ps in todo.items():
        found = index.query(tenant, min(p.bucket_start_ms for p in ps), max(p.bucket_end_ms for p in ps) - 1, kind=kind)
        buckets = {(p.level, p.bucket_start_ms) for p in ps}
        for level in {p.level for p in ps}:
            for e in found:
                if e.level <= level and (level, bucket_of(e.min_time_ms, level)) in buckets:
                    rows, size = rows + e.samples, size + e.bytes
    return rows, size


def _compact_chunk(store: Any, index: Any, part: Partition, res: CompactResult, clock: _Clock, *,
                   hook: FailureHook, now_ms: int | None) -> None:
    """Merge ``part.segments`` into one segment if all are live inputs of the bucket; else
    (a concurrent job took some) leave them to the next pass."""
    wanted = set(part.segments)
    chunk = [e for e in candidate_inputs(index, part.tenant, part.level, part.bucket_start_ms, part.kind)
             if e.segment_id in wanted]
    clock.lap("plan")
    if len(chunk) != len(wanted) or not needs_work(chunk, part.level):
        return
    try:
        new, samples_in = compact_inputs(store, index, part.tenant, part.level, chunk, hook=hook, now_ms=now_ms,
                                         timings=res.stages)
    except InputsChanged:
        return
    res.outputs.append(new.segment_id)
    res.inputs, res.samples_in, res.bytes_in = len(chunk), samples_in, sum(e.bytes for e in chunk)
    res.samples_out, res.bytes_out = new.samples, new.bytes


def gc_compacted(store: Any, index: Any, tenant: str, *, grace_s: float = DEFAULT_GRACE_S,
                 now_ms: int | None = None) -> int:
    """Tombstone, delete the object of, then delete every ``compacted`` entry whose newest
    overlapping higher-level live replacement is older than ``grace_s`` (or, with no
    replacement left, that is itself older). Also finishes tombstones left by a crash.
    Returns the number of entries removed."""
    from fleetprof.metastore.index import MAX_TIME_MS

    now = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now - int(grace_s * 1000)
    entries = index.query(tenant, 0, MAX_TIME_MS, states=("live", "compacted", "tombstoned"), kind=None)
    live = [e for e in entries if e.state == "live"]
    n = 0
    for e in entries:
        if e.state == "compacted":
            repl = [r.created_ms for r in live if r.kind == e.kind and r.level > e.level
                    and r.min_time_ms <= e.max_time_ms and r.max_time_ms >= e.min_time_ms]
            newest = max(repl) if repl else e.created_ms
            if newest > cutoff:
                continue
            if not index.set_state(tenant, e.segment_id, "compacted", "tombstoned"):
                continue
        elif e.state != "tombstoned":
            continue
        store.delete(e.key)
        index.delete(tenant, e.segment_id)
        n += 1
    return n


# ---------------------------------------------------------------------------- job
@dataclass(frozen=True)
class CompactJob:
    """Everything a compaction task needs to open its own backends (small, picklable)."""

    storage_url: str
    index_url: str
    env: dict[str, str] = field(default_factory=dict)


def run_partition(job: CompactJob, part: Partition) -> dict[str, Any]:
    """Task body: open backends, compact ``part``, return a small summary (counts, seconds
    per step, the worker's pid, the wall-clock start/end of the task body, the CPU
    seconds its process used meanwhile, whether it was a chunk of a larger group)."""
    from workers.storage_io import open_backends

    started, cpu = time.time(), time.process_time()
    t = time.perf_counter()
    store, index = open_backends(job.storage_url, job.index_url, job.env)
    opened = time.perf_counter() - t
    r = compact_partition(store, index, part)
    r.stages["open"] = opened
    return r.__dict__ | {"partition": part.key(), "pid": os.getpid(), "started": started, "ended": time.time(),
                           "cpu": time.process_time() - cpu, "chunk": bool(part.segments)}


@telemetry.job("compaction")
def run_compaction(storage_url: str, index_url: str, *, levels: Sequence[int] = (1, 2), start_ms: int = 0,
                   end_ms: int | None = None, tenants: Sequence[str] | None = None, mode: str = "ray",
                   max_in_flight: int | None = None, settle: bool = True, gc: bool = True,
                   grace_s: float = DEFAULT_GRACE_S, progress: bool = True, now_ms: int | None = None,
                   split_services: bool = True, threads_per_task: int | None = None,
                   on_result: Callable[[Partition, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Plan and run compaction level by level (L1 before L2) with :mod:`workers.parallel`,
    one task per service group (:func:`split_by_service`; one per bucket with
    ``split_services=False``); then, when metrics are configured
    (:func:`workers.job_metrics.environment`), publish the L0 backlog of every tenant
    (:func:`workers.job_metrics.l0_backlog_data`). ``threads_per_task`` sizes the Ray
    tasks' library thread pools (see :func:`workers.parallel.run_tasks`; default: the
    cluster's CPUs shared by the tasks). ``on_result`` receives each task's
    summary (see :func:`run_partition`) as it finishes. A level takes more than one pass
    (plan, split, run) when a group had more inputs than one swap takes: the next pass
    merges the chunks' outputs (at most :data:`MAX_PASSES`). The returned summary holds, per
    level, counts (``partitions``: buckets with work; ``tasks``: partitions after the
    service split over all passes, small ones sharing a Ray task; ``inputs``,
    ``samples_in``, ``bytes_in`` of the first pass; ``samples_out``, ``bytes_out``: what
    is live in those buckets afterwards) and the driver's seconds (``plan_s``, ``split_s``,
    ``run_s``), and ``gc_s``."""
    from workers.job_metrics import environment, l0_backlog_data, publish
    from workers.parallel import run_tasks
    from workers.storage_io import backend_env, open_backends

    store, index = open_backends(storage_url, index_url)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    end = end_ms if end_ms is not None else now + DAY_MS
    job = CompactJob(storage_url, index_url, backend_env())
    summary: dict[str, Any] = {"levels": {}}
    for level in levels:
        lv: dict[str, Any] = dict.fromkeys(("partitions", "tasks", "passes", "inputs", "outputs", "samples_in",
                                            "bytes_in"), 0) | dict.fromkeys(("plan_s", "split_s", "run_s"), 0.0)
        first: list[Partition] = []
        for n in range(MAX_PASSES):
            t0 = time.perf_counter()
            parts = plan(index, level=level, start_ms=start_ms, end_ms=end, tenants=tenants, now_ms=now, settle=settle)
            t1 = time.perf_counter()
            tasks = split_by_service(index, parts) if split_services else parts
            t2 = time.perf_counter()
            results = run_tasks(run_partition, job, tasks, mode=mode, max_in_flight=max_in_flight,
                                label=f"compact L{level}", progress=progress, weight=lambda p: p.est_samples,
                                on_result=on_result, threads_per_task=threads_per_task) if tasks else []
            lv["plan_s"] += t1 - t0
            lv["split_s"] += t2 - t1
            lv["run_s"] += time.perf_counter() - t2
            lv["tasks"] += len(tasks)
            lv["outputs"] += sum(len(r["outputs"]) for r in results)
            if n == 0:
                first = parts
                lv["partitions"] = len(parts)
                for k in ("inputs", "samples_in", "bytes_in"):
                    lv[k] = sum(r[k] for r in results)
            lv["passes"] += bool(tasks)
            if not any(t.segments for t in tasks):
                break
        lv["samples_out"], lv["bytes_out"] = _live_totals(index, first)
        summary["levels"][f"L{level}"] = lv
    if gc:
        t_gc = time.perf_counter()
        summary["gc_removed"] = sum(gc_compacted(store, index, t, grace_s=grace_s, now_ms=now) for t in (tenants or index.tenants()))
        summary["gc_s"] = time.perf_counter() - t_gc
    env_name = environment()
    if env_name is not None:
        backlog = l0_backlog_data(index, env_name, now)
        publish(backlog)
        summary["l0_backlog"] = {d.metric: d.value for d in backlog}
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m workers.compact [--storage URL] [--index URL] [--levels 1,2] [--serial]``."""
    from workers.parallel import add_ray_args, init_ray
    from workers.storage_io import storage_urls

    p = argparse.ArgumentParser(prog="python -m workers.compact", description="Compact segments L0->L1->L2 and GC compacted inputs.")
    p.add_argument("--storage"), p.add_argument("--index")
    p.add_argument("--levels", default="1,2", help="comma-separated target levels (default 1,2)")
    p.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    p.add_argument("--no-settle", action="store_true", help="also compact buckets that ended recently")
    p.add_argument("--grace-s", type=float, default=DEFAULT_GRACE_S, help="GC grace period for compacted inputs")
    p.add_argument("--no-gc", action="store_true")
    add_ray_args(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    storage, index = storage_urls(a.storage, a.index)
    if not a.serial:
        init_ray(a.ray_address, a.num_cpus)
    out = run_compaction(storage, index, levels=[int(x) for x in a.levels.split(",")], tenants=a.tenant,
                         mode="serial" if a.serial else "ray", max_in_flight=a.max_in_flight,
                         settle=not a.no_settle, gc=not a.no_gc, grace_s=a.grace_s)
    import json

    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CompactJob", "Partition", "compact_partition", "gc_compacted", "plan", "run_compaction", "split_by_service"]
