"""OTLP traces in and out: decode ``ExportTraceServiceRequest`` (protobuf or the OTLP JSON
mapping) into a columnar :class:`SpanChunk`, and render stored spans back as OTLP.

Decoding contract:

* :func:`parse_protobuf` / :func:`parse_json` raise :class:`OtlpError` (the caller answers
  400) for bodies that are not a valid request. :func:`parse_protobuf` checks the span count;
  :func:`to_chunk` checks the other limits (:class:`SpanLimits`: attributes, events and
  links per span) before any span is converted. :func:`parse_json` counts spans and
  attributes on the parsed JSON document, before the (slower) protobuf mapping.
* :func:`to_chunk` runs the compiled scan of :mod:`fleetprof.traces.scan` over the
  request's bytes (no Python object per span); a request the scan declines (a broken
  limit or id, an unusual encoding) takes :func:`to_chunk_exact`, which walks the parsed
  message, names the error and otherwise gives the same spans. Kinds and status codes
  outside 0..127 are refused (:class:`OtlpError`).
* OTLP JSON differs from protobuf's canonical JSON in one point, which :func:`parse_json`
  undoes: trace and span ids are hex strings, not base64. Enums may be integers or names,
  int64 values strings or numbers, keys lowerCamelCase (original names are accepted too);
  unknown fields are ignored, as the specification asks of receivers. A known field of the
  wrong JSON type is an :class:`OtlpError` naming the field (e.g.
  ``resourceSpans[0].scopeSpans[0].spans[3].status must be an object``): a message field
  that is not an object (or ``null``), a repeated field that is not a list, an enum that
  is neither an integer nor one of its names (:func:`check_json_types`; protobuf's own
  JSON parser would drop such fields silently). Scalars of the wrong type are refused by
  that parser.
* :func:`to_chunk` rejects the whole request (:class:`OtlpError`) when an id is malformed
  (trace id not 16 bytes or all zero, span id not 8 bytes or zero, parent id neither empty
  nor 8 bytes, link ids likewise): such a request is broken, not partially acceptable.
  Single spans are left out and counted as rejected (the ``partial_success`` of the
  response, whose message names the first one's reason), checked in this order: their
  resource breaks a length limit (``service.name`` longer than ``max_service_name_length``
  characters, an attribute key longer than ``max_key_length`` or a string value longer
  than ``max_value_length`` UTF-8 bytes); impossible times (no start, an end before the
  start, a start further than ``max_future_ns`` after now); a name longer than
  ``max_name_length`` bytes; an attribute key or string attribute value past those limits
  (span attributes; event and link attributes and non-string values are bounded by the
  body size alone); and last, in wire order of resources, a service past the first
  ``max_services`` distinct services of the spans kept or past their ``services_budget``
  (:func:`~fleetprof.traces.table.services_cost`), so that the services of one request
  always fit one index entry.

Storage of one span (what :func:`to_chunk` produces and :func:`spans_to_request` reverses,
losslessly): scalar fields as columns; each string, int, bool or double attribute as a tag
``"key=value"`` with its type letter (``s``, ``i``, ``b``, ``d``) in ``tag_types``; every
other attribute (arrays, maps, bytes, keys containing ``=``, a ``key_strindex``) stays, in
order, in ``extra``: the span's protobuf bytes with the column fields and the tags removed
(events, links, trace state, flags, dropped counts and unknown fields stay there too). ``tag_types`` holds ``x`` at the place of each
such attribute, so the attribute order round-trips.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from fleetprof.traces.scan import scan
from fleetprof.traces.table import COLUMNS, SERVICES_BUDGET_BYTES, SpanTable, services_cost

UNKNOWN_SERVICE = "unknown_service"
"""Service of spans whose resource has no ``service.name`` (the OpenTelemetry default)."""
SPAN_KIND_SERVER = 2
SPAN_KIND_CONSUMER = 5
STATUS_ERROR = 2
_CLEARED = ("trace_id", "span_id", "parent_span_id", "name", "kind", "start_time_unix_nano",
            "end_time_unix_nano", "status", "attributes")


class OtlpError(ValueError):
    """A request that is not valid OTLP or breaks a limit (answered with 400)."""


@dataclass(frozen=True)
class SpanLimits:
    """Per-request limits. Counts (spans, attributes, events, links) are checked before
    spans are converted and break the whole request; lengths and services reject single
    spans (see the module docstring)."""

    max_spans: int = 50_000
    max_attributes: int = 256
    """Per span, per event, per link and per resource."""
    max_events: int = 1024
    max_links: int = 1024
    max_future_ns: int = 86_400 * 10**9
    max_service_name_length: int = 2048
    """Characters of a resource's ``service.name`` (the profile path's label value limit)."""
    max_services: int = 1000
    """Distinct services among the spans kept from one request."""
    services_budget: int = SERVICES_BUDGET_BYTES
    """:func:`~fleetprof.traces.table.services_cost` of those services."""
    max_name_length: int = 2048
    """UTF-8 bytes of a span name."""
    max_key_length: int = 1024
    """UTF-8 bytes of an attribute key (of a span or its resource)."""
    max_value_length: int = 65_536
    """UTF-8 bytes of a string attribute value (of a span or its resource)."""


SpanChunk = SpanTable
"""What decoding produces: a :class:`~fleetprof.traces.table.SpanTable` of one request."""


@dataclass
class _SpanLists:
    """The exact path's spans, one list per column (see :func:`to_chunk_exact`)."""

    trace_id: list[bytes] = field(default_factory=list)
    span_id: list[bytes] = field(default_factory=list)
    parent_span_id: list[bytes] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    start_ns: list[int] = field(default_factory=list)
    end_ns: list[int] = field(default_factory=list)
    status_code: list[int] = field(default_factory=list)
    status_message: list[str] = field(default_factory=list)
    resource: list[int] = field(default_factory=list)
    scope: list[int] = field(default_factory=list)
    extra: list[bytes] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)
    tag_types: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# decoding


