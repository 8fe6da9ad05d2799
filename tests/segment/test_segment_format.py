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


def encoded(version: int = FORMAT_VERSION) -> bytes:
    return encode_segment(batch_from_profiles(ITEMS), tenant="t1", level=0, created_ms=42, format_version=version)


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
        decode_segment(b"PAR1" + data[4:])  # a bare Parquet magic where FPSG belongs
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


def test_unsampled_nodes_and_frames_are_not_stored() -> None:
    # P1 has a node "main;idle" etc.; give the batch an extra subtree that no sample uses.
    extra = make({"main;unused;deep;stack": 5})
    batch = batch_from_profiles([({"service_name": "s"}, CPU_TYPE, 0, P2)])
    batch.nodes = pl.concat([batch.nodes, extra.nodes]).unique("node_id")
    batch.frames = pl.concat([batch.frames, extra.frames]).unique("frame_id")
    seg = decode_segment(encode_segment(batch, tenant="t"))
    assert seg.rows("nodes") == P2.nodes.height
    assert set(seg.frames()["name"].to_list()) == set(P2.frames["name"].to_list())
    assert folded(as_profile(seg, CPU_TYPE)) == folded(P2)


def test_frame_ids_are_derived_unless_they_differ() -> None:
    seg = decode_segment(encoded())
    assert seg.meta["frame_ids"] == "derived"
    assert set(seg.frames()["frame_id"].to_list()) == set(pl.concat([P1.frames, P2.frames, P3.frames])["frame_id"].to_list())
    # Frame ids that are not the model hash of (name, file, line) must survive as stored.
    from fleetprof.model import ValueType
    from fleetprof.model.profile import Stacks, build

    st = Stacks(names=["main", "work", "hash"], files=["", "", ""], offsets=np.array([0, 3, 5]),
                frames=np.array([0, 1, 2, 0, 1]), values=np.array([[7], [3]]))
    odd_ids = np.array([11, 22, 33], dtype=np.uint64)
    odd = build(st, [ValueType("cpu", "nanoseconds")], frame_id_table=odd_ids)
    seg = decode_segment(encode_segment(batch_from_profiles([({"service_name": "s"}, CPU_TYPE, 0, odd)]), tenant="t"))
    assert seg.meta["frame_ids"] == "stored"
    assert sorted(seg.frames()["frame_id"].to_list()) == [11, 22, 33]
    assert seg.nodes().sort("node_id").equals(odd.nodes.sort("node_id"))
    assert folded(as_profile(seg, CPU_TYPE)) == folded(odd)


def test_leaf_ids_match_recomputed_node_ids() -> None:
    seg = decode_segment(encoded())
    nid = seg.node_ids()
    rows = seg.leaf_rows()
    assert np.array_equal(np.where(rows >= 0, nid[np.maximum(rows, 0)], 0).astype(np.uint64), seg.leaf_ids())
    assert set(seg.leaf_ids().tolist()) == set(seg.samples()["node_id"].to_list())


def test_one_parquet_body_with_every_table() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fleetprof.segment.format import TABLES, read_meta

    meta, body = read_meta(encoded())
    md = pq.ParquetFile(pa.BufferReader(pa.py_buffer(body))).metadata
    tables = {md.schema.column(i).name.split(".", 1)[0] for i in range(md.num_columns)}
    assert tables == set(TABLES) - {"spans"}  # no span ids: no span table
    assert md.num_rows == max(meta["rows"].values())


@pytest.mark.parametrize("row_group", [2, 3, 1_000_000])
def test_filters_with_many_row_groups(monkeypatch: pytest.MonkeyPatch, row_group: int) -> None:
    import fleetprof.segment.format as fmt

    monkeypatch.setattr(fmt, "ROW_GROUP", row_group)
    seg = decode_segment(encoded())
    full = seg.samples()
    for filt, expr in [
        ([("profile_type", "=", ALLOC_TYPE)], pl.col("profile_type") == ALLOC_TYPE),
        ([("profile_type", "=", CPU_TYPE), ("time_ms", ">=", 2_000)],
         (pl.col("profile_type") == CPU_TYPE) & (pl.col("time_ms") >= 2_000)),
        ([("time_ms", "<=", 1_500)], pl.col("time_ms") <= 1_500),
        ([("time_ms", ">=", 5_000)], pl.col("time_ms") >= 5_000),
    ]:
        got = seg.samples(filters=filt).sort(list(full.columns))
        assert got.equals(full.filter(expr).sort(list(full.columns))), filt
    assert folded(as_profile(seg, CPU_TYPE)) == folded(merge([P1, P2, P2]))


