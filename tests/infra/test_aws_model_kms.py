"""Key grants of the rendered stacks as AWS would evaluate them, and broken variants of the
key policy and of the roles that the check must catch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest
from infra_support import STACKS, rendered

from components.aws_model.graph import Graph
from components.aws_model.kms import analyze, facts
from components.mockrun import ACCOUNT_ID, MockResource, Rendering

ASG_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"


def with_resources(
    rendering: Rendering, change: Callable[[MockResource], MockResource | None]
) -> Graph:
    """A graph of ``rendering`` with ``change`` applied to every resource (None drops it)."""
    resources = [c for c in (change(r) for r in rendering.resources) if c is not None]
    return Graph(dataclasses.replace(rendering, resources=resources))


def with_key_policy(rendering: Rendering, edit: Callable[[list[dict]], list[dict]]) -> Graph:
    """A graph whose key policy statements are ``edit(statements)``."""

    def change(r: MockResource) -> MockResource:
        if r.type != "aws:kms/key:Key":
            return r
        policy = json.loads(r.inputs["policy"])
        policy["Statement"] = edit(policy["Statement"])
        return dataclasses.replace(r, inputs={**r.inputs, "policy": json.dumps(policy)})

    return with_resources(rendering, change)


def without_sids(*prefixes: str) -> Callable[[list[dict]], list[dict]]:
    return lambda stmts: [s for s in stmts if not s.get("Sid", "").startswith(prefixes)]


def log_groups(rendering: Rendering) -> set[str]:
    """The key-use labels of every encrypted log group of the stack."""
    return {
        f"log group {r.name}"
        for r in rendering.of_type("aws:cloudwatch/logGroup:LogGroup")
        if r.inputs.get("kmsKeyId")
    }


def refused(report) -> dict[str, set[str]]:
    """Refused actions by key-use resource."""
    out: dict[str, set[str]] = {}
    for d in report.denied:
        out.setdefault(d.use.resource, set()).add(d.action)
    return out


@pytest.mark.parametrize("name", STACKS)
def test_every_key_user_is_allowed(name):
    report = analyze(Graph(rendered(name)))
    assert report.problems() == []
    resources = {u.resource for u in report.uses}
    assert {"log group ingest-logs", "log group network-flow-logs"} <= resources
    assert any(r.startswith("SNS topic observability-alarms (") for r in resources)
    assert "EBS of launch template ray-worker-lt (group ray-workers)" in resources
    assert f"SSM ssm:GetParameter /fleetprof/{name}/ray-auth-token" in resources
    asg = next(u for u in report.uses if u.resource.startswith("EBS of launch template"))
    assert asg.principal.id == ASG_ROLE and "kms:CreateGrant" in asg.actions


def test_key_policy_without_the_auto_scaling_role_starves_the_workers(stack):
    """The launch template's volumes use the key through the group's service-linked role."""
    report = analyze(with_key_policy(stack, without_sids("AutoScaling")))
    assert refused(report) == {
        "EBS of launch template ray-worker-lt (group ray-workers)": {
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:DescribeKey",
            "kms:CreateGrant",
        }
    }
    assert "no IAM permissions of its own" in report.denied[0].reason


def test_auto_scaling_role_needs_create_grant_for_aws_resources(dev):
    report = analyze(with_key_policy(dev, without_sids("AutoScalingServiceLinkedRoleGrants")))
    assert refused(report) == {
        "EBS of launch template ray-worker-lt (group ray-workers)": {"kms:CreateGrant"}
    }


def test_key_policy_without_the_logs_statement_breaks_the_log_groups(prod):
    report = analyze(with_key_policy(prod, without_sids("CloudWatchLogsUse")))
    assert (
        set(refused(report))
        == log_groups(prod)
        >= {"log group ingest-logs", "log group network-flow-logs"}
    )


def test_logs_statement_scoped_to_another_account_breaks_the_log_groups(dev):
    def other_account(stmts: list[dict]) -> list[dict]:
        for s in stmts:
            if s.get("Sid") == "CloudWatchLogsUse":
                s["Condition"] = {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:999999999999:*"
                    }
                }
        return stmts

    assert set(refused(analyze(with_key_policy(dev, other_account)))) == log_groups(dev)


def test_key_policy_without_the_cloudwatch_statement_drops_alarm_notifications(staging):
    report = analyze(with_key_policy(staging, without_sids("CloudWatchAlarms")))
    (resource,) = refused(report)
    assert resource.startswith("SNS topic observability-alarms (")
    assert refused(report)[resource] == {"kms:Decrypt", "kms:GenerateDataKey"}


def test_source_account_condition_on_the_cloudwatch_statement_would_break_delivery(dev):
    """CloudWatch's KMS requests for an encrypted topic carry no aws:SourceAccount."""

    def conditioned(stmts: list[dict]) -> list[dict]:
        for s in stmts:
            if s.get("Sid") == "CloudWatchAlarmsPublishToEncryptedTopic":
                s["Condition"] = {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
        return stmts

    assert any(
        r.startswith("SNS topic") for r in refused(analyze(with_key_policy(dev, conditioned)))
    )


def test_naming_the_service_linked_role_as_principal_is_rejected_by_aws(dev):
    """A key policy naming a role the stack does not create first fails with MalformedPolicyDocument."""

    def named(stmts: list[dict]) -> list[dict]:
        for s in stmts:
            if s.get("Sid", "").startswith("AutoScaling"):
                s["Principal"] = {"AWS": ASG_ROLE}
                s["Condition"] = {k: v for k, v in s["Condition"].items() if k == "Bool"}
        return stmts

    report = analyze(with_key_policy(dev, named))
    assert report.denied == []
    assert len(report.malformed) == 2 and all(
        "MalformedPolicyDocument" in m and ASG_ROLE in m for m in report.malformed
    )


def test_a_custom_service_linked_role_must_be_created_by_the_stack(dev):
    custom = f"arn:aws:iam::{ACCOUNT_ID}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_ray"

    def change(r: MockResource) -> MockResource:
        if r.type == "aws:autoscaling/group:Group":
            return dataclasses.replace(r, inputs={**r.inputs, "serviceLinkedRoleArn": custom})
        return r

    report = analyze(with_resources(dev, change))
    assert any(custom in m for m in report.malformed)
    assert "EBS of launch template ray-worker-lt (group ray-workers)" in refused(report)


def test_roles_need_both_the_delegation_and_their_own_kms_permissions(dev):
    without_root = analyze(with_key_policy(dev, without_sids("AccountAdministers")))
    lost = set(refused(without_root))
    assert "S3 s3:PutObject in storage-profiles" in lost and "DynamoDB table storage-index" in lost
    assert "SSM ssm:GetParameter /fleetprof/dev/ray-auth-token" in lost

    def no_kms(r: MockResource) -> MockResource:
        if r.name != "ingest-task-data-policy":
            return r
        policy = json.loads(r.inputs["policy"])
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "DataKey"]
        return dataclasses.replace(r, inputs={**r.inputs, "policy": json.dumps(policy)})

    report = analyze(with_resources(dev, no_kms))
    task_denials = [d for d in report.denied if "ingest-task-role" in d.use.principal.id]
    task_uses = {d.use.resource for d in task_denials}
    assert {
        "S3 s3:PutObject in storage-profiles",
        "S3 s3:GetObject in storage-profiles",
    } <= task_uses
    assert all(u.startswith("S3 ") for u in task_uses)
    assert all("IAM policies do not allow" in d.reason for d in task_denials)
    assert len(task_denials) == len(report.denied)


