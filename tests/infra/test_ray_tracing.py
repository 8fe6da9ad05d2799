"""The Ray nodes' own spans: OTEL_* in the nodes' environment file, the CloudWatch agent's OTLP
trace receiver on each node's loopback, X-Ray writes for the node roles and a route to X-Ray;
each AWS-behaviour check with a case that breaks it. (The executed proof, spans of real jobs
reaching the agent, is in test_ray_bootstrap.py.)"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable

import pytest
from infra_support import STACKS, edit, one, rendered

from components.aws_model import ray_nodes, reachability
from components.aws_model.graph import Graph
from components.mockrun import MockResource, Rendering, render
from components.ray_cluster import AGENT_OTLP, CWAGENT_CONFIG, ENV_FILE
from components.settings import SettingsError

T_INSTANCE = "aws:ec2/instance:Instance"
T_LT = "aws:ec2/launchTemplate:LaunchTemplate"
T_POLICY = "aws:iam/rolePolicy:RolePolicy"
TRACED = {"dev": False, "staging": True, "prod": True}


def _scripts(r: Rendering) -> dict[str, str]:
    return {
        "head": one(r, T_INSTANCE, "ray-head").inputs["userData"],
        "worker": base64.b64decode(one(r, T_LT, "ray-worker-lt").inputs["userData"]).decode(),
    }


def _file(script: str, path: str, marker: str) -> str:
    start = script.index(f"cat > {path} <<'{marker}'\n") + len(f"cat > {path} <<'{marker}'\n")
    return script[start:script.index(f"\n{marker}\n", start)]


def _env(script: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in _file(script, ENV_FILE, "ENV").splitlines())


def _agent(script: str) -> dict:
    return json.loads(_file(script, CWAGENT_CONFIG, "JSON"))


def _edit_head_script(r: Rendering, change: Callable[[str], str]) -> Rendering:
    return edit(r, T_INSTANCE, "ray-head",
                 lambda res: dataclasses.replace(res, inputs={**res.inputs, "userData": change(res.inputs["userData"])}))


def _without_xray(res: MockResource) -> MockResource:
    doc = json.loads(res.inputs["policy"])
    doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != "XRayTraces"]
    return dataclasses.replace(res, inputs={**res.inputs, "policy": json.dumps(doc)})


# --- what the boot scripts write ------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_otel_env_and_agent_receiver_only_where_the_stack_traces(name):
    for kind, script in _scripts(rendered(name)).items():
        env, agent = _env(script), _agent(script)
        otel = {k: v for k, v in env.items() if k.startswith("OTEL_")}
        if not TRACED[name]:
            assert otel == {} and "traces" not in agent, kind
            continue
        assert otel["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{AGENT_OTLP['http_endpoint']}" == "http://127.0.0.1:4318"
        assert otel["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert (otel["OTEL_TRACES_SAMPLER"], otel["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "1")
        assert otel["OTEL_RESOURCE_ATTRIBUTES"] == f"deployment.environment={name}"
        assert agent["traces"] == {"traces_collected": {"otlp": {"grpc_endpoint": "127.0.0.1:4317",
                                                                 "http_endpoint": "127.0.0.1:4318"}}}
        assert agent["agent"]["region"] == "us-east-1"


def test_node_env_configures_the_real_sdk_and_fleetprof(monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, _get_from_env_or_default

    from fleetprof.telemetry.config import from_env

    env = {k: v for k, v in _env(_scripts(rendered("staging"))["head"]).items() if k.startswith("OTEL_")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sampler = _get_from_env_or_default()
    assert isinstance(sampler, ParentBased) and "TraceIdRatioBased{1.0}" in sampler.get_description()
    assert OTLPSpanExporter()._endpoint == "http://127.0.0.1:4318/v1/traces"
    config = from_env("ignored", env)
    assert config is not None and config.endpoint == "http://127.0.0.1:4318/v1/traces"


def test_sampling_ratio_comes_from_config():
    r = render("staging", overrides={"fleetprof:rayTracesSamplingRatio": "0.25"})
    assert {_env(s)["OTEL_TRACES_SAMPLER_ARG"] for s in _scripts(r).values()} == {"0.25"}


# --- IAM -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_node_roles_write_to_xray_only_where_traced(name):
    r = rendered(name)
    for kind in ("head", "worker"):
        sids = [s.get("Sid") for s in json.loads(one(r, T_POLICY, f"ray-{kind}-data-policy").inputs["policy"])["Statement"]]
        assert ("XRayTraces" in sids) is TRACED[name], kind
    assert ray_nodes.problems(Graph(r)) == []


@pytest.mark.parametrize("kind", ["head", "worker"])
def test_a_node_role_without_xray_writes_is_a_problem(kind):
    found = ray_nodes.problems(Graph(edit(rendered("prod"), T_POLICY, f"ray-{kind}-data-policy", _without_xray)))
    node = "Ray head ray-head" if kind == "head" else "Ray workers ray-worker-lt"
    assert found == [f"{node}: the agent sends traces to X-Ray, but the node role may not xray:PutTraceSegments",
                     f"{node}: the agent sends traces to X-Ray, but the node role may not xray:PutTelemetryRecords"]


# --- the agent's receiver --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.replace('"traces": {', '"unused": {'), "has no OTLP traces receiver (traces.traces_collected.otlp)"),
        (lambda s: s.replace('"http_endpoint": "127.0.0.1:4318"', '"http_endpoint": "127.0.0.1:4319"'),
         "the agent receives OTLP/HTTP traces on 127.0.0.1:4319: the spans go nowhere"),
        (lambda s: s.replace("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_ENDPOINT=http://10.0.0.5:4318"),
         "its jobs export spans to http://10.0.0.5:4318/v1/traces"),
        (lambda s: s.replace('"grpc_endpoint": "127.0.0.1:4317"', '"grpc_endpoint": "0.0.0.0:4317"'),
         "grpc_endpoint 0.0.0.0:4317 listens beyond the node's loopback"),
        (lambda s: s.replace("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"),
         "cannot export spans: OTLP protocol 'grpc' is not supported"),
        (lambda s: s.replace('"region": "us-east-1"\n }', '"region": "us-east-1",\n }'), "configuration is not JSON"),
    ],
    ids=["no-traces-section", "other-port", "not-loopback", "public-grpc", "grpc-protocol", "bad-json"],
)
def test_agent_and_env_mismatches_are_problems(change, expected):
    found = ray_nodes.problems(Graph(_edit_head_script(rendered("staging"), change)))
    assert any(p.startswith("Ray head ray-head: ") and expected in p for p in found), found
    assert not any(p.startswith("Ray workers") for p in found)


def test_a_disabled_sdk_needs_no_receiver():
    def off(s: str) -> str:
        return s.replace('"traces": {', '"unused": {').replace("OTEL_TRACES_SAMPLER=", "OTEL_SDK_DISABLED=true\nX=")

    assert ray_nodes.problems(Graph(_edit_head_script(rendered("staging"), off))) == []


def test_summary_names_where_spans_go():
    lines = ray_nodes.facts(Graph(rendered("prod")))
    assert lines == [
        "Ray head ray-head: spans -> http://127.0.0.1:4318 (parentbased_traceidratio 1); "
        "agent OTLP 127.0.0.1:4317, 127.0.0.1:4318 -> X-Ray us-east-1",
        "Ray workers ray-worker-lt: spans -> http://127.0.0.1:4318 (parentbased_traceidratio 1); "
        "agent OTLP 127.0.0.1:4317, 127.0.0.1:4318 -> X-Ray us-east-1",
    ]
    assert ray_nodes.facts(Graph(rendered("dev")))[0] == "Ray head ray-head: no spans; agent: logs only"


# --- the route to X-Ray ----------------------------------------------------------------------------


def _xray_paths(r: Rendering) -> dict[str, reachability.Path]:
    return {p.source: p for p in reachability.analyze(Graph(r)).paths if p.dest == "xray" and p.source.startswith("Ray")}


def test_ray_nodes_reach_xray_through_the_endpoint_else_nat():
    prod, staging = _xray_paths(rendered("prod")), _xray_paths(rendered("staging"))
    assert set(prod) == set(staging) == {"Ray head", "Ray workers"}
    assert all(p.open and "interface endpoint network-xray-endpoint" in p.note for p in prod.values())
    assert all(p.open and "NAT gateway" in p.note for p in staging.values())
    assert _xray_paths(rendered("dev")) == {}


def test_the_xray_endpoint_exists_for_the_ray_nodes_alone():
    r = render("prod", overrides={"fleetprof:otelCollector": False})
    assert one(r, "aws:ec2/vpcEndpoint:VpcEndpoint", "network-xray-endpoint").inputs["serviceName"].endswith(".xray")
    assert all(p.open and "interface endpoint" in p.note for p in _xray_paths(r).values())


def test_without_a_route_to_xray_the_nodes_spans_are_lost():
    r = edit(rendered("prod"), "aws:ec2/vpcEndpoint:VpcEndpoint", "network-xray-endpoint", lambda res: None)
    assert all(p.open and "NAT gateway" in p.note for p in _xray_paths(r).values())
    for nat in rendered("prod").of_type("aws:ec2/natGateway:NatGateway"):
        r = edit(r, nat.type, nat.name, lambda res: None)
    assert all(not p.open for p in _xray_paths(r).values())
    problems = reachability.analyze(Graph(r)).problems()
    assert any(p.startswith("path Ray head -> xray tcp/443") for p in problems)
    assert any(p.startswith("path Ray workers -> xray tcp/443") for p in problems)


# --- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fleetprof:rayTracesSamplingRatio": "1.5"}, "rayTracesSamplingRatio must be 0..1"),
        ({"fleetprof:xrayEnabled": False, "fleetprof:otelCollector": False}, "rayTracing sends the Ray jobs' spans to X-Ray"),
    ],
    ids=["ratio", "no-xray"],
)
def test_bad_ray_tracing_config_is_refused_before_any_resource(overrides, message):
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        render("staging", overrides=overrides)
