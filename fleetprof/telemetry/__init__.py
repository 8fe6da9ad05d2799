"""fleetprof's own spans (server requests, segment flushes, queries, Ray jobs and tasks),
exported over OTLP/HTTP so operators can trace the platform itself.

Contract:

* Off unless configured (:mod:`fleetprof.telemetry.config`: the standard ``OTEL_*``
  variables, read by :func:`setup_from_env`) or :func:`configure`\\ d explicitly. While off,
  every helper here is a check of one module global and returns a shared no-op object:
  OpenTelemetry is not even imported.
* Export is best-effort: spans are batched and sent by a background thread
  (``BatchSpanProcessor``); a slow or unreachable collector never blocks or fails the
  instrumented work, and its errors are logged at most once a minute per logger.
  :func:`shutdown` and :func:`flush` are bounded in time.
* fleetprof keeps its own tracer provider; the process's global provider (an application
  embedding fleetprof) is left alone. Context propagation is the standard one
  (``contextvars``, W3C ``traceparent``), so spans nest across ``asyncio``/``anyio``
  worker threads and, through :func:`carrier` / :func:`remote_task`, into Ray tasks.
* Entry points open spans with :func:`span` (a request, a job) or :func:`linked_span` (a
  flush serving several requests); inner work uses :func:`child`, which records only under
  a sampled span, so unsampled or untraced work (e.g. the OTLP trace ingest route, see
  :data:`UNTRACED_PATHS`) emits nothing — a server that exports to itself does not feed
  back.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "UNTRACED_PATHS", "annotate", "carrier", "child", "configure", "current_link", "enabled", "flush",
    "http_traced", "job", "linked_span", "remote_task", "reset", "serve_http", "setup_from_env", "shutdown",
    "span",
]

log = logging.getLogger("fleetprof.telemetry")
F = TypeVar("F", bound=Callable[..., Any])

UNTRACED_PATHS = frozenset({"/v1/traces", "/healthz", "/readyz", "/metrics"})
"""Request paths without a server span: health and metrics scrapes (noise), and the OTLP
trace ingest, so a server exporting its spans to itself adds no span per exported batch."""
SHUTDOWN_TIMEOUT_S = 2.0
TASK_FLUSH_TIMEOUT_S = 2.0

_tracing: Any = None
"""The :class:`fleetprof.telemetry._sdk.Tracing` in use, or ``None`` (off)."""
_lock = threading.Lock()


class _NoSpan:
    """What every helper returns while tracing is off (or nothing is sampled)."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, attributes: Mapping[str, Any]) -> None:
        """Set attributes on the span (no-op)."""

    def event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Add an event to the span (no-op)."""

    def rename(self, name: str) -> None:
        """Rename the span (no-op)."""


NOOP = _NoSpan()


def enabled() -> bool:
    """Whether spans are being recorded and exported."""
    return _tracing is not None


def setup_from_env(default_service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Start tracing as the ``OTEL_*`` environment says (``service.name`` defaults to
    ``default_service``); ``True`` if this call started it (the caller then owns
    :func:`shutdown`), ``False`` if it was already on or the environment leaves it off. A
    configuration fleetprof cannot serve (e.g. gRPC) is logged once and leaves it off."""
    global _tracing
    from fleetprof.telemetry.config import ConfigError, from_env

    with _lock:
        if _tracing is not None:
            return False
        try:
            cfg = from_env(default_service, environ)
        except ConfigError as e:
            log.warning("fleetprof's own tracing is off: %s", e)
            return False
        if cfg is None:
            return False
        from fleetprof.telemetry._sdk import Tracing

        _tracing = Tracing.build(default_service=cfg.default_service, endpoint=cfg.endpoint, origin="env")
        return True


def configure(*, service_name: str, exporter: Any = None, endpoint: str | None = None, batch: bool = True,
              sampler: Any = None) -> None:
    """Trace to ``exporter`` (an OpenTelemetry ``SpanExporter``, e.g. the SDK's
    ``InMemorySpanExporter``) or OTLP/HTTP ``endpoint``, replacing any earlier setup (which
    is shut down); ``batch=False`` exports each span as it ends."""
    global _tracing
    from fleetprof.telemetry._sdk import Tracing

    with _lock:
        old, _tracing = _tracing, Tracing.build(default_service=service_name, exporter=exporter, endpoint=endpoint,
                                                batch=batch, sampler=sampler)
    if old is not None:
        old.shutdown(SHUTDOWN_TIMEOUT_S)


