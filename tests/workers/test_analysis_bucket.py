"""The analysis store (``FLEETPROF_ANALYSIS`` / ``--analysis``): the analysis job writes
there, retention expires analyses there, the profile store keeps only segments; unset, the
profile store holds the analyses as before. Real stores: ``file://`` and S3 on moto."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from workers_support import T0  # type: ignore[import-not-found]

from fleetprof.storage.objectstore import open_store
from workers import analyze, retention, synth
from workers.analysis_store import list_analyses, write_analysis_file
from workers.storage_io import open_backends, write_l0

START = T0 + 10 * 3_600_000  # 2026-11-20T10
WINDOW = "2026-11-20T10"


@pytest.fixture
def stores(backend: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """``(profile store URL, index URL, analysis store URL)`` on the backend, seeded."""
    store_url, index_url = backend
    if store_url.startswith("s3://"):
        analysis = f"s3://{request.getfixturevalue('s3_bucket')}/analysis-{uuid.uuid4().hex[:12]}/"
    else:
        (tmp_path / "analysis").mkdir()
        analysis = (tmp_path / "analysis").as_uri()
    store, index = open_backends(store_url, index_url)
    write_l0(store, index, "acme", synth.scenario_items(START), per_segment=40)
    return store_url, index_url, analysis


def _windows(url: str) -> list[str]:
    return [w["window"] for w in list_analyses(open_store(url), "acme")]


def test_analysis_job_writes_to_the_analysis_store_from_the_environment(
        stores: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    profiles, index, analysis = stores
    monkeypatch.setenv("FLEETPROF_ANALYSIS", analysis)
    assert analyze.main(["--window", WINDOW, "--serial", "--storage", profiles, "--index", index]) == 0
    assert _windows(analysis) == [WINDOW]
    assert list(open_store(profiles).list("analysis/")) == []


def test_analysis_option_overrides_the_environment(stores: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    profiles, index, analysis = stores
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.setenv("FLEETPROF_ANALYSIS", other.as_uri())
    assert analyze.main(["--window", WINDOW, "--serial", "--storage", profiles, "--index", index,
                         "--analysis", analysis]) == 0
    assert _windows(analysis) == [WINDOW] and _windows(other.as_uri()) == []


def test_without_an_analysis_store_the_profile_store_holds_analyses(
        stores: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    profiles, index, analysis = stores
    monkeypatch.delenv("FLEETPROF_ANALYSIS", raising=False)
    assert analyze.main(["--window", WINDOW, "--serial", "--storage", profiles, "--index", index]) == 0
    assert _windows(profiles) == [WINDOW] and _windows(analysis) == []


def test_retention_expires_analyses_in_the_analysis_store(stores: tuple[str, str, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    profiles, index, analysis = stores
    monkeypatch.setenv("FLEETPROF_ANALYSIS", analysis)
    assert analyze.main(["--window", WINDOW, "--serial", "--storage", profiles, "--index", index]) == 0
    # a stray analysis left in the profile store is not the analysis store's: retention leaves it
    write_analysis_file(open_store(profiles), "acme", WINDOW, "summary.json", b"{}")
    assert retention.main(["--days", "1", "--storage", profiles, "--index", index]) == 0
    assert list(open_store(analysis).list("analysis/acme/")) == []
    assert list(open_store(profiles).list("analysis/acme/")) == [f"analysis/acme/{WINDOW}/summary.json"]


def test_run_retention_takes_the_analysis_store(stores: tuple[str, str, str]) -> None:
    profiles, index_url, analysis = stores
    store, index = open_backends(profiles, index_url)
    astore = open_store(analysis)
    analyze.analyze_window(store, index, "acme", analyze.parse_window(WINDOW), flame_graphs=False, out=astore)
    now = START + 3 * 86_400_000
    dry = retention.run_retention(store, index, retention_days=30, analysis_days=1, now_ms=now, dry_run=True,
                                  analysis_store=astore)
    assert dry["tenants"]["acme"]["analysis_files"] > 0
    out = retention.run_retention(store, index, retention_days=30, analysis_days=1, now_ms=now, analysis_store=astore)
    assert out["tenants"]["acme"]["analysis_files"] == dry["tenants"]["acme"]["analysis_files"]
    assert list(astore.list("analysis/")) == []
