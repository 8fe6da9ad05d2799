"""Human titles for flame graph exports: what (service, kind of profile), which series
(the selector's other matchers) and when (the time range, UTC).

:func:`selection_title` is what the server's SVG/HTML exports and diffs are titled with,
instead of the raw profile type id: ``json-api · CPU time · env="prod" · 2026-12-04
22:00 → 23:00 UTC``. Titles are plain text; renderers escape them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

KINDS = {
    ("cpu", "nanoseconds"): "CPU time",
    ("wall", "nanoseconds"): "wall time",
    ("samples", "count"): "samples",
    ("alloc_space", "bytes"): "allocated bytes",
    ("alloc_objects", "count"): "allocated objects",
    ("inuse_space", "bytes"): "in-use memory",
    ("inuse_objects", "count"): "in-use objects",
    ("delay", "nanoseconds"): "lock wait time",
    ("contentions", "count"): "lock contentions",
    ("goroutine", "count"): "goroutines",
    ("goroutines", "count"): "goroutines",
    ("exception", "count"): "exceptions",
}
"""``(sample type, unit)`` → what a reader calls it."""


def profile_kind(profile_type: str) -> str:
    """A reader's name for a Pyroscope profile type id (``process_cpu:cpu:nanoseconds:…`` →
    ``CPU time``); unknown types read ``<name> <sample type> (<unit>)``."""
    parts = profile_type.split(":")
    if len(parts) < 3:
        return profile_type
    name, sample_type, unit = parts[0], parts[1], parts[2]
    kind = KINDS.get((sample_type, unit))
    if kind is None:
        return f"{name} {sample_type} ({unit})"
    if name in ("mutex", "block") and sample_type in ("delay", "contentions"):
        return f"{name} {kind.replace('lock ', '')}"
    return kind


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def time_range_text(start_ms: int, end_ms: int) -> str:
    """``2026-12-04 22:00 → 23:00 UTC`` (the date repeated only when it changes; seconds
    shown only when the range is not on whole minutes)."""
    a, b = _utc(start_ms), _utc(end_ms)
    fmt = "%H:%M:%S" if (start_ms % 60_000 or end_ms % 60_000) else "%H:%M"
    right = b.strftime(fmt) if a.date() == b.date() else b.strftime(f"%Y-%m-%d {fmt}")
    return f"{a.strftime(f'%Y-%m-%d {fmt}')} → {right} UTC"


def _matcher_text(m: Any) -> str:
    value = str(m.value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{m.name}{m.op}"{value}"'


def selection_title(profile_type: str, matchers: Sequence[Any], start_ms: int, end_ms: int, *, prefix: str = "") -> str:
    """``<service> · <kind> · <other matchers> · <range>`` for a selection (services from
    ``service_name="…"`` matchers; every other matcher as written; ``all services`` when the
    selector names none)."""
    services = [str(m.value) for m in matchers if m.name == "service_name" and m.op == "="]
    others = [_matcher_text(m) for m in matchers if not (m.name == "service_name" and m.op == "=")]
    parts = [", ".join(services) if services else "all services", profile_kind(profile_type)]
    if others:
        parts.append(", ".join(others))
    parts.append(time_range_text(start_ms, end_ms))
    return (prefix + " " if prefix else "") + " · ".join(parts)


def diff_title(left: Any, right: Any) -> str:
    """Title of a diff of two selections (``Selection``-like: profile_type, matchers,
    start_ms, end_ms): ``<left> vs <right>``, the kind said once."""
    a = selection_title(left.profile_type, left.matchers, left.start_ms, left.end_ms)
    b = selection_title(right.profile_type, right.matchers, right.start_ms, right.end_ms)
    kind = f" · {profile_kind(left.profile_type)}"
    return f"diff: {a} vs {b.replace(kind, '', 1)}"


def sample_kind(sample_type: str, unit: str) -> str:
    """A reader's name for a sample type (``cpu``, ``nanoseconds`` → ``CPU time``)."""
    return KINDS.get((sample_type, unit), f"{sample_type} ({unit})")


def profile_title(source: str, profile: Any, type_index: int) -> str:
    """``<source> · <kind>`` plus the profile's time range when it records one
    (``time_nanos``/``duration_nanos``) — the CLI's default flame graph title."""
    st = profile.sample_types[type_index]
    parts = [source, sample_kind(st.type, st.unit)]
    start_ns, dur_ns = int(getattr(profile, "time_nanos", 0) or 0), int(getattr(profile, "duration_nanos", 0) or 0)
    if start_ns > 0 and dur_ns > 0:
        parts.append(time_range_text(start_ns // 1_000_000, (start_ns + dur_ns) // 1_000_000))
    return " · ".join(parts)
