"""Policy strictness a stack file cannot switch off: requirements come from the stack's
environment class (policies/environment_classes.yaml), not from its own config."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_support import rendered
from pulumi_policy import ResourceValidationArgs, StackValidationArgs

from components.mockrun import render
from policies import classes
from policies.offline import evaluate_rendering
from policies.pack import build_policies

PROD_OFF: dict[str, tuple[dict, str]] = {
    "waf": ({"fleetprof:wafEnabled": False}, "waf-attached"),
    "pitr": ({"fleetprof:pointInTimeRecovery": False}, "dynamodb-pitr"),
    "deletion-protection": ({"fleetprof:deletionProtection": False}, "deletion-protection"),
    "https": (
        {"fleetprof:domainName": "", "fleetprof:hostedZoneName": "", "fleetprof:allowPlainHttp": True},
        "alb-https",
    ),
    "auth": ({"fleetprof:authEnabled": False}, "service-auth"),
    "nat-per-az": ({"fleetprof:natPerAz": False}, "nat-per-az"),
    "backups": ({"fleetprof:backupPlan": False, "fleetprof:drRegion": ""}, "backup-configured"),
    "audit-trail": ({"fleetprof:cloudtrailEnabled": False}, "cloudtrail-audit"),
    "dr": ({"fleetprof:drRegion": ""}, "dr-replication"),
    "config-recorder": ({"fleetprof:configRecorder": False, "fleetprof:securityHub": False}, "account-monitoring"),
    "guard-duty": ({"fleetprof:guardDuty": False}, "account-monitoring"),
    "security-hub": ({"fleetprof:securityHub": False}, "account-monitoring"),
}
"""control -> (what switches it off in Pulumi.prod.yaml, the rule that must then fail)."""


def test_every_control_is_tested_and_prod_requires_them_all():
    assert set(PROD_OFF) == set(classes.CONTROLS)
    assert classes.required_controls("prod") == set(classes.CONTROLS)
    assert {"waf", "pitr", "https", "auth", "nat-per-az", "backups"} <= classes.required_controls("staging")
    assert classes.required_controls("dev") == frozenset()


@pytest.mark.parametrize("control", sorted(PROD_OFF))
def test_switching_a_control_off_in_the_prod_stack_file_fails_the_pack(control):
    overrides, rule = PROD_OFF[control]
    findings = {f.rule for f in evaluate_rendering(render("prod", overrides=overrides))}
    assert rule in findings, (control, findings)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_committed_stacks_pass_their_class(stack):
    assert evaluate_rendering(rendered(stack)) == []


def test_an_unlisted_stack_gets_the_default_class():
    assert classes.stack_class("prod-eu") == "prod"
    assert classes.class_config("prod-eu") == classes.class_config("prod")
    assert classes.class_config("dev")["alb-https"] == {"allowPlainHttp": True}
    assert classes.class_config("prod")["alb-https"] == {"allowPlainHttp": False}


def test_stack_name_is_read_from_the_urn():
    assert classes.stack_of_urn("urn:pulumi:prod::fleetprof::aws:ecs/taskDefinition:TaskDefinition::t") == "prod"
    assert classes.stack_of_urn("urn:x") == ""


def test_a_given_policy_config_cannot_relax_the_class():
    """The CLI path: a lax --policy-pack-config for prod still gets prod's requirements."""
    (auth,) = [p for p in build_policies() if p.name == "service-auth"]
    insecure = {"containerDefinitions": '[{"name": "c", "environment": [{"name": "FLEETPROF_INSECURE", "value": "1"}]}]'}
    reported: list[str] = []
    for stack, expect in (("prod", True), ("staging", True), ("dev", False)):
        reported.clear()
        urn = f"urn:pulumi:{stack}::fleetprof::aws:ecs/taskDefinition:TaskDefinition::t"
        args = ResourceValidationArgs("aws:ecs/taskDefinition:TaskDefinition", insecure, urn, "t", None, None, {"required": False})
        auth.validate(args, lambda message, urn=None: reported.append(message))
        assert bool(reported) is expect, (stack, reported)
    (nat,) = [p for p in build_policies() if p.name == "nat-per-az"]
    from pulumi_policy import PolicyResource

    subnet = PolicyResource("aws:ec2/subnet:Subnet", {"availabilityZone": "a"}, "urn:pulumi:prod::fleetprof::s::s", "s", None, None, None, [], {})
    reported.clear()
    nat.validate(StackValidationArgs([subnet], {"required": False}), lambda m, urn=None: reported.append(m))
    assert reported  # prod's class requires a NAT gateway in every AZ


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: {prod: {requires: [waf, telepathy]}}\nstacks: {}\ndefault_class: prod\n", "unknown controls"),
        ("classes: {prod: {requires: []}}\nstacks: {dev: sandbox}\ndefault_class: prod\n", "unknown class"),
        ("classes: {prod: {requires: []}}\nstacks: {}\ndefault_class: nope\n", "unknown class"),
    ],
)
def test_a_malformed_classes_file_is_refused(tmp_path: Path, text, message):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        classes.load(path)
