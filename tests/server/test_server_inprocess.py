"""In-process (ASGI) tests: bad input, auth and tenancy, limits, metrics, query shapes.

Each bad request must answer a 4xx JSON ``{code, message}``, leave the store empty and
the server serving."""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serverutil import CPU_TYPE, PUSH, PUSH_HEADERS, pprof_bytes, push_body

from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings

QUERY = CPU_TYPE + '{service_name="svc"}'


def _client(tmp_path: Path, **overrides: object) -> Iterator[TestClient]:
    (tmp_path / "data").mkdir(exist_ok=True)
    settings = Settings.load(env={}, storage=(tmp_path / "data").as_uri(), index=f"sqlite://{tmp_path / 'index.db'}", flush_max_age_s=0.05, **overrides)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


def _objects(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def _ok_push(c: TestClient, service: str = "svc", headers: dict[str, str] | None = None, value: int = 30_000_000) -> int:
    body = push_body(service, pprof_bytes([["main", "work"]], [value]))
    return c.post(PUSH, content=body, headers={**PUSH_HEADERS, **(headers or {})}).status_code


def _bomb(n: int) -> bytes:
    return gzip.compress(b"\0" * n, compresslevel=9)


def _deep_stack() -> bytes:
    return pprof_bytes([[f"f{i}" for i in range(10_000)]], [1_000_000])


BAD_PUSHES = {
    "truncated protobuf": (gzip.compress(push_body("svc", pprof_bytes([["a", "b"]], [5]), gz=False)[:-7]), PUSH_HEADERS),
    "truncated gzip": (push_body("svc", pprof_bytes([["a"]], [5]))[:-9], PUSH_HEADERS),
    "garbage proto": (b"\xff\xff\xff\xff\x0f\x12", {"content-type": "application/proto"}),
    "gzip bomb": (_bomb(200 * 1024 * 1024), PUSH_HEADERS),
    "gzip bomb inside pprof": (push_body("svc", _bomb(200 * 1024 * 1024)), PUSH_HEADERS),
    "invalid utf-8 label": (
        gzip.compress(push_body("svc", pprof_bytes([["a"]], [5]), gz=False).replace(b"svc", b"s\xffc")),
        PUSH_HEADERS,
    ),
    "10k-deep stack": (push_body("svc", _deep_stack()), PUSH_HEADERS),
    "huge label set": (push_body("svc", pprof_bytes([["a"]], [5]), {f"k{i}": "v" for i in range(500)}), PUSH_HEADERS),
    "bad label name": (push_body("svc", pprof_bytes([["a"]], [5]), {"bad-name!": "v"}), PUSH_HEADERS),
    "wrong content type": (push_body("svc", pprof_bytes([["a"]], [5])), {"content-type": "text/plain", "content-encoding": "gzip"}),
    "json that is not a PushRequest": (b'{"series": 5}', {"content-type": "application/json"}),
    "invalid json": (b"{nope", {"content-type": "application/json"}),
    "unknown content-encoding": (b"abc", {"content-type": "application/proto", "content-encoding": "br"}),
}


@pytest.mark.parametrize("case", sorted(BAD_PUSHES))
def test_bad_push_is_4xx_json_and_writes_nothing(client: TestClient, tmp_path: Path, case: str) -> None:
    body, headers = BAD_PUSHES[case]
    r = client.post(PUSH, content=body, headers=headers)
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
    doc = r.json()
    assert doc["message"] and doc["code"] in ("invalid_argument", "resource_exhausted"), doc
    assert _objects(tmp_path) == []
    assert client.get("/healthz").status_code == 200
    assert _ok_push(client) == 200  # still serving


BAD_QUERIES = [
    "/pyroscope/render?query=process_cpu{",
    "/pyroscope/render?query=" + CPU_TYPE + '{service_name="x"',
    "/pyroscope/render?query=" + CPU_TYPE + '{service_name=~"("}',
    "/pyroscope/render?query=" + CPU_TYPE + "&from=yesterday",
    "/pyroscope/render?query=" + CPU_TYPE + "&maxNodes=-3",
    "/pyroscope/render?query=" + CPU_TYPE + "&from=now&until=now-1h",
    "/pyroscope/render",
    "/pyroscope/label-values",
    "/pyroscope/render-diff?leftQuery=" + CPU_TYPE + "&rightQuery=memory:alloc_space:bytes:space:bytes",
    "/api/v1/export?format=png&query=" + CPU_TYPE,
    "/api/v1/top?by=color&query=" + CPU_TYPE,
    "/api/v1/top?sort=up&query=" + CPU_TYPE,
    "/api/v1/labels?query={a=b}",
]


@pytest.mark.parametrize("url", BAD_QUERIES)
def test_bad_query_is_400_json(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 400, (url, r.text)
    assert r.json()["message"]


def test_bad_legacy_and_native_ingest(client: TestClient, tmp_path: Path) -> None:
    cases = [
        ("/ingest", {}, b"a;b 1\n", {}),  # no name
        ("/ingest", {"name": "app.cpu{broken"}, b"a;b 1\n", {}),
        ("/ingest", {"name": "app.cpu", "from": "tomorrow"}, b"a;b 1\n", {}),
        ("/ingest", {"name": "app.cpu", "format": "trie"}, b"a;b 1\n", {}),
        ("/ingest", {"name": "app.cpu"}, b"a;b notanumber\n", {}),
        ("/ingest", {"name": "app.cpu", "sampleRate": "0"}, b"a;b 1\n", {}),
        ("/ingest", {"name": "app.cpu", "format": "pprof"}, b"\x0a\xff\xff", {}),
        ("/ingest", {"name": "app.cpu"}, b"--x\r\nbroken", {"content-type": "multipart/form-data; boundary=x"}),
        ("/api/v1/ingest", {}, b"a;b 1\n", {}),  # no service_name
        ("/api/v1/ingest", {"service_name": "s"}, b"", {}),
        ("/api/v1/ingest", {"service_name": "s", "1bad": "v"}, b"a;b 1\n", {}),
    ]
    for path, params, body, headers in cases:
        r = client.post(path, params=params, content=body, headers=headers)
        assert 400 <= r.status_code < 500, (path, params, r.text)
        assert r.json()["message"]
    assert _objects(tmp_path) == []


def test_body_and_decompressed_limits_are_413(tmp_path: Path) -> None:
    for c in _client(tmp_path, max_body_bytes=4096, max_decompressed_bytes=64 * 1024):
        big = push_body("svc", pprof_bytes([["main", f"f{i}"] for i in range(2000)], [1] * 2000), gz=False)
        r = c.post(PUSH, content=big, headers={"content-type": "application/proto"})
        assert r.status_code == 413 and "limit" in r.json()["message"]
        r = c.post(PUSH, content=_bomb(1024 * 1024), headers=PUSH_HEADERS)
        assert r.status_code == 413 and r.json()["code"] == "resource_exhausted"
        assert _ok_push(c) == 200


def test_series_per_request_limit_is_400(tmp_path: Path) -> None:
    from fleetprof.formats.proto import push_pb2

    for c in _client(tmp_path, max_series_per_request=3):
        req = push_pb2.PushRequest()
        for i in range(5):
            s = req.series.add()
            s.labels.add(name="service_name", value=f"s{i}")
            s.samples.add(raw_profile=pprof_bytes([["a"]], [1]))
        r = c.post(PUSH, content=req.SerializeToString(), headers={"content-type": "application/proto"})
        assert r.status_code == 400 and "limit" in r.json()["message"]
        assert _objects(tmp_path) == []


def test_tenant_rate_limit_is_429_with_retry_after(tmp_path: Path) -> None:
    for c in _client(tmp_path, ingest_rate=0.001, ingest_burst=2):
        assert _ok_push(c) == 200 and _ok_push(c) == 200
        body = push_body("svc", pprof_bytes([["a"]], [1]))
        r = c.post(PUSH, content=body, headers=PUSH_HEADERS)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["code"] == "resource_exhausted"
        # another tenant has its own bucket
        assert _ok_push(c, headers={"X-Scope-OrgID": "other"}) == 200


def test_tenants_never_see_each_other(client: TestClient) -> None:
    assert _ok_push(client, "alpha-svc", {"X-Scope-OrgID": "alpha"}, value=11_000_000) == 200
    assert _ok_push(client, "beta-svc", {"X-Scope-OrgID": "beta"}, value=22_000_000) == 200
    for tenant, own, other in (("alpha", "alpha-svc", "beta-svc"), ("beta", "beta-svc", "alpha-svc")):
        h = {"X-Scope-OrgID": tenant}
        assert client.get("/api/v1/services", headers=h).json() == [own]
        assert client.get("/pyroscope/label-values", params={"label": "service_name"}, headers=h).json() == [own]
        q = CPU_TYPE + f'{{service_name="{other}"}}'
        assert client.get("/pyroscope/render", params={"query": q}, headers=h).json()["flamebearer"]["numTicks"] == 0
    assert client.get("/api/v1/services").json() == []  # anonymous
    assert client.get("/api/v1/services", headers={"X-Scope-OrgID": "bad tenant!"}).status_code == 400


def test_token_auth_scopes_and_tenant_binding(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": {
        "w-acme": {"tenant": "acme", "scopes": ["write"]},
        "r-acme": {"tenant": "acme", "scopes": ["read"]},
        "rw-zed": {"tenant": "zed", "scopes": ["read", "write"]},
    }}))
    for c in _client(tmp_path, auth_file=str(tokens)):
        assert _ok_push(c) == 401
        assert _ok_push(c, headers={"Authorization": "Bearer nope"}) == 401
        assert _ok_push(c, headers={"Authorization": "Bearer r-acme"}) == 403
        assert _ok_push(c, headers={"Authorization": "Bearer w-acme", "X-Scope-OrgID": "zed"}) == 403
        assert _ok_push(c, headers={"Authorization": "Bearer w-acme"}) == 200
        basic = "Basic " + base64.b64encode(b"12345:rw-zed").decode()
        assert _ok_push(c, "zed-svc", headers={"Authorization": basic}) == 200
        assert c.get("/api/v1/services").status_code == 401
        assert c.get("/api/v1/services", headers={"Authorization": "Bearer w-acme"}).status_code == 403
        assert c.get("/api/v1/services", headers={"Authorization": "Bearer r-acme"}).json() == ["svc"]
        assert c.get("/api/v1/services", headers={"Authorization": basic}).json() == ["zed-svc"]
        r = c.get("/api/v1/services")
        assert r.json()["code"] == "unauthenticated" and "www-authenticate" in r.headers


