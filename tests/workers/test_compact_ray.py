"""The service groups of one bucket compacted by concurrent tasks on a real local Ray."""

from __future__ import annotations

from workers_support import per_stack, seed_fleet  # type: ignore[import-not-found]

from fleetprof.metastore.index import MAX_TIME_MS
from workers import compact
from workers.storage_io import open_backends


def test_service_groups_of_a_bucket_compact_concurrently_exactly_once(ray_head, tmp_path) -> None:
    backend = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    store, index = open_backends(*backend)
    seed_fleet(store, index, single_service=True, hours=1)
    before = per_stack(store, index)
    got: list[dict] = []
    out = compact.run_compaction(*backend, start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="ray", progress=False,
                                 grace_s=0, on_result=lambda _p, r: got.append(r))
    assert (out["levels"]["L1"]["partitions"], out["levels"]["L1"]["tasks"]) == (1, 3)
    assert out["levels"]["L2"]["tasks"] == 3
    live = index.query("t1", 0, MAX_TIME_MS)
    assert sorted(e.services for e in live) == [("svc-0",), ("svc-1",), ("svc-2",)] and {e.level for e in live} == {2}
    assert out["levels"]["L2"]["samples_out"] == sum(e.samples for e in live)
    assert per_stack(store, index).equals(before)
    assert len(got) == 6 and all(r["cpu"] >= 0 and set(r["stages"]) >= {"merge", "encode"} for r in got)
