"""The OpenTelemetry SDK side of :mod:`fleetprof.telemetry` (imported only once tracing is
configured): the provider, span scopes, the HTTP server span and trace propagation."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanProcessor,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fleetprof.telemetry import logs

INSTRUMENTATION = "fleetprof"
MAX_LINKS = 128
"""Links kept on one span (a flush of many requests links the first ones)."""
_KINDS = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT,
          "producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}
_PROPAGATOR = TraceContextTextMapPropagator()


def resource(default_service: str, extra: Mapping[str, str] | None = None) -> Resource:
    """The SDK's resource from ``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_SERVICE_NAME``, with
    ``default_service`` as ``service.name`` when neither names one."""
    res = Resource.create(dict(extra or {}))
    name = str(res.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        res = res.merge(Resource({SERVICE_NAME: default_service}))
    return res


class Tracing:
    """One tracer provider (not the global one: the host application keeps its own) with
    one span processor; :meth:`shutdown` is bounded."""

    def __init__(self, provider: TracerProvider, processor: SpanProcessor, endpoint: str | None, origin: str) -> None:
        self.provider = provider
        self.processor = processor
        self.endpoint = endpoint
        self.origin = origin
        """``env``, ``carrier`` or ``explicit``: who configured it."""
        self.tracer = provider.get_tracer(INSTRUMENTATION)
        self.service = str(provider.resource.attributes.get(SERVICE_NAME, ""))

    @classmethod
    def build(cls, *, default_service: str, exporter: SpanExporter | None = None, endpoint: str | None = None,
              batch: bool = True, origin: str = "explicit", sampler: Any = None) -> Tracing:
        """A provider exporting to ``exporter``, else OTLP/HTTP at ``endpoint`` (``None``:
        the SDK reads the environment); batched unless ``batch`` is false."""
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint)
        logs.install()
        provider = TracerProvider(resource=resource(default_service), sampler=sampler, shutdown_on_exit=False)
        processor: SpanProcessor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        return cls(provider, processor, endpoint, origin)

    def flush(self, timeout_s: float) -> bool:
        """Export what is queued; ``False`` if that took longer than ``timeout_s`` (the
        export goes on in the background)."""
        return _bounded(lambda: self.provider.force_flush(int(timeout_s * 1000)), timeout_s)

    def shutdown(self, timeout_s: float) -> None:
        """Export what is queued and stop, waiting at most about ``timeout_s``."""
        ms = int(timeout_s * 1000)
        proc = self.processor
        if isinstance(proc, BatchSpanProcessor):
            _bounded(lambda: proc.shutdown(timeout_millis=ms) if _takes_timeout(proc.shutdown) else proc.shutdown(), timeout_s)
        else:
            _bounded(proc.shutdown, timeout_s)


def _takes_timeout(fn: Callable[..., Any]) -> bool:
    import inspect

    return "timeout_millis" in inspect.signature(fn).parameters


def _bounded(fn: Callable[[], Any], timeout_s: float) -> bool:
    """Run ``fn`` in a daemon thread; ``True`` if it finished within ``timeout_s``."""
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        finally:
            done.set()

    threading.Thread(target=run, name="fleetprof-telemetry-flush", daemon=True).start()
    return done.wait(max(timeout_s, 0.0))


def is_recording() -> bool:
    return trace.get_current_span().is_recording()


def failed(span: Any, exc: BaseException) -> None:
    """Record ``exc`` on ``span``: an error, except a client error (an exception with an
    HTTP ``status`` below 500, e.g. a 4xx answer), which is noted as an event only."""
    status = getattr(exc, "status", None)
    span.record_exception(exc)
    if isinstance(status, int) and status < 500:
        return
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:256]))


class SpanScope:
    """Context manager of one span that is the current span while the block runs."""

    __slots__ = ("_args", "_span", "_token")

    def __init__(self, tracing: Tracing, name: str, attributes: Mapping[str, Any] | None, kind: str,
                 links: Sequence[Any] | None, parent: Context | None) -> None:
        self._args = (tracing, name, attributes, kind, links, parent)
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> SpanScope:
        tracing, name, attributes, kind, links, parent = self._args
        self._span = tracing.tracer.start_span(
            name, context=parent, kind=_KINDS[kind], attributes=dict(attributes) if attributes else None,
            links=[Link(c) for c in links[:MAX_LINKS]] if links else None,
            record_exception=False, set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span, parent))
        return self

    def set(self, attributes: Mapping[str, Any]) -> None:
        """Set attributes on the span."""
        self._span.set_attributes(dict(attributes))

    def event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self._span.add_event(name, dict(attributes) if attributes else None)

    def rename(self, name: str) -> None:
        self._span.update_name(name)

    def error(self, description: str | None = None) -> None:
        """Mark the span as failed."""
        self._span.set_status(Status(StatusCode.ERROR, description))

    def __exit__(self, et: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is not None:
                failed(self._span, exc)
        finally:
            otel_context.detach(self._token)
            self._span.end()


def current_link() -> SpanContext | None:
    """The current span's context if it is sampled (a flush links to it), else ``None``."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    ctx = span.get_span_context()
    return ctx if ctx.is_valid else None


def inject() -> dict[str, str]:
    """W3C ``traceparent``/``tracestate`` of the current context."""
    out: dict[str, str] = {}
    _PROPAGATOR.inject(out)
    return out


def extract(headers: Mapping[str, str]) -> Context:
    """The remote parent named by W3C ``traceparent``/``tracestate`` headers (empty context
    when absent or malformed)."""
    return _PROPAGATOR.extract(headers, context=Context())


async def serve_http(tracing: Tracing, scope: dict[str, Any], receive: Any, send: Any,
                     call: Callable[[dict[str, Any], Any, Any], Awaitable[None]], exact_routes: Collection[str] = ()) -> None:
    """Run the ASGI ``call`` inside a ``SERVER`` span named ``<method> <route>``
    (continuing a W3C ``traceparent`` sent by the client) with HTTP semantic-convention
    attributes; 5xx answers (and exceptions) mark the span as an error."""
    headers: dict[str, str] = {}
    for k, v in scope.get("headers") or ():
        if k in (b"traceparent", b"tracestate", b"user-agent"):
            headers.setdefault(k.decode("latin-1"), v.decode("latin-1"))
    method = str(scope.get("method") or "HTTP")
    attrs: dict[str, Any] = {"http.request.method": method, "url.path": str(scope.get("path") or "/"),
                             "url.scheme": str(scope.get("scheme") or "http")}
    if "user-agent" in headers:
        attrs["user_agent.original"] = headers["user-agent"][:256]
    status: dict[str, int] = {}

    async def send_status(message: dict[str, Any]) -> None:
        if message.get("type") == "http.response.start":
            status["code"] = int(message.get("status", 0))
        await send(message)

    parent = extract(headers) if "traceparent" in headers else Context()
    with SpanScope(tracing, method, attrs, "server", None, parent) as sp:
        try:
            await call(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route is None and attrs["url.path"] in exact_routes:
                route = attrs["url.path"]
            if isinstance(route, str):
                sp.rename(f"{method} {route}")
                sp.set({"http.route": route})
            code = status.get("code")
            if code is not None:
                sp.set({"http.response.status_code": code})
                if code >= 500:
                    sp.error(f"HTTP {code}")
