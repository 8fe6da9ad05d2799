"""The OpenAPI document of the server (``/openapi.json``), completed by hand.

The routes read their query parameters from the request (one parser shared by the
Pyroscope-compatible and native routes) and their ingest bodies raw, so FastAPI cannot
infer them; :func:`install` adds to the generated document, per operation: the query
parameters (:data:`QUERY_PARAMS`), the ``X-Scope-OrgID`` header, the raw request bodies of
the ingest routes (:data:`BODIES`, :data:`BODY_SCHEMAS`), the media types of answers that
are not JSON (:data:`MEDIA`) and the error answer every route shares: JSON ``{code,
message}`` (:data:`ERROR_SCHEMA`); for a protobuf request to an OTLP route
(:data:`PROTO_ERRORS`) a protobuf ``google.rpc.Status``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "Connect error code, e.g. invalid_argument"},
        "message": {"type": "string", "description": "What was wrong, for a person"},
    },
}
_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 1}
_CPU = 'process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}'


def _p(name: str, schema: dict[str, Any], doc: str, example: Any = None) -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": False, "schema": schema, "description": doc}
    if example is not None:
        out["example"] = example
    return out


_RANGE = [
    _p("from", _STR, "Start: epoch s/ms/µs/ns or now-<n><unit> (default now-1h)", "now-1h"),
    _p("until", _STR, "End, same forms as from (default now)", "now"),
]
_SELECTOR = [_p("query", _STR, "Profile type and selector: <type>{label=\"v\",…}", _CPU), *_RANGE]
_MATCHERS = [_p("query", _STR, "Optional selector {label=\"v\",…} narrowing the answer", '{service_name="api"}'), *_RANGE]
_MAX_NODES = _p("maxNodes", _INT, "Most tree nodes in the answer", 1024)
_DIFF = [
    _p("leftQuery", _STR, "Base selection", _CPU), _p("rightQuery", _STR, "Compared selection", _CPU),
    _p("leftFrom", _STR, "Base start", "now-1h"), _p("leftUntil", _STR, "Base end", "now"),
    _p("rightFrom", _STR, "Compared start", "now-1h"), _p("rightUntil", _STR, "Compared end", "now"),
    _MAX_NODES,
]
_INGEST = [
    _p("name", _STR, "Application name with labels: app.cpu{env=prod}", "api.cpu{env=prod}"),
    *_RANGE,
    _p("format", {"type": "string", "enum": ["folded", "lines", "pprof", "jfr", "trie", "tree"]}, "Body format"),
    _p("sampleRate", _INT, "Samples per second of folded/lines bodies", 100),
    _p("spyName", _STR, "Agent name"),
    _p("units", _STR, "Unit of the values (samples, bytes, …)"),
    _p("aggregationType", {"type": "string", "enum": ["sum", "average"]}, "How values aggregate"),
]
QUERY_PARAMS: dict[str, list[dict[str, Any]]] = {
    "/pyroscope/render": [*_SELECTOR, _MAX_NODES, _p("format", {"type": "string", "enum": ["json"]}, "Answer format")],
    "/pyroscope/render-diff": _DIFF,
    "/pyroscope/label-names": _MATCHERS,
    "/pyroscope/label-values": [_p("label", _STR, "Label name", "service_name"), *_MATCHERS],
    "/api/v1/profile-types": _RANGE,
    "/api/v1/services": _RANGE,
    "/api/v1/labels": _MATCHERS,
    "/api/v1/labels/{name}/values": _MATCHERS,
    "/api/v1/timeline": [*_SELECTOR, _p("step", _STR, "Step: seconds or a duration (30s, 15m, 1h)", "30s")],
    "/api/v1/flamegraph": [*_SELECTOR, _MAX_NODES],
    "/api/v1/top": [
        *_SELECTOR, _p("limit", _INT, "Most rows", 20),
        _p("by", {"type": "string", "enum": ["function", "frame", "line", "file"]}, "Row key"),
        _p("sort", {"type": "string", "enum": ["self", "total"]}, "Order"),
    ],
    "/api/v1/diff": [*_DIFF, _p("format", {"type": "string", "enum": ["json", "svg"]}, "Answer format")],
    "/api/v1/export": [
        *_SELECTOR, _MAX_NODES, _p("title", _STR, "Title of SVG/HTML exports"),
        _p("format", {"type": "string", "enum": ["pprof", "folded", "speedscope", "svg", "html"]}, "Export format"),
    ],
    "/ingest": _INGEST,
    "/api/v1/ingest": [
        _p("service_name", _STR, "service_name label", "api"), _p("name", _STR, "Profile name", "process_cpu"),
        _p("format", {"type": "string", "enum": ["pprof", "folded", "lines", "speedscope", "jfr"]}, "Body format"),
    ],
    "/": _RANGE,
    "/api/traces/{trace_id}": [
        _p("start", _STR, "Earliest span end to scan, Unix seconds", "1700000000"),
        _p("end", _STR, "Latest span start to scan, Unix seconds", "1700003600"),
        _p("format", {"type": "string", "enum": ["tempo", "otlp"]}, "tempo: {batches}; otlp: {resourceSpans} with hex ids"),
    ],
    "/api/search": [
        _p("tags", _STR, "logfmt key=value pairs every matched span satisfies (span or resource attributes)",
           'http.route=/cart service.name="api"'),
        _p("service", _STR, "Service of the matched span", "api"), _p("name", _STR, "Span name", "GET /cart"),
        _p("status", {"type": "string", "enum": ["unset", "ok", "error"]}, "Span status"),
        _p("minDuration", _STR, "Go duration: spans at least this long", "100ms"),
        _p("maxDuration", _STR, "Go duration: spans at most this long", "2s"),
        _p("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Most traces", 20),
        _p("spss", {"type": "integer", "minimum": 0, "maximum": 100}, "Spans shown per trace's span set", 3),
        _p("start", _STR, "Unix seconds (default: end - the default query range)"), _p("end", _STR, "Unix seconds (default now)"),
    ],
    "/api/search/tags": [_p("start", _STR, "Unix seconds"), _p("end", _STR, "Unix seconds")],
    "/api/search/tag/{name}/values": [_p("start", _STR, "Unix seconds"), _p("end", _STR, "Unix seconds")],
    "/api/v1/traces/red": [
        _p("service", _STR, "Only this service", "api"), *_RANGE,
        _p("step", _STR, "Step: seconds or a duration (30s, 15m, 1h)", "60s"),
    ],
}
QUERY_PARAMS["/api/v2/traces/{trace_id}"] = QUERY_PARAMS["/api/traces/{trace_id}"]
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_OTLP_JSON = {"schema": {
    "type": "object", "description": "ExportTraceServiceRequest in the OTLP JSON mapping (hex ids, int64 as strings)",
    "properties": {"resourceSpans": {"type": "array", "items": {"type": "object"}}},
}}
BODY_SCHEMAS: dict[str, dict[str, Any]] = {"/v1/traces": {"application/x-protobuf": _BINARY, "application/json": _OTLP_JSON}}
"""Request bodies with a schema per media type (the other raw bodies: :data:`BODIES`)."""
PROTO_ERRORS = {"/v1/traces"}
"""Routes whose errors, for a protobuf request, are a protobuf ``google.rpc.Status`` (OTLP/HTTP)."""
BODIES: dict[str, list[str]] = {
    "/push.v1.PusherService/Push": ["application/proto", "application/json"],
    "/ingest": ["application/octet-stream", "text/plain", "multipart/form-data"],
    "/api/v1/ingest": ["application/octet-stream"],
}
MEDIA: dict[str, list[str]] = {
    "/metrics": ["text/plain"],
    "/push.v1.PusherService/Push": ["application/proto", "application/json"],
    "/ingest": ["text/plain"],
    "/api/v1/diff": ["application/json", "image/svg+xml"],
    "/api/v1/export": ["application/octet-stream", "text/plain", "application/json", "image/svg+xml", "text/html"],
    "/api/v1/analysis/{window}/{name}": ["application/json", "text/html", "application/octet-stream"],
    "/": ["text/html"],
    "/v1/traces": ["application/x-protobuf", "application/json"],
    "/api/traces/{trace_id}": ["application/json", "application/x-protobuf"],
    "/api/v2/traces/{trace_id}": ["application/json", "application/x-protobuf"],
}
"""Media types of the successful answers of routes that do not (only) answer JSON."""
UNTENANTED = {"/healthz", "/readyz", "/metrics"}
_TENANT = {
    "name": "X-Scope-OrgID", "in": "header", "required": False, "schema": _STR,
    "description": "Tenant (without auth; with auth it must match the token's tenant)",
}


def _complete(path: str, op: dict[str, Any]) -> None:
    params = [p for p in op.get("parameters", []) if p.get("in") != "query"]
    params += QUERY_PARAMS.get(path, [])
    if path not in UNTENANTED:
        params.append(_TENANT)
    if params:
        op["parameters"] = params
    if path in BODIES:
        op["requestBody"] = {"required": True, "content": {t: _BINARY for t in BODIES[path]}}
    if path in BODY_SCHEMAS:
        op["requestBody"] = {"required": True, "content": dict(BODY_SCHEMAS[path])}
    if path in MEDIA:
        op["responses"]["200"] = {"description": "OK", "content": {t: {} for t in MEDIA[path]}}
    op["responses"].pop("422", None)
    errors: dict[str, Any] = {"application/json": {"schema": ERROR_SCHEMA}}
    if path in PROTO_ERRORS:
        errors["application/x-protobuf"] = {"schema": {"type": "string", "format": "binary",
                                                       "description": "google.rpc.Status (answer to a protobuf request)"}}
    op["responses"]["4XX"] = {"description": "Error", "content": dict(errors)}
    op["responses"]["5XX"] = {"description": "Error", "content": dict(errors)}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` answer the completed document (built once, then cached)."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = default()
            for path, ops in doc.get("paths", {}).items():
                for op in ops.values():
                    _complete(path, op)
            doc.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
            doc.get("components", {}).get("schemas", {}).pop("ValidationError", None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
