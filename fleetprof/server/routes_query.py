"""Pyroscope-compatible query API: ``/pyroscope/render``, ``/pyroscope/render-diff``,
``/pyroscope/label-names``, ``/pyroscope/label-values``.

``render`` answers Pyroscope's flamebearer document (``version``, ``flamebearer``,
``metadata``, ``timeline`` = ``{startTime (s), samples, durationDelta (s)}``; with
``groupBy=<label>`` also ``groups`` = ``{value: timeline}``), or with ``format=dot`` the
Graphviz text of the merged profile (:mod:`fleetprof.render.dot`); label
routes answer a JSON array of strings, as Pyroscope's ``/pyroscope/label-*`` do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Request, Response

from fleetprof import telemetry
from fleetprof.server import queries
from fleetprof.server.errors import ApiError

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


@router.get("/pyroscope/render", response_model=None)
async def render(request: Request) -> dict[str, Any] | Response:
    from fleetprof.render.flamebearer import to_flamebearer

    r = queries.read_scope(request)
    st, tenant, q = r.st, r.tenant, r.q
    fmt = q.get("format") or "json"
    if fmt not in ("json", "dot"):
        raise ApiError(400, f"unsupported format {fmt!r}: /pyroscope/render answers format=json or dot (use /api/v1/export for others)")
    sel = queries.parse_selection(q, st)
    if fmt == "dot":
        return await _render_dot(r, sel)
    group_by = [g for g in request.query_params.getlist("groupBy") if g]
    max_nodes = queries.int_param(q, "maxNodes", 8192, hi=1_000_000)
    profile = await queries.merged(st, tenant, sel)
    with telemetry.child("render.flamebearer", {"fleetprof.max_nodes": max_nodes or 0}):
        doc = await to_thread.run_sync(lambda: to_flamebearer(profile, 0, max_nodes=max_nodes, name=sel.profile_type))
    step = queries.step_for(sel.start_ms, sel.end_ms)
    times, values = await queries.timeline(st, tenant, sel, step)
    doc["timeline"] = dense_timeline(sel.start_ms, sel.end_ms, step, times, values)
    doc["groups"] = await _groups(r, sel, step, group_by[0]) if group_by else None
    doc.setdefault("heatmap", None)
    r.observe("render")
    return doc


async def _groups(r: queries.ReadScope, sel: queries.Selection, step: int, label: str) -> dict[str, Any]:
    """Pyroscope's ``groups``: one timeline per value of ``label`` (``"*"`` for series
    without it), on the same steps as the main timeline."""
    from fleetprof.query.series import select_series

    series = await to_thread.run_sync(lambda: select_series(
        r.st.store, r.st.index, r.tenant, sel.profile_type, sel.matchers, sel.start_ms, sel.end_ms, step, [label]))
    out: dict[str, Any] = {}
    for s in series:
        key = next((v for k, v in s.labels if k == label), "*")
        out[key] = dense_timeline(sel.start_ms, sel.end_ms, step, s.times_ms.tolist(), [int(v) for v in s.values])
    return out


async def _render_dot(r: queries.ReadScope, sel: queries.Selection) -> Response:
    """Graphviz DOT of the merged profile (``maxNodes`` functions, default 100); an empty
    ``text/plain`` body when there is no data, as Pyroscope answers."""
    from fleetprof.render.dot import DEFAULT_MAX_NODES, render_dot

    max_nodes = queries.int_param(r.q, "maxNodes", DEFAULT_MAX_NODES, hi=100_000) or DEFAULT_MAX_NODES
    profile = await queries.merged(r.st, r.tenant, sel)
    text = await to_thread.run_sync(lambda: render_dot(profile, 0, max_nodes=max_nodes, title=sel.profile_type))
    r.observe("render")
    return Response(text, media_type="text/vnd.graphviz; charset=utf-8" if text else "text/plain; charset=utf-8")


@router.get("/pyroscope/render-diff")
async def render_diff(request: Request) -> dict[str, Any]:
    r = queries.read_scope(request)
    doc = await queries.diff_flamebearer_doc(*await queries.merged_diff(r))
    r.observe("render_diff")
    return doc


@router.get("/pyroscope/label-names")
async def label_names(request: Request) -> list[str]:
    return await queries.sorted_list(queries.read_scope(request), "label_names", matchers=True)


@router.get("/pyroscope/label-values")
async def label_values(request: Request) -> list[str]:
    r = queries.read_scope(request)
    label = r.q.get("label") or r.q.get("name")
    if not label:
        raise ApiError(400, "missing required parameter 'label'")
    return await queries.sorted_list(r, "label_values", label, matchers=True)
