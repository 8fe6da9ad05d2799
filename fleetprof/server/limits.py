"""Request limits: body size and decompressed size (413), series/labels per request and
label syntax (400), per-tenant ingest rate (429, token bucket)."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping

from fleetprof.server.errors import ApiError

LABEL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
"""Prometheus label names, plus ``.`` (the pyroscope-io agent sends ``otel.scope.name``)."""


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, max_bytes: int) -> bytes:
    """The whole body, refusing (413) anything over ``max_bytes`` without buffering past it."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise ApiError(400, "invalid Content-Length") from None
        if declared > max_bytes:
            raise ApiError(413, f"request body of {declared} bytes exceeds the {max_bytes}-byte limit")
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            raise ApiError(413, f"request body exceeds the {max_bytes}-byte limit")
    return bytes(buf)


def gunzip_capped(data: bytes, max_bytes: int, what: str = "request body") -> bytes:
    """Gunzip ``data`` (possibly several members), stopping with 413 once the output would
    exceed ``max_bytes`` (a gzip bomb never inflates past the cap); 400 on corrupt data."""
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = rest
            while chunk:
                out += d.decompress(chunk, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise ApiError(413, f"decompressed {what} exceeds the {max_bytes}-byte limit")
                chunk = d.unconsumed_tail
            if not d.eof:
                raise ApiError(400, f"truncated gzip {what}")
            rest = d.unused_data
    except zlib.error as e:
        raise ApiError(400, f"invalid gzip {what}: {e}") from None
    return bytes(out)


def decode_content_encoding(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip; 415-ish 400 for others)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        return gunzip_capped(body, max_bytes)
    raise ApiError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or identity)", code="invalid_argument")


def validate_labels(labels: Mapping[str, str], *, max_labels: int, max_name: int, max_value: int) -> None:
    """400 unless every name matches :data:`LABEL_NAME_RE` and sizes are within limits."""
    if len(labels) > max_labels:
        raise ApiError(400, f"series has {len(labels)} labels, more than the limit of {max_labels}")
    for name, value in labels.items():
        if len(name) > max_name or not LABEL_NAME_RE.match(name):
            shown = name[:64] + ("…" if len(name) > 64 else "")
            raise ApiError(400, f"invalid label name {shown!r}: use [A-Za-z_][A-Za-z0-9_.]* up to {max_name} chars")
        if len(value) > max_value:
            raise ApiError(400, f"value of label {name!r} is longer than {max_value} characters")
        if "\x00" in value:
            raise ApiError(400, f"value of label {name!r} contains a NUL character")


class TokenBucket:
    """Thread-safe token bucket: ``rate`` tokens/s up to ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.stamp = clock()
        self.lock = threading.Lock()

    def take(self, n: float) -> float:
        """Take ``n`` tokens: 0.0 on success, else the seconds to wait before retrying."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if n <= self.tokens:
                self.tokens -= n
                return 0.0
            need = min(n, self.burst) - self.tokens
            return max(need / self.rate, 0.001) if self.rate > 0 else 1.0


class RateLimiter:
    """One :class:`TokenBucket` per tenant; ``rate <= 0`` disables limiting."""

    def __init__(self, rate: float, burst: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst if burst > 0 else max(rate, 1.0) * 2
        self.buckets: dict[str, TokenBucket] = {}
        self.lock = threading.Lock()

    def check(self, tenant: str, n: int) -> None:
        """Take ``n`` profiles' worth of tokens or raise 429 with ``Retry-After``."""
        if self.rate <= 0:
            return
        with self.lock:
            bucket = self.buckets.get(tenant)
            if bucket is None:
                bucket = self.buckets[tenant] = TokenBucket(self.rate, self.burst)
        wait = bucket.take(n)
        if wait > 0:
            raise ApiError(
                429,
                f"tenant {tenant!r} exceeds its ingest rate of {self.rate:g} profiles/s",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )
