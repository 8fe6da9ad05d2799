"""The compiled OTLP scan: same spans as the exact path, declines what it does not follow."""

from __future__ import annotations

import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from fleetprof.traces import otlp
from fleetprof.traces.scan import scan

T0 = 1_700_000_000_000_000_000
LIMITS = otlp.SpanLimits(max_spans=100, max_attributes=12, max_events=3, max_links=3)


def _request() -> ExportTraceServiceRequest:
    """Two resources, three scopes, spans with every kind of attribute, events, links,
    status, an unknown field, and one span with impossible times."""
    req = ExportTraceServiceRequest()
    n = 0
    for svc in ("cart", "db"):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = svc
        for scope in ("a", "b") if svc == "cart" else ("c",):
            ss = rs.scope_spans.add()
            ss.scope.name = scope
            for j in range(3):
                n += 1
                sp = ss.spans.add(trace_id=n.to_bytes(16, "big"), span_id=(1000 + n).to_bytes(8, "big"), name=f"op-{n} é",
                                  kind=n % 6, start_time_unix_nano=T0 + n, end_time_unix_nano=T0 + 10 * n)
                if j:
                    sp.parent_span_id = (1000 + n - 1).to_bytes(8, "big")
                sp.attributes.extend([
                    KeyValue(key="s", value=AnyValue(string_value=f"v{n}")), KeyValue(key="empty", value=AnyValue(string_value="")),
                    KeyValue(key="i", value=AnyValue(int_value=-(2**63) if n == 1 else n * 1001)),
                    KeyValue(key="big", value=AnyValue(int_value=2**63 - 1)),
                    KeyValue(key="b", value=AnyValue(bool_value=n % 2 == 0)), KeyValue(key="d", value=AnyValue(double_value=n / 3)),
                    KeyValue(key="k=v", value=AnyValue(string_value="kept")), KeyValue(key="unset"),
                    KeyValue(key="arr", value=AnyValue(array_value={"values": [AnyValue(int_value=1)]})),
                    KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\x01")),
                ])
                sp.events.add(time_unix_nano=T0 + n, name="ev").attributes.add(key="e").value.int_value = 1
                sp.links.add(trace_id=(99).to_bytes(16, "big"), span_id=(7).to_bytes(8, "big"), trace_state="x=y")
                sp.status.code, sp.status.message = n % 3, "bad" if n % 3 == 2 else ""
                sp.trace_state, sp.flags, sp.dropped_attributes_count = "k=v", 257, 2
    req.resource_spans[1].scope_spans[0].spans[0].end_time_unix_nano = T0 - 1  # impossible: rejected
    return req


def _same(a: otlp.SpanChunk, b: otlp.SpanChunk) -> None:
    for col in ("trace_hi", "trace_lo", "span", "parent"):
        assert getattr(a, col).tolist() == getattr(b, col).tolist(), col
    assert a.cols.schema == b.cols.schema
    for col in a.cols.columns:
        left, right = a.cols[col].to_list(), b.cols[col].to_list()
        if col == "extra":  # field order may differ; the messages may not
            left, right = [Span.FromString(x) for x in left], [Span.FromString(x) for x in right]
        assert left == right, col
    assert a.resources == b.resources and a.scopes == b.scopes


def _both(body: bytes) -> tuple[tuple[otlp.SpanChunk, int, str], tuple[otlp.SpanChunk, int, str]]:
    fast = otlp.to_chunk(otlp.parse_protobuf(body, LIMITS), T0, LIMITS, body=body)
    exact = otlp.to_chunk_exact(otlp.parse_protobuf(body, LIMITS), T0, LIMITS)
    return fast, exact


def test_scan_agrees_with_the_exact_path() -> None:
    body = _request().SerializeToString()
    assert scan(body, 100, 12, 3, 3) is not None  # the compiled path is the one taken
    (fast, r1, why1), (exact, r2, why2) = _both(body)
    _same(fast, exact)
    assert (r1, why1) == (r2, why2) and r1 == 1 and "op-7" in why1
    assert len(fast) == 8
    tags = fast.cols["tags"][0].to_list()
    assert tags == ["s=v1", "empty=", f"i={-(2**63)}", f"big={2**63 - 1}", "b=false", f"d={1 / 3!r}"]
    assert fast.cols["tag_types"][0] == "ssiibdxxxx"
    assert fast.cols["service"].to_list() == ["cart"] * 6 + ["db"] * 2
    assert fast.cols["scope"].to_list() == [0, 0, 0, 1, 1, 1, 2, 2]


