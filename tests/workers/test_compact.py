"""Compaction: every sample counted exactly once before, during and after; crash safety."""

from __future__ import annotations

import polars as pl
import pytest
from workers_support import T0, per_stack, seed_fleet  # type: ignore[import-not-found]

from fleetprof.metastore.cleanup import collect_orphans
from fleetprof.metastore.index import ALL_STATES, MAX_TIME_MS
from workers import compact
from workers.storage_io import open_backends, read_dataset

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
STEPS = ("read", "encoded", "put", "before_swap", "swapped")


def _select(store, index, service: str):
    from fleetprof.query.select import select_merge
    from fleetprof.query.selector import parse_query

    pt, matchers = parse_query(f'{CPU}{{service_name="{service}"}}')
    p = select_merge(store, index, "t1", pt, matchers, 0, MAX_TIME_MS)
    return p.samples.group_by("node_id").agg(pl.col("v0").sum()).sort("node_id")


def _run_all(store, index) -> None:
    for level in (1, 2):
        for part in compact.plan(index, level=level, start_ms=0, end_ms=MAX_TIME_MS, settle=False):
            compact.compact_partition(store, index, part)


@pytest.fixture
def seeded(backend):
    store, index = open_backends(*backend)
    seed_fleet(store, index)
    return store, index


def test_compaction_preserves_per_stack_sums_and_query_answers(seeded) -> None:
    store, index = seeded
    before = per_stack(store, index)
    answers = {s: _select(store, index, s) for s in ("svc-0", "svc-2")}
    l0 = index.query("t1", 0, MAX_TIME_MS)
    assert len(l0) > 4 and {e.level for e in l0} == {0}

    parts = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    assert [p.bucket_start_ms for p in parts] == [T0, T0 + compact.HOUR_MS]
    for p in parts:
        compact.compact_partition(store, index, p)
    l1 = index.query("t1", 0, MAX_TIME_MS)
    assert {e.level for e in l1} == {1} and len(l1) == 2
    assert per_stack(store, index).equals(before)

    for p in compact.plan(index, level=2, start_ms=0, end_ms=MAX_TIME_MS, settle=False):
        compact.compact_partition(store, index, p)
    live = index.query("t1", 0, MAX_TIME_MS)
    assert [e.level for e in live] == [2]
    assert live[0].samples <= sum(e.samples for e in l0)
    assert per_stack(store, index).equals(before)
    for s, want in answers.items():
        assert _select(store, index, s).equals(want)
    ds = read_dataset(store, index, "t1", 0, MAX_TIME_MS)
    assert (ds.samples["time_ms"] % 60_000 == 0).all()
    # a rerun finds nothing to do (idempotent)
    assert compact.plan(index, level=2, start_ms=0, end_ms=MAX_TIME_MS, settle=False) == []
    # GC: compacted inputs go away after the grace period, answers unchanged
    compacted = [e for e in index.query("t1", 0, MAX_TIME_MS, states=ALL_STATES) if e.state == "compacted"]
    assert len(compacted) == len(l0) + 2
    assert compact.gc_compacted(store, index, "t1", grace_s=3600) == 0
    assert compact.gc_compacted(store, index, "t1", grace_s=0, now_ms=live[0].created_ms + 1) == len(compacted)
    assert [e.state for e in index.query("t1", 0, MAX_TIME_MS, states=ALL_STATES)] == ["live"]
    assert not any(True for k in store.list("segments/t1/L0/"))
    assert per_stack(store, index).equals(before)


def test_single_service_inputs_compact_per_service(tmp_path) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, single_service=True, hours=1)
    before = per_stack(store, index)
    _run_all(store, index)
    live = index.query("t1", 0, MAX_TIME_MS)
    assert sorted(e.services for e in live) == [("svc-0",), ("svc-1",), ("svc-2",)]
    assert all(e.level == 2 for e in live)
    assert per_stack(store, index).equals(before)


def test_l1_timeline_step_is_10s(tmp_path) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, hours=1)
    (part,) = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    compact.compact_partition(store, index, part)
    ds = read_dataset(store, index, "t1", 0, MAX_TIME_MS)
    assert (ds.samples["time_ms"] % 10_000 == 0).all()


def test_settle_delay_skips_recent_buckets(tmp_path) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, hours=1)
    now = T0 + compact.HOUR_MS + 60_000  # one minute after the hour ended
    assert compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, now_ms=now) == []
    assert len(compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, now_ms=now + compact.HOUR_MS)) == 1


