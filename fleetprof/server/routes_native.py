"""Native query API under ``/api/v1/``.

* ``profile-types``, ``services``, ``labels``, ``labels/{name}/values`` — JSON lists
* ``timeline?query=&from=&until=&step=`` — ``{"times_ms": [...], "values": [...], "step_ms"}``
* ``flamegraph?query=&maxNodes=`` — tree JSON (:func:`fleetprof.render.tree_json.to_tree`)
* ``top?query=&limit=&by=function|frame|line|file&sort=self|total`` — top functions
* ``diff?leftQuery=&rightQuery=&format=json|svg`` — diff flamebearer or SVG
* ``export?query=&format=pprof|folded|speedscope|svg|html&icicle=`` — SVG/HTML titled with
  the service, selector and time range (:func:`fleetprof.render.titles.selection_title`),
  ``title=`` overrides; both draw roots at the bottom (flame graph), ``icicle=true`` at the top
"""

from __future__ import annotations

import math
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response

from fleetprof.render.titles import diff_title, selection_title
from fleetprof.server.errors import ApiError
from fleetprof.server.queries import (
    diff_flamebearer_doc,
    diff_selections,
    int_param,
    merged,
    merged_diff,
    parse_selection,
    read_scope,
    sorted_list,
    step_for,
    step_param,
    timeline,
)

router = APIRouter(prefix="/api/v1")

EXPORTS = {
    "pprof": ("application/octet-stream", "pb.gz"),
    "folded": ("text/plain; charset=utf-8", "folded"),
    "speedscope": ("application/json", "speedscope.json"),
    "svg": ("image/svg+xml", "svg"),
    "html": ("text/html; charset=utf-8", "html"),
}


@router.get("/profile-types")
async def profile_types(request: Request) -> list[str]:
    return await sorted_list(read_scope(request), "profile_types")


@router.get("/services")
async def services(request: Request) -> list[str]:
    return await sorted_list(read_scope(request), "services")


@router.get("/labels")
async def labels(request: Request) -> list[str]:
    return await sorted_list(read_scope(request), "label_names", matchers=True)


@router.get("/labels/{name}/values")
async def label_values(request: Request, name: str) -> list[str]:
    return await sorted_list(read_scope(request), "label_values", name, matchers=True)


@router.get("/timeline")
async def timeline_route(request: Request) -> dict[str, Any]:
    r = read_scope(request)
    st, tenant, q = r.st, r.tenant, r.q
    sel = parse_selection(q, st)
    step = step_for(sel.start_ms, sel.end_ms, step_param(q))
    times, values = await timeline(st, tenant, sel, step)
    r.observe("timeline")
    return {"profile_type": sel.profile_type, "step_ms": step, "times_ms": times, "values": values}


@router.get("/flamegraph")
async def flamegraph(request: Request) -> dict[str, Any]:
    from fleetprof.render.tree_json import to_tree

    r = read_scope(request)
    sel = parse_selection(r.q, r.st)
    max_nodes = int_param(r.q, "maxNodes", 8192, hi=1_000_000)
    profile = await merged(r.st, r.tenant, sel)
    doc = await to_thread.run_sync(lambda: to_tree(profile, 0, max_nodes=max_nodes))
    r.observe("flamegraph")
    return doc


@router.get("/top")
async def top_functions(request: Request) -> dict[str, Any]:
    from fleetprof.model.top import top

    r = read_scope(request)
    st, tenant, q = r.st, r.tenant, r.q
    sel = parse_selection(q, st)
    limit = int_param(q, "limit", 20, hi=100_000)
    by = q.get("by") or "function"
    if by not in ("function", "frame", "line", "file"):
        raise ApiError(400, "'by' must be function, frame, line or file")
    order = q.get("sort") or "self"
    if order not in ("self", "total"):
        raise ApiError(400, "'sort' must be self or total")
    profile = await merged(st, tenant, sel)
    if by == "line" and _lacks_lines(profile):
        raise ApiError(400, NO_LINES_ADVICE)

    def compute() -> Any:
        if order == "self":
            return top(profile, 0, n=limit, by=by)
        return top(profile, 0, by=by).sort(["total", "self"], descending=True).head(limit)

    try:
        table = await to_thread.run_sync(compute)
    except ValueError as e:  # by=line over profiles stored without line numbers
        raise ApiError(400, f"cannot rank by {by}: {e}") from None
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in table.to_dicts()]
    r.observe("top")
    st_type = profile.sample_types[0]
    return {"profile_type": sel.profile_type, "unit": st_type.unit, "total": profile.totals()[0], "functions": rows}


NO_LINES_ADVICE = (
    "cannot rank by line: the stored profiles carry no line numbers (the server keeps function and file). "
    "Use by=frame (function and file) or by=function; for per-line figures run "
    "'fleetprof top --by line <file>' on a pprof or py-spy profile recorded with line numbers."
)


def _lacks_lines(profile: Any) -> bool:
    """Whether ``profile`` has frames but none with a line number."""
    fr = profile.frames
    return bool(fr.height) and not bool((fr["line"] != 0).any())


def bool_param(q: Any, key: str) -> bool:
    """``true``/``1`` or ``false``/``0``/absent; 400 otherwise."""
    raw = (q.get(key) or "false").lower()
    if raw not in ("true", "1", "false", "0"):
        raise ApiError(400, f"'{key}' must be true or false")
    return raw in ("true", "1")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@router.get("/diff")
async def diff(request: Request) -> Any:
    r = read_scope(request)
    left, base, cand, max_nodes = await merged_diff(r)
    fmt = r.q.get("format") or "json"
    if fmt == "json":
        doc = await diff_flamebearer_doc(left, base, cand, max_nodes)
        r.observe("diff")
        return doc
    if fmt == "svg":
        from fleetprof.render.svg import render_diff_svg

        title = r.q.get("title") or diff_title(left, diff_selections(r.q, r.st)[1])
        svg = await to_thread.run_sync(lambda: render_diff_svg(base, cand, 0, title=title))
        r.observe("diff")
        return Response(svg, media_type="image/svg+xml")
    raise ApiError(400, f"unsupported diff format {fmt!r}: use json or svg")


@router.get("/export")
async def export(request: Request) -> Response:
    r = read_scope(request)
    st, tenant, q = r.st, r.tenant, r.q
    fmt = q.get("format") or "pprof"
    if fmt not in EXPORTS:
        raise ApiError(400, f"unsupported export format {fmt!r}: use one of {sorted(EXPORTS)}")
    sel = parse_selection(q, st)
    max_nodes = int_param(q, "maxNodes", None, hi=1_000_000)
    icicle = bool_param(q, "icicle")
    profile = await merged(st, tenant, sel)
    title = q.get("title") or selection_title(sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms)
    data = await to_thread.run_sync(lambda: _export(profile, fmt, title, max_nodes, icicle))
    media, ext = EXPORTS[fmt]
    r.observe("export")
    headers = {"Content-Disposition": f'inline; filename="profile.{ext}"'}
    return Response(data, media_type=media, headers=headers)


def _export(profile: Any, fmt: str, title: str, max_nodes: int | None, icicle: bool = False) -> bytes:
    if fmt == "svg":
        from fleetprof.render.svg import render_svg

        return render_svg(profile, 0, title=title, icicle=icicle).encode()
    if fmt == "html":
        from fleetprof.render.html import render_html

        return render_html(profile, 0, title=title, icicle=icicle).encode()
    from fleetprof.formats.detect import encode

    return encode(profile, fmt, type_index=0, max_nodes=max_nodes)