def _raw_span(fields: bytes) -> bytes:
    """A request of one span whose body is ids + ``fields`` (hand-made wire bytes)."""
    span = (b"\x0a\x10" + bytes(range(1, 17)) + b"\x12\x08" + bytes(range(1, 9)) + b"\x39" + T0.to_bytes(8, "little")
            + b"\x41" + (T0 + 1).to_bytes(8, "little") + fields)
    scope = b"\x12" + bytes([len(span)]) + span
    rs = b"\x12" + bytes([len(scope)]) + scope
    return b"\x0a" + bytes([len(rs)]) + rs


@pytest.mark.parametrize(("fields", "scanned"), [
    (b"\x4a\x0d\x0a\x01k\x12\x03\x0a\x01a\x12\x03\x0a\x01b", False),  # an attribute value given twice (merged: "b")
    (b"\x7a\x02\x18\x02\x7a\x04\x12\x02no", False),  # status given twice (merged)
    (b"\x4a\x08\x0a\x01k\x12\x03\x0a\x01a\x18\x05", True),  # key_strindex beside the key: kept whole
    (b"\x30\x02\x41" + (T0 + 5).to_bytes(8, "little") + b"\x2a\x01n", True),  # end given twice: the last wins
])
def test_unusual_encodings_match_the_exact_path(fields: bytes, scanned: bool) -> None:
    body = _raw_span(fields)
    assert (scan(body, 100, 12, 3, 3) is not None) == scanned
    (fast, r1, _), (exact, r2, _) = _both(body)
    _same(fast, exact)
    assert r1 == r2 == 0 and len(fast) == 1


def test_limits_and_bad_ids_name_their_error() -> None:
    req = _request()
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    for i in range(3):
        sp.attributes.add(key=f"more{i}").value.int_value = i
    with pytest.raises(otlp.OtlpError, match="13 attributes on a span: more than the limit of 12"):
        otlp.to_chunk(otlp.parse_protobuf(req.SerializeToString(), LIMITS), T0, LIMITS)
    req = _request()
    req.resource_spans[0].scope_spans[0].spans[1].events[0].attributes.extend([KeyValue(key=str(i)) for i in range(12)])
    with pytest.raises(otlp.OtlpError, match="attributes on a span event"):
        otlp.to_chunk(req, T0, LIMITS)
    req = _request()
    req.resource_spans[0].scope_spans[0].spans[2].span_id = bytes(8)
    with pytest.raises(otlp.OtlpError, match="span id must be 8 bytes, not all zero"):
        otlp.to_chunk(req, T0, LIMITS)


@pytest.mark.parametrize("field", ["kind", "status"])
def test_enums_outside_int8_are_refused(field: str) -> None:
    """A kind or status code that the int8 columns cannot hold is a 400, on both paths."""
    req = _request()
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    if field == "kind":
        sp.kind = 300
    else:
        sp.status.code = 300
    with pytest.raises(otlp.OtlpError, match="out of range"):
        otlp.to_chunk(req, T0, LIMITS)
    with pytest.raises(otlp.OtlpError, match="out of range"):
        otlp.to_chunk_exact(req, T0, LIMITS)
    req = _request()  # the exact path consumed the request
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    sp.kind, sp.status.code = 300, 300
    sp.end_time_unix_nano = sp.start_time_unix_nano - 1  # a span left out for its times is not checked further
    body = req.SerializeToString()
    (fast, r1, _), (exact, r2, _) = _both(body)
    assert r1 == r2 == 2 and len(fast) == len(exact) == 7


def _mutations() -> list[bytes]:
    """Valid requests with one byte changed or a cut: many still parse and must decode
    the same on both paths (or fail the same way)."""
    base = _request().SerializeToString()
    rng = np.random.default_rng(5)
    out = []
    for _ in range(300):
        b = bytearray(base)
        if rng.random() < 0.8:
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
        else:
            b = b[: int(rng.integers(len(b)))]
        out.append(bytes(b))
    return out


