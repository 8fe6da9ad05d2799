"""Native span-profile routes under ``/api/v1/`` (spans ↔ profiles).

Both routes take ``query=<profileTypeID>{selector}`` and ``from``/``until`` like every
native query route, and read the span id kept per sample (:mod:`fleetprof.model.spans`).

``GET /api/v1/span-profile`` — the flame graph of some spans' samples.

* ``spanId=a,b`` — span ids (16 hex digits each, comma-separated; up to 10,000); or a span
  search: ``spanName=`` (exact span name, as the span processor tagged the samples),
  ``service=`` (the profiled service; same as ``service_name="..."`` in the selector).
  A bad span id is 400; no ``spanId`` and no search parameter is 400. An empty result is
  an empty flame graph (``numTicks: 0``), not an error.
* ``format=json`` (default): Pyroscope's flamebearer document, as ``/pyroscope/render``
  answers it (``version``, ``flamebearer {names, levels, numTicks, maxSelf}``,
  ``metadata {format, spyName, sampleRate, units, name}``, ``timeline: null``), plus
  ``spans``: the number of span ids asked for (or found by the search).
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
         "service": "api", "start_ms": 1700000000000, "duration_ms": 1520.5},
        ...]}

  ``exemplars`` are ordered by ``value`` (the node's total in that span, in ``unit``),
  largest first; ``total_spans`` counts every span with time in the node (before
  ``limit``). ``span_name`` and ``trace_id`` come from the samples' tags (empty when the
  agent sent none); ``service``, ``start_ms`` and ``duration_ms`` come from the trace
  store (``fleetprof.traces.query.spans_by_id``) and are ``null`` when it does not hold
  the span (or there is no trace store).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Request, Response

from fleetprof.model.spans import SpanIdError, parse_span_ids
from fleetprof.query.selector import Matcher
from fleetprof.server.errors import ApiError
from fleetprof.server.queries import Selection, int_param, parse_selection, read_scope

router = APIRouter(prefix="/api/v1")

MAX_SPANS = 10_000
MAX_NODE_PARAM = 65_536
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
    texts = [t for t in raw.split(",") if t.strip()]
    if len(texts) > MAX_SPANS:
        raise ApiError(400, f"at most {MAX_SPANS} span ids per request")
    try:
        return parse_span_ids(texts)
    except SpanIdError as e:
        raise ApiError(400, str(e)) from None


def _with_service(sel: Selection, service: str | None) -> Selection:
    if not service:
        return sel
    return Selection(sel.profile_type, [*sel.matchers, Matcher("service_name", "=", service)], sel.start_ms, sel.end_ms)


async def _selected_spans(r: Any, sel: Selection) -> np.ndarray:
    """The span ids of the request: ``spanId``, else those a span search finds."""
    ids = span_ids_param(r.q)
    if ids is not None:
        return ids
    name = r.q.get("spanName")
    if name is None and not r.q.get("service"):
        raise ApiError(400, "give spanId=<16 hex digits>[,...] or a span search (spanName=, service=)")
    from fleetprof.query.spans import span_samples

    def search() -> np.ndarray:
        got = span_samples(r.st.store, r.st.index, r.tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms)
        table = got.spans
        if name is not None:
            table = table.filter(table["span_name"] == name)
        return np.intersect1d(table["span_id"].to_numpy().astype(np.uint64), got.span)

    return await to_thread.run_sync(search)


@router.get("/span-profile")
async def span_profile(request: Request) -> Any:
    from fleetprof.query.spans import select_span_merge

    r = read_scope(request)
    fmt = r.q.get("format") or "json"
    if fmt not in FORMATS:
        raise ApiError(400, f"unsupported format {fmt!r}: use one of {sorted(FORMATS)}")
    sel = _with_service(parse_selection(r.q, r.st), r.q.get("service"))
    max_nodes = int_param(r.q, "maxNodes", 8192, hi=1_000_000)
    ids = await _selected_spans(r, sel)
    profile = await to_thread.run_sync(lambda: select_span_merge(
        r.st.store, r.st.index, r.tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms, ids))
    title = f"{sel.profile_type} · {len(ids)} span{'s' if len(ids) != 1 else ''}"
    data = await to_thread.run_sync(lambda: _render(profile, fmt, sel.profile_type, title, max_nodes))
    r.observe("span-profile")
    if fmt == "json":
        return {**data, "spans": len(ids)}
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
    details = await to_thread.run_sync(lambda: _trace_details(r.st, r.tenant, [e.span_id for e in found]))
    rows = []
    for e in found:
        d = details.get(e.span_id, {})
        rows.append({
            "span_id": e.span_id, "trace_id": e.trace_id or d.get("trace_id", ""), "span_name": e.span_name or d.get("span_name", ""),
            "value": e.value, "service": d.get("service"), "start_ms": d.get("start_ms"), "duration_ms": d.get("duration_ms"),
        })
    r.observe("exemplars")
    unit = sel.profile_type.split(":")[2] if sel.profile_type.count(":") >= 2 else ""
    return {"profile_type": sel.profile_type, "unit": unit, "node": r.q.get("node") if path is not None else str(node_id),
            "total_spans": total, "exemplars": rows}


def _trace_details(st: Any, tenant: str, span_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Service, start and duration of spans from the trace store when it is there
    (``fleetprof.traces.query.spans_by_id``); ``{}`` otherwise."""
    if not span_ids:
        return {}
    try:
        from fleetprof.traces.query import spans_by_id  # type: ignore[import-not-found]
    except ImportError:
        return {}
    try:
        found = spans_by_id(st.store, st.index, tenant, span_ids)
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
