"""Test program: two root spans doing different CPU work under the real pyroscope-io agent
and the pyroscope-otel span processor (OpenTelemetry SDK), pushing to ``argv[1]``.

Prints one JSON line: ``{"a": {"span_id", "trace_id"}, "b": {...}}``."""

from __future__ import annotations

import json
import sys
import time

import pyroscope
from opentelemetry.sdk.trace import TracerProvider
from pyroscope.otel import PyroscopeSpanProcessor


def spin_alpha(seconds: float) -> int:
    """Integer arithmetic for ``seconds`` of CPU."""
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(20000):
            x += i * i
    return x


def spin_beta(seconds: float) -> str:
    """String building for ``seconds`` of CPU."""
    end = time.process_time() + seconds
    s = ""
    while time.process_time() < end:
        for i in range(5000):
            s = str(i) + s[:16]
    return s


def main() -> None:
    pyroscope.configure(application_name="spanapp", server_address=sys.argv[1], upload_interval=1, sample_rate=100)
    provider = TracerProvider()
    provider.add_span_processor(PyroscopeSpanProcessor())
    tracer = provider.get_tracer("span-test")
    out = {}
    for key, work in (("a", spin_alpha), ("b", spin_beta)):
        with tracer.start_as_current_span(f"span_{key}") as span:
            work(float(sys.argv[2]) if len(sys.argv) > 2 else 1.5)
            ctx = span.get_span_context()
            out[key] = {"span_id": format(ctx.span_id, "016x"), "trace_id": format(ctx.trace_id, "032x")}
    time.sleep(1.2)  # one more upload interval
    pyroscope.shutdown()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
