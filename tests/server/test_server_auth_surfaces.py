"""What a server exposes beyond the tenant API: the operator surfaces under token auth,
tenant names in ``/metrics``, per-tenant memory under made-up tenants, the bind address
without auth, and readiness while the store refuses writes."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from serverutil import (
    PUSH,
    PUSH_HEADERS,
    REPO,
    ServerProc,
    free_port,
    pprof_bytes,
    push_body,
    server_list,
    start_server,
)

from fleetprof.server.app import create_app
from fleetprof.server.cli import bind_refusal
from fleetprof.server.settings import Settings
from fleetprof.storage.objectstore import open_store

TOKENS = {
    "rw": {"tenant": "acme-secret", "scopes": ["read", "write"]},
    "ops": {"tenant": "ops", "scopes": ["metrics"]},
}
SURFACES = ["/metrics", "/docs", "/openapi.json", "/docs/assets/swagger-ui.css"]


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


@pytest.fixture
def authed(servers: list[ServerProc], tmp_path: Path) -> ServerProc:
    (tmp_path / "tokens.json").write_text(json.dumps({"tokens": TOKENS}))
    return start_server(servers, (tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}",
                        "--auth-file", str(tmp_path / "tokens.json"), tmp=tmp_path)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", SURFACES)
def test_operator_surfaces_need_a_token_when_auth_is_on(authed: ServerProc, path: str) -> None:
    r = httpx.get(authed.url + path)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"code", "message"} and r.json()["code"] == "unauthenticated"
    r = httpx.get(authed.url + path, headers=_bearer("wrong"))
    assert r.status_code == 401


def test_metrics_needs_the_metrics_scope(authed: ServerProc) -> None:
    r = httpx.get(authed.url + "/metrics", headers=_bearer("rw"))
    assert r.status_code == 403 and "metrics" in r.json()["message"]
    r = httpx.get(authed.url + "/metrics", headers=_bearer("ops"))
    assert r.status_code == 200 and "fleetprof_ingest_requests" in r.text


def test_docs_open_to_any_valid_token_and_ask_browsers_for_it(authed: ServerProc) -> None:
    assert "Basic" in httpx.get(authed.url + "/docs").headers["www-authenticate"]
    basic = {"Authorization": "Basic " + base64.b64encode(b"me:rw").decode()}
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
        assert httpx.get(authed.url + path, headers=basic).status_code == 200, path
        assert httpx.get(authed.url + path, headers=_bearer("ops")).status_code == 200, path
    assert httpx.get(authed.url + "/healthz").status_code == 200
    assert httpx.get(authed.url + "/readyz").status_code == 200


def test_metrics_name_no_tenant_unless_configured(authed: ServerProc) -> None:
    body = push_body("api", pprof_bytes([["main", "run"]], [5]))
    assert httpx.post(authed.url + PUSH, content=body, headers={**PUSH_HEADERS, **_bearer("rw")}).status_code == 200
    text = httpx.get(authed.url + "/metrics", headers=_bearer("ops")).text
    assert "acme-secret" not in text
    assert 'fleetprof_ingest_profiles_total{tenant="other"} 1.0' in text


# ------------------------------------------------------------ bounded per-tenant state
def _settings(tmp_path: Path, **kw: Any) -> Settings:
    (tmp_path / "data").mkdir(exist_ok=True)
    return Settings.load(env={}, storage=(tmp_path / "data").as_uri(), index=f"sqlite://{tmp_path / 'index.db'}",
                         flush_max_age_s=0.05, **kw)


async def _push_as_tenants(app: Any, tenants: list[str]) -> list[int]:
    body = push_body("api", pprof_bytes([["main", "run"]], [5]))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        codes: list[int] = []
        for i in range(0, len(tenants), 250):
            rs = await asyncio.gather(*(c.post(PUSH, content=body, headers={**PUSH_HEADERS, "X-Scope-OrgID": t})
                                        for t in tenants[i:i + 250]))
            codes += [r.status_code for r in rs]
        metrics = (await c.get("/metrics")).text
    return codes + [metrics.count("fleetprof_ingest_profiles_total{")]


def test_made_up_tenants_cannot_grow_per_tenant_state(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, ingest_rate=1000.0, max_tracked_tenants=100, metrics_tenants=5))
    tenants = [f"made-up-{i}" for i in range(3000)]
    *codes, series = asyncio.run(_push_as_tenants(app, tenants))
    assert set(codes) == {200}
    st = app.state.fleetprof
    assert len(st.limiter.buckets) == 100
    assert list(st.limiter.buckets)[-1] == tenants[-1]  # least recently seen evicted
    assert len(st._tenant_counters) <= 6 and len(st._named_tenants) == 5
    assert len(st.metrics.ingest_profiles._metrics) <= 6  # 5 named + "other"
    assert series <= 6
    assert st.writer._batches == {}


def test_metrics_tenants_names_the_first_tenants_only(tmp_path: Path) -> None:
    st = create_app(_settings(tmp_path, metrics_tenants=2)).state.fleetprof
    assert [st.metrics_tenant(t) for t in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]


# ------------------------------------------------------------------------ bind address
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_no_auth(host: str) -> None:
    assert bind_refusal(host, None, False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "fleetprof.example.com"])
def test_other_binds_need_auth_or_insecure(host: str) -> None:
    assert "--insecure" in (bind_refusal(host, None, False) or "")
    assert bind_refusal(host, "tokens.json", False) is None
    assert bind_refusal(host, None, True) is None


def test_serve_refuses_an_open_bind_without_auth(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fleetprof", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
           "--storage", (tmp_path / "d").as_uri(), "--index", f"sqlite://{tmp_path / 'i.db'}"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing to serve on 0.0.0.0 without auth" in lines[0], p.stderr
    assert "Traceback" not in p.stderr


# ------------------------------------------------------------------------- readiness
class FlakyStore:
    """A real store whose writes fail while ``failing`` (a full or read-only disk)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failing = False

    def put(self, key: str, data: bytes) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        self.inner.put(key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_readyz_reports_failing_flushes_until_writes_work_again(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = FlakyStore(open_store(settings.storage))
    body = push_body("api", pprof_bytes([["main", "run"]], [5]))
    with TestClient(create_app(settings, store=store), raise_server_exceptions=False) as c:
        assert c.get("/readyz").status_code == 200
        store.failing = True
        assert c.post(PUSH, content=body, headers=PUSH_HEADERS).status_code == 503
        r = c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "unavailable"
        assert "flush failed" in r.json()["message"] and "No space left" in r.json()["message"]
        assert c.get("/readyz").status_code == 503  # no flush since: still failing
        store.failing = False
        assert c.get("/readyz").status_code == 200  # a probe write succeeds again
        assert c.post(PUSH, content=body, headers=PUSH_HEADERS).status_code == 200
        assert c.get("/readyz").status_code == 200
