"""Span segments: the head's trace-id filter lets a lookup read only candidate segments;
tags are searched as dictionary codes; version 1 objects (no filter, tags as strings) are
still read and searched; a damaged head is refused."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from traces_support import json_request, json_span, span_hex, trace_hex

from fleetprof.metastore.index import open_index
from fleetprof.storage.objectstore import FileStore
from fleetprof.traces import otlp
from fleetprof.traces.cache import CACHE
from fleetprof.traces.format import (
    HEAD_PREFIX,
    SegmentHead,
    SpanSegmentCorrupt,
    bloom_of,
    decode,
    encode,
    parse_head,
    read_head,
)
from fleetprof.traces.query import SearchQuery, get_trace, search, tag_values
from fleetprof.traces.table import concat_tables
from fleetprof.traces.writer import encode_table

S = 1_000_000_000
T0 = 1_700_000_000 * S


class CountingStore(FileStore):
    """A file store that counts whole-object reads and ranged reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets = 0
        self.ranges = 0

    def get(self, key: str) -> bytes:
        self.gets += 1
        return super().get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self.ranges += 1
        return super().get_range(key, start, length)


def _chunk(i: int) -> otlp.SpanChunk:
    spans = [json_span(trace_hex(i * 100 + j), span_hex(1), "op", T0 + i * S + j, 1000, attrs={"http.route": f"/r{j % 3}"})
             for j in range(20)]
    req = otlp.parse_json(json.dumps(json_request("svc", spans)).encode(), otlp.SpanLimits())
    return otlp.to_chunk(req, T0, otlp.SpanLimits())[0]


def _v1(data: bytes) -> bytes:
    """The same segment in the version 1 layout (one digest over meta and body, no filter,
    tags as strings in the Parquet file), as the first writer made it."""
    t = decode(data).table()
    head, _ = parse_head(data)
    meta = {k: v for k, v in head.meta.items() if k not in ("bloom", "tag_block_bytes")}
    buf = io.BytesIO()
    pq.write_table(t.cols.to_arrow(), buf, compression="zstd", row_group_size=8192, write_statistics=False)
    ids = b"".join(a.astype(">u8").tobytes() for a in (t.trace_hi, t.trace_lo, t.span, t.parent))
    m = json.dumps(meta).encode()
    body = ids + buf.getvalue()
    return struct.pack("<4sHHI", b"FPSP", 1, 0, len(m)) + m + hashlib.blake2b(m + body, digest_size=32).digest() + body


@pytest.mark.parametrize("version", [2, 1])
def test_lookup_reads_only_segments_that_may_hold_the_trace(tmp_path: Path, version: int) -> None:
    store = CountingStore(tmp_path / f"data{version}")
    index = open_index(f"sqlite://{tmp_path / 'index.db'}")
    for i in range(12):
        data, entry = encode_table("t1", _chunk(i), now_ms=T0 // 10**6 + i)
        store.put(entry.key, data if version == 2 else _v1(data))
        index.add(entry)
    CACHE.clear()
    rows = get_trace(store, index, "t1", bytes.fromhex(trace_hex(705)), T0, T0 + 20 * S)
    assert [r["start_ns"] for r in rows] == [T0 + 7 * S + 5]
    if version == 2:
        assert store.gets == 1 and store.ranges == 12  # twelve heads, one body
    else:
        assert store.gets == 12  # no filter: every segment is read
    CACHE.clear()
    gets = store.gets
    assert get_trace(store, index, "t1", bytes.fromhex(trace_hex(99_999)), T0, T0 + 20 * S) == []
    assert store.gets - gets == (0 if version == 2 else 12)
    CACHE.clear()  # search and tag values on both layouts (tags as dictionary codes, as strings)
    found = search(store, index, "t1", SearchQuery(T0, T0 + 20 * S, tags={"http.route": "/r1"}, limit=1000))
    assert sorted(t["traceID"] for t in found) == sorted(trace_hex(i * 100 + j) for i in range(12) for j in range(1, 20, 3))
    assert search(store, index, "t1", SearchQuery(T0, T0 + 20 * S, tags={"http.route": "/none"})) == []
    assert tag_values(store, index, "t1", "http.route", T0, T0 + 20 * S) == ["/r0", "/r1", "/r2"]


def test_the_filter_admits_every_stored_trace() -> None:
    rng = np.random.default_rng(7)
    hi, lo = rng.integers(0, 2**63, 5000, dtype=np.uint64), rng.integers(0, 2**63, 5000, dtype=np.uint64)
    order = np.lexsort((lo, hi))
    t = concat_tables([_chunk(0)])
    data, _ = encode(t, tenant="t", level=0, created_ms=1)
    head, _ = parse_head(data)
    assert all(head.may_hold(int(h), int(lo_)) for h, lo_ in zip(t.trace_hi, t.trace_lo, strict=True))
    words, bits = bloom_of(hi[order], lo[order])
    assert bits >= 16 * 5000
    big = SegmentHead({}, words, bits, 7)
    assert all(big.may_hold(int(h), int(lo_)) for h, lo_ in zip(hi[:500], lo[:500], strict=True))
    absent = sum(big.may_hold(int(h), int(h) ^ 1) for h in rng.integers(0, 2**63, 5000, dtype=np.uint64))
    assert absent < 50  # about 1 in 1,500 expected


def test_a_damaged_head_is_refused(tmp_path: Path) -> None:
    data, entry = encode_table("t1", _chunk(1), now_ms=T0 // 10**6)
    store = FileStore(tmp_path)
    _, at = parse_head(data)
    for flip in (HEAD_PREFIX + 3, at - 2):  # in the meta, in the filter
        bad = bytearray(data)
        bad[flip] ^= 0x01
        store.put(entry.key, bytes(bad))
        with pytest.raises(SpanSegmentCorrupt, match="head checksum"):
            read_head(store, entry.key)
        with pytest.raises(SpanSegmentCorrupt, match="head checksum"):
            decode(bytes(bad))
    store.put(entry.key, data[:HEAD_PREFIX + 10])
    with pytest.raises(SpanSegmentCorrupt, match="overruns"):
        read_head(store, entry.key)
