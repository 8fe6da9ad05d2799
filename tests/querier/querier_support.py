"""Fixtures for the querier tests: the client's own copy of Pyroscope's .proto definitions
compiled with protoc in the test (into a private descriptor pool, so they never mix with
the server package's modules), a Connect client, and a real server seeded with real pprof
fixtures and generated profiles for two tenants."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import PUSH, PUSH_HEADERS, pprof_bytes, push_body, server_list, start_server  # noqa: E402

from fleetprof.formats.proto import profile_pb2  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "pprof"
PROTOS = ("types/v1/types.proto", "google/v1/profile.proto", "querier/v1/querier.proto", "settings/v1/setting.proto")
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
TENANT_A, TENANT_B = "team-a", "team-b"


class Protos:
    """Message classes and enums of the compiled definitions, by full name."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self.pool = pool

    def __call__(self, full_name: str, **fields: Any) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))(**fields)

    def cls(self, full_name: str) -> Any:
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))

    def enum(self, full_name: str, value: str) -> int:
        return self.pool.FindEnumTypeByName(full_name).values_by_name[value].number


@pytest.fixture(scope="session")
def pb(tmp_path_factory: pytest.TempPathFactory) -> Protos:
    root = tmp_path_factory.mktemp("protos")
    for rel in PROTOS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel == "google/v1/profile.proto":  # pprof's message under Pyroscope's package name
            text = (REPO / "fleetprof" / "formats" / "proto" / "profile.proto").read_text()
            text = text.replace("package perftools.profiles;", "package google.v1;")
        else:
            text = (HERE / "proto" / rel).read_text()
        (root / rel).write_text(text)
    out = root / "set.pb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{root}", "--include_imports",
                    f"--descriptor_set_out={out}", *PROTOS], check=True, cwd=root)
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return Protos(pool)


class Connect:
    """A Connect unary client over httpx in binary (``proto``) or JSON codec."""

    def __init__(self, url: str, codec: str, headers: dict[str, str] | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.codec = codec
        self.headers = headers or {}

    def raw(self, procedure: str, request: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        if self.codec == "proto":
            body, ctype = request.SerializeToString(), "application/proto"
        else:
            body, ctype = json_format.MessageToJson(request).encode(), "application/json"
        h = {"Content-Type": ctype, "Connect-Protocol-Version": "1", **self.headers, **(headers or {})}
        return self.http.post(f"/{procedure}", content=body, headers=h)

    def call(self, procedure: str, request: Any, response_cls: Any, headers: dict[str, str] | None = None) -> Any:
        r = self.raw(procedure, request, headers)
        assert r.status_code == 200, (procedure, r.status_code, r.text)
        out = response_cls()
        if self.codec == "proto":
            assert r.headers["content-type"].startswith("application/proto")
            out.ParseFromString(r.content)
        else:
            assert r.headers["content-type"].startswith("application/json")
            json_format.Parse(r.text, out)
        return out


def fixture_pprof(name: str, time_ns: int) -> bytes:
    """A real pprof fixture re-stamped at ``time_ns`` (the server rejects old times)."""
    p = profile_pb2.Profile.FromString(gzip.decompress((FIXTURES / name).read_bytes()))
    p.time_nanos = time_ns
    return gzip.compress(p.SerializeToString())


def push(url: str, tenant: str, service: str, pprof: bytes, labels: dict[str, str], name: str = "process_cpu",
         headers: dict[str, str] | None = None) -> None:
    r = httpx.post(url + PUSH, content=push_body(service, pprof, labels, name=name),
                   headers={**PUSH_HEADERS, "X-Scope-OrgID": tenant, **(headers or {})}, timeout=60)
    assert r.status_code == 200, r.text


def wait_for(url: str, tenant: str, services: set[str], headers: dict[str, str] | None = None) -> None:
    """Until the tenant's services are queryable (deadline, no fixed sleep)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = time.time_ns() // 1_000_000
        r = httpx.get(url + "/api/v1/services", params={"from": str(now - 3_600_000), "until": str(now + 600_000)},
                      headers={"X-Scope-OrgID": tenant, **(headers or {})})
        if r.status_code == 200 and services <= set(r.json()):
            return
        time.sleep(0.05)
    raise AssertionError(f"services {services} of {tenant} never became queryable")


@pytest.fixture(scope="module")
def servers() -> Iterator[list[Any]]:
    yield from server_list()


def seed(url: str, now_ns: int, headers_a: dict[str, str] | None = None, headers_b: dict[str, str] | None = None) -> None:
    """Tenant A: the real Go CPU and heap fixtures (service ``api``) and generated CPU
    profiles of ``worker`` in two envs at two times; tenant B: one ``secret`` service."""
    minute = 60 * 10**9
    push(url, TENANT_A, "api", fixture_pprof("pyroscope/cpu.pb.gz", now_ns - 7 * minute), {"env": "prod"}, headers=headers_a)
    push(url, TENANT_A, "api", fixture_pprof("pyroscope/heap.pb.gz", now_ns - 7 * minute), {"env": "prod"}, name="memory", headers=headers_a)
    for env, scale in (("prod", 3), ("dev", 1)):
        for k, t in enumerate((now_ns - 20 * minute, now_ns - 5 * minute)):
            body = pprof_bytes([["main", "handle", "parse"], ["main", "handle", "render"], ["main", "gc"]],
                               [scale * 10_000_000 * (k + 1), scale * 20_000_000, 5_000_000], time_ns=t)
            push(url, TENANT_A, "worker", body, {"env": env, "version": f"1.{k}"}, headers=headers_a)
    push(url, TENANT_B, "secret", pprof_bytes([["hidden", "stuff"]], [70_000_000], time_ns=now_ns - 3 * minute),
         {"env": "prod"}, headers=headers_b)
    wait_for(url, TENANT_A, {"api", "worker"}, headers_a)
    wait_for(url, TENANT_B, {"secret"}, headers_b)


@pytest.fixture(scope="module")
def seeded(servers: list[Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("querier-server")
    (tmp / "data").mkdir()
    srv = start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", tmp=tmp)
    now_ns = time.time_ns()
    seed(srv.url, now_ns)
    now_ms = now_ns // 1_000_000
    return {"url": srv.url, "start": now_ms - 3_600_000, "end": now_ms + 60_000}


def native(url: str, path: str, tenant: str, **params: Any) -> Any:
    r = httpx.get(url + path, params=params, headers={"X-Scope-OrgID": tenant}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json() if "json" in r.headers.get("content-type", "") else r


def dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True)
