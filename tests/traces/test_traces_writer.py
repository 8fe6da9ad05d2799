"""The span writer: a batch is flushed as soon as it holds ``max_spans`` spans."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from traces_support import json_request, json_span, span_hex, trace_hex

from fleetprof.metastore.index import open_index
from fleetprof.storage.objectstore import open_store
from fleetprof.traces import otlp
from fleetprof.traces.query import span_entries
from fleetprof.traces.writer import SpanWriter

S = 1_000_000_000
T0 = 1_700_000_000 * S


def _chunk(trace: int, spans: int) -> otlp.SpanChunk:
    doc = json_request("svc", [json_span(trace_hex(trace), span_hex(j + 1), "op", T0 + j, 1000) for j in range(spans)])
    return otlp.to_chunk(otlp.parse_json(json.dumps(doc).encode(), otlp.SpanLimits()), T0, otlp.SpanLimits())[0]


def test_a_full_batch_is_flushed_without_waiting_for_its_age(tmp_path: Path) -> None:
    store, index = open_store((tmp_path / "data").as_uri()), open_index(f"sqlite://{tmp_path / 'index.db'}")

    async def run() -> None:
        w = SpanWriter(store, index, max_age_s=3600, max_spans=5)
        try:
            small = asyncio.ensure_future(w.submit("t1", [_chunk(1, 2)]))
            await asyncio.wait_for(w.submit("t1", [_chunk(2, 3)]), 60)  # 2 + 3 = max_spans: flushed now
            assert small.done()
            await asyncio.wait_for(w.submit("t1", [_chunk(3, 7)]), 60)  # one chunk above max_spans
            late = asyncio.ensure_future(w.submit("t1", [_chunk(4, 1)]))
            await asyncio.sleep(0)
            assert not late.done() and w.pending == 1  # below max_spans: waits for its age
        finally:
            await w.stop()

    asyncio.run(run())
    entries = span_entries(index, "t1")
    assert sorted(e.samples for e in entries) == [1, 5, 7]
