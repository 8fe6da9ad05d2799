"""The official OpenTelemetry JavaScript SDK's OTLP/HTTP JSON exporter against a server
process: every field it sends comes back (binary and OTLP JSON lookups, Tempo's shape),
search finds the traces, gzip and plain bodies, token auth, and the SDK's refusals.

``otel_js/export.mjs`` (a pinned npm project, installed by ``make test``) creates the spans
and prints their ids, exact times and the request bodies its exporter sent."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from traces_support import ServerProc, server_list, start_server

OTEL_JS = Path(__file__).resolve().parent / "otel_js"
TOKEN = "js-sdk-token"
TENANT = "jsorg"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Scope-OrgID": TENANT}
TOKENS = json.dumps({"tokens": {TOKEN: {"tenant": TENANT, "scopes": ["read", "write", "metrics"]}}})
KINDS = {"GET /checkout": 2, "SELECT orders": 3, "parse rows": 1, "publish order": 4, "consume order": 5}
SAMPLED, HAS_IS_REMOTE, IS_REMOTE = 0x1, 0x100, 0x200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("js-sdk")
    for servers in server_list():
        yield start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.05",
                           tmp=tmp, env={"FLEETPROF_AUTH_TOKENS": TOKENS})


def js_export(url: str, service: str, *flags: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run ``export.mjs`` against ``url``: its exit status and its JSON report. Fails (never
    skips) when Node or the npm packages are missing."""
    node = shutil.which("node")
    assert node, "node is not on PATH: the JS SDK export test needs Node.js 20+"
    assert (OTEL_JS / "node_modules" / "@opentelemetry" / "exporter-trace-otlp-http").is_dir(), (
        "tests/traces/otel_js has no node_modules: run `make test` (or `npm ci` there)")
    args = [node, "export.mjs", "--url", url.rstrip("/") + "/v1/traces", "--service", service, *flags]
    for k, v in (headers if headers is not None else AUTH).items():
        args += ["--header", f"{k}={v}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}  # the SDK would read them
    proc = subprocess.run(args, cwd=OTEL_JS, capture_output=True, timeout=120, check=False, env=env)
    assert proc.stdout, f"export.mjs printed nothing (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}"
    return proc.returncode, json.loads(proc.stdout)


def _problems(out: dict[str, Any]) -> list[dict[str, str]]:
    """The SDK's warnings and errors, less those about its own span limits (which the
    script exceeds on purpose)."""
    return [m for m in out["logs"] if not m["message"].startswith("Dropped ")]


def _hex_ids_to_b64(doc: Any) -> Any:
    """The OTLP JSON document with hex ids as protobuf's JSON wants them (base64)."""
    if isinstance(doc, list):
        return [_hex_ids_to_b64(x) for x in doc]
    if not isinstance(doc, dict):
        return doc
    out = {k: _hex_ids_to_b64(v) for k, v in doc.items()}
    for k in ("traceId", "spanId", "parentSpanId"):
        if isinstance(out.get(k), str):
            out[k] = base64.b64encode(bytes.fromhex(out[k])).decode()
    return out


def _sent(bodies: list[dict[str, Any]]) -> dict[bytes, tuple[Span, bytes, bytes]]:
    """Each sent span by span id, with its resource and scope (serialized, with schema URLs),
    as protobuf parses the OTLP JSON the exporter sent."""
    out: dict[bytes, tuple[Span, bytes, bytes]] = {}
    for body in bodies:
        req = json_format.ParseDict(_hex_ids_to_b64(body), ExportTraceServiceRequest(), ignore_unknown_fields=True)
        out.update(_by_span_id(req))
    return out


def _by_span_id(req: ExportTraceServiceRequest) -> dict[bytes, tuple[Span, bytes, bytes]]:
    """Spans by span id, each with its resource and scope (serialized, with schema URLs). A
    status equal to the default (``{}``, which the JS SDK sends for unset) is cleared: in
    proto3 both mean "unset"."""
    out: dict[bytes, tuple[Span, bytes, bytes]] = {}
    for rs in req.resource_spans:
        res = rs.resource.SerializeToString(deterministic=True) + rs.schema_url.encode()
        for ss in rs.scope_spans:
            scope = ss.scope.SerializeToString(deterministic=True) + ss.schema_url.encode()
            for sp in ss.spans:
                if sp.HasField("status") and sp.status == Status():
                    sp.ClearField("status")
                out[sp.span_id] = (sp, res, scope)
    return out


def _otlp_spans(doc: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Spans of an OTLP JSON document by name, each with its resource spans and scope spans."""
    return {sp["name"]: (sp, rs, ss) for rs in doc["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]}


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: kv["value"] for kv in items}


def _ingested_bytes(h: httpx.Client) -> float:
    text = h.get("/metrics").text
    m = re.search(r'^fleetprof_ingest_bytes_total\{route="otlp_traces"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_js_sdk_gzip_json_export_round_trips(server: ServerProc) -> None:
    service = f"js-shop-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as h:
        before = _ingested_bytes(h)
        rc, out = js_export(server.url, service, "--gzip")
        assert (rc, out["failures"], _problems(out)) == (0, [], []), out["failures"]
        received = _ingested_bytes(h) - before
        sent_json = sum(len(json.dumps(b, separators=(",", ":")).encode()) for b in out["bodies"])
        assert 0 < received < sent_json / 2, f"{received} bytes received for {sent_json} bytes of JSON: not gzip"

        # what the SDK sends: OTLP JSON with hex ids, int64 times as strings, integer
        # attributes as JSON numbers (not strings), whole doubles as integers
        body = out["bodies"][0]
        root_sent = next(sp for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"] if sp["name"] == "GET /checkout")
        assert root_sent["spanId"] == out["spans"]["GET /checkout"]["spanId"] and isinstance(root_sent["startTimeUnixNano"], str)
        assert _attrs(root_sent["attributes"])["http.status_code"] == {"intValue": 200}
        assert _attrs(root_sent["attributes"])["app.whole_double"] == {"intValue": 2}

        tid = out["traceId"]
        remote = out["remote"]
        sent = _sent(out["bodies"])
        assert len(sent) == 5

        # binary OTLP: every span, with its resource and scope, exactly as sent
        got: dict[bytes, tuple[Span, bytes, bytes]] = {}
        for trace in (tid, remote["traceId"]):
            r = h.get(f"/api/traces/{trace}", headers={"Accept": "application/x-protobuf"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-protobuf")
            got.update(_by_span_id(ExportTraceServiceRequest.FromString(r.content)))
        assert set(got) == set(sent)
        for sid, (sp, res, scope) in sent.items():
            assert got[sid][0] == sp, f"span {sp.name!r} changed:\nsent {sp}\ngot {got[sid][0]}"
            assert got[sid][1:] == (res, scope), f"resource or scope of {sp.name!r} changed"

        # OTLP JSON: the fields one by one
        doc = h.get(f"/api/traces/{tid}", params={"format": "otlp"}).json()
        spans = _otlp_spans(doc)
        assert set(spans) == set(KINDS) - {"consume order"}
        for name, (sp, _, _) in spans.items():
            want = out["spans"][name]
            assert sp["kind"] == KINDS[name]
            assert (sp["traceId"], sp["spanId"], sp.get("parentSpanId", "")) == (tid, want["spanId"], want["parentSpanId"])
            assert (sp["startTimeUnixNano"], sp["endTimeUnixNano"]) == (want["startNs"], want["endNs"])
            assert sp["flags"] == SAMPLED | HAS_IS_REMOTE
        root, rs, ss = spans["GET /checkout"]
        assert root["status"] == {"code": 1}
        a = _attrs(root["attributes"])
        assert a["http.route"] == {"stringValue": "/checkout"} and a["http.status_code"] == {"intValue": "200"}
        assert a["app.ratio"] == {"doubleValue": 0.25} and a["app.cached"] == {"boolValue": False}
        assert a["app.tags"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}, {"stringValue": "ü"}]}}
        assert a["app.ints"] == {"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "-2"}, {"intValue": "3"}]}}
        assert a["app.numbers"] == {"arrayValue": {"values": [{"doubleValue": 1.5}, {"intValue": "2"}]}}
        assert a["app.bools"] == {"arrayValue": {"values": [{"boolValue": True}, {"boolValue": False}]}}
        assert a["app.empty"] == {"arrayValue": {}}
        assert a["app.sparse"] == {"arrayValue": {"values": [{"stringValue": "x"}, {}, {"stringValue": "y"}]}}
        assert a["app.int.big"] == {"intValue": str(2**60 + 1024)}
        assert a["app.int.max_safe"] == {"intValue": str(2**53 - 1)}
        # JSON.stringify(-(2 ** 62)) is "-4611686018427388000": the integer the receiver reads
        assert a["app.int.negative"] == {"intValue": "-4611686018427388000"}
        assert a["app.whole_double"] == {"intValue": "2"}
        assert a["app.unicode"] == {"stringValue": "héllo ✓ 日本"} and a["app.empty_string"] == {"stringValue": ""}
        assert a["weird=key"] == {"stringValue": "a=b"}
        assert [kv["key"] for kv in root["attributes"]] == [kv["key"] for kv in root_sent["attributes"]]
        res = _attrs(rs["resource"]["attributes"])
        assert res["service.name"] == {"stringValue": service} and res["telemetry.sdk.language"] == {"stringValue": "nodejs"}
        assert res["host.cpus"] == {"intValue": "8"} and res["host.load"] == {"doubleValue": 0.75} and res["host.virtual"] == {"boolValue": True}
        assert res["process.command_args"] == {"arrayValue": {"values": [{"stringValue": "node"}, {"stringValue": "export.mjs"}]}}
        assert rs["schemaUrl"] == "https://opentelemetry.io/schemas/1.26.0"
        assert ss["scope"] == {"name": "fleetprof.tests.web", "version": "2.3.4"}
        assert ss["schemaUrl"] == "https://opentelemetry.io/schemas/1.24.0"
        assert spans["SELECT orders"][2]["scope"] == {"name": "fleetprof.tests.db", "version": "0.9.0"}

        query, _, _ = spans["SELECT orders"]
        base = int(out["baseNs"])
        assert query["status"] == {"code": 2, "message": "deadline exceeded"}
        assert _attrs(query["attributes"]) == {"db.system": {"stringValue": "postgresql"}, "db.rows": {"intValue": "3"}}
        ev_sent, ev_exc = query["events"]
        assert (ev_sent["name"], ev_sent["timeUnixNano"]) == ("query.sent", str(base + 1_500_003))
        assert _attrs(ev_sent["attributes"]) == {"db.statement.bytes": {"intValue": "42"}, "db.retry": {"boolValue": False}}
        assert (ev_exc["name"], ev_exc["timeUnixNano"]) == ("exception", str(base + 2_000_007))
        exc = _attrs(ev_exc["attributes"])
        assert exc["exception.type"] == {"stringValue": "TimeoutError"} and exc["exception.message"] == {"stringValue": "deadline exceeded"}
        assert exc["exception.stacktrace"]["stringValue"].startswith("TimeoutError: deadline exceeded\n")

        # past the SDK's span limits: dropped counts; NaN and Infinity arrive as JSON null
        parse, _, _ = spans["parse rows"]
        assert (parse["droppedAttributesCount"], parse["droppedEventsCount"], parse["droppedLinksCount"]) == (8, 2, 1)
        assert len(parse["attributes"]) == 32 and parse["attributes"][:2] == [{"key": "app.nan", "value": {}}, {"key": "app.inf", "value": {}}]
        assert [(e["name"], e["timeUnixNano"]) for e in parse["events"]] == [(f"row {i}", str(base + 2_100_000 + i * 1000)) for i in range(2, 6)]
        assert [_attrs(ln["attributes"]) for ln in parse["links"]] == [{"link.i": {"intValue": str(i)}} for i in (1, 2)]

        publish, _, _ = spans["publish order"]
        consume_id = out["spans"]["consume order"]["spanId"]
        assert publish["links"] == [{"traceId": remote["traceId"], "spanId": consume_id, "traceState": "vendor=abc,other=1",
                                     "attributes": [{"key": "messaging.system", "value": {"stringValue": "sqs"}}],
                                     "flags": SAMPLED | HAS_IS_REMOTE}]

        # the second trace: continued from a remote parent, linked back to the first
        cdoc = h.get(f"/api/v2/traces/{remote['traceId']}", params={"format": "otlp"}).json()["trace"]
        consume, _, _ = _otlp_spans(cdoc)["consume order"]
        assert (consume["kind"], consume["parentSpanId"], consume["traceState"]) == (5, remote["spanId"], "vendor=abc,other=1")
        assert consume["flags"] == SAMPLED | HAS_IS_REMOTE | IS_REMOTE
        assert consume["links"][0]["traceId"] == tid and consume["links"][0]["spanId"] == publish["spanId"]
        assert _attrs(consume["links"][0]["attributes"]) == {"link.reason": {"stringValue": "follows"}, "link.n": {"intValue": "1"}}

        # Tempo's shape: base64 ids and enum names
        batches = h.get(f"/api/traces/{tid}").json()["batches"]
        tempo = {sp["name"]: sp for b in batches for ss in b["scopeSpans"] for sp in ss["spans"]}
        assert base64.b64decode(tempo["SELECT orders"]["spanId"]).hex() == query["spanId"]
        assert tempo["SELECT orders"]["kind"] == "SPAN_KIND_CLIENT"
        assert tempo["SELECT orders"]["status"] == {"code": "STATUS_CODE_ERROR", "message": "deadline exceeded"}

        # search, tags and values see the SDK's spans
        def found(**params: str) -> list[str]:
            r = h.get("/api/search", params=params)
            assert r.status_code == 200, r.text
            return sorted(t["traceID"] for t in r.json()["traces"])

        assert found(service=service) == sorted([tid, remote["traceId"]])
        assert found(service=service, status="error") == [tid]
        assert found(tags="http.route=/checkout app.int.big=1152921504606848000", service=service) == [tid]
        assert found(tags="link.reason=follows", service=service) == []  # link attributes are not span tags
        assert found(service=service, name="consume order") == [remote["traceId"]]
        assert found(service=service, minDuration="4ms") == [tid]
        assert "http.route" in h.get("/api/search/tags").json()["tagNames"]
        assert "postgresql" in h.get("/api/search/tag/db.system/values").json()["tagValues"]


def test_js_sdk_plain_json_export_is_stored(server: ServerProc) -> None:
    rc, out = js_export(server.url, "js-plain")
    assert (rc, out["failures"], _problems(out)) == (0, [], []), out["failures"]
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as h:
        r = h.get(f"/api/traces/{out['traceId']}", headers={"Accept": "application/x-protobuf"})
        assert r.status_code == 200
        got = _by_span_id(ExportTraceServiceRequest.FromString(r.content))
        sent = _sent(out["bodies"])
        assert {sid: v[0] for sid, v in got.items()} == {sid: v[0] for sid, v in sent.items() if v[0].trace_id.hex() == out["traceId"]}


def test_js_sdk_export_refusals_store_nothing(server: ServerProc) -> None:
    """A wrong token is 401; an integer attribute beyond int64 (a JS number the SDK sends
    as it is) is a 400 naming the field. The SDK reports both; nothing is stored."""
    rc, out = js_export(server.url, "js-refused", headers={"Authorization": "Bearer wrong", "X-Scope-OrgID": TENANT})
    assert rc == 1 and [f["code"] for f in out["failures"]] == [401]
    rc2, out2 = js_export(server.url, "js-refused", "--overflow")
    assert rc2 == 1 and [f["code"] for f in out2["failures"]] == [400]
    err = json.loads(out2["failures"][0]["data"])
    assert set(err) >= {"code", "message"} and "intValue" in err["message"] and "out of range" in err["message"]
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as h:
        for trace in (out["traceId"], out2["traceId"]):
            assert h.get(f"/api/traces/{trace}").status_code == 404
        assert h.get("/api/search", params={"service": "js-refused"}).json()["traces"] == []
