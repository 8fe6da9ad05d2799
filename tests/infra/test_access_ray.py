"""Least privilege that holds on the Ray nodes: no managed policy that reads every SSM
parameter, the token parameter created (and rotated, and destroyed) by the program."""

from __future__ import annotations

import base64

import pytest
from infra_support import one, rendered

from components.aws_model.policy_eval import Principal, Request, decide, statements
from components.mockrun import render
from policies.offline import evaluate
from policies.rules import rule_by_name

PARAM = "aws:ssm/parameter:Parameter"
ACCOUNT = "123456789012"


def _node_policy(r, kind: str) -> list:
    return statements(one(r, "aws:iam/rolePolicy:RolePolicy", f"ray-{kind}-data-policy").inputs["policy"])


def _allows(stmts: list, action: str, resource: str) -> bool:
    request = Request(Principal("AWS", f"arn:aws:iam::{ACCOUNT}:role/node"), action, resource)
    return decide(stmts, request, resource_policy=False) == "allow"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_nodes_read_only_their_token_and_keep_the_ssm_agent(stack):
    r = rendered(stack)
    attached = [a.inputs["policyArn"] for a in r.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if a.name.startswith("ray-")]
    assert attached == []
    token = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter{r.exports['rayAuthTokenParameter']}"
    for kind in ("head", "worker"):
        policy = _node_policy(r, kind)
        assert _allows(policy, "ssm:GetParameter", token)
        assert not _allows(policy, "ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/other/secret")
        assert not _allows(policy, "ssm:GetParameters", token) and not _allows(policy, "ssm:PutParameter", token)
        assert _allows(policy, "ssm:UpdateInstanceInformation", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-1")
        for action in ("ssmmessages:OpenDataChannel", "ssmmessages:CreateControlChannel", "ec2messages:GetMessages"):
            assert _allows(policy, action, "*"), action


def test_the_managed_ssm_policy_is_refused_by_the_pack():
    attachment = {"role": "ray-head-role", "policyArn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}
    from policies.rules import Res

    found = evaluate([Res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "ssm-core", "urn:a", attachment)],
                     rules=[rule_by_name("iam-no-broad-managed-policy")])
    assert found and "every parameter" in found[0].message


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_token_parameter_is_the_programs_random_securestring(stack):
    r = rendered(stack)
    p = one(r, PARAM, "ray-auth-token")
    assert p.inputs["name"] == r.exports["rayAuthTokenParameter"] and p.inputs["type"] == "SecureString"
    assert p.inputs["keyId"] == one(r, "aws:kms/key:Key", "storage-secrets-key").outputs["arn"]
    value = p.inputs["value"]["value"]  # a Pulumi secret: encrypted in the state
    assert len(value) == 64 and int(value, 16) >= 0
    assert p.ignore_changes == ("value",)  # later runs keep the stored token
    assert not p.protect  # destroy deletes it
    assert "put-parameter" not in one(r, "aws:ec2/instance:Instance", "ray-head").inputs["userData"]


def test_rotation_issues_a_new_token_and_restarts_the_nodes():
    base, rotated = rendered("staging"), render("staging", overrides={"fleetprof:rayTokenRotation": 2})
    p0, p1 = one(base, PARAM, "ray-auth-token"), one(rotated, PARAM, "ray-auth-token")
    assert p0.inputs["description"] != p1.inputs["description"]  # replace_on_changes: a new random value

    def scripts(r):
        worker = base64.b64decode(one(r, "aws:ec2/launchTemplate:LaunchTemplate", "ray-worker-lt").inputs["userData"])
        return one(r, "aws:ec2/instance:Instance", "ray-head").inputs["userData"], worker.decode()

    (h0, w0), (h1, w1) = scripts(base), scripts(rotated)
    assert h0 != h1 and w0 != w1  # head replaced, workers rolled by the group's instance refresh
    assert "token generation 2" in h1 and "token generation 2" in w1


def test_node_policies_name_no_wildcard_parameter():
    for kind in ("head", "worker"):
        for s in _node_policy(rendered("prod"), kind):
            if any(str(a).startswith("ssm:") and a != "ssm:UpdateInstanceInformation" for a in s.get("Action", [])):
                assert all("parameter/fleetprof/prod/ray-auth-token" in res for res in s["Resource"]), s