@pytest.mark.parametrize("version", [2, FORMAT_VERSION])
def test_truncated_table_rows_detected(version: int) -> None:
    import json

    data = bytearray(encoded(version))
    meta_len = struct.unpack_from("<I", data, 8)[0]
    meta = json.loads(bytes(data[12:12 + meta_len]))
    meta["rows"]["samples"] = 10**6  # more rows than the body holds
    meta_b = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    body = bytes(data[12 + meta_len + 32:])
    import hashlib

    h = hashlib.blake2b(digest_size=32)
    h.update(meta_b)
    h.update(body)
    forged = struct.pack("<4sHHI", b"FPSG", version, 0, len(meta_b)) + meta_b + h.digest() + body
    with pytest.raises(SegmentCorrupt):  # v3: the array block sizes disagree; v2: found on read
        decode_segment(forged).samples()


# -- format v3: the array block; v2 objects stay readable -------------------------------


def _tables(seg) -> dict[str, pl.DataFrame]:
    out = {
        "samples": seg.samples(), "nodes": seg.nodes(), "frames": seg.frames(), "labels": seg.labels(),
        "series": seg.series(),
    }
    return {k: v.sort(list(v.columns)) for k, v in out.items()}


def _forge(data: bytes, edit) -> bytes:
    """``data`` with its meta JSON changed by ``edit`` and a digest that matches again."""
    import hashlib
    import json

    version, _flags, meta_len = struct.unpack_from("<HHI", data, 4)
    meta = json.loads(data[12:12 + meta_len])
    edit(meta)
    meta_b = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    body = data[12 + meta_len + 32:]
    h = hashlib.blake2b(digest_size=32)
    h.update(meta_b)
    h.update(body)
    return struct.pack("<4sHHI", b"FPSG", version, 0, len(meta_b)) + meta_b + h.digest() + body


def test_v3_keeps_query_columns_in_the_array_block() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fleetprof.segment.format import BLOCK_DTYPES, read_meta

    data = encoded()
    assert struct.unpack_from("<H", data, 4)[0] == 3  # no span ids: version 3, readable by v3 readers
    meta, body = read_meta(data)
    block = meta["block"]
    assert [c for c, _ in block["columns"]] == list(BLOCK_DTYPES)
    assert dict(block["columns"])["samples.leaf"] == "<u2"
    md = pq.ParquetFile(pa.BufferReader(pa.py_buffer(body[block["bytes"]:]))).metadata
    names = {md.schema.column(i).name for i in range(md.num_columns)}
    assert not names & set(BLOCK_DTYPES)  # stored once, in the block
    seg = decode_segment(data)
    a = seg.sample_arrays(["node_id", "value"])
    assert "_pf" not in seg._cache  # a flame-graph read never opens the Parquet body
    assert a["value"].dtype == np.int64 and a["node_id"].dtype == np.uint64
    assert set(a["node_id"].tolist()) == set(seg.leaf_ids().tolist())


def test_v2_objects_decode_to_the_same_tables() -> None:
    v2, v3 = encoded(2), encoded(3)
    assert struct.unpack_from("<H", v2, 4)[0] == 2
    s2, s3 = decode_segment(v2), decode_segment(v3)
    assert "block" not in s2.meta and "block" in s3.meta
    t2, t3 = _tables(s2), _tables(s3)
    for k in t2:
        assert t2[k].equals(t3[k]), k
    for cols in (["node_id", "value"], ["node_id", "value", "series_id"], ["leaf", "series", "time_ms"]):
        a2, a3 = s2.sample_arrays(cols), s3.sample_arrays(cols)
        for c in cols:
            assert np.array_equal(a2[c], a3[c]) and a2[c].dtype == a3[c].dtype, c
    assert s2.table("samples").equals(s3.table("samples"))
    assert s2.table("leaves").equals(s3.table("leaves"))
    with pytest.raises(ValueError):
        encode_segment(batch_from_profiles(ITEMS), tenant="t1", format_version=FORMAT_VERSION + 1)


