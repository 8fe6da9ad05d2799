"""Small JSON routes the browser explorer needs beyond the native and Pyroscope ones.

* ``GET /api/v1/explorer/timelines?query=&from=&until=&groupBy=<label>&limit=&step=`` —
  one timeline per value of ``groupBy`` among the selected series (largest totals first,
  at most ``limit``; series without the label form the group ``""``):
  ``{"label", "step_ms", "truncated", "groups": [{"value", "times_ms", "values", "total"}]}``.
* ``GET /api/v1/explorer/flamebearer?query=&from=&until=&maxNodes=`` — the flamebearer
  document of ``/pyroscope/render`` without its timeline, so that the page can fetch the
  timeline (``/api/v1/timeline``) in parallel and draw the flame graph as soon as it arrives.
* ``GET /api/v1/explorer/fleet?window=`` — the newest complete fleet-analysis window (or
  the one named) as JSON: ``{"window", "windows", "summary", "tables": {name: rows}}`` with
  at most :data:`FLEET_ROWS` rows per table; ``window`` is null when there is none.
"""

from __future__ import annotations

import asyncio
import io
import math
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request

from fleetprof.render.flamebearer import to_flamebearer
from fleetprof.server.errors import ApiError
from fleetprof.server.queries import (
    call,
    int_param,
    merged,
    parse_selection,
    read_scope,
    step_for,
    step_param,
    timeline,
)
from fleetprof.server.state import get_state

router = APIRouter(prefix="/api/v1/explorer")

MAX_GROUPS = 50
FLEET_ROWS = 50
FLEET_TABLES = ("cost_services", "cost_functions", "recommendations", "regressions", "leaks", "contention")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


@router.get("/timelines")
async def grouped_timelines(request: Request) -> dict[str, Any]:
    from fleetprof.query.selector import Matcher

    r = read_scope(request)
    sel = parse_selection(r.q, r.st)
    label = r.q.get("groupBy") or ""
    if not label or len(label) > 128 or not set(label) <= _LABEL_CHARS:
        raise ApiError(400, "'groupBy' must name a label (letters, digits, '_' and '.')")
    limit = int_param(r.q, "limit", 10, hi=MAX_GROUPS) or 10
    step = step_for(sel.start_ms, sel.end_ms, step_param(r.q))
    values = await call("label_values", r.st, r.tenant, label, sel.start_ms, sel.end_ms, sel.matchers)

    async def one(value: str) -> dict[str, Any]:
        sub = type(sel)(sel.profile_type, [*sel.matchers, Matcher(label, "=", value)], sel.start_ms, sel.end_ms)
        times, vals = await timeline(r.st, r.tenant, sub, step)
        return {"value": value, "times_ms": times, "values": vals, "total": int(sum(vals))}

    groups = list(await asyncio.gather(*(one(v) for v in [*values, ""])))
    groups = sorted((g for g in groups if g["total"] > 0), key=lambda g: (-g["total"], g["value"]))
    r.observe("explorer_timelines")
    return {"label": label, "step_ms": step, "truncated": len(groups) > limit, "groups": groups[:limit]}


@router.get("/flamebearer")
async def flamebearer(request: Request) -> dict[str, Any]:
    r = read_scope(request)
    sel = parse_selection(r.q, r.st)
    max_nodes = int_param(r.q, "maxNodes", 8192, hi=1_000_000)
    profile = await merged(r.st, r.tenant, sel)
    doc = await to_thread.run_sync(lambda: to_flamebearer(profile, 0, max_nodes=max_nodes, name=sel.profile_type))
    r.observe("explorer_flamebearer")
    return doc


def _cell(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return "; ".join(str(x) for x in v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _table_rows(data: bytes) -> list[dict[str, Any]]:
    import polars as pl

    df = pl.read_parquet(io.BytesIO(data)).head(FLEET_ROWS)
    return [{k: _cell(v) for k, v in row.items()} for row in df.to_dicts()]


def _fleet(store: Any, tenant: str, window: str | None) -> dict[str, Any]:
    from workers.analysis_store import list_analyses, read_analysis_file

    windows = list_analyses(store, tenant)
    names = [w["window"] for w in windows]
    if window is not None and window not in names:
        raise ApiError(404, f"no complete analysis window {window!r}", code="not_found")
    chosen = next((w for w in windows if window in (None, w["window"])), None)
    if chosen is None:
        return {"window": None, "windows": [], "summary": {}, "tables": {}}
    tables = {}
    for name in FLEET_TABLES:
        if f"{name}.parquet" in chosen["files"]:
            tables[name] = _table_rows(read_analysis_file(store, tenant, chosen["window"], f"{name}.parquet"))
    return {"window": chosen["window"], "windows": names, "summary": chosen["summary"], "tables": tables}


@router.get("/fleet")
async def fleet(request: Request) -> dict[str, Any]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    window = request.query_params.get("window") or None
    try:
        return await to_thread.run_sync(_fleet, st.analysis_store, tenant, window)
    except ValueError as e:
        raise ApiError(400, str(e), code="invalid_argument") from None
