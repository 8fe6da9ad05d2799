"""The restore runbook (``python -m workers.restore``) on a moto server: a store and index are
written by the real segment writer, the index is backed up and the segments copied into a
"replica" bucket; the tool restores both into a fresh bucket and table, and the same queries
answer the same. A replica that lost an object makes the tool fail and name the object."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from aws_fixtures import aws_client, create_dynamo_table

from fleetprof.metastore import open_index
from fleetprof.model import Stacks, ValueType, build
from fleetprof.query import select_merge
from fleetprof.query.select import label_values
from fleetprof.segment.writer import IngestItem, SegmentWriter
from fleetprof.storage import open_store

REPO = Path(__file__).resolve().parents[2]
CPU_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
TENANTS = ("acme", "globex")
N = 24


def item(i: int) -> IngestItem:
    st = Stacks(
        names=["main", f"handler{i % 5}", "leaf"], files=["app.py"] * 3,
        offsets=np.array([0, 3]), frames=np.array([0, 1, 2]), values=np.array([[i + 1]]),
    )
    return IngestItem({"service_name": f"svc{i % 3}"}, CPU_TYPE, 1_700_000_000_000 + 1000 * i, build(st, [ValueType("cpu", "nanoseconds")]))


async def seed(store_url: str, index_url: str) -> None:
    """Each tenant's items, flushed in several segments."""
    writer = SegmentWriter(open_store(store_url), open_index(index_url), max_age_s=0.01)
    for i in range(N):
        for tenant in TENANTS:
            await writer.submit(tenant, [item(i)])
    await writer.stop()


def answers(store_url: str, index_url: str) -> dict:
    """The query answers the restore must reproduce, per tenant."""
    store, index = open_store(store_url), open_index(index_url)
    out = {}
    for tenant in TENANTS:
        p = select_merge(store, index, tenant, CPU_TYPE, [], 0, 10**13)
        names = p.frames.select("name").to_series().to_list() if "name" in p.frames.columns else []
        out[tenant] = (p.totals(), sorted(map(str, names)), label_values(store, index, tenant, "service_name", 0, 10**13))
    return out


def copy_bucket(src: str, dst: str) -> None:
    """What S3 replication does, for the test: every object into the replica bucket."""
    s3 = aws_client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=src):
        for obj in page.get("Contents", []):
            s3.copy_object(CopySource={"Bucket": src, "Key": obj["Key"]}, Bucket=dst, Key=obj["Key"])


def run_restore(*args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "workers.restore", *args],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )
    assert proc.stdout, proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def primary(moto_server: str) -> dict[str, str]:
    """A seeded primary store and index, its replica bucket and a fresh target bucket."""
    s3 = aws_client("s3")
    names = {k: f"{k}-{uuid.uuid4().hex[:10]}" for k in ("primary", "replica", "fresh")}
    for bucket in names.values():
        s3.create_bucket(Bucket=bucket)
    table = create_dynamo_table(f"index-{uuid.uuid4().hex[:10]}")
    store, index = f"s3://{names['primary']}/data", f"dynamodb://{table}"
    asyncio.run(seed(store, index))
    copy_bucket(names["primary"], names["replica"])
    return {**names, "table": table, "store": store, "index": index}


def test_restore_from_a_backup_and_the_replica_answers_the_same(primary):
    before = answers(primary["store"], primary["index"])
    assert all(a[0] == [sum(range(1, N + 1))] and "handler4" in a[1] and len(a[2]) == 3 for a in before.values())
    backup = aws_client("dynamodb").create_backup(TableName=primary["table"], BackupName="nightly")["BackupDetails"]["BackupArn"]
    target_table = f"restored-{uuid.uuid4().hex[:8]}"
    rc, report = run_restore(
        "--segments-from", f"s3://{primary['replica']}/data",
        "--store", f"s3://{primary['fresh']}/data",
        "--index-from-backup", backup,
        "--index", f"dynamodb://{target_table}",
    )
    assert rc == 0 and report["ok"] and report["missing_objects"] == [] and report["unindexed_objects"] == 0
    assert report["live_entries"] >= len(TENANTS) and report["objects_copied"] >= report["live_entries"]
    assert answers(f"s3://{primary['fresh']}/data", f"dynamodb://{target_table}") == before


def test_restore_from_a_restored_table_copies_every_item(primary):
    before = answers(primary["store"], primary["index"])
    target_table = f"restored-{uuid.uuid4().hex[:8]}"
    rc, report = run_restore(
        "--segments-from", f"s3://{primary['replica']}/data",
        "--store", f"s3://{primary['fresh']}/restored",
        "--index-from-table", primary["table"],
        "--index", f"dynamodb://{target_table}",
    )
    items = aws_client("dynamodb").scan(TableName=primary["table"], Select="COUNT")["Count"]
    assert rc == 0 and report["index_items"] == items
    assert answers(f"s3://{primary['fresh']}/restored", f"dynamodb://{target_table}") == before


def test_a_replica_missing_a_segment_fails_the_restore_and_names_it(primary):
    s3 = aws_client("s3")
    lost = s3.list_objects_v2(Bucket=primary["replica"], Prefix="data/")["Contents"][0]["Key"]
    s3.delete_object(Bucket=primary["replica"], Key=lost)
    rc, report = run_restore(
        "--segments-from", f"s3://{primary['replica']}/data",
        "--store", f"s3://{primary['fresh']}/data",
        "--index-from-table", primary["table"],
        "--index", f"dynamodb://restored-{uuid.uuid4().hex[:8]}",
    )
    relative = lost[len("data/"):]
    assert rc == 1 and not report["ok"]
    assert [m.split(": ", 1)[1] for m in report["missing_objects"]] == [relative]


def test_bad_urls_are_refused_before_anything_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "workers.restore", "--segments-from", "file:///x", "--store", "s3://b",
         "--index-from-table", "t", "--index", "dynamodb://n"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2 and "not an s3://bucket[/prefix] URL" in proc.stderr


def test_the_check_covers_span_segments(tmp_path: Path) -> None:
    """Span segment entries are live entries like profile ones: their objects are checked
    and referenced (not counted as objects without an entry)."""
    from fleetprof.traces.table import concat_tables
    from fleetprof.traces.writer import encode_table
    from workers.restore import RestoreReport, check

    store, index = open_store((tmp_path / "d").as_uri()), open_index(f"sqlite://{tmp_path / 'i.db'}")
    data, entry = encode_table("acme", concat_tables([]), now_ms=1_700_000_000_000)
    store.put(entry.key, data)
    index.add(entry)
    report = RestoreReport()
    check(store, index, report)
    assert (report.live_entries, report.missing_objects, report.unindexed_objects) == (1, [], 0)
    store.delete(entry.key)
    report = RestoreReport()
    check(store, index, report)
    assert report.missing_objects == [f"acme: {entry.key}"] and not report.ok