def parse_protobuf(body: bytes, limits: SpanLimits) -> ExportTraceServiceRequest:
    """The request in ``body`` (binary protobuf), its span count checked (the other
    limits: :func:`to_chunk`)."""
    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OtlpError(f"invalid OTLP protobuf: {e}") from None
    n = 0
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            n += len(ss.spans)
    if n > limits.max_spans:
        raise OtlpError(f"request has more than {limits.max_spans} spans")
    return req


def check_limits(req: ExportTraceServiceRequest, limits: SpanLimits) -> None:
    """:class:`OtlpError` when ``req`` breaks one of ``limits``."""
    n = 0
    for rs in req.resource_spans:
        _check_count(len(rs.resource.attributes), limits.max_attributes, "attributes on a resource")
        for ss in rs.scope_spans:
            n += len(ss.spans)
            if n > limits.max_spans:
                raise OtlpError(f"request has more than {limits.max_spans} spans")
            for sp in ss.spans:
                _check_span_counts(len(sp.attributes), len(sp.events), len(sp.links), limits)
                for ev in sp.events:
                    _check_count(len(ev.attributes), limits.max_attributes, "attributes on a span event")
                for ln in sp.links:
                    _check_count(len(ln.attributes), limits.max_attributes, "attributes on a span link")


def _check_count(n: int, limit: int, what: str) -> None:
    if n > limit:
        raise OtlpError(f"{n} {what}: more than the limit of {limit}")


def _check_span_counts(attrs: int, events: int, links: int, limits: SpanLimits) -> None:
    _check_count(attrs, limits.max_attributes, "attributes on a span")
    _check_count(events, limits.max_events, "events on a span")
    _check_count(links, limits.max_links, "links on a span")


def _field(d: dict[str, Any], camel: str, snake: str) -> Any:
    return d.get(camel, d.get(snake))


