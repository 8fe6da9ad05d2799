"""Ingest routes: Connect ``Push``, legacy ``/ingest``, native ``/api/v1/ingest``.

Every route answers only after the segment writer acknowledged the data as durable.
Checks run cheapest first: authentication, the tenant's rate limit (429 before the body is
read), the body size (413 while reading), then decompression within the request's budget
(413; a request outgrowing ``ungated_bytes`` needs a :class:`~fleetprof.server.gate.DecodeGate`
slot, 429 when none is free), the parser's structural limits before any profile is decoded,
and last the decode itself."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from fleetprof import telemetry
from fleetprof.distributor.legacy import parse_legacy
from fleetprof.distributor.native import parse_native
from fleetprof.distributor.push import JSON_TYPES, media_type, parse_push_deferred
from fleetprof.distributor.timeparse import now_ms
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import InflateBudget, NeedsGate, decode_body, read_body
from fleetprof.server.logging import log
from fleetprof.server.state import ServerState, get_state

router = APIRouter()
MAX_MULTIPART_PARTS = 16
PUSH_PATH = "/push.v1.PusherService/Push"
Parse = Callable[[bytes, "dict[str, bytes] | None", InflateBudget], list[Any]]
Form = Callable[[bytes], Awaitable[dict[str, bytes]]]


async def _read(receive: AsyncIterator[bytes], content_length: str | None, st: ServerState, tenant: str) -> bytes:
    """The raw body, once the tenant's rate limit admits the request (429 before reading)."""
    st.limiter.admit(tenant)
    raw = await read_body(receive, content_length, st.settings.max_body_bytes)
    telemetry.annotate({"fleetprof.tenant": tenant, "http.request.body.size": len(raw)})
    return raw


async def _decode(st: ServerState, raw: bytes, encoding: str | None, parse: Parse, *, inline: bool, form: Form | None = None) -> list[Any]:
    """Undo ``Content-Encoding`` and parse ``raw`` within the request's decompression budget.

    A request that stays within ``st.gate.ungated_bytes`` (body and everything it
    decompresses) is parsed without a gate slot (on the event loop when ``inline``: an agent's
    push costs less than a thread hand-off); one that outgrows it is dropped at that point
    and parsed again from the start in a worker thread holding a slot (429 when none is
    free), up to ``max_decompressed_bytes``."""
    gate = st.gate
    if len(raw) <= gate.ungated_bytes:
        budget = st.ingest_cfg.budget(ungated=gate.ungated_bytes)
        try:
            body = decode_body(raw, encoding, budget)
            parts = await form(body) if form is not None else None
            if inline:
                return parse(body, parts, budget)
            return await to_thread.run_sync(parse, body, parts, budget)
        except NeedsGate:
            pass
    with gate.slot():
        budget = st.ingest_cfg.budget()
        body = await to_thread.run_sync(decode_body, raw, encoding, budget)
        parts = await form(body) if form is not None else None
        return await to_thread.run_sync(parse, body, parts, budget)


async def _ingest(request: Request, route: str, parse: Parse, *, inline: bool, form: Form | None = None) -> None:
    st = get_state(request)
    status = "error"
    try:
        tenant = st.tenant(request, "write")
        raw = await _read(request.stream(), request.headers.get("content-length"), st, tenant)
        st.metrics.ingest_bytes.labels(route).inc(len(raw))
        items = await _decode(st, raw, request.headers.get("content-encoding"), parse, inline=inline, form=form)
        await st.accept(tenant, items, route)
        status = "ok"
    finally:
        st.metrics.ingest_requests.labels(route, status).inc()