@pytest.mark.parametrize("step", STEPS)
def test_crash_between_steps_then_rerun(tmp_path, step: str) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, hours=1)
    before = per_stack(store, index)

    def crash(s: str) -> None:
        if s == step:
            raise RuntimeError(f"injected crash at {s}")

    (part,) = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    with pytest.raises(RuntimeError, match="injected"):
        compact.compact_partition(store, index, part, hook=crash)
    assert per_stack(store, index).equals(before)  # exactly once right after the crash
    _run_all(store, index)
    assert per_stack(store, index).equals(before)
    live = index.query("t1", 0, MAX_TIME_MS)
    assert len(live) == 1 and live[0].level == 2
    collect_orphans(store, index, older_than_s=0)
    referenced = {e.key for e in index.query("t1", 0, MAX_TIME_MS, states=ALL_STATES)}
    assert set(store.list("segments/")) == referenced


def test_exactly_once_at_every_step(tmp_path) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, hours=1)
    before = per_stack(store, index)
    seen: list[str] = []

    def check(s: str) -> None:
        seen.append(s)
        assert per_stack(store, index).equals(before), f"double or missing samples at {s}"

    (part,) = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    compact.compact_partition(store, index, part, hook=check)
    assert seen == list(STEPS)


def test_rounds_when_more_inputs_than_one_swap(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(compact, "MAX_INPUTS", 3)
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    n = seed_fleet(store, index, hours=1, per_segment=2)
    assert n > 6
    before = per_stack(store, index)
    (part,) = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    res = compact.compact_partition(store, index, part)
    assert len(res.outputs) > 3
    live = index.query("t1", 0, MAX_TIME_MS)
    assert all(e.level == 1 for e in live)
    assert len({e.services for e in live}) == len(live)  # one segment per service group
    assert per_stack(store, index).equals(before)


def test_late_data_is_merged_into_the_existing_level(tmp_path) -> None:
    from workers import synth
    from workers.storage_io import write_l0

    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, hours=1)
    _run_all(store, index)
    late = synth.fleet_items(T0 + 1_800_000, services=1, instances=1, duration_s=600, step_s=600, stacks_per_profile=10, stack_pool=50)
    write_l0(store, index, "t1", late)
    before = per_stack(store, index)
    _run_all(store, index)
    live = index.query("t1", 0, MAX_TIME_MS)
    assert len(live) == 1 and live[0].level == 2
    assert per_stack(store, index).equals(before)


def test_split_by_service_gives_one_task_per_group_and_counts_each_sample_once(tmp_path) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, single_service=True, hours=1)
    before = per_stack(store, index)
    (part,) = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    tasks = compact.split_by_service(index, [part])
    assert sorted(t.services for t in tasks) == [("svc-0",), ("svc-1",), ("svc-2",)]
    assert [t.est_samples for t in tasks] == sorted((t.est_samples for t in tasks), reverse=True)
    assert sum(t.est_samples for t in tasks) == part.est_samples and len({t.key() for t in tasks}) == 3
    assert compact.split_by_service(index, tasks) == tasks
    results = [compact.compact_partition(store, index, t) for t in tasks]
    live = index.query("t1", 0, MAX_TIME_MS)
    assert sorted(e.services for e in live) == [("svc-0",), ("svc-1",), ("svc-2",)] and {e.level for e in live} == {1}
    assert per_stack(store, index).equals(before)
    # each task reports only its own group: the sums are the bucket's, not three times it
    assert sum(r.samples_out for r in results) == sum(e.samples for e in live)
    assert sum(r.samples_in for r in results) == part.est_samples
    assert {"plan", "read", "decode", "merge", "encode", "write", "index"} <= set(results[0].stages)


def test_a_group_joined_after_planning_is_compacted_by_one_task(tmp_path) -> None:
    from workers import synth
    from workers.storage_io import write_l0

    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, single_service=True, hours=1)
    tasks = {t.services: t for t in compact.split_by_service(
        index, compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False))}
    # a flush holding svc-0 and svc-1 arrives between planning and the tasks: one group now
    late = [it for it in synth.fleet_items(T0 + 600_000, services=3, instances=1, duration_s=600, step_s=600,
                                           stacks_per_profile=10, stack_pool=50) if it.labels["service_name"] != "svc-2"]
    write_l0(store, index, "t1", late, per_segment=len(late))
    before = per_stack(store, index)
    assert compact.compact_partition(store, index, tasks[("svc-1",)]).outputs == []  # not its group any more
    assert per_stack(store, index).equals(before)
    assert len(compact.compact_partition(store, index, tasks[("svc-0",)]).outputs) == 1
    assert len(compact.compact_partition(store, index, tasks[("svc-2",)]).outputs) == 1
    live = index.query("t1", 0, MAX_TIME_MS)
    assert sorted(e.services for e in live) == [("svc-0", "svc-1"), ("svc-2",)] and {e.level for e in live} == {1}
    assert per_stack(store, index).equals(before)


