"""Ray tasks' library thread pools are sized to the CPUs each task gets (real local Ray)."""

from __future__ import annotations

import os
import sys

from workers import parallel

from ray import cloudpickle  # isort: skip

# the task function below lives in this test module, which Ray workers cannot import
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _pools(_job: None, _item: int) -> tuple[str | None, int, int]:
    import polars as pl
    import pyarrow as pa

    return os.environ.get("POLARS_MAX_THREADS"), pl.thread_pool_size(), pa.cpu_count()


def test_task_threads_share_the_cluster_between_the_tasks_at_once() -> None:
    assert parallel.task_threads(16, 16, 64) == 1
    assert parallel.task_threads(16, 16, 4) == 4
    assert parallel.task_threads(16, 16, 1) == 16
    assert parallel.task_threads(16, 8, 1) == 8  # never more than one node has
    assert parallel.task_threads(16, 16, 64, max_in_flight=2) == 8
    assert parallel.task_threads(2, 2, 0) == 2
    assert parallel.thread_env(0) == {} and parallel.thread_env(3)["POLARS_MAX_THREADS"] == "3"
    assert "runtime_env" not in parallel.ray_task_options(0)
    assert parallel.ray_task_options(4)["num_cpus"] == 4


def test_concurrent_tasks_run_one_thread_each_a_lone_task_uses_the_node(ray_head) -> None:
    many = parallel.run_tasks(_pools, None, list(range(4)), progress=False)
    assert set(many) == {("1", 1, 1)}
    (lone,) = parallel.run_tasks(_pools, None, [0], progress=False)
    assert lone == ("2", 2, 2)  # the test head has 2 CPUs
    (default,) = parallel.run_tasks(_pools, None, [0], progress=False, threads_per_task=0, max_in_flight=1)
    assert default[0] == os.environ.get("POLARS_MAX_THREADS")  # the head's own environment
