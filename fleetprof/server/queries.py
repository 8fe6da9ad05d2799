"""Query plumbing shared by the Pyroscope and native routes: parameter parsing and thin
adapters over :mod:`fleetprof.query.select` (run in worker threads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from fleetprof.distributor.timeparse import TimeParseError, now_ms, parse_time_ms
from fleetprof.model.profile import Profile, ValueType
from fleetprof.server.errors import ApiError
from fleetprof.server.state import ServerState

MAX_QUERY_LEN = 8192
MAX_TIMELINE_POINTS = 2000


@dataclass(frozen=True)
class Selection:
    profile_type: str
    matchers: list[Any]
    start_ms: int
    end_ms: int


def time_range(q: Mapping[str, str], st: ServerState, from_key: str = "from", until_key: str = "until") -> tuple[int, int]:
    now = now_ms()
    try:
        start = parse_time_ms(q.get(from_key), default_ms=now - int(st.settings.default_query_range_s * 1000), now=now)
        end = parse_time_ms(q.get(until_key), default_ms=now, now=now)
    except TimeParseError as e:
        raise ApiError(400, str(e)) from None
    if end < start:
        raise ApiError(400, f"'{until_key}' is before '{from_key}'")
    return start, end


def parse_selection(q: Mapping[str, str], st: ServerState, key: str = "query", from_key: str = "from", until_key: str = "until") -> Selection:
    """``query=<profileTypeID>{selector}`` plus a time range; 400 for a bad selector."""
    from fleetprof.query.selector import SelectorError, parse_query

    text = q.get(key)
    if not text:
        raise ApiError(400, f"missing required parameter '{key}' (e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds{{service_name=\"app\"}})")
    if len(text) > MAX_QUERY_LEN:
        raise ApiError(400, f"'{key}' is longer than {MAX_QUERY_LEN} characters")
    try:
        ptype, matchers = parse_query(text)
    except SelectorError as e:
        raise ApiError(400, f"bad selector in '{key}': {e}") from None
    start, end = time_range(q, st, from_key, until_key)
    return Selection(ptype, list(matchers), start, end)


def parse_matchers(q: Mapping[str, str], key: str = "query") -> list[Any]:
    """Matchers of an optional ``{selector}`` (or ``type{selector}``) parameter."""
    from fleetprof.query.selector import SelectorError, parse_query
    from fleetprof.query.selector import parse_matchers as parse_selector

    text = (q.get(key) or "").strip()
    if not text:
        return []
    try:
        matchers = parse_selector(text) if text.startswith("{") else parse_query(text)[1]
    except SelectorError as e:
        raise ApiError(400, f"bad selector in '{key}': {e}") from None
    return list(matchers)


def int_param(q: Mapping[str, str], key: str, default: int | None, lo: int = 1, hi: int = 10_000_000) -> int | None:
    raw = q.get(key)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"'{key}' must be an integer") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"'{key}' must be between {lo} and {hi}")
    return v


def sample_type_of(profile_type: str) -> ValueType:
    parts = profile_type.split(":")
    if len(parts) >= 3:
        return ValueType(parts[1], parts[2])
    return ValueType("samples", "count")


def _single_type(p: Profile, profile_type: str) -> Profile:
    from fleetprof.model.merge import empty_profile, select_type

    if not p.sample_types:
        return empty_profile([sample_type_of(profile_type)])
    if len(p.sample_types) > 1:
        return select_type(p, 0)
    return p


async def merged(st: ServerState, tenant: str, sel: Selection) -> Profile:
    from fleetprof.query.select import select_merge

    p = await to_thread.run_sync(lambda: select_merge(st.store, st.index, tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms))
    return _single_type(p, sel.profile_type)


def step_for(start_ms: int, end_ms: int, requested_s: float | None = None) -> int:
    """Timeline step: requested, else ≥ 10 s and at most :data:`MAX_TIMELINE_POINTS` points."""
    span = max(end_ms - start_ms, 1)
    step = int(requested_s * 1000) if requested_s else 10_000
    min_step = -(-span // MAX_TIMELINE_POINTS)
    step = max(step, min_step, 1000)
    return -(-step // 1000) * 1000


async def timeline(st: ServerState, tenant: str, sel: Selection, step_ms: int) -> tuple[list[int], list[int]]:
    from fleetprof.query.select import select_timeline

    times, values = await to_thread.run_sync(
        lambda: select_timeline(st.store, st.index, tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms, step_ms)
    )
    return [int(t) for t in times], [int(v) for v in values]


async def call(fn_name: str, st: ServerState, tenant: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``fleetprof.query.select.<fn_name>(store, index, tenant, *args)`` in a thread."""
    from fleetprof.query import select

    fn = getattr(select, fn_name)
    return await to_thread.run_sync(lambda: fn(st.store, st.index, tenant, *args, **kwargs))
