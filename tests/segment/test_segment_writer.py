"""SegmentWriter: one object per flush, ack after index, failures invisible, backpressure."""

from __future__ import annotations

import asyncio
import threading

import pytest
from storage_profiles import CPU_TYPE, folded, make

from fleetprof.metastore import ALL_STATES, open_index
from fleetprof.metastore.cleanup import collect_orphans
from fleetprof.model import merge
from fleetprof.query import select_merge
from fleetprof.segment import decode_segment
from fleetprof.segment.writer import Backpressure, IngestItem, SegmentWriter
from fleetprof.storage import open_store


def item(i: int, svc: str = "api") -> IngestItem:
    return IngestItem({"service_name": svc}, CPU_TYPE, 1_000 + i, make({f"main;f{i % 3}": i + 1, "main": 1}))


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def si(backend):
    return open_store(backend[0]), open_index(backend[1])


def test_concurrent_submits_share_one_object(si) -> None:
    store, index = si

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=0.2)
        await asyncio.gather(*(w.submit("t1", [item(i)]) for i in range(20)))
        await w.stop()

    run(go())
    objects = list(store.list("segments/"))
    entries = index.query("t1", 0, 10**13)
    assert len(objects) == 1 and [e.key for e in entries] == objects
    e = entries[0]
    assert (e.min_time_ms, e.max_time_ms, e.services) == (1_000, 1_019, ("api",))
    seg = decode_segment(store.get(e.key))
    assert seg.meta["samples"] == e.samples
    got = select_merge(store, index, "t1", CPU_TYPE, [], 0, 10**13)
    assert folded(got) == folded(merge([item(i).profile for i in range(20)]))


def test_tenants_get_separate_segments(si) -> None:
    store, index = si

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=0.05)
        await asyncio.gather(w.submit("t1", [item(1)]), w.submit("t2", [item(2)]))
        await w.stop()

    run(go())
    assert len(index.query("t1", 0, 10**13)) == 1 and len(index.query("t2", 0, 10**13)) == 1
    assert folded(select_merge(store, index, "t2", CPU_TYPE, [], 0, 10**13)) == folded(item(2).profile)


def test_max_bytes_flushes_without_waiting_for_age(si) -> None:
    store, index = si

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=3600, max_bytes=1)
        await asyncio.wait_for(w.submit("t1", [item(1)]), 30)
        await w.stop()

    run(go())
    assert len(index.query("t1", 0, 10**13)) == 1


def test_stop_flushes_pending(si) -> None:
    store, index = si

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=3600)
        task = asyncio.ensure_future(w.submit("t1", [item(1)]))
        await asyncio.sleep(0.05)
        assert not task.done()
        await w.stop()
        await task

    run(go())
    assert len(index.query("t1", 0, 10**13)) == 1


class FailingStore:
    """Wraps a store; ``put`` (or ``delete``) raises on demand."""

    def __init__(self, inner, *, fail_put=False, fail_delete=False) -> None:
        self.inner, self.fail_put, self.fail_delete, self.url = inner, fail_put, fail_delete, inner.url
        self.gate: threading.Event | None = None

    def put(self, key, data):
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_put:
            raise OSError("injected put failure")
        self.inner.put(key, data)

    def get(self, key):
        return self.inner.get(key)

    def delete(self, key):
        if self.fail_delete:
            raise OSError("injected delete failure")
        self.inner.delete(key)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def ping(self):
        self.inner.ping()


class FailingIndex:
    def __init__(self, inner) -> None:
        self.inner, self.url = inner, inner.url

    def add(self, entry):
        raise RuntimeError("injected index failure")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_store_failure_fails_every_waiter_and_leaves_nothing(si) -> None:
    store, index = si
    bad = FailingStore(store, fail_put=True)

    async def go() -> list:
        w = SegmentWriter(bad, index, max_age_s=0.05)
        res = await asyncio.gather(*(w.submit("t1", [item(i)]) for i in range(5)), return_exceptions=True)
        await w.stop()
        return res

    res = run(go())
    assert all(isinstance(r, OSError) for r in res)
    assert list(store.list()) == [] and index.query("t1", 0, 10**13, states=ALL_STATES) == []


def test_index_failure_deletes_object(si) -> None:
    store, index = si

    async def go() -> None:
        w = SegmentWriter(store, FailingIndex(index), max_age_s=0.05)
        with pytest.raises(RuntimeError, match="injected"):
            await w.submit("t1", [item(1)])
        await w.stop()

    run(go())
    assert list(store.list()) == [] and index.query("t1", 0, 10**13, states=ALL_STATES) == []


def test_orphan_left_by_failed_cleanup_is_collected(si) -> None:
    store, index = si
    bad = FailingStore(store, fail_delete=True)

    async def go() -> None:
        w = SegmentWriter(bad, FailingIndex(index), max_age_s=0.05)
        with pytest.raises(RuntimeError):
            await w.submit("t1", [item(1)])
        w2 = SegmentWriter(store, index, max_age_s=0.05)
        await w2.submit("t1", [item(2)])  # a good segment that must survive collection
        await w.stop()
        await w2.stop()

    run(go())
    assert len(list(store.list("segments/"))) == 2
    assert collect_orphans(store, index, older_than_s=3600) == []  # too young: may be in flight
    removed = collect_orphans(store, index, older_than_s=0)
    assert len(removed) == 1
    assert list(store.list("segments/")) == [e.key for e in index.query("t1", 0, 10**13)]
    assert folded(select_merge(store, index, "t1", CPU_TYPE, [], 0, 10**13)) == folded(item(2).profile)


