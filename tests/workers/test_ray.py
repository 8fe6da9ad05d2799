"""On a real local Ray: in-process task runs and a job submitted with JobSubmissionClient."""

from __future__ import annotations

import sys
from pathlib import Path

from workers_support import REPO, T0, per_stack, seed_fleet, submit_job, wait_for  # type: ignore[import-not-found]

from fleetprof.metastore.index import MAX_TIME_MS
from workers import compact, parallel
from workers.storage_io import open_backends

from ray import cloudpickle  # isort: skip


# the task functions below live in this test module, which Ray workers cannot import:
# ship them by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _square(job: int, x: int) -> int:
    return job * x * x


def _flaky(job: str, x: int) -> int:
    """Fails the first time per item (marker files survive the worker), then succeeds."""
    marker = Path(job) / f"{x}.seen"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("transient")
    return x


def test_run_tasks_order_bundling_and_bound(ray_head) -> None:
    got: list[int] = []
    out = parallel.run_tasks(_square, 2, list(range(7)), max_in_flight=2, progress=False,
                             weight=lambda x: 1, min_task_weight=3, on_result=lambda it, r: got.append(it))
    assert out == [2 * x * x for x in range(7)]
    assert sorted(got) == list(range(7))
    assert parallel.bundles(list(range(7)), lambda x: 1, 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_run_tasks_retries_failed_tasks(ray_head, tmp_path) -> None:
    assert parallel.run_tasks(_flaky, str(tmp_path), [1, 2, 3], progress=False, retries=2) == [1, 2, 3]


def test_compaction_on_ray(ray_head, tmp_path) -> None:
    backend = ((tmp_path / "d").as_uri(), f"sqlite://{tmp_path / 'i.db'}")  # S3+DynamoDB: test_compact.py
    store, index = open_backends(*backend)
    seed_fleet(store, index, hours=2)
    before = per_stack(store, index)
    out = compact.run_compaction(*backend, start_ms=0, end_ms=MAX_TIME_MS, settle=False, mode="ray",
                                 progress=False, grace_s=0, now_ms=None)
    assert out["levels"]["L1"]["partitions"] == 2 and out["levels"]["L2"]["partitions"] == 1
    live = index.query("t1", 0, MAX_TIME_MS)
    assert [e.level for e in live] == [2]
    assert per_stack(store, index).equals(before)


def test_backfill_submitted_as_ray_job(ray_head, tmp_path) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    from workers import synth
    from workers.storage_io import write_l0

    surl, iurl = (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}"
    store, index = open_backends(surl, iurl)
    write_l0(store, index, "acme", synth.scenario_items(T0 + 3_600_000), per_segment=60)
    before = per_stack(store, index, "acme")
    client = JobSubmissionClient(ray_head.dashboard_url)
    entry = (f"{sys.executable} -m workers.backfill --from 2026-11-20 --until 2026-11-21 "
             f"--storage {surl} --index {iurl} --max-in-flight 2")
    job = submit_job(client, entrypoint=entry, runtime_env={"working_dir": str(REPO), "excludes": [".git", "*.egg-info"]})
    assert wait_for(lambda: client.get_job_status(job) in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}, 240)
    logs = client.get_job_logs(job)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED, logs[-3000:]
    assert "backfill compact L1" in logs and '"checkpoint"' in logs
    assert [e.level for e in index.query("acme", 0, MAX_TIME_MS)] == [2]
    assert per_stack(store, index, "acme").equals(before)
    assert any(k.endswith("2026-11-20/summary.json") for k in store.list("analysis/acme/"))
    assert any(k.startswith("checkpoints/backfill/") for k in store.list("checkpoints/"))


class _AgentLate:
    """Answers like Ray's job API while the head's agent is not registered yet (``late``
    times), and like a submission whose first attempt got through (``landed``)."""

    def __init__(self, late: int, landed: bool = False) -> None:
        self.late, self.landed, self.ids = late, landed, []

    def submit_job(self, *, submission_id: str, **kw: object) -> str:
        self.ids.append(submission_id)
        if self.late:
            self.late -= 1
            raise RuntimeError("Request failed with status code 500: No available agent to submit job, please try again later..")
        if self.landed:
            raise RuntimeError(f"Request failed with status code 400: Job with submission_id {submission_id} already exists.")
        return submission_id


def test_submit_job_waits_for_the_agent_with_one_submission_id() -> None:
    client = _AgentLate(late=3)
    sid = submit_job(client, entrypoint="true", timeout_s=30)
    assert client.ids == [sid] * 4
    assert submit_job(_AgentLate(late=1, landed=True), entrypoint="true", timeout_s=30)
    try:
        submit_job(_AgentLate(late=10**6), entrypoint="true", timeout_s=0.6)
    except RuntimeError as e:
        assert "No available agent" in str(e)
    else:
        raise AssertionError("submit_job retried past its deadline")
