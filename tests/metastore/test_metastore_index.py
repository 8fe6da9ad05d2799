"""Index contract: the same tests on SQLite and on DynamoDB (moto)."""

from __future__ import annotations

import threading

import pytest

from fleetprof.metastore import ALL_STATES, IndexConflict, SegmentEntry, open_index
from fleetprof.metastore.index import SwapConflict


@pytest.fixture
def index(backend):
    return open_index(backend[1])


def entry(sid: str, lo: int, hi: int, *, tenant: str = "t1", level: int = 0, svc: str = "api", **kw) -> SegmentEntry:
    return SegmentEntry(
        tenant=tenant, segment_id=sid, level=level, services=(svc,), profile_types=("process_cpu:cpu:nanoseconds:cpu:nanoseconds",),
        min_time_ms=lo, max_time_ms=hi, key=f"segments/{tenant}/L{level}/{sid}.fps", bytes=100, samples=10,
        created_ms=lo, series=({"service_name": svc, "env": "prod"},), **kw,
    )


def ids(entries) -> list[str]:
    return [e.segment_id for e in entries]


def test_add_get_roundtrip(index) -> None:
    index.ping()
    e = entry("A", 1000, 2000)
    index.add(e)
    assert index.get("t1", "A") == e
    assert index.get("t1", "missing") is None
    assert index.get("t2", "A") is None
    with pytest.raises(IndexConflict):
        index.add(entry("A", 5000, 6000))
    assert index.get("t1", "A") == e  # the conflicting add changed nothing


def test_query_overlap_filters_and_order(index) -> None:
    index.add(entry("B", 2000, 2999))
    index.add(entry("A", 1000, 1999))
    index.add(entry("C", 3000, 3999, svc="db"))
    index.add(entry("D", 500, 5000, level=1))
    index.add(entry("X", 1000, 2000, tenant="t2"))
    assert ids(index.query("t1", 0, 10_000)) == ["D", "A", "B", "C"]
    assert ids(index.query("t1", 1999, 2000)) == ["D", "A", "B"]  # inclusive bounds
    assert ids(index.query("t1", 4000, 4500)) == ["D"]
    assert ids(index.query("t1", 6000, 7000)) == []
    assert ids(index.query("t1", 0, 10_000, services=["db"])) == ["C"]
    assert ids(index.query("t1", 0, 10_000, level=0)) == ["A", "B", "C"]
    assert ids(index.query("t1", 0, 10_000, level=1)) == ["D"]
    assert ids(index.query("t1", 0, 10_000, profile_types=["memory:alloc_space:bytes:space:bytes"])) == []
    assert ids(index.query("t2", 0, 10_000)) == ["X"]
    assert index.tenants() == ["t1", "t2"]


def test_set_state_is_conditional(index) -> None:
    index.add(entry("A", 1000, 2000))
    assert index.set_state("t1", "A", "live", "tombstoned")
    assert not index.set_state("t1", "A", "live", "compacted")
    assert not index.set_state("t1", "missing", "live", "compacted")
    assert ids(index.query("t1", 0, 10_000)) == []
    assert [e.state for e in index.query("t1", 0, 10_000, states=ALL_STATES)] == ["tombstoned"]
    with pytest.raises(ValueError):
        index.set_state("t1", "A", "tombstoned", "bogus")


def test_swap_is_atomic_and_idempotent(index) -> None:
    for i, sid in enumerate(["A", "B", "C"]):
        index.add(entry(sid, 1000 * i, 1000 * i + 999))
    new = entry("L1", 0, 2999, level=1, state="compacted")  # swap forces live
    index.swap("t1", new, ["A", "B", "C"])
    assert ids(index.query("t1", 0, 10_000)) == ["L1"]
    assert index.get("t1", "L1").state == "live"
    assert {e.segment_id: e.state for e in index.query("t1", 0, 10_000, states=ALL_STATES)} == {
        "A": "compacted", "B": "compacted", "C": "compacted", "L1": "live",
    }
    index.swap("t1", new, ["A", "B", "C"])  # re-run after a crash: same result, no error
    assert ids(index.query("t1", 0, 10_000)) == ["L1"]
    assert len(index.query("t1", 0, 10_000, states=ALL_STATES)) == 4


