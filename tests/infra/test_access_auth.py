"""Authentication in every deployed stack: the token table in Secrets Manager under the
secrets key, injected into the task by version, readable only by the execution role; the
ECS roles trust ecs-tasks only for this account."""

from __future__ import annotations

import json

import pytest
from infra_support import one, rendered

from components.aws_model import kms
from components.aws_model.graph import Graph
from components.aws_model.policy_eval import Principal, Request, decide, statements
from components.mockrun import MockResource, Rendering, render
from components.settings import SettingsError
from policies.offline import evaluate, to_res
from policies.rules import rule_by_name

TASK = "aws:ecs/taskDefinition:TaskDefinition"
SECRET = "aws:secretsmanager/secret:Secret"
TABLE_A = json.dumps({"tokens": {"fp_a": {"tenant": "acme", "scopes": ["read", "write"]}}})
TABLE_AB = json.dumps({"tokens": {"fp_a": {"tenant": "acme"}, "fp_b": {"tenant": "acme"}}})


def _container(r: Rendering) -> dict:
    return json.loads(one(r, TASK, "ingest-task").inputs["containerDefinitions"])[0]


def _allowed(doc: dict | str, action: str, resource: str, **context: str) -> str | None:
    request = Request(Principal("AWS", "arn:aws:iam::123456789012:role/x"), action, resource, context)
    return decide(statements(doc), request, resource_policy=False)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_deployed_stacks_serve_with_auth_from_secrets_manager(stack):
    r = rendered(stack)
    c = _container(r)
    assert "FLEETPROF_INSECURE" not in {e["name"] for e in c["environment"]}
    (ref,) = c["secrets"]
    secret = one(r, SECRET, "ingest-auth-tokens")
    assert ref["name"] == "FLEETPROF_AUTH_TOKENS" and ref["valueFrom"].startswith(secret.outputs["arn"] + ":::")
    secrets_key = one(r, "aws:kms/key:Key", "storage-secrets-key")
    assert secret.inputs["kmsKeyId"] == secrets_key.outputs["arn"]
    execution = json.loads(one(r, "aws:iam/rolePolicy:RolePolicy", "ingest-execution-policy").inputs["policy"])
    assert _allowed(execution, "secretsmanager:GetSecretValue", secret.outputs["arn"]) == "allow"
    assert _allowed(execution, "secretsmanager:GetSecretValue", "arn:aws:secretsmanager:us-east-1:123456789012:secret:x") is None
    task = json.loads(one(r, "aws:iam/rolePolicy:RolePolicy", "ingest-task-data-policy").inputs["policy"])
    assert _allowed(task, "secretsmanager:GetSecretValue", secret.outputs["arn"]) is None
    assert _allowed(task, "kms:Decrypt", secrets_key.outputs["arn"]) is None


def test_changing_the_token_table_rolls_the_tasks():
    """A new table is a new secret version, so a new task definition (a rolling deployment
    with both tokens valid while it runs); the same table is no change."""
    a, a_again, ab = (render("prod", overrides={"fleetprof:authTokens": t}) for t in (TABLE_A, TABLE_A, TABLE_AB))
    refs = [_container(r)["secrets"][0]["valueFrom"] for r in (a, a_again, ab)]
    assert refs[0] == refs[1] != refs[2]


def test_the_execution_role_needs_the_secrets_key():
    """The key-grants check finds an execution role that may read the secret but not decrypt it."""
    r = rendered("prod")
    assert [d for d in kms.analyze(Graph(r)).denied if "ingest-auth-tokens" in d.use.resource] == []
    broken = _edit_policy(r, "ingest-execution-policy", lambda s: s.get("Sid") != "DecryptTokenTable")
    denied = [str(d) for d in kms.analyze(Graph(broken)).denied if "ingest-auth-tokens" in d.use.resource]
    assert denied and "kms:Decrypt" in denied[0]


def test_the_secrets_key_serves_only_secrets_manager_and_ssm():
    r = rendered("prod")
    policy = one(r, "aws:kms/key:Key", "storage-secrets-key").inputs["policy"]
    key = one(r, "aws:kms/key:Key", "storage-secrets-key").outputs["arn"]
    node = Principal("AWS", "arn:aws:iam::123456789012:role/ray-worker-role")
    direct = Request(node, "kms:Decrypt", key, {"kms:CallerAccount": "123456789012"})
    via_ssm = Request(node, "kms:Decrypt", key, {"kms:ViaService": "ssm.us-east-1.amazonaws.com"})
    assert decide(statements(policy), direct, resource_policy=True) == "deny"
    assert decide(statements(policy), via_ssm, resource_policy=True) == "account"
    data_key = one(r, "aws:kms/key:Key", "storage-key").inputs["policy"]
    assert not any(s.get("Effect") == "Deny" for s in statements(data_key))


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_ecs_roles_trust_ecs_tasks_only_for_this_account(stack):
    r = rendered(stack)
    for role in ("ingest-execution-role", "ingest-task-role"):
        (s,) = json.loads(one(r, "aws:iam/role:Role", role).inputs["assumeRolePolicy"])["Statement"]
        assert s["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert s["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
        assert s["Condition"]["ArnLike"] == {"aws:SourceArn": "arn:aws:ecs:us-east-1:123456789012:*"}


def test_dev_without_auth_is_explicit_and_only_dev_may():
    dev = rendered("dev")
    assert dev.program["settings"].auth_enabled is False
    assert {"name": "FLEETPROF_INSECURE", "value": "1"} in _container(dev)["environment"]
    assert dev.of_type(SECRET) == []
    task = to_res([one(dev, TASK, "ingest-task")])
    rule = rule_by_name("service-auth")
    assert evaluate(task, {"service-auth": {"required": False}}, rules=[rule]) == []
    assert evaluate(task, {"service-auth": {"required": True}}, rules=[rule]) != []


def test_a_token_table_in_plain_environment_is_refused_even_in_dev():
    plain = json.dumps([{"name": "c", "environment": [{"name": "FLEETPROF_AUTH_TOKENS", "value": TABLE_A}]}])
    found = rule_by_name("service-auth").resource_check(TASK, {"containerDefinitions": plain}, {"required": False})
    assert found and "plain environment" in found[0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fleetprof:authTokens": "{tokens"}, "fleetprof:authTokens: not JSON"),
        ({"fleetprof:authTokens": '{"t": {"tenant": "no spaces"}}'}, "fleetprof:authTokens: bad grant"),
        ({"fleetprof:authTokens": TABLE_A, "fleetprof:authEnabled": False}, "authEnabled is false"),
        ({"fleetprof:rayTokenRotation": 0}, "rayTokenRotation must be positive"),
    ],
)
def test_bad_access_settings_name_the_key(overrides, message):
    with pytest.raises(SettingsError, match=message):
        render("staging", overrides=overrides)


def _edit_policy(r: Rendering, name: str, keep) -> Rendering:
    """``r`` with the statements of role policy ``name`` filtered by ``keep``."""
    out = []
    for res in r.resources:
        if res.name == name and res.type == "aws:iam/rolePolicy:RolePolicy":
            doc = json.loads(res.inputs["policy"])
            doc["Statement"] = [s for s in doc["Statement"] if keep(s)]
            res = MockResource(**{**res.__dict__, "inputs": {**res.inputs, "policy": json.dumps(doc)}})
        out.append(res)
    return Rendering(r.stack, r.config, out, r.exports, r.program)
