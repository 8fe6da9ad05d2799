"""Segment format: round trip, selective reads, corruption detection, concatenation."""

from __future__ import annotations

import struct

import numpy as np
import polars as pl
import pytest
from storage_profiles import ALLOC_TYPE, CPU_TYPE, folded, make

from fleetprof.model import from_tables, merge
from fleetprof.model.hashing import series_id
from fleetprof.segment import (
    FORMAT_VERSION,
    SegmentCorrupt,
    batch_from_profiles,
    concat_batches,
    decode_segment,
    encode_segment,
)

P1 = make({"main;work;hash": 50, "main;work": 30, "main;idle": 5, "": 2})
P2 = make({"main;work;hash": 70, "main;io;read": 9})
P3 = make({"main;alloc": 1000})
ITEMS = [
    ({"service_name": "api", "env": "prod"}, CPU_TYPE, 1_000, P1),
    ({"service_name": "db"}, CPU_TYPE, 2_000, P2),
    ({"service_name": "api", "env": "prod"}, CPU_TYPE, 3_000, P2),
    ({"service_name": "api", "env": "prod"}, ALLOC_TYPE, 3_000, P3),
]


def encoded() -> bytes:
    return encode_segment(batch_from_profiles(ITEMS), tenant="t1", level=0, created_ms=42)


def as_profile(seg, ptype: str, sid: int | None = None):
    s = seg.samples().filter(pl.col("profile_type") == ptype)
    if sid is not None:
        s = s.filter(pl.col("series_id") == sid)
    s = s.select("node_id", pl.lit(0, dtype=pl.UInt64).alias("labels"), pl.col("value").alias("v0"))
    return from_tables(P1.sample_types, seg.frames(), seg.nodes(), s)


def test_roundtrip_tables_and_meta() -> None:
    seg = decode_segment(encoded())
    assert seg.meta["tenant"] == "t1" and seg.meta["created_ms"] == 42
    assert (seg.min_time_ms, seg.max_time_ms) == (1_000, 3_000)
    assert seg.meta["services"] == ["api", "db"]
    assert seg.meta["profile_types"] == sorted([CPU_TYPE, ALLOC_TYPE])
    assert folded(as_profile(seg, CPU_TYPE)) == folded(merge([P1, P2, P2]))
    api = series_id({"service_name": "api", "env": "prod"})
    assert folded(as_profile(seg, CPU_TYPE, api)) == folded(merge([P1, P2]))
    assert folded(as_profile(seg, ALLOC_TYPE)) == folded(P3)
    # Node ids are the model's hashes (recomputed on decode).
    ours = seg.nodes().sort("node_id")
    model = pl.concat([P1.nodes, P2.nodes, P3.nodes]).unique("node_id").sort("node_id")
    assert ours.equals(model)
    labels = seg.labels()
    assert set(labels.filter(pl.col("series_id") == api).select("key", "value").rows()) == {
        ("service_name", "api"), ("env", "prod"),
    }


def test_selective_read_prunes_by_profile_type() -> None:
    seg = decode_segment(encoded())
    t = seg.table("samples", ["time_ms", "value"], filters=[("profile_type", "=", ALLOC_TYPE)])
    assert t.column_names == ["time_ms", "value"]
    assert t.column("value").to_pylist() == [1000]


def test_empty_stack_samples_survive() -> None:
    seg = decode_segment(encoded())
    s = seg.samples().filter(pl.col("node_id") == 0)
    assert s["value"].to_list() == [2]


@pytest.mark.parametrize("where", ["body", "meta", "digest"])
def test_bit_flip_detected(where: str) -> None:
    data = bytearray(encoded())
    meta_len = struct.unpack_from("<I", data, 8)[0]
    pos = {"meta": 12 + 3, "digest": 12 + meta_len + 5, "body": len(data) - 100}[where]
    data[pos] ^= 0x10
    with pytest.raises(SegmentCorrupt, match="checksum"):
        decode_segment(bytes(data))


def test_truncation_and_bad_header_detected() -> None:
    data = encoded()
    for cut in (0, 5, 40, len(data) // 2, len(data) - 1):
        with pytest.raises(SegmentCorrupt):
            decode_segment(data[:cut])
    with pytest.raises(SegmentCorrupt, match="magic"):
        decode_segment(b"XXXX" + data[4:])
    bumped = bytearray(data)
    struct.pack_into("<H", bumped, 4, FORMAT_VERSION + 1)
    with pytest.raises(SegmentCorrupt, match="version"):
        decode_segment(bytes(bumped))


def test_concat_batches_merges_and_rebuckets() -> None:
    a = decode_segment(encoded())
    b = batch_from_profiles([({"service_name": "db"}, CPU_TYPE, 2_500, P1)])
    merged = concat_batches([a, b], step_ms=10_000)
    assert merged.samples["time_ms"].unique().to_list() == [0]
    seg = decode_segment(encode_segment(merged, tenant="t1", level=1))
    assert seg.level == 1
    assert folded(as_profile(seg, CPU_TYPE)) == folded(merge([P1, P2, P2, P1]))
    db = series_id({"service_name": "db"})
    assert folded(as_profile(seg, CPU_TYPE, db)) == folded(merge([P2, P1]))
    # Re-interning: one row per (series, type, time, node).
    keys = seg.samples().select("series_id", "profile_type", "time_ms", "node_id")
    assert keys.height == keys.unique().height


def test_missing_service_name_rejected() -> None:
    with pytest.raises(ValueError, match="service_name"):
        batch_from_profiles([({"env": "x"}, CPU_TYPE, 0, P1)])


def test_deep_stack_roundtrip() -> None:
    deep = make({";".join(f"f{i}" for i in range(3000)): 7})
    seg = decode_segment(encode_segment(batch_from_profiles([({"service_name": "s"}, CPU_TYPE, 0, deep)]), tenant="t"))
    assert int(seg.nodes()["depth"].max()) == 3000
    assert folded(as_profile(seg, CPU_TYPE)) == folded(deep)
    assert np.array_equal(np.sort(seg.node_ids()), np.sort(deep.nodes["node_id"].to_numpy()))
