"""Native span-profile routes under ``/api/v1/`` (spans ↔ profiles).

Both routes take ``query=<profileTypeID>{selector}`` and ``from``/``until`` like every
native query route, and read the span id kept per sample (:mod:`fleetprof.model.spans`).

``GET /api/v1/span-profile`` — the flame graph of some spans' samples. The selector may
omit ``service_name`` (span ids are unique across services; the agent's application name
need not be the span's ``service.name``). The spans are given in exactly one way:

* ``spanId=a,b`` — span ids (16 hex digits each, comma-separated; up to 10,000).
* a trace search, as ``/api/search`` takes it: ``service`` (the span's ``service.name``),
  ``name`` (span name), ``minDuration``/``maxDuration`` (Go durations), ``status``
  (``unset``/``ok``/``error``), ``tags`` (logfmt ``key=value``, span or resource
  attributes), ``start``/``end`` (Unix seconds; default: ``from``/``until``). It selects
  the stored spans that satisfy every condition at once (not every span of their traces),
  those of the most recent traces first, at most ``limit`` (default 1000, at most 10,000).
  pyroscope-otel tags samples with the id of the *local root* span, so a search for spans
  that are not local roots finds spans without samples (``profiledSpans`` says so).
* ``spanName=`` — the spans whose samples the span processor tagged with that span name
  (the samples' own tags: no trace store needed).

Mixing the ways, or giving none, is 400; so is a bad span id, duration, status or tags.
An empty result is an empty flame graph (``numTicks: 0``), not an error.

* ``format=json`` (default): Pyroscope's flamebearer document, as ``/pyroscope/render``
  answers it (``version``, ``flamebearer {names, levels, numTicks, maxSelf}``,
  ``metadata {format, spyName, sampleRate, units, name}``, ``timeline: null``), plus
  ``spans`` (the number of span ids asked for or found), ``profiledSpans`` (how many of
  them the selected samples carry) and ``truncated`` (a search found more than ``limit``).
  ``svg`` / ``html`` / ``pprof`` / ``folded``: the same renderings as ``/api/v1/export``.
* ``maxNodes`` (default 8192).

``GET /api/v1/exemplars`` — the spans whose samples spent time in a flame-graph node.

* ``node=`` the node as the explorer's flame graph identifies it: its root-first frame
  names joined by ``;`` (``main;handle;parse``: every node at that path, also when frames
  of one name differ in file), or ``nodeId=`` its model node id (decimal, or ``0x`` hex).
* ``limit`` (default 20, at most 1000).
* Answer::

    {"profile_type": "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
     "unit": "nanoseconds", "node": "main;handle", "total_spans": 7,
     "exemplars": [
        {"span_id": "9a517183f26a089d", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
         "span_name": "GET /users", "value": 1230000000,
         "service": "api", "start_ms": 1700000000000, "duration_ms": 1520.5, "stored": true},
        ...]}

  ``exemplars`` are ordered by ``value`` (the node's total in that span, in ``unit``),
  largest first; ``total_spans`` counts every span with time in the node (before
  ``limit``). ``span_name`` and ``trace_id`` come from the samples' tags (empty when the
  agent sent none); ``service``, ``start_ms`` and ``duration_ms`` come from the trace
  store (``fleetprof.traces.query.spans_by_id``) and are ``null`` when it does not hold
  the span (or there is no trace store); ``stored`` says whether it holds the span (a
  trace link leads somewhere only then).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Request, Response

from fleetprof.querier.span_profile import MAX_SPANS, span_ids_of
from fleetprof.server.errors import ApiError
from fleetprof.server.queries import Selection, int_param, parse_selection, read_scope

router = APIRouter(prefix="/api/v1")

MAX_NODE_PARAM = 65_536
DETAILS_PAD_MS = 60_000
"""Samples are stamped with the start of their upload interval: exemplar spans are looked
up in the query's range padded by this much."""
FORMATS = {
    "json": "application/json",
    "svg": "image/svg+xml",
    "html": "text/html; charset=utf-8",
    "pprof": "application/octet-stream",
    "folded": "text/plain; charset=utf-8",
}


def span_ids_param(q: Mapping[str, str]) -> np.ndarray | None:
    """``spanId`` as sorted u64 ids (None when absent); 400 for a bad id or too many."""
    raw = q.get("spanId")
    if raw is None:
        return None
    return span_ids_of([t for t in raw.split(",") if t.strip()])


SEARCH_PARAMS = ("service", "name", "minDuration", "maxDuration", "status", "tags")
"""The trace-search parameters of ``/api/search`` the span-profile route takes."""
DEFAULT_SEARCH_SPANS = 1000
MAX_DURATION_NS = (1 << 63) - 1


