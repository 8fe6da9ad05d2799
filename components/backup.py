"""Recovery layer: AWS Backup for the index table and the data buckets, and disaster recovery
into a second region.

Contract:

* With ``backup_plan``: a vault under the stack key, a daily plan (``backup_schedule``,
  recovery points kept ``backup_retention_days``) and a selection of the index table and the
  data buckets (profiles, analysis), run by a backup role that only ``backup.amazonaws.com``
  of this account may assume. PITR on the table and versioning on the buckets remain the
  in-region, minutes-RPO recovery; the plan covers logical damage beyond them.
* With ``dr_region``: a key in that region (the replica key), a vault there that receives a
  copy of every recovery point (the index is restored from it: :mod:`workers.restore`),
  hardened replica buckets under the replica key, and S3 replication of every object
  version and delete marker of each data bucket into its replica, run by a replication role
  whose policy names exactly the source and replica buckets and keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.buckets import BucketSpec, HardenedBucket, hardened_bucket
from components.common import policy_document
from components.storage import expiry_rule
from components.tags import tags

BACKUP_POLICIES = (
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
    "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Backup",
    "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Restore",
)
"""AWS managed policies of the backup role (DynamoDB and S3 backup and restore)."""


@dataclass(frozen=True)
class ReplicatedBucket:
    """One data bucket and what its replica needs (resolved by the caller's outputs)."""

    label: str  # "profiles" / "analysis"
    bucket: pulumi.Input[str]
    arn: pulumi.Input[str]
    expiry_days: int | None  # current-object expiry the replica must mirror (None: none)


@dataclass
class RecoveryArgs:
    """Inputs of :class:`Recovery`."""

    tags: dict[str, str]
    region: str
    account_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    table_arn: pulumi.Input[str]
    data_buckets: list[ReplicatedBucket]
    ready: list[pulumi.Resource]
    backup_plan: bool
    backup_schedule: str
    backup_retention_days: int
    dr_region: str
    deletion_protection: bool
    noncurrent_version_days: int


def source_account_trust(service: str, account_id: str) -> str:
    """Trust policy for ``service`` acting for ``account_id`` only (``aws:SourceAccount``)."""
    return policy_document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ]
    )


def replica_key_policy(account_id: str) -> str:
    """Key policy of the replica-region key: the account administers (the replication and
    backup roles use it through their IAM policies)."""
    root = f"arn:aws:iam::{account_id}:root"
    return policy_document(
        [{"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"}]
    )


def replication_policy(
    pairs: list[tuple[str, str]], source_key: str, replica_key: str, region: str, dr_region: str
) -> str:
    """The replication role's policy: read versions of each source bucket, replicate into its
    replica, decrypt with the source key through S3 of ``region`` and encrypt with the replica
    key through S3 of ``dr_region`` (``pairs``: (source ARN, replica ARN))."""
    sources, replicas = [s for s, _ in pairs], [r for _, r in pairs]
    return policy_document(
        [
            {"Sid": "SourceBuckets", "Effect": "Allow", "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
             "Resource": sources},
            {"Sid": "SourceVersions", "Effect": "Allow",
             "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
             "Resource": [f"{s}/*" for s in sources]},
            {"Sid": "ReplicaWrites", "Effect": "Allow",
             "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
             "Resource": [f"{r}/*" for r in replicas]},
            {"Sid": "DecryptSource", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": source_key,
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                           "ArnLike": {"kms:EncryptionContext:aws:s3:arn": _arns_and_objects(sources)}}},
            {"Sid": "EncryptReplica", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
             "Resource": replica_key,
             "Condition": {"StringEquals": {"kms:ViaService": f"s3.{dr_region}.amazonaws.com"},
                           "ArnLike": {"kms:EncryptionContext:aws:s3:arn": _arns_and_objects(replicas)}}},
        ]
    )


def _arns_and_objects(bucket_arns: list[str]) -> list[str]:
    """Encryption contexts S3 sends for these buckets: the bucket ARN (with an S3 bucket key)
    or the object ARN (without)."""
    return [x for arn in bucket_arns for x in (arn, f"{arn}/*")]


def replication_rule(replica_arn: pulumi.Input[str], replica_key: pulumi.Input[str]) -> dict:
    """Replicate every object (SSE-KMS included) and delete marker into ``replica_arn``."""
    return {
        "id": "dr-replica",
        "status": "Enabled",
        "priority": 1,
        "filter": {"prefix": ""},
        "delete_marker_replication": {"status": "Enabled"},
        "source_selection_criteria": {"sse_kms_encrypted_objects": {"status": "Enabled"}},
        "destination": {"bucket": replica_arn, "encryption_configuration": {"replica_kms_key_id": replica_key}},
    }


