"""Per-stack and per-component assertions over the mock-rendered program.

Every test both (a) awaits real Pulumi outputs through ``@pulumi.runtime.test`` and
(b) asserts synchronously on the recorded mock resources, so a broken check cannot pass
silently.
"""

from __future__ import annotations

import json
import re

import pulumi
import pytest
from infra_support import ROOT, STACKS, one, rendered

from components.mockrun import render
from components.preview import normalize
from components.settings import Settings, SettingsError
from policies.offline import evaluate, evaluate_rendering, to_res
from policies.rules import stack_policy_config

T = {
    "nat": "aws:ec2/natGateway:NatGateway",
    "subnet": "aws:ec2/subnet:Subnet",
    "lb": "aws:lb/loadBalancer:LoadBalancer",
    "listener": "aws:lb/listener:Listener",
    "waf": "aws:wafv2/webAcl:WebAcl",
    "waf_assoc": "aws:wafv2/webAclAssociation:WebAclAssociation",
    "table": "aws:dynamodb/table:Table",
    "service": "aws:ecs/service:Service",
    "task": "aws:ecs/taskDefinition:TaskDefinition",
    "sg": "aws:ec2/securityGroup:SecurityGroup",
    "rt": "aws:ec2/routeTable:RouteTable",
    "endpoint": "aws:ec2/vpcEndpoint:VpcEndpoint",
    "instance": "aws:ec2/instance:Instance",
    "lt": "aws:ec2/launchTemplate:LaunchTemplate",
    "asg": "aws:autoscaling/group:Group",
    "alarm": "aws:cloudwatch/metricAlarm:MetricAlarm",
    "role_policy": "aws:iam/rolePolicy:RolePolicy",
    "lifecycle": "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "sse": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
}


# --- per stack: what the configs say ---------------------------------------------------


@pulumi.runtime.test
def test_prod_is_highly_available(prod):
    settings = prod.program["settings"]
    azs = {r.inputs["availabilityZone"] for r in prod.of_type(T["subnet"])}
    assert len(azs) == settings.az_count == 3
    assert len(prod.of_type(T["nat"])) == 3
    service = one(prod, T["service"], "ingest-service").inputs
    assert service["desiredCount"] >= 2 and settings.min_count >= 2
    assert len(prod.of_type(T["waf_assoc"])) == 1
    table = one(prod, T["table"], "storage-index").inputs
    assert table["pointInTimeRecovery"]["enabled"] is True and table["deletionProtectionEnabled"] is True
    assert one(prod, T["lb"], "edge-alb").inputs["enableDeletionProtection"] is True
    https = one(prod, T["listener"], "edge-https").inputs
    validation = one(prod, "aws:acm/certificateValidation:CertificateValidation", "edge-cert-validation")
    assert https["certificateArn"] == validation.inputs["certificateArn"]  # the validated certificate
    network = prod.program["network"]

    def check(args):
        nat_ids, private_rts = args
        assert len(set(nat_ids)) == 3
        # each private route table egresses through its own AZ's NAT
        assert sorted(rt[0]["nat_gateway_id"] for rt in private_rts) == sorted(nat_ids)

    return pulumi.Output.all(
        pulumi.Output.all(*[n.id for n in network.nat_gateways]),
        pulumi.Output.all(*[rt.routes for rt in network.private_route_tables]),
    ).apply(check)


@pulumi.runtime.test
def test_dev_is_cheap_and_plain_http(dev):
    assert dev.config["fleetprof:wafEnabled"] == "false"
    assert len(dev.of_type(T["nat"])) == 1
    assert dev.of_type(T["waf"]) == [] and dev.of_type(T["waf_assoc"]) == []
    assert [r.name for r in dev.of_type(T["listener"])] == ["edge-http"]
    http = one(dev, T["listener"], "edge-http").inputs
    assert http["defaultActions"][0]["type"] == "forward"
    table = one(dev, T["table"], "storage-index").inputs
    assert table["pointInTimeRecovery"]["enabled"] is False
    network = dev.program["network"]
    assert len(network.private_route_tables) == 2

    def check(routes):
        # both private route tables share the single NAT gateway
        assert len({r[0]["nat_gateway_id"] for r in routes}) == 1

    return pulumi.Output.all(*[rt.routes for rt in network.private_route_tables]).apply(check)


