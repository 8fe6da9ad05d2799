"""Anomaly notifications in the stacks: the encrypted topic, its subscriptions, the analysis
job's runtime environment, who may publish, the key's users, the network path, the settings
and the policy rule, each with a failing case."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex

import pytest
from infra_support import STACKS, one, rendered

from components.aws_model.graph import Graph
from components.aws_model.kms import analyze as key_uses
from components.aws_model.policy_eval import Principal, Request, decide, statements
from components.aws_model.reachability import analyze as reachability
from components.mockrun import ACCOUNT_ID, MockResource, Rendering, render
from components.notifications import subscription_suffix
from components.ray_cluster import ANOMALY_TOPIC_ENV, SUBMIT, ScheduledJob, submit_command
from components.settings import Settings, SettingsError
from policies.offline import evaluate, to_res
from policies.rules import rule_by_name

TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
UNIT_RE = re.compile(r"^cat > /etc/systemd/system/(\S+) <<'UNIT'\n(.*?)^UNIT$", re.M | re.S)
EMAILS = ["perf@example.com", "Team.Lead+fleet@example.org"]


@pytest.fixture(scope="module")
def dev_on() -> Rendering:
    """The dev stack with notifications on and two subscribers (dev keeps them off)."""
    return render("dev", overrides={"fleetprof:anomalyNotifications": True, "fleetprof:anomalyEmails": EMAILS})


def topic(r: Rendering) -> MockResource:
    return one(r, TOPIC, "notifications-anomalies")


def exec_start(r: Rendering, job: str) -> list[str]:
    """The words of a head unit's ``ExecStart`` as systemd splits them (no shell)."""
    units = {m.group(1): m.group(2) for m in UNIT_RE.finditer(one(r, "aws:ec2/instance:Instance", "ray-head").inputs["userData"])}
    (line,) = [x.split("=", 1)[1] for x in units[f"fleetprof-{job}.service"].splitlines() if x.startswith("ExecStart=")]
    return shlex.split(line)


def submitted_runtime_env(words: list[str]) -> dict:
    """The runtime environment Ray's own ``ray job submit`` parses from ``words`` ({}: none)."""
    from ray.dashboard.modules.job import cli

    ctx = cli.submit.make_context("submit", words[3:])  # after ".../ray job submit"
    return cli.parse_runtime_env_args(runtime_env=ctx.params["runtime_env"],
                                      runtime_env_json=ctx.params["runtime_env_json"], working_dir=ctx.params["working_dir"]) or {}


def identity(r: Rendering, role_name: str) -> list:
    """Every statement of the role's inline role policies."""
    g = Graph(r)
    role = one(r, ROLE, role_name)
    return [s for p in r.of_type(ROLE_POLICY) if g.ref(p.inputs["role"]) is role for s in statements(p.inputs["policy"])]


def may_publish(r: Rendering, role_name: str, arn: str) -> bool:
    request = Request(Principal("AWS", one(r, ROLE, role_name).outputs["arn"]), "sns:Publish", arn)
    return decide(identity(r, role_name), request, resource_policy=False) == "allow"


def edited(r: Rendering, name: str, edit) -> Rendering:
    """``r`` with ``edit(inputs)`` applied to the resource ``name`` (None drops it)."""
    out = []
    for x in r.resources:
        if x.name == name:
            inputs = edit(json.loads(json.dumps(x.inputs)))
            if inputs is None:
                continue
            x = dataclasses.replace(x, inputs=inputs)
        out.append(x)
    return dataclasses.replace(r, resources=out)


# --- topic and subscriptions -------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_topic_exists_where_enabled_encrypted_with_the_stack_key(name):
    r = rendered(name)
    s = r.program["settings"]
    topics = [t for t in r.of_type(TOPIC) if t.name == "notifications-anomalies"]
    if not s.anomaly_notifications:
        assert topics == [] and r.exports["anomalyTopicArn"] is None
        return
    (t,) = topics
    assert t.parent_name == "notifications"
    assert t.inputs["kmsMasterKeyId"] == one(r, "aws:kms/key:Key", "storage-key").outputs["arn"]
    assert r.exports["anomalyTopicArn"] == t.outputs["arn"]
    subs = [x.inputs for x in r.of_type(SUBSCRIPTION) if x.inputs["topic"] == t.outputs["arn"]]
    assert sorted(x["endpoint"] for x in subs) == sorted(s.anomaly_emails) and {x["protocol"] for x in subs} == {"email"}