def test_run_compaction_runs_a_task_per_service_group(tmp_path) -> None:
    backend = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    store, index = open_backends(*backend)
    seed_fleet(store, index, single_service=True, hours=2)
    before = per_stack(store, index)
    got: list[tuple[str, dict]] = []
    out = compact.run_compaction(*backend, levels=(1,), start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="serial",
                                 progress=False, gc=False, on_result=lambda p, r: got.append((p.key(), r)))
    l1 = out["levels"]["L1"]
    assert (l1["partitions"], l1["tasks"], l1["outputs"]) == (2, 6, 6)
    assert sorted(k for k, _ in got) == sorted(r["partition"] for _, r in got) and len(got) == 6
    assert all(r["ended"] >= r["started"] and r["stages"]["open"] >= 0 for _, r in got)
    live = index.query("t1", 0, MAX_TIME_MS)
    assert l1["samples_out"] == sum(e.samples for e in live) and len(live) == 6
    assert per_stack(store, index).equals(before)
    assert min(l1["plan_s"], l1["split_s"], l1["run_s"]) >= 0


def test_split_by_service_reads_the_index_once_per_tenant_and_kind(tmp_path, monkeypatch) -> None:
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, single_service=True, hours=2)
    parts = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    one_by_one = sorted((t for p in parts for t in compact.split_by_service(index, [p])), key=lambda t: t.key())
    calls: list[tuple] = []
    query = index.query
    monkeypatch.setattr(index, "query", lambda *a, **kw: calls.append(a) or query(*a, **kw))
    together = compact.split_by_service(index, parts)
    assert len(calls) == 1 and len(parts) == 2
    assert sorted(together, key=lambda t: t.key()) == one_by_one and len(together) == 6


def test_a_group_larger_than_one_swap_is_compacted_in_parallel_chunks_then_merged(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(compact, "MAX_INPUTS", 3)
    backend = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    store, index = open_backends(*backend)
    seed_fleet(store, index, hours=1, per_segment=2)  # groups of more than 3 inputs
    before = per_stack(store, index)
    l0 = index.query("t1", 0, MAX_TIME_MS)
    (part,) = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    chunks = compact.split_by_service(index, [part])
    assert len(chunks) > 3 and all(0 < len(c.segments) <= 3 for c in chunks)
    assert sorted(i for c in chunks for i in c.segments) == sorted(e.segment_id for e in l0)
    out = compact.run_compaction(*backend, levels=(1,), start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="serial",
                                 progress=False, gc=False)["levels"]["L1"]
    live = index.query("t1", 0, MAX_TIME_MS)
    assert {e.level for e in live} == {1} and len({e.services for e in live}) == len(live)  # one per group
    assert {g[0].segment_id for g in compact.service_groups(live)} == {e.segment_id for e in live}
    assert per_stack(store, index).equals(before)
    assert out["passes"] >= 2 and out["tasks"] > len(chunks) and out["partitions"] == 1
    assert out["inputs"] == len(l0) and out["samples_in"] == sum(e.samples for e in l0)
    assert out["samples_out"] == sum(e.samples for e in live) and out["bytes_out"] == sum(e.bytes for e in live)


def test_a_chunk_whose_inputs_were_taken_does_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(compact, "MAX_INPUTS", 3)
    store, index = open_backends((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    seed_fleet(store, index, hours=1, per_segment=2)
    (part,) = compact.plan(index, level=1, start_ms=0, end_ms=MAX_TIME_MS, settle=False)
    chunk = compact.split_by_service(index, [part])[0]
    compact.compact_partition(store, index, part)  # a concurrent whole-bucket compactor got there first
    before = per_stack(store, index)
    live = index.query("t1", 0, MAX_TIME_MS)
    res = compact.compact_partition(store, index, chunk)
    assert res.outputs == [] and res.inputs == 0
    assert index.query("t1", 0, MAX_TIME_MS) == live and per_stack(store, index).equals(before)