@pulumi.runtime.test
def test_staging_sits_in_between(staging):
    assert len(staging.of_type(T["nat"])) == 2
    assert len(staging.of_type(T["waf_assoc"])) == 1
    table = one(staging, T["table"], "storage-index").inputs
    assert table["pointInTimeRecovery"]["enabled"] is True and table["deletionProtectionEnabled"] is False
    sg = one(staging, T["sg"], "edge-alb-sg").inputs
    assert sg["ingress"][0]["cidrBlocks"] == ["10.0.0.0/8", "203.0.113.0/24"]
    return staging.program["edge"].url.apply(lambda url: _assert(url.startswith("https://")))


def _assert(cond: bool) -> None:
    assert cond


@pytest.mark.parametrize("name", STACKS)
def test_stack_settings_follow_config(name):
    r = rendered(name)
    s: Settings = r.program["settings"]
    assert len(r.of_type(T["nat"])) == s.nat_gateway_count
    assert len(r.of_type(T["waf"])) == int(s.waf_enabled)
    assert len({x.inputs["availabilityZone"] for x in r.of_type(T["subnet"])}) == s.az_count
    assert len(r.of_type(T["subnet"])) == 3 * s.az_count
    interface = [e for e in r.of_type(T["endpoint"]) if e.inputs["vpcEndpointType"] == "Interface"]
    xray = s.otel_collector and s.xray_enabled  # the collector sidecar's X-Ray endpoint
    assert len(interface) == ((7 + int(xray)) if s.interface_endpoints else 0)
    assert one(r, T["asg"], "ray-workers").inputs["maxSize"] == s.ray_worker_max

    @pulumi.runtime.test
    def awaited():
        return r.program["ingest"].service.desired_count.apply(lambda n: _assert(n == s.desired_count))

    awaited()


@pytest.mark.parametrize("name", STACKS)
def test_stack_passes_policy_pack(name):
    r = rendered(name)
    assert evaluate_rendering(r) == []
    assert len(r.resources) > 80


@pulumi.runtime.test
def test_exports_what_an_operator_needs(stack):
    expected = {"url", "profilesBucket", "analysisBucket", "indexTable", "rayHeadInstanceId", "rayPortForwardCommand", "dashboardUrl"}
    assert expected <= set(stack.exports)
    assert "AWS-StartPortForwardingSession" in stack.exports["rayPortForwardCommand"]
    assert '"portNumber":["8265"]' in stack.exports["rayPortForwardCommand"]
    assert stack.exports["dashboardUrl"].endswith(f"dashboards:name=fleetprof-{stack.stack}")
    storage = stack.program["storage"]
    return pulumi.Output.all(storage.profiles_bucket.bucket, storage.table.name).apply(
        lambda a: _assert([a[0], a[1]] == [stack.exports["profilesBucket"], stack.exports["indexTable"]])
    )


def test_stacks_differ_by_config_only():
    tooling = {"preview.py", "mockrun.py", "config_table.py"}  # take stacks as data; never branch on one
    sources = [ROOT / "__main__.py", *sorted(p for p in (ROOT / "components").glob("*.py") if p.name not in tooling)]
    pattern = re.compile(r"""get_stack\(\)\s*[!=]=|["'](dev|staging|prod)["']""")
    offenders = [f"{p.name}: {m.group(0)}" for p in sources for m in pattern.finditer(p.read_text())]
    assert offenders == []
    configs = {s: (ROOT / f"Pulumi.{s}.yaml").read_text() for s in STACKS}
    assert len(set(configs.values())) == 3


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"certificate_arn": "", "allow_plain_http": False}, "allowPlainHttp"),
        ({"az_count": 1}, "azCount"),
        ({"min_count": 3, "desired_count": 2}, "minCount"),
        ({"certificate_arn": "not-an-arn"}, "not an ARN"),
        ({"ray_worker_desired": 9, "ray_worker_max": 4}, "rayWorker"),
    ],
)
def test_settings_reject_inconsistent_config(changes, message):
    base = dict(environment="t", region="us-east-1", certificate_arn="arn:aws:acm:us-east-1:1:certificate/x",
                ray_ami_id="ami-0123456789abcdef0")
    assert Settings(**base).validate().https
    with pytest.raises(SettingsError, match=message):
        Settings(**{**base, **changes}).validate()