def test_wide_leaf_rows_in_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import fleetprof.segment.format as fmt

    monkeypatch.setattr(fmt, "U16_LEAVES", 1)
    seg = decode_segment(encoded())
    assert dict(seg.meta["block"]["columns"])["samples.leaf"] == "<i4"
    assert _tables(seg)["samples"].equals(_tables(decode_segment(encoded(2)))["samples"])


@pytest.mark.parametrize("limit", ["ROW_GROUP", "BLOCK_MAX_ROWS"])
def test_large_segments_keep_every_column_in_parquet(monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    import fleetprof.segment.format as fmt

    monkeypatch.setattr(fmt, limit, 2)  # several row groups (statistics prune reads) or just large
    seg = decode_segment(encoded())
    assert "block" not in seg.meta
    assert _tables(seg)["samples"].equals(_tables(decode_segment(encoded(2)))["samples"])


@pytest.mark.parametrize("edit", [
    lambda m: m["block"].update(codec="lz4"),
    lambda m: m["block"]["columns"].__setitem__(0, ["leaves.node_id", "<i8"]),
    lambda m: m["block"]["columns"].__setitem__(0, ["nodes.parent", "<u8"]),
    lambda m: m["block"]["columns"].append(["samples.value", "<i8"]),
    lambda m: m["block"].update(raw_bytes=m["block"]["raw_bytes"] + 8),
    lambda m: m["block"].update(bytes=10**9),
    lambda m: m["rows"].update(leaves=m["rows"]["leaves"] + 1),
    lambda m: m.update(block=[1, 2]),
    lambda m: m["block"].update(columns={"samples.value": "<i8"}),
    lambda m: m["block"]["columns"].__setitem__(0, 7),
])
def test_bad_array_block_metadata_detected(edit) -> None:
    with pytest.raises(SegmentCorrupt):
        decode_segment(_forge(encoded(), edit)).sample_arrays(["node_id", "value"])


def test_undecodable_array_block_detected() -> None:
    def shrink(m) -> None:
        m["block"]["bytes"] -= 3  # the zstd frame is cut short; the Parquet body starts too early

    with pytest.raises(SegmentCorrupt):
        decode_segment(_forge(encoded(), shrink)).sample_arrays(["node_id", "value"])


def test_block_rows_outside_the_leaf_table_detected() -> None:
    """A well-formed block whose sample leaf rows point past the leaf table (a writer bug,
    not a bit flip: the digest matches) is reported, not wrapped or clipped."""
    import pyarrow as pa

    data = encoded()
    version, _flags, meta_len = struct.unpack_from("<HHI", data, 4)
    blk = __import__("json").loads(data[12:12 + meta_len])["block"]
    body = data[12 + meta_len + 32:]
    raw = bytearray(pa.Codec("zstd").decompress(body[:blk["bytes"]], decompressed_size=blk["raw_bytes"], asbytes=True))
    seg = decode_segment(data)
    off = 8 * seg.rows("leaves")  # samples.leaf (<u2) follows leaves.node_id (<u8)
    struct.pack_into("<H", raw, off, seg.rows("leaves"))
    new_block = pa.Codec("zstd").compress(bytes(raw), asbytes=True)
    tail = body[blk["bytes"]:]

    def swap_block(m) -> None:
        m["block"]["bytes"] = len(new_block)

    forged = _forge(data[:12 + meta_len + 32] + new_block + tail, swap_block)
    for cols in (["node_id", "value"], ["node_id", "value", "series_id"], ["node"]):
        with pytest.raises(SegmentCorrupt):
            decode_segment(forged).sample_arrays(cols)
    first = min(CPU_TYPE, ALLOC_TYPE)  # samples are sorted by type: the forged row is of this one
    for by, ptype, series in (("leaf", first, None), ("leaf", first, np.ones(2, bool)),
                              ("time_ms", CPU_TYPE, np.ones(1, bool))):  # series rows past the mask
        with pytest.raises(SegmentCorrupt):
            decode_segment(forged).sums(by, ptype, 0, 10_000, series)


def test_write_version_from_the_environment(monkeypatch) -> None:
    # FLEETPROF_SEGMENT_FORMAT=2 keeps writing the layout older replicas read (rolling upgrade)
    batch = batch_from_profiles(ITEMS)
    monkeypatch.setenv("FLEETPROF_SEGMENT_FORMAT", "2")
    old = encode_segment(batch, tenant="t1", created_ms=42)
    assert struct.unpack_from("<H", old, 4)[0] == 2
    monkeypatch.delenv("FLEETPROF_SEGMENT_FORMAT")
    assert struct.unpack_from("<H", encode_segment(batch, tenant="t1", created_ms=42), 4)[0] == 3  # span-less
    assert decode_segment(old).samples().height == decode_segment(encoded()).samples().height
    for bad in ("1", "5", "three"):
        monkeypatch.setenv("FLEETPROF_SEGMENT_FORMAT", bad)
        with pytest.raises(ValueError, match="FLEETPROF_SEGMENT_FORMAT"):
            encode_segment(batch, tenant="t1")


def _expected_sums(seg, by: str, ptype: str, lo: int, hi: int, series: np.ndarray | None) -> dict[int, int]:
    a = seg.sample_arrays(["profile_type", "series", "time_ms", "node_id", "value"])
    keep = (a["profile_type"] == ptype) & (a["time_ms"] >= lo) & (a["time_ms"] <= hi)
    if series is not None:
        keep &= series[a["series"]]
    out: dict[int, int] = {}
    for k, v in zip(a["node_id" if by == "leaf" else "time_ms"][keep].tolist(), a["value"][keep].tolist(), strict=True):
        out[k] = out.get(k, 0) + v
    return {k: v for k, v in out.items() if v or by == "time_ms"}


@pytest.mark.parametrize("version", [2, FORMAT_VERSION])
def test_sums_by_leaf_and_by_time_per_type_range_and_series(version: int) -> None:
    seg = decode_segment(encoded(version))
    api = seg.service_rows("api")
    assert api.tolist() == [s == "api" for s in seg.series()["service_name"].to_list()] and 0 < api.sum() < len(api)
    cases = [(CPU_TYPE, 0, 10_000, None), (CPU_TYPE, 0, 10_000, api), (CPU_TYPE, 1_500, 3_000, None),
             (CPU_TYPE, 2_500, 10_000, api), (ALLOC_TYPE, 0, 10_000, None), (CPU_TYPE, 5_000, 9_000, None)]
    for by in ("leaf", "time_ms"):
        for ptype, lo, hi, series in cases:
            keys, sums = seg.sums(by, ptype, lo, hi, series)
            assert sums.dtype == np.int64 and len(keys) == len(sums)
            assert dict(zip(keys.tolist(), sums.tolist(), strict=True)) == _expected_sums(seg, by, ptype, lo, hi, series)
            if by == "time_ms":
                assert keys.tolist() == sorted(keys.tolist())
    with pytest.raises(ValueError):
        seg.sums("series", CPU_TYPE, 0, 10_000)


def test_sums_are_memoised_only_where_the_metadata_proves_the_filters() -> None:
    import fleetprof.segment.format as format_mod

    items = [*ITEMS[:3], *(({"service_name": "api", "pod": f"p{k}"}, CPU_TYPE, 2_000, P2) for k in range(6))]
    seg = decode_segment(encode_segment(batch_from_profiles(items), tenant="t1", level=0, created_ms=1))
    api = seg.service_rows("api")
    whole = seg.sums("leaf", CPU_TYPE, 0, 10_000)
    assert seg.sums("leaf", CPU_TYPE, 1_000, 3_000) is whole  # the range covers the segment
    assert seg.sums("leaf", CPU_TYPE, 0, 10_000, api) is seg.sums("leaf", CPU_TYPE, 0, 10_000, api.copy())
    assert seg.sums("leaf", CPU_TYPE, 0, 2_999) is not seg.sums("leaf", CPU_TYPE, 0, 2_999)  # cut by the range
    for k in range(10):  # a bounded number of series masks is kept
        seg.sums("time_ms", CPU_TYPE, 0, 10_000, np.arange(len(api)) % (k + 2) == 0)
    assert sum(key[2] is not None for key in seg._cache["#sums"]) == format_mod.SUMS_MEMO
    two = decode_segment(encoded())  # of two profile types: memoised per type
    assert two.sums("leaf", CPU_TYPE, 0, 10_000) is two.sums("leaf", CPU_TYPE, 0, 10_000)
    assert two.sums("leaf", ALLOC_TYPE, 0, 10_000) is two.sums("leaf", ALLOC_TYPE, 0, 10_000)
    assert {k[:2] for k in two._cache["#sums"]} == {("leaf", CPU_TYPE), ("leaf", ALLOC_TYPE)}
    assert seg.nbytes() > len(seg.body)

