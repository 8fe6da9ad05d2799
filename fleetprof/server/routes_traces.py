"""Trace routes: OTLP/HTTP ingest and Tempo-compatible queries, plus native RED figures.

* ``POST /v1/traces`` — OTLP/HTTP, ``application/x-protobuf`` or ``application/json``
  (OTLP JSON), optionally gzip. Checks run cheapest first: authentication, the tenant's
  rate limit (429 before the body is read unless a token is left; once decoded, the
  request is charged :func:`span_tokens` — one token per ``ingest_spans_per_token`` spans,
  as profile ingest is charged per profile — and the bucket may go into debt, which the
  tenant's next requests wait off), body size (413),
  decompressed size (413), then request limits on the parsed request (spans per request,
  attributes/events/links per span: 400) before spans are converted, ids (400: nothing
  stored). Answered after the span segment is durable with an ``ExportTraceServiceResponse``
  in the request's encoding, whose ``partial_success`` counts the spans rejected one by one
  (impossible times; a span name, attribute key or string value, or ``service.name`` past
  its length limit; services past ``max_services_per_request`` or the index entry's budget:
  :mod:`fleetprof.traces.otlp`). A full writer queue answers 429 and a failed write 503, both with ``Retry-After``
  (OTLP clients retry those). Errors of a protobuf request are a protobuf
  ``google.rpc.Status`` (``code``: the gRPC code, ``message``), as OTLP/HTTP specifies; of
  a JSON (or unsupported) request JSON ``{code, message}`` like every route.
* ``GET /api/traces/{id}`` — Tempo's v1 answer ``{"batches": [...]}`` (protobuf JSON as
  Tempo renders it: base64 ids, enum names); ``?format=otlp`` or ``Accept:
  application/x-protobuf`` / an OTLP JSON request (``format=otlp``) give OTLP
  (``{"resourceSpans": [...]}``, hex ids) or binary protobuf; ``/api/v2/traces/{id}``
  answers ``{"trace": {"resourceSpans": [...]}}``. 404 when absent. ``start``/``end``
  (Unix seconds) bound the scan.
* ``GET /api/search`` — Tempo's search: ``tags`` (logfmt), ``minDuration``,
  ``maxDuration`` (Go durations), ``limit``, ``start``/``end`` (Unix seconds; default the
  last ``default_query_range_s``), plus ``service``, ``name``, ``status``.
  ``GET /api/search/tags`` → ``{"tagNames": [...]}``; ``GET /api/search/tag/{name}/values``
  → ``{"tagValues": [...]}``.
* ``GET /api/v1/traces/red?service=&from=&until=&step=`` — per service, per step: rate,
  errors and duration percentiles of entry spans (:func:`fleetprof.traces.query.red`);
  buckets are aligned to multiples of ``step`` (``from`` floored, ``until`` ceiled; the
  answer's ``from``/``until`` are the aligned range).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from fleetprof.distributor.push import JSON_TYPES, PROTO_TYPES, media_type
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import InflateBudget, read_body
from fleetprof.server.logging import log
from fleetprof.server.settings import Settings
from fleetprof.server.state import ServerState, get_state
from fleetprof.traces import otlp, query

router = APIRouter()
ROUTE = "otlp_traces"
OTLP_PROTO = "application/x-protobuf"
MAX_LIMIT = 1000
MAX_STEPS = 10_000
MAX_DURATION_NS = (1 << 63) - 1
"""Longest duration a search condition holds (span durations are int64 nanoseconds)."""
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def span_tokens(spans: int, per_token: int) -> int:
    """Rate-limit tokens of a request of ``spans`` spans: ``ceil(spans / per_token)``, at
    least 1 (a request costs a token even when empty)."""
    return max(1, -(-spans // max(1, per_token)))


def span_limits(settings: Settings) -> otlp.SpanLimits:
    """The span limits of ``settings`` (``service.name`` at most ``max_label_value_length``
    characters, as a profile's ``service_name`` label)."""
    return otlp.SpanLimits(max_spans=settings.max_spans_per_request, max_attributes=settings.max_attributes_per_span,
                           max_future_ns=int(settings.ingest_max_future_s * 1e9),
                           max_service_name_length=settings.max_label_value_length,
                           max_services=settings.max_services_per_request, max_name_length=settings.max_span_name_length,
                           max_key_length=settings.max_attribute_key_length,
                           max_value_length=settings.max_attribute_value_length)


# ---------------------------------------------------------------------------------------
# ingest


GRPC_CODES = {
    "invalid_argument": 3, "deadline_exceeded": 4, "not_found": 5, "permission_denied": 7, "resource_exhausted": 8,
    "unimplemented": 12, "internal": 13, "unavailable": 14, "unauthenticated": 16,
}
"""gRPC status codes of the Connect codes (``google.rpc.Status.code``; 2 = UNKNOWN otherwise)."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def status_proto(code: str, message: str) -> bytes:
    """``google.rpc.Status{code, message}`` in protobuf (the OTLP/HTTP error body of a protobuf request)."""
    text = message.encode("utf-8", "replace")
    return b"\x08" + _varint(GRPC_CODES.get(code, 2)) + b"\x12" + _varint(len(text)) + text


@router.post("/v1/traces")
async def otlp_traces(request: Request) -> Response:
    """OTLP/HTTP trace export (see the module docstring). Errors of a protobuf request are
    a protobuf ``google.rpc.Status`` (as OTLP/HTTP asks), of any other request JSON ``{code, message}``."""
    try:
        return await _export(request)
    except ApiError as e:
        if media_type(request.headers.get("content-type")) not in PROTO_TYPES:
            raise
        with contextlib.suppress(AttributeError):
            get_state(request).metrics.errors.labels(str(e.status)).inc()
        return Response(status_proto(e.code, e.message), status_code=e.status, media_type=OTLP_PROTO, headers=e.headers)


async def _export(request: Request) -> Response:
    from fleetprof.server.routes_ingest import _decode

    st = get_state(request)
    status = "error"
    try:
        ctype = media_type(request.headers.get("content-type"))
        as_json = ctype in JSON_TYPES
        if not as_json and ctype not in PROTO_TYPES:
            raise ApiError(415, f"unsupported Content-Type {ctype!r} (use application/x-protobuf or application/json)",
                           code="invalid_argument")
        tenant = st.tenant(request, "write")
        st.limiter.admit(tenant)
        raw = await read_body(request.stream(), request.headers.get("content-length"), st.settings.max_body_bytes)
        st.metrics.ingest_bytes.labels(ROUTE).inc(len(raw))
        limits = span_limits(st.settings)

        def parse(body: bytes, _: object, budget: InflateBudget) -> list[Any]:
            body = budget.inflate(body)  # a gzip body without Content-Encoding
            try:
                req = otlp.parse_json(body, limits) if as_json else otlp.parse_protobuf(body, limits)
                return [otlp.to_chunk(req, time.time_ns(), limits, body=None if as_json else body)]
            except otlp.OtlpError as e:
                raise ApiError(400, str(e)) from None

        [(chunk, rejected, why)] = await _decode(st, raw, request.headers.get("content-encoding"), parse, inline=False)
        st.limiter.charge(tenant, span_tokens(len(chunk) + rejected, st.settings.ingest_spans_per_token))
        if len(chunk):
            await _accept(st, tenant, chunk)
        status = "ok"
    finally:
        st.metrics.ingest_requests.labels(ROUTE, status).inc()
    resp = otlp.response(rejected, why)
    if as_json:
        return JSONResponse(otlp.response_json(resp))
    return Response(resp.SerializeToString(), media_type=OTLP_PROTO)


async def _accept(st: ServerState, tenant: str, chunk: otlp.SpanChunk) -> None:
    """Hand ``chunk`` to the span writer and wait for the durable ack (429/400/503)."""
    from fleetprof.segment.writer import Backpressure, InvalidItem

    t0 = time.perf_counter()
    try:
        await st.span_writer.submit(tenant, [chunk])
    except Backpressure as e:
        retry = str(max(1, round(e.retry_after_s)))
        raise ApiError(429, "span ingest queue is full; retry later", headers={"Retry-After": retry}) from None
    except InvalidItem as e:
        raise ApiError(400, str(e)) from None
    except Exception as e:  # the write failed: nothing acknowledged
        log.error("span segment write failed", extra={"tenant": tenant, "error": repr(e)})
        raise ApiError(503, f"could not persist the spans: {type(e).__name__}", code="unavailable",
                       headers={"Retry-After": "1"}) from None
    st.metrics.ack_latency.observe(time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# parameters


def _seconds(request: Request, name: str) -> int | None:
    """Query parameter ``name`` (Unix seconds) in nanoseconds, or ``None``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be Unix seconds, not {raw[:40]!r}") from None
    if not 0 <= v < 1e11:
        raise ApiError(400, f"{name} {raw[:40]!r} is out of range")
    return int(v * 1e9)


def _range(request: Request, st: ServerState, *, default: bool) -> tuple[int | None, int | None]:
    start, end = _seconds(request, "start"), _seconds(request, "end")
    if default:
        end = end if end is not None else time.time_ns()
        start = start if start is not None else end - int(st.settings.default_query_range_s * 1e9)
    if start is not None and end is not None and start > end:
        raise ApiError(400, "start must not be after end")
    return start, end


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration (``250ms``, ``1.5s``, ``1h30m``), at most
    :data:`MAX_DURATION_NS` (longer ones are clamped); 400 for malformed text and for a
    number too large to be finite (hundreds of digits)."""
    t = text.strip()
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(t):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(t) or not t:
        raise ApiError(400, f"bad duration {text[:40]!r} (use e.g. 100ms, 1.5s, 2m)")
    if not math.isfinite(total):
        raise ApiError(400, f"duration {text[:40]!r} is too long")
    return min(int(total), MAX_DURATION_NS)


def parse_logfmt(text: str) -> dict[str, str]:
    """``key=value key2="quoted \\"value\\""`` pairs; 400 on malformed input."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] == " ":
            i += 1
        if i >= n:
            break
        j = i
        while j < n and text[j] not in "= ":
            j += 1
        key = text[i:j]
        if not key or j >= n or text[j] != "=":
            raise ApiError(400, f"bad tags {text[:80]!r}: use logfmt key=value pairs")
        j += 1
        if j < n and text[j] == '"':
            j += 1
            buf = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ApiError(400, f"bad tags {text[:80]!r}: unterminated quote")
            value = "".join(buf)
            j += 1
        else:
            k = j
            while j < n and text[j] != " ":
                j += 1
            value = text[k:j]
        out[key] = value
        i = j
    return out


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, not {raw[:40]!r}") from None
    if not lo <= v <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}")
    return v


