"""Small resource builders shared by the components.

Each builder creates exactly the resource its caller used to spell out, with the same
inputs: callers pass their own ``opts`` (so children stay parented to the component) and
their base tags (``Name`` is the resource name).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.tags import tags


def policy_document(statements: Sequence[Mapping[str, Any]]) -> str:
    """An IAM/KMS/S3 policy JSON (version 2012-10-17) with sorted keys."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def assume_role_policy(service: str) -> str:
    """Trust policy letting one AWS service principal assume a role (keys in insertion order)."""
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
    )


def service_role(name: str, service: str, base_tags: Mapping[str, str], opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """An IAM role named and tagged ``name`` that the ``service`` principal may assume."""
    return aws.iam.Role(name, assume_role_policy=assume_role_policy(service), tags=tags(base_tags, name), opts=opts)


def encrypted_log_group(
    name: str, retention_days: int, kms_key_arn: pulumi.Input[str], base_tags: Mapping[str, str], opts: pulumi.ResourceOptions
) -> aws.cloudwatch.LogGroup:
    """A CloudWatch log group named and tagged ``name``, encrypted with ``kms_key_arn``."""
    return aws.cloudwatch.LogGroup(
        name,
        retention_in_days=retention_days,
        kms_key_id=kms_key_arn,
        tags=tags(base_tags, name),
        opts=opts,
    )


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch metric alarm. ``statistic`` may be a percentile (``p99``), which is
    sent as ``extended_statistic`` instead of ``statistic``."""

    suffix: str
    description: str
    namespace: str
    metric_name: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str
    threshold: float
    evaluation_periods: int = 5
    period: int = 60
    comparison_operator: str = "GreaterThanThreshold"
    treat_missing_data: str = "notBreaching"


def metric_alarm(
    prefix: str,
    spec: AlarmSpec,
    base_tags: Mapping[str, str],
    opts: pulumi.ResourceOptions,
    actions: Sequence[pulumi.Input[str]] = (),
) -> aws.cloudwatch.MetricAlarm:
    """The alarm ``<prefix>-<suffix>`` of ``spec``; ``actions`` (if any) get both ALARM and OK."""
    name = f"{prefix}-{spec.suffix}"
    percentile = spec.statistic.startswith("p")
    return aws.cloudwatch.MetricAlarm(
        name,
        alarm_description=spec.description,
        namespace=spec.namespace,
        metric_name=spec.metric_name,
        dimensions=dict(spec.dimensions),
        statistic=None if percentile else spec.statistic,
        extended_statistic=spec.statistic if percentile else None,
        period=spec.period,
        evaluation_periods=spec.evaluation_periods,
        threshold=spec.threshold,
        comparison_operator=spec.comparison_operator,
        treat_missing_data=spec.treat_missing_data,
        alarm_actions=list(actions) or None,
        ok_actions=list(actions) or None,
        tags=tags(base_tags, name),
        opts=opts,
    )
