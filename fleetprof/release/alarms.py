"""CloudWatch alarms of one stack.

Contract of :func:`stack_alarms`: every metric and composite alarm whose name starts with
one of ``prefixes`` (the platform's ``observability-*``, ``ingest-deploy-5xx``,
``ray-head-recover``) and whose ``Environment`` tag is the stack name (every stack of the
program tags its alarms so; several stacks share one account), with its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA
    reason: str


def cloudwatch(region: str = "") -> Any:
    """A CloudWatch client (``region`` overrides the environment's region)."""
    if region:
        import os

        import boto3

        return boto3.client("cloudwatch", region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    from fleetprof.storage.aws import client

    return client("cloudwatch")


def stack_alarms(prefixes: Sequence[str], stack: str, region: str = "") -> list[AlarmState]:
    """The stack's alarms (module contract), sorted by name."""
    cw = cloudwatch(region)
    out: dict[str, AlarmState] = {}
    for prefix in prefixes:
        for page in cw.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for a in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                if a["AlarmName"] in out or not _is_stack(cw, a["AlarmArn"], stack):
                    continue
                out[a["AlarmName"]] = AlarmState(a["AlarmName"], a["StateValue"], a.get("StateReason", ""))
    return [out[k] for k in sorted(out)]


def _is_stack(cw: Any, arn: str, stack: str) -> bool:
    tags = cw.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
    return any(t["Key"] == "Environment" and t["Value"] == stack for t in tags)