def _list(v: Any, what: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise OtlpError(f"invalid OTLP JSON: {what} must be a list")
    return v


def _obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise OtlpError(f"invalid OTLP JSON: {what} must be an object")
    return v


def _hex_to_b64(d: dict[str, Any], camel: str, snake: str, what: str) -> None:
    for k in (camel, snake):
        v = d.get(k)
        if v is None:
            continue
        if not isinstance(v, str):
            raise OtlpError(f"invalid OTLP JSON: {what} must be a hex string")
        try:
            raw = bytes.fromhex(v)
        except ValueError:
            raise OtlpError(f"invalid OTLP JSON: {what} {v[:40]!r} is not hex") from None
        d[k] = base64.b64encode(raw).decode()


_MSG, _ENUM = 1, 2
_SCHEMAS: dict[str, dict[str, tuple[int, bool, Any]]] = {}


def _schema(desc: Any) -> dict[str, tuple[int, bool, Any]]:
    """JSON and original names of the message and enum fields of message type ``desc``:
    ``(kind, repeated, message descriptor or enum value names)``."""
    got = _SCHEMAS.get(desc.full_name)
    if got is None:
        got = {}
        for f in desc.fields:
            repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED
            if f.message_type is not None and not f.message_type.GetOptions().map_entry:
                spec: tuple[int, bool, Any] = (_MSG, repeated, f.message_type)
            elif f.enum_type is not None:
                spec = (_ENUM, repeated, frozenset(v.name for v in f.enum_type.values))
            else:
                continue
            got[f.json_name] = got[f.name] = spec
        _SCHEMAS[desc.full_name] = got
    return got


class _Misfit(Exception):
    """A JSON value of the wrong type; ``path`` is filled in (innermost last) on the way out."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.path: list[str] = []


def _check_value(kind: int, sub: Any, v: Any) -> None:
    if kind == _MSG:
        _check_message(v, sub)
    elif isinstance(v, bool) or not isinstance(v, int | str) or (isinstance(v, str) and v not in sub and not v.lstrip("-").isdigit()):
        raise _Misfit(f"{str(v)[:40]!r} is not a known enum value")


def _check_message(d: Any, desc: Any) -> None:
    if not isinstance(d, dict):
        raise _Misfit("must be an object")
    schema = _schema(desc)
    for k, v in d.items():
        spec = schema.get(k)
        if spec is None or v is None:
            continue  # unknown fields are ignored; null is the default
        kind, repeated, sub = spec
        try:
            if not repeated:
                _check_value(kind, sub, v)
            elif not isinstance(v, list):
                raise _Misfit("must be a list")
            else:
                for i, x in enumerate(v):
                    try:
                        if kind == _MSG:
                            _check_message(x, sub)
                        else:
                            _check_value(kind, sub, x)
                    except _Misfit as e:
                        e.path.append(f"[{i}]")
                        raise
        except _Misfit as e:
            e.path.append(k)
            raise


def check_json_types(doc: Any) -> None:
    """:class:`OtlpError` naming the first known field of ``doc`` (an OTLP JSON request)
    whose JSON type does not fit its field (see the module docstring); unknown fields
    pass."""
    try:
        _check_message(doc, ExportTraceServiceRequest.DESCRIPTOR)
    except RecursionError:
        raise OtlpError("invalid OTLP JSON: nested too deeply") from None
    except _Misfit as e:
        where = ""
        for part in reversed(e.path):
            where += part if part.startswith("[") or not where else "." + part
        raise OtlpError(f"invalid OTLP JSON: {where or 'the request'} {e.what}") from None


def parse_json(body: bytes, limits: SpanLimits) -> ExportTraceServiceRequest:
    """The request in ``body`` (OTLP JSON), its limits checked on the JSON document first."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise OtlpError(f"invalid JSON: {e}") from None
    doc = _obj(doc, "the request")
    n = 0
    for rs in _list(_field(doc, "resourceSpans", "resource_spans"), "resourceSpans"):
        rs = _obj(rs, "a resourceSpans item")
        res = rs.get("resource")
        if isinstance(res, dict):
            _check_count(len(_list(res.get("attributes"), "resource attributes")), limits.max_attributes, "attributes on a resource")
        for ss in _list(_field(rs, "scopeSpans", "scope_spans"), "scopeSpans"):
            ss = _obj(ss, "a scopeSpans item")
            spans = _list(ss.get("spans"), "spans")
            n += len(spans)
            if n > limits.max_spans:
                raise OtlpError(f"request has more than {limits.max_spans} spans")
            for sp in spans:
                sp = _obj(sp, "a span")
                events = _list(sp.get("events"), "events")
                links = _list(sp.get("links"), "links")
                _check_span_counts(len(_list(sp.get("attributes"), "attributes")), len(events), len(links), limits)
                _hex_to_b64(sp, "traceId", "trace_id", "traceId")
                _hex_to_b64(sp, "spanId", "span_id", "spanId")
                _hex_to_b64(sp, "parentSpanId", "parent_span_id", "parentSpanId")
                for ev in events:
                    _check_count(len(_list(_obj(ev, "an event").get("attributes"), "event attributes")), limits.max_attributes, "attributes on a span event")
                for ln in links:
                    ln = _obj(ln, "a link")
                    _check_count(len(_list(ln.get("attributes"), "link attributes")), limits.max_attributes, "attributes on a span link")
                    _hex_to_b64(ln, "traceId", "trace_id", "link traceId")
                    _hex_to_b64(ln, "spanId", "span_id", "link spanId")
    check_json_types(doc)
    req = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, req, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
        raise OtlpError(f"invalid OTLP JSON: {str(e)[:300]}") from None
    return req


def _tags(attrs: Iterable[KeyValue]) -> tuple[list[str], str, list[KeyValue]]:
    """Scalar attributes as ``key=value`` tags, their type letters, the other attributes."""
    tags: list[str] = []
    types: list[str] = []
    other: list[KeyValue] = []
    for kv in attrs:
        v = kv.value
        which = v.WhichOneof("value")
        key = kv.key
        if "=" in key or kv.key_strindex:
            which = None
        if which == "string_value":
            tags.append(f"{key}={v.string_value}")
            types.append("s")
        elif which == "int_value":
            tags.append(f"{key}={v.int_value}")
            types.append("i")
        elif which == "bool_value":
            tags.append(f"{key}={'true' if v.bool_value else 'false'}")
            types.append("b")
        elif which == "double_value":
            tags.append(f"{key}={v.double_value!r}")
            types.append("d")
        else:
            other.append(KeyValue.FromString(kv.SerializeToString()))
            types.append("x")
    return tags, "".join(types), other


def service_of(attrs: Iterable[KeyValue]) -> str:
    """``service.name`` of a resource's attributes, else :data:`UNKNOWN_SERVICE`."""
    for kv in attrs:
        if kv.key == "service.name" and kv.value.WhichOneof("value") == "string_value" and kv.value.string_value:
            return kv.value.string_value
    return UNKNOWN_SERVICE


def _check_ids(sp: Span) -> None:
    if len(sp.trace_id) != 16 or not any(sp.trace_id):
        raise OtlpError(f"span {sp.name[:64]!r}: trace id must be 16 bytes, not all zero (got {len(sp.trace_id)} bytes)")
    if len(sp.span_id) != 8 or not any(sp.span_id):
        raise OtlpError(f"span {sp.name[:64]!r}: span id must be 8 bytes, not all zero (got {len(sp.span_id)} bytes)")
    if len(sp.parent_span_id) not in (0, 8):
        raise OtlpError(f"span {sp.name[:64]!r}: parent span id must be empty or 8 bytes (got {len(sp.parent_span_id)})")
    for ln in sp.links:
        if len(ln.trace_id) != 16 or len(ln.span_id) != 8:
            raise OtlpError(f"span {sp.name[:64]!r}: a link needs a 16-byte trace id and an 8-byte span id")


def to_chunk(req: ExportTraceServiceRequest, now_ns: int, limits: SpanLimits, body: bytes | None = None) -> tuple[SpanChunk, int, str]:
    """The request's acceptable spans as a :class:`SpanChunk`, how many were rejected and
    why (see the module docstring). ``body``: the request's protobuf bytes, when the caller
    has them (else ``req`` is serialized). The compiled scan (:mod:`fleetprof.traces.scan`)
    does the work; a request it declines takes :func:`to_chunk_exact`, with the same result
    (or error). May consume ``req``."""
    raw = body if body is not None else req.SerializeToString()
    sc = scan(raw, limits.max_spans, limits.max_attributes, limits.max_events, limits.max_links)
    if sc is None:
        return to_chunk_exact(req, now_ns, limits)
    resources, scopes, services, res_why = _headers(req, limits)
    buf = np.frombuffer(raw, dtype=np.uint8)
    num = sc.num
    n = num.shape[1]
    start = num[1].view(np.uint64)
    end = num[2].view(np.uint64)
    latest = max(0, now_ns + limits.max_future_ns)
    times_ok = (start > 0) & (end >= start) & (start <= np.uint64(min(latest, 2**64 - 1))) & (end < np.uint64(2**63))
    verdict = _verdicts(times_ok, sc.strs[1], num[7], num[8], num[4], res_why, services, limits)
    ok = verdict == 0
    tag_flat = _strings(sc.tag_offsets, sc.tag_data)
    if len(sc.double_at):
        mask = np.zeros(len(tag_flat), dtype=bool)
        mask[sc.double_at] = True
        texts = [tag_flat[int(i)].as_py() + repr(float(v)) for i, v in zip(sc.double_at, sc.double_bits.view(np.float64), strict=True)]
        tag_flat = pc.replace_with_mask(tag_flat, pa.array(mask), pa.array(texts, pa.large_string()))
    list_off = np.zeros(n + 1, np.int64)
    np.cumsum(num[6], out=list_off[1:])
    res = num[4]
    cols = {
        "name": _slices(buf, sc.strs[0], sc.strs[1]), "kind": _small(np.where(ok, num[0], 0), "span kind"),
        "start_ns": num[1], "duration_ns": num[2] - num[1],
        "status_code": _small(np.where(ok, num[3], 0), "status code"), "status_message": _slices(buf, sc.strs[2], sc.strs[3]),
        "service": pl.Series(services or [""], dtype=pl.Utf8).gather(res), "resource": res.astype(np.int32),
        "scope": num[5].astype(np.int32),
        "extra": pl.from_arrow(pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(sc.extra_offsets), pa.py_buffer(sc.extra_data)])),
        "tags": pl.from_arrow(pa.LargeListArray.from_arrays(pa.array(list_off), tag_flat)),
        "tag_types": pl.from_arrow(_strings(sc.types_offsets, sc.types_data)),
    }
    rejected = int(n - np.count_nonzero(ok))
    why = ""
    if rejected:
        i = int(np.flatnonzero(~ok)[0])
        name = bytes(buf[sc.strs[0, i]:sc.strs[0, i] + min(int(sc.strs[1, i]), 256)]).decode("utf-8", "replace")
        why = _why(int(verdict[i]), name, int(start[i]), int(end[i]), int(sc.strs[1, i]), int(num[7, i]), int(num[8, i]),
                   res_why[num[4, i]], services[num[4, i]], limits)
    table = _table(sc.ids, cols, resources, scopes)
    return (_kept(table, ok) if rejected else table), rejected, why


