"""The service container as Fargate runs it: the Dockerfile's image config merged with each
stack's rendered task definition, its secrets fetched into the environment as the ECS agent
does, started under the same constraints (read-only root, only /tmp writable, UID 10001, no
home), must become ready, refuse requests without a token and serve an ingest -> query round
trip with one against S3 and DynamoDB (moto inside the task's network namespace)."""

from __future__ import annotations

import json
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
from components.mockrun import Rendering, render

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


TOKEN = "fp_sandbox-client-token"
TOKENS = json.dumps({"tokens": {TOKEN: {"tenant": "acme", "scopes": ["read", "write"]}}})


def _run(stack: str, rendering: Rendering | None = None) -> container.ContainerRun:
    runs = container.service_runs(Graph(rendering or rendered(stack)), ROOT / "Dockerfile")
    assert set(runs) - {"ingest-task/otel-collector"} == {"ingest-task/fleetprof"}
    return runs["ingest-task/fleetprof"]


@pytest.fixture(scope="module")
def prod_with_a_token() -> Rendering:
    """prod with one tenant's token in its table (what `pulumi config set --secret` gives)."""
    return render("prod", overrides={"fleetprof:authTokens": TOKENS})


def test_every_stack_runs_the_image_command_read_only_as_10001():
    for stack in ("dev", "staging", "prod"):
        run = _run(stack)
        assert run.argv == ("fleetprof", "serve")
        assert (run.uid, run.gid) == (10001, 10001)
        assert run.readonly_root and run.writable == ("/tmp",)
        assert run.env["FLEETPROF_STORAGE"].startswith("s3://") and run.env["FLEETPROF_INDEX"].startswith("dynamodb://")
        assert container.problems(run) == []
        assert container.secret_problems(Graph(rendered(stack)), run) == []


def test_deployed_stacks_get_the_token_table_from_secrets_manager(prod_with_a_token):
    for stack in ("staging", "prod"):
        run = _run(stack)
        assert "FLEETPROF_INSECURE" not in run.env
        assert set(run.secrets) == {"FLEETPROF_AUTH_TOKENS"}
        started = container.resolve_secrets(Graph(rendered(stack)), run)
        assert json.loads(started.env["FLEETPROF_AUTH_TOKENS"]) == {"tokens": {}}  # auth on, no token issued yet
    started = container.resolve_secrets(Graph(prod_with_a_token), _run("prod", prod_with_a_token))
    assert started.env["FLEETPROF_AUTH_TOKENS"] == TOKENS


def test_a_secret_the_agent_cannot_fetch_is_found(prod_with_a_token):
    from dataclasses import replace

    graph = Graph(prod_with_a_token)
    run = _run("prod", prod_with_a_token)
    (ref,) = run.secrets.values()
    other_version = replace(run, secrets={"FLEETPROF_AUTH_TOKENS": ref.rsplit(":", 1)[0] + ":00000000-0000-0000-0000-000000000000"})
    assert any("has no version" in p for p in container.secret_problems(graph, other_version))
    foreign = replace(run, secrets={"FLEETPROF_AUTH_TOKENS": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf"})
    assert any("not created by this stack" in p for p in container.secret_problems(graph, foreign))
    no_role = replace(run, execution_role="arn:aws:iam::123456789012:role/other")
    assert any("may not secretsmanager:GetSecretValue" in p for p in container.secret_problems(graph, no_role))
    with pytest.raises(ValueError):
        container.resolve_secrets(graph, no_role)
    both = replace(run, env={**run.env, "FLEETPROF_AUTH_TOKENS": "{}"})
    assert "FLEETPROF_AUTH_TOKENS is both an environment variable and a secret" in container.problems(both)


def test_dev_serves_without_auth_by_its_explicit_choice():
    run = _run("dev")
    assert run.env["FLEETPROF_INSECURE"] == "1" and run.secrets == {}


def test_problems_are_found_in_a_broken_task():
    run = _run("dev")
    from dataclasses import replace

    assert "read-only root file system without a writable /tmp" in container.problems(replace(run, writable=()))
    assert any("health check" in p for p in container.problems(replace(run, port=8080)))


@pytest.mark.parametrize("home", [None, "/nonexistent"], ids=["home-unset", "home-nonexistent"])
def test_container_serves_under_fargate_constraints(tmp_path, image_cache, home, prod_with_a_token):
    from fleetprof.metastore.index import dynamo_table_spec

    run = container.resolve_secrets(Graph(prod_with_a_token), _run("prod", prod_with_a_token))
    table = run.env["FLEETPROF_INDEX"].removeprefix("dynamodb://")
    report = run_task(run, tmp=tmp_path, tables=[dynamo_table_spec(table)], region=run.env["AWS_REGION"], cache=image_cache,
                      home=home, token=TOKEN)
    context = f"{report.get('why') or report.get('error')}\n--- container log ---\n{report['container_log']}\n--- driver ---\n{report['driver_stderr']}"
    assert report.get("uid") == 10001, context
    assert report.get("ready") is True, context
    assert report["healthcheck_rc"] == 0, context
    assert (report["anonymous_ingest_status"], report["anonymous_query_status"]) == (401, 401), context
    assert report["ingest_status"] == 200, context
    assert report["query_status"] == 200, context
    folded = dict(line.rsplit(" ", 1) for line in report["folded"].splitlines() if line.strip())
    assert set(folded) == {"main;handle;encode_json", "main;handle;query_db", "main;idle"}, context
    assert report["objects"] >= 1, context  # the segment is in the profiles bucket
