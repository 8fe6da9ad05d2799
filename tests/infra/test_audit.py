"""The audit layer in the rendered stacks: CloudTrail, the audit key and bucket, AWS Config with
its conformance pack, GuardDuty and Security Hub; each with broken variants the checks catch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest
import yaml
from infra_support import STACKS, one, rendered

from components.audit import (
    CONFORMANCE_RULES,
    PER_DATA_BUCKET,
    PREVIEW_ONLY_RULES,
    unmapped_policy_rules,
)
from components.aws_model import delivery
from components.aws_model.graph import Graph
from components.aws_model.kms import analyze
from components.mockrun import MockResource, Rendering, render
from components.settings import SettingsError
from policies.offline import evaluate_rendering, to_res
from policies.rules import RULES, rule_by_name

T_TRAIL = "aws:cloudtrail/trail:Trail"
T_POLICY = "aws:s3/bucketPolicy:BucketPolicy"


def edited(rendering: Rendering, type_: str, name: str, change: Callable[[dict], dict]) -> Rendering:
    """``rendering`` with the inputs of one resource replaced by ``change(inputs)``."""

    def apply(r: MockResource) -> MockResource:
        if r.type == type_ and r.name == name:
            inputs = change(json.loads(json.dumps(r.inputs)))
            return dataclasses.replace(r, inputs=inputs, outputs={**r.outputs, **inputs})
        return r

    return dataclasses.replace(rendering, resources=[apply(r) for r in rendering.resources])


def edit_policy(doc_key: str, edit: Callable[[list[dict]], list[dict]]) -> Callable[[dict], dict]:
    """An input change that edits the statements of the JSON policy under ``doc_key``."""

    def change(inputs: dict) -> dict:
        doc = json.loads(inputs[doc_key])
        doc["Statement"] = edit(doc["Statement"])
        inputs[doc_key] = json.dumps(doc)
        return inputs

    return change


def without(*sids: str) -> Callable[[list[dict]], list[dict]]:
    return lambda stmts: [s for s in stmts if s.get("Sid") not in sids]


@pytest.mark.parametrize("name", STACKS)
def test_every_stack_has_a_validated_encrypted_trail_over_the_data_buckets(name):
    r = rendered(name)
    trail = one(r, T_TRAIL, "audit-trail").inputs
    key = one(r, "aws:kms/key:Key", "audit-key")
    assert trail["enableLogFileValidation"] is True and trail["isMultiRegionTrail"] is True
    assert trail["kmsKeyId"] == key.outputs["arn"] and key.inputs["enableKeyRotation"] is True
    assert trail["s3BucketName"] == one(r, "aws:s3/bucket:Bucket", "audit-logs").outputs["bucket"]
    selectors = {s["name"]: s["fieldSelectors"] for s in trail["advancedEventSelectors"]}
    assert selectors["management-events"] == [{"field": "eventCategory", "equals": ["Management"]}]
    arns = next(f["startsWiths"] for f in selectors["data-bucket-object-events"] if f["field"] == "resources.ARN")
    assert arns == [f"arn:aws:s3:::{r.exports['profilesBucket']}/", f"arn:aws:s3:::{r.exports['analysisBucket']}/"]


@pytest.mark.parametrize("name", STACKS)
def test_audit_bucket_is_retained_and_refuses_deletes(name):
    r = rendered(name)
    rules = one(r, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "audit-logs-lifecycle").inputs["rules"]
    expiry = next(x for x in rules if x["id"] == "expire-audit-logs")
    assert expiry["expiration"]["days"] == r.program["settings"].audit_log_retention_days
    doc = json.loads(one(r, T_POLICY, "audit-logs-policy").inputs["policy"])
    deny = next(s for s in doc["Statement"] if s.get("Sid") == "DenyAuditLogDeletion")
    assert deny["Effect"] == "Deny" and "s3:DeleteObjectVersion" in deny["Action"]
    assert evaluate_rendering(r) == []


def test_account_singletons_only_where_configured(dev, prod):
    singletons = (
        "aws:cfg/recorder:Recorder",
        "aws:cfg/conformancePack:ConformancePack",
        "aws:guardduty/detector:Detector",
        "aws:securityhub/account:Account",
    )
    assert not any(dev.of_type(t) for t in singletons)
    assert all(len(prod.of_type(t)) == 1 for t in singletons)
    sub = prod.of_type("aws:securityhub/standardsSubscription:StandardsSubscription")[0].inputs
    assert sub["standardsArn"].endswith("::standards/aws-foundational-security-best-practices/v/1.0.0")


def test_security_hub_without_the_config_recorder_is_refused():
    with pytest.raises(SettingsError, match="securityHub needs configRecorder"):
        render("dev", overrides={"fleetprof:securityHub": True})


def test_conformance_set_matches_the_policy_pack():
    assert unmapped_policy_rules([r.name for r in RULES]) == []
    assert not set(CONFORMANCE_RULES) & set(PREVIEW_ONLY_RULES)


def test_a_policy_rule_without_a_managed_rule_is_reported():
    names = [r.name for r in RULES]
    assert unmapped_policy_rules([*names, "new-rule"]) == ["new-rule"]
    assert unmapped_policy_rules([n for n in names if n != "kms-rotation"]) == ["kms-rotation"]


def test_prod_conformance_pack_carries_every_mapped_managed_rule(prod):
    template = yaml.safe_load(one(prod, "aws:cfg/conformancePack:ConformancePack", "audit-conformance").inputs["templateBody"])
    props = [res["Properties"] for res in template["Resources"].values()]
    identifiers = {p["Source"]["SourceIdentifier"] for p in props}
    assert identifiers == {m.identifier for rules in CONFORMANCE_RULES.values() for m in rules}
    data = {prod.exports["profilesBucket"], prod.exports["analysisBucket"]}
    for identifier in PER_DATA_BUCKET:
        scoped = {p["Scope"]["ComplianceResourceId"] for p in props if p["Source"]["SourceIdentifier"] == identifier}
        assert scoped == data
    retention = next(p for p in props if p["Source"]["SourceIdentifier"] == "CW_LOGGROUP_RETENTION_PERIOD_CHECK")
    assert retention["InputParameters"] == {"MinRetentionTime": "90"}
    assert len({p["ConfigRuleName"] for p in props}) == len(props)


def test_conformance_pack_leaves_out_backup_and_dr_rules_where_not_configured():
    r = render("prod", overrides={"fleetprof:drRegion": "", "fleetprof:backupPlan": False})
    template = one(r, "aws:cfg/conformancePack:ConformancePack", "audit-conformance").inputs["templateBody"]
    assert "BACKUP_PLAN" not in template and "REPLICATION" not in template and "CLOUD_TRAIL" in template


@pytest.mark.parametrize("name", STACKS)
def test_trail_and_config_key_use_is_allowed(name):
    report = analyze(Graph(rendered(name)))
    assert report.problems() == []
    users = {u.resource for u in report.uses if u.key == "audit-key"}
    assert "CloudTrail trail audit-trail" in users
    assert ("AWS Config delivery audit-config-delivery" in users) is (name == "prod")


def test_audit_key_without_the_cloudtrail_statement_refuses_the_trail(dev):
    broken = edited(dev, "aws:kms/key:Key", "audit-key", edit_policy("policy", without("CloudTrailEncryptLogs")))
    denied = {(d.use.resource, d.action) for d in analyze(Graph(broken)).denied}
    assert denied == {("CloudTrail trail audit-trail", "kms:GenerateDataKey")}


def test_audit_key_scoped_to_another_trail_refuses_this_one(dev):
    def other_trail(stmts: list[dict]) -> list[dict]:
        for s in stmts:
            if s.get("Sid", "").startswith("CloudTrail"):
                s["Condition"]["StringEquals"]["aws:SourceArn"] = "arn:aws:cloudtrail:us-east-1:123456789012:trail/other"
        return stmts

    broken = edited(dev, "aws:kms/key:Key", "audit-key", edit_policy("policy", other_trail))
    assert {d.action for d in analyze(Graph(broken)).denied} == {"kms:GenerateDataKey", "kms:DescribeKey"}


def test_audit_key_without_the_config_statement_refuses_config(prod):
    broken = edited(prod, "aws:kms/key:Key", "audit-key", edit_policy("policy", without("ConfigDeliveries")))
    assert {d.use.resource for d in analyze(Graph(broken)).denied} == {"AWS Config delivery audit-config-delivery"}


@pytest.mark.parametrize("name", STACKS)
def test_deliveries_are_admitted_by_the_audit_bucket_policy(name):
    assert delivery.analyze(Graph(rendered(name))) == []
    assert any(line.startswith("trail audit-trail -> audit-logs") for line in delivery.facts(Graph(rendered(name))))


@pytest.mark.parametrize(
    ("sids", "refused"),
    [
        (("CloudTrailWrite",), ["trail audit-trail: cloudtrail.amazonaws.com s3:PutObject"]),
        (("CloudTrailAclCheck",), ["trail audit-trail: cloudtrail.amazonaws.com s3:GetBucketAcl"]),
        (("ConfigWrite",), ["Config delivery audit-config-delivery: config.amazonaws.com s3:PutObject"]),
    ],
)
def test_audit_bucket_policy_without_a_delivery_statement_refuses_it(prod, sids, refused):
    broken = edited(prod, T_POLICY, "audit-logs-policy", edit_policy("policy", without(*sids)))
    found = delivery.analyze(Graph(broken))
    assert [f.split(" on ")[0] for f in found] == refused


def test_trail_writes_under_a_prefix_the_policy_does_not_cover_are_refused(dev):
    broken = edited(dev, T_TRAIL, "audit-trail", lambda i: {**i, "s3KeyPrefix": "elsewhere"})
    assert [f.split(" on ")[0] for f in delivery.analyze(Graph(broken))] == ["trail audit-trail: cloudtrail.amazonaws.com s3:PutObject"]


def _cloudtrail_findings(rendering: Rendering, required: bool = True) -> list[tuple[str | None, str]]:
    return rule_by_name("cloudtrail-audit").stack_check(to_res(rendering.resources), {"required": required})


def test_policy_requires_a_trail_where_configured():
    without_trail = render("dev", overrides={"fleetprof:cloudtrailEnabled": False})
    assert not without_trail.of_type(T_TRAIL)
    assert _cloudtrail_findings(without_trail) == [(None, "no CloudTrail trail (audit trail required)")]
    assert _cloudtrail_findings(without_trail, required=False) == []


@pytest.mark.parametrize(
    ("change", "lack"),
    [
        (lambda i: {**i, "enableLogFileValidation": False}, "log file validation"),
        (lambda i: {**i, "isMultiRegionTrail": False}, "multi-region"),
        (lambda i: {k: v for k, v in i.items() if k != "kmsKeyId"}, "KMS encryption"),
        (lambda i: {**i, "advancedEventSelectors": i["advancedEventSelectors"][:1]}, "S3 data events of storage-analysis, storage-profiles"),
    ],
)
def test_policy_catches_a_weakened_trail(dev, change, lack):
    (found,) = _cloudtrail_findings(edited(dev, T_TRAIL, "audit-trail", change))
    assert lack in found[1]


def test_policy_catches_a_trail_that_misses_a_data_bucket(dev):
    def drop_profiles(r: MockResource) -> MockResource:
        if r.type != T_TRAIL:
            return r
        deps = {**r.property_dependencies}
        deps["advancedEventSelectors"] = [u for u in deps["advancedEventSelectors"] if not u.endswith("::storage-profiles")]
        return dataclasses.replace(r, property_dependencies=deps)

    broken = dataclasses.replace(dev, resources=[drop_profiles(r) for r in dev.resources])
    (found,) = _cloudtrail_findings(broken)
    assert "S3 data events of storage-profiles" in found[1] and "storage-analysis" not in found[1]


def test_policy_catches_an_audit_bucket_that_allows_deletes(dev):
    broken = edited(dev, T_POLICY, "audit-logs-policy", edit_policy("policy", without("DenyAuditLogDeletion")))
    (found,) = _cloudtrail_findings(broken)
    assert "denies object deletion" in found[1]


def test_policy_requires_the_account_monitors_a_stack_owns(prod):
    check = rule_by_name("account-monitoring").stack_check
    owns_all = {"config": True, "guardDuty": True, "securityHub": True}
    assert check(to_res(prod.resources), owns_all) == []
    without_hub = render("prod", overrides={"fleetprof:securityHub": False})
    assert check(to_res(without_hub.resources), owns_all) == [(None, "no Security Hub with a standard (required for this stack)")]
    assert check(to_res(rendered("dev").resources), {k: False for k in owns_all}) == []