def _trace_id(text: str) -> bytes:
    try:
        return otlp.parse_trace_id(text)
    except otlp.OtlpError as e:
        raise ApiError(400, str(e)) from None


# ---------------------------------------------------------------------------------------
# queries


async def _trace_rows(request: Request, trace_id: str) -> list[dict[str, Any]]:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    tid = _trace_id(trace_id)
    start, end = _range(request, st, default=False)
    rows = await to_thread.run_sync(lambda: query.get_trace(st.store, st.index, tenant, tid, start, end))
    if not rows:
        raise ApiError(404, f"trace {tid.hex()} not found")
    return rows


def _wants_otlp(request: Request) -> str | None:
    """``"json"`` / ``"proto"`` when the client asked for OTLP, else ``None`` (Tempo JSON)."""
    fmt = request.query_params.get("format", "")
    accept = request.headers.get("accept", "")
    if fmt not in ("", "otlp", "tempo"):
        raise ApiError(400, f"format must be otlp or tempo, not {fmt[:40]!r}")
    if any(t in accept for t in PROTO_TYPES):
        return "proto"
    if fmt == "otlp":
        return "json"
    return None


async def _trace_response(request: Request, trace_id: str, *, v2: bool) -> Response:
    """The trace as protobuf or OTLP JSON (as asked, see :func:`_wants_otlp`), else Tempo's
    JSON; Tempo's v2 answers wrap the document in ``{"trace": ...}``."""
    want = _wants_otlp(request)
    req = otlp.spans_to_request(await _trace_rows(request, trace_id))
    if want == "proto":
        return Response(req.SerializeToString(), media_type=OTLP_PROTO)
    if want == "json":
        doc = otlp.otlp_json(req)
        return JSONResponse({"trace": doc} if v2 else doc)
    batches = otlp.tempo_batches(req)
    return JSONResponse({"trace": {"resourceSpans": batches}} if v2 else {"batches": batches})


