"""Orphan collection and retention against index entries of every time range (data far in
the future, before the epoch), on file+sqlite and s3+dynamodb."""

from __future__ import annotations

import time

from fleetprof.metastore.cleanup import HORIZON_MS, apply_retention, collect_orphans, expired
from fleetprof.metastore.index import MAX_TIME_MS, SegmentEntry, open_index
from fleetprof.segment.keys import new_segment_id, segment_key
from fleetprof.storage.objectstore import open_store

DAY = 86_400_000
NOW = time.time_ns() // 1_000_000


def _segment(store, index, tenant: str, lo: int, hi: int, written: int, *, created: bool = True) -> SegmentEntry:  # noqa: ANN001
    sid = new_segment_id(written)
    e = SegmentEntry(tenant=tenant, segment_id=sid, level=0, services=("api",), profile_types=("cpu",),
                     min_time_ms=lo, max_time_ms=hi, key=segment_key(tenant, 0, sid, lo), bytes=1, samples=1,
                     created_ms=written if created else 0)
    store.put(e.key, b"segment")
    index.add(e)
    return e


def test_orphan_collection_keeps_referenced_segments_of_any_time(backend) -> None:  # noqa: ANN001
    store, index = open_store(backend[0]), open_index(backend[1])
    old = NOW - 2 * DAY
    kept = [
        _segment(store, index, "t", NOW - 60_000, NOW, old),
        _segment(store, index, "t", MAX_TIME_MS + 5, MAX_TIME_MS + DAY, old),  # beyond year 2286
        _segment(store, index, "t", 4_000_000_000_000, 4_000_000_060_000, old),  # year 2096
        _segment(store, index, "t", -5_000, -1, old),  # before the epoch
    ]
    orphan = segment_key("t", 0, new_segment_id(old), NOW)
    store.put(orphan, b"no entry")
    assert collect_orphans(store, index, older_than_s=0, now_ms=NOW) == [orphan]
    left = set(store.list("segments/"))
    assert left == {e.key for e in kept}
    assert {e.segment_id for e in index.query("t", -(2**63), 2**63 - 1)} == {e.segment_id for e in kept}


def test_retention_ages_data_beyond_the_horizon_by_its_write_time(backend) -> None:  # noqa: ANN001
    store, index = open_store(backend[0]), open_index(backend[1])
    cutoff = NOW - 30 * DAY
    far = NOW + 365 * DAY
    doomed = [
        _segment(store, index, "t", cutoff - DAY, cutoff - 1, NOW - 40 * DAY),  # data too old
        _segment(store, index, "t", far, far + 60_000, NOW - 40 * DAY),  # far future, written long ago
        _segment(store, index, "t", far, far + 60_000, NOW - 31 * DAY, created=False),  # time from the id
        _segment(store, index, "t", MAX_TIME_MS + 1, MAX_TIME_MS + 2, NOW - 40 * DAY),
    ]
    kept = [
        _segment(store, index, "t", NOW - DAY, NOW, NOW - DAY),  # fresh data
        _segment(store, index, "t", far, far + 60_000, NOW - DAY),  # far future, written recently
        _segment(store, index, "t", NOW + HORIZON_MS - 1, NOW + HORIZON_MS, NOW - 40 * DAY),  # within the horizon
    ]
    assert {e.segment_id for e in expired(index, "t", cutoff, now_ms=NOW)} == {e.segment_id for e in doomed}
    assert apply_retention(store, index, "t", cutoff, now_ms=NOW) == len(doomed)
    assert set(store.list("segments/")) == {e.key for e in kept}
    live = index.query("t", -(2**63), 2**63 - 1, states=("live", "compacted", "tombstoned"))
    assert {e.segment_id for e in live} == {e.segment_id for e in kept}
    assert apply_retention(store, index, "t", cutoff, now_ms=NOW) == 0
    assert collect_orphans(store, index, older_than_s=0, now_ms=NOW) == []
