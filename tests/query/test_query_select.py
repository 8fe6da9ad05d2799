"""select_merge / timeline / labels / retention on both backends."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segment"))

from storage_profiles import ALLOC_TYPE, CPU_TYPE, folded, make  # noqa: E402

from fleetprof.metastore import ALL_STATES, open_index  # noqa: E402
from fleetprof.metastore.cleanup import apply_retention  # noqa: E402
from fleetprof.model import merge  # noqa: E402
from fleetprof.query import (  # noqa: E402
    label_names,
    label_values,
    parse_query,
    profile_types,
    select_merge,
    select_timeline,
    services,
)
from fleetprof.segment.writer import IngestItem, SegmentWriter  # noqa: E402
from fleetprof.storage import open_store  # noqa: E402

PA = make({"main;handle;json": 40, "main;handle;hash": 10, "main;gc": 3})
PB = make({"main;handle;json": 5, "main;regex": 7})
PC = make({"main;lock;wait": 11})
PM = make({"main;alloc": 4096})

ITEMS = [
    ("t1", IngestItem({"service_name": "api", "env": "prod", "pod": "a"}, CPU_TYPE, 10_000, PA)),
    ("t1", IngestItem({"service_name": "api", "env": "dev", "pod": "b"}, CPU_TYPE, 20_000, PB)),
    ("t1", IngestItem({"service_name": "worker", "env": "prod"}, CPU_TYPE, 30_000, PC)),
    ("t1", IngestItem({"service_name": "api", "env": "prod", "pod": "a"}, ALLOC_TYPE, 30_000, PM)),
    ("t1", IngestItem({"service_name": "api", "env": "prod", "pod": "a"}, CPU_TYPE, 90_000, PB)),
    ("t2", IngestItem({"service_name": "secret"}, CPU_TYPE, 10_000, PC)),
]


@pytest.fixture
def data(backend):
    store, index = open_store(backend[0]), open_index(backend[1])

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=0.01)
        for tenant, it in ITEMS:  # one segment per item: merges span segments
            await w.submit(tenant, [it])
        await w.stop()

    asyncio.run(go())
    return store, index


def q(data, selector: str, start: int = 0, end: int = 100_000):
    ptype, ms = parse_query(selector)
    return folded(select_merge(*data, "t1", ptype, ms, start, end))


def test_merge_all_and_by_matchers(data) -> None:
    assert q(data, CPU_TYPE) == folded(merge([PA, PB, PC, PB]))
    assert q(data, CPU_TYPE + '{service_name="api"}') == folded(merge([PA, PB, PB]))
    assert q(data, CPU_TYPE + '{service_name="api", env="prod"}') == folded(merge([PA, PB]))
    assert q(data, CPU_TYPE + '{env!="prod"}') == folded(PB)
    assert q(data, CPU_TYPE + '{pod=~"a|b"}') == folded(merge([PA, PB, PB]))
    assert q(data, CPU_TYPE + '{pod!~".+"}') == folded(PC)  # absent label = ""
    assert q(data, CPU_TYPE + '{service_name="nope"}') == {}
    assert q(data, ALLOC_TYPE) == folded(PM)


def test_time_range_is_inclusive_and_tenant_isolated(data) -> None:
    assert q(data, CPU_TYPE, 20_000, 30_000) == folded(merge([PB, PC]))
    assert q(data, CPU_TYPE, 20_001, 29_999) == {}
    store, index = data
    assert folded(select_merge(store, index, "t2", CPU_TYPE, [], 0, 100_000)) == folded(PC)
    assert folded(select_merge(store, index, "t3", CPU_TYPE, [], 0, 100_000)) == {}


def test_merged_profile_shape(data) -> None:
    p = select_merge(*data, "t1", CPU_TYPE, [], 0, 100_000)
    assert [str(s) for s in p.sample_types] == ["cpu:nanoseconds"]
    assert str(p.period_type) == "cpu:nanoseconds"
    assert p.totals() == [sum(x.totals()[0] for x in (PA, PB, PC, PB))]
    assert p.samples["node_id"].is_unique().all()
    assert set(p.samples["node_id"].to_list()) <= set(p.nodes["node_id"].to_list())


def test_timeline(data) -> None:
    times, values = select_timeline(*data, "t1", CPU_TYPE, [], 0, 99_999, 30_000)
    assert times.tolist() == [0, 30_000, 60_000, 90_000]
    tot = lambda p: p.totals()[0]  # noqa: E731
    assert values.tolist() == [tot(PA) + tot(PB), tot(PC), 0, tot(PB)]
    ptype, ms = parse_query(CPU_TYPE + '{env="dev"}')
    _, v = select_timeline(*data, "t1", ptype, ms, 0, 99_999, 30_000)
    assert v.tolist() == [tot(PB), 0, 0, 0]


def test_labels_types_services(data) -> None:
    assert label_names(*data, "t1", 0, 100_000) == ["env", "pod", "service_name"]
    assert label_values(*data, "t1", "env", 0, 100_000) == ["dev", "prod"]
    ms = parse_query(CPU_TYPE + '{service_name="worker"}')[1]
    assert label_names(*data, "t1", 0, 100_000, ms) == ["env", "service_name"]
    assert label_values(*data, "t1", "pod", 0, 100_000, ms) == []
    assert profile_types(*data, "t1", 0, 100_000) == sorted([CPU_TYPE, ALLOC_TYPE])
    assert services(*data, "t1", 0, 100_000) == ["api", "worker"]
    assert services(*data, "t1", 80_000, 100_000) == ["api"]
    assert services(*data, "t2", 0, 100_000) == ["secret"]


def test_retention_deletes_expired_segments(data) -> None:
    store, index = data
    before = len(list(store.list("segments/t1/")))
    assert apply_retention(store, index, "t1", 30_000) == 2  # the items at 10 s and 20 s
    assert len(list(store.list("segments/t1/"))) == before - 2
    assert q(data, CPU_TYPE) == folded(merge([PC, PB]))
    assert all(e.min_time_ms >= 30_000 for e in index.query("t1", 0, 10**13, states=ALL_STATES))
    assert apply_retention(store, index, "t1", 30_000) == 0  # idempotent
    assert folded(select_merge(store, index, "t2", CPU_TYPE, [], 0, 100_000)) == folded(PC)  # other tenant kept


def test_retention_finishes_tombstones(data) -> None:
    store, index = data
    e = index.query("t1", 0, 15_000)[0]
    assert index.set_state("t1", e.segment_id, "live", "tombstoned")  # crash after tombstoning
    assert apply_retention(store, index, "t1", 15_000) == 1
    assert index.get("t1", e.segment_id) is None
    with pytest.raises(KeyError):
        store.get(e.key)


class _CountingStore:
    """Wraps a store and counts ``get`` calls (same url: same cache keys)."""

    def __init__(self, store) -> None:
        self.inner, self.url, self.gets = store, store.url, 0

    def get(self, key: str) -> bytes:
        self.gets += 1
        return self.inner.get(key)


def test_repeated_query_is_served_from_the_segment_cache(data) -> None:
    from fleetprof.segment.cache import SEGMENT_CACHE

    store, index = data
    SEGMENT_CACHE.clear()
    counting = _CountingStore(store)
    first = folded(select_merge(counting, index, "t1", CPU_TYPE, [], 0, 100_000))
    assert counting.gets == 4  # the four CPU segments of t1
    assert len(SEGMENT_CACHE) == 4 and SEGMENT_CACHE.bytes > 0
    again = folded(select_merge(counting, index, "t1", CPU_TYPE, [], 0, 100_000))
    assert again == first == folded(merge([PA, PB, PC, PB]))
    assert counting.gets == 4  # nothing read again
    # Cached segments serve other selections over them too (filters are re-applied).
    ptype, ms = parse_query(CPU_TYPE + '{env="dev"}')
    assert folded(select_merge(counting, index, "t1", ptype, ms, 0, 100_000)) == folded(PB)
    assert folded(select_merge(counting, index, "t1", CPU_TYPE, [], 20_000, 30_000)) == folded(merge([PB, PC]))
    assert counting.gets == 4


def test_segment_cache_is_bounded_by_bytes(data) -> None:
    from fleetprof.query.select import open_segment
    from fleetprof.segment.cache import SegmentCache

    store, index = data
    segs = [(e, open_segment(store, e)) for e in index.query("t1", 0, 10**13)]
    size = [s.nbytes() + SegmentCache.ENTRY_OVERHEAD for _, s in segs]
    cache = SegmentCache(size[-1] + size[-2])  # room for exactly the last two
    for e, s in segs:
        cache.put(("u", e.key), s)
    assert len(cache) == 2 and cache.bytes <= cache.max_bytes
    assert cache.get(("u", segs[0][0].key)) is None  # least recently used went first
    assert cache.get(("u", segs[-1][0].key)) is segs[-1][1]
    SegmentCache(10).put(("u", "k"), segs[0][1])  # larger than the cache: not kept, no error


# Many segments with overlapping but different trees: the merged call tree is built from
# several covering segments at once (node tables concatenated), some of them format v2.
_FRAMES = ["main", "serve", "handle", "json", "hash", "db", "query", "lock", "wait", "gc", "regex", "io"]
DEEP = [
    make({";".join(_FRAMES[(i * k) % 12] for k in range(1, 2 + (i + j) % 9)): 1 + (i * 7 + j) % 13 for j in range(6)}
         | {"": i % 2})
    for i in range(14)
]


@pytest.fixture
def mixed(backend, monkeypatch):
    """One segment per profile; every third written as format v2 (an older writer)."""
    from functools import partial

    import fleetprof.segment.writer as writer_mod
    from fleetprof.segment.format import encode_segment

    store, index = open_store(backend[0]), open_index(backend[1])

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=0.01)
        for i, p in enumerate(DEEP):
            monkeypatch.setattr(writer_mod, "encode_segment", partial(encode_segment, format_version=2 if i % 3 == 0 else 3))
            labels = {"service_name": "api" if i % 2 else "worker", "pod": f"p{i % 4}"}
            await w.submit("t1", [IngestItem(labels, CPU_TYPE, 1_000 * (i + 1), p)])
            await w.flush()
        await w.stop()

    asyncio.run(go())
    return store, index


def test_cold_and_warm_queries_over_v2_and_v3_segments_agree(mixed) -> None:
    from fleetprof.segment.cache import SEGMENT_CACHE

    store, index = mixed
    versions = {int.from_bytes(store.get(e.key)[4:6], "little") for e in index.query("t1", 0, 10**13)}
    assert versions == {2, 3}
    cases = [
        (CPU_TYPE, folded(merge(DEEP))),
        (CPU_TYPE + '{service_name="api"}', folded(merge(DEEP[1::2]))),
        (CPU_TYPE + '{pod=~"p[02]"}', folded(merge(DEEP[0::2]))),
    ]
    for sel, want in cases:
        ptype, ms = parse_query(sel)
        writer_warmed = folded(select_merge(store, index, "t1", ptype, ms, 0, 100_000))
        SEGMENT_CACHE.clear()
        cold = folded(select_merge(store, index, "t1", ptype, ms, 0, 100_000))
        warm = folded(select_merge(store, index, "t1", ptype, ms, 0, 100_000))
        assert writer_warmed == cold == warm == want, sel
    # Partly covered segments (time filter not proven by their metadata) and a timeline.
    ptype, ms = parse_query(CPU_TYPE)
    assert folded(select_merge(store, index, "t1", ptype, ms, 3_000, 9_000)) == folded(merge(DEEP[2:9]))
    times, values = select_timeline(store, index, "t1", ptype, ms, 0, 20_000, 5_000)
    want = [sum(int(p.samples["v0"].sum()) for k, p in enumerate(DEEP) if lo <= 1_000 * (k + 1) < lo + 5_000)
            for lo in times.tolist()]
    assert values.tolist() == want


def test_tree_of_checks_leaf_ids_across_segments(mixed, monkeypatch) -> None:
    """A segment whose stored leaf ids disagree with its node table is reported, also when
    its node table is concatenated with others'."""
    from fleetprof.model.hashing import ROOT_ID
    from fleetprof.query.select import _tree_of, open_segment
    from fleetprof.segment.cache import SEGMENT_CACHE
    from fleetprof.segment.format import Segment, SegmentCorrupt

    store, index = mixed
    SEGMENT_CACHE.clear()
    segs = [open_segment(store, e) for e in index.query("t1", 0, 10**13)]
    bad, other = segs[-1], segs[0]
    assert len(bad.leaf_ids()) > 1 and set(bad.leaf_ids().tolist()) - set(other.leaf_ids().tolist())
    leaves = np.unique(np.concatenate([bad.leaf_ids(), other.leaf_ids()]))
    nodes, _ = _tree_of(leaves, [other, bad])
    assert set(leaves.tolist()) - {ROOT_ID} <= set(nodes["node_id"].to_list())
    real = Segment.leaf_ids

    def tampered(self):
        ids = real(self)
        return np.roll(ids, 1) if self is bad else ids

    monkeypatch.setattr(Segment, "leaf_ids", tampered)
    with pytest.raises(SegmentCorrupt):
        _tree_of(leaves, [other, bad])


