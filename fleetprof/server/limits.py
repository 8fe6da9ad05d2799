"""Request limits: body size, decompressed size and compression ratio (413), series/labels
per request and label syntax (400), per-tenant ingest rate (429, token bucket)."""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from fleetprof.server.errors import ApiError

GZIP_MAGIC = b"\x1f\x8b"
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


class NeedsGate(Exception):
    """The request decompressed past its ungated allowance: decode it again holding a
    slot of :class:`fleetprof.server.gate.DecodeGate`."""


@dataclass
class InflateBudget:
    """The decompressed bytes one request may produce, over all its gzip layers together.

    ``limit``: 413 above it. ``max_ratio``: 413 when a gzip stream inflates to more than
    ``max_ratio`` × its compressed size and more than ``ratio_floor`` bytes. ``ungated``:
    :class:`NeedsGate` once the request holds more than this (``None``: it holds a slot).
    A stream is decompressed incrementally and stops at the first bound it would cross."""

    limit: int
    max_ratio: float = 0.0
    ratio_floor: int = 1024 * 1024
    ungated: int | None = None
    used: int = 0

    def add(self, n: int) -> None:
        """Count ``n`` plain bytes (a body that was not compressed)."""
        self.used += n
        if self.ungated is not None and self.used > self.ungated:
            raise NeedsGate()
        if self.used > self.limit:
            raise ApiError(413, f"request body of {n} bytes exceeds the {self.limit}-byte decompressed limit")

    def inflate(self, data: bytes, what: str = "request body") -> bytes:
        """``data`` gunzipped (possibly several members) and counted; other data as is,
        uncounted (it is part of a body counted already). 400 on corrupt gzip."""
        if not data.startswith(GZIP_MAGIC):
            return data
        by_ratio = max(self.ratio_floor, int(self.max_ratio * len(data))) if self.max_ratio > 0 else self.limit
        room = min(self.limit - self.used, by_ratio)
        if self.ungated is not None:
            room = min(room, self.ungated - self.used)
        try:
            out = gunzip_capped(data, max(room, 0), what)
        except ApiError as e:
            if e.status != 413:
                raise
            if self.ungated is not None and self.used + max(room, 0) >= self.ungated:
                raise NeedsGate() from None
            if by_ratio < self.limit - self.used:
                raise ApiError(413, f"gzip {what} inflates more than {self.max_ratio:g} times its "
                               f"{len(data)}-byte size (limit {by_ratio} bytes)") from None
            raise ApiError(413, f"decompressed request exceeds the {self.limit}-byte limit") from None
        self.used += len(out)
        return out


def decode_body(body: bytes, encoding: str | None, budget: InflateBudget) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip) within ``budget``; 415 for others."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        if not body.startswith(GZIP_MAGIC):
            budget.add(len(body))  # a gzip body is counted when its parser inflates it
        return body
    if enc in ("gzip", "x-gzip"):
        if body and not body.startswith(GZIP_MAGIC):
            raise ApiError(400, "invalid gzip request body: no gzip header")
        return budget.inflate(body)
    raise ApiError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or identity)", code="invalid_argument")


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
            self._refill()
            if n <= self.tokens:
                self.tokens -= n
                return 0.0
            need = min(n, self.burst) - self.tokens
            return max(need / self.rate, 0.001) if self.rate > 0 else 1.0

    def wait_for(self, n: float) -> float:
        """Seconds until ``n`` tokens (at most ``burst``) are available; 0.0 if they are now."""
        with self.lock:
            self._refill()
            need = min(n, self.burst) - self.tokens
            if need <= 0:
                return 0.0
            return max(need / self.rate, 0.001) if self.rate > 0 else 1.0

    def spend(self, n: float) -> None:
        """Take ``n`` tokens unconditionally: the bucket may go into debt, which later
        requests wait off (work already done is never thrown away)."""
        with self.lock:
            self._refill()
            self.tokens -= n

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


class RateLimiter:
    """One :class:`TokenBucket` per tenant, for at most ``max_tenants`` tenants (the least
    recently seen is dropped beyond: made-up tenants cannot grow memory without bound);
    ``rate <= 0`` disables limiting."""

    def __init__(self, rate: float, burst: float = 0.0, *, max_tenants: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst if burst > 0 else max(rate, 1.0) * 2
        self.max_tenants = max(1, max_tenants)
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.lock = threading.Lock()

    def check(self, tenant: str, n: int) -> None:
        """Take ``n`` profiles' worth of tokens or raise 429 with ``Retry-After``."""
        if self.rate <= 0:
            return
        wait = self._bucket(tenant).take(n)
        if wait > 0:
            raise self._refusal(tenant, wait)

    def admit(self, tenant: str) -> None:
        """429 with ``Retry-After`` unless the tenant's bucket holds a whole token; takes
        nothing. Called before a request's body is read or decoded."""
        if self.rate <= 0:
            return
        wait = self._bucket(tenant).wait_for(1)
        if wait > 0:
            raise self._refusal(tenant, wait)

    def charge(self, tenant: str, n: int) -> None:
        """Take ``n`` profiles' worth of tokens after an admitted request was decoded (the
        bucket may go into debt: the tenant's next requests are refused until it refills)."""
        if self.rate > 0:
            self._bucket(tenant).spend(n)

    def _bucket(self, tenant: str) -> TokenBucket:
        with self.lock:
            bucket = self.buckets.get(tenant)
            if bucket is None:
                bucket = self.buckets[tenant] = TokenBucket(self.rate, self.burst)
                while len(self.buckets) > self.max_tenants:
                    self.buckets.popitem(last=False)
            else:
                self.buckets.move_to_end(tenant)
            return bucket

    def _refusal(self, tenant: str, wait: float) -> ApiError:
        return ApiError(
            429,
            f"tenant {tenant!r} exceeds its ingest rate of {self.rate:g} profiles/s",
            headers={"Retry-After": str(max(1, int(wait + 0.999)))},
        )
