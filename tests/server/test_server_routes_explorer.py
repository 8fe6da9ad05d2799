"""The explorer's routes (``/api/v1/explorer/*``) and its page ``/``, in process."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from serverutil import CPU_TYPE, PUSH, PUSH_HEADERS, pprof_bytes, push_body

from fleetprof.server import index_page
from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings
from fleetprof.storage.objectstore import open_store
from workers.analysis_store import write_analysis_file

QUERY = CPU_TYPE + '{service_name="svc"}'


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "data").mkdir()
    settings = Settings.load(env={}, storage=(tmp_path / "data").as_uri(), index=f"sqlite://{tmp_path / 'index.db'}", flush_max_age_s=0.05)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        for region, value in (("eu", 20_000_000), ("us", 10_000_000), (None, 5_000_000)):
            labels = {"region": region} if region else {}
            r = c.post(PUSH, content=push_body("svc", pprof_bytes([["main", "work"]], [value]), labels=labels), headers=PUSH_HEADERS)
            assert r.status_code == 200, r.text
        yield c


def test_timelines_one_per_label_value(client: TestClient) -> None:
    got = client.get("/api/v1/explorer/timelines", params={"query": QUERY, "groupBy": "region"}).json()
    assert got["label"] == "region" and got["truncated"] is False
    assert [(g["value"], g["total"]) for g in got["groups"]] == [("eu", 20_000_000), ("us", 10_000_000), ("", 5_000_000)]
    assert all(len(g["times_ms"]) == len(g["values"]) for g in got["groups"])
    one = client.get("/api/v1/explorer/timelines", params={"query": QUERY, "groupBy": "region", "limit": "1"}).json()
    assert [g["value"] for g in one["groups"]] == ["eu"] and one["truncated"] is True


@pytest.mark.parametrize("params", [
    {"query": QUERY},
    {"query": QUERY, "groupBy": "bad label"},
    {"query": QUERY, "groupBy": "region", "limit": "0"},
    {"query": CPU_TYPE + '{region=~"("}', "groupBy": "region"},
])
def test_timelines_bad_input_is_400(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/api/v1/explorer/timelines", params=params)
    assert r.status_code == 400 and r.json()["code"] == "invalid_argument", r.text


def test_flamebearer_is_render_without_timeline(client: TestClient) -> None:
    fb = client.get("/api/v1/explorer/flamebearer", params={"query": QUERY}).json()
    render = client.get("/pyroscope/render", params={"query": QUERY}).json()
    assert fb["flamebearer"] == render["flamebearer"] and fb["metadata"] == render["metadata"]
    assert fb.get("timeline") is None and fb["flamebearer"]["numTicks"] == 35_000_000
    r = client.get("/api/v1/explorer/flamebearer", params={"query": CPU_TYPE + '{region=~"["}'})
    assert r.status_code == 400 and "invalid regex" in r.json()["message"]


def _parquet(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def test_fleet_empty_then_newest_window(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/api/v1/explorer/fleet").json() == {"window": None, "windows": [], "summary": {}, "tables": {}}
    store = open_store((tmp_path / "data").as_uri())
    for window, usd in (("20261201T0000Z-1d", 1.0), ("20261202T0000Z-1d", 2.0)):
        costs = pl.DataFrame({"service": ["svc"], "cpu_seconds": [float("nan")], "usd_month": [usd]})
        recs = pl.DataFrame({"service": ["svc"], "top_functions": [["a", "b"]]})
        write_analysis_file(store, "anonymous", window, "cost_services.parquet", _parquet(costs))
        write_analysis_file(store, "anonymous", window, "recommendations.parquet", _parquet(recs))
        write_analysis_file(store, "anonymous", window, "summary.json", json.dumps({"services": ["svc"]}).encode())
    got = client.get("/api/v1/explorer/fleet").json()
    assert got["window"] == "20261202T0000Z-1d" and got["windows"] == ["20261202T0000Z-1d", "20261201T0000Z-1d"]
    assert got["tables"]["cost_services"] == [{"service": "svc", "cpu_seconds": None, "usd_month": 2.0}]
    assert got["tables"]["recommendations"] == [{"service": "svc", "top_functions": "a; b"}]
    older = client.get("/api/v1/explorer/fleet", params={"window": "20261201T0000Z-1d"}).json()
    assert older["tables"]["cost_services"][0]["usd_month"] == 1.0
    r = client.get("/api/v1/explorer/fleet", params={"window": "19990101T0000Z-1d"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert client.get("/api/v1/explorer/fleet", headers={"X-Scope-OrgID": "other"}).json()["window"] is None


def test_page_is_same_origin_and_loads_its_own_assets(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "sandbox" not in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    if (index_page.BUILD_DIR / "app.js").exists():
        assert f"{index_page.ASSETS}/app.js?v=" in r.text and "http" not in r.text
        js = client.get(f"{index_page.ASSETS}/app.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_page_without_built_assets_says_how_to_build(tmp_path: Path) -> None:
    assert "make ui" in index_page.page(tmp_path)