def shutdown(timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
    """Export what is queued (waiting at most about ``timeout_s``) and turn tracing off."""
    global _tracing
    with _lock:
        old, _tracing = _tracing, None
    if old is not None:
        old.shutdown(timeout_s)


reset = shutdown


def flush(timeout_s: float = TASK_FLUSH_TIMEOUT_S) -> bool:
    """Export queued spans now, waiting at most ``timeout_s``; ``True`` when done in time
    (or off)."""
    t = _tracing
    return True if t is None else bool(t.flush(timeout_s))


def span(name: str, attributes: Mapping[str, Any] | None = None, *, kind: str = "internal", root: bool = False) -> Any:
    """A span around a ``with`` block (child of the current span unless ``root``); the
    block gets an object with ``set(attributes)``, ``event(name, attributes)`` and
    ``rename(name)``. An exception leaving the block is recorded (an error unless it
    carries an HTTP ``status`` < 500)."""
    t = _tracing
    if t is None:
        return NOOP
    from opentelemetry.context import Context

    from fleetprof.telemetry._sdk import SpanScope

    return SpanScope(t, name, attributes, kind, None, Context() if root else None)


def child(name: str, attributes: Mapping[str, Any] | None = None, *, kind: str = "internal") -> Any:
    """Like :func:`span`, but only under a current sampled span (otherwise a no-op)."""
    t = _tracing
    if t is None:
        return NOOP
    from fleetprof.telemetry._sdk import SpanScope, is_recording

    if not is_recording():
        return NOOP
    return SpanScope(t, name, attributes, kind, None, None)


def linked_span(name: str, links: Sequence[Any], attributes: Mapping[str, Any] | None = None) -> Any:
    """A new root span linked to ``links`` (contexts from :func:`current_link`), e.g. a
    flush that serves several requests; a no-op when ``links`` is empty (none of the work
    it serves was traced)."""
    t = _tracing
    if t is None or not links:
        return NOOP
    from opentelemetry.context import Context

    from fleetprof.telemetry._sdk import SpanScope

    return SpanScope(t, name, attributes, "internal", list(links), Context())


def current_link() -> Any:
    """The current sampled span's context (for :func:`linked_span`), else ``None``."""
    if _tracing is None:
        return None
    from fleetprof.telemetry._sdk import current_link as link

    return link()


def annotate(attributes: Mapping[str, Any]) -> None:
    """Set ``attributes`` on the current span, if one is being recorded."""
    if _tracing is None:
        return
    from opentelemetry import trace

    cur = trace.get_current_span()
    if cur.is_recording():
        cur.set_attributes(dict(attributes))


def http_traced(scope: Mapping[str, Any]) -> bool:
    """Whether the ASGI request ``scope`` gets a server span (:func:`serve_http`)."""
    return _tracing is not None and scope.get("type") == "http" and scope.get("path") not in UNTRACED_PATHS


async def serve_http(scope: dict[str, Any], receive: Any, send: Any, call: Callable[..., Any],
                     exact_routes: Collection[str] = ()) -> None:
    """Run ASGI ``call`` inside a server span (see :func:`fleetprof.telemetry._sdk.serve_http`;
    ``exact_routes``: paths served outside the router, which are their own route)."""
    t = _tracing
    if t is None:
        await call(scope, receive, send)
        return
    from fleetprof.telemetry._sdk import serve_http as traced

    await traced(t, scope, receive, send, call, exact_routes)


# -- jobs and Ray tasks ----------------------------------------------------------------


def carrier() -> dict[str, str] | None:
    """What a Ray task needs to continue the current trace in its worker process: W3C
    ``traceparent`` (and ``tracestate``), the OTLP endpoint and service name; ``None``
    unless a sampled span is current. Holds no credentials (exporter headers stay in the
    environment of each process)."""
    t = _tracing
    if t is None:
        return None
    from fleetprof.telemetry._sdk import current_link as link
    from fleetprof.telemetry._sdk import inject

    if link() is None:
        return None
    out = inject()
    if t.endpoint:
        out["endpoint"] = t.endpoint
    out["service"] = t.service
    return out


def _adopt(trace_carrier: Mapping[str, str]) -> None:
    """In a worker process: tracing from its own environment, else to the carrier's
    endpoint (re-pointed when a later carrier names another one)."""
    global _tracing
    if _tracing is not None and (_tracing.origin != "carrier" or _tracing.endpoint == trace_carrier.get("endpoint")):
        return
    service = trace_carrier.get("service") or "fleetprof-workers"
    if setup_from_env(service):
        return
    endpoint = trace_carrier.get("endpoint")
    if not endpoint:
        return
    from fleetprof.telemetry._sdk import Tracing

    with _lock:
        old, _tracing = _tracing, Tracing.build(default_service=service, endpoint=endpoint, origin="carrier")
    if old is not None:
        old.shutdown(SHUTDOWN_TIMEOUT_S)


class _RemoteTask:
    """See :func:`remote_task`."""

    def __init__(self, trace_carrier: Mapping[str, str], name: str, attributes: Mapping[str, Any] | None) -> None:
        self._carrier, self._name, self._attrs = trace_carrier, name, attributes
        self._inner: Any = NOOP

    def __enter__(self) -> Any:
        try:
            _adopt(self._carrier)
        except Exception as e:  # noqa: BLE001 - tracing must never fail the task
            log.warning("cannot trace this task: %s", e)
        t = _tracing
        if t is not None:
            from fleetprof.telemetry._sdk import SpanScope, extract

            self._inner = SpanScope(t, self._name, self._attrs, "consumer", None, extract(self._carrier))
        return self._inner.__enter__()

    def __exit__(self, *exc: Any) -> None:
        try:
            self._inner.__exit__(*exc)
        finally:
            if self._inner is not NOOP:
                flush(TASK_FLUSH_TIMEOUT_S)  # the worker process may be ended before its next batch


def remote_task(trace_carrier: Mapping[str, str] | None, name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """In a Ray task: a span continuing the driver's trace from ``trace_carrier`` (from
    :func:`carrier`; ``None``: no-op), exported before the task returns (bounded)."""
    if not trace_carrier or "traceparent" not in trace_carrier:
        return NOOP
    return _RemoteTask(trace_carrier, name, attributes)


def job(name: str, service: str = "fleetprof-workers") -> Callable[[F], F]:
    """Decorator of a job's entry function: tracing from the environment (service
    ``service``) if not on yet, a ``job.<name>`` span around the call (a child of the
    current span, if any), and its spans exported before it returns (bounded)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            owned = _tracing is None and _env_may_trace() and setup_from_env(service)
            try:
                with span(f"job.{name}", {"fleetprof.job": name}):
                    return fn(*args, **kwargs)
            finally:
                if owned:
                    shutdown()
                elif _tracing is not None:
                    flush()

        return run  # type: ignore[return-value]

    return wrap


def _env_may_trace() -> bool:
    env = os.environ
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
