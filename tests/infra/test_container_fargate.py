"""The service container as Fargate runs it: the Dockerfile's image config merged with each
stack's rendered task definition, started under the same constraints (read-only root,
only /tmp writable, UID 10001, no home), must become ready and serve an ingest -> query
round trip against S3 and DynamoDB (moto inside the task's network namespace)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fargate_sandbox import run_task
from infra_support import ROOT, rendered

from components.aws_model import container
from components.aws_model.graph import Graph

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is installed by `make test`")


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory) -> Path:
    """The kernel cache the image compiles at build time (``python -m fleetprof.warmup``
    with the Dockerfile's ``NUMBA_CACHE_DIR``): the suite's own cache when ``make test``
    warmed one up, else compiled here the same way."""
    warm = os.environ.get("NUMBA_CACHE_DIR")
    if warm and any(Path(warm).rglob("*.nbi")):
        return Path(warm)
    cache = tmp_path_factory.mktemp("image-numba-cache")
    subprocess.run([sys.executable, "-m", "fleetprof.warmup"], env={**os.environ, "NUMBA_CACHE_DIR": str(cache)}, check=True, timeout=900)
    return cache


def _run(stack: str) -> container.ContainerRun:
    runs = container.service_runs(Graph(rendered(stack)), ROOT / "Dockerfile")
    assert list(runs) == ["ingest-task/fleetprof"]
    return runs["ingest-task/fleetprof"]


def test_every_stack_runs_the_image_command_read_only_as_10001():
    for stack in ("dev", "staging", "prod"):
        run = _run(stack)
        assert run.argv == ("fleetprof", "serve")
        assert (run.uid, run.gid) == (10001, 10001)
        assert run.readonly_root and run.writable == ("/tmp",)
        assert run.env["FLEETPROF_STORAGE"].startswith("s3://") and run.env["FLEETPROF_INDEX"].startswith("dynamodb://")
        assert container.problems(run) == []


def test_problems_are_found_in_a_broken_task():
    run = _run("dev")
    from dataclasses import replace

    assert "read-only root file system without a writable /tmp" in container.problems(replace(run, writable=()))
    assert any("health check" in p for p in container.problems(replace(run, port=8080)))


@pytest.mark.parametrize("home", [None, "/nonexistent"], ids=["home-unset", "home-nonexistent"])
def test_container_serves_under_fargate_constraints(tmp_path, image_cache, home):
    from fleetprof.metastore.index import dynamo_table_spec

    run = _run("prod")
    table = run.env["FLEETPROF_INDEX"].removeprefix("dynamodb://")
    report = run_task(run, tmp=tmp_path, tables=[dynamo_table_spec(table)], region=run.env["AWS_REGION"], cache=image_cache, home=home)
    context = f"{report.get('why') or report.get('error')}\n--- container log ---\n{report['container_log']}\n--- driver ---\n{report['driver_stderr']}"
    assert report.get("uid") == 10001, context
    assert report.get("ready") is True, context
    assert report["healthcheck_rc"] == 0, context
    assert report["ingest_status"] == 200, context
    assert report["query_status"] == 200, context
    folded = dict(line.rsplit(" ", 1) for line in report["folded"].splitlines() if line.strip())
    assert set(folded) == {"main;handle;encode_json", "main;handle;query_db", "main;idle"}, context
    assert report["objects"] >= 1, context  # the segment is in the profiles bucket
