"""SegmentWriter validates every item before it joins a tenant's batch: a bad item is
refused alone and never fails the items of other calls batched with it."""

from __future__ import annotations

import asyncio

import pytest
from storage_profiles import CPU_TYPE, make

from fleetprof.metastore import open_index
from fleetprof.metastore.index import MAX_TIME_MS
from fleetprof.segment.writer import IngestItem, InvalidItem, SegmentWriter, validate_item
from fleetprof.storage import open_store


def item(i: int, time_ms: int | None = None, labels: dict | None = None) -> IngestItem:
    t = 1_000 + i if time_ms is None else time_ms
    return IngestItem(labels or {"service_name": "api"}, CPU_TYPE, t, make({f"main;f{i}": i + 1}))


@pytest.fixture
def si(backend):
    return open_store(backend[0]), open_index(backend[1])


BAD = {
    "beyond int64": item(0, time_ms=10**19),
    "past the index's range": item(0, time_ms=MAX_TIME_MS + 1),
    "negative": item(0, time_ms=-1),
    "not an int": item(0, time_ms=1.5),  # type: ignore[arg-type]
    "no service_name": item(0, labels={"env": "x"}),
    "empty service_name": item(0, labels={"service_name": ""}),
    "non-string label": item(0, labels={"service_name": "a", "n": 5}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_item_refuses(case: str) -> None:
    with pytest.raises(InvalidItem):
        validate_item(BAD[case])


def test_bad_item_fails_alone_and_good_ones_of_its_batch_are_durable(si) -> None:
    store, index = si
    good = [item(i) for i in range(5)]

    async def go() -> list:
        w = SegmentWriter(store, index, max_age_s=0.2)
        calls = [w.submit("t1", [g]) for g in good[:3]]
        calls.append(w.submit("t1", [good[3], item(9, time_ms=10**25)]))  # refused whole
        calls += [w.submit("t1", [good[4]])]
        out = await asyncio.gather(*calls, return_exceptions=True)
        await w.stop()
        return out

    out = run(go())
    assert [type(x).__name__ for x in out] == ["NoneType"] * 3 + ["InvalidItem", "NoneType"]
    (entry,) = index.query("t1", 0, 10**13)
    assert (entry.min_time_ms, entry.max_time_ms) == (1_000, 1_004)
    assert entry.samples == 4  # good[0..2] and good[4]; nothing of the refused call


def run(coro):
    return asyncio.run(coro)