def test_fetch_objects_keeps_order_and_raises_for_remote_stores() -> None:
    import random
    import time

    from fleetprof.query.select import fetch_objects

    class Remote:
        url = "s3://bucket/prefix/"

        def get(self, key: str) -> bytes:
            time.sleep(random.random() / 500)
            if key == "gone":
                raise KeyError(key)
            return key.encode()

    keys = [f"k{i}" for i in range(40)]
    assert list(fetch_objects(Remote(), keys)) == [k.encode() for k in keys]
    with pytest.raises(KeyError):
        list(fetch_objects(Remote(), [*keys[:5], "gone", *keys[5:]]))


# A segment holding several services (as a flush of a busy server does), then segments of
# one service.
SHARED = [
    IngestItem({"service_name": "api", "pod": "a"}, CPU_TYPE, 10_000, PA),
    IngestItem({"service_name": "api", "pod": "b"}, CPU_TYPE, 12_000, PB),
    IngestItem({"service_name": "worker", "pod": "a"}, CPU_TYPE, 11_000, PC),
    IngestItem({"service_name": "worker", "pod": "b"}, CPU_TYPE, 11_000, PB),
    IngestItem({"service_name": "api", "pod": "a"}, ALLOC_TYPE, 10_000, PM),
]


@pytest.fixture
def shared(backend):
    store, index = open_store(backend[0]), open_index(backend[1])

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=0.01)
        await w.submit("t1", SHARED[:3])
        await w.flush()
        await w.submit("t1", SHARED[3:])
        await w.submit("t1", [IngestItem({"service_name": "api", "pod": "a"}, CPU_TYPE, 40_000, PC)])
        await w.stop()

    asyncio.run(go())
    return store, index


