"""A short API fuzzing run against a real server on 127.0.0.1 (bounded example counts, a
fixed seed): every operation of ``/openapi.json`` through schemathesis, plus
hypothesis-built Push and ``/ingest`` bodies; no 5xx, every error JSON ``{code, message}``.
The long run is ``tests/stress/test_fuzz_api.py``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fuzzutil import Report, fuzz_raw, fuzz_schema, problem, seed_data
from serverutil import ServerProc, server_list, start_server

EXAMPLES = 8


@pytest.fixture(scope="module")
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


@pytest.fixture(scope="module")
def server(servers: list[ServerProc], tmp_path_factory: pytest.TempPathFactory) -> ServerProc:
    tmp = tmp_path_factory.mktemp("fuzz")
    s = start_server(servers, (tmp / "d").as_uri(), f"sqlite://{tmp / 'i.db'}", tmp=tmp)
    seed_data(s.url)
    return s


def test_problem_accepts_only_json_errors() -> None:
    assert problem(200, "text/html", b"<p>") is None
    assert problem(400, "application/json", b'{"code":"invalid_argument","message":"x"}') is None
    assert problem(500, "application/json", b'{"code":"internal","message":"x"}')
    assert problem(404, "text/plain", b"Not Found")
    assert problem(400, "application/json", b'{"detail":"x"}')
    status = b"\x08\x03\x12\x03bad"  # google.rpc.Status{code: 3, message: "bad"}
    assert problem(400, "application/x-protobuf", status, "application/x-protobuf") is None
    assert problem(400, "application/x-protobuf", status)  # only a protobuf request may get one
    assert problem(400, "application/x-protobuf", b"\x12\x03bad", "application/x-protobuf")  # no code


def test_schema_documents_every_route_and_the_error_shape(server: ServerProc) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    top = doc["paths"]["/api/v1/top"]["get"]
    assert {p["name"] for p in top["parameters"]} >= {"query", "from", "until", "limit", "by", "sort", "X-Scope-OrgID"}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            err = op["responses"]["4XX"]["content"]["application/json"]["schema"]
            assert err["required"] == ["code", "message"], path
    assert "requestBody" in doc["paths"]["/push.v1.PusherService/Push"]["post"]
    otlp = doc["paths"]["/v1/traces"]["post"]
    assert set(otlp["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}
    assert "application/x-protobuf" in otlp["responses"]["4XX"]["content"]
    search = doc["paths"]["/api/search"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"tags", "minDuration", "maxDuration", "limit", "start", "end"}


def test_fuzz_every_operation_briefly(server: ServerProc) -> None:
    report = Report()
    fuzz_schema(server.url, EXAMPLES, report)
    assert report.requests > 100
    assert not report.failures, "\n\n".join(report.failures)
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_fuzz_raw_ingest_bodies_briefly(server: ServerProc) -> None:
    report = Report()
    fuzz_raw(server.url, 60, report)
    assert report.requests >= 100
    assert not report.failures, "\n\n".join(report.failures)
    assert httpx.get(server.url + "/readyz").status_code == 200


@pytest.mark.parametrize("params", [{"from": "\u00b3"}, {"until": "\u00b2"}, {"from": "\u0661\u0662"}])
def test_fuzzer_finding_non_ascii_digit_times_are_400(server: ServerProc, params: dict[str, str]) -> None:
    """Superscript and other non-ASCII digits pass str.isdigit() but not int()."""
    r = httpx.post(server.url + "/ingest", params={"name": "api.cpu", **params}, content=b"main;run 1\n")
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_argument"
    r = httpx.get(server.url + "/api/v1/services", params=params)
    assert r.status_code == 400, r.text


def test_fuzzer_finding_top_by_line_without_line_numbers_is_400(server: ServerProc) -> None:
    q = 'process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="api"}'
    r = httpx.get(server.url + "/api/v1/top", params={"by": "line", "query": q})
    assert r.status_code == 400, r.text
    assert "line numbers" in r.json()["message"]


@pytest.mark.parametrize("tenant", ["0..", "a..b", "x.."])
def test_fuzzer_finding_tenants_with_dot_dot_are_400(server: ServerProc, tenant: str) -> None:
    """Such tenants were accepted, then refused by the analysis store's key check (500)."""
    for path in ("/api/v1/analysis", "/api/v1/services"):
        r = httpx.get(server.url + path, headers={"X-Scope-OrgID": tenant})
        assert r.status_code == 400, r.text
        assert "X-Scope-OrgID" in r.json()["message"]
