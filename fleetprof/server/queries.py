"""Query plumbing shared by the Pyroscope and native routes: parameter parsing and thin
adapters over :mod:`fleetprof.query.select` (run in worker threads)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from fastapi import Request

from fleetprof import telemetry
from fleetprof.distributor.timeparse import TimeParseError, now_ms, parse_time_ms
from fleetprof.model.profile import Profile, ValueType
from fleetprof.server.errors import ApiError
from fleetprof.server.state import ServerState, get_state

MAX_QUERY_LEN = 8192
MAX_TIMELINE_POINTS = 2000
MAX_QUERY_TIME_MS = (2**63 - 1) // 1_000_000
"""Latest time a read route accepts: its nanoseconds still fit in int64 (year 2262)."""


@dataclass(frozen=True)
class Selection:
    profile_type: str
    matchers: list[Any]
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class ReadScope:
    """What every read route starts from: state, authenticated tenant, query parameters and
    the start time that :meth:`observe` measures the route's latency from."""

    st: ServerState
    tenant: str
    q: Mapping[str, str]
    t0: float

    def observe(self, route: str) -> None:
        self.st.metrics.query_latency.labels(route).observe(time.perf_counter() - self.t0)


def read_scope(request: Request) -> ReadScope:
    """Start a read route: the clock, the state and the tenant (``read`` scope)."""
    t0 = time.perf_counter()
    st = get_state(request)
    return ReadScope(st, st.tenant(request, "read"), request.query_params, t0)


def _time_param(q: Mapping[str, str], key: str, default_ms: int, now: int) -> int:
    """One time parameter in ms; 400 unless it lies in ``[0, MAX_QUERY_TIME_MS]``."""
    try:
        t = parse_time_ms(q.get(key), default_ms=default_ms, now=now)
    except TimeParseError as e:
        raise ApiError(400, str(e)) from None
    except OverflowError:  # now-<n><unit> with an n too large for a float
        t = -1
    if not 0 <= t <= MAX_QUERY_TIME_MS:
        raise ApiError(400, f"'{key}' out of range: times must lie between the epoch and {MAX_QUERY_TIME_MS} ms")
    return t


def time_range(q: Mapping[str, str], st: ServerState, from_key: str = "from", until_key: str = "until") -> tuple[int, int]:
    """``(start, end)`` in ms of a read request; 400 unless ``0 <= start <= end <=``
    :data:`MAX_QUERY_TIME_MS`."""
    now = now_ms()
    start = _time_param(q, from_key, now - int(st.settings.default_query_range_s * 1000), now)
    end = _time_param(q, until_key, now, now)
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


def diff_selections(q: Mapping[str, str], st: ServerState) -> tuple[Selection, Selection]:
    """``leftQuery``/``rightQuery`` selections (each with its own time range) of one profile type."""
    left = parse_selection(q, st, "leftQuery", "leftFrom", "leftUntil")
    right = parse_selection(q, st, "rightQuery", "rightFrom", "rightUntil")
    if left.profile_type != right.profile_type:
        raise ApiError(400, "leftQuery and rightQuery must use the same profile type")
    return left, right


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


MAX_STEP_S = 86_400 * 365


def step_param(q: Mapping[str, str], key: str = "step") -> float | None:
    """A timeline step in seconds: plain seconds (``60``) or a duration (``30s``, ``15m``,
    ``1h``, ``1d``) as the server's settings accept; ``None`` when absent; 400 unless it
    lies in ``[1 s, 365 d]``."""
    from fleetprof.server.settings import parse_duration_s

    raw = q.get(key)
    if raw is None or raw == "":
        return None
    try:
        step = parse_duration_s(raw)
    except ValueError:
        raise ApiError(400, f"'{key}' must be seconds or a duration such as 30s, 15m, 1h or 1d (got {raw[:40]!r})") from None
    if not 1 <= step <= MAX_STEP_S:
        raise ApiError(400, f"'{key}' must be between 1s and 365d")
    return step


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

    with telemetry.child("query.select_merge", _query_attrs(tenant, sel)):
        p = await to_thread.run_sync(lambda: select_merge(st.store, st.index, tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms))
    return _single_type(p, sel.profile_type)


async def merged_diff(r: ReadScope) -> tuple[Selection, Profile, Profile, int]:
    """The left selection, the merged left (base) and right (candidate) profiles of a diff
    request and its ``maxNodes``."""
    left, right = diff_selections(r.q, r.st)
    max_nodes = int_param(r.q, "maxNodes", 8192, hi=1_000_000)
    base = await merged(r.st, r.tenant, left)
    cand = await merged(r.st, r.tenant, right)
    return left, base, cand, max_nodes


async def diff_flamebearer_doc(left: Selection, base: Profile, cand: Profile, max_nodes: int) -> dict[str, Any]:
    """Diff flamebearer of ``base`` → ``cand`` (in a worker thread)."""
    from fleetprof.render.flamebearer import diff_flamebearer

    return await to_thread.run_sync(lambda: diff_flamebearer(base, cand, 0, max_nodes=max_nodes, name=left.profile_type))


def step_for(start_ms: int, end_ms: int, requested_s: float | None = None) -> int:
    """Timeline step: requested, else ≥ 10 s and at most :data:`MAX_TIMELINE_POINTS` points."""
    span = max(end_ms - start_ms, 1)
    step = int(requested_s * 1000) if requested_s else 10_000
    min_step = -(-span // MAX_TIMELINE_POINTS)
    step = max(step, min_step, 1000)
    return -(-step // 1000) * 1000


async def timeline(st: ServerState, tenant: str, sel: Selection, step_ms: int) -> tuple[list[int], list[int]]:
    from fleetprof.query.select import select_timeline

    with telemetry.child("query.select_timeline", _query_attrs(tenant, sel) | {"fleetprof.step_ms": step_ms}):
        times, values = await to_thread.run_sync(
            lambda: select_timeline(st.store, st.index, tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms, step_ms)
        )
    return [int(t) for t in times], [int(v) for v in values]


async def call(fn_name: str, st: ServerState, tenant: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``fleetprof.query.select.<fn_name>(store, index, tenant, *args)`` in a thread."""
    from fleetprof.query import select

    fn = getattr(select, fn_name)
    with telemetry.child(f"query.{fn_name}", {"fleetprof.tenant": tenant}):
        return await to_thread.run_sync(lambda: fn(st.store, st.index, tenant, *args, **kwargs))


def _query_attrs(tenant: str, sel: Selection) -> dict[str, Any]:
    """Span attributes of a query over ``sel``."""
    return {"fleetprof.tenant": tenant, "fleetprof.profile_type": sel.profile_type,
            "fleetprof.query.range_ms": sel.end_ms - sel.start_ms}


async def sorted_list(scope: ReadScope, fn_name: str, *lead: Any, matchers: bool = False) -> list[str]:
    """Sorted answer of :func:`call` ``(fn_name, *lead, start, end[, matchers])`` over the
    ``from``/``until`` range (and the optional ``query`` selector) of the request."""
    start, end = time_range(scope.q, scope.st)
    extra = (parse_matchers(scope.q),) if matchers else ()
    return sorted(await call(fn_name, scope.st, scope.tenant, *lead, start, end, *extra))
