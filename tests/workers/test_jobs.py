"""Backfill checkpoints, retention, CLI registration (serial mode: no Ray needed)."""

from __future__ import annotations

import pytest
from workers_support import T0, per_stack, seed_fleet  # type: ignore[import-not-found]

from fleetprof.metastore.index import ALL_STATES, MAX_TIME_MS
from workers import backfill, retention, synth
from workers.storage_io import open_backends, write_l0


@pytest.fixture
def urls(tmp_path) -> tuple[str, str]:
    return (tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}"


def test_backfill_resumes_from_checkpoint(urls) -> None:
    store, index = open_backends(*urls)
    write_l0(store, index, "acme", synth.scenario_items(T0 + 3_600_000), per_segment=60)
    kw = dict(start_ms=T0, end_ms=T0 + 3 * 3_600_000, what=["analyze"], window_length="hour", mode="serial", progress=False)
    plan = backfill.run_backfill(*urls, dry_run=True, **kw)
    assert plan["steps"]["analyze"] == {"planned": 3, "todo": 3}
    assert not list(store.list("analysis/"))
    with pytest.raises(backfill.StopRequested):
        backfill.run_backfill(*urls, stop_after=1, **kw)
    out = backfill.run_backfill(*urls, **kw)
    assert out["skipped"] == 1 and out["steps"]["analyze"]["todo"] == 2 and out["done"] == 3
    assert sum(k.endswith("summary.json") for k in store.list("analysis/acme/")) == 3
    assert backfill.run_backfill(*urls, **kw)["steps"]["analyze"]["todo"] == 0


def test_backfill_compacts_history(urls) -> None:
    store, index = open_backends(*urls)
    seed_fleet(store, index, hours=2)
    before = per_stack(store, index)
    out = backfill.run_backfill(*urls, start_ms=T0, end_ms=T0 + 86_400_000, what=["compact"], mode="serial", progress=False)
    assert out["steps"]["compact L1"]["planned"] == 2
    assert [e.level for e in index.query("t1", 0, MAX_TIME_MS)] == [2]
    assert per_stack(store, index).equals(before)


def test_parse_time() -> None:
    assert backfill.parse_time("2026-11-20") == T0
    assert backfill.parse_time(str(T0)) == T0
    with pytest.raises(ValueError):
        backfill.parse_time("yesterday-ish")


def test_retention_removes_expired_segments_and_analyses(urls) -> None:
    from workers.analyze import analyze_window, parse_window

    store, index = open_backends(*urls)
    seed_fleet(store, index, hours=2)
    analyze_window(store, index, "t1", parse_window("2026-11-20T00"), flame_graphs=False)
    from fleetprof.segment.keys import new_segment_id, segment_key

    store.put(segment_key("t1", 1, new_segment_id(T0), T0), b"orphan")  # a crashed compaction's object
    cutoff = T0 + 3_600_000 + 1  # first hour expired
    now = cutoff + 86_400_000
    dry = retention.run_retention(store, index, retention_days=1, now_ms=now, dry_run=True)
    assert dry["tenants"]["t1"]["segments"] > 0
    n_before = len(index.query("t1", 0, MAX_TIME_MS, states=ALL_STATES))
    out = retention.run_retention(store, index, retention_days=1, now_ms=now, grace_s=0)
    left = index.query("t1", 0, MAX_TIME_MS, states=ALL_STATES)
    assert 0 < len(left) < n_before and all(e.max_time_ms >= cutoff for e in left)
    assert set(store.list("segments/")) == {e.key for e in left}
    assert out["tenants"]["t1"]["analysis_files"] > 0 and not list(store.list("analysis/t1/"))
    assert out["orphans"] == 1


def test_cli_registers_worker_commands(urls) -> None:
    from typer.testing import CliRunner

    from fleetprof.cli import app

    store, index = open_backends(*urls)
    seed_fleet(store, index, hours=1)
    res = CliRunner().invoke(app, ["compact", "--serial", "--no-settle", "--storage", urls[0], "--index", urls[1]])
    assert res.exit_code == 0, res.output
    assert [e.level for e in index.query("t1", 0, MAX_TIME_MS)] == [2]
    res = CliRunner().invoke(app, ["analyze", "--window", "bad", "--serial", "--storage", urls[0], "--index", urls[1]])
    assert res.exit_code == 2
