"""The ADOT collector sidecar: present where the stack's config enables it, its rendered
configuration, the server's OTEL_* environment read by the real OpenTelemetry SDK, and the
AWS-behaviour checks (task constraints, IAM, egress to X-Ray, logs) each with a failing case."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from infra_support import STACKS, edit, one, rendered

from components.aws_model import reachability, task
from components.aws_model.container import secret_problems, service_runs
from components.aws_model.graph import Graph
from components.mockrun import REPO_ROOT, MockResource, Rendering, render
from components.settings import SettingsError
from components.telemetry import TOKEN_ENV
from policies.offline import evaluate, to_res
from policies.rules import rule_by_name

TASK = "aws:ecs/taskDefinition:TaskDefinition"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
TOKEN = "fp_collector-token"
TABLE = json.dumps({"tokens": {TOKEN: {"tenant": "platform", "scopes": ["write"]}}})


def _containers(r: Rendering) -> list[dict[str, Any]]:
    return json.loads(one(r, TASK, "ingest-task").inputs["containerDefinitions"])


def _collector(r: Rendering) -> dict[str, Any]:
    (c,) = [c for c in _containers(r) if c["name"] == "otel-collector"]
    return c


def _config(c: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load({e["name"]: e["value"] for e in c["environment"]}["AOT_CONFIG_CONTENT"])


def _env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["environment"]}


def _edit_containers(r: Rendering, change: Callable[[list[dict[str, Any]]], None]) -> Rendering:
    def apply(res: MockResource) -> MockResource:
        defs = json.loads(res.inputs["containerDefinitions"])
        change(defs)
        return dataclasses.replace(res, inputs={**res.inputs, "containerDefinitions": json.dumps(defs)})

    return edit(r, TASK, "ingest-task", apply)


def _edit_collector_config(r: Rendering, change: Callable[[dict[str, Any]], None]) -> Rendering:
    def apply(defs: list[dict[str, Any]]) -> None:
        c = next(c for c in defs if c["name"] == "otel-collector")
        config = _config(c)
        change(config)
        for e in c["environment"]:
            if e["name"] == "AOT_CONFIG_CONTENT":
                e["value"] = yaml.safe_dump(config)

    return _edit_containers(r, apply)


@pytest.fixture(scope="module")
def dev_with_collector() -> Rendering:
    """dev (no auth) with the collector on: it exports to X-Ray and to fleetprof by tenant header."""
    return render("dev", overrides={"fleetprof:otelCollector": True})


@pytest.fixture(scope="module")
def prod_with_token() -> Rendering:
    """prod with a collector token in the token table: the export to fleetprof authenticates."""
    return render("prod", overrides={"fleetprof:authTokens": TABLE, "fleetprof:otelCollectorToken": TOKEN})


@pytest.mark.parametrize("name", STACKS)
def test_sidecar_only_where_the_stack_enables_it(name):
    r = rendered(name)
    settings = r.program["settings"]
    names = [c["name"] for c in _containers(r)]
    assert names == (["fleetprof", "otel-collector"] if settings.otel_collector else ["fleetprof"])
    server = _env(_containers(r)[0])
    if not settings.otel_collector:
        assert server["OTEL_SDK_DISABLED"] == "true" and "OTEL_EXPORTER_OTLP_ENDPOINT" not in server
        return
    assert server["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert server["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert float(server["OTEL_TRACES_SAMPLER_ARG"]) == settings.traces_sampling_ratio
    assert "OTEL_SDK_DISABLED" not in server
    collector = _collector(r)
    assert collector["essential"] is False and collector["readonlyRootFilesystem"] is True
    assert collector["image"].startswith("public.ecr.aws/aws-observability/aws-otel-collector:v") and "@sha256:" in collector["image"]
    assert collector["logConfiguration"]["options"]["awslogs-group"] == _containers(r)[0]["logConfiguration"]["options"]["awslogs-group"]
    assert sum(c["memory"] for c in _containers(r)) == settings.task_memory


def test_stack_files_choose_the_sidecar():
    assert [rendered(s).program["settings"].otel_collector for s in STACKS] == [False, True, True]


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_rendered_collector_config_is_consistent(name):
    r = rendered(name)
    config = _config(_collector(r))
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(config[kind]), kind
    assert pipeline["processors"][0] == "memory_limiter"
    assert config["receivers"]["otlp"]["protocols"] == {"grpc": {"endpoint": "127.0.0.1:4317"}, "http": {"endpoint": "127.0.0.1:4318"}}
    assert config["extensions"]["health_check"]["endpoint"].startswith("127.0.0.1:")
    assert config["exporters"]["awsxray"]["region"] == r.config["aws:region"]
    # auth on and no collector token: X-Ray only
    assert pipeline["exporters"] == ["awsxray"]
    assert config["processors"]["memory_limiter"]["limit_mib"] < _collector(r)["memory"]
    assert task.collector_problems(Graph(r)) == [] and task.task_problems(Graph(r)) == []


def test_without_auth_the_collector_exports_to_fleetprof_by_tenant(dev_with_collector):
    config = _config(_collector(dev_with_collector))
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["awsxray", "otlphttp/fleetprof"]
    export = config["exporters"]["otlphttp/fleetprof"]
    assert export["endpoint"] == "http://127.0.0.1:4040"
    assert export["headers"] == {"X-Scope-OrgID": "fleetprof-platform"}
    assert task.collector_problems(Graph(dev_with_collector)) == []


def test_with_auth_the_collector_token_comes_from_its_own_secret(prod_with_token):
    graph = Graph(prod_with_token)
    collector = _collector(prod_with_token)
    export = _config(collector)["exporters"]["otlphttp/fleetprof"]
    assert export["headers"] == {"X-Scope-OrgID": "platform", "Authorization": f"Bearer ${{env:{TOKEN_ENV}}}"}
    assert TOKEN not in json.dumps(_containers(prod_with_token))  # the token itself is only in the secret
    assert [s["name"] for s in collector["secrets"]] == [TOKEN_ENV]
    run = service_runs(graph, REPO_ROOT / "Dockerfile")["ingest-task/otel-collector"]
    assert secret_problems(graph, run) == []
    # the execution role loses the grant: the agent could not start the collector
    no_grant = edit(prod_with_token, ROLE_POLICY, "ingest-execution-policy", lambda res: dataclasses.replace(
        res, inputs={**res.inputs, "policy": json.dumps({"Statement": [
            s for s in json.loads(res.inputs["policy"])["Statement"] if s["Sid"] != "CollectorToken"]})}))
    assert any("may not secretsmanager:GetSecretValue" in p for p in secret_problems(Graph(no_grant), run))


def test_server_env_configures_the_real_opentelemetry_sdk(monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, _get_from_env_or_default

    for k, v in _env(_containers(rendered("staging"))[0]).items():
        monkeypatch.setenv(k, v)
    sampler = _get_from_env_or_default()
    assert isinstance(sampler, ParentBased)
    assert "TraceIdRatioBased{0.2}" in sampler.get_description()
    assert OTLPSpanExporter()._endpoint == "http://127.0.0.1:4318/v1/traces"


def test_task_role_x_ray_grant_is_checked():
    r = rendered("prod")

    def strip(res: MockResource) -> MockResource:
        doc = json.loads(res.inputs["policy"])
        doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != "XRayTraces"]
        return dataclasses.replace(res, inputs={**res.inputs, "policy": json.dumps(doc)})

    found = task.collector_problems(Graph(edit(r, ROLE_POLICY, "ingest-task-data-policy", strip)))
    assert any("task role may not xray:PutTraceSegments" in p for p in found)
    assert any("task role may not xray:PutTelemetryRecords" in p for p in found)


def _xray_path(r: Rendering) -> reachability.Path:
    (path,) = [p for p in reachability.analyze(Graph(r)).paths if p.source == "tasks" and p.dest == "xray"]
    return path


def test_egress_to_x_ray_through_the_endpoint_else_nat():
    prod, staging = rendered("prod"), rendered("staging")
    assert _xray_path(prod).open and "interface endpoint" in _xray_path(prod).note
    assert _xray_path(staging).open and "NAT gateway" in _xray_path(staging).note
    assert not any(p.dest == "xray" for p in reachability.analyze(Graph(rendered("dev"))).paths)
    # without the xray endpoint prod falls back to its NAT gateways; without those too, it is cut off
    no_endpoint = edit(prod, "aws:ec2/vpcEndpoint:VpcEndpoint", "network-xray-endpoint", lambda res: None)
    assert _xray_path(no_endpoint).open and "NAT gateway" in _xray_path(no_endpoint).note
    isolated = no_endpoint
    for nat in prod.of_type("aws:ec2/natGateway:NatGateway"):
        isolated = edit(isolated, nat.type, nat.name, lambda res: None)
    assert not _xray_path(isolated).open
    assert any("tasks -> xray" in p for p in reachability.analyze(Graph(isolated)).problems())
    # the collector's image comes from ECR Public, which only the internet route reaches
    (pull,) = [p for p in reachability.analyze(Graph(isolated)).paths if p.dest == "public.ecr.aws"]
    assert not pull.open


def test_container_constraints_fail_when_broken():
    r = rendered("staging")

    def bigger(defs):
        defs[1]["memory"] += 512

    assert any("more than the task's 1024" in p for p in task.task_problems(Graph(_edit_containers(r, bigger))))

    def hang_on_telemetry(defs):
        defs[0]["dependsOn"] = [{"containerName": "otel-collector", "condition": "HEALTHY"}]

    found = task.task_problems(Graph(_edit_containers(r, hang_on_telemetry)))
    assert any("waits for the non-essential otel-collector to be HEALTHY" in p for p in found)
    assert any("does not start after otel-collector" in p for p in found)

    def clash(defs):
        defs[0]["environment"] = [e if e["name"] != "FLEETPROF_PORT" else {**e, "value": "4318"} for e in defs[0]["environment"]]

    assert any("both listen on 4318" in p for p in task.task_problems(Graph(_edit_containers(r, clash))))

    def no_logs(defs):
        del defs[1]["logConfiguration"]

    broken = _edit_containers(r, no_logs)
    assert any("otel-collector does not log to CloudWatch Logs" in p for p in task.task_problems(Graph(broken)))
    assert rule_by_name("ecs-container-logging").resource_check(TASK, one(broken, TASK, "ingest-task").inputs, {})

    def nowhere(defs):
        defs[0]["environment"] = [e if e["name"] != "OTEL_EXPORTER_OTLP_ENDPOINT" else {**e, "value": "http://127.0.0.1:9999"}
                                  for e in defs[0]["environment"]]

    assert any("no collector of the task receives" in p for p in task.task_problems(Graph(_edit_containers(r, nowhere))))


def test_log_group_without_key_is_reported():
    r = edit(rendered("staging"), "aws:cloudwatch/logGroup:LogGroup", "ingest-logs",
              lambda res: dataclasses.replace(res, inputs={k: v for k, v in res.inputs.items() if k != "kmsKeyId"}))
    assert any("otel-collector logs to ingest-logs, which lacks a KMS key" in p for p in task.task_problems(Graph(r)))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["receivers"]["otlp"]["protocols"]["http"].update(endpoint="0.0.0.0:4318"), "beyond the task's loopback"),
        (lambda c: c["exporters"]["awsxray"].update(region="eu-west-1"), "not the stack's us-east-1"),
        (lambda c: c["service"]["pipelines"]["traces"]["processors"].reverse(), "memory_limiter must be the first"),
        (lambda c: c["service"]["pipelines"]["traces"]["exporters"].append("otlp/elsewhere"), "which is not configured"),
        (lambda c: c["processors"]["memory_limiter"].update(limit_mib=300), "is not below the container's 256 MiB"),
        (lambda c: c["exporters"]["awsxray"].update(endpoint="${env:XRAY_URL}"), "${env:XRAY_URL}"),
    ],
    ids=["public-bind", "region", "limiter-order", "unknown-exporter", "limit", "env-ref"],
)
def test_collector_config_problems_are_found(change, expected):
    broken = _edit_collector_config(rendered("prod"), change)
    assert any(expected in p for p in task.collector_problems(Graph(broken)))


def test_policy_pack_keeps_the_collector_private():
    r = rendered("prod")
    rule = rule_by_name("otel-collector-private")
    assert rule.stack_check(to_res(r.resources), {}) == []
    exposed = _edit_collector_config(r, lambda c: c["extensions"]["health_check"].update(endpoint="0.0.0.0:13133"))
    assert any("0.0.0.0:13133" in m for _, m in rule.stack_check(to_res(exposed.resources), {}))

    def mapped(defs):
        defs[1]["portMappings"] = [{"containerPort": 4317, "protocol": "tcp"}]

    assert any("maps its ports [4317]" in m for _, m in rule.stack_check(to_res(_edit_containers(r, mapped).resources), {}))

    def admit(res: MockResource) -> MockResource:
        ingress = [*res.inputs["ingress"], {"protocol": "tcp", "fromPort": 4317, "toPort": 4318, "cidrBlocks": ["10.0.0.0/8"]}]
        return dataclasses.replace(res, inputs={**res.inputs, "ingress": ingress})

    opened = edit(r, "aws:ec2/securityGroup:SecurityGroup", "ingest-sg", admit)
    found = evaluate(to_res(opened.resources), {}, rules=[rule])
    assert [f.rule for f in found] == ["otel-collector-private"] and "[4317, 4318]" in found[0].message
    latest = _edit_containers(r, lambda defs: defs[1].update(image=defs[1]["image"].split(":v")[0] + ":latest"))
    assert rule_by_name("ecs-image-pinned").resource_check(TASK, one(latest, TASK, "ingest-task").inputs, {})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fleetprof:otelCollectorImage": "public.ecr.aws/aws-observability/aws-otel-collector:latest"}, "must be pinned by digest"),
        ({"fleetprof:otelCollectorMemory": 1024}, "otelCollectorMemory must be 64..1023"),
        ({"fleetprof:otelCollectorMemory": 400}, "taskMemory minus fleetprof:otelCollectorMemory"),
        ({"fleetprof:otelCollectorCpu": 512}, "otelCollectorCpu must be 1..511"),
        ({"fleetprof:tracesSamplingRatio": "1.5"}, "tracesSamplingRatio must be 0..1"),
        ({"fleetprof:otelCollectorToken": TOKEN}, "must be a token of fleetprof:authTokens"),
        ({"fleetprof:xrayEnabled": False}, "would have no exporter"),
    ],
    ids=["latest", "memory-over-task", "server-too-small", "cpu", "ratio", "unknown-token", "no-exporter"],
)
def test_bad_telemetry_config_is_refused_before_any_resource(overrides, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(".", r"\.")):
        render("staging", overrides=overrides)


def test_collector_token_without_auth_is_refused():
    with pytest.raises(SettingsError, match="otelCollectorToken is set but unused"):
        render("dev", overrides={"fleetprof:otelCollector": True, "fleetprof:otelCollectorToken": TOKEN})