def test_schema_documents_every_key():
    import yaml

    schema = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    for key, spec in schema.items():
        assert {"type", "default", "description"} <= set(spec), key
    for s in STACKS:
        stack_keys = yaml.safe_load((ROOT / f"Pulumi.{s}.yaml").read_text())["config"]
        unknown = [k for k in stack_keys if k.startswith("fleetprof:") and k.split(":", 1)[1] not in schema]
        assert unknown == [], f"{s}: keys missing from the Pulumi.yaml schema: {unknown}"


# --- components: key properties --------------------------------------------------------


@pulumi.runtime.test
def test_storage_matches_server_key_design(stack):
    table = one(stack, T["table"], "storage-index").inputs
    assert (table["hashKey"], table["rangeKey"], table["billingMode"]) == ("pk", "sk", "PAY_PER_REQUEST")
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    gsi = table["globalSecondaryIndexes"]
    assert [(g["name"], g["hashKey"], g["rangeKey"]) for g in gsi] == [("by_state", "gsi1pk", "gsi1sk")]
    assert table["serverSideEncryption"]["enabled"] is True
    lifecycle = normalize(one(stack, T["lifecycle"], "storage-profiles-lifecycle").inputs["rules"])
    assert not any((r.get("expiration") or {}).get("days") for r in lifecycle)  # see test_storage_lifecycle.py
    algos = {
        r.name: r.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"]
        for r in stack.of_type(T["sse"])
        if r.parent_name == "storage"
    }
    assert algos == {
        "storage-profiles-sse": "aws:kms",
        "storage-analysis-sse": "aws:kms",
        "storage-artifacts-sse": "aws:kms",
        "storage-alb-logs-sse": "AES256",
    }
    storage = stack.program["storage"]
    return pulumi.Output.all(storage.key.enable_key_rotation, storage.table.point_in_time_recovery).apply(
        lambda a: _assert(a[0] is True and a[1]["enabled"] == stack.program["settings"].point_in_time_recovery)
    )


@pulumi.runtime.test
def test_edge_listener_and_target_group(stack):
    tg = one(stack, "aws:lb/targetGroup:TargetGroup", "edge-tg").inputs
    assert (tg["port"], tg["targetType"], tg["healthCheck"]["path"]) == (4040, "ip", "/readyz")
    lb = one(stack, T["lb"], "edge-alb").inputs
    assert lb["dropInvalidHeaderFields"] is True and lb["accessLogs"]["enabled"] is True and lb["internal"] is False
    ports = sorted(int(i["fromPort"]) for i in one(stack, T["sg"], "edge-alb-sg").inputs["ingress"])
    https = stack.program["settings"].https
    assert ports == ([80, 443] if https else [80])
    if https:
        redirect = one(stack, T["listener"], "edge-http").inputs["defaultActions"][0]
        assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"
    return stack.program["edge"].url.apply(lambda u: _assert(u.startswith("https://" if https else "http://")))


