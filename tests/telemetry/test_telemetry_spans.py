"""fleetprof's own spans in-process (real OpenTelemetry SDK, InMemorySpanExporter): which
spans the server, the segment writer and the query layer emit and how they nest."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fleetprof import telemetry
from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import CPU_TYPE, PUSH, PUSH_HEADERS, pprof_bytes, push_body  # noqa: E402

QUERY = CPU_TYPE + '{service_name="svc"}'
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    telemetry.configure(service_name="fleetprof-test", exporter=exp, batch=False)
    yield exp
    telemetry.shutdown()


@pytest.fixture
def client(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[TestClient]:
    (tmp_path / "data").mkdir()
    settings = Settings.load(env={}, storage=(tmp_path / "data").as_uri(), index=f"sqlite://{tmp_path / 'index.db'}", flush_max_age_s=0.05)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _one(spans: list, name: str):
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def _children(spans: list, parent) -> list[str]:
    return sorted(s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id)


def _push(c: TestClient, headers: dict[str, str] | None = None) -> None:
    body = push_body("svc", pprof_bytes([["main", "work"]], [30_000_000]))
    assert c.post(PUSH, content=body, headers={**PUSH_HEADERS, **(headers or {})}).status_code == 200


def test_ingest_request_span_and_linked_flush(client: TestClient, exporter: InMemorySpanExporter) -> None:
    _push(client, {"X-Scope-OrgID": "acme"})
    spans = exporter.get_finished_spans()
    req = _one(spans, "POST /push.v1.PusherService/Push")
    assert req.kind == SpanKind.SERVER and req.parent is None
    a = req.attributes
    assert (a["fleetprof.route"], a["fleetprof.tenant"], a["fleetprof.items"], a["http.response.status_code"]) == ("push", "acme", 1, 200)
    assert a["http.request.body.size"] > 0 and a["http.route"] == "/push.v1.PusherService/Push"
    assert req.resource.attributes["service.name"] == "fleetprof-test"
    flush = _one(spans, "segment.flush")  # the ack came after the flush ended
    assert flush.parent is None and [lk.context.span_id for lk in flush.links] == [req.context.span_id]
    assert flush.attributes["fleetprof.tenant"] == "acme" and flush.attributes["fleetprof.items"] == 1
    assert flush.attributes["fleetprof.segment.bytes"] > 0
    assert _children(spans, flush) == ["index.add", "segment.encode", "store.put"]
    put = _one(spans, "store.put")
    assert put.attributes["fleetprof.bytes"] == flush.attributes["fleetprof.segment.bytes"]
    assert all(s.status.status_code == StatusCode.UNSET for s in spans)


def test_query_spans_nest_under_the_request(client: TestClient, exporter: InMemorySpanExporter) -> None:
    _push(client)
    exporter.clear()
    r = client.get("/pyroscope/render", params={"query": QUERY, "from": "now-1h"})
    assert r.status_code == 200
    spans = exporter.get_finished_spans()
    req = _one(spans, "GET /pyroscope/render")
    assert _children(spans, req) == ["query.select_merge", "query.select_timeline", "render.flamebearer"]
    merge = _one(spans, "query.select_merge")
    assert merge.attributes["fleetprof.query.segments"] == 1
    assert merge.attributes["fleetprof.profile_type"] == CPU_TYPE
    assert {s.context.trace_id for s in spans} == {req.context.trace_id}


def test_client_trace_context_is_continued(client: TestClient, exporter: InMemorySpanExporter) -> None:
    r = client.get("/pyroscope/render", params={"query": QUERY, "from": "now-1h"},
                   headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert r.status_code == 200
    req = _one(exporter.get_finished_spans(), "GET /pyroscope/render")
    assert format(req.context.trace_id, "032x") == TRACE_ID
    assert req.parent is not None and format(req.parent.span_id, "016x") == PARENT_ID and req.parent.is_remote


def test_client_errors_are_not_span_errors(client: TestClient, exporter: InMemorySpanExporter) -> None:
    r = client.get("/pyroscope/render", params={"query": "not a query{", "from": "now-1h"})
    assert r.status_code == 400
    req = _one(exporter.get_finished_spans(), "GET /pyroscope/render")
    assert req.attributes["http.response.status_code"] == 400
    assert req.status.status_code == StatusCode.UNSET


def test_health_metrics_and_trace_ingest_are_untraced(client: TestClient, exporter: InMemorySpanExporter) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200
    r = client.post("/v1/traces", content=_otlp_request(), headers={"content-type": "application/x-protobuf"})
    assert r.status_code == 200, r.text  # stored (acked after its flush) ...
    assert client.get(f"/api/traces/{TRACE_ID}").status_code == 200
    spans = exporter.get_finished_spans()  # ... without a span of the ingest or its flush
    assert [s.name for s in spans] == ["GET /api/traces/{trace_id}"]


def _otlp_request() -> bytes:
    import time

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    span = Span(trace_id=bytes.fromhex(TRACE_ID), span_id=bytes.fromhex(PARENT_ID), name="op",
                start_time_unix_nano=now - 1_000_000, end_time_unix_nano=now)
    res = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="other"))])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=res, scope_spans=[ScopeSpans(spans=[span])])]).SerializeToString()


def test_flush_of_untraced_work_emits_nothing(tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    """Writes submitted outside any sampled span (e.g. the OTLP trace ingest, whose
    requests have no span) flush without spans, so exporting to oneself cannot loop."""
    from fleetprof.metastore.index import open_index
    from fleetprof.segment.writer import IngestItem, SegmentWriter
    from fleetprof.storage.objectstore import open_store

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from serverutil import cpu_profile

    async def run() -> None:
        w = SegmentWriter(open_store((tmp_path / "d").as_uri()), open_index(f"sqlite://{tmp_path / 'i.db'}"), max_age_s=0.01)
        w.start()
        item = IngestItem({"service_name": "svc"}, CPU_TYPE, 1_700_000_000_000, cpu_profile([["a"]], [1]))
        await w.submit("t", [item])
        with telemetry.span("traced request"):
            await w.submit("t", [item])
        await w.stop()

    asyncio.run(run())
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("segment.flush") == 1 and "traced request" in names


def test_unsampled_requests_emit_nothing(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exp = InMemorySpanExporter()
    telemetry.configure(service_name="s", exporter=exp, batch=False, sampler=ALWAYS_OFF)
    (tmp_path / "data").mkdir()
    settings = Settings.load(env={}, storage=(tmp_path / "data").as_uri(), index=f"sqlite://{tmp_path / 'index.db'}", flush_max_age_s=0.05)
    with TestClient(create_app(settings)) as c:
        _push(c)
        assert c.get("/pyroscope/render", params={"query": QUERY, "from": "now-1h"}).status_code == 200
    assert exp.get_finished_spans() == ()


def test_exceptions_mark_internal_spans_as_errors(exporter: InMemorySpanExporter) -> None:
    class Rejected(Exception):
        status = 404

    with pytest.raises(RuntimeError), telemetry.span("boom"):
        raise RuntimeError("disk on fire")
    with pytest.raises(Rejected), telemetry.span("not found"):
        raise Rejected("no such thing")
    boom, nf = exporter.get_finished_spans()
    assert boom.status.status_code == StatusCode.ERROR and "disk on fire" in boom.status.description
    assert boom.events[0].name == "exception"
    assert nf.status.status_code == StatusCode.UNSET and nf.events[0].name == "exception"


def test_child_only_records_under_a_sampled_span(exporter: InMemorySpanExporter) -> None:
    with telemetry.child("orphan"):
        pass
    with telemetry.span("root"), telemetry.child("kid") as k:
        k.set({"x": 1})
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["kid", "root"]


def test_shutdown_turns_every_helper_back_into_a_no_op(exporter: InMemorySpanExporter) -> None:
    telemetry.shutdown()
    assert telemetry.span("x") is telemetry.NOOP and telemetry.child("y") is telemetry.NOOP
    assert telemetry.linked_span("z", [object()]) is telemetry.NOOP
    with telemetry.span("x"):
        pass
    assert exporter.get_finished_spans() == ()
