"""``/api/v1/analysis`` serves what the Ray analysis job wrote, per tenant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings
from fleetprof.storage.objectstore import open_store
from workers.analysis_store import write_analysis_file

WINDOW = "20261122T0000Z-1d"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[TestClient]:
    data = tmp_path / "data"
    data.mkdir()
    store = open_store(data.as_uri())
    write_analysis_file(store, "acme", WINDOW, "report.html", b"<html>fleet</html>")
    write_analysis_file(store, "acme", WINDOW, "summary.json", json.dumps({"services": ["a", "b"], "findings": [1, 2, 3]}).encode())
    write_analysis_file(store, "acme", "20261121T0000Z-1d", "report.html", b"incomplete: no summary")
    settings = Settings.load(env={}, storage=data.as_uri(), index=f"sqlite://{tmp_path / 'index.db'}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_lists_complete_windows_of_the_tenant_only(setup: TestClient) -> None:
    got = setup.get("/api/v1/analysis", headers={"X-Scope-OrgID": "acme"})
    assert got.status_code == 200
    body = got.json()
    assert [w["window"] for w in body] == [WINDOW]
    assert body[0]["summary"] == {"services": ["a", "b"], "findings": 3}
    assert setup.get("/api/v1/analysis", headers={"X-Scope-OrgID": "other"}).json() == []


def test_serves_files_with_content_types(setup: TestClient) -> None:
    r = setup.get(f"/api/v1/analysis/{WINDOW}/report.html", headers={"X-Scope-OrgID": "acme"})
    assert r.status_code == 200 and r.content == b"<html>fleet</html>"
    assert r.headers["content-type"].startswith("text/html")
    r = setup.get(f"/api/v1/analysis/{WINDOW}/summary.json", headers={"X-Scope-OrgID": "acme"})
    assert r.headers["content-type"].startswith("application/json")


def test_missing_and_malformed_are_json_errors(setup: TestClient) -> None:
    r = setup.get(f"/api/v1/analysis/{WINDOW}/report.html", headers={"X-Scope-OrgID": "other"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = setup.get(f"/api/v1/analysis/{WINDOW}/..secret", headers={"X-Scope-OrgID": "acme"})
    assert r.status_code == 400 and "invalid" in r.json()["message"]
