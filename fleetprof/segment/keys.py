"""Segment ids (ULID-like, time-sortable) and object keys.

* ``new_segment_id()`` — 26 Crockford base32 characters: 48-bit creation time in ms then 80
  random bits, so ids sort by creation time (like a ULID).
* ``segment_key(tenant, level, segment_id, time_ms)`` —
  ``segments/<tenant>/L<level>/<yyyy>/<mm>/<dd>/<hh>/<segment_id>.fps`` (UTC hour of
  ``time_ms``, the segment's first sample).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,149}$")


def validate_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is usable in object keys, else raise :class:`ValueError`."""
    if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
        raise ValueError(f"invalid tenant id {tenant!r} (1-150 of [A-Za-z0-9._-], not starting with . _ -)")
    return tenant


def new_segment_id(now_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def segment_id_time_ms(segment_id: str) -> int:
    """Creation time (ms) encoded in a segment id from :func:`new_segment_id`."""
    value = 0
    for c in segment_id[:10]:
        value = value * 32 + _CROCKFORD.index(c)
    return value  # 10 chars = 50 bits: two zero pad bits then the 48-bit time


def segment_key(tenant: str, level: int, segment_id: str, time_ms: int) -> str:
    t = dt.datetime.fromtimestamp(max(0, time_ms) / 1000, tz=dt.UTC)
    return f"segments/{validate_tenant(tenant)}/L{int(level)}/{t:%Y/%m/%d/%H}/{segment_id}.fps"


def parse_segment_key(key: str) -> tuple[str, int, str] | None:
    """``(tenant, level, segment_id)`` of a segment key, or ``None`` if it is not one."""
    parts = key.split("/")
    if len(parts) != 8 or parts[0] != "segments" or not parts[2].startswith("L") or not parts[7].endswith(".fps"):
        return None
    try:
        level = int(parts[2][1:])
    except ValueError:
        return None
    return parts[1], level, parts[7][:-4]
