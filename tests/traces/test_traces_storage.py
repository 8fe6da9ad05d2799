"""Span segments in storage: kinds kept apart in both index backends, checksums,
compaction (exactly once, duplicates dropped) and retention."""

from __future__ import annotations

import json

import pytest
from traces_support import json_request, json_span, span_hex, trace_hex

from fleetprof.metastore.cleanup import apply_retention, collect_orphans
from fleetprof.metastore.index import open_index
from fleetprof.storage.objectstore import open_store
from fleetprof.traces import otlp
from fleetprof.traces.format import SpanSegmentCorrupt, decode, table_from_chunks
from fleetprof.traces.query import get_trace, spans_by_id
from fleetprof.traces.writer import encode_table
from workers.compact import compact_partition, gc_compacted, plan

S = 1_000_000_000
T0 = 1_700_000_000 * S
HOUR_MS = 3_600_000


def _chunk(i: int, *, dup: bool = False) -> otlp.SpanChunk:
    spans = [json_span(trace_hex(i), span_hex(1), "root", T0 + i * S, 5 * 10**6),
             json_span(trace_hex(i), span_hex(2), "child", T0 + i * S + 1000, 10**6, parent=span_hex(1))]
    if dup:
        spans = spans[:1]
    req = otlp.parse_json(json.dumps(json_request("svc", spans)).encode(), otlp.SpanLimits())
    return otlp.to_chunk(req, T0, otlp.SpanLimits())[0]


def _write(store, index, chunk: otlp.SpanChunk, tenant: str = "t1"):
    data, entry = encode_table(tenant, table_from_chunks([chunk]), now_ms=T0 // 10**6)
    store.put(entry.key, data)
    index.add(entry)
    return entry


@pytest.fixture
def backends(backend: tuple[str, str]):
    return open_store(backend[0]), open_index(backend[1])


def test_span_segments_compact_exactly_once_and_expire(backends) -> None:
    store, index = backends
    entries = [_write(store, index, _chunk(i)) for i in range(5)]
    _write(store, index, _chunk(0, dup=True))  # an exporter's retry: the root again
    assert index.query("t1", 0, 10**13) == []  # profile queries never see span segments
    assert {e.segment_id for e in index.query("t1", 0, 10**13, kind="spans")} >= {e.segment_id for e in entries}
    now_ms = T0 // 10**6 + 3 * HOUR_MS
    parts = [p for p in plan(index, level=1, start_ms=0, end_ms=now_ms, now_ms=now_ms) if p.kind == "spans"]
    assert len(parts) == 1
    res = compact_partition(store, index, parts[0], now_ms=now_ms)
    live = index.query("t1", 0, 10**13, kind="spans")
    assert len(live) == 1 and live[0].level == 1 and res.samples_in == 11 and res.samples_out == 10
    rows = get_trace(store, index, "t1", bytes.fromhex(trace_hex(0)))
    assert sorted(r["name"] for r in rows) == ["child", "root"]
    assert [s["trace_id"] for s in spans_by_id(store, index, "t1", [span_hex(2)], T0, T0 + 2 * S)] == [trace_hex(0), trace_hex(1)]
    seg = decode(store.get(live[0].key))
    assert list(seg.trace_lo) == sorted(seg.trace_lo)
    assert gc_compacted(store, index, "t1", grace_s=0, now_ms=now_ms + 1) == 6
    assert collect_orphans(store, index, older_than_s=0, now_ms=now_ms + 10**9) == []  # the L1 object is referenced
    assert apply_retention(store, index, "t1", older_than_ms=T0 // 10**6 + HOUR_MS, now_ms=now_ms) == 1
    assert index.query("t1", 0, 10**13, kind=None) == []
    assert [k for k in store.list("segments/")] == []


def test_corrupt_span_segments_are_refused(backends) -> None:
    store, index = backends
    entry = _write(store, index, _chunk(1))
    data = bytearray(store.get(entry.key))
    assert store.get_range(entry.key, 10, 6) == data[10:16]  # the ranged reads heads are read with
    assert store.get_range(entry.key, len(data) - 4, 100) == data[-4:]
    assert store.get_range(entry.key, len(data) + 10, 5) == b""
    with pytest.raises(KeyError):
        store.get_range(entry.key + "-absent", 0, 10)
    for flip in (len(data) - 5, 40):
        bad = bytearray(data)
        bad[flip] ^= 0xFF
        with pytest.raises(SpanSegmentCorrupt):
            decode(bytes(bad))
    with pytest.raises(SpanSegmentCorrupt, match="magic"):
        decode(b"FPSG" + bytes(data[4:]))
