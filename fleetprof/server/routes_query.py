"""Pyroscope-compatible query API: ``/pyroscope/render``, ``/pyroscope/render-diff``,
``/pyroscope/label-names``, ``/pyroscope/label-values``.

``render`` answers Pyroscope's flamebearer document (``version``, ``flamebearer``,
``metadata``, ``timeline`` = ``{startTime (s), samples, durationDelta (s)}``); label
routes answer a JSON array of strings, as Pyroscope's ``/pyroscope/label-*`` do.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Request

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

router = APIRouter()


def dense_timeline(start_ms: int, end_ms: int, step_ms: int, times: list[int], values: list[int]) -> dict[str, Any]:
    """Pyroscope's timeline: one value per step from ``startTime`` (aligned down to the step)."""
    t0 = start_ms - start_ms % step_ms
    n = max(1, -(-(end_ms - t0) // step_ms))
    out = np.zeros(n, dtype=np.int64)
    if times:
        idx = (np.asarray(times, dtype=np.int64) - t0) // step_ms
        ok = (idx >= 0) & (idx < n)
        np.add.at(out, idx[ok], np.asarray(values, dtype=np.int64)[ok])
    return {"startTime": t0 // 1000, "samples": out.tolist(), "durationDelta": step_ms // 1000}


def _observe(request: Request, route: str, t0: float) -> None:
    get_state(request).metrics.query_latency.labels(route).observe(time.perf_counter() - t0)


@router.get("/pyroscope/render")
async def render(request: Request) -> dict[str, Any]:
    from fleetprof.render.flamebearer import to_flamebearer

    t0 = time.perf_counter()
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    fmt = q.get("format") or "json"
    if fmt != "json":
        raise ApiError(400, f"unsupported format {fmt!r}: /pyroscope/render answers format=json (use /api/v1/export for others)")
    sel = parse_selection(q, st)
    max_nodes = int_param(q, "maxNodes", 8192, hi=1_000_000)
    profile = await merged(st, tenant, sel)
    doc = await to_thread.run_sync(lambda: to_flamebearer(profile, 0, max_nodes=max_nodes, name=sel.profile_type))
    step = step_for(sel.start_ms, sel.end_ms)
    times, values = await timeline(st, tenant, sel, step)
    doc["timeline"] = dense_timeline(sel.start_ms, sel.end_ms, step, times, values)
    doc.setdefault("groups", None)
    doc.setdefault("heatmap", None)
    _observe(request, "render", t0)
    return doc


@router.get("/pyroscope/render-diff")
async def render_diff(request: Request) -> dict[str, Any]:
    from fleetprof.render.flamebearer import diff_flamebearer

    t0 = time.perf_counter()
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    left = parse_selection(q, st, "leftQuery", "leftFrom", "leftUntil")
    right = parse_selection(q, st, "rightQuery", "rightFrom", "rightUntil")
    if left.profile_type != right.profile_type:
        raise ApiError(400, "leftQuery and rightQuery must use the same profile type")
    max_nodes = int_param(q, "maxNodes", 8192, hi=1_000_000)
    base = await merged(st, tenant, left)
    cand = await merged(st, tenant, right)
    doc = await to_thread.run_sync(lambda: diff_flamebearer(base, cand, 0, max_nodes=max_nodes, name=left.profile_type))
    _observe(request, "render_diff", t0)
    return doc


@router.get("/pyroscope/label-names")
async def label_names(request: Request) -> list[str]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    start, end = time_range(q, st)
    names = await query_call("label_names", st, tenant, start, end, parse_matchers(q))
    return sorted(names)


@router.get("/pyroscope/label-values")
async def label_values(request: Request) -> list[str]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    q = request.query_params
    label = q.get("label") or q.get("name")
    if not label:
        raise ApiError(400, "missing required parameter 'label'")
    start, end = time_range(q, st)
    values = await query_call("label_values", st, tenant, label, start, end, parse_matchers(q))
    return sorted(values)