def test_one_service_selectors_read_no_index_summary(shared, monkeypatch) -> None:
    """A flame graph or timeline of one service (the explorer's first view) filters series
    on each segment's series table: no index summary is parsed, also in segments shared
    with other services, cold or warm."""
    import fleetprof.metastore.index as index_mod
    from fleetprof.segment.cache import SEGMENT_CACHE

    store, index = shared

    def no_parse(blob):
        raise AssertionError("an index summary was parsed")

    monkeypatch.setattr(index_mod, "_unpack_series", no_parse)
    api = CPU_TYPE + '{service_name="api"}'
    for _ in ("writer-warmed", "cold"):
        assert q((store, index), api) == folded(merge([PA, PB, PC]))
        assert q((store, index), api, 0, 30_000) == folded(merge([PA, PB]))
        assert q((store, index), api, 11_000, 12_000) == folded(PB)  # the segment's range cut
        assert q((store, index), CPU_TYPE + '{service_name="worker"}') == folded(merge([PC, PB]))
        assert q((store, index), ALLOC_TYPE + '{service_name="api"}') == folded(PM)
        ptype, ms = parse_query(api)
        _, values = select_timeline(store, index, "t1", ptype, ms, 0, 49_999, 10_000)
        tot = lambda p: p.totals()[0]  # noqa: E731
        assert values.tolist() == [0, tot(PA) + tot(PB), 0, 0, tot(PC)]
        SEGMENT_CACHE.clear()
    monkeypatch.undo()
    assert q((store, index), CPU_TYPE + '{pod="b", service_name="worker"}') == folded(PB)  # not one service
    assert q((store, index), CPU_TYPE + '{service_name="api", service_name="worker"}') == {}
    assert q((store, index), CPU_TYPE) == folded(merge([PA, PB, PC, PB, PC]))


