"""A hardened S3 bucket, as every layer creates them (data, artefacts, ALB logs, audit logs,
DR replicas).

Contract: :func:`hardened_bucket` creates the bucket plus default encryption (SSE-KMS under the
given key with the bucket key on, or SSE-S3 when the key is None: ALB access logs support
only that), versioning, the given lifecycle rules plus noncurrent-version and
incomplete-upload expiry, a public access block with all four flags, ``BucketOwnerEnforced``
ownership and a bucket policy that denies non-TLS requests plus ``extra_statements(arn)``.
The policy pack's bucket rules hold for every bucket made here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import pulumi
import pulumi_aws as aws

from components.common import policy_document
from components.tags import tags


def tls_only_statement(bucket_arn: str) -> dict:
    """Deny every request that does not use TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


@dataclass
class BucketSpec:
    """What differs between hardened buckets."""

    name: str
    kms_key_arn: pulumi.Input[str] | None
    noncurrent_version_days: int
    force_destroy: bool
    protect: bool
    region: str | None = None
    lifecycle: list[dict] = field(default_factory=list)
    extra_statements: Callable[[str], pulumi.Input[list[dict]]] | None = None
    extra_tags: Mapping[str, str] = field(default_factory=dict)


class HardenedBucket(NamedTuple):
    """A bucket, and the resources later users must wait for (its policy and versioning)."""

    bucket: aws.s3.Bucket
    policy: aws.s3.BucketPolicy
    versioning: aws.s3.BucketVersioning


def hardened_bucket(spec: BucketSpec, base_tags: Mapping[str, str], parent: pulumi.Resource) -> HardenedBucket:
    """The bucket of ``spec`` and its hardening resources (see the module contract); children of
    ``parent``, in ``spec.region`` when set (else the provider's region)."""
    child = pulumi.ResourceOptions(parent=parent)
    where = {"region": spec.region} if spec.region else {}
    bucket = aws.s3.Bucket(
        spec.name,
        force_destroy=spec.force_destroy,
        tags=tags(base_tags, spec.name, **spec.extra_tags),
        opts=pulumi.ResourceOptions(parent=parent, protect=spec.protect),
        **where,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{spec.name}-sse",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": (
                    {"sse_algorithm": "aws:kms", "kms_master_key_id": spec.kms_key_arn}
                    if spec.kms_key_arn is not None
                    else {"sse_algorithm": "AES256"}
                ),
                "bucket_key_enabled": spec.kms_key_arn is not None,
            }
        ],
        opts=child,
        **where,
    )
    versioning = aws.s3.BucketVersioning(
        f"{spec.name}-versioning", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child, **where
    )
    rules = [
        *spec.lifecycle,
        {
            "id": "expire-noncurrent-versions",
            "status": "Enabled",
            "filter": {"prefix": ""},
            "noncurrent_version_expiration": {"noncurrent_days": spec.noncurrent_version_days},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
        },
    ]
    aws.s3.BucketLifecycleConfiguration(f"{spec.name}-lifecycle", bucket=bucket.id, rules=rules, opts=child, **where)
    pab = aws.s3.BucketPublicAccessBlock(
        f"{spec.name}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
        **where,
    )
    aws.s3.BucketOwnershipControls(
        f"{spec.name}-ownership", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child, **where
    )
    extra = spec.extra_statements or (lambda arn: [])
    policy = aws.s3.BucketPolicy(
        f"{spec.name}-policy",
        bucket=bucket.id,
        policy=bucket.arn.apply(
            lambda arn: pulumi.Output.from_input(extra(arn)).apply(
                lambda ex: policy_document([tls_only_statement(arn), *ex])
            )
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[pab, versioning]),
        **where,
    )
    return HardenedBucket(bucket, policy, versioning)
