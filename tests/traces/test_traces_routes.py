"""The trace routes in process: OTLP JSON ingest (built from the specification; the Python
SDK has no JSON exporter), gzip, malformed bodies, tenancy, auth, Tempo shapes, search
filters, tags and RED figures on known data."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from traces_support import (
    OTLP_JSON,
    OTLP_PROTO,
    in_process,
    json_request,
    json_span,
    span_hex,
    trace_hex,
)

from fleetprof.server.routes_traces import span_tokens
from fleetprof.traces.otlp import SpanLimits, parse_json

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a fixed hour: search and RED ask for it explicitly
RANGE = {"start": str(T0 // S - 60), "end": str(T0 // S + 3600)}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from in_process(tmp_path, ingest_max_future_s=10**10)


def _post(c: TestClient, doc: dict, tenant: str | None = None, gz: bool = False) -> object:
    body = json.dumps(doc).encode()
    headers = dict(OTLP_JSON)
    if gz:
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    return c.post("/v1/traces", content=body, headers=headers)


def _shop() -> list[dict]:
    """Three traces of known shape: 10 ms ok, 30 ms with a DB error, 200 ms slow search."""
    docs = []
    for i, (dur, status, route) in enumerate([(10, 0, "/cart"), (30, 2, "/pay"), (200, 0, "/search")]):
        t, start = trace_hex(i), T0 + i * 60 * S
        root = json_span(t, span_hex(10 * i + 1), f"GET {route}", start, dur * 10**6, kind=2, status=status,
                         attrs={"http.route": route, "http.status_code": 500 if status else 200})
        db = json_span(t, span_hex(10 * i + 2), "SELECT", start + 10**6, dur * 10**6 // 2, parent=span_hex(10 * i + 1),
                       kind=3, status=status, attrs={"db.system": "postgres"})
        docs.append(json_request("shop", [root], region="eu"))
        docs.append(json_request("db", [db], region="us"))
    return docs


def test_json_and_gzip_ingest_then_tempo_and_otlp_lookup(client: TestClient) -> None:
    for k, doc in enumerate(_shop()):
        r = _post(client, doc, gz=k % 2 == 1)
        assert r.status_code == 200 and r.json() == {}, r.text
    r = client.get(f"/api/traces/{trace_hex(1)}")
    assert r.status_code == 200
    batches = r.json()["batches"]
    spans = [sp for b in batches for ss in b["scopeSpans"] for sp in ss["spans"]]
    assert sorted(sp["name"] for sp in spans) == ["GET /pay", "SELECT"]
    assert {sp["kind"] for sp in spans} == {"SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"}  # Tempo renders enum names
    otlp_doc = client.get(f"/api/traces/{trace_hex(1)}", params={"format": "otlp"}).json()
    got = parse_json(json.dumps(otlp_doc).encode(), SpanLimits())
    sent = parse_json(json.dumps(_shop()[2]).encode(), SpanLimits())
    assert got.resource_spans[0] == sent.resource_spans[0]  # the root, exactly as sent
    v2 = client.get(f"/api/v2/traces/{trace_hex(1)}").json()
    assert len(v2["trace"]["resourceSpans"]) == 2
    proto = client.get(f"/api/traces/{trace_hex(1)}", headers={"accept": "application/x-protobuf"})
    assert proto.headers["content-type"] == "application/x-protobuf" and len(proto.content) > 50
    assert client.get(f"/api/traces/{trace_hex(77)}").status_code == 404
    assert client.get("/api/traces/not-hex").json()["code"] == "invalid_argument"
    bounded = client.get(f"/api/traces/{trace_hex(1)}", params={"start": str(T0 // S + 7200), "end": str(T0 // S + 9000)})
    assert bounded.status_code == 404


def test_search_filters_tags_and_values(client: TestClient) -> None:
    for doc in _shop():
        assert _post(client, doc).status_code == 200

    def ids(**params: str) -> list[str]:
        r = client.get("/api/search", params={**RANGE, **params})
        assert r.status_code == 200, r.text
        return [t["traceID"] for t in r.json()["traces"]]

    assert ids() == [trace_hex(2), trace_hex(1), trace_hex(0)]  # most recent first
    assert ids(status="error") == [trace_hex(1)]
    assert ids(minDuration="100ms") == [trace_hex(2)]
    assert ids(maxDuration="20ms", service="shop") == [trace_hex(0)]
    assert ids(tags="http.route=/pay") == [trace_hex(1)]
    assert ids(tags='db.system=postgres region="us"') == [trace_hex(2), trace_hex(1), trace_hex(0)]
    assert ids(tags="db.system=postgres region=eu") == []  # both on one span (its own or its resource's)
    assert ids(name="SELECT", minDuration="50ms") == [trace_hex(2)]
    assert ids(limit="1") == [trace_hex(2)]
    first = client.get("/api/search", params={**RANGE, "tags": "http.route=/pay"}).json()["traces"][0]
    assert first["rootServiceName"] == "shop" and first["rootTraceName"] == "GET /pay" and first["durationMs"] == 30
    assert first["startTimeUnixNano"] == str(T0 + 60 * S)
    assert first["spanSet"]["matched"] == 1 and first["spanSet"]["spans"][0]["spanID"] == span_hex(11)
    names = client.get("/api/search/tags", params=RANGE).json()["tagNames"]
    assert {"http.route", "db.system", "region", "service.name"} <= set(names)
    assert client.get("/api/search/tag/region/values", params=RANGE).json() == {"tagValues": ["eu", "us"]}
    assert client.get("/api/search/tag/status/values", params=RANGE).json() == {"tagValues": ["error", "unset"]}
    assert ids(maxDuration="99999999999999999999h") == ids()  # past int64: clamped
    for bad in ({"minDuration": "fast"}, {"tags": "novalue"}, {"limit": "0"}, {"start": "x"}, {"status": "bad"},
                {"start": "100", "end": "50"}, {"q": "{ }"}, {"minDuration": "9" * 400 + "s"}, {"maxDuration": "1" * 400 + "h"}):
        r = client.get("/api/search", params=bad)
        assert r.status_code == 400 and r.json()["code"] == "invalid_argument", bad


def test_search_summary_combines_the_segments_of_a_trace(client: TestClient) -> None:
    """Root and child exported in separate requests (separate segments): a search that
    matches only the child (and prunes segments by its service) still names the root and
    spans the whole trace."""
    root_first, child_first = _shop()[2], _shop()[3]  # trace 1: GET /pay (shop, 30 ms), SELECT (db)
    for doc in (child_first, root_first):
        assert _post(client, doc).status_code == 200
    for params in ({"service": "db"}, {"tags": "service.name=db"}, {"name": "SELECT"}, {"tags": "db.system=postgres"}):
        [hit] = client.get("/api/search", params={**RANGE, **params}).json()["traces"]
        assert (hit["rootServiceName"], hit["rootTraceName"], hit["durationMs"]) == ("shop", "GET /pay", 30), params
        assert hit["startTimeUnixNano"] == str(T0 + 60 * S) and hit["spanSet"]["spans"][0]["name"] == "SELECT"


def test_red_buckets_are_aligned_to_the_step(client: TestClient) -> None:
    spans = [json_span(trace_hex(3000 + i), span_hex(1), "GET /x", T0 + i * S, 10**6, kind=2) for i in range(60)]
    assert _post(client, json_request("api", spans)).status_code == 200
    t0_ms = T0 // 10**6  # a multiple of 20 s

    def red(frm_s: int, until_s: int) -> dict:
        r = client.get("/api/v1/traces/red", params={"from": str(t0_ms + frm_s * 1000), "until": str(t0_ms + until_s * 1000), "step": "20s"})
        assert r.status_code == 200, r.text
        return r.json()

    a, b = red(7, 60), red(13, 55)  # two requests seconds apart: the same buckets
    assert a == b and (a["from"], a["until"]) == (t0_ms, t0_ms + 60_000)
    [api] = a["series"]
    assert [(p["t"], p["count"], p["rate"]) for p in api["points"]] == [(t0_ms, 20, 1.0), (t0_ms + 20_000, 20, 1.0), (t0_ms + 40_000, 20, 1.0)]
    [one] = red(21, 21)["series"]  # an empty range inside a bucket: that bucket
    assert [(p["t"], p["count"]) for p in one["points"]] == [(t0_ms + 20_000, 20)]
    from fleetprof.server.queries import MAX_QUERY_TIME_MS

    widest = client.get("/api/v1/traces/red", params={"from": "0", "until": str(MAX_QUERY_TIME_MS), "step": "365d"})
    assert widest.status_code == 200 and widest.json()["series"][0]["points"][0]["count"] == 60, widest.text
    for step in ("9" * 400, "0.5", "soon"):
        assert client.get("/api/v1/traces/red", params={"step": step}).status_code == 400


def test_red_figures_on_known_data(client: TestClient) -> None:
    docs = []
    for i in range(100):  # 100 SERVER spans over 100 s: durations 1..100 ms, every 10th an error
        t = trace_hex(1000 + i)
        root = json_span(t, span_hex(1), "GET /x", T0 + i * S, (i + 1) * 10**6, kind=2, status=2 if i % 10 == 0 else 1)
        inner = json_span(t, span_hex(2), "inner", T0 + i * S, 10**6, parent=span_hex(1), kind=1)  # not an entry span
        docs.append(json_request("api", [root, inner]))
    docs.append(json_request("worker", [json_span(trace_hex(5000), span_hex(1), "job", T0, 5 * 10**6, kind=5)]))
    for doc in docs:
        assert _post(client, doc).status_code == 200
    frm, until = T0 // 10**6, T0 // 10**6 + 100_000
    r = client.get("/api/v1/traces/red", params={"from": str(frm), "until": str(until), "step": "50s"})
    assert r.status_code == 200, r.text
    series = {s["service"]: s["points"] for s in r.json()["series"]}
    api = series["api"]
    assert [p["t"] for p in api] == [frm, frm + 50_000]
    assert [p["count"] for p in api] == [50, 50] and [p["errors"] for p in api] == [5, 5]
    assert api[0]["rate"] == pytest.approx(1.0) and api[0]["errorRate"] == pytest.approx(0.1)
    assert api[0]["p50Ms"] == pytest.approx(25.5) and api[0]["p90Ms"] == pytest.approx(45.1)
    assert api[1]["p99Ms"] == pytest.approx(99.51)
    assert series["worker"] == [{"t": frm, "count": 1, "rate": 0.02, "errors": 0, "errorRate": 0.0,
                                 "p50Ms": 5.0, "p90Ms": 5.0, "p99Ms": 5.0}]
    only = client.get("/api/v1/traces/red", params={"from": str(frm), "until": str(until), "step": "100s", "service": "worker"}).json()
    assert [s["service"] for s in only["series"]] == ["worker"]


def test_malformed_requests_are_400_and_store_nothing(client: TestClient, tmp_path: Path) -> None:
    good = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10)])
    bad_hex = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10), json_span("xyz", span_hex(2), "bad", T0, 10)])
    short = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10), json_span(trace_hex(1), "abcd", "bad", T0, 10)])
    cases = [
        (b"\xff\x00garbage", OTLP_PROTO), (b"{not json", OTLP_JSON), (json.dumps(bad_hex).encode(), OTLP_JSON),
        (json.dumps(short).encode(), OTLP_JSON), (gzip.compress(b"{}")[:-6], {**OTLP_JSON, "content-encoding": "gzip"}),
        (json.dumps(good).encode(), {"content-type": "text/plain"}),
        (json.dumps(good).encode(), {**OTLP_JSON, "content-encoding": "br"}),
    ]
    for body, headers in cases:
        r = client.post("/v1/traces", content=body, headers=headers)
        assert r.status_code in (400, 415), (headers, r.status_code, r.text)
        if headers is OTLP_PROTO:  # OTLP/HTTP: a protobuf request gets a protobuf google.rpc.Status
            assert r.headers["content-type"] == "application/x-protobuf"
            st = Status.FromString(r.content)
            assert st.code == 3 and st.message.startswith("invalid OTLP protobuf")
        else:
            assert set(r.json()) == {"code", "message"}
    typed = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10, status=2)])
    typed["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["status"] = "error"
    r = _post(client, typed)  # a known field of the wrong JSON type: named, not dropped
    assert r.status_code == 400 and "spans[0].status must be an object" in r.json()["message"], r.text
    huge = json_request("svc", [json_span(trace_hex(1), span_hex(i + 1), "s", T0, 10) for i in range(51)])
    r = _post_with_limit(tmp_path, huge)
    assert r.status_code == 400 and "more than 50 spans" in r.json()["message"]
    assert client.get("/api/search", params=RANGE).json()["traces"] == []
    assert not list((tmp_path / "data").rglob("*.fps"))


def _post_with_limit(tmp_path: Path, doc: dict) -> object:
    for c in in_process(tmp_path / "limited", max_spans_per_request=50):
        return _post(c, doc)
    raise AssertionError("unreachable")


def test_partial_success_reports_rejected_spans_in_protobuf(client: TestClient) -> None:
    doc = json_request("svc", [json_span(trace_hex(1), span_hex(1), "ok", T0, 10), json_span(trace_hex(1), span_hex(2), "neg", T0, -10)])
    proto = parse_json(json.dumps(doc).encode(), SpanLimits()).SerializeToString()
    r = client.post("/v1/traces", content=proto, headers=OTLP_PROTO)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1
    doc2 = json_request("svc", [json_span(trace_hex(2), span_hex(2), "neg", T0, -10)])
    partial = _post(client, doc2).json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "impossible times" in partial["errorMessage"]
    assert [t["traceID"] for t in client.get("/api/search", params=RANGE).json()["traces"]] == [trace_hex(1)]


def test_span_ingest_is_charged_per_span(tmp_path: Path) -> None:
    """One rate-limit token per ``ingest_spans_per_token`` (100) spans, as profile ingest
    pays one per profile: a 1,000-span request spends a 10-token burst."""
    assert [span_tokens(n, 100) for n in (0, 1, 100, 101, 1000)] == [1, 1, 1, 2, 10]
    one = json_request("svc", [json_span(trace_hex(2), span_hex(1), "s", T0, 10)])
    for c in in_process(tmp_path, ingest_rate=0.001, ingest_burst=10):
        assert _post(c, one).status_code == 200 and _post(c, one).status_code == 200  # 1 token each
        big = json_request("svc", [json_span(trace_hex(1), span_hex(i + 1), "s", T0, 10) for i in range(1000)])
        assert _post(c, big).status_code == 200  # admitted with 8 tokens left, charged 10
        r = _post(c, one)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
        assert _post(c, one, tenant="other").status_code == 200


def test_tenants_are_isolated(client: TestClient) -> None:
    assert _post(client, json_request("a-svc", [json_span(trace_hex(1), span_hex(1), "a", T0, 10)]), tenant="alpha").status_code == 200
    assert _post(client, json_request("b-svc", [json_span(trace_hex(2), span_hex(1), "b", T0, 10)]), tenant="beta").status_code == 200
    assert client.get(f"/api/traces/{trace_hex(1)}", headers={"X-Scope-OrgID": "alpha"}).status_code == 200
    assert client.get(f"/api/traces/{trace_hex(1)}", headers={"X-Scope-OrgID": "beta"}).status_code == 404
    assert client.get(f"/api/traces/{trace_hex(1)}").status_code == 404  # the default tenant
    found = client.get("/api/search", params=RANGE, headers={"X-Scope-OrgID": "beta"}).json()["traces"]
    assert [t["traceID"] for t in found] == [trace_hex(2)]
    assert "a-svc" not in client.get("/api/search/tag/service.name/values", params=RANGE, headers={"X-Scope-OrgID": "beta"}).text


def test_auth_tokens_pick_the_tenant(tmp_path: Path) -> None:
    table = json.dumps({"tokens": {"w-token": {"tenant": "acme", "scopes": ["write"]}, "r-token": {"tenant": "acme", "scopes": ["read"]}}})
    for c in in_process(tmp_path, auth_tokens=table):
        doc = json.dumps(json_request("svc", [json_span(trace_hex(3), span_hex(1), "s", T0, 10)])).encode()
        assert c.post("/v1/traces", content=doc, headers=OTLP_JSON).status_code == 401
        assert c.post("/v1/traces", content=doc, headers={**OTLP_JSON, "authorization": "Bearer r-token"}).status_code == 403
        assert c.post("/v1/traces", content=doc, headers={**OTLP_JSON, "authorization": "Bearer w-token"}).status_code == 200
        assert c.get(f"/api/traces/{trace_hex(3)}").status_code == 401
        assert c.get(f"/api/traces/{trace_hex(3)}", headers={"authorization": "Bearer r-token"}).status_code == 200
        proto = ExportTraceServiceRequest()
        proto.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s",
                                                               start_time_unix_nano=T0, end_time_unix_nano=T0 + 1)
        r = c.post("/v1/traces", content=proto.SerializeToString(), headers={**OTLP_PROTO, "authorization": "Bearer r-token"})
        assert r.status_code == 403 and r.headers["content-type"] == "application/x-protobuf"
        assert Status.FromString(r.content).code == 7  # PERMISSION_DENIED
        r = c.post("/v1/traces", content=proto.SerializeToString(), headers=OTLP_PROTO)
        assert r.status_code == 401 and Status.FromString(r.content).code == 16  # UNAUTHENTICATED
