"""Job metrics reach CloudWatch (a moto server): the CLI's outcome metrics and compaction's
L0 backlog, read back with ``list_metrics`` and ``get_metric_statistics``."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from workers_support import REPO, seed_fleet  # type: ignore[import-not-found]

from workers import job_metrics
from workers.compact import run_compaction
from workers.storage_io import open_backends

NS = job_metrics.NAMESPACE


def _cw():  # noqa: ANN202 - boto3 client
    from fleetprof.storage.aws import client

    return client("cloudwatch")


def _sum(metric: str, dims: dict[str, str]) -> float | None:
    """Sum over the last ten minutes of ``metric`` with exactly ``dims`` (None: no data)."""
    now = dt.datetime.now(dt.UTC)
    pts = _cw().get_metric_statistics(
        Namespace=NS, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - dt.timedelta(minutes=10), EndTime=now + dt.timedelta(minutes=1), Period=60,
        Statistics=["Sum", "Maximum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in pts) if pts else None


def _maximum(metric: str, dims: dict[str, str]) -> float:
    now = dt.datetime.now(dt.UTC)
    pts = _cw().get_metric_statistics(
        Namespace=NS, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - dt.timedelta(minutes=10), EndTime=now + dt.timedelta(minutes=1), Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert pts, f"no {metric} data for {dims}"
    return max(p["Maximum"] for p in pts)


def _all_metrics() -> list[dict]:
    out: list[dict] = []
    for page in _cw().get_paginator("list_metrics").paginate(Namespace=NS):
        out.extend(page["Metrics"])
    return out


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.job_metrics", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("status", "metric", "other"), [("succeeded", "JobSucceeded", "JobFailed"),
                                                          ("failed", "JobFailed", "JobSucceeded")])
def test_cli_publishes_the_job_outcome(moto_server: str, status: str, metric: str, other: str) -> None:
    env_name = f"env-{uuid.uuid4().hex[:8]}"
    r = _cli("--job", "analyze", "--status", status, env=os.environ | {job_metrics.ENV_VAR: env_name})
    assert r.returncode == 0, r.stderr
    dims = {"Environment": env_name, "Job": "analyze"}
    assert _sum(metric, dims) == 1.0
    assert _sum(other, dims) is None
    mine = [m for m in _all_metrics() if {"Name": "Environment", "Value": env_name} in m["Dimensions"]]
    assert mine == [{"Namespace": NS, "MetricName": metric,
                     "Dimensions": [{"Name": "Environment", "Value": env_name}, {"Name": "Job", "Value": "analyze"}]}]


def test_cli_without_environment_publishes_nothing_and_exits_0(moto_server: str) -> None:
    before = _all_metrics()
    env = {k: v for k, v in os.environ.items() if k != job_metrics.ENV_VAR}
    r = _cli("--job", "compact", "--status", "failed", env=env)
    assert r.returncode == 0
    assert r.stderr.count("\n") == 1 and job_metrics.ENV_VAR in r.stderr
    assert _all_metrics() == before


def test_cli_exits_1_when_publishing_fails(moto_server: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    env |= {job_metrics.ENV_VAR: "dev", "AWS_CONFIG_FILE": str(tmp_path / "none")}  # no region: boto3 refuses
    r = _cli("--job", "compact", "--status", "succeeded", env=env)
    assert r.returncode == 1 and "failed" in r.stderr


@pytest.mark.parametrize("args", [("--job", "backfill", "--status", "failed"), ("--job", "compact", "--status", "ok")])
def test_cli_rejects_unknown_job_or_status(args: tuple[str, ...]) -> None:
    r = _cli(*args, env=os.environ | {job_metrics.ENV_VAR: "dev"})
    assert r.returncode == 2


def test_job_status_datum_validates() -> None:
    d = job_metrics.job_status_datum("retention", "succeeded", "prod")
    assert d.to_aws() == {"MetricName": "JobSucceeded", "Value": 1.0, "Unit": "Count",
                          "Dimensions": [{"Name": "Environment", "Value": "prod"}, {"Name": "Job", "Value": "retention"}]}
    with pytest.raises(ValueError, match="unknown job"):
        job_metrics.job_status_datum("backfill", "failed", "prod")


def test_environment_reads_the_variable() -> None:
    assert job_metrics.environment({}) is None
    assert job_metrics.environment({job_metrics.ENV_VAR: "  "}) is None
    assert job_metrics.environment({job_metrics.ENV_VAR: "staging"}) == "staging"


def test_l0_backlog_counts_live_l0_of_every_tenant(tmp_path: Path) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    assert job_metrics.l0_backlog(index) == (0, 0.0)
    n1 = seed_fleet(store, index, "t1", hours=1)
    n2 = seed_fleet(store, index, "t2", hours=1)
    created = [e.created_ms for t in ("t1", "t2") for e in index.query(t, 0, 2**62)]
    now = max(created) + 90_000
    count, age = job_metrics.l0_backlog(index, now)
    assert count == n1 + n2
    assert age == (now - min(created)) / 1000.0
    from fleetprof.traces.table import concat_tables  # span segments are compacted too: they count
    from fleetprof.traces.writer import encode_table

    data, entry = encode_table("t2", concat_tables([]), now_ms=min(created) - 5000)
    store.put(entry.key, data)
    index.add(entry)
    assert job_metrics.l0_backlog(index, now) == (n1 + n2 + 1, (now - min(created) + 5000) / 1000.0)


@pytest.mark.parametrize("backend_kind", ["file+sqlite", "s3+dynamodb"])
def test_compaction_publishes_the_l0_backlog(request: pytest.FixtureRequest, moto_server: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, backend_kind: str) -> None:
    if backend_kind == "file+sqlite":
        urls = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    else:
        urls = (request.getfixturevalue("s3_store_url"), request.getfixturevalue("dynamo_index_url"))
    store, index = open_backends(*urls)
    seed_fleet(store, index, "t1", hours=2)
    left = seed_fleet(store, index, "t2", hours=1)  # not compacted below: the backlog
    oldest_t2 = min(e.created_ms for e in index.query("t2", 0, 2**62))
    env_name = f"env-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(job_metrics.ENV_VAR, env_name)
    later = int(time.time() * 1000) + 3_600_000  # the run happens an hour after the flushes

    summary = run_compaction(*urls, tenants=["t1"], mode="serial", progress=False, now_ms=later)

    age = (later - oldest_t2) / 1000.0
    assert summary["l0_backlog"] == {"L0Segments": left, "OldestL0AgeSeconds": age}
    dims = {"Environment": env_name}
    assert _maximum("L0Segments", dims) == left
    assert _maximum("OldestL0AgeSeconds", dims) == pytest.approx(age)
    units = {m["MetricName"] for m in _all_metrics() if m["Dimensions"] == [{"Name": "Environment", "Value": env_name}]}
    assert units == {"L0Segments", "OldestL0AgeSeconds"}


def test_compaction_without_environment_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(job_metrics.ENV_VAR, raising=False)
    urls = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    store, index = open_backends(*urls)
    seed_fleet(store, index, "t1", hours=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # any CloudWatch call would fail
    summary = run_compaction(*urls, mode="serial", progress=False)
    assert "l0_backlog" not in summary
