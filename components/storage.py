"""Storage layer: KMS keys (data; secrets), S3 buckets (profiles, analysis, ALB logs), DynamoDB index table.

Contract with the server (``shared/design.md`` "Storage"): the profiles bucket is the
``s3://`` segment store, the table is the ``dynamodb://`` index with partition key ``pk``
(``tenant#<tenant>``), sort key ``sk`` (``seg#<level>#<min_time_ms>#<segment_id>``), TTL
attribute ``expires_at`` and GSI ``by_state`` (``gsi1pk``/``gsi1sk``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.buckets import BucketSpec, hardened_bucket
from components.common import policy_document
from components.tags import tags

TABLE_HASH_KEY = "pk"
TABLE_RANGE_KEY = "sk"
TABLE_TTL_ATTRIBUTE = "expires_at"
TABLE_GSI_NAME = "by_state"
TABLE_GSI_HASH_KEY = "gsi1pk"
TABLE_GSI_RANGE_KEY = "gsi1sk"
DATA_CLASS = "customer-data"
"""``DataClass`` tag of the buckets holding tenants' data (backed up and replicated)."""
SEGMENTS_PREFIX = "segments/"
"""Segment objects: deleted only by the workers' GC and retention, never by lifecycle."""


@dataclass
class StorageArgs:
    """Inputs of :class:`Storage`."""

    tags: dict[str, str]
    region: str
    noncurrent_version_days: int
    analysis_expiry_days: int
    alb_log_expiry_days: int
    point_in_time_recovery: bool
    deletion_protection: bool


def key_policy(account_id: str, region: str) -> str:
    """KMS key policy: account root administers; CloudWatch Logs, alarms (SNS) and the Auto
    Scaling service-linked role (encrypted EBS of the instances it launches) may use it.

    The service-linked role is matched by ``aws:PrincipalArn`` under ``Principal: *``
    (limited to this account) instead of being named as the principal: AWS rejects a key
    policy naming a role that does not exist (MalformedPolicyDocument), and the role only
    appears in an account when its first Auto Scaling group is created, after this key.
    """
    root = f"arn:aws:iam::{account_id}:root"
    asg_role = f"arn:aws:iam::{account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    asg_caller = {"StringEquals": {"kms:CallerAccount": account_id}, "ArnEquals": {"aws:PrincipalArn": asg_role}}
    return policy_document(
        [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsUse",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account_id}:*"}
                },
            },
            {
                "Sid": "CloudWatchAlarmsPublishToEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
            },
            {
                "Sid": "AutoScalingServiceLinkedRoleUse",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": asg_caller,
            },
            {
                "Sid": "AutoScalingServiceLinkedRoleGrants",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {**asg_caller, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ]
    )


SECRET_KEY_SERVICES: tuple[str, ...] = ("secretsmanager", "ssm")
"""Services through which the secrets key may be used (Secrets Manager secrets, SSM SecureStrings)."""
SECRET_KEY_USE_ACTIONS: tuple[str, ...] = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*")


def secrets_key_policy(account_id: str, region: str) -> str:
    """Key policy of the secrets key (the service's token table, the Ray token): the account
    administers and its IAM policies grant use, but only through Secrets Manager or SSM — a
    role holding ``kms:Decrypt`` on this key cannot decrypt anything else with it, and no
    service principal is admitted."""
    via = [f"{service}.{region}.amazonaws.com" for service in SECRET_KEY_SERVICES]
    return policy_document(
        [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "UseOnlyThroughSecretsManagerAndSsm",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": list(SECRET_KEY_USE_ACTIONS),
                "Resource": "*",
                "Condition": {"StringNotEquals": {"kms:ViaService": via}},
            },
        ]
    )


def expiry_rule(rule_id: str, prefix: str, days: int) -> dict:
    """Lifecycle rule expiring current objects under ``prefix`` (``""``: all) after ``days``."""
    return {"id": rule_id, "status": "Enabled", "filter": {"prefix": prefix}, "expiration": {"days": days}}


def expired_delete_marker_rule(rule_id: str) -> dict:
    """Lifecycle rule removing delete markers whose noncurrent versions have all expired."""
    return {"id": rule_id, "status": "Enabled", "filter": {"prefix": ""}, "expiration": {"expired_object_delete_marker": True}}


def alb_log_delivery_statement(sid: str, principal: dict, bucket_arn: str) -> dict:
    """Allow ``principal`` to write ALB access logs under ``alb/AWSLogs/`` of the bucket."""
    return {"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": "s3:PutObject", "Resource": f"{bucket_arn}/alb/AWSLogs/*"}


