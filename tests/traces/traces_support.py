"""Helpers for the trace tests: OTLP bodies built from the specification, the real
OpenTelemetry SDK exporting to a server, in-process apps."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import ServerProc, server_list, start_server  # noqa: E402,F401 - the server tests' helpers

OTLP_JSON = {"content-type": "application/json"}
OTLP_PROTO = {"content-type": "application/x-protobuf"}


def provider(url: str, service: str, headers: dict[str, str] | None = None, **resource: Any) -> TracerProvider:
    """A real SDK tracer provider exporting OTLP/HTTP protobuf to ``url`` (gzip)."""
    from opentelemetry.exporter.otlp.proto.http import Compression

    tp = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    exp = OTLPSpanExporter(endpoint=url.rstrip("/") + "/v1/traces", headers=headers or {}, compression=Compression.Gzip, timeout=30)
    tp.add_span_processor(BatchSpanProcessor(exp))
    return tp


def kv(key: str, value: Any) -> dict[str, Any]:
    """An OTLP JSON ``KeyValue`` (int64 as a string, as the JSON mapping says)."""
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [kv("", x)["value"] for x in value]}}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def json_span(trace: str, span: str, name: str, start_ns: int, dur_ns: int, *, parent: str = "", kind: int = 2,
              status: int = 0, attrs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One span in the OTLP JSON mapping (hex ids, integer enums, int64 as strings)."""
    sp: dict[str, Any] = {
        "traceId": trace, "spanId": span, "name": name, "kind": kind,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + dur_ns),
        "attributes": [kv(k, v) for k, v in (attrs or {}).items()],
    }
    if parent:
        sp["parentSpanId"] = parent
    if status:
        sp["status"] = {"code": status, "message": "failed" if status == 2 else ""}
    sp.update(extra)
    return sp


def json_request(service: str, spans: Sequence[dict[str, Any]], **resource: Any) -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", service), *(kv(k, v) for k, v in resource.items())]},
        "scopeSpans": [{"scope": {"name": "tests", "version": "1"}, "spans": list(spans)}],
    }]}


def trace_hex(i: int) -> str:
    return f"{0x5EED0000 + i:032x}"


def span_hex(i: int) -> str:
    return f"{0xABC00000 + i:016x}"


def in_process(tmp: Path, **overrides: Any) -> Iterator[TestClient]:
    """A TestClient of an app on file + SQLite storage under ``tmp`` (lifespan run)."""
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    settings = Settings.load(env={}, storage=(tmp / "data").as_uri(), index=f"sqlite://{tmp / 'index.db'}",
                             flush_max_age_s=0.02, **overrides)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def now_ns() -> int:
    return time.time_ns()
