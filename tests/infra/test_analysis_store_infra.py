"""The service reads analyses from the analysis bucket: the task gets ``FLEETPROF_ANALYSIS``
and its role may read (not write) that bucket, as IAM evaluates the rendered policy."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from typing import Any

import pytest
from infra_support import one, rendered

from components.mockrun import Rendering

TASK = "aws:ecs/taskDefinition:TaskDefinition"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
BUCKET = "aws:s3/bucket:Bucket"


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v or [])


def allowed(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    """IAM's decision for one identity policy: some ``Allow`` statement matches the action and
    the resource (``*``/``?`` wildcards, actions case-insensitive) and no ``Deny`` does."""

    def matches(s: Mapping[str, Any]) -> bool:
        acts = any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(s.get("Action")))
        return acts and any(fnmatch.fnmatchcase(resource, r) for r in _as_list(s.get("Resource")))

    stmts = policy["Statement"]
    if any(s["Effect"] == "Deny" and matches(s) for s in stmts):
        return False
    return any(s["Effect"] == "Allow" and matches(s) for s in stmts)


def _analysis_arn(r: Rendering) -> str:
    b = one(r, BUCKET, "storage-analysis")
    return b.outputs.get("arn") or f"arn:aws:s3:::{r.exports['analysisBucket']}"


def _task_policy(r: Rendering) -> dict[str, Any]:
    return json.loads(one(r, ROLE_POLICY, "ingest-task-data-policy").inputs["policy"])


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_task_reads_the_analysis_bucket(name: str) -> None:
    r = rendered(name)
    container = json.loads(one(r, TASK, "ingest-task").inputs["containerDefinitions"])[0]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["FLEETPROF_ANALYSIS"] == f"s3://{r.exports['analysisBucket']}/"
    policy, arn = _task_policy(r), _analysis_arn(r)
    key = f"{arn}/analysis/acme/2026-11-21/summary.json"
    assert allowed(policy, "s3:GetObject", key) and allowed(policy, "s3:ListBucket", arn)
    assert not allowed(policy, "s3:PutObject", key) and not allowed(policy, "s3:DeleteObject", key)


def test_policy_model_reports_a_role_without_analysis_access() -> None:
    r = rendered("dev")
    arn = _analysis_arn(r)
    profiles_only = {"Statement": [s for s in _task_policy(r)["Statement"] if not s["Sid"].startswith("Analysis")]}
    assert not allowed(profiles_only, "s3:GetObject", f"{arn}/analysis/a/w/summary.json")
    deny = {"Sid": "D", "Effect": "Deny", "Action": "s3:Get*", "Resource": "*"}
    assert not allowed({"Statement": [*_task_policy(r)["Statement"], deny]}, "s3:GetObject", f"{arn}/x")