class Recovery(pulumi.ComponentResource):
    """AWS Backup plan/vault/selection, and DR replicas in ``dr_region`` (both by config)."""

    def __init__(self, name: str, args: RecoveryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:recovery:Recovery", name, None, opts)
        self._name, self._args = name, args
        self.replica_key = None
        self.dr_vault = None
        self.replicas: dict[str, HardenedBucket] = {}
        if args.dr_region:
            self._dr_key()
        if args.backup_plan:
            self._backup()
        if args.dr_region:
            self._replication()
        self.register_outputs({})

    def _dr_key(self) -> None:
        a, name = self._args, self._name
        self.replica_key = aws.kms.Key(
            f"{name}-dr-key",
            region=a.dr_region,
            description=f"fleetprof DR key ({a.tags['Environment']}: replica buckets, backup copies)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.from_input(a.account_id).apply(replica_key_policy),
            tags=tags(a.tags, f"{name}-dr-key"),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _backup(self) -> None:
        a, name = self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        vault = aws.backup.Vault(
            f"{name}-vault",
            kms_key_arn=a.kms_key_arn,
            force_destroy=not a.deletion_protection,
            tags=tags(a.tags, f"{name}-vault"),
            opts=pulumi.ResourceOptions(parent=self, protect=a.deletion_protection),
        )
        copy_actions = []
        if a.dr_region:
            self.dr_vault = aws.backup.Vault(
                f"{name}-dr-vault",
                region=a.dr_region,
                kms_key_arn=self.replica_key.arn,
                force_destroy=not a.deletion_protection,
                tags=tags(a.tags, f"{name}-dr-vault"),
                opts=pulumi.ResourceOptions(parent=self, protect=a.deletion_protection),
            )
            copy_actions = [
                {"destination_vault_arn": self.dr_vault.arn, "lifecycle": {"delete_after": a.backup_retention_days}}
            ]
        self.plan = aws.backup.Plan(
            f"{name}-plan",
            rules=[
                {
                    "rule_name": "daily",
                    "target_vault_name": vault.name,
                    "schedule": a.backup_schedule,
                    "start_window": 60,
                    "completion_window": 480,
                    "lifecycle": {"delete_after": a.backup_retention_days},
                    "copy_actions": copy_actions,
                }
            ],
            tags=tags(a.tags, f"{name}-plan"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-backup-role",
            assume_role_policy=pulumi.Output.from_input(a.account_id).apply(
                lambda acct: source_account_trust("backup.amazonaws.com", acct)
            ),
            tags=tags(a.tags, f"{name}-backup-role"),
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-backup-role-{i}", role=role.name, policy_arn=arn, opts=child)
            for i, arn in enumerate(BACKUP_POLICIES)
        ]
        self.selection = aws.backup.Selection(
            f"{name}-selection",
            name=f"fleetprof-{a.tags['Environment']}-data",
            plan_id=self.plan.id,
            iam_role_arn=role.arn,
            resources=[a.table_arn, *(b.arn for b in a.data_buckets)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*attachments, *a.ready]),
        )

    def _replication(self) -> None:
        a, name = self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        for b in a.data_buckets:
            lifecycle = [expiry_rule(f"expire-{b.label}", "", b.expiry_days)] if b.expiry_days else []
            self.replicas[b.label] = hardened_bucket(
                BucketSpec(
                    name=f"{name}-{b.label}-replica",
                    kms_key_arn=self.replica_key.arn,
                    noncurrent_version_days=a.noncurrent_version_days,
                    force_destroy=not a.deletion_protection,
                    protect=a.deletion_protection,
                    region=a.dr_region,
                    lifecycle=lifecycle,
                ),
                a.tags,
                self,
            )
        role = aws.iam.Role(
            f"{name}-replication-role",
            assume_role_policy=pulumi.Output.from_input(a.account_id).apply(
                lambda acct: source_account_trust("s3.amazonaws.com", acct)
            ),
            tags=tags(a.tags, f"{name}-replication-role"),
            opts=child,
        )
        pairs = pulumi.Output.all(
            *(x for b in a.data_buckets for x in (b.arn, self.replicas[b.label].bucket.arn))
        ).apply(lambda arns: list(zip(arns[::2], arns[1::2], strict=True)))
        policy = aws.iam.RolePolicy(
            f"{name}-replication-policy",
            role=role.id,
            policy=pulumi.Output.all(pairs, a.kms_key_arn, self.replica_key.arn).apply(
                lambda x: replication_policy(x[0], x[1], x[2], a.region, a.dr_region)
            ),
            opts=child,
        )
        for b in a.data_buckets:
            replica = self.replicas[b.label]
            aws.s3.BucketReplicationConfig(
                f"{name}-{b.label}-replication",
                bucket=b.bucket,
                role=role.arn,
                rules=[replication_rule(replica.bucket.arn, self.replica_key.arn)],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, replica.policy, replica.versioning, *a.ready]),
            )