def test_secret_readers_need_decrypt_on_the_secret_key(dev):
    graph = Graph(dev)
    key = graph.of_type("aws:kms/key:Key")[0]
    template = graph.named("aws:iam/rolePolicy:RolePolicy", "network-flow-logs-policy")
    secret_arn = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:fleetprof-db"
    secret = dataclasses.replace(
        template,
        type="aws:secretsmanager/secret:Secret",
        name="db-secret",
        inputs={"kmsKeyId": key.outputs["arn"]},
        outputs={"arn": secret_arn},
        id=secret_arn,
    )
    read = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn}

    def reader(statements: list[dict]) -> dict:
        return {**template.inputs, "policy": json.dumps({"Statement": statements})}

    def with_reader(statements: list[dict]) -> Graph:
        policy = dataclasses.replace(template, name="reader", inputs=reader(statements))
        return Graph(dataclasses.replace(dev, resources=[*dev.resources, secret, policy]))

    report = analyze(with_reader([read]))
    assert refused(report) == {"secret db-secret": {"kms:Decrypt"}}
    kms_decrypt = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key.outputs["arn"]}
    report = analyze(with_reader([read, kms_decrypt]))
    assert report.problems() == [] and any(u.resource == "secret db-secret" for u in report.uses)


def test_an_explicit_deny_in_the_key_policy_wins(dev):
    deny = {
        "Sid": "NoDecrypt",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    report = analyze(with_key_policy(dev, lambda stmts: [*stmts, deny]))
    assert all(d.action == "kms:Decrypt" and "denies" in d.reason for d in report.denied)
    assert "log group ingest-logs" in refused(report)


def test_facts_list_every_key_user(dev):
    lines = facts(Graph(dev))
    assert any(
        line.startswith("key storage-key: log group ingest-logs: logs.us-east-1.amazonaws.com")
        for line in lines
    )
    assert all(line.endswith(": allowed") for line in lines)
    broken = facts(with_key_policy(dev, without_sids("AutoScaling")))
    assert any("REFUSED" in line and "ray-worker-lt" in line for line in broken)
