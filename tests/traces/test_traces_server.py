"""A real server process: the OpenTelemetry SDK's OTLP/HTTP protobuf exporter (gzip) into
``/v1/traces``, and acknowledged spans surviving ``kill -9``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode
from traces_support import (
    OTLP_JSON,
    ServerProc,
    json_request,
    json_span,
    provider,
    server_list,
    start_server,
)


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


def test_sdk_protobuf_export_is_stored_and_searchable(servers: list[ServerProc], tmp_path: Path) -> None:
    srv = start_server(servers, (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}", "--flush-max-age-s", "0.05", tmp=tmp_path)
    tp = provider(srv.url, "checkout", headers={"X-Scope-OrgID": "sdk"}, **{"deployment.environment": "test"})
    tracer = tp.get_tracer("tests", "1.0")
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER, attributes={"http.route": "/cart", "http.status_code": 200}) as root:
        with tracer.start_as_current_span("db", attributes={"db.rows": 3, "tags": ["a", "b"]}) as child:
            child.add_event("fetched", {"n": 3})
            child.set_status(Status(StatusCode.ERROR, "boom"))
    assert tp.force_flush(30_000)
    tp.shutdown()
    tid = format(root.get_span_context().trace_id, "032x")
    with httpx.Client(base_url=srv.url, headers={"X-Scope-OrgID": "sdk"}, timeout=30) as h:
        doc = h.get(f"/api/traces/{tid}", params={"format": "otlp"}).json()
        spans = {sp["name"]: sp for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]}
        assert set(spans) == {"GET /cart", "db"}
        db = spans["db"]
        assert db["parentSpanId"] == format(root.get_span_context().span_id, "016x")
        assert db["status"] == {"code": 2, "message": "boom"}
        assert db["events"][0]["name"] == "fetched"
        assert {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}} in db["attributes"]
        assert {"key": "db.rows", "value": {"intValue": "3"}} in db["attributes"]
        found = h.get("/api/search", params={"tags": "deployment.environment=test", "status": "error"}).json()["traces"]
        assert [t["traceID"] for t in found] == [tid] and found[0]["rootTraceName"] == "GET /cart"
        assert h.get(f"/api/traces/{tid}", headers={"X-Scope-OrgID": "other"}).status_code == 404


def _export_until_dead(url: str, c: int, acked: list[str], lock: threading.Lock, t0: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as h:
        for i in range(200):
            trace = f"{c + 1:08x}{i + 1:024x}"
            doc = json_request("durable", [json_span(trace, f"{i + 1:016x}", f"op{i}", t0 + i * 1000, 500)])
            try:
                r = h.post("/v1/traces", content=json.dumps(doc).encode(), headers=OTLP_JSON)
            except httpx.HTTPError:
                return
            if r.status_code != 200:
                return
            with lock:
                acked.append(trace)


def test_acked_spans_survive_sigkill(servers: list[ServerProc], tmp_path: Path) -> None:
    store, index = (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}"
    srv = start_server(servers, store, index, "--flush-max-age-s", "0.1", tmp=tmp_path)
    acked: list[str] = []
    lock = threading.Lock()
    t0 = time.time_ns()
    threads = [threading.Thread(target=_export_until_dead, args=(srv.url, c, acked, lock, t0)) for c in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(acked) < 10:
        time.sleep(0.02)
    srv.kill()
    for t in threads:
        t.join(30)
    assert len(acked) >= 10, "too few exports were acknowledged before the kill"
    srv2 = start_server(servers, store, index, tmp=tmp_path)
    with httpx.Client(base_url=srv2.url, timeout=30) as h:
        for trace in acked:
            r = h.get(f"/api/traces/{trace}", params={"format": "otlp"})
            assert r.status_code == 200, f"acked trace {trace} lost"
            spans = [sp for rs in r.json()["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]
            assert len(spans) == 1