@router.get("/api/traces/{trace_id}")
async def get_trace(request: Request, trace_id: str) -> Response:
    """One trace: Tempo v1 JSON, or OTLP (see the module docstring)."""
    return await _trace_response(request, trace_id, v2=False)


@router.get("/api/v2/traces/{trace_id}")
async def get_trace_v2(request: Request, trace_id: str) -> Response:
    """One trace as Tempo's v2 answer ``{"trace": {"resourceSpans": [...]}}``."""
    return await _trace_response(request, trace_id, v2=True)


@router.get("/api/search")
async def search(request: Request) -> dict[str, Any]:
    """Tempo search (see the module docstring)."""
    st = get_state(request)
    tenant = st.tenant(request, "read")
    p = request.query_params
    start, end = _range(request, st, default=True)
    if p.get("q"):
        raise ApiError(400, "TraceQL (q=) is not supported; use tags=, service=, name=, status=, minDuration=, maxDuration=")
    status = p.get("status") or None
    if status is not None and status not in query.STATUS_CODES:
        raise ApiError(400, "status must be unset, ok or error")
    tags = parse_logfmt(p.get("tags", ""))
    if tags.get("status", "error") not in query.STATUS_CODES:
        raise ApiError(400, "the status tag must be unset, ok or error")
    q = query.SearchQuery(
        start_ns=start, end_ns=end, service=p.get("service") or None, name=p.get("name") or None, status=status,
        tags=tags,
        min_duration_ns=parse_go_duration(p["minDuration"]) if p.get("minDuration") else None,
        max_duration_ns=parse_go_duration(p["maxDuration"]) if p.get("maxDuration") else None,
        limit=_int(request, "limit", 20, 1, MAX_LIMIT), spans_per_set=_int(request, "spss", 3, 0, 100),
    )
    traces = await to_thread.run_sync(lambda: query.search(st.store, st.index, tenant, q))
    return {"traces": traces, "metrics": {"inspectedTraces": len(traces)}}