def test_backpressure_when_queue_full(si) -> None:
    store, index = si
    slow = FailingStore(store)
    slow.gate = threading.Event()

    async def go() -> None:
        w = SegmentWriter(slow, index, max_age_s=0.01, max_queue=3, retry_after_s=2.5)
        first = asyncio.ensure_future(w.submit("t1", [item(0), item(1), item(2)]))
        await asyncio.sleep(0.1)
        with pytest.raises(Backpressure) as exc:
            await w.submit("t1", [item(3)])
        assert exc.value.retry_after_s == 2.5
        assert w.pending == 3
        slow.gate.set()
        await first
        await w.submit("t1", [item(4)])  # accepted again once drained
        await w.stop()

    run(go())
    assert len(index.query("t1", 0, 10**13)) == 2


def test_invalid_tenant_and_labels_rejected(si) -> None:
    store, index = si

    async def go() -> None:
        w = SegmentWriter(store, index)
        with pytest.raises(ValueError):
            await w.submit("../etc", [item(1)])
        with pytest.raises(ValueError):
            await w.submit("t1", [IngestItem({"env": "x"}, CPU_TYPE, 0, item(1).profile)])
        await w.stop()

    run(go())
    assert list(store.list()) == []


def test_flushed_segments_are_cached_for_queries(tmp_path) -> None:
    """After the ack the writer leaves the decoded segment in the shared cache, and the
    query path serves it from there without reading the object again."""
    import asyncio

    import numpy as np

    from fleetprof.metastore.index import open_index
    from fleetprof.model import Stacks, ValueType, build
    from fleetprof.query.select import select_merge
    from fleetprof.segment.cache import SEGMENT_CACHE, cache_key
    from fleetprof.segment.writer import IngestItem, SegmentWriter
    from fleetprof.storage.objectstore import open_store

    (tmp_path / "d").mkdir()
    store = open_store((tmp_path / "d").as_uri())
    index = open_index(f"sqlite:///{tmp_path / 'i.db'}")
    prof = build(Stacks(["main", "work"], ["", ""], np.array([0, 2]), np.array([0, 1]), np.array([[7]])), [ValueType("cpu", "nanoseconds")])
    pt = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    SEGMENT_CACHE.clear()

    async def ingest() -> None:
        w = SegmentWriter(store, index, max_age_s=0.01)
        w.start()
        await w.submit("t", [IngestItem({"service_name": "svc"}, pt, 1_000, prof)])
        await w.stop()

    asyncio.run(ingest())
    (entry,) = index.query("t", 0, 10_000)
    assert SEGMENT_CACHE.get(cache_key(store, entry.key)) is not None
    reads = []
    real_get = store.get
    store.get = lambda key: reads.append(key) or real_get(key)  # type: ignore[method-assign]
    assert select_merge(store, index, "t", pt, [], 0, 10_000).totals() == [7]
    assert reads == []


def test_cached_segments_answer_flame_graphs_and_timelines_without_sample_reads(tmp_path, monkeypatch) -> None:
    """The writer caches each segment with the columns every query reads decoded, so the
    flame graph and timeline of what this server ingested read no sample or series column
    (only the call tree of the few segments that cover the leaves is read)."""
    import numpy as np

    from fleetprof.metastore.index import open_index
    from fleetprof.model import Stacks, ValueType, build
    from fleetprof.query.select import select_merge, select_timeline
    from fleetprof.query.selector import parse_query
    from fleetprof.segment import format as format_mod
    from fleetprof.segment.cache import SEGMENT_CACHE
    from fleetprof.segment.writer import IngestItem, SegmentWriter
    from fleetprof.storage.objectstore import open_store

    (tmp_path / "d").mkdir()
    store = open_store((tmp_path / "d").as_uri())
    index = open_index(f"sqlite:///{tmp_path / 'i.db'}")
    prof = build(Stacks(["main", "work"], ["", ""], np.array([0, 2]), np.array([0, 1]), np.array([[7]])), [ValueType("cpu", "nanoseconds")])
    pt = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    SEGMENT_CACHE.clear()

    async def ingest() -> None:
        w = SegmentWriter(store, index, max_age_s=0.01)
        w.start()
        await w.submit("t", [IngestItem({"service_name": "svc", "pod": "a"}, pt, 1_000, prof),
                             IngestItem({"service_name": "other"}, pt, 2_000, prof)])
        await w.stop()

    asyncio.run(ingest())

    real = format_mod._Body.read

    def no_read(self, columns, row_groups=None):
        assert not [c for c in columns if c.startswith(("samples.", "series."))], columns
        return real(self, columns, row_groups)

    monkeypatch.setattr(format_mod._Body, "read", no_read)
    _, svc = parse_query(pt + '{service_name="svc"}')
    assert select_merge(store, index, "t", pt, svc, 0, 10_000).totals() == [7]
    assert select_timeline(store, index, "t", pt, svc, 0, 9_999, 1_000)[1].tolist() == [0, 7, 0, 0, 0, 0, 0, 0, 0, 0]
    assert select_timeline(store, index, "t", pt, [], 0, 9_999, 5_000)[1].tolist() == [14, 0]
