"""A small instrumented program for the explorer's trace tests: the real pyroscope-io agent
with pyroscope-otel's span processor and the real OpenTelemetry SDK exporting OTLP/HTTP
protobuf to a fleetprof server. Run as ``python traced_program.py URL SECONDS``; it prints
one JSON line with the trace and span ids it made.

Two local root spans burn CPU in different functions: ``checkout`` (its child ``price``
runs ``explorer_price_work``) and ``reindex`` (``explorer_reindex_work``), so each root's
span profile holds only its own function. A third root span, ``nightly export``
(``explorer_orphan_work``), goes through a tracer provider without an exporter: its samples
carry its id but the trace store never gets the span. The agent's application name
(``shop-agent``) differs from the spans' ``service.name`` (``shop``). The agent is a
process-wide native singleton, hence a subprocess.
"""

from __future__ import annotations

import json
import sys
import time


def explorer_price_work(seconds: float) -> int:
    """Busy CPU for ``seconds`` of wall time."""
    end = time.monotonic() + seconds
    s = 0
    while time.monotonic() < end:
        for i in range(20_000):
            s += i * i
    return s


def explorer_reindex_work(seconds: float) -> int:
    """Busy CPU for ``seconds`` of wall time (a different function than the checkout's)."""
    end = time.monotonic() + seconds
    s = 0
    while time.monotonic() < end:
        for i in range(20_000):
            s ^= i * 3
    return s


def explorer_orphan_work(seconds: float) -> int:
    """Busy CPU for ``seconds`` of wall time (the unexported span's own function)."""
    end = time.monotonic() + seconds
    s = 0
    while time.monotonic() < end:
        for i in range(20_000):
            s += i ^ 5
    return s


def main(url: str, seconds: float) -> None:
    import pyroscope
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind
    from pyroscope.otel import PyroscopeSpanProcessor

    pyroscope.configure(application_name="shop-agent", server_address=url, sample_rate=100, upload_interval=1)
    provider = TracerProvider(resource=Resource.create({"service.name": "shop", "deployment.environment": "test"}))
    provider.add_span_processor(PyroscopeSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
    tracer = provider.get_tracer("explorer-test")
    out: dict[str, str] = {}
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("price") as child:
            explorer_price_work(seconds)
            out["price_span"] = format(child.get_span_context().span_id, "016x")
        out["checkout_trace"] = format(root.get_span_context().trace_id, "032x")
        out["checkout_span"] = format(root.get_span_context().span_id, "016x")
    with tracer.start_as_current_span("reindex", kind=SpanKind.INTERNAL) as other:
        explorer_reindex_work(seconds)
        out["reindex_trace"] = format(other.get_span_context().trace_id, "032x")
        out["reindex_span"] = format(other.get_span_context().span_id, "016x")
    unexported = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    unexported.add_span_processor(PyroscopeSpanProcessor())
    with unexported.get_tracer("explorer-test").start_as_current_span("nightly export", kind=SpanKind.INTERNAL) as orphan:
        explorer_orphan_work(seconds)
        out["orphan_trace"] = format(orphan.get_span_context().trace_id, "032x")
        out["orphan_span"] = format(orphan.get_span_context().span_id, "016x")
    time.sleep(1.5)  # one more upload interval, so the last samples are pushed before shutdown
    provider.shutdown()
    pyroscope.shutdown()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