class Storage(pulumi.ComponentResource):
    """KMS key + three hardened buckets + the DynamoDB index table."""

    key: aws.kms.Key
    profiles_bucket: aws.s3.Bucket
    analysis_bucket: aws.s3.Bucket
    artifacts_bucket: aws.s3.Bucket
    alb_logs_bucket: aws.s3.Bucket
    table: aws.dynamodb.Table

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:storage:Storage", name, None, opts)
        self._args = args
        self._prefix = name
        child = pulumi.ResourceOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.account_id = identity.account_id

        self.key = aws.kms.Key(
            f"{name}-key",
            description="fleetprof data key (S3, DynamoDB, logs, SNS, EBS)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=identity.account_id.apply(lambda acct: key_policy(acct, args.region)),
            tags=tags(args.tags, f"{name}-key"),
            opts=child,
        )
        self.alias = aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/fleetprof-{args.tags['Environment']}",
            target_key_id=self.key.key_id,
            opts=child,
        )
        # Secrets get a key of their own: the data roles' kms:Decrypt on the data key does not
        # reach them, and the secrets key serves only Secrets Manager and SSM.
        self.secrets_key = aws.kms.Key(
            f"{name}-secrets-key",
            description="fleetprof secrets key (service token table, Ray token)",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=identity.account_id.apply(lambda acct: secrets_key_policy(acct, args.region)),
            tags=tags(args.tags, f"{name}-secrets-key"),
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-secrets-key-alias",
            name=f"alias/fleetprof-{args.tags['Environment']}-secrets",
            target_key_id=self.secrets_key.key_id,
            opts=child,
        )

        self.profiles_bucket = self._bucket(
            "profiles",
            kms=True,
            data=True,
            # No expiry of current objects: only GC (compacted inputs) and retention (expired
            # data) delete segments, index entry first; lifecycle only cleans what they leave.
            lifecycle=[expired_delete_marker_rule("remove-expired-delete-markers")],
        )
        self.analysis_bucket = self._bucket(
            "analysis",
            kms=True,
            data=True,
            lifecycle=[expiry_rule("expire-analysis", "", args.analysis_expiry_days)],
        )
        # Build artifacts the stack's own nodes install (content-addressed keys, never expired:
        # the running nodes' user data names them).
        self.artifacts_bucket = self._bucket("artifacts", kms=True, lifecycle=[])
        elb_account = aws.elb.get_service_account_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.alb_logs_bucket = self._bucket(
            "alb-logs",
            kms=False,  # ALB access logs only support SSE-S3
            lifecycle=[expiry_rule("expire-alb-logs", "", args.alb_log_expiry_days)],
            extra_statements=lambda arn: elb_account.arn.apply(
                lambda elb_arn: [
                    alb_log_delivery_statement("AlbAccessLogDelivery", {"AWS": elb_arn}, arn),
                    alb_log_delivery_statement(
                        "AlbAccessLogDeliveryService", {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}, arn
                    ),
                ]
            ),
        )

        self.table = aws.dynamodb.Table(
            f"{name}-index",
            billing_mode="PAY_PER_REQUEST",
            hash_key=TABLE_HASH_KEY,
            range_key=TABLE_RANGE_KEY,
            attributes=[
                {"name": TABLE_HASH_KEY, "type": "S"},
                {"name": TABLE_RANGE_KEY, "type": "S"},
                {"name": TABLE_GSI_HASH_KEY, "type": "S"},
                {"name": TABLE_GSI_RANGE_KEY, "type": "S"},
            ],
            global_secondary_indexes=[
                {
                    "name": TABLE_GSI_NAME,
                    "hash_key": TABLE_GSI_HASH_KEY,
                    "range_key": TABLE_GSI_RANGE_KEY,
                    "projection_type": "ALL",
                }
            ],
            ttl={"attribute_name": TABLE_TTL_ATTRIBUTE, "enabled": True},
            point_in_time_recovery={"enabled": args.point_in_time_recovery},
            deletion_protection_enabled=args.deletion_protection,
            server_side_encryption={"enabled": True, "kms_key_arn": self.key.arn},
            tags=tags(args.tags, f"{name}-index"),
            opts=pulumi.ResourceOptions(parent=self, protect=args.deletion_protection),
        )

        self.register_outputs(
            {
                "keyArn": self.key.arn,
                "secretsKeyArn": self.secrets_key.arn,
                "profilesBucket": self.profiles_bucket.bucket,
                "analysisBucket": self.analysis_bucket.bucket,
                "albLogsBucket": self.alb_logs_bucket.bucket,
                "tableName": self.table.name,
            }
        )

    def _bucket(
        self, suffix: str, *, kms: bool, lifecycle: list[dict], extra_statements=None, data: bool = False
    ) -> aws.s3.Bucket:
        """One hardened bucket (:func:`components.buckets.hardened_bucket`): SSE-KMS under the
        stack key (SSE-S3 without ``kms``), ``protect``ed and kept non-empty where deletion
        protection is on; ``data`` tags it ``DataClass``."""
        args = self._args
        made = hardened_bucket(
            BucketSpec(
                name=f"{self._prefix}-{suffix}",
                kms_key_arn=self.key.arn if kms else None,
                noncurrent_version_days=args.noncurrent_version_days,
                force_destroy=not args.deletion_protection,
                protect=args.deletion_protection,
                lifecycle=lifecycle,
                extra_statements=extra_statements,
                extra_tags={"DataClass": DATA_CLASS} if data else {},
            ),
            args.tags,
            self,
        )
        if suffix == "alb-logs":
            self.alb_logs_policy = made.policy
        return made.bucket