def _kept(table: SpanTable, ok: np.ndarray) -> SpanTable:
    """The rows of ``table`` where ``ok``, with only the resources and scopes they use (a
    rejected resource is not stored)."""
    t = table.take(np.flatnonzero(ok))
    used_r, res = np.unique(t.cols.get_column("resource").to_numpy(), return_inverse=True)
    used_s, scope = np.unique(t.cols.get_column("scope").to_numpy(), return_inverse=True)
    cols = t.cols.with_columns(resource=pl.Series(res.reshape(-1).astype(np.int32)), scope=pl.Series(scope.reshape(-1).astype(np.int32)))
    return SpanTable(t.trace_hi, t.trace_lo, t.span, t.parent, cols,
                     [t.resources[i] for i in used_r.tolist()], [t.scopes[i] for i in used_s.tolist()])


def _headers(req: ExportTraceServiceRequest, limits: SpanLimits) -> tuple[list[bytes], list[bytes], list[str], list[str]]:
    """Serialized resources (without scope spans), scopes (without spans), each
    resource's service and why its spans are rejected (``""``: they are not), in wire order."""
    resources: list[bytes] = []
    scopes: list[bytes] = []
    services: list[str] = []
    why: list[str] = []
    for rs in req.resource_spans:
        services.append(service_of(rs.resource.attributes))
        why.append(_resource_problem(rs.resource.attributes, limits))
        resources.append(ResourceSpans(resource=rs.resource, schema_url=rs.schema_url).SerializeToString(deterministic=True))
        for ss in rs.scope_spans:
            scopes.append(ScopeSpans(scope=ss.scope, schema_url=ss.schema_url).SerializeToString(deterministic=True))
    return resources, scopes, services, why


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _resource_problem(attrs: Iterable[KeyValue], limits: SpanLimits) -> str:
    """Why a resource's spans are rejected for a length limit, ``""`` when they are not."""
    for kv in attrs:
        v = kv.value
        text = v.string_value if v.WhichOneof("value") == "string_value" else None
        if kv.key == "service.name" and text and len(text) > limits.max_service_name_length:
            return f"its service.name of {len(text)} characters is longer than the limit of {limits.max_service_name_length}"
        if (k := _utf8_len(kv.key)) > limits.max_key_length:
            return f"its resource has an attribute key of {k} bytes, longer than the limit of {limits.max_key_length}"
        if text is not None and (n := _utf8_len(text)) > limits.max_value_length:
            return f"its resource attribute {kv.key[:64]!r} has a value of {n} bytes, longer than the limit of {limits.max_value_length}"
    return ""


