"""Span ids in the segment format: version 4 round trip, compaction, older layouts."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fleetprof.distributor.common import split_items
from fleetprof.model.profile import Stacks, ValueType, build
from fleetprof.model.spans import parse_span_id
from fleetprof.segment.format import (
    batch_from_profiles,
    concat_batches,
    decode_segment,
    encode_segment,
)
from fleetprof.segment.writer import encode_items

CPU = ValueType("cpu", "nanoseconds")
TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
A, B = "9a517183f26a089d", "5a4fe264a9c987fe"


def _profile(spans: list[str | None]):
    """Stacks main;f{i} with value 10*(i+1), stack i tagged with span spans[i]."""
    sets = [(("span_id", s), ("span_name", f"n{s}"), ("trace_id", "t" + s)) if s else () for s in spans]
    st = Stacks(names=["main"] + [f"f{i}" for i in range(len(spans))], files=[""] * (len(spans) + 1),
                offsets=np.arange(0, 2 * len(spans) + 1, 2), frames=np.array([x for i in range(len(spans)) for x in (0, i + 1)]),
                values=np.array([[10 * (i + 1)] for i in range(len(spans))]), label_index=np.arange(len(spans)), label_sets=sets)
    return build(st, [CPU])


def _version(data: bytes) -> int:
    return struct.unpack_from("<H", data, 4)[0]


def test_span_ids_round_trip_and_survive_compaction() -> None:
    batch = batch_from_profiles([({"service_name": "s"}, TYPE, 1000, _profile([A, B, None]))])
    data = encode_segment(batch, tenant="t")
    assert _version(data) == 4
    seg = decode_segment(data)
    got = seg.sample_arrays(["value", "span_id"])
    by_span = dict(zip(got["span_id"].tolist(), got["value"].tolist(), strict=True))
    assert by_span == {parse_span_id(A): 10, parse_span_id(B): 20, 0: 30}
    assert dict(zip(seg.spans()["span_id"].to_list(), seg.spans()["span_name"].to_list(), strict=True)) == {
        parse_span_id(A): "n" + A, parse_span_id(B): "n" + B}
    assert seg.labels()["key"].to_list() == ["service_name"]  # spans are not series labels
    other = decode_segment(encode_segment(batch_from_profiles([({"service_name": "s"}, TYPE, 2000, _profile([A]))]), tenant="t"))
    merged = decode_segment(encode_segment(concat_batches([seg, other], step_ms=10_000), tenant="t"))
    m = merged.sample_arrays(["value", "span_id"])
    assert int(m["value"][m["span_id"] == parse_span_id(A)].sum()) == 20
    assert set(merged.spans()["trace_id"].to_list()) == {"t" + A, "t" + B}


def test_segments_without_span_ids_keep_the_version_3_layout_and_read_zero_spans() -> None:
    data = encode_segment(batch_from_profiles([({"service_name": "s"}, TYPE, 1000, _profile([None, None]))]), tenant="t")
    assert _version(data) == 3
    seg = decode_segment(data)
    assert not seg.has_spans and seg.spans().height == 0
    got = seg.sample_arrays(["node_id", "span_id"])
    assert got["span_id"].dtype == np.uint64 and not got["span_id"].any() and len(got["span_id"]) == 2
    assert seg.samples().columns == ["series_id", "profile_type", "time_ms", "node_id", "value"]


@pytest.mark.parametrize("version", ["2", "3"])
def test_older_write_versions_leave_span_ids_out(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setenv("FLEETPROF_SEGMENT_FORMAT", version)
    data = encode_segment(batch_from_profiles([({"service_name": "s"}, TYPE, 1000, _profile([A]))]), tenant="t")
    assert _version(data) == int(version)
    seg = decode_segment(data)
    assert not seg.has_spans and int(seg.sample_arrays(["value"])["value"].sum()) == 10


def test_span_labels_of_a_series_move_onto_its_samples() -> None:
    labels = {"service_name": "legacy", "env": "p", "span_id": A, "span_name": "GET /", "trace_id": "ab" * 16}
    items = split_items(labels, _profile([None, None]), name="process_cpu", time_ms=5)
    assert items[0].labels == {"service_name": "legacy", "env": "p"}
    data, entry = encode_items("t", items)
    assert entry.series == ({"service_name": "legacy", "env": "p"},)
    seg = decode_segment(data)
    assert set(seg.sample_arrays(["span_id"])["span_id"].tolist()) == {parse_span_id(A)}
    assert seg.spans()["span_name"].to_list() == ["GET /"]
    bad = split_items({"service_name": "x", "span_id": "not-hex"}, _profile([None]), name="process_cpu", time_ms=5)
    assert bad[0].labels == {"service_name": "x"} and not decode_segment(encode_items("t", bad)[0]).has_spans
