"""select_series (grouped timelines) and matching_series on both backends."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segment"))

from storage_profiles import ALLOC_TYPE, CPU_TYPE, make  # noqa: E402

from fleetprof.metastore import open_index  # noqa: E402
from fleetprof.query import parse_matchers, select_timeline  # noqa: E402
from fleetprof.query.series import matching_series, select_series  # noqa: E402
from fleetprof.segment.writer import IngestItem, SegmentWriter  # noqa: E402
from fleetprof.storage import open_store  # noqa: E402

PA = make({"main;handle;json": 40, "main;handle;hash": 10, "main;gc": 3})  # 53
PB = make({"main;handle;json": 5, "main;regex": 7})  # 12
PC = make({"main;lock;wait": 11})  # 11
PM = make({"main;alloc": 4096})

ITEMS = [
    ("t1", IngestItem({"service_name": "api", "env": "prod", "pod": "a"}, CPU_TYPE, 10_000, PA)),
    ("t1", IngestItem({"service_name": "api", "env": "dev", "pod": "b"}, CPU_TYPE, 20_000, PB)),
    ("t1", IngestItem({"service_name": "worker", "env": "prod"}, CPU_TYPE, 30_000, PC)),
    ("t1", IngestItem({"service_name": "api", "env": "prod", "pod": "a"}, ALLOC_TYPE, 30_000, PM)),
    ("t1", IngestItem({"service_name": "api", "env": "prod", "pod": "a"}, CPU_TYPE, 90_000, PB)),
    ("t2", IngestItem({"service_name": "secret", "env": "prod"}, CPU_TYPE, 10_000, PC)),
]


@pytest.fixture
def data(backend):
    store, index = open_store(backend[0]), open_index(backend[1])

    async def go() -> None:
        w = SegmentWriter(store, index, max_age_s=0.01)
        for tenant, it in ITEMS:
            await w.submit(tenant, [it])
        await w.stop()

    asyncio.run(go())
    return store, index


def series(data, group_by=(), selector="{}", tenant="t1", step=10_000, **kw):
    out = select_series(*data, tenant, CPU_TYPE, parse_matchers(selector), 0, 100_000, step, list(group_by), **kw)
    return {tuple(s.labels): dict(zip(s.times_ms.tolist(), s.values.tolist(), strict=True)) for s in out}


def test_group_by_label_values(data) -> None:
    assert series(data, ["env"]) == {
        (("env", "dev"),): {20_000: 12.0},
        (("env", "prod"),): {10_000: 53.0, 30_000: 11.0, 90_000: 12.0},
    }
    by_pod = series(data, ["pod"])
    assert by_pod[()] == {30_000: 11.0}  # the worker has no pod label
    assert set(by_pod) == {(), (("pod", "a"),), (("pod", "b"),)}
    assert series(data, ["env", "pod"], '{service_name="api"}') == {
        (("env", "dev"), ("pod", "b")): {20_000: 12.0},
        (("env", "prod"), ("pod", "a")): {10_000: 53.0, 90_000: 12.0},
    }


def test_ungrouped_equals_the_timeline(data) -> None:
    times, values = select_timeline(*data, "t1", CPU_TYPE, parse_matchers('{env="prod"}'), 0, 100_000, 10_000)
    want = {int(t): float(v) for t, v in zip(times, values, strict=True) if v}
    assert series(data, (), '{env="prod"}') == {(): want}


def test_limit_average_and_tenants(data) -> None:
    assert list(series(data, ["env"], limit=1)) == [(("env", "prod"),)]
    assert series(data, ["env"], step=200_000, average=True)[(("env", "prod"),)] == {0: pytest.approx(76 / 3)}
    assert series(data, ["service_name"], tenant="t2") == {(("service_name", "secret"),): {10_000: 11.0}}
    assert series(data, ["env"], '{service_name="none"}') == {}


def test_matching_series_with_profile_types(data) -> None:
    t = matching_series(*data, "t1", 0, 100_000, parse_matchers('{pod="a"}'), with_profile_types=True)
    assert sorted(set(t["profile_type"].to_list())) == sorted([CPU_TYPE, ALLOC_TYPE])
    only = matching_series(*data, "t1", 0, 100_000, [], ALLOC_TYPE)
    assert set(only["value"].to_list()) == {"api", "prod", "a"}
    assert np.unique(only["series_id"].to_numpy()).size == 1
