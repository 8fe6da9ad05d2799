"""The rendered Ray cluster: pinned AMI, the platform's own wheel, scoped IAM, recovery,
scaling, scheduled jobs and log shipping (each check with a variant that breaks it)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from infra_support import STACKS, one, rendered

from components.aws_model.policy_eval import Principal, Request, decide, statements
from components.mockrun import FleetMocks, Rendering, render
from components.ray_cluster import (
    ARTIFACT_PREFIX,
    SUBMIT,
    NodeEnv,
    ScheduledJob,
    head_user_data,
    worker_user_data,
)
from components.settings import Settings, SettingsError

T_INSTANCE = "aws:ec2/instance:Instance"
T_LT = "aws:ec2/launchTemplate:LaunchTemplate"
T_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
T_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
T_ASG = "aws:autoscaling/group:Group"
T_SCALING = "aws:autoscaling/policy:Policy"
T_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
EC2_USER_DATA_LIMIT = 16 * 1024  # bytes, before base64
UNIT_RE = re.compile(r"^cat > /etc/systemd/system/(\S+) <<'UNIT'\n(.*?)^UNIT$", re.M | re.S)


# --- helpers -------------------------------------------------------------------------------


def head_script(r: Rendering) -> str:
    return one(r, T_INSTANCE, "ray-head").inputs["userData"]


def worker_script(r: Rendering) -> str:
    return base64.b64decode(one(r, T_LT, "ray-worker-lt").inputs["userData"]).decode()


def unit_files(script: str) -> dict[str, str]:
    """Unit file name -> contents written by a boot script."""
    return {m.group(1): m.group(2) for m in UNIT_RE.finditer(script)}


def unit_value(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


def install_block(script: str) -> str:
    """The lines from the artifact download to the pip install (identical on every node)."""
    start = script.index("install -d -m 0755 /var/lib/fleetprof/artifacts")
    end = script.index("\n", script.index("/bin/pip install"))
    return script[start:end]


def node_policy_doc(r: Rendering, kind: str) -> dict:
    return json.loads(one(r, T_POLICY, f"ray-{kind}-data-policy").inputs["policy"])


def allowed(policy: dict, action: str, resource: str, **context: str) -> bool:
    request = Request(Principal("AWS", "arn:aws:iam::123456789012:role/node"), action, resource, context)
    return decide(statements(policy), request, resource_policy=False) == "allow"


def node_env(**changes: str | int) -> NodeEnv:
    base = NodeEnv(
        region="us-east-1", environment="t", token_parameter="/fleetprof/t/ray-auth-token",
        token_generation=1, profiles_bucket="p", analysis_bucket="a", table_name="i",
        artifacts_bucket="art", wheel_key=f"{ARTIFACT_PREFIX}{'a' * 64}/fleetprof-0.1.0-py3-none-any.whl",
        wheel_sha256="a" * 64, constraints_key=f"{ARTIFACT_PREFIX}{'b' * 64}/constraints.txt",
        constraints_sha256="b" * 64, log_group="/fleetprof/t/ray",
    )
    return replace(base, **changes)


JOBS = [ScheduledJob("compact", "python -m workers.compact", "hourly")]


# --- AMI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_ami_is_pinned_by_config(name):
    r = rendered(name)
    ami = r.program["settings"].ray_ami_id
    assert re.fullmatch(r"ami-[0-9a-f]{17}", ami)
    assert one(r, T_INSTANCE, "ray-head").inputs["ami"] == ami
    assert one(r, T_LT, "ray-worker-lt").inputs["imageId"] == ami


def test_ami_changes_only_by_config_and_nothing_looks_up_latest(monkeypatch):
    tokens: list[str] = []
    original = FleetMocks.call

    def recording(self, args):
        tokens.append(args.token)
        return original(self, args)

    monkeypatch.setattr(FleetMocks, "call", recording)
    r = render("dev", overrides={"fleetprof:rayAmiId": "ami-0fedcba9876543210"})
    assert "aws:ssm/getParameter:getParameter" not in tokens
    assert tokens, "the recorder saw no invoke at all"
    assert one(r, T_INSTANCE, "ray-head").inputs["ami"] == "ami-0fedcba9876543210"
    assert one(r, T_LT, "ray-worker-lt").inputs["imageId"] == "ami-0fedcba9876543210"


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"ray_ami_id": ""}, "rayAmiId"),
        ({"ray_ami_id": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"}, "rayAmiId"),
        ({"ray_ami_id": "ami-0123456789ABCDEF0"}, "rayAmiId"),
        ({"analyze_window": "1h"}, "analyzeWindow"),
        ({"retention_days": 0}, "retentionDays"),
        ({"ray_cpu_target_percent": 0}, "rayCpuTargetPercent"),
    ],
)
def test_ray_settings_are_validated(changes, key):
    base = dict(environment="t", region="us-east-1", allow_plain_http=True, ray_ami_id="ami-0123456789abcdef0")
    assert Settings(**base).validate()
    with pytest.raises(SettingsError, match=key):
        Settings(**{**base, **changes}).validate()


# --- the wheel and constraints from the artifacts bucket -------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_nodes_install_the_uploaded_wheel_with_constraints(name):
    r = rendered(name)
    bucket = r.exports["artifactsBucket"]
    objects = {o.name: o.inputs for o in r.of_type(T_OBJECT)}
    assert set(objects) == {"ray-wheel", "ray-constraints"}
    for obj in objects.values():
        path = Path(obj["source"].path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert obj["bucket"] == bucket
        assert obj["key"] == f"{ARTIFACT_PREFIX}{digest}/{path.name}"  # content-addressed
        for script in (head_script(r), worker_script(r)):
            assert f"s3://{bucket}/{obj['key']} " in script
            assert f"{digest}  /var/lib/fleetprof/artifacts/" in script  # verified before use
    wheel = Path(objects["ray-wheel"]["source"].path)
    assert wheel.name.endswith("-py3-none-any.whl")
    constraints = Path(objects["ray-constraints"]["source"].path).read_text()
    assert re.search(r"^ray==\d+\.\d+\.\d+$", constraints, re.M), "constraints.txt must pin ray"
    for script in (head_script(r), worker_script(r)):
        pip = [line for line in script.splitlines() if "pip install" in line]
        assert pip == [
            "/opt/fleetprof/bin/pip install --disable-pip-version-check --no-cache-dir "
            f"-c /var/lib/fleetprof/artifacts/constraints.txt '/var/lib/fleetprof/artifacts/{wheel.name}[workers]'"
        ]
    assert install_block(head_script(r)) == install_block(worker_script(r))


def test_a_new_wheel_is_an_explicit_change_of_both_scripts():
    old, new = node_env(), node_env(wheel_sha256="c" * 64, wheel_key=f"{ARTIFACT_PREFIX}{'c' * 64}/fleetprof-0.1.0-py3-none-any.whl")
    assert head_user_data(old, JOBS) != head_user_data(new, JOBS)
    assert worker_user_data(old, "10.0.0.1") != worker_user_data(new, "10.0.0.1")
    assert install_block(head_user_data(new, JOBS)) != install_block(worker_user_data(old, "10.0.0.1"))


@pytest.mark.parametrize("name", STACKS)
def test_user_data_fits_the_ec2_limit(name):
    r = rendered(name)
    assert len(head_script(r).encode()) <= EC2_USER_DATA_LIMIT
    assert len(worker_script(r).encode()) <= EC2_USER_DATA_LIMIT
    many = [ScheduledJob(f"job{i}", "python -m workers.compact", "hourly") for i in range(20)]
    assert len(head_user_data(node_env(), many).encode()) > EC2_USER_DATA_LIMIT  # the check can fail


# --- IAM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_node_roles_are_scoped(name):
    r = rendered(name)
    artifacts = f"arn:aws:s3:::{r.exports['artifactsBucket']}"
    wheel_key = one(r, T_OBJECT, "ray-wheel").inputs["key"]
    log_group = r.exports["rayLogGroup"]
    for kind in ("head", "worker"):
        policy = node_policy_doc(r, kind)
        assert allowed(policy, "s3:GetObject", f"{artifacts}/{wheel_key}")
        assert not allowed(policy, "s3:GetObject", f"{artifacts}/other/{wheel_key}")
        assert not allowed(policy, "s3:PutObject", f"{artifacts}/{wheel_key}")
        assert not allowed(policy, "s3:ListBucket", artifacts)
        assert allowed(policy, "cloudwatch:PutMetricData", "*", **{"cloudwatch:namespace": "Fleetprof/Jobs"})
        assert not allowed(policy, "cloudwatch:PutMetricData", "*", **{"cloudwatch:namespace": "AWS/EC2"})
        assert not allowed(policy, "cloudwatch:PutMetricData", "*")
        stream = f"arn:aws:logs:us-east-1:123456789012:log-group:{log_group}:log-stream:i-1/ray"
        assert allowed(policy, "logs:PutLogEvents", stream)
        assert not allowed(policy, "logs:PutLogEvents", stream.replace(log_group, "/other"))
        param = f"arn:aws:ssm:us-east-1:123456789012:parameter{r.exports['rayAuthTokenParameter']}"
        assert allowed(policy, "ssm:GetParameter", param)
        assert not allowed(policy, "ssm:PutParameter", param)  # the program writes it, nodes only read


# --- recovery and scaling ------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_head_recovers_in_place(name):
    r = rendered(name)
    head = one(r, T_INSTANCE, "ray-head")
    assert head.inputs["maintenanceOptions"] == {"autoRecovery": "default"}
    alarm = one(r, T_ALARM, "ray-head-recover").inputs
    assert (alarm["namespace"], alarm["metricName"]) == ("AWS/EC2", "StatusCheckFailed_System")
    assert alarm["dimensions"] == {"InstanceId": head.id}
    assert alarm["alarmActions"] == [f"arn:aws:automate:{r.config['aws:region']}:ec2:recover"]
    assert not alarm.get("okActions")  # recovering on OK would reboot a healthy head
    assert alarm["comparisonOperator"] == "GreaterThanThreshold" and alarm["threshold"] == 0
    for name_, unit in unit_files(head_script(r)).items():
        if name_ == "ray-head.service":
            assert unit_value(unit, "Restart") == ["always"]
    assert unit_value(unit_files(worker_script(r))["ray-worker.service"], "Restart") == ["always"]


@pytest.mark.parametrize("name", STACKS)
def test_worker_group_scales_between_min_and_max(name):
    r = rendered(name)
    s = r.program["settings"]
    asg = one(r, T_ASG, "ray-workers")
    assert (asg.inputs["minSize"], asg.inputs["maxSize"]) == (s.ray_worker_min, s.ray_worker_max)
    assert "desiredCapacity" in asg.ignore_changes  # Pulumi would undo every scaling action
    policy = one(r, T_SCALING, "ray-workers-cpu").inputs
    assert policy["autoscalingGroupName"] == asg.outputs["name"]
    assert policy["policyType"] == "TargetTrackingScaling"
    tracking = policy["targetTrackingConfiguration"]
    assert tracking["predefinedMetricSpecification"]["predefinedMetricType"] == "ASGAverageCPUUtilization"
    assert tracking["targetValue"] == s.ray_cpu_target_percent


# --- scheduled jobs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_every_job_has_a_timer_a_waiting_unit_and_outcome_metrics(name):
    r = rendered(name)
    s = r.program["settings"]
    script = head_script(r)
    units = unit_files(script)
    expected = {
        "compact": ("python -m workers.compact", s.compact_schedule),
        "analyze": (f"python -m workers.analyze --window {s.analyze_window}", s.analyze_schedule),
        "retention": (f"python -m workers.retention --days {s.retention_days}", s.retention_schedule),
    }
    enabled = script.rstrip().splitlines()[-1]
    for job, (command, on_calendar) in expected.items():
        assert unit_value(units[f"fleetprof-{job}.timer"], "OnCalendar") == [on_calendar]
        service = units[f"fleetprof-{job}.service"]
        (exec_start,) = unit_value(service, "ExecStart")  # a job's runtime env may sit before the "--"
        assert exec_start.startswith(SUBMIT.removesuffix(" --") + " ") and exec_start.endswith(f" -- {command}")
        assert "--no-wait" not in service
        assert unit_value(service, "ExecStartPost") == [
            f"/opt/fleetprof/bin/python -m workers.job_metrics --job {job} --status succeeded"]
        assert unit_value(service, "OnFailure") == [f"fleetprof-job-failed@{job}.service"]
        assert f" fleetprof-{job}.timer" in enabled
    failed = units["fleetprof-job-failed@.service"]
    assert unit_value(failed, "ExecStart") == ["/opt/fleetprof/bin/python -m workers.job_metrics --job %i --status failed"]
    env = script[script.index("cat > /etc/fleetprof/env"):]
    assert f"FLEETPROF_ENVIRONMENT={name}\n" in env
    assert f"FLEETPROF_ANALYSIS=s3://{r.exports['analysisBucket']}/\n" in env


def test_retention_days_follow_config():
    r = render("dev", overrides={"fleetprof:retentionDays": 11, "fleetprof:analyzeWindow": "last-hour"})
    units = unit_files(head_script(r))
    assert unit_value(units["fleetprof-retention.service"], "ExecStart") == [f"{SUBMIT} python -m workers.retention --days 11"]
    assert unit_value(units["fleetprof-analyze.service"], "ExecStart") == [f"{SUBMIT} python -m workers.analyze --window last-hour"]


# --- logs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_logs_ship_to_the_stacks_encrypted_log_group(name):
    r = rendered(name)
    s = r.program["settings"]
    group = one(r, T_LOG_GROUP, "ray-logs").inputs
    assert group["name"] == f"/fleetprof/{name}/ray" == r.exports["rayLogGroup"]
    assert group["kmsKeyId"] == one(r, "aws:kms/key:Key", "storage-key").outputs["arn"]
    assert group["retentionInDays"] == s.log_retention_days
    for script in (head_script(r), worker_script(r)):
        body = script[script.index("<<'JSON'\n") + 9:script.index("\nJSON\n")]
        collect = json.loads(body)["logs"]["logs_collected"]["files"]["collect_list"]
        assert {c["log_group_name"] for c in collect} == {group["name"]}
        paths = {c["file_path"] for c in collect}
        assert {"/var/log/cloud-init-output.log", "/tmp/ray/session_latest/logs/*"} <= paths
        agent = script.index("amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/etc/fleetprof/cloudwatch-agent.json")
        assert agent < script.index("aws s3 cp")  # a failing install is already shipped