@router.post("/push.v1.PusherService/Push")
async def connect_push(request: Request) -> Response:
    """Connect unary ``PusherService.Push``: empty ``PushResponse`` on success."""
    st = get_state(request)
    ctype = request.headers.get("content-type")
    await _ingest(request, "push", lambda body, _, budget: parse_push_deferred(body, ctype, st.ingest_cfg, now_ms(), budget), inline=True)
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

    def parse(body: bytes, parts: dict[str, bytes] | None, budget: InflateBudget) -> list[Any]:
        return parse_legacy(body, ctype, query, st.ingest_cfg, now_ms(), parts, budget)

    async def form(body: bytes) -> dict[str, bytes]:
        return await _multipart(request, body)

    multipart = media_type(ctype) == "multipart/form-data"
    await _ingest(request, "ingest", parse, inline=False, form=form if multipart else None)
    return Response(b"", status_code=200)


@router.post("/api/v1/ingest")
async def native_ingest(request: Request) -> dict[str, Any]:
    """Any decodable profile; labels from query parameters."""
    st = get_state(request)
    query = dict(request.query_params)
    await _ingest(request, "api_v1_ingest", lambda body, _, budget: parse_native(body, query, st.ingest_cfg, now_ms(), budget), inline=False)
    return {"status": "ok"}


# --------------------------------------------------------------------------------------
# Connect Push without the framework: the hot ingest path (many agents, small bodies).
# Same semantics as :func:`connect_push` plus the app's error handlers, minus FastAPI's
# routing, dependency and middleware layers (which cost more than decoding a push).


def _json_response(status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    hdrs += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return status, hdrs, data


async def _receive_chunks(receive: Callable[[], Any]) -> AsyncIterator[bytes]:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected")
        yield msg.get("body", b"")
        if not msg.get("more_body", False):
            return


def raw_push_handler(st: ServerState) -> Callable[..., Any]:
    """ASGI handler for ``POST /push.v1.PusherService/Push`` (see :func:`connect_push`)."""
    route = "push"
    ok_proto = [(b"content-type", b"application/proto"), (b"content-length", b"0")]
    bytes_in = st.metrics.ingest_bytes.labels(route)
    done = {k: st.metrics.ingest_requests.labels(route, k) for k in ("ok", "error")}
    ok_json = [(b"content-type", b"application/json"), (b"content-length", b"2")]

    async def handle(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
        hdr: dict[bytes, bytes] = {}
        for k, v in scope["headers"]:
            hdr.setdefault(k, v)  # the first of repeated headers, as Starlette's Headers.get
        ctype = hdr[b"content-type"].decode("latin-1") if b"content-type" in hdr else None

        def parse(body: bytes, _: object, budget: InflateBudget) -> list[Any]:
            return parse_push_deferred(body, ctype, st.ingest_cfg, now_ms(), budget)

        status = "error"
        try:
            try:
                auth = hdr.get(b"authorization")
                org = hdr.get(b"x-scope-orgid")
                tenant = st.tenant_of(auth.decode("latin-1") if auth is not None else None, org.decode("latin-1") if org is not None else None, "write")
                clen = hdr.get(b"content-length")
                raw = await _read(_receive_chunks(receive), clen.decode("latin-1") if clen is not None else None, st, tenant)
                bytes_in.inc(len(raw))
                enc = hdr.get(b"content-encoding")
                items = await _decode(st, raw, enc.decode("latin-1") if enc is not None else None, parse, inline=True)
                await st.accept(tenant, items, route)
                status = "ok"
            finally:
                done[status].inc()
        except ConnectionResetError:
            return
        except ApiError as e:
            st.metrics.errors.labels(str(e.status)).inc()
            code, headers, data = _json_response(e.status, e.body(), e.headers)
        except Exception as e:  # noqa: BLE001 - the app's catch-all handler, inlined
            log.error("unhandled error", exc_info=e, extra={"path": PUSH_PATH})
            st.metrics.errors.labels("500").inc()
            code, headers, data = _json_response(500, {"code": "internal", "message": f"internal error ({type(e).__name__})"})
        else:
            code = 200
            if media_type(ctype) in JSON_TYPES:
                headers, data = ok_json, b"{}"
            else:
                headers, data = ok_proto, b""
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return handle
