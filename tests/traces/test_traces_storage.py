"""Span segments in storage: kinds kept apart in both index backends, checksums,
compaction (exactly once, duplicates dropped) and retention."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from traces_support import OTLP_PROTO, json_request, json_span, span_hex, trace_hex

from fleetprof.metastore.cleanup import apply_retention, collect_orphans
from fleetprof.metastore.index import open_index
from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings
from fleetprof.storage.objectstore import open_store
from fleetprof.traces import otlp
from fleetprof.traces.format import SpanSegmentCorrupt, decode, table_from_chunks
from fleetprof.traces.query import get_trace, spans_by_id
from fleetprof.traces.table import SERVICES_BUDGET_BYTES, services_cost
from fleetprof.traces.writer import SpanWriter, encode_table
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


def _services_request(services: list[str], first_span: int = 1) -> ExportTraceServiceRequest:
    """One resource with one span per service."""
    req = ExportTraceServiceRequest()
    for i, svc in enumerate(services):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = svc
        n = first_span + i
        rs.scope_spans.add().spans.add(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name="op",
                                       start_time_unix_nano=T0 + n, end_time_unix_nano=T0 + n + 1000)
    return req


def test_services_past_the_limits_are_rejected_at_ingest_on_dynamodb(s3_store_url: str, dynamo_index_url: str) -> None:
    """A 200,000-character service.name, or 25,000 distinct services in one request, would
    make the span segment's index entry larger than a DynamoDB item (every request of the
    batch 503): their spans are rejected (partial_success) and the rest is stored."""
    settings = Settings.load(env={}, storage=s3_store_url, index=dynamo_index_url, flush_max_age_s=0.02)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.post("/v1/traces", content=_services_request(["x" * 200_000, "svc"]).SerializeToString(), headers=OTLP_PROTO)
        assert r.status_code == 200, r.text
        partial = ExportTraceServiceResponse.FromString(r.content).partial_success
        assert partial.rejected_spans == 1 and "service.name of 200000 characters" in partial.error_message
        many = [f"service-{i:012d}" for i in range(25_000)]
        r = c.post("/v1/traces", content=_services_request(many, first_span=10).SerializeToString(), headers=OTLP_PROTO)
        assert r.status_code == 200, r.text
        partial = ExportTraceServiceResponse.FromString(r.content).partial_success
        assert partial.rejected_spans == 24_000 and "past the limit of 1000 services" in partial.error_message
    entries = open_index(dynamo_index_url).query("anonymous", 0, 10**13, kind="spans")
    assert sorted(len(e.services) for e in entries) == [1, 1000] and sum(e.samples for e in entries) == 1001
    assert set(next(e for e in entries if len(e.services) > 1).services) == set(many[:1000])


def test_writer_and_compaction_keep_service_lists_within_an_index_entry(backends) -> None:
    """Eight requests of 301 services each (63 KB of names apiece, 500 KB together) go to
    eight segments, not one (the writer flushes before a batch passes the budget), and
    compaction merges no two of them: every index entry fits a DynamoDB item."""
    store, index = backends
    chunks = []
    for k in range(8):
        names = ["shared"] + [f"{k}-{j:03d}-" + "s" * 200 for j in range(300)]
        req = _services_request(names, first_span=1000 * k + 1)
        chunk, rejected, _ = otlp.to_chunk(req, T0, otlp.SpanLimits())
        assert rejected == 0 and services_cost(chunk.services()) <= SERVICES_BUDGET_BYTES
        chunks.append(chunk)

    async def write() -> None:
        w = SpanWriter(store, index, max_age_s=3600)
        tasks = []
        for chunk in chunks:
            tasks.append(asyncio.ensure_future(w.submit("t1", [chunk])))
            await asyncio.sleep(0)
        await w.stop()
        await asyncio.gather(*tasks)

    asyncio.run(write())
    entries = index.query("t1", 0, 10**13, kind="spans")
    assert sorted(len(e.services) for e in entries) == [301] * 8
    now_ms = T0 // 10**6 + 3 * HOUR_MS
    [part] = [p for p in plan(index, level=1, start_ms=0, end_ms=now_ms, now_ms=now_ms) if p.kind == "spans"]
    res = compact_partition(store, index, part, now_ms=now_ms)
    live = index.query("t1", 0, 10**13, kind="spans")
    assert res.samples_out == 8 * 301 and [e.level for e in live] == [1] * 8
    assert all(services_cost(e.services) <= SERVICES_BUDGET_BYTES for e in live)
