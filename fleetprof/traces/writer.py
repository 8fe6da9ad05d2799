"""The span writer: :class:`~fleetprof.segment.writer.SegmentWriter`'s batching and
durable-ack contract for :class:`~fleetprof.traces.otlp.SpanChunk` items.

``await submit(tenant, [chunk, ...])`` returns once one span segment object holding the
chunks and its index entry (``kind="spans"``) are durable; :class:`Backpressure` when
``max_queue`` **spans** are pending. A tenant's batch is also flushed as soon as it holds
``max_spans`` spans, and flushed *before* chunks join it whose services would take the
batch's distinct services past :data:`~fleetprof.metastore.index.SERVICES_BUDGET_BYTES`
(their index entry must fit a DynamoDB item); a call whose own chunks pass that budget is
:class:`InvalidItem`. The writer's other rules (age/bytes flushes, failed flushes leave
nothing visible, ``stop`` flushes) are the profile writer's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fleetprof.metastore.index import MAX_TIME_MS, SegmentEntry
from fleetprof.segment.keys import new_segment_id, segment_key
from fleetprof.segment.writer import InvalidItem, SegmentWriter
from fleetprof.storage.objectstore import ObjectStore
from fleetprof.traces.cache import CACHE
from fleetprof.traces.format import SpanTable, decode, encode, table_from_chunks
from fleetprof.traces.table import SERVICES_BUDGET_BYTES

NS_PER_MS = 1_000_000


def entry_for(tenant: str, level: int, data: bytes, meta: dict[str, Any], created_ms: int) -> SegmentEntry:
    """The index entry of a span segment object (times: first start to last end, in ms)."""
    sid = new_segment_id(created_ms)
    lo = min(max(0, int(meta["min_time_ns"]) // NS_PER_MS), MAX_TIME_MS)
    hi = min(max(lo, -(-int(meta["max_time_ns"]) // NS_PER_MS)), MAX_TIME_MS)
    return SegmentEntry(
        tenant=tenant, segment_id=sid, level=level, services=tuple(meta["services"]), profile_types=(),
        min_time_ms=lo, max_time_ms=hi, key=segment_key(tenant, level, sid, lo), bytes=len(data),
        samples=int(meta["rows"]), state="live", created_ms=created_ms, kind="spans",
    )


def encode_table(tenant: str, table: SpanTable, *, level: int = 0, now_ms: int | None = None) -> tuple[bytes, SegmentEntry]:
    """One span segment object of ``table`` and its index entry."""
    created = int(time.time() * 1000) if now_ms is None else now_ms
    data, meta = encode(table, tenant=tenant, level=level, created_ms=created)
    return data, entry_for(tenant, level, data, meta, created)


class SpanWriter(SegmentWriter):
    """Segment writer for span chunks (see the module docstring)."""

    def __init__(self, store: ObjectStore, index: Any, *, max_spans: int = 8192,
                 services_budget: int = SERVICES_BUDGET_BYTES, **kw: Any) -> None:
        kw.setdefault("max_queue", 200_000)
        super().__init__(store, index, services_budget=services_budget, **kw)
        self.max_spans = max(1, int(max_spans))

    def _names(self, items: Sequence[Any]) -> tuple[set[str], set[str]]:
        names: set[str] = set()
        for it in items:
            names |= it.services()
        return names, set()

    def _full(self, batch: Any) -> bool:
        return batch.est_bytes >= self.max_bytes or self._weight(batch.items) >= self.max_spans

    def _validate(self, item: Any) -> None:
        if not isinstance(item, SpanTable) or len(item) == 0:
            raise InvalidItem("a span write needs a non-empty span chunk")

    def _estimate(self, item: Any) -> int:
        return 32 * len(item) + int(item.cols.estimated_size())

    def _weight(self, items: Sequence[Any]) -> int:
        return sum(len(c) for c in items)

    def _encode(self, tenant: str, items: Sequence[Any]) -> tuple[bytes, SegmentEntry]:
        return encode_table(tenant, table_from_chunks(items))

    def _remember(self, key: str, data: bytes) -> None:
        CACHE.put(self.store, key, decode(data))
