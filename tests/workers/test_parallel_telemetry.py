"""Spans of Ray jobs: a compaction on a real local Ray emits its job span in the driver and
one span per task in the workers, all in one trace (context carried into the tasks),
exported over OTLP/HTTP to a loopback receiver."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from workers_support import seed_fleet  # type: ignore[import-not-found]

from fleetprof import telemetry
from fleetprof.metastore.index import MAX_TIME_MS
from workers import compact
from workers.storage_io import open_backends

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telemetry"))
from telemetry_support import OtlpReceiver, otlp_receiver  # noqa: E402


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as r:
        telemetry.configure(service_name="fleetprof-workers", endpoint=r.endpoint)
        try:
            yield r
        finally:
            telemetry.shutdown()


def test_compaction_job_and_task_spans_share_one_trace(ray_head, tmp_path, receiver: OtlpReceiver) -> None:
    backend = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    store, index = open_backends(*backend)
    seed_fleet(store, index, hours=2)
    out = compact.run_compaction(*backend, start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="ray",
                                 progress=False, grace_s=0)
    tasks = sum(v["partitions"] for v in out["levels"].values())
    spans = receiver.wait_for(lambda got: sum(s.name.startswith("task compact") for s in got) >= 2
                              and any(s.name == "job.compaction" for s in got))
    job = next(s for s in spans if s.name == "job.compaction")
    task_spans = [s for s in spans if s.name.startswith("task compact")]
    assert job.parent_id == "" and job.attributes["fleetprof.job"] == "compaction"
    assert {s.trace_id for s in task_spans} == {job.trace_id}
    assert {s.parent_id for s in task_spans} == {job.span_id}
    assert len(task_spans) <= tasks and {s.name for s in task_spans} == {"task compact L1", "task compact L2"}
    assert all(s.service == "fleetprof-workers" for s in task_spans)


def test_serial_jobs_trace_their_tasks_in_process(tmp_path, receiver: OtlpReceiver) -> None:
    backend = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")
    store, index = open_backends(*backend)
    seed_fleet(store, index, hours=1)
    compact.run_compaction(*backend, start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="serial", progress=False, grace_s=0)
    spans = receiver.wait_for(lambda got: any(s.name == "job.compaction" for s in got))
    job = next(s for s in spans if s.name == "job.compaction")
    kids = [s for s in spans if s.parent_id == job.span_id]
    assert kids and all(s.name.startswith("task compact L") for s in kids)