def test_staging_and_prod_notify_dev_does_not():
    assert [rendered(n).program["settings"].anomaly_notifications for n in STACKS] == [False, True, True]


def test_subscriptions_come_from_config_and_are_named_by_address(dev_on):
    arn = topic(dev_on).outputs["arn"]
    subs = {x.name: x.inputs for x in dev_on.of_type(SUBSCRIPTION) if x.inputs["topic"] == arn}
    assert subs == {f"notifications-anomalies-email-{subscription_suffix(e)}": {"topic": arn, "protocol": "email", "endpoint": e}
                    for e in EMAILS}
    assert subscription_suffix("PERF@example.com ") == subscription_suffix("perf@example.com")


# --- the analysis job's environment ------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_the_analysis_job_carries_the_topic_in_its_runtime_env(name):
    r = rendered(name)
    analyze = exec_start(r, "analyze")
    assert analyze[analyze.index("--") + 1:][:3] == ["python", "-m", "workers.analyze"]
    expected = {"env_vars": {ANOMALY_TOPIC_ENV: r.exports["anomalyTopicArn"]}} if r.exports["anomalyTopicArn"] else {}
    assert submitted_runtime_env(analyze) == expected
    for job in ("compact", "retention"):  # no other job sees the topic
        assert submitted_runtime_env(exec_start(r, job)) == {}
    # the node-wide environment file does not carry it either
    head = one(r, "aws:ec2/instance:Instance", "ray-head").inputs["userData"]
    env_file = head[head.index("cat > /etc/fleetprof/env"):]
    assert ANOMALY_TOPIC_ENV not in env_file[: env_file.index("\nENV\n")]


def test_a_value_systemd_would_rewrite_is_refused():
    assert submit_command(ScheduledJob("a", "python -m x", "hourly")) == SUBMIT
    for bad in ("it's", "$HOME", "50%", 'a"b', "a\\nb", "a b"):
        with pytest.raises(ValueError, match="cannot travel in a unit file"):
            submit_command(ScheduledJob("a", "python -m x", "hourly", ((ANOMALY_TOPIC_ENV, bad),)))
    with pytest.raises(ValueError):
        submit_command(ScheduledJob("a", "python -m x", "hourly", (("bad-name", "v"),)))


# --- who may publish ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_ray_roles_may_publish_to_the_anomaly_topic_only(name):
    r = rendered(name)
    arn = topic(r).outputs["arn"]
    for role in ("ray-head-role", "ray-worker-role"):  # the analysis tasks run on any node
        assert may_publish(r, role, arn)
        assert not may_publish(r, role, r.exports["alarmTopicArn"])
        assert not may_publish(r, role, f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:other-topic")
    others = [x.name for x in r.of_type(ROLE) if not x.name.startswith("ray-") and may_publish(r, x.name, arn)]
    assert others == []


def test_without_notifications_no_role_may_publish(dev):
    for role in dev.of_type(ROLE):
        assert not may_publish(dev, role.name, f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:any"), role.name


# --- the key -------------------------------------------------------------------------------------


def anomaly_key_uses(report) -> dict[str, tuple[str, ...]]:
    """Principal -> actions of the anomaly topic's key uses."""
    return {u.principal.id: u.actions for u in report.uses if u.resource == "SNS topic notifications-anomalies"}


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_both_ray_roles_use_the_topic_key_and_are_allowed(name):
    r = rendered(name)
    report = key_uses(Graph(r))
    assert report.problems() == []
    uses = anomaly_key_uses(report)
    assert set(uses) == {one(r, ROLE, f"ray-{k}-role").outputs["arn"] for k in ("head", "worker")}
    assert all(set(a) == {"kms:GenerateDataKey", "kms:Decrypt"} for a in uses.values())
    (use,) = [u for u in report.uses if u.resource == "SNS topic notifications-anomalies" and "head" in u.principal.id]
    assert dict(use.context)["kms:EncryptionContext:aws:sns:topicArn"] == topic(r).outputs["arn"]
    assert dict(use.context)["kms:ViaService"] == "sns.us-east-1.amazonaws.com"


def test_a_publisher_without_key_permissions_is_refused(staging):
    """The key policy only delegates to the account: the role needs its own kms grant."""

    def no_key(inputs: dict) -> dict:
        doc = json.loads(inputs["policy"])
        doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != "DataKey"]
        return {**inputs, "policy": json.dumps(doc)}

    report = key_uses(Graph(edited(staging, "ray-head-data-policy", no_key)))
    refused = {(d.use.resource, d.action) for d in report.denied if "ray-head-role" in d.use.principal.id}
    assert {("SNS topic notifications-anomalies", "kms:GenerateDataKey"), ("SNS topic notifications-anomalies", "kms:Decrypt")} <= refused
    assert all("IAM policies do not allow" in d.reason for d in report.denied)


def test_a_key_policy_denying_the_topic_context_breaks_publishing(prod):
    arn = topic(prod).outputs["arn"]

    def deny(inputs: dict) -> dict:
        doc = json.loads(inputs["policy"])
        doc["Statement"].append({"Sid": "NoAnomalies", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                                 "Condition": {"StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": arn}}})
        return {**inputs, "policy": json.dumps(doc)}

    report = key_uses(Graph(edited(prod, "storage-key", deny)))
    assert {d.use.resource for d in report.denied} == {"SNS topic notifications-anomalies"}