def _search_query(q: Mapping[str, str], sel: Selection) -> Any:
    """The :class:`fleetprof.traces.query.SearchQuery` of the request's trace-search
    parameters (``start``/``end`` in Unix seconds, else the selection's range); 400 for a
    bad duration, status, tags or time."""
    from fleetprof.server.routes_traces import parse_logfmt
    from fleetprof.traces.query import STATUS_CODES, SearchQuery

    status = q.get("status") or None
    if status is not None and status not in STATUS_CODES:
        raise ApiError(400, "status must be unset, ok or error")
    tags = parse_logfmt(q.get("tags", ""))
    if tags.get("status", "error") not in STATUS_CODES:
        raise ApiError(400, "the status tag must be unset, ok or error")
    start = _unix_seconds_ns(q, "start", sel.start_ms * 1_000_000)
    end = _unix_seconds_ns(q, "end", sel.end_ms * 1_000_000)
    if start > end:
        raise ApiError(400, "start must not be after end")
    return SearchQuery(
        start_ns=start, end_ns=end, service=q.get("service") or None, name=q.get("name") or None, status=status, tags=tags,
        min_duration_ns=_duration_ns(q, "minDuration"), max_duration_ns=_duration_ns(q, "maxDuration"),
    )


def _duration_ns(q: Mapping[str, str], key: str) -> int | None:
    """A Go duration parameter in nanoseconds (at most the int64 maximum), ``None`` when
    absent; 400 for a bad or infinite one."""
    from fleetprof.server.routes_traces import parse_go_duration

    raw = q.get(key)
    if not raw:
        return None
    try:
        return min(parse_go_duration(raw), MAX_DURATION_NS)
    except OverflowError:
        raise ApiError(400, f"{key} {raw[:40]!r} is too long a duration") from None


def _unix_seconds_ns(q: Mapping[str, str], key: str, default_ns: int) -> int:
    raw = q.get(key)
    if not raw:
        return default_ns
    try:
        v = float(raw)
    except ValueError:
        raise ApiError(400, f"{key} must be Unix seconds, not {raw[:40]!r}") from None
    if not 0 <= v < 1e11:
        raise ApiError(400, f"{key} {raw[:40]!r} is out of range")
    return int(v * 1e9)


async def _selected_spans(r: Any, sel: Selection) -> tuple[np.ndarray, bool]:
    """``(span ids, truncated)`` of the request: ``spanId``, a trace search, or ``spanName``
    (see the module docstring)."""
    searching = [k for k in SEARCH_PARAMS if r.q.get(k)]
    name = r.q.get("spanName")
    given = [k for k, on in (("spanId", r.q.get("spanId") is not None), ("a trace search", bool(searching)),
                             ("spanName", name is not None)) if on]
    if len(given) != 1:
        what = "give one of" if not given else f"{' and '.join(given)} cannot be combined: give one of"
        raise ApiError(400, f"{what} spanId=<16 hex digits>[,...], a trace search ({', '.join(f'{k}=' for k in SEARCH_PARAMS)}) "
                            "or spanName=")
    ids = span_ids_param(r.q)
    if ids is not None:
        return ids, False
    if searching:
        from fleetprof.query.spans import search_span_ids

        q = _search_query(r.q, sel)
        limit = int_param(r.q, "limit", DEFAULT_SEARCH_SPANS, hi=MAX_SPANS) or DEFAULT_SEARCH_SPANS
        return await to_thread.run_sync(lambda: search_span_ids(r.st.store, r.st.index, r.tenant, q, limit))
    from fleetprof.query.spans import span_samples

    def by_name() -> np.ndarray:
        got = span_samples(r.st.store, r.st.index, r.tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms)
        table = got.spans.filter(got.spans["span_name"] == name)
        return np.intersect1d(table["span_id"].to_numpy().astype(np.uint64), got.span)

    return await to_thread.run_sync(by_name), False


@router.get("/span-profile")
async def span_profile(request: Request) -> Any:
    from fleetprof.query.spans import span_merge

    r = read_scope(request)
    fmt = r.q.get("format") or "json"
    if fmt not in FORMATS:
        raise ApiError(400, f"unsupported format {fmt!r}: use one of {sorted(FORMATS)}")
    sel = parse_selection(r.q, r.st)
    max_nodes = int_param(r.q, "maxNodes", 8192, hi=1_000_000)
    ids, truncated = await _selected_spans(r, sel)
    profile, profiled = await to_thread.run_sync(lambda: span_merge(
        r.st.store, r.st.index, r.tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms, ids))
    title = f"{sel.profile_type} · {len(ids)} span{'s' if len(ids) != 1 else ''}"
    data = await to_thread.run_sync(lambda: _render(profile, fmt, sel.profile_type, title, max_nodes))
    r.observe("span-profile")
    if fmt == "json":
        return {**data, "spans": len(ids), "profiledSpans": profiled, "truncated": truncated}
    return Response(data, media_type=FORMATS[fmt])