_OK, _RESOURCE, _TIMES, _NAME, _KEY, _VALUE, _SERVICES = range(7)


def _verdicts(times_ok: np.ndarray, name_len: np.ndarray, key_len: np.ndarray, value_len: np.ndarray, res: np.ndarray,
              res_why: Sequence[str], services: Sequence[str], limits: SpanLimits) -> np.ndarray:
    """Per span, 0 when it is kept, else the first reason it is rejected for (the order of
    the module docstring)."""
    code = np.zeros(len(times_ok), np.int8)
    res = np.asarray(res, dtype=np.int64)
    code[np.asarray(value_len) > limits.max_value_length] = _VALUE
    code[np.asarray(key_len) > limits.max_key_length] = _KEY
    code[np.asarray(name_len) > limits.max_name_length] = _NAME
    code[~np.asarray(times_ok, dtype=bool)] = _TIMES
    res_bad = np.asarray([bool(w) for w in res_why] or [False], dtype=bool)
    code[res_bad[res]] = _RESOURCE
    kept = code == _OK
    has = np.bincount(res[kept], minlength=len(services)) > 0
    code[kept & ~_within_budget(services, has, limits)[res]] = _SERVICES
    return code


def _within_budget(services: Sequence[str], has: np.ndarray, limits: SpanLimits) -> np.ndarray:
    """Per resource: whether its service is among the first ``max_services`` distinct
    services (of the resources that keep spans, ``has``) within ``services_budget``."""
    out = np.ones(max(len(services), 1), dtype=bool)
    admitted: set[str] = set()
    cost = 0
    for r, svc in enumerate(services):
        if not has[r] or svc in admitted:
            continue
        c = services_cost([svc])
        if len(admitted) >= limits.max_services or cost + c > limits.services_budget:
            out[r] = False
            continue
        admitted.add(svc)
        cost += c
    return out