@pulumi.runtime.test
def test_ingest_task_follows_deployment_interface(stack):
    task = one(stack, T["task"], "ingest-task").inputs
    container, *sidecars = json.loads(task["containerDefinitions"])
    assert [c["name"] for c in sidecars] == (["otel-collector"] if stack.program["settings"].otel_collector else [])
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["FLEETPROF_STORAGE"] == f"s3://{stack.exports['profilesBucket']}/"
    assert env["FLEETPROF_INDEX"] == f"dynamodb://{stack.exports['indexTable']}"
    assert env["FLEETPROF_HOST"] == "0.0.0.0"
    assert container["command"] == ["fleetprof", "serve"]
    assert container["portMappings"] == [{"containerPort": 4040, "protocol": "tcp"}]
    assert container["readonlyRootFilesystem"] is True and not container["user"].startswith("0")
    assert "/readyz" in " ".join(container["healthCheck"]["command"])
    service = one(stack, T["service"], "ingest-service").inputs
    assert service["networkConfiguration"]["assignPublicIp"] is False
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["alarms"]["rollback"] is True and service["alarms"]["alarmNames"]
    sg = one(stack, T["sg"], "ingest-sg").inputs
    assert [(i["fromPort"], i.get("cidrBlocks")) for i in sg["ingress"]] == [(4040, None)]
    assert sg["ingress"][0]["securityGroups"] == [one(stack, T["sg"], "edge-alb-sg").id]
    metrics = sorted(
        p.inputs["targetTrackingScalingPolicyConfiguration"]["predefinedMetricSpecification"]["predefinedMetricType"]
        for p in stack.of_type("aws:appautoscaling/policy:Policy")
        if p.inputs["policyType"] == "TargetTrackingScaling"
    )
    assert metrics == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]
    return stack.program["ingest"].task_definition.cpu.apply(lambda c: _assert(c == str(stack.program["settings"].task_cpu)))


