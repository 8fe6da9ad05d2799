"""Restore runbook as a tool: a fresh store and index from an index backup and a segment replica.

``python -m workers.restore --segments-from s3://REPLICA[/prefix] --store s3://BUCKET[/prefix]
(--index-from-backup BACKUP_ARN | --index-from-table TABLE) --index dynamodb://NEW_TABLE``

1. The index: a DynamoDB backup (``--index-from-backup``: ``RestoreTableFromBackup`` into
   the new table) or a table AWS Backup or point-in-time recovery already restored
   (``--index-from-table``: the new table is created with the documented key design and
   every item is copied, pointers and the tenant registry included).
2. The segments: every object under the replica URL is copied to the same relative key under
   the store URL (managed copies, so objects above 5 GB work; the store's default encryption
   applies). Run it with the credentials and region of the store (``AWS_REGION``).
3. The check: every ``live`` entry (profile and span segments) of every tenant must name an object of the store. Objects
   without an entry are counted (segments written after the backup was taken: the index's
   recovery point is older than the replica's).

Prints one JSON summary; exit 0 when every live entry's object is present, 1 otherwise, 2 on
bad arguments. Every step may be re-run: the table copy overwrites items, copies overwrite
objects, and an existing target table is reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

BATCH = 25
"""Items per ``BatchWriteItem`` (the API's limit)."""
RETRY_DEADLINE_S = 120.0


@dataclass
class RestoreReport:
    """What the restore did and found."""

    index_items: int = 0
    objects_copied: int = 0
    live_entries: int = 0
    missing_objects: list[str] = field(default_factory=list)
    unindexed_objects: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing_objects


def s3_location(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, ``prefix/`` or ``""``); ValueError otherwise."""
    u = urlparse(url)
    if u.scheme != "s3" or not u.netloc:
        raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
    prefix = u.path.strip("/")
    return u.netloc, f"{prefix}/" if prefix else ""


def table_name(url: str) -> str:
    """``dynamodb://table`` -> table; ValueError otherwise."""
    u = urlparse(url)
    if u.scheme != "dynamodb" or not u.netloc:
        raise ValueError(f"not a dynamodb://table URL: {url!r}")
    return u.netloc


def _wait_active(client: Any, table: str) -> None:
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 600})


def restore_from_backup(client: Any, backup_arn: str, table: str) -> int:
    """Restore ``backup_arn`` into the new ``table``; returns its item count."""
    client.restore_table_from_backup(TargetTableName=table, BackupArn=backup_arn)
    _wait_active(client, table)
    return _count(client, table)


def _count(client: Any, table: str) -> int:
    pages = client.get_paginator("scan").paginate(TableName=table, Select="COUNT", ConsistentRead=True)
    return sum(page["Count"] for page in pages)


def _write_all(client: Any, table: str, items: list[dict]) -> None:
    """``BatchWriteItem`` of up to :data:`BATCH` items, resubmitting unprocessed ones."""
    pending = [{"PutRequest": {"Item": it}} for it in items]
    deadline = time.monotonic() + RETRY_DEADLINE_S
    while pending:
        unprocessed = client.batch_write_item(RequestItems={table: pending}).get("UnprocessedItems", {})
        pending = unprocessed.get(table, [])
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} items of {table} still unprocessed after {RETRY_DEADLINE_S:.0f} s")


def copy_table(client: Any, source: str, target: str) -> int:
    """Create ``target`` with the index key design (unless it exists) and copy every item of
    ``source`` into it; returns the number of items copied."""
    from fleetprof.metastore.index import dynamo_table_spec

    if target not in client.list_tables()["TableNames"]:
        client.create_table(**dynamo_table_spec(target))
    _wait_active(client, target)
    n = 0
    for page in client.get_paginator("scan").paginate(TableName=source, ConsistentRead=True):
        items = page.get("Items", [])
        for i in range(0, len(items), BATCH):
            _write_all(client, target, items[i : i + BATCH])
        n += len(items)
    return n


def copy_objects(s3: Any, source: str, target: str) -> int:
    """Copy every object under the ``source`` S3 URL to the same relative key under ``target``."""
    src_bucket, src_prefix = s3_location(source)
    dst_bucket, dst_prefix = s3_location(target)
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=src_bucket, Prefix=src_prefix):
        for obj in page.get("Contents", []):
            key = dst_prefix + obj["Key"][len(src_prefix) :]
            s3.copy({"Bucket": src_bucket, "Key": obj["Key"]}, dst_bucket, key)
            n += 1
    return n


def check(store: Any, index: Any, report: RestoreReport) -> None:
    """Fill ``report`` with the live entries, those whose object is missing, and the objects
    no entry (of any state) references."""
    from fleetprof.metastore.index import ALL_STATES, MAX_TIME_MS

    objects = set(store.list(""))
    referenced: set[str] = set()
    for tenant in index.tenants():
        for entry in index.query(tenant, 0, MAX_TIME_MS, states=ALL_STATES, kind=None):  # profile and span segments
            referenced.add(entry.key)
            if entry.state == "live":
                report.live_entries += 1
                if entry.key not in objects:
                    report.missing_objects.append(f"{tenant}: {entry.key}")
    report.unindexed_objects = len(objects - referenced)


def restore(args: argparse.Namespace) -> RestoreReport:
    """Run the three steps of the module docstring."""
    from fleetprof.metastore import open_index
    from fleetprof.storage import open_store
    from fleetprof.storage.aws import client

    report = RestoreReport()
    dynamodb, target = client("dynamodb"), table_name(args.index)
    if args.index_from_backup:
        report.index_items = restore_from_backup(dynamodb, args.index_from_backup, target)
    else:
        report.index_items = copy_table(dynamodb, args.index_from_table, target)
    report.objects_copied = copy_objects(client("s3"), args.segments_from, args.store)
    check(open_store(args.store), open_index(args.index), report)
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m workers.restore", description=__doc__.splitlines()[0])
    p.add_argument("--segments-from", required=True, help="s3:// URL of the replica (or any copy) of the store")
    p.add_argument("--store", required=True, help="s3:// URL of the store to restore into")
    p.add_argument("--index", required=True, help="dynamodb://TABLE to create")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--index-from-backup", help="ARN of a DynamoDB backup of the index")
    source.add_argument("--index-from-table", help="a table restored by AWS Backup or point-in-time recovery")
    ns = p.parse_args(argv)
    try:
        s3_location(ns.segments_from), s3_location(ns.store), table_name(ns.index)
    except ValueError as e:
        p.error(str(e))
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    report = restore(parse_args(argv))
    print(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