def test_render_labels_native_routes_and_metrics(client: TestClient) -> None:
    body = push_body("svc", pprof_bytes([["main", "a", "b"], ["main", "c"]], [30_000_000, 10_000_000]), {"env": "prod"})
    assert client.post(PUSH, content=body, headers=PUSH_HEADERS).status_code == 200
    r = client.post(PUSH, content=json.dumps({"series": [{"labels": [{"name": "service_name", "value": "svc"}, {"name": "__name__", "value": "process_cpu"}, {"name": "env", "value": "dev"}],
                    "samples": [{"rawProfile": base64.b64encode(pprof_bytes([["main", "c"]], [5_000_000])).decode()}]}]}), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json() == {}
    doc = client.get("/pyroscope/render", params={"query": QUERY, "from": "now-1h", "until": str(time.time_ns() // 10**6 + 60_000)}).json()
    assert doc["flamebearer"]["numTicks"] == 45_000_000
    assert sum(doc["timeline"]["samples"]) == 45_000_000 and doc["timeline"]["durationDelta"] >= 10
    assert set(doc["flamebearer"]["names"]) == {"total", "main", "a", "b", "c"}
    only_prod = client.get("/pyroscope/render", params={"query": CPU_TYPE + '{service_name="svc",env!="dev"}'}).json()
    assert only_prod["flamebearer"]["numTicks"] == 40_000_000
    assert client.get("/pyroscope/label-names").json() == ["env", "service_name"]
    assert client.get("/pyroscope/label-values", params={"label": "env"}).json() == ["dev", "prod"]
    assert client.get("/api/v1/labels/env/values", params={"query": '{env=~"p.*"}'}).json() == ["prod"]
    assert client.get("/api/v1/profile-types").json() == [CPU_TYPE]
    top = client.get("/api/v1/top", params={"query": QUERY, "limit": 2}).json()
    assert top["total"] == 45_000_000 and top["functions"][0]["name"] == "b"
    by_total = client.get("/api/v1/top", params={"query": QUERY, "limit": 1, "sort": "total"}).json()["functions"]
    assert [(f["name"], f["total"]) for f in by_total] == [("main", 45_000_000)]
    tree = client.get("/api/v1/flamegraph", params={"query": QUERY}).json()
    assert tree["total"] == 45_000_000
    tl = client.get("/api/v1/timeline", params={"query": QUERY}).json()
    assert sum(tl["values"]) == 45_000_000
    folded = client.get("/api/v1/export", params={"query": QUERY, "format": "folded"}).text
    assert sorted(folded.split("\n")) == ["", "main;a;b 30000000", "main;c 15000000"]
    pp = client.get("/api/v1/export", params={"query": QUERY, "format": "pprof"})
    assert pp.status_code == 200 and pp.content[:2] == b"\x1f\x8b"
    diff = client.get("/pyroscope/render-diff", params={"leftQuery": CPU_TYPE + '{env="prod"}', "rightQuery": CPU_TYPE + '{env="dev"}'}).json()
    assert diff["flamebearer"]["numTicks"] == 45_000_000 and diff["metadata"]["format"] == "double"
    svg = client.get("/api/v1/export", params={"query": QUERY, "format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    html = client.get("/api/v1/export", params={"query": QUERY, "format": "html"})
    assert html.status_code == 200 and b"<html" in html.content.lower()
    speed = client.get("/api/v1/export", params={"query": QUERY, "format": "speedscope"}).json()
    assert "profiles" in speed
    dsvg = client.get("/api/v1/diff", params={"leftQuery": CPU_TYPE + '{env="prod"}', "rightQuery": CPU_TYPE + '{env="dev"}', "format": "svg"})
    assert dsvg.status_code == 200 and b"<svg" in dsvg.content
    page = client.get("/")
    assert page.status_code == 200 and ("/explorer/assets/app.js" in page.text or "make ui" in page.text)
    metrics = client.get("/metrics").text
    assert 'fleetprof_ingest_requests_total{route="push",status="ok"} 2.0' in metrics
    assert "fleetprof_segment_bytes_bucket" in metrics and "fleetprof_query_seconds_count" in metrics
    assert client.get("/readyz").json() == {"status": "ready"}


def test_legacy_ingest_formats_and_multipart(client: TestClient) -> None:
    r = client.post("/ingest", params={"name": "leg.cpu{env=a}", "from": str(int(time.time())), "sampleRate": "100", "spyName": "pyspy"}, content=b"main;x 3\nmain;y 1\n")
    assert r.status_code == 200, r.text
    r = client.post("/ingest", params={"name": "leg.cpu{env=b}", "format": "lines", "from": str(time.time_ns())}, content=b"main;x\nmain;x\n")
    assert r.status_code == 200, r.text
    pprof = pprof_bytes([["main", "z"]], [70_000_000])
    stc = json.dumps({"cpu": {"units": "samples", "display-name": "cpu", "sampled": True}}).encode()
    r = client.post("/ingest", params={"name": "leg.cpu{env=c}", "from": "now-10s", "until": "now", "spyName": "gospy"},
                    files={"profile": ("profile.pprof", pprof, "application/octet-stream"), "sample_type_config": ("sample_type_config.json", stc, "application/json")})
    assert r.status_code == 200, r.text
    got = client.get("/api/v1/export", params={"query": CPU_TYPE + '{service_name="leg"}', "format": "folded"}).text
    assert sorted(got.split("\n")) == ["", "main;x 50000000", "main;y 10000000", "main;z 70000000"]
    assert client.get("/pyroscope/label-values", params={"label": "env"}).json() == ["a", "b", "c"]
    r = client.post("/api/v1/ingest", params={"service_name": "nat", "region": "eu"}, content=pprof)
    assert r.status_code == 200, r.text
    assert client.get("/api/v1/labels/region/values").json() == ["eu"]


def test_retention_sweep_deletes_only_expired_segments(tmp_path: Path) -> None:
    from fleetprof.server.app import sweep_retention

    for c in _client(tmp_path, retention_s=3600.0, retention_tenants={"keep": 0.0}):
        old = str(time.time_ns() - 3 * 3600 * 10**9)
        for tenant in ("anonymous", "keep"):
            r = c.post("/api/v1/ingest", params={"service_name": "old", "time": old}, content=b"main;a 1\n", headers={"X-Scope-OrgID": tenant})
            assert r.status_code == 200, r.text
        assert _ok_push(c, "fresh") == 200
        st = c.app.state.fleetprof  # type: ignore[attr-defined]
        assert sweep_retention(st) == 1
        assert c.get("/api/v1/services", params={"from": "now-1d"}).json() == ["fresh"]
        assert c.get("/api/v1/services", params={"from": "now-1d"}, headers={"X-Scope-OrgID": "keep"}).json() == ["old"]
        assert sweep_retention(st) == 0


def test_legacy_average_aggregation_averages_profiles(client: TestClient) -> None:
    # Pyroscope's aggregationType=average (gauges such as in-use memory): a range shows the
    # average of the series' profiles, not their sum; summed series beside it stay summed.
    now = int(time.time()) - 60
    ptype = "memory:inuse_space:bytes:space:bytes"
    for k, v in enumerate((30, 60, 90)):
        params = {"name": "gauge.inuse_space{env=a}", "from": str(now + 10 * k), "until": str(now + 10 * k + 10), "aggregationType": "average", "units": "bytes"}
        r = client.post("/ingest", params=params, content=f"main;grow {v}\n".encode())
        assert r.status_code == 200, r.text
    for k in range(2):
        r = client.post("/ingest", params={"name": "gauge.inuse_space{env=b}", "from": str(now + 10 * k), "aggregationType": "sum"}, content=b"main;other 5\n")
        assert r.status_code == 200, r.text
    span = {"from": str(now - 10), "until": str(now + 40)}
    got = client.get("/api/v1/export", params={"query": ptype + '{service_name="gauge"}', "format": "folded", **span}).text
    assert sorted(got.split("\n")) == ["", "main;grow 60", "main;other 10"]
    r = client.get("/pyroscope/render", params={"query": ptype + '{service_name="gauge",env="a"}', "format": "json", **span})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["flamebearer"]["numTicks"] == 60
    assert sorted(x for x in body["timeline"]["samples"] if x) == [30, 60, 90]  # one profile per 10 s step
    assert client.get("/pyroscope/label-values", params={"label": "__aggregation__"}).json() == ["average"]
    r = client.post("/ingest", params={"name": "gauge.inuse_space", "aggregationType": "median"}, content=b"main 1\n")
    assert r.status_code == 400 and "aggregationType" in r.json()["message"]


def test_profile_type_without_period_type_is_selectable(client: TestClient) -> None:
    from fleetprof.formats.proto import profile_pb2

    p = profile_pb2.Profile()
    p.string_table.extend(["", "alloc_space", "bytes", "main", "grow"])
    p.sample_type.add(type=1, unit=2)  # no period_type: the type id ends in "::"
    p.function.add(id=1, name=3)
    p.function.add(id=2, name=4)
    p.location.add(id=1).line.add(function_id=1)
    p.location.add(id=2).line.add(function_id=2)
    p.sample.add(location_id=[2, 1], value=[4096])
    r = client.post("/api/v1/ingest", params={"service_name": "noperiod", "name": "memory"}, content=p.SerializeToString())
    assert r.status_code == 200, r.text
    ptype = "memory:alloc_space:bytes::"
    assert ptype in client.get("/api/v1/profile-types").json()
    got = client.get("/api/v1/export", params={"query": ptype + '{service_name="noperiod"}', "format": "folded", "from": "now-1h"}).text
    assert got.strip() == "main;grow 4096"
    r = client.get("/pyroscope/render", params={"query": ptype + '{service_name="noperiod"}', "format": "json", "from": "now-1h"})
    assert r.status_code == 200 and r.json()["flamebearer"]["numTicks"] == 4096


def test_retention_sweep_ages_far_future_data_by_its_write_time(tmp_path: Path) -> None:
    from fleetprof.metastore.index import SegmentEntry
    from fleetprof.segment.keys import new_segment_id, segment_key
    from fleetprof.server.app import sweep_retention

    day = 86_400_000
    now = time.time_ns() // 1_000_000
    for c in _client(tmp_path, retention_s=30 * 86_400.0):
        st = c.app.state.fleetprof  # type: ignore[attr-defined]
        ids = []
        for written in (now - 40 * day, now - day):  # far-future data written long ago, recently
            sid = new_segment_id(written)
            far = now + 365 * day
            e = SegmentEntry(tenant="anonymous", segment_id=sid, level=0, services=("x",), profile_types=("cpu",),
                             min_time_ms=far, max_time_ms=far + 1, key=segment_key("anonymous", 0, sid, far),
                             bytes=1, samples=1, created_ms=written)
            st.store.put(e.key, b"segment")
            st.index.add(e)
            ids.append(sid)
        assert sweep_retention(st, now) == 1
        assert [e.segment_id for e in st.index.query("anonymous", 0, 2**62)] == ids[1:]
