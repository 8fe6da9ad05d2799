"""Bounded logging of span export failures: an unreachable collector costs one log line
per logger per :data:`INTERVAL_S`, not one per batch and retry."""

from __future__ import annotations

import logging
import threading
import time

INTERVAL_S = 60.0
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
)
"""Loggers of the OTLP/HTTP exporter and the batch span processor."""


class RateLimit(logging.Filter):
    """Lets through the first record, then at most one per ``interval_s``; a passed record
    after suppressed ones says how many were dropped."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._next = 0.0
        self._dropped = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._dropped += 1
                return False
            self._next = now + self.interval_s
            dropped, self._dropped = self._dropped, 0
        if dropped:
            record.msg = f"{record.msg} ({dropped} similar span export messages suppressed)"
        return True


def install(interval_s: float = INTERVAL_S) -> None:
    """Put a :class:`RateLimit` on every exporter logger (once per logger)."""
    for name in EXPORT_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, RateLimit) for f in lg.filters):
            lg.addFilter(RateLimit(interval_s))
