"""Demo service: regex parsing of log lines and a lock held under contention by threads.
Each step is a traced batch (a ``CONSUMER`` span ``process access-logs``) with child spans
for parsing and for the critical section (time spent waiting for the lock is an attribute);
some batches hold a malformed line and fail."""

from __future__ import annotations

import re
import threading
import time

from fleetprof.demo_services.agent import run

LOG_RE = re.compile(r"(?P<ip>\d+\.\d+\.\d+\.\d+) - - \[(?P<ts>[^\]]+)\] \"(?P<method>GET|POST) (?P<path>\S+)[^\"]*\" (?P<status>\d{3}) (?P<size>\d+)")
LINES = [f'10.0.{i % 256}.{i % 7} - - [22/Nov/2026:04:00:{i % 60:02d} +0000] "GET /api/item/{i} HTTP/1.1" {200 + i % 3} {i * 13}' for i in range(400)]
_lock = threading.Lock()
_counter = {"n": 0}


def parse_logs() -> int:
    total = 0
    for line in LINES:
        m = LOG_RE.match(line)
        if m:
            total += int(m.group("size"))
    return total


def critical_section() -> None:
    with _lock:
        x = 0
        for i in range(20_000):
            x += i * i
        _counter["n"] += x & 1


def contender() -> None:
    while True:
        critical_section()
        time.sleep(0.001)


_batches = {"n": 0}
FAIL_EVERY = 17
"""Every n-th batch holds a malformed line."""


def step() -> None:
    """One traced batch (see the module docstring)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = trace.get_tracer("fleetprof.demo.text_worker")
    _batches["n"] += 1
    n = _batches["n"]
    with tracer.start_as_current_span("process access-logs", kind=SpanKind.CONSUMER, attributes={
        "messaging.system": "demo-queue", "messaging.operation.type": "process",
        "messaging.destination.name": "access-logs", "messaging.batch.message_count": len(LINES),
    }) as batch:
        try:
            with tracer.start_as_current_span("parse_logs") as sp:
                sp.set_attribute("bytes.total", parse_logs())
                if n % FAIL_EVERY == 0:
                    raise ValueError(f"batch {n}: malformed line 17: unterminated quote")
            t0 = time.perf_counter()
            with tracer.start_as_current_span("critical_section") as sp:
                critical_section()
                sp.add_event("lock.released", {"lock.wait_ms": round((time.perf_counter() - t0) * 1000, 3)})
        except ValueError as e:
            batch.set_attribute("error.type", type(e).__name__)
            batch.set_status(Status(StatusCode.ERROR, str(e)))


if __name__ == "__main__":
    for _ in range(3):
        threading.Thread(target=contender, daemon=True).start()
    run("text-worker", step, {"tier": "batch"})
