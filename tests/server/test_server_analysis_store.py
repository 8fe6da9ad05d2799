"""``/api/v1/analysis`` reads the analysis store (``FLEETPROF_ANALYSIS``), on ``file://`` and
S3 (moto); unset, it reads the profile store as before."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings
from fleetprof.storage.objectstore import open_store
from workers.analysis_store import write_analysis_file

ACME = {"X-Scope-OrgID": "acme"}


def _write_window(url: str, window: str, body: bytes) -> None:
    store = open_store(url)
    write_analysis_file(store, "acme", window, "report.html", body)
    write_analysis_file(store, "acme", window, "summary.json", json.dumps({"services": ["a"]}).encode())


@pytest.fixture
def urls(backend: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """``(profile store, index, analysis store)``, each store holding a different window."""
    store_url, index_url = backend
    if store_url.startswith("s3://"):
        analysis = f"s3://{request.getfixturevalue('s3_bucket')}/analysis-{uuid.uuid4().hex[:12]}/"
    else:
        (tmp_path / "analysis").mkdir()
        analysis = (tmp_path / "analysis").as_uri()
        (tmp_path / "data").mkdir(exist_ok=True)
    _write_window(store_url, "2026-11-20", b"in the profile store")
    _write_window(analysis, "2026-11-21", b"in the analysis store")
    return store_url, index_url, analysis


def _client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_routes_read_the_analysis_store_from_the_environment(urls: tuple[str, str, str]) -> None:
    profiles, index, analysis = urls
    settings = Settings.load(env={"FLEETPROF_ANALYSIS": analysis, "FLEETPROF_STORAGE": profiles, "FLEETPROF_INDEX": index})
    assert settings.analysis == analysis
    for c in _client(settings):
        assert [w["window"] for w in c.get("/api/v1/analysis", headers=ACME).json()] == ["2026-11-21"]
        r = c.get("/api/v1/analysis/2026-11-21/report.html", headers=ACME)
        assert r.status_code == 200 and r.content == b"in the analysis store"
        assert c.get("/api/v1/analysis/2026-11-20/report.html", headers=ACME).status_code == 404


def test_routes_read_the_profile_store_when_unset(urls: tuple[str, str, str]) -> None:
    profiles, index, _analysis = urls
    for c in _client(Settings.load(env={"FLEETPROF_STORAGE": profiles, "FLEETPROF_INDEX": index})):
        assert [w["window"] for w in c.get("/api/v1/analysis", headers=ACME).json()] == ["2026-11-20"]
        assert c.get("/api/v1/analysis/2026-11-20/report.html", headers=ACME).content == b"in the profile store"


def test_serve_takes_an_analysis_option() -> None:
    from typer.testing import CliRunner

    from fleetprof.cli import app

    res = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert "--analysis" in res.output and "FLEETPROF_ANALYSIS" in res.output