def test_concurrent_queries_decode_each_segment_once(data, monkeypatch) -> None:
    """A segment another query is decoding is waited for and taken from the cache, not
    decoded again; if that load fails, the waiting query decodes it itself."""
    import threading
    import time

    import fleetprof.query.select as select_mod
    from fleetprof.segment.cache import SEGMENT_CACHE, cache_key

    store, index = data
    decoded: list[int] = []
    real = select_mod.decode_segment
    monkeypatch.setattr(select_mod, "decode_segment", lambda b: decoded.append(threading.get_ident()) or real(b))
    entries = index.query("t1", 0, 100_000, profile_types=[CPU_TYPE])
    want = folded(merge([PA, PB, PC, PB]))
    for other_load_fails in (False, True):
        SEGMENT_CACHE.clear()
        decoded.clear()
        key = cache_key(store, entries[0].key)
        assert SEGMENT_CACHE.claim(key) == (None, None)  # "another query" is loading this one
        _, event = SEGMENT_CACHE.claim(key)
        assert event is not None and not event.is_set()
        got: list[dict[str, int]] = []
        t = threading.Thread(target=lambda out=got: out.append(q(data, CPU_TYPE)))
        t.start()
        deadline = time.monotonic() + 30
        while len(decoded) < len(entries) - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert t.is_alive() and len(decoded) == len(entries) - 1  # the others are done; it waits
        if not other_load_fails:
            SEGMENT_CACHE.put(key, real(store.get(entries[0].key)))
        SEGMENT_CACHE.release(key)
        t.join(30)
        assert got == [want]
        assert len(decoded) == len(entries) - (0 if other_load_fails else 1)
        assert event.is_set() and SEGMENT_CACHE.get(key) is not None
