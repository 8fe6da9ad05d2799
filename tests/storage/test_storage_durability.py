"""Durability and statelessness at the storage level, on file+sqlite and s3+dynamodb.

A child process ingests through SegmentWriter and prints an ``ACK`` after each durable
submit; we SIGKILL it mid-stream and check, on fresh store/index instances, that every
acknowledged item is present exactly once and that nothing is partial (each item is either
absent or whole, every indexed object decodes with a valid checksum).
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from fleetprof.metastore import ALL_STATES, open_index
from fleetprof.metastore.cleanup import collect_orphans
from fleetprof.query import select_merge
from fleetprof.segment import decode_segment
from fleetprof.storage import open_store

CHILD = Path(__file__).with_name("ingest_child.py")
REPO = Path(__file__).resolve().parents[2]
N = 400


def run_and_kill(store_url: str, index_url: str, kill_after: int) -> set[int]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), store_url, index_url, str(N)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )
    acked: set[int] = set()
    buf = b""
    deadline = time.monotonic() + 90
    try:
        while len(acked) < kill_after and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            acked.update(int(line.split()[1]) for line in lines if line.startswith(b"ACK "))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # Acks already written to the pipe before the kill count too.
        rest = proc.stdout.read()
        for line in (buf + rest).split(b"\n"):
            if line.startswith(b"ACK ") and line.strip() != b"ACK":
                try:
                    acked.add(int(line.split()[1]))
                except (IndexError, ValueError):
                    pass  # a torn last line: not a complete ack
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode(errors="replace")
    assert acked, f"child acknowledged nothing: {err[-2000:]}"
    return acked


@pytest.mark.parametrize("seed", [1])
def test_sigkill_keeps_every_acked_item_exactly_once(backend, seed: int) -> None:
    store_url, index_url = backend
    kill_after = random.Random(seed).randint(60, 200)
    acked = run_and_kill(store_url, index_url, kill_after)
    assert len(acked) < N, "the child finished before the kill; test proves nothing"

    store, index = open_store(store_url), open_index(index_url)  # fresh instances
    entries = index.query("t1", 0, 10**13, states=ALL_STATES)
    assert all(e.state == "live" for e in entries)
    samples = pl.concat([decode_segment(store.get(e.key)).samples() for e in entries]) if entries else None
    assert samples is not None
    per_item = samples.group_by("time_ms").agg(pl.len().alias("rows"), pl.col("value").sum().alias("total"))
    got = {t - 1_000_000: (r, v) for t, r, v in per_item.iter_rows()}
    for i in acked:
        assert got.get(i) == (2, 3 * (i + 1)), f"acked item {i}: {got.get(i)}"
    for i, (rows, total) in got.items():  # unacked but present: whole, never partial or doubled
        assert (rows, total) == (2, 3 * (i + 1))
    # Orphans (object written, index entry not) may exist; collection removes only them.
    collect_orphans(store, index, older_than_s=0)
    assert sorted(store.list("segments/")) == sorted(e.key for e in entries)
    merged = select_merge(store, index, "t1", "process_cpu:cpu:nanoseconds:cpu:nanoseconds", [], 0, 10**13)
    assert merged.totals() == [sum(3 * (i + 1) for i in got)]


def test_two_instances_are_stateless(s3_store_url: str, dynamo_index_url: str) -> None:
    """Ingest via one store/index pair, query via another: identical answers."""
    import asyncio

    sys.path.insert(0, str(CHILD.parent))
    from ingest_child import CPU_TYPE, item

    from fleetprof.query import label_values, select_timeline
    from fleetprof.segment.writer import SegmentWriter

    a_store, a_index = open_store(s3_store_url), open_index(dynamo_index_url)

    async def ingest() -> None:
        w = SegmentWriter(a_store, a_index, max_age_s=0.02)
        for k in range(3):
            await asyncio.gather(*(w.submit("t1", [item(10 * k + j)]) for j in range(10)))
        await w.stop()

    asyncio.run(ingest())
    import boto3

    from fleetprof.metastore.index import DynamoIndex
    from fleetprof.storage.objectstore import S3Store

    fresh = boto3.session.Session()  # independent clients: no shared process state
    b_store = S3Store(a_store.bucket, a_store.prefix, client=fresh.client("s3"))  # type: ignore[attr-defined]
    b_index = DynamoIndex(a_index.table, client=fresh.client("dynamodb"))  # type: ignore[attr-defined]
    for st, ix in ((a_store, a_index), (b_store, b_index)):
        p = select_merge(st, ix, "t1", CPU_TYPE, [], 0, 10**13)
        assert p.totals() == [sum(3 * (i + 1) for i in range(30))]
    pa_ = select_merge(a_store, a_index, "t1", CPU_TYPE, [], 0, 10**13)
    pb = select_merge(b_store, b_index, "t1", CPU_TYPE, [], 0, 10**13)
    assert pa_.samples.sort("node_id").equals(pb.samples.sort("node_id"))
    assert pa_.nodes.sort("node_id").equals(pb.nodes.sort("node_id"))
    ta = select_timeline(a_store, a_index, "t1", CPU_TYPE, [], 1_000_000, 1_000_029, 10)
    tb = select_timeline(b_store, b_index, "t1", CPU_TYPE, [], 1_000_000, 1_000_029, 10)
    assert (ta[1] == tb[1]).all() and ta[1].sum() == sum(3 * (i + 1) for i in range(30))
    assert label_values(b_store, b_index, "t1", "service_name", 0, 10**13) == ["svc0", "svc1", "svc2"]