def test_damaged_requests_decode_the_same_on_both_paths() -> None:
    compared = 0
    for body in _mutations():
        try:
            req = otlp.parse_protobuf(body, LIMITS)
        except otlp.OtlpError:
            continue
        try:
            fast = otlp.to_chunk(otlp.parse_protobuf(body, LIMITS), T0, LIMITS, body=body)
        except otlp.OtlpError as e:
            with pytest.raises(otlp.OtlpError) as exact_error:
                otlp.to_chunk_exact(req, T0, LIMITS)
            assert str(exact_error.value) == str(e)
            continue
        exact = otlp.to_chunk_exact(req, T0, LIMITS)
        _same(fast[0], exact[0])
        assert fast[1:] == exact[1:]
        compared += 1
    assert compared > 30


def test_length_and_service_limits_reject_spans_alike_on_both_paths() -> None:
    """Over-long service names, span names, attribute keys and string values, and services
    past the per-request count, reject their spans (not the request), in the documented
    order, the same on the scan and the exact path; a rejected resource is not kept."""
    limits = otlp.SpanLimits(max_service_name_length=20, max_services=2, max_name_length=30, max_key_length=12,
                             max_value_length=40)
    req = ExportTraceServiceRequest()
    n = 0
    for svc, res_attr in (("a" * 21, None), ("cart", None), ("db", KeyValue(key="k" * 13)), ("pay", None), ("cart", None),
                          ("ship", None)):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = svc
        if res_attr is not None:
            rs.resource.attributes.append(res_attr)
        ss = rs.scope_spans.add()
        for name, attrs in (("fine", []), ("é" * 16, []), ("keyed", [KeyValue(key="ké" * 5, value=AnyValue(int_value=1))]),
                            ("valued", [KeyValue(key="a=b", value=AnyValue(string_value="v" * 41))]),
                            ("edge", [KeyValue(key="k" * 12, value=AnyValue(string_value="é" * 20))])):
            n += 1
            sp = ss.spans.add(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name=name,
                              start_time_unix_nano=T0, end_time_unix_nano=T0 + 1)
            sp.attributes.extend(attrs)
    req.resource_spans[1].scope_spans[0].spans[0].end_time_unix_nano = T0 - 1  # impossible times come after the resource
    body = req.SerializeToString()
    scanned = otlp.to_chunk(ExportTraceServiceRequest.FromString(body), T0, limits, body=body)
    exact = otlp.to_chunk_exact(ExportTraceServiceRequest.FromString(body), T0, limits)
    _same(scanned[0], exact[0])
    assert scanned[1:] == exact[1:]
    chunk, rejected, why = scanned
    # kept: "fine" (but the first, of impossible times) and "edge" spans of cart and pay; db's resource has too long
    # a key; ship is a third service
    assert chunk.cols["name"].to_list() == ["edge", "fine", "edge", "fine", "edge"]
    assert chunk.cols["service"].to_list() == ["cart", "pay", "pay", "cart", "cart"]
    assert rejected == 30 - 5 and why == "span 'fine': its service.name of 21 characters is longer than the limit of 20"
    assert len(chunk.resources) == 3 and chunk.cols["resource"].to_list() == [0, 1, 1, 2, 2]
    reasons = []
    for k in range(1, 6):  # the first rejected span's reason, one resource at a time
        one = ExportTraceServiceRequest()
        one.resource_spans.append(req.resource_spans[k])
        reasons.append(otlp.to_chunk(one, T0, otlp.SpanLimits(**{**limits.__dict__, "max_services": 0} if k == 5 else limits.__dict__))[2])
    assert "impossible times" in reasons[0]
    assert reasons[1] == "span 'fine': its resource has an attribute key of 13 bytes, longer than the limit of 12"
    assert reasons[2] == "span '" + "é" * 16 + "': a name of 32 bytes is longer than the limit of 30"
    assert reasons[3] == reasons[2] and reasons[4].startswith("span 'fine': its service 'ship' is past the limit of 0 services")
    pay = ExportTraceServiceRequest()
    pay.resource_spans.append(req.resource_spans[3])
    spans = pay.resource_spans[0].scope_spans[0].spans
    del spans[:2]  # pay's "keyed" span first, then "valued" alone
    assert otlp.to_chunk(pay, T0, limits)[2] == "span 'keyed': an attribute key of 15 bytes is longer than the limit of 12"
    del spans[0]
    assert otlp.to_chunk(pay, T0, limits)[2] == "span 'valued': a string attribute value of 41 bytes is longer than the limit of 40"
