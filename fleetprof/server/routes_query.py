"""Pyroscope-compatible query API: ``/pyroscope/render``, ``/pyroscope/render-diff``,
``/pyroscope/label-names``, ``/pyroscope/label-values``.

``render`` answers Pyroscope's flamebearer document (``version``, ``flamebearer``,
``metadata``, ``timeline`` = ``{startTime (s), samples, durationDelta (s)}``); label
routes answer a JSON array of strings, as Pyroscope's ``/pyroscope/label-*`` do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Request

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


@router.get("/pyroscope/render")
async def render(request: Request) -> dict[str, Any]:
    from fleetprof.render.flamebearer import to_flamebearer

    r = queries.read_scope(request)
    st, tenant, q = r.st, r.tenant, r.q
    fmt = q.get("format") or "json"
    if fmt != "json":
        raise ApiError(400, f"unsupported format {fmt!r}: /pyroscope/render answers format=json (use /api/v1/export for others)")
    sel = queries.parse_selection(q, st)
    max_nodes = queries.int_param(q, "maxNodes", 8192, hi=1_000_000)
    profile = await queries.merged(st, tenant, sel)
    doc = await to_thread.run_sync(lambda: to_flamebearer(profile, 0, max_nodes=max_nodes, name=sel.profile_type))
    step = queries.step_for(sel.start_ms, sel.end_ms)
    times, values = await queries.timeline(st, tenant, sel, step)
    doc["timeline"] = dense_timeline(sel.start_ms, sel.end_ms, step, times, values)
    doc.setdefault("groups", None)
    doc.setdefault("heatmap", None)
    r.observe("render")
    return doc


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
