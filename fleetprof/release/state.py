"""Shared release state: S3 (release manifests, event logs) + DynamoDB (stacks, locks).

Contract. One DynamoDB table with a string hash key ``pk`` (:func:`table_spec`):

* ``stack#<stack>`` — :class:`StackState`: ``last_good`` (the release applied last that
  passed its wave, with the exact stack config it was applied with), ``current`` (the
  in-flight version and the last step it completed, so a rerun resumes) and ``rejected``
  (versions rolled back from this stack; they are never deployed there again).
* ``lock#<stack>`` — the deploy lock: ``owner``, ``version``, ``expires_at`` (epoch s).
  :meth:`StateStore.acquire` is one conditional put (free, expired, or already ours), so two
  runs never hold one stack; the holder renews it (:meth:`StateStore.renew`) while it works;
  a crashed holder's lock frees itself when its lease runs out.
* ``approval#<wave>#<version>`` — a manual promotion approval.

S3 under ``s3://<bucket>/<prefix>``: ``releases/<version>.json`` (the manifest) and
``events/<run id>.json`` (a run's event log). Times come from the injected clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fleetprof.release.clock import Clock
from fleetprof.release.pipeline import Release, StateConfig, release_from_dict


def table_spec(name: str) -> dict[str, Any]:
    """``create_table`` arguments of the state table."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


@dataclass
class StackState:
    """What the pipeline knows of one stack (see the module docstring)."""

    stack: str
    last_good: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    rejected: list[str] = field(default_factory=list)

    def to_item(self) -> dict[str, Any]:
        body = {"last_good": self.last_good, "current": self.current, "rejected": self.rejected}
        return {"pk": {"S": f"stack#{self.stack}"}, "body": {"S": json.dumps(body, sort_keys=True)}}


@dataclass(frozen=True)
class LockInfo:
    owner: str
    version: str
    expires_at: float


class StateStore:
    """S3 + DynamoDB state of one pipeline (module contract)."""

    def __init__(self, cfg: StateConfig, clock: Clock) -> None:
        from fleetprof.storage.aws import client

        self.cfg = cfg
        self.clock = clock
        self.s3 = client("s3")
        self.ddb = client("dynamodb")

    # -- table ------------------------------------------------------------------
    def ensure_table(self) -> None:
        """Create the table when missing (``fleetprof release init``)."""
        try:
            self.ddb.describe_table(TableName=self.cfg.table)
        except self.ddb.exceptions.ResourceNotFoundException:
            self.ddb.create_table(**table_spec(self.cfg.table))
            self.ddb.get_waiter("table_exists").wait(TableName=self.cfg.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    # -- S3 ---------------------------------------------------------------------
    def _key(self, rel: str) -> str:
        return self.cfg.prefix + rel

    def put_release(self, release: Release) -> None:
        body = json.dumps(release.to_dict(), sort_keys=True).encode()
        self.s3.put_object(Bucket=self.cfg.bucket, Key=self._key(f"releases/{release.version}.json"), Body=body)

    def get_release(self, version: str) -> Release | None:
        try:
            obj = self.s3.get_object(Bucket=self.cfg.bucket, Key=self._key(f"releases/{version}.json"))
        except self.s3.exceptions.NoSuchKey:
            return None
        return release_from_dict(json.loads(obj["Body"].read()), f"releases/{version}.json")

    def write_events(self, run_id: str, events: list[dict[str, Any]]) -> None:
        body = json.dumps(events, indent=1, sort_keys=True).encode()
        self.s3.put_object(Bucket=self.cfg.bucket, Key=self._key(f"events/{run_id}.json"), Body=body,
                           ContentType="application/json")

    def read_events(self, run_id: str) -> list[dict[str, Any]]:
        obj = self.s3.get_object(Bucket=self.cfg.bucket, Key=self._key(f"events/{run_id}.json"))
        return json.loads(obj["Body"].read())

    # -- stacks -----------------------------------------------------------------
    def stack_state(self, stack: str) -> StackState:
        item = self.ddb.get_item(TableName=self.cfg.table, Key={"pk": {"S": f"stack#{stack}"}}, ConsistentRead=True).get("Item")
        if not item:
            return StackState(stack)
        body = json.loads(item["body"]["S"])
        return StackState(stack, body.get("last_good"), body.get("current"), list(body.get("rejected") or []))

    def save_stack_state(self, st: StackState) -> None:
        self.ddb.put_item(TableName=self.cfg.table, Item=st.to_item())

    # -- locks ------------------------------------------------------------------
    def acquire(self, stack: str, owner: str, version: str) -> bool:
        """Take the stack's lock for ``cfg.lock_lease_s``: free, expired or already ours."""
        now = self.clock.now()
        try:
            self.ddb.put_item(
                TableName=self.cfg.table,
                Item={"pk": {"S": f"lock#{stack}"}, "owner": {"S": owner}, "version": {"S": version},
                      "expires_at": {"N": repr(now + self.cfg.lock_lease_s)}},
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": {"N": repr(now)}, ":me": {"S": owner}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def renew(self, stack: str, owner: str) -> bool:
        """Extend our lease; false when the lock is no longer ours."""
        now = self.clock.now()
        try:
            self.ddb.update_item(
                TableName=self.cfg.table,
                Key={"pk": {"S": f"lock#{stack}"}},
                UpdateExpression="SET expires_at = :exp",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":exp": {"N": repr(now + self.cfg.lock_lease_s)}, ":me": {"S": owner}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release_lock(self, stack: str, owner: str) -> None:
        try:
            self.ddb.delete_item(
                TableName=self.cfg.table,
                Key={"pk": {"S": f"lock#{stack}"}},
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            pass

    def lock_info(self, stack: str) -> LockInfo | None:
        item = self.ddb.get_item(TableName=self.cfg.table, Key={"pk": {"S": f"lock#{stack}"}}, ConsistentRead=True).get("Item")
        if not item:
            return None
        return LockInfo(item["owner"]["S"], item["version"]["S"], float(item["expires_at"]["N"]))

    # -- manual approvals -------------------------------------------------------
    def approve(self, wave: str, version: str, by: str) -> None:
        self.ddb.put_item(TableName=self.cfg.table, Item={
            "pk": {"S": f"approval#{wave}#{version}"}, "by": {"S": by}, "at": {"N": repr(self.clock.now())}})

    def approved(self, wave: str, version: str) -> bool:
        key = {"pk": {"S": f"approval#{wave}#{version}"}}
        return "Item" in self.ddb.get_item(TableName=self.cfg.table, Key=key, ConsistentRead=True)