def test_task_role_is_least_privilege(stack):
    doc = json.loads(one(stack, T["role_policy"], "ingest-task-data-policy").inputs["policy"])
    xray = [s for s in doc["Statement"] if s.get("Sid") == "XRayTraces"]  # X-Ray has no resource-level permissions
    settings = stack.program["settings"]
    assert [(s["Action"], s["Resource"]) for s in xray] == (
        [(["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"], "*")]
        if settings.otel_collector and settings.xray_enabled else [])
    doc["Statement"] = [s for s in doc["Statement"] if s not in xray]
    resources = {r for s in doc["Statement"] for r in s["Resource"]}
    bucket = stack.exports["profilesBucket"]
    assert all(bucket in r or stack.exports["analysisBucket"] in r or ":dynamodb:" in r or ":kms:" in r for r in resources)
    analysis = stack.exports["analysisBucket"]
    assert {a for s in doc["Statement"] for r in s["Resource"] if analysis in r for a in s["Action"]} == {
        "s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}  # read-only: the Ray jobs write analyses
    assert all(a != "*" and not a.endswith(":*") for s in doc["Statement"] for a in s["Action"])


@pulumi.runtime.test
def test_ray_cluster_boot_and_hardening(stack):
    head = one(stack, T["instance"], "ray-head").inputs
    assert head["metadataOptions"]["httpTokens"] == "required" and head["associatePublicIpAddress"] is False
    assert head["rootBlockDevice"]["encrypted"] is True
    script = head["userData"]
    s = stack.program["settings"]
    for needle in (
        "ray start --head --port=6379",
        "RAY_AUTH_MODE=token",
        f"-c /var/lib/fleetprof/artifacts/constraints.txt '/var/lib/fleetprof/artifacts/{stack.exports['rayWheelKey'].rsplit('/', 1)[-1]}[workers]'",
        "python -m workers.compact",
        f"python -m workers.analyze --window {s.analyze_window}",
        f"OnCalendar={s.compact_schedule}",
        f"OnCalendar={s.analyze_schedule}",
        f"FLEETPROF_STORAGE=s3://{stack.exports['profilesBucket']}/",
    ):
        assert needle in script, needle
    sg = one(stack, T["sg"], "ray-sg").inputs
    assert all(rule.get("self") is True or rule.get("securityGroups") for rule in sg["ingress"])
    assert not any(rule.get("cidrBlocks") for rule in sg["ingress"])
    lt = one(stack, T["lt"], "ray-worker-lt").inputs
    assert lt["metadataOptions"]["httpTokens"] == "required"
    ray = stack.program["ray"]

    def check(args):
        import base64

        user_data, head_ip = args
        worker = base64.b64decode(user_data).decode()
        assert f"ray start --address={head_ip}:6379" in worker and "RAY_AUTH_MODE=token" in worker

    return pulumi.Output.all(ray.launch_template.user_data, ray.head.private_ip).apply(check)


@pulumi.runtime.test
def test_observability_alarms_use_config_thresholds(stack):
    s = stack.program["settings"]
    alarms = {a.name: a.inputs for a in stack.of_type(T["alarm"])}
    assert alarms["observability-target-5xx"]["threshold"] == s.alarm_5xx_threshold
    assert alarms["observability-latency-p99"]["threshold"] == s.alarm_latency_p99_ms / 1000
    assert alarms["observability-ecs-cpu"]["threshold"] == s.alarm_cpu_percent
    assert alarms["observability-dynamodb-throttles"]["threshold"] == s.alarm_throttle_threshold
    topic_arn = stack.exports["alarmTopicArn"]
    assert all(a["alarmActions"] == [topic_arn] for n, a in alarms.items() if n.startswith("observability-"))
    subs = [x for x in stack.of_type("aws:sns/topicSubscription:TopicSubscription") if x.inputs["topic"] == topic_arn]
    assert [x.inputs["endpoint"] for x in subs] == ([s.alarm_email] if s.alarm_email else [])
    body = json.loads(one(stack, "aws:cloudwatch/dashboard:Dashboard", "observability-dashboard").inputs["dashboardBody"])
    titles = {w["properties"]["title"] for w in body["widgets"]}
    assert {"ALB requests", "ALB 5xx", "DynamoDB throttles", "Ray node health"} <= titles
    return stack.program["observability"].dashboard_url.apply(lambda u: _assert(u == stack.exports["dashboardUrl"]))


# --- variants through config only ------------------------------------------------------


@pulumi.runtime.test
def test_single_nat_variant_of_prod():
    variant = render("prod", overrides={"fleetprof:natPerAz": False, "fleetprof:wafEnabled": False})
    assert len(variant.of_type(T["nat"])) == 1
    assert variant.of_type(T["waf"]) == []
    # prod's class requires HA NAT and WAF whatever its stack file says
    findings = {f.rule for f in evaluate_rendering(variant)}
    assert findings == {"nat-per-az", "waf-attached"}, findings
    # the same resources under the dev class's requirements pass
    relaxed = {f.rule for f in evaluate(to_res(variant.resources), stack_policy_config("dev"))}
    assert relaxed == set(), relaxed
    return variant.program["network"].nat_gateways[0].subnet_id.apply(lambda s: _assert(s.startswith("subnet-")))


def test_preview_and_policy_entry_points(capsys):
    from components import preview
    from policies import offline

    assert preview.main(["--stack", "dev"]) == 0
    assert "fleetprof:storage:Storage storage" in capsys.readouterr().out
    assert offline.main(["--stack", "prod"]) == 0
    assert "no violations" in capsys.readouterr().out
    assert offline.main(["--stack", "staging", "--emit-config"]) == 0
    emitted = json.loads(capsys.readouterr().out)
    assert emitted["nat-per-az"] == {"required": True}
    assert preview.main(["--stack", "nope"]) == 2


def test_dockerfile_runs_non_root_with_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and "/readyz" in text and "4040" in text
    assert ".venv" in (ROOT / ".dockerignore").read_text()
    assert "pip install -c constraints.txt ." in text  # the image gets the pinned versions
    assert "NUMBA_CACHE_DIR" in text and "python -m fleetprof.warmup" in text  # kernels compiled at build
    readme = (ROOT / "README.md").read_text()
    for needle in ("pulumi up", "--policy-pack", "ray job submit", "AWS-StartPortForwardingSession"):
        assert needle in readme, needle
