"""Pyroscope time parameters: epoch seconds/ms/µs/ns chosen by digit count, or ``now``,
``now-1h``, ``now-30m``, ``now-15s``, ``now-7d`` (relative to the given ``now_ms``)."""

from __future__ import annotations

import re
import time

_REL = re.compile(r"^now(?:\s*-\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w))?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class TimeParseError(ValueError):
    pass


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_time_ms(text: str | None, *, default_ms: int, now: int | None = None) -> int:
    """Milliseconds since the epoch for ``text`` (``default_ms`` when empty).

    Digit counts: ≤ 10 → seconds, 11–13 → milliseconds, 14–16 → microseconds, more →
    nanoseconds (Pyroscope's rule)."""
    if text is None or text.strip() == "":
        return default_ms
    t = text.strip()
    m = _REL.match(t)
    if m:
        base = now if now is not None else now_ms()
        if m.group(1) is None:
            return base
        return base - int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    if not (t.isascii() and t.isdigit()):
        raise TimeParseError(f"bad time {text!r}: use epoch seconds/ms/µs/ns or now-<n><s|m|h|d>")
    n = len(t.lstrip("0")) or 1
    v = int(t)
    if n <= 10:
        return v * 1000
    if n <= 13:
        return v
    if n <= 16:
        return v // 1000
    return v // 1_000_000
