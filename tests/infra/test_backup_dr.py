"""Backups and disaster recovery in the rendered stacks: the AWS Backup plan and selection, the
DR replicas, keys and replication role, protected data stores; broken variants the policy
pack and the key-grant check catch."""

from __future__ import annotations

import dataclasses
import json

import pytest
from infra_support import STACKS, one, rendered

from components.aws_model.graph import Graph
from components.aws_model.kms import analyze
from components.mockrun import MockResource, Rendering, render
from components.settings import SettingsError
from policies.offline import evaluate_rendering, to_res
from policies.rules import rule_by_name

T_PLAN = "aws:backup/plan:Plan"
T_SELECTION = "aws:backup/selection:Selection"
T_REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"


def data_stores(r: Rendering) -> set[str]:
    """Resource ids the recovery layer must cover: the index table and the data buckets."""
    return {
        one(r, "aws:dynamodb/table:Table", "storage-index").outputs["arn"],
        one(r, "aws:s3/bucket:Bucket", "storage-profiles").outputs["arn"],
        one(r, "aws:s3/bucket:Bucket", "storage-analysis").outputs["arn"],
    }


def test_prod_backs_up_table_and_data_buckets_and_copies_to_the_dr_region(prod):
    plan = one(prod, T_PLAN, "recovery-plan").inputs
    (rule,) = plan["rules"]
    assert rule["schedule"] == "cron(0 3 * * ? *)" and rule["lifecycle"] == {"deleteAfter": 35}
    dr_vault = one(prod, "aws:backup/vault:Vault", "recovery-dr-vault")
    assert dr_vault.inputs["region"] == "us-west-2"
    assert rule["copyActions"] == [{"destinationVaultArn": dr_vault.outputs["arn"], "lifecycle": {"deleteAfter": 35}}]
    assert dr_vault.inputs["kmsKeyArn"] == one(prod, "aws:kms/key:Key", "recovery-dr-key").outputs["arn"]
    assert set(one(prod, T_SELECTION, "recovery-selection").inputs["resources"]) == data_stores(prod)
    trust = json.loads(one(prod, "aws:iam/role:Role", "recovery-backup-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_staging_backs_up_without_a_dr_copy_and_dev_has_no_plan(staging, dev):
    (rule,) = one(staging, T_PLAN, "recovery-plan").inputs["rules"]
    assert rule["lifecycle"] == {"deleteAfter": 14} and not rule.get("copyActions")
    assert not staging.of_type(T_REPLICATION)
    assert not dev.of_type(T_PLAN) and not dev.of_type(T_REPLICATION)


def test_prod_replicates_the_data_buckets_into_hardened_replicas(prod):
    key = one(prod, "aws:kms/key:Key", "recovery-dr-key")
    assert key.outputs["arn"].split(":")[3] == "us-west-2" and key.inputs["enableKeyRotation"] is True
    for label in ("profiles", "analysis"):
        replica = one(prod, "aws:s3/bucket:Bucket", f"recovery-{label}-replica")
        assert replica.inputs["region"] == "us-west-2"
        (rule,) = one(prod, T_REPLICATION, f"recovery-{label}-replication").inputs["rules"]
        assert rule["destination"] == {
            "bucket": replica.outputs["arn"],
            "encryptionConfiguration": {"replicaKmsKeyId": key.outputs["arn"]},
        }
        assert rule["deleteMarkerReplication"] == {"status": "Enabled"}
        sse = one(prod, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", f"recovery-{label}-replica-sse")
        assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == key.outputs["arn"]
    lifecycle = one(prod, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "recovery-analysis-replica-lifecycle")
    expiry = next(r for r in lifecycle.inputs["rules"] if r["id"] == "expire-analysis")
    assert expiry["expiration"]["days"] == prod.program["settings"].analysis_expiry_days
    assert evaluate_rendering(prod) == []


@pytest.mark.parametrize("name", STACKS)
def test_data_stores_are_protected_exactly_where_deletion_protection_is_on(name):
    r = rendered(name)
    protected = r.program["settings"].deletion_protection
    for res in ("storage-index", "storage-profiles", "storage-analysis", "storage-artifacts", "audit-logs"):
        assert next(x for x in r.resources if x.name == res and x.custom).protect is protected, res


def test_replication_key_use_is_allowed(prod):
    report = analyze(Graph(prod))
    assert report.problems() == []
    uses = {u.resource for u in report.uses if "replication" in u.resource}
    assert uses == {
        "S3 replication from storage-profiles",
        "S3 replication from storage-analysis",
        f"S3 replication into {one(prod, 'aws:s3/bucket:Bucket', 'recovery-profiles-replica').outputs['arn']}",
        f"S3 replication into {one(prod, 'aws:s3/bucket:Bucket', 'recovery-analysis-replica').outputs['arn']}",
    }


def _without_statement(rendering: Rendering, sid: str) -> Graph:
    def change(r: MockResource) -> MockResource:
        if r.type != "aws:iam/rolePolicy:RolePolicy" or r.name != "recovery-replication-policy":
            return r
        doc = json.loads(r.inputs["policy"])
        doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != sid]
        return dataclasses.replace(r, inputs={**r.inputs, "policy": json.dumps(doc)})

    return Graph(dataclasses.replace(rendering, resources=[change(r) for r in rendering.resources]))


@pytest.mark.parametrize(
    ("sid", "refused"),
    [
        ("DecryptSource", {("storage-key", "kms:Decrypt")}),
        ("EncryptReplica", {("recovery-dr-key", "kms:Encrypt"), ("recovery-dr-key", "kms:GenerateDataKey")}),
    ],
)
def test_replication_role_without_key_permissions_is_refused(prod, sid, refused):
    denied = {(d.use.key, d.action) for d in analyze(_without_statement(prod, sid)).denied}
    assert denied == refused


def test_replication_policy_scoped_to_object_arns_only_is_refused_with_bucket_keys(prod):
    def objects_only(r: MockResource) -> MockResource:
        if r.name != "recovery-replication-policy":
            return r
        doc = json.loads(r.inputs["policy"])
        for s in doc["Statement"]:
            cond = (s.get("Condition") or {}).get("ArnLike")
            if cond:
                cond["kms:EncryptionContext:aws:s3:arn"] = [a for a in cond["kms:EncryptionContext:aws:s3:arn"] if a.endswith("/*")]
        return dataclasses.replace(r, inputs={**r.inputs, "policy": json.dumps(doc)})

    graph = Graph(dataclasses.replace(prod, resources=[objects_only(r) for r in prod.resources]))
    assert {d.action for d in analyze(graph).denied} == {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"}


def test_policy_requires_backups_where_configured():
    r = render("staging", overrides={"fleetprof:backupPlan": False})
    findings = rule_by_name("backup-configured").stack_check(to_res(r.resources), {"required": True})
    assert sorted(m for _, m in findings) == [
        "storage-analysis is in no AWS Backup plan with a retention",
        "storage-index is in no AWS Backup plan with a retention",
        "storage-profiles is in no AWS Backup plan with a retention",
    ]
    assert rule_by_name("backup-configured").stack_check(to_res(r.resources), {"required": False}) == []


def test_policy_requires_replication_and_copies_where_dr_is_configured(staging):
    findings = rule_by_name("dr-replication").stack_check(to_res(staging.resources), {"required": True})
    assert sorted(m for _, m in findings) == [
        "bucket storage-analysis is not replicated to the DR region",
        "bucket storage-profiles is not replicated to the DR region",
        "table storage-index has no backup copied to the DR region",
    ]


def test_policy_catches_a_replication_rule_that_skips_encrypted_objects(prod):
    def skip_kms(r: MockResource) -> MockResource:
        if r.type == T_REPLICATION and r.name == "recovery-profiles-replication":
            rules = [{**x, "sourceSelectionCriteria": {}} for x in r.inputs["rules"]]
            return dataclasses.replace(r, inputs={**r.inputs, "rules": rules})
        return r

    broken = dataclasses.replace(prod, resources=[skip_kms(r) for r in prod.resources])
    findings = rule_by_name("dr-replication").stack_check(to_res(broken.resources), {"required": True})
    assert [m for _, m in findings] == ["bucket storage-profiles is not replicated to the DR region"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fleetprof:drRegion": "us-east-1"}, "drRegion must be an AWS region other than us-east-1"),
        ({"fleetprof:drRegion": "mars-1"}, "drRegion must be an AWS region"),
        ({"fleetprof:backupPlan": False}, "drRegion needs backupPlan"),
        ({"fleetprof:backupSchedule": "daily"}, "backupSchedule must be cron"),
    ],
)
def test_bad_recovery_settings_are_refused(overrides, message):
    with pytest.raises(SettingsError, match=message):
        render("prod", overrides=overrides)


def test_data_bucket_key_users_are_found_next_to_their_replication_config(prod):
    """A replication config echoes its source bucket's name; the key-grant check must still
    resolve the name to the bucket and check the roles that read and write its objects."""
    uses = {u.resource for u in analyze(Graph(prod)).uses}
    assert {"S3 s3:PutObject in storage-profiles", "S3 s3:GetObject in storage-analysis"} <= uses
