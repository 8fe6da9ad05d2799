"""OTLP decoding limits and checks, and the lossless round trip of stored spans."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from traces_support import json_request, json_span, kv, span_hex, trace_hex

from fleetprof.traces import otlp
from fleetprof.traces.format import decode, encode, table_from_chunks

LIMITS = otlp.SpanLimits(max_spans=10, max_attributes=5, max_events=3, max_links=3)
T0 = 1_700_000_000_000_000_000


def _body(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def _rich_request() -> dict:
    link = {"traceId": trace_hex(9), "spanId": span_hex(9), "attributes": [kv("why", "retry")]}
    root = json_span(trace_hex(1), span_hex(1), "GET /cart", T0, 5_000_000, kind=2,
                     attrs={"http.method": "GET", "http.status_code": 200, "ratio": 0.25, "cached": False,
                            "tags": ["a", "b"], "weird=key": "x", "bytes": "ignored"},
                     events=[{"timeUnixNano": str(T0 + 10), "name": "ready", "attributes": [kv("n", 3)]}],
                     links=[link], traceState="k=v", flags=257, droppedAttributesCount=2)
    root["attributes"].append({"key": "raw", "value": {"bytesValue": "AAE="}})
    child = json_span(trace_hex(1), span_hex(2), "SELECT", T0 + 1000, 2_000_000, parent=span_hex(1), kind=3, status=2)
    return json_request("cart", [root, child], **{"deployment.environment": "prod"})


def test_json_round_trips_through_a_segment_losslessly() -> None:
    """Every field sent (typed attributes in order, events, links, status, kind, flags,
    trace state, dropped counts, resource, scope) comes back from a decoded segment."""
    doc = _rich_request()
    wanted = otlp.parse_json(_body(json.loads(json.dumps(doc))), otlp.SpanLimits())
    chunk, rejected, _ = otlp.to_chunk(otlp.parse_json(_body(doc), otlp.SpanLimits()), T0, otlp.SpanLimits())
    assert rejected == 0 and len(chunk) == 2
    data, meta = encode(table_from_chunks([chunk]), tenant="t", level=0, created_ms=1)
    seg = decode(data)
    rows = []
    for r in range(seg.rows):
        rec = seg.rows_of(np.asarray([r])).row(0, named=True)
        rec.update(trace_id=int(seg.trace_hi[r]).to_bytes(8, "big") + int(seg.trace_lo[r]).to_bytes(8, "big"),
                   span_id=int(seg.span[r]).to_bytes(8, "big"),
                   parent_span_id=int(seg.parent[r]).to_bytes(8, "big") if seg.parent[r] else b"",
                   resource=seg.resources[rec["resource"]], scope=seg.scopes[rec["scope"]])
        rows.append(rec)
    got = otlp.spans_to_request(sorted(rows, key=lambda r: r["start_ns"]))
    assert got == wanted
    assert meta["services"] == ["cart"]
    out = otlp.otlp_json(got)
    span = out["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == trace_hex(1) and span["spanId"] == span_hex(1) and span["kind"] == 2
    assert span["links"][0]["traceId"] == trace_hex(9)
    assert span["startTimeUnixNano"] == str(T0)
    assert [a["key"] for a in span["attributes"]] == ["http.method", "http.status_code", "ratio", "cached", "tags", "weird=key", "bytes", "raw"]
    assert chunk.cols["tags"][0].to_list() == ["http.method=GET", "http.status_code=200", "ratio=0.25", "cached=false", "bytes=ignored"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda sp: sp.update(traceId="zz" * 16), "not hex"),
    (lambda sp: sp.update(traceId="ab" * 15), "trace id must be 16 bytes"),
    (lambda sp: sp.update(traceId="00" * 16), "not all zero"),
    (lambda sp: sp.update(spanId="ab" * 9), "span id must be 8 bytes"),
    (lambda sp: sp.update(parentSpanId="ab" * 3), "parent span id"),
    (lambda sp: sp.update(links=[{"traceId": "ab", "spanId": span_hex(1)}]), "link"),
    (lambda sp: sp.update(name=5), "invalid OTLP JSON"),
    (lambda sp: sp.update(startTimeUnixNano="soon"), "invalid OTLP JSON"),
    (lambda sp: sp.update(attributes=[kv(f"a{i}", i) for i in range(6)]), "attributes on a span"),
    (lambda sp: sp.update(events=[{"name": "e"}] * 4), "events on a span"),
    (lambda sp: sp.update(attributes="nope"), "must be a list"),
])
def test_malformed_json_is_refused_whole(mutate, message: str) -> None:
    doc = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10), json_span(trace_hex(1), span_hex(2), "bad", T0, 10)])
    mutate(doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1])
    with pytest.raises(otlp.OtlpError, match=message):
        otlp.to_chunk(otlp.parse_json(_body(doc), LIMITS), T0, LIMITS)


_RS = "resourceSpans[0]"
_SP = "resourceSpans[0].scopeSpans[0].spans[1]"


@pytest.mark.parametrize(("mutate", "named"), [
    (lambda rs, sp: rs.update(resource="x"), f"{_RS}.resource must be an object"),
    (lambda rs, sp: rs["scopeSpans"][0].update(scope="x"), f"{_RS}.scopeSpans[0].scope must be an object"),
    (lambda rs, sp: sp.update(status="x"), f"{_SP}.status must be an object"),
    (lambda rs, sp: sp.update(attributes=["a"]), f"{_SP}.attributes[0] must be an object"),
    (lambda rs, sp: sp.update(attributes=[{"key": "k", "value": "v"}]), f"{_SP}.attributes[0].value must be an object"),
    (lambda rs, sp: sp.update(kind="SPAN_KIND_BOGUS"), f"{_SP}.kind 'SPAN_KIND_BOGUS' is not a known enum value"),
    (lambda rs, sp: sp.update(kind=[2]), f"{_SP}.kind"),
    (lambda rs, sp: sp.update(status={"code": "NOPE"}), f"{_SP}.status.code 'NOPE'"),
    (lambda rs, sp: sp.update(events={"name": "e"}), "events must be a list"),
    (lambda rs, sp: sp.update(events=[{"name": "e", "attributes": [{"key": "k", "value": {"kvlistValue": {"values": [3]}}}]}]),
     f"{_SP}.events[0].attributes[0].value.kvlistValue.values[0] must be an object"),
])
def test_known_fields_of_the_wrong_json_type_are_refused(mutate, named: str) -> None:
    doc = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10), json_span(trace_hex(1), span_hex(2), "bad", T0, 10)])
    rs = doc["resourceSpans"][0]
    mutate(rs, rs["scopeSpans"][0]["spans"][1])
    with pytest.raises(otlp.OtlpError, match=re.escape(named)):
        otlp.parse_json(_body(doc), otlp.SpanLimits())


def test_unknown_json_fields_are_ignored_and_enum_names_accepted() -> None:
    plain = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10, kind=2, status=2, attrs={"k": "v"})])
    extended = json.loads(json.dumps(plain))
    rs = extended["resourceSpans"][0]
    sp = rs["scopeSpans"][0]["spans"][0]
    rs["futureField"], rs["resource"]["later"], sp["newThing"] = "x", [1, {"a": None}], {"nested": ["y"]}
    sp["kind"], sp["status"]["code"], sp["status"]["extra"] = "SPAN_KIND_SERVER", "STATUS_CODE_ERROR", 5
    sp["attributes"][0]["value"]["someNewValue"] = None
    sp["links"] = None  # null: the default
    assert otlp.parse_json(_body(extended), otlp.SpanLimits()) == otlp.parse_json(_body(plain), otlp.SpanLimits())


def test_span_count_limit_is_checked_before_conversion() -> None:
    spans = [json_span(trace_hex(1), span_hex(i + 1), "s", T0, 10) for i in range(11)]
    with pytest.raises(otlp.OtlpError, match="more than 10 spans"):
        otlp.parse_json(_body(json_request("svc", spans)), LIMITS)
    req = otlp.parse_json(_body(json_request("svc", spans[:10])), LIMITS)
    req.resource_spans[0].scope_spans[0].spans.add().CopyFrom(req.resource_spans[0].scope_spans[0].spans[0])
    with pytest.raises(otlp.OtlpError, match="more than 10 spans"):
        otlp.parse_protobuf(req.SerializeToString(), LIMITS)


def test_bad_protobuf_and_bad_json_are_otlp_errors() -> None:
    for body in (b"\xff\xff\xff", b"\x0a\x05\x0a\x03\xff"):
        with pytest.raises(otlp.OtlpError):
            otlp.parse_protobuf(body, LIMITS)
    for body in (b"{", b"[]", b'{"resourceSpans": 3}', b"\xff"):
        with pytest.raises(otlp.OtlpError):
            otlp.parse_json(body, LIMITS)


def test_impossible_times_are_rejected_partially() -> None:
    spans = [json_span(trace_hex(1), span_hex(1), "fine", T0, 10),
             json_span(trace_hex(1), span_hex(2), "backwards", T0, -5),
             json_span(trace_hex(1), span_hex(3), "future", T0 + 10**18, 10)]
    chunk, rejected, why = otlp.to_chunk(otlp.parse_json(_body(json_request("svc", spans)), LIMITS), T0, LIMITS)
    assert chunk.cols["name"].to_list() == ["fine"] and rejected == 2 and "impossible times" in why
    resp = otlp.response(rejected, why)
    assert resp.partial_success.rejected_spans == 2
    assert otlp.response_json(otlp.response(0, "")) == {}


def test_protobuf_and_json_decode_to_the_same_request() -> None:
    doc = _rich_request()
    from_json = otlp.parse_json(_body(doc), otlp.SpanLimits())
    from_proto = otlp.parse_protobuf(from_json.SerializeToString(), otlp.SpanLimits())
    assert isinstance(from_proto, ExportTraceServiceRequest) and from_proto == from_json
    assert from_json.resource_spans[0].scope_spans[0].spans[0].trace_id == bytes.fromhex(trace_hex(1))


def test_trace_and_span_id_parsing() -> None:
    assert otlp.parse_trace_id("abc") == bytes(14) + b"\x0a\xbc"
    assert otlp.parse_span_id(5) == bytes(7) + b"\x05"
    assert otlp.parse_span_id("ff") == bytes(7) + b"\xff"
    for bad in ("", "x" * 32, "1" * 33, "0"):
        with pytest.raises(otlp.OtlpError):
            otlp.parse_trace_id(bad)