def _why(code: int, name: str, start: int, end: int, name_len: int, key_len: int, value_len: int, res_why: str,
         service: str, limits: SpanLimits) -> str:
    """The ``partial_success`` message of a span rejected for ``code`` (see :func:`_verdicts`)."""
    span = f"span {name[:64]!r}"
    if code == _RESOURCE:
        return f"{span}: {res_why}"
    if code == _TIMES:
        return f"{span} has impossible times (start {start}, end {end})"
    if code == _NAME:
        return f"{span}: a name of {name_len} bytes is longer than the limit of {limits.max_name_length}"
    if code == _KEY:
        return f"{span}: an attribute key of {key_len} bytes is longer than the limit of {limits.max_key_length}"
    if code == _VALUE:
        return f"{span}: a string attribute value of {value_len} bytes is longer than the limit of {limits.max_value_length}"
    return (f"{span}: its service {service[:64]!r} is past the limit of {limits.max_services} services "
            f"({limits.services_budget} bytes of service names) per request")


def _strings(offsets: np.ndarray, data: np.ndarray) -> pa.LargeStringArray:
    return pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))


def _slices(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> pl.Series:
    """The strings at ``buf[start:start + len]`` as one column (a vectorised gather)."""
    offs = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=offs[1:])
    idx = np.repeat(starts - offs[:-1], lens) + np.arange(offs[-1], dtype=np.int64)
    return pl.from_arrow(_strings(offs, buf[idx]))  # type: ignore[return-value]


