"""Ingest routes: Connect ``Push``, legacy ``/ingest``, native ``/api/v1/ingest``.

Every route answers only after the segment writer acknowledged the data as durable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from fleetprof.distributor.legacy import parse_legacy
from fleetprof.distributor.native import parse_native
from fleetprof.distributor.push import JSON_TYPES, media_type, parse_push
from fleetprof.distributor.timeparse import now_ms
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import decode_content_encoding, read_body
from fleetprof.server.state import ServerState, get_state

router = APIRouter()
MAX_MULTIPART_PARTS = 16


async def _body(request: Request, st: ServerState) -> bytes:
    raw = await read_body(request.stream(), request.headers.get("content-length"), st.settings.max_body_bytes)
    return decode_content_encoding(raw, request.headers.get("content-encoding"), st.settings.max_decompressed_bytes)


async def _ingest(request: Request, route: str, parse: Callable[..., list[Any]], *args: Any) -> None:
    st = get_state(request)
    status = "error"
    try:
        tenant = st.tenant(request, "write")
        body = await _body(request, st)
        st.metrics.ingest_bytes.labels(route).inc(len(body))
        items = await to_thread.run_sync(lambda: parse(body, *args))
        await st.accept(tenant, items, route)
        status = "ok"
    finally:
        st.metrics.ingest_requests.labels(route, status).inc()


@router.post("/push.v1.PusherService/Push")
async def connect_push(request: Request) -> Response:
    """Connect unary ``PusherService.Push``: empty ``PushResponse`` on success."""
    st = get_state(request)
    ctype = request.headers.get("content-type")
    await _ingest(request, "push", lambda body: parse_push(body, ctype, st.ingest_cfg, now_ms()))
    if media_type(ctype) in JSON_TYPES:
        return Response(b"{}", media_type="application/json")
    return Response(b"", media_type="application/proto")


async def _multipart(request: Request, body: bytes) -> dict[str, bytes]:
    """Fields of a ``multipart/form-data`` body already read (and size-checked)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    replay = Request(request.scope, receive)
    try:
        form = await replay.form(max_files=MAX_MULTIPART_PARTS, max_fields=MAX_MULTIPART_PARTS)
    except MultiPartException as e:
        raise ApiError(400, f"invalid multipart body: {e.message}") from None
    parts: dict[str, bytes] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            parts[key] = await value.read()
        else:
            parts[key] = str(value).encode()
    await form.close()
    return parts


@router.post("/ingest")
async def legacy_ingest(request: Request) -> Response:
    """Pyroscope's legacy ingest API (see :mod:`fleetprof.distributor.legacy`)."""
    st = get_state(request)
    query = dict(request.query_params)
    ctype = request.headers.get("content-type") or ""
    status = "error"
    try:
        tenant = st.tenant(request, "write")
        body = await _body(request, st)
        st.metrics.ingest_bytes.labels("ingest").inc(len(body))
        parts = await _multipart(request, body) if media_type(ctype) == "multipart/form-data" else None
        items = await to_thread.run_sync(lambda: parse_legacy(body, ctype, query, st.ingest_cfg, now_ms(), parts))
        await st.accept(tenant, items, "ingest")
        status = "ok"
    finally:
        st.metrics.ingest_requests.labels("ingest", status).inc()
    return Response(b"", status_code=200)


@router.post("/api/v1/ingest")
async def native_ingest(request: Request) -> dict[str, Any]:
    """Any decodable profile; labels from query parameters."""
    st = get_state(request)
    query = dict(request.query_params)
    await _ingest(request, "api_v1_ingest", lambda body: parse_native(body, query, st.ingest_cfg, now_ms()))
    return {"status": "ok"}
