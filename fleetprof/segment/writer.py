"""The segment writer: batches ingested profiles per tenant into durable segments.

Contract:

* ``await submit(tenant, items)`` returns only after the segment object holding the items
  **and** its index entry are durable; it raises the write's error otherwise (the caller
  answers 5xx) and :class:`Backpressure` at once when ``max_queue`` items are pending
  (the caller answers 429 with ``Retry-After: retry_after_s``).
* A tenant's batch is flushed when its oldest item is ``max_age_s`` old or it holds
  ``max_bytes`` (estimated). A flush writes **one** object (``store.put``), then
  ``index.add``, and only then resolves every waiting future. The index is written last,
  so a failed flush leaves nothing visible; the object of a failed ``index.add`` is
  deleted best-effort and :func:`collect_orphans` removes any that survive a crash.
* Encoding and blocking I/O run in worker threads (``asyncio.to_thread``) so the event
  loop keeps accepting while a batch is written.
* ``await stop()`` flushes everything pending and waits for in-flight flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fleetprof.metastore.cleanup import collect_orphans
from fleetprof.metastore.index import Index, SegmentEntry
from fleetprof.model.profile import Profile
from fleetprof.segment.format import batch_from_profiles, encode_segment
from fleetprof.segment.keys import new_segment_id, segment_key, validate_tenant
from fleetprof.storage.objectstore import ObjectStore

__all__ = ["Backpressure", "FlushStats", "IngestItem", "SegmentWriter", "collect_orphans", "encode_items"]

log = logging.getLogger("fleetprof.segment.writer")


@dataclass(frozen=True)
class IngestItem:
    """One profile of one series: ``profile`` has a single sample type (or one matching
    ``profile_type``), ``labels`` include ``service_name``, ``time_ms`` is its timestamp."""

    labels: dict[str, str]
    profile_type: str
    time_ms: int
    profile: Profile


class Backpressure(Exception):
    """The writer's queue is full; retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: float = 1.0) -> None:
        super().__init__(f"ingest queue full, retry after {retry_after_s:g}s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class FlushStats:
    """What one flush did (passed to the ``on_flush`` callback, e.g. for metrics)."""

    tenant: str
    segment_id: str
    items: int
    bytes: int
    samples: int
    seconds: float
    ok: bool
    error: str = ""


@dataclass
class _Batch:
    created: float
    items: list[IngestItem] = field(default_factory=list)
    futures: list[asyncio.Future[None]] = field(default_factory=list)
    est_bytes: int = 0


def estimate_bytes(item: IngestItem) -> int:
    """Rough in-memory size of an item (drives ``max_bytes`` flushes)."""
    p = item.profile
    return 64 + 32 * p.samples.height + 28 * p.nodes.height + 48 * p.frames.height


def encode_items(tenant: str, items: Sequence[IngestItem], *, level: int = 0, now_ms: int | None = None) -> tuple[bytes, SegmentEntry]:
    """Encode items into one segment object and the index entry that will describe it."""
    created = int(time.time() * 1000) if now_ms is None else now_ms
    batch = batch_from_profiles((it.labels, it.profile_type, it.time_ms, it.profile) for it in items)
    data = encode_segment(batch, tenant=tenant, level=level, created_ms=created)
    sid = new_segment_id(created)
    series: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for it in items:
        series.setdefault(tuple(sorted(it.labels.items())), dict(it.labels))
    times = [it.time_ms for it in items]
    entry = SegmentEntry(
        tenant=tenant,
        segment_id=sid,
        level=level,
        services=tuple(sorted({it.labels["service_name"] for it in items})),
        profile_types=tuple(sorted({it.profile_type for it in items})),
        min_time_ms=min(times),
        max_time_ms=max(times),
        key=segment_key(tenant, level, sid, min(times)),
        bytes=len(data),
        samples=batch.sample_rows,
        state="live",
        created_ms=created,
        series=tuple(series.values()),
    )
    return data, entry


class SegmentWriter:
    """Asyncio segment writer (see module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        index: Index,
        *,
        max_age_s: float = 1.0,
        max_bytes: int = 8 * 1024 * 1024,
        max_queue: int = 10_000,
        max_concurrent_flushes: int = 4,
        retry_after_s: float = 1.0,
        on_flush: Callable[[FlushStats], None] | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.on_flush = on_flush
        self._batches: dict[str, _Batch] = {}
        self._pending = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._sem: asyncio.Semaphore | None = None
        self._max_flushes = max_concurrent_flushes
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pending(self) -> int:
        """Items accepted but not yet acknowledged (queued or being written)."""
        return self._pending

    def start(self) -> None:
        """Start the background flusher in the running event loop (idempotent)."""
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._sem = asyncio.Semaphore(self._max_flushes)
            self._stopping = False
            self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="segment-writer")

    async def submit(self, tenant: str, items: Sequence[IngestItem]) -> None:
        """Queue ``items`` and wait until they are durable (see module contract)."""
        validate_tenant(tenant)
        if not items:
            return
        if self._stopping:
            raise RuntimeError("segment writer is stopping")
        if self._pending + len(items) > self.max_queue and self._pending > 0:
            raise Backpressure(self.retry_after_s)
        for it in items:
            if "service_name" not in it.labels:
                raise ValueError("series labels must contain service_name")
        self.start()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = self._batches.get(tenant)
        if batch is None:
            batch = self._batches[tenant] = _Batch(created=time.monotonic())
        batch.items.extend(items)
        batch.futures.append(fut)
        batch.est_bytes += sum(estimate_bytes(it) for it in items)
        self._pending += len(items)
        if batch.est_bytes >= self.max_bytes:
            self._dispatch(tenant)
        await asyncio.shield(fut)

    def _dispatch(self, tenant: str) -> None:
        batch = self._batches.pop(tenant, None)
        if batch is None or not batch.items:
            return
        task = asyncio.get_running_loop().create_task(self._flush(tenant, batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self) -> None:
        assert self._wake is not None
        tick = max(0.005, min(0.05, self.max_age_s / 4))
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)
            self._wake.clear()
            now = time.monotonic()
            for tenant in [t for t, b in self._batches.items() if now - b.created >= self.max_age_s]:
                self._dispatch(tenant)

    async def _flush(self, tenant: str, batch: _Batch) -> None:
        assert self._sem is not None
        t0 = time.perf_counter()
        entry: SegmentEntry | None = None
        stored = False
        try:
            async with self._sem:
                data, entry = await asyncio.to_thread(encode_items, tenant, batch.items)
                await asyncio.to_thread(self.store.put, entry.key, data)
                stored = True
                await asyncio.to_thread(self.index.add, entry)
        except BaseException as e:  # noqa: BLE001 - every failure must reach the waiters
            if stored and entry is not None:
                await self._delete_quietly(entry.key)
            log.warning("segment flush failed for tenant %s: %s", tenant, e)
            for f in batch.futures:
                if not f.done():
                    f.set_exception(e if isinstance(e, Exception) else RuntimeError(str(e)))
            self._report(tenant, entry, batch, t0, ok=False, error=str(e))
            if not isinstance(e, Exception):
                raise
        else:
            for f in batch.futures:
                if not f.done():
                    f.set_result(None)
            self._report(tenant, entry, batch, t0, ok=True)
        finally:
            self._pending -= len(batch.items)

    async def _delete_quietly(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.store.delete, key)
        except Exception as e:  # noqa: BLE001 - best effort; collect_orphans handles leftovers
            log.warning("could not delete orphan segment %s: %s", key, e)

    def _report(self, tenant: str, entry: SegmentEntry | None, batch: _Batch, t0: float, *, ok: bool, error: str = "") -> None:
        if self.on_flush is None:
            return
        try:
            self.on_flush(FlushStats(
                tenant=tenant, segment_id=entry.segment_id if entry else "", items=len(batch.items),
                bytes=entry.bytes if entry else 0, samples=entry.samples if entry else 0,
                seconds=time.perf_counter() - t0, ok=ok, error=error,
            ))
        except Exception:  # noqa: BLE001 - metrics must never break ingest
            log.exception("on_flush callback failed")

    async def flush(self) -> None:
        """Flush every pending batch now and wait for all in-flight flushes."""
        for tenant in list(self._batches):
            self._dispatch(tenant)
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def stop(self) -> None:
        """Flush pending data, wait for in-flight writes, stop the flusher."""
        if self._loop_task is None:
            return
        self._stopping = True
        await self.flush()
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        self._loop_task = None
        self._stopping = False