@router.get("/api/search/tags")
async def search_tags(request: Request) -> dict[str, Any]:
    """Attribute names in the time range (Tempo v1 shape)."""
    st = get_state(request)
    tenant = st.tenant(request, "read")
    start, end = _range(request, st, default=True)
    names = await to_thread.run_sync(lambda: query.tag_names(st.store, st.index, tenant, start, end))
    return {"tagNames": names}


@router.get("/api/search/tag/{name}/values")
async def search_tag_values(request: Request, name: str) -> dict[str, Any]:
    """Values of one attribute in the time range (Tempo v1 shape)."""
    st = get_state(request)
    tenant = st.tenant(request, "read")
    start, end = _range(request, st, default=True)
    values = await to_thread.run_sync(lambda: query.tag_values(st.store, st.index, tenant, name, start, end))
    return {"tagValues": values}


@router.get("/api/v1/traces/red")
async def red(request: Request) -> dict[str, Any]:
    """Rate, errors and duration percentiles of entry spans per service and step."""
    from fleetprof.server.queries import step_param, time_range

    st = get_state(request)
    tenant = st.tenant(request, "read")
    p = request.query_params
    start_ms, end_ms = time_range(p, st)
    step_s = step_param(p) or max(1.0, float((end_ms - start_ms) // 60_000))
    if (end_ms - start_ms) / 1000 / step_s > MAX_STEPS:
        raise ApiError(400, f"the range holds more than {MAX_STEPS} steps; use a larger step")
    service = p.get("service") or None
    step_ns = int(step_s * 1e9)
    start_ns, end_ns = query.align(start_ms * 1_000_000, end_ms * 1_000_000, step_ns)
    series = await to_thread.run_sync(lambda: query.red(st.store, st.index, tenant, start_ns, end_ns, step_ns, service))
    return {"from": start_ns // 1_000_000, "until": -(-end_ns // 1_000_000), "stepSeconds": step_s,
            "entrySpans": "SERVER, CONSUMER or root", "series": series}
