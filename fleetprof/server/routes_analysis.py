"""Fleet-analysis results written by the Ray workers, served under ``/api/v1/analysis``.

* ``GET /api/v1/analysis`` — the tenant's complete analysis windows, newest first
  (:func:`workers.analysis_store.list_analyses`).
* ``GET /api/v1/analysis/{window}/{name}`` — one file of a window (``summary.json``,
  ``report.html``, ``*.parquet``) with its content type; 404 when absent, 400 when the
  window or name is malformed.

Reads go through the server's analysis store (``FLEETPROF_ANALYSIS``, e.g. the stack's
analysis bucket; unset: the profile store), so the same routes work on ``file://`` and
``s3://``; the tenant comes from the request like every other read route.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response

from fleetprof.server.errors import ApiError
from fleetprof.server.state import get_state
from workers.analysis_store import content_type, list_analyses, read_analysis_file

router = APIRouter(prefix="/api/v1/analysis")


@router.get("")
async def analyses(request: Request) -> list[dict[str, Any]]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    return await to_thread.run_sync(list_analyses, st.analysis_store, tenant)


@router.get("/{window}/{name}")
async def analysis_file(request: Request, window: str, name: str) -> Response:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    try:
        data = await to_thread.run_sync(read_analysis_file, st.analysis_store, tenant, window, name)
    except KeyError:
        raise ApiError(404, f"no analysis file {window}/{name}", code="not_found") from None
    except ValueError as e:
        raise ApiError(400, str(e), code="invalid_argument") from None
    return Response(content=data, media_type=content_type(name))
