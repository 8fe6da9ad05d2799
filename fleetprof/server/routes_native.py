"""Native query API under ``/api/v1/``.

* ``profile-types``, ``services``, ``labels``, ``labels/{name}/values`` — JSON lists
* ``timeline?query=&from=&until=&step=`` — ``{"times_ms": [...], "values": [...], "step_ms"}``
* ``flamegraph?query=&maxNodes=`` — tree JSON (:func:`fleetprof.render.tree_json.to_tree`)
* ``top?query=&limit=&by=function|frame|line|file&sort=self|total`` — top functions
* ``diff?leftQuery=&rightQuery=&format=json|svg`` — diff flamebearer or SVG
* ``export?query=&format=pprof|folded|speedscope|svg|html``
"""

from __future__ import annotations

import math
import time
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response

from fleetprof.server.errors import ApiError
from fleetprof.server.queries import call as query_call
from fleetprof.server.queries import (
    int_param,
    merged,
    parse_matchers,
    parse_selection,
    step_for,
    time_range,
    timeline,
)
from fleetprof.server.state import get_state

router = APIRouter(prefix="/api/v1")

EXPORTS = {
    "pprof": ("application/octet-stream", "pb.gz"),
    "folded": ("text/plain; charset=utf-8", "folded"),
    "speedscope": ("application/json", "speedscope.json"),
    "svg": ("image/svg+xml", "svg"),
    "html": ("text/html; charset=utf-8", "html"),
}


def _observe(request: Request, route: str, t0: float) -> None:
    get_state(request).metrics.query_latency.labels(route).observe(time.perf_counter() - t0)


@router.get("/profile-types")
async def profile_types(request: Request) -> list[str]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    start, end = time_range(request.query_params, st)
    return sorted(await query_call("profile_types", st, tenant, start, end))


@router.get("/services")
async def services(request: Request) -> list[str]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    start, end = time_range(request.query_params, st)
    return sorted(await query_call("services", st, tenant, start, end))


@router.get("/labels")
async def labels(request: Request) -> list[str]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    start, end = time_range(q, st)
    return sorted(await query_call("label_names", st, tenant, start, end, parse_matchers(q)))


@router.get("/labels/{name}/values")
async def label_values(request: Request, name: str) -> list[str]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    start, end = time_range(q, st)
    return sorted(await query_call("label_values", st, tenant, name, start, end, parse_matchers(q)))


@router.get("/timeline")
async def timeline_route(request: Request) -> dict[str, Any]:
    t0 = time.perf_counter()
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    sel = parse_selection(q, st)
    step_s = int_param(q, "step", None, hi=86_400 * 365)
    step = step_for(sel.start_ms, sel.end_ms, float(step_s) if step_s else None)
    times, values = await timeline(st, tenant, sel, step)
    _observe(request, "timeline", t0)
    return {"profile_type": sel.profile_type, "step_ms": step, "times_ms": times, "values": values}


@router.get("/flamegraph")
async def flamegraph(request: Request) -> dict[str, Any]:
    from fleetprof.render.tree_json import to_tree

    t0 = time.perf_counter()
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    sel = parse_selection(q, st)
    max_nodes = int_param(q, "maxNodes", 8192, hi=1_000_000)
    profile = await merged(st, tenant, sel)
    doc = await to_thread.run_sync(lambda: to_tree(profile, 0, max_nodes=max_nodes))
    _observe(request, "flamegraph", t0)
    return doc


@router.get("/top")
async def top_functions(request: Request) -> dict[str, Any]:
    from fleetprof.model.top import top

    t0 = time.perf_counter()
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    sel = parse_selection(q, st)
    limit = int_param(q, "limit", 20, hi=100_000)
    by = q.get("by") or "function"
    if by not in ("function", "frame", "line", "file"):
        raise ApiError(400, "'by' must be function, frame, line or file")
    order = q.get("sort") or "self"
    if order not in ("self", "total"):
        raise ApiError(400, "'sort' must be self or total")
    profile = await merged(st, tenant, sel)

    def compute() -> Any:
        if order == "self":
            return top(profile, 0, n=limit, by=by)
        return top(profile, 0, by=by).sort(["total", "self"], descending=True).head(limit)

    table = await to_thread.run_sync(compute)
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in table.to_dicts()]
    _observe(request, "top", t0)
    st_type = profile.sample_types[0]
    return {"profile_type": sel.profile_type, "unit": st_type.unit, "total": profile.totals()[0], "functions": rows}


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@router.get("/diff")
async def diff(request: Request) -> Any:
    t0 = time.perf_counter()
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    left = parse_selection(q, st, "leftQuery", "leftFrom", "leftUntil")
    right = parse_selection(q, st, "rightQuery", "rightFrom", "rightUntil")
    if left.profile_type != right.profile_type:
        raise ApiError(400, "leftQuery and rightQuery must use the same profile type")
    fmt = q.get("format") or "json"
    max_nodes = int_param(q, "maxNodes", 8192, hi=1_000_000)
    base = await merged(st, tenant, left)
    cand = await merged(st, tenant, right)
    if fmt == "json":
        from fleetprof.render.flamebearer import diff_flamebearer

        doc = await to_thread.run_sync(lambda: diff_flamebearer(base, cand, 0, max_nodes=max_nodes, name=left.profile_type))
        _observe(request, "diff", t0)
        return doc
    if fmt == "svg":
        from fleetprof.render.svg import render_diff_svg

        svg = await to_thread.run_sync(lambda: render_diff_svg(base, cand, 0, title=f"diff {left.profile_type}"))
        _observe(request, "diff", t0)
        return Response(svg, media_type="image/svg+xml")
    raise ApiError(400, f"unsupported diff format {fmt!r}: use json or svg")


@router.get("/export")
async def export(request: Request) -> Response:
    t0 = time.perf_counter()
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    fmt = q.get("format") or "pprof"
    if fmt not in EXPORTS:
        raise ApiError(400, f"unsupported export format {fmt!r}: use one of {sorted(EXPORTS)}")
    sel = parse_selection(q, st)
    max_nodes = int_param(q, "maxNodes", None, hi=1_000_000)
    profile = await merged(st, tenant, sel)
    title = q.get("title") or sel.profile_type
    data = await to_thread.run_sync(lambda: _export(profile, fmt, title, max_nodes))
    media, ext = EXPORTS[fmt]
    _observe(request, "export", t0)
    headers = {"Content-Disposition": f'inline; filename="profile.{ext}"'}
    return Response(data, media_type=media, headers=headers)


def _export(profile: Any, fmt: str, title: str, max_nodes: int | None) -> bytes:
    if fmt == "svg":
        from fleetprof.render.svg import render_svg

        return render_svg(profile, 0, title=title).encode()
    if fmt == "html":
        from fleetprof.render.html import render_html

        return render_html(profile, 0, title=title).encode()
    from fleetprof.formats.detect import encode

    return encode(profile, fmt, type_index=0, max_nodes=max_nodes)