# --- the network path ----------------------------------------------------------------------------


def sns_paths(report) -> dict[str, str]:
    return {p.label.split(" (")[0]: p.blocked for p in report.paths if p.dest == "sns"}


def test_ray_nodes_reach_sns_where_they_publish(staging, dev):
    assert sns_paths(reachability(Graph(staging))) == {"Ray head -> sns tcp/443": "", "Ray workers -> sns tcp/443": ""}
    assert sns_paths(reachability(Graph(dev))) == {}


def test_without_a_route_out_the_nodes_cannot_notify(staging):
    r = staging
    for az in "ab":
        r = edited(r, f"network-private-rt-us-east-1{az}", lambda i: {**i, "routes": []})
    blocked = sns_paths(reachability(Graph(r)))
    assert set(blocked) == {"Ray head -> sns tcp/443", "Ray workers -> sns tcp/443"} and all(blocked.values())


# --- settings --------------------------------------------------------------------------------------


_BASE = dict(environment="t", region="us-east-1", certificate_arn="arn:aws:acm:us-east-1:1:certificate/x",
             ray_ami_id="ami-0123456789abcdef0")


@pytest.mark.parametrize(("changes", "message"), [
    ({"anomaly_emails": ("a@example.com",)}, "anomalyNotifications is false"),
    ({"anomaly_notifications": True, "anomaly_emails": ("not-an-address",)}, "is not an email address"),
    ({"anomaly_notifications": True, "anomaly_emails": ("a@example",)}, "is not an email address"),
    ({"anomaly_notifications": True, "anomaly_emails": ("a@example.com", "A@Example.com")}, "twice"),
])
def test_settings_refuse_unusable_subscriptions(changes: dict, message: str) -> None:
    assert Settings(**_BASE, anomaly_notifications=True, anomaly_emails=("a@example.com",)).validate()
    with pytest.raises(SettingsError, match=message):
        Settings(**(_BASE | changes)).validate()


# --- policy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_every_rendered_topic_passes_the_cmk_rule(name):
    assert evaluate(to_res(rendered(name).resources), rules=[rule_by_name("sns-topic-cmk")]) == []


@pytest.mark.parametrize(("edit", "message"), [
    (lambda i: {k: v for k, v in i.items() if k != "kmsMasterKeyId"}, "is not encrypted"),
    (lambda i: {**i, "kmsMasterKeyId": "alias/aws/sns"}, "AWS managed key"),
    (lambda i: {**i, "kmsMasterKeyId": f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:alias/aws/sns"}, "AWS managed key"),
])
def test_the_cmk_rule_fails_an_unencrypted_or_aws_managed_topic(staging, edit, message):
    res = [dataclasses.replace(r, deps={}) if r.name == "notifications-anomalies" else r
           for r in to_res(edited(staging, "notifications-anomalies", edit).resources)]
    (finding,) = evaluate(res, rules=[rule_by_name("sns-topic-cmk")])
    assert finding.resource == f"{TOPIC} notifications-anomalies" and message in finding.message


def test_the_cmk_rule_accepts_a_stack_key_unknown_during_preview(staging):
    """On a first preview the key's ARN is unknown; the dependency on the stack's key decides."""
    res = to_res(edited(staging, "notifications-anomalies", lambda i: {k: v for k, v in i.items() if k != "kmsMasterKeyId"}).resources)
    (t,) = [r for r in res if r.name == "notifications-anomalies"]
    assert t.deps.get("kmsMasterKeyId")
    assert evaluate(res, rules=[rule_by_name("sns-topic-cmk")]) == []
