"""Audit and compliance layer: CloudTrail, AWS Config with a conformance pack, GuardDuty and
Security Hub.

Contract:

* An audit key (its own customer managed key, rotated) encrypts the trail's log files and the
  audit bucket. Its policy lets ``cloudtrail.amazonaws.com`` generate data keys only for this
  stack's trail (``aws:SourceArn`` and the ``aws:cloudtrail:arn`` encryption context) and
  ``config.amazonaws.com`` only for this account (``aws:SourceAccount``).
* The audit bucket is hardened like every bucket (:mod:`components.buckets`), keeps
  deliveries ``retention_days`` (lifecycle), denies object deletion to every principal (only
  lifecycle expires log files) and admits CloudTrail (``AWSLogs/<account>/``) and AWS Config
  (``config/AWSLogs/<account>/Config/``) with the ``aws:SourceArn``/``aws:SourceAccount``
  conditions AWS documents.
* The trail ``fleetprof-<env>`` is multi-region, records management events and the S3 data
  events of the given data buckets, validates log files (digest files) and is KMS-encrypted.
* With ``config_recorder``: a recorder for all supported resource types, its delivery channel
  into the audit bucket and a conformance pack of the AWS Config managed rules that check what
  the policy pack checks at preview (:data:`CONFORMANCE_RULES`).
* ``guard_duty`` and ``security_hub`` (account singletons) create a detector and enable
  Security Hub with the AWS Foundational Security Best Practices standard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import yaml

from components.buckets import BucketSpec, hardened_bucket
from components.common import policy_document
from components.storage import expiry_rule
from components.tags import tags
from policies.rules import AUTH_TOKENS_ENV, BROAD_MANAGED_POLICIES

CONFIG_PREFIX = "config"
FSBP_STANDARD = "standards/aws-foundational-security-best-practices/v/1.0.0"


@dataclass(frozen=True)
class ManagedRule:
    """One AWS Config managed rule (``identifier``) with its input parameters."""

    identifier: str
    parameters: Mapping[str, str] | None = None


CONFORMANCE_RULES: dict[str, tuple[ManagedRule, ...]] = {
    "s3-public-access-block": (ManagedRule("S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED"),),
    "s3-encryption": (ManagedRule("S3_DEFAULT_ENCRYPTION_KMS"),),
    "s3-tls-only": (ManagedRule("S3_BUCKET_SSL_REQUESTS_ONLY"),),
    "s3-bucket-hardened": (ManagedRule("S3_BUCKET_VERSIONING_ENABLED"),),
    "dynamodb-encryption": (ManagedRule("DYNAMODB_TABLE_ENCRYPTED_KMS"),),
    "dynamodb-pitr": (ManagedRule("DYNAMODB_PITR_ENABLED"),),
    "deletion-protection": (
        ManagedRule("DYNAMODB_TABLE_DELETION_PROTECTION_ENABLED"),
        ManagedRule("ELB_DELETION_PROTECTION_ENABLED"),
    ),
    "kms-rotation": (ManagedRule("CMK_BACKING_KEY_ROTATION_ENABLED"),),
    "alb-https": (ManagedRule("ALB_HTTP_TO_HTTPS_REDIRECTION_CHECK"), ManagedRule("ELB_TLS_HTTPS_LISTENERS_ONLY")),
    "alb-access-logs": (ManagedRule("ELB_LOGGING_ENABLED"),),
    "alb-drop-invalid-headers": (ManagedRule("ALB_HTTP_DROP_INVALID_HEADER_ENABLED"),),
    "no-open-ingress": (ManagedRule("VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS", {"authorizedTcpPorts": "80,443"}),),
    "ec2-imdsv2": (ManagedRule("EC2_IMDSV2_CHECK"),),
    "ec2-encrypted-volumes": (ManagedRule("ENCRYPTED_VOLUMES"),),
    "ec2-no-public-ip": (ManagedRule("EC2_INSTANCE_NO_PUBLIC_IP"),),
    "ecs-task-hardening": (
        ManagedRule("ECS_CONTAINERS_READONLY_ACCESS"),
        ManagedRule("ECS_TASK_DEFINITION_LINUX_USER_NON_ROOT"),
    ),
    "log-group-retention-kms": (ManagedRule("CLOUDWATCH_LOG_GROUP_ENCRYPTED"), ManagedRule("CW_LOGGROUP_RETENTION_PERIOD_CHECK")),
    "sns-topic-cmk": (ManagedRule("SNS_ENCRYPTED_KMS"),),
    "iam-no-star": (ManagedRule("IAM_POLICY_NO_STATEMENTS_WITH_ADMIN_ACCESS"),),
    "iam-no-broad-managed-policy": (
        ManagedRule(
            "IAM_POLICY_BLACKLISTED_CHECK",
            {"policyArns": ",".join(f"arn:aws:iam::aws:policy/{name}" for name in BROAD_MANAGED_POLICIES)},
        ),
    ),
    "service-auth": (ManagedRule("ECS_NO_ENVIRONMENT_SECRETS", {"secretKeys": AUTH_TOKENS_ENV}),),
    "ecs-container-logging": (ManagedRule("ECS_TASK_DEFINITION_LOG_CONFIGURATION"),),
    "required-tags": (
        ManagedRule(
            "REQUIRED_TAGS",
            {"tag1Key": "Project", "tag2Key": "Environment", "tag3Key": "Owner", "tag4Key": "CostCenter"},
        ),
    ),
    "waf-attached": (ManagedRule("ALB_WAF_ENABLED"),),
    "waf-logging": (ManagedRule("WAFV2_LOGGING_ENABLED"),),
    "cloudtrail-audit": (
        ManagedRule("MULTI_REGION_CLOUD_TRAIL_ENABLED"),
        ManagedRule("CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED"),
        ManagedRule("CLOUD_TRAIL_ENCRYPTION_ENABLED"),
        ManagedRule("CLOUDTRAIL_S3_DATAEVENTS_ENABLED"),
    ),
    "backup-configured": (
        ManagedRule("DYNAMODB_RESOURCES_PROTECTED_BY_BACKUP_PLAN"),
        ManagedRule("S3_RESOURCES_PROTECTED_BY_BACKUP_PLAN"),
    ),
    "dr-replication": (ManagedRule("S3_BUCKET_CROSS_REGION_REPLICATION_ENABLED"),),
    "account-monitoring": (ManagedRule("GUARDDUTY_ENABLED_CENTRALIZED"), ManagedRule("SECURITYHUB_ENABLED")),
}
"""Policy-pack rule name -> the AWS Config managed rules that check the same thing on the
deployed resources (account-wide in the stack's region)."""

PREVIEW_ONLY_RULES: dict[str, str] = {
    "ecs-image-pinned": "no managed rule checks how a task definition's images are pinned; enforced at preview only",
    "otel-collector-private": (
        "a collector's loopback binding lives in its configuration text, which no managed rule reads; "
        "VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS covers the internet side"
    ),
    "nat-per-az": "no managed rule checks NAT gateways per AZ; enforced at preview only",
    "ecs-no-public-ip": (
        "no managed rule identifier verified for ECS service public IPs; Security Hub control ECS.2 "
        "checks it where securityHub is on"
    ),
}
"""Policy-pack rules without a managed AWS Config rule, and why."""

def unmapped_policy_rules(rule_names: Sequence[str]) -> list[str]:
    """Policy-pack rules with neither a managed AWS Config rule nor a reason why not, and
    mapped names that are no policy-pack rule (empty: the conformance set matches the pack)."""
    mapped = set(CONFORMANCE_RULES) | set(PREVIEW_ONLY_RULES)
    return sorted(set(rule_names) ^ mapped)


PER_DATA_BUCKET = frozenset({"S3_RESOURCES_PROTECTED_BY_BACKUP_PLAN", "S3_BUCKET_CROSS_REGION_REPLICATION_ENABLED"})
"""Managed rules scoped to each data bucket (other buckets are neither backed up nor replicated
by design: ALB logs, audit logs, build artefacts)."""


def conformance_template(log_retention_days: int, data_buckets: Sequence[str], *, backups: bool, dr: bool) -> str:
    """The conformance pack template: one ``AWS::Config::ConfigRule`` per managed rule of
    :data:`CONFORMANCE_RULES` (:data:`PER_DATA_BUCKET` rules once per data bucket, scoped to
    it), the log-group retention check at ``log_retention_days``; the backup rules only with
    ``backups``, the replication rule only with ``dr``."""
    skip = ({"backup-configured"} if not backups else set()) | ({"dr-replication"} if not dr else set())
    resources: dict[str, dict] = {}
    for rule_name, managed in sorted(CONFORMANCE_RULES.items()):
        if rule_name in skip:
            continue
        for m in managed:
            params = dict(m.parameters or {})
            if m.identifier == "CW_LOGGROUP_RETENTION_PERIOD_CHECK":
                params["MinRetentionTime"] = str(log_retention_days)
            scopes = [{"ComplianceResourceTypes": ["AWS::S3::Bucket"], "ComplianceResourceId": b} for b in data_buckets]
            for i, scope in enumerate(scopes if m.identifier in PER_DATA_BUCKET else [None]):
                suffix = f"-{i}" if scope else ""
                props: dict = {
                    "ConfigRuleName": f"fleetprof-{m.identifier.lower().replace('_', '-')}{suffix}",
                    "Description": f"fleetprof policy rule {rule_name}",
                    "Source": {"Owner": "AWS", "SourceIdentifier": m.identifier},
                }
                if params:
                    props["InputParameters"] = params
                if scope:
                    props["Scope"] = scope
                logical = "".join(part.capitalize() for part in m.identifier.split("_")) + suffix.replace("-", "")
                resources[logical] = {"Type": "AWS::Config::ConfigRule", "Properties": props}
    return yaml.safe_dump({"Resources": resources}, sort_keys=True)


def trail_arn(region: str, account_id: str, name: str) -> str:
    """The ARN AWS gives the trail ``name`` (known before the trail exists)."""
    return f"arn:aws:cloudtrail:{region}:{account_id}:trail/{name}"


def audit_key_policy(account_id: str, trail: str) -> str:
    """Key policy of the audit key: the account administers; CloudTrail encrypts for ``trail``
    only; AWS Config (this account's recorder) encrypts its deliveries."""
    root = f"arn:aws:iam::{account_id}:root"
    for_trail = {"StringEquals": {"aws:SourceArn": trail}}
    return policy_document(
        [
            {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
            {
                "Sid": "CloudTrailEncryptLogs",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
                "Condition": {
                    **for_trail,
                    "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{account_id}:trail/*"},
                },
            },
            {
                "Sid": "CloudTrailDescribeKey",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "kms:DescribeKey",
                "Resource": "*",
                "Condition": for_trail,
            },
            {
                "Sid": "ConfigDeliveries",
                "Effect": "Allow",
                "Principal": {"Service": "config.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ]
    )


def audit_bucket_statements(bucket_arn: str, account_id: str, trail: str) -> list[dict]:
    """Bucket policy statements for CloudTrail and AWS Config deliveries, and the deletion deny."""
    cloudtrail = {"Service": "cloudtrail.amazonaws.com"}
    config = {"Service": "config.amazonaws.com"}
    from_trail = {"StringEquals": {"aws:SourceArn": trail}}
    from_account = {"StringEquals": {"aws:SourceAccount": account_id}}
    owner_acl = {"s3:x-amz-acl": "bucket-owner-full-control"}
    return [
        {"Sid": "CloudTrailAclCheck", "Effect": "Allow", "Principal": cloudtrail, "Action": "s3:GetBucketAcl",
         "Resource": bucket_arn, "Condition": from_trail},
        {"Sid": "CloudTrailWrite", "Effect": "Allow", "Principal": cloudtrail, "Action": "s3:PutObject",
         "Resource": f"{bucket_arn}/AWSLogs/{account_id}/*",
         "Condition": {"StringEquals": {**from_trail["StringEquals"], **owner_acl}}},
        {"Sid": "ConfigAclCheck", "Effect": "Allow", "Principal": config, "Action": ["s3:GetBucketAcl", "s3:ListBucket"],
         "Resource": bucket_arn, "Condition": from_account},
        {"Sid": "ConfigWrite", "Effect": "Allow", "Principal": config, "Action": "s3:PutObject",
         "Resource": f"{bucket_arn}/{CONFIG_PREFIX}/AWSLogs/{account_id}/Config/*",
         "Condition": {"StringEquals": {**from_account["StringEquals"], **owner_acl}}},
        {"Sid": "DenyAuditLogDeletion", "Effect": "Deny", "Principal": "*",
         "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": f"{bucket_arn}/*"},
    ]


def trail_event_selectors(data_bucket_arns: Sequence[pulumi.Input[str]]) -> list[dict]:
    """Advanced event selectors: all management events, S3 object events of the data buckets
    (object ARNs start with ``<bucket ARN>/``)."""
    return [
        {"name": "management-events", "field_selectors": [{"field": "eventCategory", "equals": ["Management"]}]},
        {
            "name": "data-bucket-object-events",
            "field_selectors": [
                {"field": "eventCategory", "equals": ["Data"]},
                {"field": "resources.type", "equals": ["AWS::S3::Object"]},
                {"field": "resources.ARN", "starts_withs": [pulumi.Output.concat(arn, "/") for arn in data_bucket_arns]},
            ],
        },
    ]


@dataclass
class AuditArgs:
    """Inputs of :class:`Audit`."""

    tags: dict[str, str]
    region: str
    account_id: pulumi.Input[str]
    data_bucket_arns: list[pulumi.Input[str]]
    data_bucket_names: list[pulumi.Input[str]]
    backup_plan: bool
    dr_region: str
    cloudtrail_enabled: bool
    audit_log_retention_days: int
    config_recorder: bool
    guard_duty: bool
    security_hub: bool
    deletion_protection: bool
    noncurrent_version_days: int
    log_retention_days: int


class Audit(pulumi.ComponentResource):
    """CloudTrail trail + audit key and bucket; AWS Config, GuardDuty, Security Hub by config."""

    def __init__(self, name: str, args: AuditArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:audit:Audit", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env = args.tags["Environment"]
        self.trail_name = f"fleetprof-{env}"
        self.trail = None
        self.recorder = None
        if args.cloudtrail_enabled or args.config_recorder:
            self._audit_store(name, args, env)
        if args.cloudtrail_enabled:
            self._trail(name, args)
        if args.config_recorder:
            self._config(name, args)
        if args.guard_duty:
            aws.guardduty.Detector(
                f"{name}-guardduty",
                enable=True,
                finding_publishing_frequency="FIFTEEN_MINUTES",
                tags=tags(args.tags, f"{name}-guardduty"),
                opts=child,
            )
        if args.security_hub:
            hub = aws.securityhub.Account(
                f"{name}-securityhub", enable_default_standards=False, auto_enable_controls=True, opts=child
            )
            aws.securityhub.StandardsSubscription(
                f"{name}-securityhub-fsbp",
                standards_arn=f"arn:aws:securityhub:{args.region}::{FSBP_STANDARD}",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[hub]),
            )
        self.register_outputs({})

    def _audit_store(self, name: str, args: AuditArgs, env: str) -> None:
        """The audit key and the audit bucket."""
        arn = pulumi.Output.from_input(args.account_id).apply(lambda acct: trail_arn(args.region, acct, self.trail_name))
        self.trail_arn = arn
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"fleetprof audit key ({env}: CloudTrail, AWS Config)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.all(args.account_id, arn).apply(lambda a: audit_key_policy(a[0], a[1])),
            tags=tags(args.tags, f"{name}-key"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        resolved = pulumi.Output.all(args.account_id, arn)
        store = hardened_bucket(
            BucketSpec(
                name=f"{name}-logs",
                kms_key_arn=self.key.arn,
                noncurrent_version_days=args.noncurrent_version_days,
                force_destroy=not args.deletion_protection,
                protect=args.deletion_protection,
                lifecycle=[expiry_rule("expire-audit-logs", "", args.audit_log_retention_days)],
                extra_statements=lambda bucket_arn: resolved.apply(
                    lambda a: audit_bucket_statements(bucket_arn, a[0], a[1])
                ),
            ),
            args.tags,
            self,
        )
        self.bucket, self.bucket_policy = store.bucket, store.policy

    def _trail(self, name: str, args: AuditArgs) -> None:
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=self.trail_name,
            s3_bucket_name=self.bucket.bucket,
            kms_key_id=self.key.arn,
            enable_log_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            advanced_event_selectors=trail_event_selectors(args.data_bucket_arns),
            tags=tags(args.tags, f"{name}-trail"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.bucket_policy, self.key]),
        )

    def _config(self, name: str, args: AuditArgs) -> None:
        """Recorder, delivery channel, recording on, and the conformance pack."""
        role = aws.iam.Role(
            f"{name}-config-role",
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda acct: policy_document(
                    [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "config.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                            "Condition": {"StringEquals": {"aws:SourceAccount": acct}},
                        }
                    ]
                )
            ),
            tags=tags(args.tags, f"{name}-config-role"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        attach = aws.iam.RolePolicyAttachment(
            f"{name}-config-role-policy",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AWS_ConfigRole",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.recorder = aws.cfg.Recorder(
            f"{name}-config-recorder",
            name=f"fleetprof-{args.tags['Environment']}",
            role_arn=role.arn,
            recording_group={"all_supported": True, "include_global_resource_types": True},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attach]),
        )
        channel = aws.cfg.DeliveryChannel(
            f"{name}-config-delivery",
            name=f"fleetprof-{args.tags['Environment']}",
            s3_bucket_name=self.bucket.bucket,
            s3_key_prefix=CONFIG_PREFIX,
            s3_kms_key_arn=self.key.arn,
            snapshot_delivery_properties={"delivery_frequency": "TwentyFour_Hours"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.recorder, self.bucket_policy]),
        )
        status = aws.cfg.RecorderStatus(
            f"{name}-config-recording",
            name=self.recorder.name,
            is_enabled=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[channel]),
        )
        aws.cfg.ConformancePack(
            f"{name}-conformance",
            name=f"fleetprof-{args.tags['Environment']}",
            template_body=pulumi.Output.all(*args.data_bucket_names).apply(
                lambda names: conformance_template(
                    args.log_retention_days, names, backups=args.backup_plan, dr=bool(args.dr_region)
                )
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[status]),
        )