def _small(values: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    """``values`` as int8, :class:`OtlpError` for one outside 0..127 (kinds and status
    codes are small enums; anything else is a broken request)."""
    a = np.asarray(values, dtype=np.int64)
    bad = (a < 0) | (a > 127)
    if bad.any():
        raise OtlpError(f"{what} {int(a[bad][0])} is out of range")
    return a.astype(np.int8)


def _u64(parts: Sequence[bytes], width: int) -> np.ndarray:
    return np.frombuffer(b"".join(parts), dtype=">u8").reshape(-1, width // 8).astype(np.uint64)


def _table(ids: np.ndarray, cols: dict[str, Any], resources: list[bytes], scopes: list[bytes]) -> SpanTable:
    frame = pl.DataFrame([pl.Series(k, v).cast(COLUMNS[k]) for k, v in cols.items()])
    return SpanTable(ids[0], ids[1], ids[2], ids[3], frame, resources, scopes)


def to_chunk_exact(req: ExportTraceServiceRequest, now_ns: int, limits: SpanLimits) -> tuple[SpanChunk, int, str]:
    """:func:`to_chunk` by walking the parsed message: the reference the compiled scan
    agrees with, and the path of requests the scan declines (it names their errors).
    Consumes ``req`` (its spans are modified)."""
    check_limits(req, limits)
    for rs in req.resource_spans:  # ids first: a broken request stores nothing
        for ss in rs.scope_spans:
            for sp in ss.spans:
                _check_ids(sp)
    c = _SpanLists()
    resources, scopes, services, res_why = _headers(req, limits)
    times_ok: list[bool] = []
    lengths: list[tuple[int, int, int]] = []
    raw_times: list[tuple[int, int]] = []
    latest = now_ns + limits.max_future_ns
    six = -1
    for rix, rs in enumerate(req.resource_spans):
        for ss in rs.scope_spans:
            six += 1
            for sp in ss.spans:
                start, end = sp.start_time_unix_nano, sp.end_time_unix_nano
                good = not (start <= 0 or end < start or start > latest or end >= 2**63)
                times_ok.append(good)
                raw_times.append((start, end))
                lengths.append((_utf8_len(sp.name), *_attribute_lengths(sp.attributes)))
                c.trace_id.append(sp.trace_id)
                c.span_id.append(sp.span_id)
                c.parent_span_id.append(sp.parent_span_id)
                c.name.append(sp.name)
                c.kind.append(sp.kind)
                c.start_ns.append(start if good else 0)
                c.end_ns.append(end if good else 0)
                c.status_code.append(sp.status.code)
                c.status_message.append(sp.status.message)
                c.resource.append(rix)
                c.scope.append(six)
                tags, types, other = _tags(sp.attributes)
                c.tags.append(tags)
                c.tag_types.append(types)
                for f in _CLEARED:
                    sp.ClearField(f)
                if other:
                    sp.attributes.extend(other)
                c.extra.append(sp.SerializeToString(deterministic=True))
    zero = bytes(8)
    n = len(c.span_id)
    lens = np.asarray(lengths, dtype=np.int64).reshape(n, 3).T
    res = np.asarray(c.resource, dtype=np.int64)
    verdict = _verdicts(np.asarray(times_ok, dtype=bool), lens[0], lens[1], lens[2], res, res_why, services, limits)
    ok = verdict == 0
    rejected = int(n - np.count_nonzero(ok))
    why = ""
    if rejected:
        i = int(np.flatnonzero(~ok)[0])
        why = _why(int(verdict[i]), c.name[i], raw_times[i][0], raw_times[i][1], int(lens[0, i]), int(lens[1, i]),
                   int(lens[2, i]), res_why[res[i]], services[res[i]], limits)
    tr = _u64(c.trace_id, 16)
    ids = np.stack([tr[:, 0], tr[:, 1], _u64(c.span_id, 8)[:, 0], _u64([p or zero for p in c.parent_span_id], 8)[:, 0]]) if n else np.zeros((4, 0), np.uint64)
    cols = {
        "name": pl.Series(c.name, dtype=pl.Utf8), "kind": _small(np.where(ok, np.asarray(c.kind, dtype=np.int64), 0), "span kind"),
        "start_ns": np.asarray(c.start_ns, dtype=np.int64),
        "duration_ns": np.asarray(c.end_ns, dtype=np.int64) - np.asarray(c.start_ns, dtype=np.int64),
        "status_code": _small(np.where(ok, np.asarray(c.status_code, dtype=np.int64), 0), "status code"),
        "status_message": pl.Series(c.status_message, dtype=pl.Utf8),
        "service": pl.Series(services or [""], dtype=pl.Utf8).gather(res),
        "resource": res.astype(np.int32), "scope": np.asarray(c.scope, dtype=np.int32),
        "extra": pl.Series(c.extra, dtype=pl.Binary), "tags": pl.Series(c.tags, dtype=pl.List(pl.Utf8)),
        "tag_types": pl.Series(c.tag_types, dtype=pl.Utf8),
    }
    table = _table(ids, cols, resources, scopes)
    return (_kept(table, ok) if rejected else table), rejected, why


def _attribute_lengths(attrs: Iterable[KeyValue]) -> tuple[int, int]:
    """UTF-8 bytes of the longest key and of the longest string value among ``attrs``."""
    key = value = 0
    for kv in attrs:
        key = max(key, _utf8_len(kv.key))
        if kv.value.WhichOneof("value") == "string_value":
            value = max(value, _utf8_len(kv.value.string_value))
    return key, value


def response(rejected: int, message: str) -> ExportTraceServiceResponse:
    """The export response: ``partial_success`` only when spans were rejected."""
    if rejected <= 0:
        return ExportTraceServiceResponse()
    return ExportTraceServiceResponse(partial_success=ExportTracePartialSuccess(rejected_spans=rejected, error_message=message))


def response_json(resp: ExportTraceServiceResponse) -> dict[str, Any]:
    return json_format.MessageToDict(resp)


# ---------------------------------------------------------------------------------------
# rendering


def _value(t: str, text: str) -> AnyValue:
    if t == "s":
        return AnyValue(string_value=text)
    if t == "i":
        return AnyValue(int_value=int(text))
    if t == "b":
        return AnyValue(bool_value=text == "true")
    return AnyValue(double_value=float(text))


def rebuild_span(row: dict[str, Any]) -> Span:
    """The OTLP span of one stored row (keys as the columns of :class:`SpanChunk`, ids
    as bytes; ``end_ns`` may be given as ``duration_ns``)."""
    sp = Span.FromString(row["extra"])
    types: str = row["tag_types"] or ""
    other = [KeyValue.FromString(kv.SerializeToString()) for kv in sp.attributes] if "x" in types else []
    sp.ClearField("attributes")
    tags = iter(row["tags"] or ())
    others = iter(other)
    for t in types:
        if t == "x":
            sp.attributes.append(next(others))
        else:
            k, _, v = next(tags).partition("=")
            sp.attributes.add(key=k, value=_value(t, v))
    sp.trace_id = row["trace_id"]
    sp.span_id = row["span_id"]
    parent = row["parent_span_id"]
    if parent and any(parent):
        sp.parent_span_id = parent
    sp.name = row["name"]
    sp.kind = row["kind"]
    sp.start_time_unix_nano = row["start_ns"]
    sp.end_time_unix_nano = row["end_ns"] if "end_ns" in row else row["start_ns"] + row["duration_ns"]
    if row["status_code"] or row["status_message"]:
        sp.status.code = row["status_code"]
        sp.status.message = row["status_message"]
    return sp


def spans_to_request(rows: Sequence[dict[str, Any]]) -> ExportTraceServiceRequest:
    """Rows (with ``resource`` / ``scope`` as serialized blobs) grouped back into
    resource spans and scope spans, in the order they first appear."""
    req = ExportTraceServiceRequest()
    by_res: dict[bytes, tuple[ResourceSpans, dict[bytes, ScopeSpans]]] = {}
    for row in rows:
        rkey = row["resource"]
        hit = by_res.get(rkey)
        if hit is None:
            rs = req.resource_spans.add()
            rs.MergeFromString(rkey)
            hit = by_res[rkey] = (rs, {})
        rs, scopes = hit
        skey = row["scope"]
        ss = scopes.get(skey)
        if ss is None:
            ss = scopes[skey] = rs.scope_spans.add()
            ss.MergeFromString(skey)
        ss.spans.append(rebuild_span(row))
    return req


def _ids_to_hex(d: Any) -> None:
    """OTLP JSON: trace and span ids (base64 in protobuf's JSON) as hex, in place."""
    for rs in d.get("resourceSpans", d.get("batches", [])):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for k in ("traceId", "spanId", "parentSpanId"):
                    if k in sp:
                        sp[k] = base64.b64decode(sp[k]).hex()
                for ln in sp.get("links", []):
                    for k in ("traceId", "spanId"):
                        if k in ln:
                            ln[k] = base64.b64decode(ln[k]).hex()


def otlp_json(req: ExportTraceServiceRequest) -> dict[str, Any]:
    """The OTLP JSON mapping of ``req`` (hex ids, integer enums, int64 as strings)."""
    d = json_format.MessageToDict(req, use_integers_for_enums=True)
    d.setdefault("resourceSpans", [])
    _ids_to_hex(d)
    return d


def tempo_batches(req: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """Resource spans as Tempo's API renders them (protobuf JSON: base64 ids, enum names)."""
    return [json_format.MessageToDict(rs) for rs in req.resource_spans]


def parse_trace_id(text: str) -> bytes:
    """A trace id given as 1-32 hex digits (left-padded with zeros, as Tempo accepts),
    else :class:`OtlpError`."""
    t = text.strip()
    if not 0 < len(t) <= 32:
        raise OtlpError(f"trace id {text[:40]!r} must be 1 to 32 hex digits")
    try:
        raw = binascii.unhexlify(t.rjust(32, "0"))
    except (binascii.Error, ValueError):
        raise OtlpError(f"trace id {text[:40]!r} is not hex") from None
    if not any(raw):
        raise OtlpError("trace id must not be all zero")
    return raw


def parse_span_id(value: str | bytes | int) -> bytes:
    """A span id as 8 bytes from bytes, an int, or 1-16 hex digits; :class:`OtlpError` otherwise."""
    if isinstance(value, bytes):
        if len(value) != 8:
            raise OtlpError("span id must be 8 bytes")
        return value
    if isinstance(value, int):
        if not 0 <= value < 2**64:
            raise OtlpError("span id out of range")
        return value.to_bytes(8, "big")
    t = str(value).strip()
    if not 0 < len(t) <= 16:
        raise OtlpError(f"span id {t[:40]!r} must be 1 to 16 hex digits")
    try:
        return binascii.unhexlify(t.rjust(16, "0"))
    except (binascii.Error, ValueError):
        raise OtlpError(f"span id {t[:40]!r} is not hex") from None