def _render(profile: Any, fmt: str, name: str, title: str, max_nodes: int | None) -> Any:
    if fmt == "json":
        from fleetprof.render.flamebearer import to_flamebearer

        return to_flamebearer(profile, 0, max_nodes=max_nodes, name=name)
    if fmt == "svg":
        from fleetprof.render.svg import render_svg

        return render_svg(profile, 0, title=title).encode()
    if fmt == "html":
        from fleetprof.render.html import render_html

        return render_html(profile, 0, title=title).encode()
    from fleetprof.formats.detect import encode

    return encode(profile, fmt, type_index=0, max_nodes=max_nodes)


def _node_param(q: Mapping[str, str]) -> tuple[int | None, list[str] | None]:
    """``(node id, None)`` or ``(None, path)`` of an exemplars request; 400 otherwise."""
    node, node_id = q.get("node"), q.get("nodeId")
    if (node is None) == (node_id is None):
        raise ApiError(400, "give exactly one of node=<frame;names;root;first> and nodeId=<node id>")
    if node_id is not None:
        try:
            v = int(node_id, 16) if node_id.lower().startswith("0x") else int(node_id)
        except ValueError:
            raise ApiError(400, f"bad nodeId {node_id[:40]!r}: use a decimal or 0x-hex node id") from None
        if not 0 <= v < 1 << 64:
            raise ApiError(400, "nodeId must fit in 64 bits")
        return v, None
    assert node is not None
    if not node or len(node) > MAX_NODE_PARAM:
        raise ApiError(400, f"node must be 1 to {MAX_NODE_PARAM} characters of ';'-joined frame names")
    return None, node.split(";")


@router.get("/exemplars")
async def exemplars(request: Request) -> dict[str, Any]:
    from fleetprof.query.spans import span_exemplars

    r = read_scope(request)
    sel = parse_selection(r.q, r.st)
    node_id, path = _node_param(r.q)
    limit = int_param(r.q, "limit", 20, hi=1000) or 20
    found, total = await to_thread.run_sync(lambda: span_exemplars(
        r.st.store, r.st.index, r.tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms,
        node_id=node_id, path=path, limit=limit))
    details = await to_thread.run_sync(lambda: _trace_details(
        r.st, r.tenant, [e.span_id for e in found], sel.start_ms - DETAILS_PAD_MS, sel.end_ms + DETAILS_PAD_MS))
    rows = []
    for e in found:
        d = details.get(e.span_id, {})
        rows.append({
            "span_id": e.span_id, "trace_id": e.trace_id or d.get("trace_id", ""), "span_name": e.span_name or d.get("span_name", ""),
            "value": e.value, "service": d.get("service"), "start_ms": d.get("start_ms"), "duration_ms": d.get("duration_ms"),
            "stored": e.span_id in details,
        })
    r.observe("exemplars")
    unit = sel.profile_type.split(":")[2] if sel.profile_type.count(":") >= 2 else ""
    return {"profile_type": sel.profile_type, "unit": unit, "node": r.q.get("node") if path is not None else str(node_id),
            "total_spans": total, "exemplars": rows}


def _trace_details(st: Any, tenant: str, span_ids: list[str], start_ms: int, end_ms: int) -> dict[str, dict[str, Any]]:
    """Service, start and duration of the spans the trace store holds among ``span_ids``
    (``fleetprof.traces.query.spans_by_id``) that overlap ``[start_ms, end_ms]``."""
    if not span_ids:
        return {}
    try:
        from fleetprof.traces.query import spans_by_id  # type: ignore[import-not-found]
    except ImportError:
        return {}
    try:
        found = spans_by_id(st.store, st.index, tenant, span_ids, max(0, start_ms) * 1_000_000, end_ms * 1_000_000)
    except TypeError:  # another signature than this adapter knows: no details rather than a 500
        return {}
    return {sid: _detail(row) for sid, row in _rows_by_id(found).items()}


def _rows_by_id(found: Any) -> dict[str, Mapping[str, Any]]:
    if isinstance(found, Mapping):
        return {str(k): v for k, v in found.items()}
    if hasattr(found, "to_dicts"):
        found = found.to_dicts()
    return {str(row.get("span_id")): row for row in found or [] if isinstance(row, Mapping)}


def _detail(row: Mapping[str, Any]) -> dict[str, Any]:
    start_ns = row.get("start_time_unix_nano") or row.get("start_ns")
    end_ns = row.get("end_time_unix_nano") or row.get("end_ns")
    start_ms = row.get("start_ms", int(start_ns) // 1_000_000 if start_ns else None)
    duration = row.get("duration_ms")
    if duration is None and row.get("duration_ns") is not None:
        duration = int(row["duration_ns"]) / 1e6
    if duration is None and start_ns and end_ns:
        duration = (int(end_ns) - int(start_ns)) / 1e6
    return {"service": row.get("service") or row.get("service_name"), "start_ms": start_ms, "duration_ms": duration,
            "trace_id": row.get("trace_id", ""), "span_name": row.get("span_name") or row.get("name", "")}