def test_concurrent_compactors_cannot_both_go_live(index) -> None:
    """Two compactors of the same inputs: the second swap conflicts and changes nothing,
    so no sample is counted twice (inputs missing or no longer live both conflict)."""
    index.add(entry("A", 0, 999))
    index.add(entry("B", 1000, 1999))
    index.swap("t1", entry("L1a", 0, 1999, level=1), ["A", "B"])
    with pytest.raises(SwapConflict):
        index.swap("t1", entry("L1b", 0, 1999, level=1), ["A", "B"])
    assert index.get("t1", "L1b") is None
    assert ids(index.query("t1", 0, 10_000)) == ["L1a"]
    with pytest.raises(SwapConflict):
        index.swap("t1", entry("L1c", 0, 1999, level=1), ["gone"])
    assert index.get("t1", "L1c") is None


def test_swap_after_partial_crash(index) -> None:
    """A crash after the new entry was written (olds still live) converges on re-run."""
    index.add(entry("A", 0, 999))
    index.add(entry("B", 1000, 1999))
    index.add(entry("L1", 0, 1999, level=1))
    index.swap("t1", entry("L1", 0, 1999, level=1), ["A", "B"])
    assert ids(index.query("t1", 0, 10_000)) == ["L1"]


def test_delete_idempotent(index) -> None:
    index.add(entry("A", 1000, 2000))
    index.delete("t1", "A")
    index.delete("t1", "A")
    assert index.get("t1", "A") is None
    assert index.query("t1", 0, 10_000, states=ALL_STATES) == []
    index.add(entry("A", 1000, 2000))  # the id is free again


def test_series_summary_roundtrip(index) -> None:
    series = tuple({"service_name": "api", "pod": f"p{i}", "ünï": "cødé"} for i in range(50))
    e = entry("A", 0, 1)
    e = SegmentEntry(**{**e.__dict__, "series": series})
    index.add(e)
    got = index.get("t1", "A")
    assert got.series == series and got.series_complete


def test_concurrent_adds_from_threads(index) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(10):
                index.add(entry(f"S{k}-{i}", i, i))
        except BaseException as ex:  # pragma: no cover - reported below
            errors.append(ex)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(index.query("t1", 0, 100)) == 40


def test_two_instances_share_state(backend) -> None:
    """Statelessness at the index level: a second, independent instance sees the writes."""
    a, b = open_index(backend[1]), open_index(backend[1])
    a.add(entry("A", 0, 10))
    assert ids(b.query("t1", 0, 10)) == ["A"]
    assert b.set_state("t1", "A", "live", "compacted")
    assert a.get("t1", "A").state == "compacted"


def test_open_index_urls(tmp_path) -> None:
    for bad in ("sqlite://relative.db", "dynamodb://", "postgres://x"):
        with pytest.raises(ValueError):
            open_index(bad)


def test_series_summaries_are_parsed_on_first_use(index) -> None:
    from fleetprof.metastore.index import PackedSeries

    series = tuple({"service_name": "api", "pod": f"p{i}"} for i in range(5))
    index.add(SegmentEntry(**{**entry("A", 0, 1).__dict__, "series": series}))
    index.add(entry("B", 2, 3))
    got = index.query("t1", 0, 10)
    assert isinstance(got[0].series, PackedSeries) and got[0].series._items is None  # not parsed by the read
    assert got[0].series == series and series == got[0].series and got[0].series != series[:1]
    assert len(got[0].series) == 5 and got[0].series[1] == series[1] and list(got[0].series) == list(series)
    assert got[0].to_json()["series"] == [dict(s) for s in series]
    assert got[0] == index.get("t1", "A") and got[0] != got[1]
    assert got[1].series == ({"service_name": "api", "env": "prod"},)
    # An entry read back can be written again (compaction, copies) with its summary intact.
    index.add(SegmentEntry(**{**got[0].__dict__, "segment_id": "C"}))
    assert index.get("t1", "C").series == series
    assert PackedSeries(None) == () and len(PackedSeries(b"")) == 0


def test_packed_series_mentions_without_parsing() -> None:
    from fleetprof.metastore.index import PackedSeries, _pack_series

    blob, _ = _pack_series(({"service_name": "api", "__aggregation__": "average"}, {"service_name": "db"}))
    packed = PackedSeries(blob)
    assert packed.mentions("__aggregation__") and packed._items is None  # decided on the raw text
    assert not packed.mentions("region")
    list(packed)  # parsed: the same answers from the dicts
    assert packed.mentions("__aggregation__") and packed.mentions("avera") and not packed.mentions("region")
    assert not PackedSeries(None).mentions("x")
