"""The segment writer: batches ingested profiles per tenant into durable segments.

Contract:

* ``await submit(tenant, items)`` returns only after the segment object holding the items
  **and** its index entry are durable; it raises the write's error otherwise (the caller
  answers 5xx) and :class:`Backpressure` at once when ``max_queue`` items are pending
  (the caller answers 429 with ``Retry-After: retry_after_s``).
* Every item is validated before any of a call's items joins a batch (:func:`validate_item`):
  a bad one raises :class:`InvalidItem` (the caller answers 400) and nothing of that call
  is queued, so one bad request never fails the other requests of its tenant's batch.
* A tenant's batch is flushed when its oldest item is ``max_age_s`` old or it holds
  ``max_bytes`` (estimated), and flushed *before* a call's items join it whose services
  (or profile types) would take the batch's distinct ones past ``services_budget``
  (:data:`~fleetprof.metastore.index.SERVICES_BUDGET_BYTES`; profile types:
  :data:`~fleetprof.metastore.index.PROFILE_TYPES_BUDGET_BYTES`), so every index entry
  fits a DynamoDB item; a call whose own items pass a budget is :class:`InvalidItem`. A flush writes **one** object (``store.put``), then
  ``index.add``, and only then resolves every waiting future. The index is written last,
  so a failed flush leaves nothing visible; the object of a failed ``index.add`` is
  deleted best-effort and :func:`collect_orphans` removes any that survive a crash.
* Encoding and blocking I/O run in worker threads (``asyncio.to_thread``) so the event
  loop keeps accepting while a batch is written.
* After the ack, the new segment is inserted into the decoded-segment cache
  (:mod:`fleetprof.segment.cache`), so queries over freshly ingested data need no re-read.
* ``await stop()`` flushes everything pending and waits for in-flight flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from fleetprof import telemetry
from fleetprof.metastore.cleanup import collect_orphans
from fleetprof.metastore.index import (
    MAX_TIME_MS,
    PROFILE_TYPES_BUDGET_BYTES,
    SERVICES_BUDGET_BYTES,
    Index,
    SegmentEntry,
    services_cost,
)
from fleetprof.model.hashing import frame_ids, labels_id, series_id
from fleetprof.model.profile import FRAMES_SCHEMA, NODES_SCHEMA, Profile, Stacks, ValueType, build
from fleetprof.model.spans import single_span_table, spans_of_sets, unique_spans
from fleetprof.segment.cache import remember_encoded
from fleetprof.segment.format import (
    LABELS_SCHEMA,
    SAMPLES_SCHEMA,
    SegmentBatch,
    encode_segment,
    profile_value_column,
)
from fleetprof.segment.keys import new_segment_id, segment_key, validate_tenant
from fleetprof.storage.objectstore import ObjectStore

__all__ = [
    "Backpressure", "FlushStats", "IngestItem", "InvalidItem", "SegmentWriter", "StackItem", "collect_orphans",
    "encode_items", "validate_item",
]

log = logging.getLogger("fleetprof.segment.writer")


@dataclass(frozen=True)
class IngestItem:
    """One profile of one series: ``profile`` has a single sample type (or one matching
    ``profile_type``), ``labels`` include ``service_name``, ``time_ms`` is its timestamp.
    A sample whose label set (``profile.labels``) holds a ``span_id`` keeps it per sample
    (:mod:`fleetprof.model.spans`); other sample labels are summed over."""

    labels: dict[str, str]
    profile_type: str
    time_ms: int
    profile: Profile


@dataclass(frozen=True)
class StackItem:
    """An :class:`IngestItem` whose profile is not built yet: decoded, validated CSR
    ``stacks`` (see :class:`fleetprof.model.profile.Stacks`) of which value column
    ``column`` holds ``profile_type``. The writer builds the call trees of a whole batch of
    these at once (one :func:`~fleetprof.model.profile.build` per flush instead of one per
    request); :attr:`profile` builds this item alone (for callers that want a Profile)."""

    labels: dict[str, str]
    profile_type: str
    time_ms: int
    stacks: Stacks
    column: int = 0
    sample_type: ValueType = field(default_factory=lambda: ValueType("samples", "count"))
    nonzero: int = -1
    """Stacks with a non-zero value in ``column`` if the producer counted them (-1: not)."""
    span: tuple[int, str, str] | None = None
    """``(span id, span name, trace id)`` of stacks whose own labels name no span (a span
    sent as series labels); stacks with a ``span_id`` sample label keep theirs."""

    @property
    def rows(self) -> int:
        """Stacks with a non-zero value (the sample rows this item adds at most)."""
        return self.nonzero if self.nonzero >= 0 else int(np.count_nonzero(self.values()))

    def values(self) -> np.ndarray:
        v = np.asarray(self.stacks.values, dtype=np.int64)
        return v.reshape(len(self.stacks.offsets) - 1, -1)[:, self.column]

    @property
    def profile(self) -> Profile:
        st = self.stacks
        one = Stacks(names=st.names, files=st.files, offsets=st.offsets, frames=st.frames, values=self.values()[:, None], lines=st.lines)
        return build(one, [self.sample_type])


def item_rows(item: IngestItem | StackItem) -> int:
    """Sample rows of an item (for metrics)."""
    return item.rows if isinstance(item, StackItem) else item.profile.samples.height


class InvalidItem(ValueError):
    """An item that cannot be written (bad time, labels or profile type)."""


def validate_item(item: IngestItem | StackItem) -> None:
    """:class:`InvalidItem` unless ``item`` can join a batch: a str→str label map with a
    ``service_name``, a non-empty profile type, an integer time in ``[0, MAX_TIME_MS]``."""
    if not isinstance(item, IngestItem | StackItem):
        raise InvalidItem(f"not an ingest item: {type(item).__name__}")
    t = item.time_ms
    if not isinstance(t, int | np.integer) or isinstance(t, bool) or not 0 <= int(t) <= MAX_TIME_MS:
        shown = repr(t)[:32]
        raise InvalidItem(f"profile time {shown} ms is outside 0..{MAX_TIME_MS}")
    labels = item.labels
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise InvalidItem("series labels must map strings to strings")
    if not labels.get("service_name"):
        raise InvalidItem("series labels must contain service_name")
    if not isinstance(item.profile_type, str) or not item.profile_type:
        raise InvalidItem("profile type must be a non-empty string")


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
    links: list[object] = field(default_factory=list)
    """Sampled spans of the requests in the batch (the flush span links to them)."""
    services: set[str] = field(default_factory=set)
    services_cost: int = 0
    """:func:`~fleetprof.metastore.index.services_cost` of ``services``."""
    types: set[str] = field(default_factory=set)
    types_cost: int = 0
    """The same for the distinct profile ``types``."""


def estimate_bytes(item: IngestItem | StackItem) -> int:
    """Rough in-memory size of an item (drives ``max_bytes`` flushes)."""
    if isinstance(item, StackItem):
        st = item.stacks
        return 64 + 40 * (len(st.offsets) - 1) + 8 * len(st.frames) + 48 * len(st.names)
    p = item.profile
    return 64 + 32 * p.samples.height + 28 * p.nodes.height + 48 * p.frames.height


def batch_from_items(items: Sequence[IngestItem]) -> tuple[SegmentBatch, list[dict[str, str]]]:
    """The canonical segment tables of a whole batch (the same tables as
    :func:`fleetprof.segment.format.batch_from_profiles`), built with one concatenation and
    one polars aggregation for the batch instead of one polars query per item; also the
    distinct label sets. Per item only column arrays are taken (no per-sample work)."""
    sids: list[int] = []
    ptypes: dict[str, int] = {}
    pcodes: list[int] = []
    times: list[int] = []
    counts: list[int] = []
    node_ids: list[np.ndarray] = []
    values: list[np.ndarray] = []
    nodes: list[pl.DataFrame] = []
    frames: list[pl.DataFrame] = []
    span_ids: list[np.ndarray] = []
    span_tables: list[pl.DataFrame] = []
    by_labels: dict[tuple[tuple[str, str], ...], int] = {}
    label_sets: dict[int, dict[str, str]] = {}
    lazy: list[StackItem] = []
    for it in items:
        if "service_name" not in it.labels:
            raise ValueError("series labels must contain service_name")
        key = tuple(it.labels.items())
        sid = by_labels.get(key)
        if sid is None:
            sid = by_labels[key] = series_id(it.labels)
            label_sets.setdefault(sid, dict(it.labels))
        if isinstance(it, StackItem):
            lazy.append(it)
            continue
        p = it.profile
        col = profile_value_column(p, it.profile_type)
        smp = p.samples
        sids.append(sid)
        pcodes.append(ptypes.setdefault(it.profile_type, len(ptypes)))
        times.append(int(it.time_ms))
        counts.append(smp.height)
        node_ids.append(smp.get_column("node_id").to_numpy())
        values.append(smp.get_column(col).to_numpy())
        span, table = _profile_spans(p)
        span_ids.append(span)
        span_tables.append(table)
        nodes.append(p.nodes)
        frames.append(p.frames)
    reps = np.asarray(counts, dtype=np.int64)
    row_sid = [np.repeat(np.asarray(sids, dtype=np.uint64), reps)]
    row_code = [np.repeat(np.asarray(pcodes, dtype=np.uint32), reps)]
    row_time = [np.repeat(np.asarray(times, dtype=np.int64), reps)]
    if lazy:
        prof, item_of_row, span_of_row, table = _build_together(lazy)
        span_ids.append(span_of_row)
        span_tables.append(table)
        smp = prof.samples
        node_ids.append(smp.get_column("node_id").to_numpy())
        values.append(smp.get_column("v0").to_numpy())
        lsid = np.asarray([by_labels[tuple(it.labels.items())] for it in lazy], dtype=np.uint64)
        lcode = np.asarray([ptypes.setdefault(it.profile_type, len(ptypes)) for it in lazy], dtype=np.uint32)
        ltime = np.asarray([int(it.time_ms) for it in lazy], dtype=np.int64)
        row_sid.append(lsid[item_of_row])
        row_code.append(lcode[item_of_row])
        row_time.append(ltime[item_of_row])
        nodes.append(prof.nodes)
        frames.append(prof.frames)
    codes = np.concatenate(row_code)
    samples = pl.DataFrame(
        {
            "series_id": np.concatenate(row_sid),
            "profile_type": pl.Series(list(ptypes), dtype=pl.Utf8).gather(codes),
            "time_ms": np.concatenate(row_time),
            "node_id": np.concatenate(node_ids).astype(np.uint64, copy=False) if node_ids else np.zeros(0, np.uint64),
            "value": np.concatenate(values).astype(np.int64, copy=False) if values else np.zeros(0, np.int64),
        },
        schema=SAMPLES_SCHEMA,
    )
    spans = unique_spans(span_tables)
    keys = ["series_id", "profile_type", "time_ms", "node_id"]
    if spans.height:
        samples = samples.with_columns(pl.Series("span_id", np.concatenate(span_ids), dtype=pl.UInt64))
        keys.append("span_id")
    samples = (
        samples.group_by(keys)
        .agg(pl.col("value").sum())
        .filter(pl.col("value") != 0)
        .select([*SAMPLES_SCHEMA, *keys[4:]])
    )
    n = _concat_unique(nodes, NODES_SCHEMA, "node_id", "any")
    f = _concat_unique(frames, FRAMES_SCHEMA, "frame_id", "first")
    lab = pl.DataFrame([(sid, k, v) for sid, ls in label_sets.items() for k, v in ls.items()], schema=LABELS_SCHEMA, orient="row")
    return SegmentBatch(lab, samples, n, f, spans if spans.height else None), list(label_sets.values())


def _profile_spans(p: Profile) -> tuple[np.ndarray, pl.DataFrame]:
    """Span id of every sample row of ``p`` (0: none) and the spans table (per label set)."""
    n = p.samples.height
    if p.labels.height == 0 or "labels" not in p.samples.columns:
        return np.zeros(n, dtype=np.uint64), unique_spans([])
    set_ids = p.samples.get_column("labels").to_numpy()
    uniq, inv = np.unique(set_ids, return_inverse=True)
    per_set, table = spans_of_sets(uniq, p.labels)
    return per_set[inv.reshape(-1)], table


def _stack_spans(it: StackItem) -> tuple[np.ndarray, pl.DataFrame]:
    """Span id of every stack of ``it`` (0: none; ``it.span`` where its labels name none)
    and the spans table. One step per label set, not per stack."""
    st = it.stacks
    n = len(st.offsets) - 1
    span = np.zeros(n, dtype=np.uint64)
    table = unique_spans([])
    if st.label_index is not None and st.label_set_ids is not None and st.labels is not None:
        per_set, table = spans_of_sets(np.asarray(st.label_set_ids, dtype=np.uint64), st.labels)
        if per_set.any():
            span = per_set[np.asarray(st.label_index, dtype=np.int64)]
    elif st.label_index is not None and st.label_sets:
        rows = [(k, key, val) for k, ls in enumerate(st.label_sets) for key, val in ls]
        long = pl.DataFrame(rows, schema={"labels": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8}, orient="row")
        per_set, table = spans_of_sets(np.arange(len(st.label_sets), dtype=np.uint64), long)
        if per_set.any():
            span = per_set[np.asarray(st.label_index, dtype=np.int64)]
    if it.span is not None:
        span = np.where(span == 0, np.uint64(it.span[0]), span)
        table = unique_spans([table, single_span_table(it.span)])
    return span, table


_FRAME_IDS: dict[tuple[str, str, int], int] = {}
_FRAME_IDS_MAX = 1 << 18


def _build_together(items: Sequence[StackItem]) -> tuple[Profile, np.ndarray, np.ndarray, pl.DataFrame]:
    """One :func:`build` over the stacks of every item (the stacks of item ``k`` with span
    ``s`` carry the label set ``{"item": k, "span": s}``): the profile (samples summed per
    item, span and node), the item and the span id of each of its sample rows, and the
    spans table. Frames are interned across the batch first (one dict lookup per local
    frame table entry), so each distinct frame is hashed once (and memoised)."""
    index: dict[tuple[str, str, int], int] = {}
    names: list[str] = []
    files: list[str] = []
    lines: list[int] = []
    offs: list[np.ndarray] = []
    frms: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    counts: list[int] = []
    stack_spans: list[np.ndarray] = []
    tables: list[pl.DataFrame] = []
    base = 0
    for it in items:
        st = it.stacks
        ln = st.lines if st.lines is not None else [0] * len(st.names)
        local = np.fromiter(
            (index.setdefault((n, f, int(x)), len(index)) for n, f, x in zip(st.names, st.files, ln, strict=True)),
            dtype=np.int64, count=len(st.names),
        )
        if len(index) > len(names):
            fresh = list(index)[len(names):]
            names += [k[0] for k in fresh]
            files += [k[1] for k in fresh]
            lines += [k[2] for k in fresh]
        o = np.asarray(st.offsets, dtype=np.int64)
        offs.append(o[1:] + base if offs else o + base)
        base += int(o[-1])
        frms.append(local[np.asarray(st.frames, dtype=np.int64)])
        v = it.values()
        vals.append(v)
        counts.append(len(v))
        sp, tb = _stack_spans(it)
        stack_spans.append(sp)
        tables.append(tb)
    keys = list(index)
    known = [_FRAME_IDS.get(k) for k in keys]
    missing = [i for i, x in enumerate(known) if x is None]
    if missing:
        ids = frame_ids([names[i] for i in missing], [files[i] for i in missing], [lines[i] for i in missing])
        if len(_FRAME_IDS) + len(missing) > _FRAME_IDS_MAX:
            _FRAME_IDS.clear()
        for i, fid in zip(missing, ids.tolist(), strict=True):
            known[i] = fid
            _FRAME_IDS[keys[i]] = fid
    ftab = np.asarray(known, dtype=np.uint64)
    item_of_stack = np.repeat(np.arange(len(items), dtype=np.uint64), np.asarray(counts, dtype=np.int64))
    span_of_stack = np.concatenate(stack_spans) if stack_spans else np.zeros(0, dtype=np.uint64)
    if span_of_stack.any():
        pairs, label_index = np.unique(np.stack([item_of_stack, span_of_stack], axis=1), axis=0, return_inverse=True)
        pairs = pairs.reshape(-1, 2)
    else:  # no spans (the usual case): one label set per item
        pairs = np.stack([np.arange(len(items), dtype=np.uint64), np.zeros(len(items), dtype=np.uint64)], axis=1)
        label_index = item_of_stack
    sets = [(("item", str(k)), ("span", str(sp))) for k, sp in pairs.tolist()]
    stacks = Stacks(
        names=names, files=files, offsets=np.concatenate(offs), frames=np.concatenate(frms),
        values=np.concatenate(vals)[:, None], lines=lines if any(lines) else None,
        label_index=label_index.reshape(-1).astype(np.int64), label_sets=sets,
    )
    prof = build(stacks, [ValueType("value", "")], frame_id_table=ftab)
    ids = np.asarray([labels_id(ls) for ls in sets], dtype=np.uint64)
    order = np.argsort(ids)
    if len(np.unique(ids)) != len(ids):  # a label-id collision (never for these sets): no grouping trick
        raise RuntimeError("label id collision while building a batch")
    row_ids = prof.samples.get_column("labels").to_numpy()
    pos = order[np.searchsorted(ids[order], row_ids)]
    return prof, pairs[pos, 0].astype(np.int64), pairs[pos, 1].astype(np.uint64), unique_spans(tables)


def _concat_unique(parts: list[pl.DataFrame], schema: dict[str, pl.DataType], key: str, keep: str) -> pl.DataFrame:
    """Rows of ``parts`` (in ``schema``'s columns) with distinct ``key``; a ``select`` only
    for parts whose columns differ (a per-part polars query costs ~50 µs)."""
    if not parts:
        return pl.DataFrame(schema=schema)
    cols = list(schema)
    same = [x if x.columns == cols and x.schema == schema else x.select(cols).cast(schema) for x in parts]  # type: ignore[arg-type]
    return pl.concat(same, rechunk=False).unique(key, keep=keep)  # type: ignore[arg-type]


def encode_items(tenant: str, items: Sequence[IngestItem], *, level: int = 0, now_ms: int | None = None) -> tuple[bytes, SegmentEntry]:
    """Encode items into one segment object and the index entry that will describe it."""
    created = int(time.time() * 1000) if now_ms is None else now_ms
    batch, label_sets = batch_from_items(items)
    data = encode_segment(batch, tenant=tenant, level=level, created_ms=created)
    sid = new_segment_id(created)
    series: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for ls in label_sets:
        series.setdefault(tuple(sorted(ls.items())), ls)
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
        services_budget: int = SERVICES_BUDGET_BYTES,
        types_budget: int = PROFILE_TYPES_BUDGET_BYTES,
    ) -> None:
        self.store = store
        self.index = index
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.on_flush = on_flush
        self.services_budget = services_budget
        self.types_budget = types_budget
        self._batches: dict[str, _Batch] = {}
        self._pending = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._sem: asyncio.Semaphore | None = None
        self._max_flushes = max_concurrent_flushes
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # What a batch holds and how it is written: profiles here; a subclass (the span writer
    # of :mod:`fleetprof.traces.writer`) overrides these five with the same contracts.
    def _validate(self, item: Any) -> None:
        """:class:`InvalidItem` unless ``item`` can join a batch."""
        validate_item(item)

    def _estimate(self, item: Any) -> int:
        """Estimated in-memory bytes of ``item`` (drives ``max_bytes`` flushes)."""
        return estimate_bytes(item)

    def _weight(self, items: Sequence[Any]) -> int:
        """What ``items`` count towards ``max_queue``."""
        return len(items)

    def _names(self, items: Sequence[Any]) -> tuple[set[str], set[str]]:
        """The distinct services and profile types of (validated) ``items``: what their
        segment's index entry lists."""
        return {it.labels["service_name"] for it in items}, {it.profile_type for it in items}

    def _encode(self, tenant: str, items: Sequence[Any]) -> tuple[bytes, SegmentEntry]:
        """One segment object of ``items`` and the index entry describing it."""
        return encode_items(tenant, items)

    def _remember(self, key: str, data: bytes) -> None:
        """Keep the acknowledged segment ``data`` decoded for queries."""
        remember_encoded(self.store, key, data)

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
        weight = self._weight(items)
        if self._pending + weight > self.max_queue and self._pending > 0:
            raise Backpressure(self.retry_after_s)
        for it in items:
            self._validate(it)
        names, types = self._names(items)
        self._check_budget("services", names, self.services_budget)
        self._check_budget("profile types", types, self.types_budget)
        self.start()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        batch = self._batches.get(tenant)
        if batch is not None:
            new, tnew = names - batch.services, types - batch.types
            if (batch.services_cost + services_cost(new) > self.services_budget
                    or batch.types_cost + services_cost(tnew) > self.types_budget):
                self._dispatch(tenant)
                batch = None
        if batch is None:
            batch = self._batches[tenant] = _Batch(created=time.monotonic())
        new, tnew = names - batch.services, types - batch.types
        batch.services |= new
        batch.services_cost += services_cost(new)
        batch.types |= tnew
        batch.types_cost += services_cost(tnew)
        batch.items.extend(items)
        batch.futures.append(fut)
        if (link := telemetry.current_link()) is not None:
            batch.links.append(link)
        batch.est_bytes += sum(self._estimate(it) for it in items)
        self._pending += weight
        if self._full(batch):
            self._dispatch(tenant)
        await asyncio.shield(fut)

    @staticmethod
    def _check_budget(what: str, names: set[str], budget: int) -> None:
        """:class:`InvalidItem` when the distinct ``names`` cost more than ``budget``."""
        cost = services_cost(names)
        if cost > budget:
            raise InvalidItem(
                f"the request's {len(names)} distinct {what} take {cost} bytes in a segment's index entry, "
                f"over the limit of {budget} bytes (UTF-8 bytes plus 8 per name)"
            )

    def _full(self, batch: _Batch) -> bool:
        """Whether ``batch`` is flushed now rather than at its age."""
        return batch.est_bytes >= self.max_bytes

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
        data = b""
        stored = acked = False
        try:
            async with self._sem:
                with telemetry.linked_span("segment.flush", batch.links, {"fleetprof.tenant": tenant, "fleetprof.items": len(batch.items)}) as sp:
                    with telemetry.child("segment.encode"):
                        data, entry = await asyncio.to_thread(self._encode, tenant, batch.items)
                    sp.set({"fleetprof.segment.bytes": entry.bytes, "fleetprof.segment.id": entry.segment_id, "fleetprof.segment.samples": entry.samples})
                    with telemetry.child("store.put", {"fleetprof.key": entry.key, "fleetprof.bytes": len(data)}):
                        await asyncio.to_thread(self.store.put, entry.key, data)
                    stored = True
                    with telemetry.child("index.add"):
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
            acked = True
        finally:
            self._pending -= self._weight(batch.items)
        if acked and entry is not None:
            await self._warm_cache(entry.key, data)

    async def _warm_cache(self, key: str, data: bytes) -> None:
        """After the ack: keep the new segment decoded for queries (best effort)."""
        try:
            await asyncio.to_thread(self._remember, key, data)
        except Exception as e:  # noqa: BLE001 - a cache miss later only costs a re-read
            log.warning("could not cache segment %s: %s", key, e)

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
