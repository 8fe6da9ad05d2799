"""Test helpers for fleetprof's own spans: a loopback OTLP/HTTP trace receiver (decodes what
the real SDK exporter sends with opentelemetry-proto) and span-tree queries."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass(frozen=True)
class Got:
    """One received span (ids as lowercase hex, as in OTLP JSON)."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    links: tuple[str, ...]
    status: int


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    return getattr(v, which) if which else None


class OtlpReceiver:
    """``POST /v1/traces`` on 127.0.0.1 (protobuf, optionally gzip); spans in :attr:`spans`."""

    def __init__(self) -> None:
        self.spans: list[Got] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver._take(ExportTraceServiceRequest.FromString(body))
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _take(self, req: ExportTraceServiceRequest) -> None:
        got: list[Got] = []
        for rs in req.resource_spans:
            res = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(Got(
                        service=str(res.get("service.name", "")), name=s.name, trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(), parent_id=s.parent_span_id.hex(), kind=s.kind,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        links=tuple(lk.span_id.hex() for lk in s.links), status=s.status.code,
                    ))
        with self._lock:
            self.spans.extend(got)
            self.requests += 1

    def snapshot(self) -> list[Got]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, pred: Callable[[list[Got]], bool], timeout_s: float = 60.0) -> list[Got]:
        """The received spans once ``pred`` holds for them (``AssertionError`` at the deadline)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.snapshot()
            if pred(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({(s.service, s.name) for s in spans})
                raise AssertionError(f"spans not received within {timeout_s:g}s; got {names}")
            time.sleep(0.05)

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    try:
        yield r
    finally:
        r.stop()


def named(spans: list[Any], name: str) -> list[Any]:
    return [s for s in spans if s.name == name]


def has_names(*names: str) -> Callable[[list[Got]], bool]:
    return lambda spans: all(any(s.name == n for s in spans) for n in names)
