"""``POST /querier.v1.QuerierService/<Method>`` and ``POST /settings.v1.SettingsService/<Method>``
(Connect unary, see :mod:`fleetprof.querier.connect`; methods in
:mod:`fleetprof.querier.service`). Tenancy and auth as on every read route
(``X-Scope-OrgID``; with a token file a Bearer/Basic token, ``read`` scope, ``write`` for
``Settings/Set``). An unknown procedure is ``unimplemented`` with 404 (Connect's answer
for an unrouted path); a known one fleetprof does not serve, 501."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from fleetprof.querier import connect
from fleetprof.querier.service import METHODS, QUERIER, SETTINGS, UNSUPPORTED
from fleetprof.server.errors import ApiError
from fleetprof.server.state import get_state

router = APIRouter()


async def _call(request: Request, procedure: str) -> Response:
    t0 = time.perf_counter()
    st = get_state(request)
    method = METHODS.get(procedure)
    if method is None:
        if procedure in UNSUPPORTED:
            raise ApiError(501, f"{procedure} is not supported by fleetprof", code="unimplemented")
        raise ApiError(404, f"unknown procedure {procedure}", code="unimplemented")
    tenant = st.tenant(request, method.scope)
    msg = method.request()
    codec = await connect.read_message(request, msg)
    answer = await method.run(st, tenant, msg)
    st.metrics.query_latency.labels(procedure.rsplit("/", 1)[1]).observe(time.perf_counter() - t0)
    return connect.encode(codec, answer)


@router.post("/" + QUERIER + "/{method}", include_in_schema=False)
async def querier(request: Request, method: str) -> Response:
    return await _call(request, f"{QUERIER}/{method}")


@router.post("/" + SETTINGS + "/{method}", include_in_schema=False)
async def settings(request: Request, method: str) -> Response:
    return await _call(request, f"{SETTINGS}/{method}")
