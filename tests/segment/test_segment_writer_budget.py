"""A profile segment's index entry always fits a DynamoDB item: the writer flushes a batch
before its services (or profile types) pass the entry's budget, refuses a call that passes
it alone (400 at the ingest routes), and compaction never merges past it."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from fastapi.testclient import TestClient
from storage_profiles import CPU_TYPE, make

from fleetprof.formats.pprof_encode import encode_pprof
from fleetprof.formats.proto import push_pb2
from fleetprof.metastore import open_index
from fleetprof.metastore.index import (
    PROFILE_TYPES_BUDGET_BYTES,
    SERVICES_BUDGET_BYTES,
    budget_chunks,
    services_cost,
)
from fleetprof.segment.writer import IngestItem, InvalidItem, SegmentWriter, encode_items
from fleetprof.server.app import create_app
from fleetprof.server.settings import Settings
from fleetprof.storage import open_store
from workers.compact import compact_partition, plan, split_by_service

HOUR_MS = 3_600_000
T0_MS = 1_700_000_000_000


@pytest.fixture
def si(backend):
    return open_store(backend[0]), open_index(backend[1])


def _items(k: int) -> list[IngestItem]:
    """One call: 301 series of 301 services (63 KB of names), one shared by every call."""
    names = ["shared"] + [f"{k}-{j:03d}-" + "s" * 200 for j in range(300)]
    return [IngestItem({"service_name": n}, CPU_TYPE, T0_MS + k, make({f"main;f{k}": 1})) for n in names]


def test_writer_and_compaction_keep_profile_service_lists_within_an_index_entry(si) -> None:
    """Eight calls of 301 services each (500 KB of names together) go to eight segments,
    not one, and compaction (per chunk task, then the whole partition) merges no two."""
    store, index = si
    calls = [_items(k) for k in range(8)]
    assert all(services_cost({i.labels["service_name"] for i in c}) <= SERVICES_BUDGET_BYTES for c in calls)

    async def write() -> None:
        w = SegmentWriter(store, index, max_age_s=3600)
        tasks = []
        for c in calls:
            tasks.append(asyncio.ensure_future(w.submit("t1", c)))
            await asyncio.sleep(0)
        await w.stop()
        await asyncio.gather(*tasks)

    asyncio.run(write())
    entries = index.query("t1", 0, 10**13)
    assert sorted(len(e.services) for e in entries) == [301] * 8
    now_ms = T0_MS + 3 * HOUR_MS
    parts = plan(index, level=1, start_ms=0, end_ms=now_ms, now_ms=now_ms)
    tasks = split_by_service(index, parts)
    assert len(tasks) == 8 and all(len(t.segments) == 1 for t in tasks)
    for t in tasks:
        compact_partition(store, index, t, now_ms=now_ms)
    [part] = plan(index, level=1, start_ms=0, end_ms=now_ms, now_ms=now_ms)  # eight L1 outputs: one bucket
    assert split_by_service(index, [part]) == []
    compact_partition(store, index, part, now_ms=now_ms)
    live = index.query("t1", 0, 10**13)
    assert [e.level for e in live] == [1] * 8 and sum(e.samples for e in live) == 8 * 301
    assert all(services_cost(e.services) <= SERVICES_BUDGET_BYTES for e in live)


def test_a_call_over_the_budget_alone_is_refused_and_nothing_stored(si) -> None:
    store, index = si
    many = [IngestItem({"service_name": f"{j:04d}" + "s" * 2000}, CPU_TYPE, T0_MS, make({"main": 1})) for j in range(40)]
    types = [IngestItem({"service_name": "api"}, f"{j:04d}" + "t" * 500 + ":cpu:ns::", T0_MS, make({"main": 1}))
             for j in range(40)]
    assert services_cost({i.profile_type for i in types}) > PROFILE_TYPES_BUDGET_BYTES

    async def write() -> None:
        w = SegmentWriter(store, index, max_age_s=0.01)
        with pytest.raises(InvalidItem, match=f"40 distinct services take 80{'.' * 3} bytes .* limit of {SERVICES_BUDGET_BYTES} bytes"):
            await w.submit("t1", many)
        with pytest.raises(InvalidItem, match=f"profile types .* limit of {PROFILE_TYPES_BUDGET_BYTES} bytes"):
            await w.submit("t1", types)
        await w.submit("t1", many[:30])  # 60 KB: fits
        await w.stop()

    asyncio.run(write())
    assert [len(e.services) for e in index.query("t1", 0, 10**13)] == [30]


def test_budget_chunks_cut_by_inputs_services_and_types() -> None:
    class E:
        def __init__(self, services: tuple[str, ...], types: tuple[str, ...] = ("cpu",)) -> None:
            self.services, self.profile_types = services, types

    big = "x" * 40_000
    es = [E(("a",)), E(("b", big + "1")), E(("a", big + "2")), E((big + "3",)), E(("c",), ("t" * 20_000,)), E(("c",))]
    assert [[es.index(e) for e in run] for run in budget_chunks(es, 98)] == [[0, 1], [2], [3], [4], [5]]
    assert [len(run) for run in budget_chunks([E(("a", big))] * 3, 98)] == [3]  # names shared: counted once
    assert [len(run) for run in budget_chunks([E(("a",))] * 5, 2)] == [2, 2, 1]
    assert [len(run) for run in budget_chunks([E(("a", big, big + "!"))] * 2, 98)] == [1, 1]  # each over alone


def test_push_over_the_services_budget_answers_400_on_dynamodb(s3_store_url: str, dynamo_index_url: str) -> None:
    """40 series of 2,000-character service names in one push (80 KB of names): 400 with
    ``{code, message}`` naming the limit, nothing stored; 30 of them are accepted."""
    settings = Settings.load(env={}, storage=s3_store_url, index=dynamo_index_url, flush_max_age_s=0.02)

    def body(n: int) -> bytes:
        req = push_pb2.PushRequest()
        raw = encode_pprof(make({"main;work": 10}))
        for j in range(n):
            s = req.series.add()
            for k, v in {"__name__": "process_cpu", "service_name": f"{j:04d}" + "s" * 1996}.items():
                lp = s.labels.add()
                lp.name, lp.value = k, v
            s.samples.add(raw_profile=raw, ID="x")
        return gzip.compress(req.SerializeToString())

    headers = {"content-type": "application/proto", "content-encoding": "gzip"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.post("/push.v1.PusherService/Push", content=body(40), headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["code"] and f"limit of {SERVICES_BUDGET_BYTES} bytes" in r.json()["message"]
        assert open_index(dynamo_index_url).query("anonymous", 0, 10**13) == []
        r = c.post("/push.v1.PusherService/Push", content=body(30), headers=headers)
        assert r.status_code == 200, r.text
    [entry] = open_index(dynamo_index_url).query("anonymous", 0, 10**13)
    assert len(entry.services) == 30


def test_compaction_never_merges_profile_segments_past_the_budget(si) -> None:
    """Eight L0 segments of 301 services each (as eight separate flushes write them):
    one compaction of the partition leaves eight L1 segments, not one of 500 KB of names."""
    store, index = si
    for k in range(8):
        data, entry = encode_items("t1", _items(k), now_ms=T0_MS)
        store.put(entry.key, data)
        index.add(entry)
    now_ms = T0_MS + 3 * HOUR_MS
    [part] = plan(index, level=1, start_ms=0, end_ms=now_ms, now_ms=now_ms)
    compact_partition(store, index, part, now_ms=now_ms)
    live = index.query("t1", 0, 10**13)
    assert [e.level for e in live] == [1] * 8 and sum(e.samples for e in live) == 8 * 301
