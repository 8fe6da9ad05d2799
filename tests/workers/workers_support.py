"""Worker test fixtures: one real local Ray head for the whole session, seeded stores.

``ray_head`` starts ``ray start --head`` on 127.0.0.1 (2 CPUs; dashboard, dashboard agent,
client server and metrics on free ports; a private ``--temp-dir``), connects this process
to it with ``ray.init(address=…)`` (so in-process tests and submitted jobs share one Ray
instance: Ray is slow to start on two cores), and on teardown disconnects and ends exactly the processes of that Ray instance
(found by their private temp dir, killed by pid), so no other Ray on the machine is touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from fleetprof.metastore.index import MAX_TIME_MS

REPO = Path(__file__).resolve().parents[2]
T0 = 1_795_132_800_000  # 2026-11-20T00:00Z


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RayHead:
    gcs_address: str
    dashboard_url: str
    temp_dir: str


def _kill_tree_of(temp_dir: str) -> None:
    import psutil

    me = os.getpid()
    victims = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.info["pid"] != me and any(temp_dir in (a or "") for a in (p.info["cmdline"] or [])):
                victims.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for p in victims:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(victims, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    import ray

    port, dash, agent, client, metrics = (free_port() for _ in range(5))
    temp = tempfile.mkdtemp(prefix="fpray", dir="/tmp")
    ray_bin = str(Path(sys.executable).parent / "ray")
    # `ray start` turns token authentication on by default; this loopback test cluster
    # runs without it, like the in-process `ray.init()` clusters
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    cmd = [ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--temp-dir={temp}", "--disable-usage-stats",
           # Ray's fixed defaults (agent HTTP 52365, client server 10001) clash with any other
           # Ray on the machine: the agent then serves no HTTP and every job submission answers
           # "No available agent" for good
           f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
           f"--metrics-export-port={metrics}"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=180)
    try:
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        yield RayHead(f"127.0.0.1:{port}", f"http://127.0.0.1:{dash}", temp)
    finally:
        ray.shutdown()
        _kill_tree_of(temp)
        shutil.rmtree(temp, ignore_errors=True)


# ---------------------------------------------------------------- data helpers
def per_stack(store, index, tenant: str = "t1") -> pl.DataFrame:
    """Per (series, type, stack) sums of everything live: the exactly-once invariant."""
    from workers.storage_io import read_dataset

    ds = read_dataset(store, index, tenant, 0, MAX_TIME_MS)
    return (ds.samples.group_by("series_id", "profile_type", "node_id").agg(pl.col("value").sum())
            .sort("series_id", "profile_type", "node_id"))


def seed_fleet(store, index, tenant: str = "t1", *, hours: int = 2, per_segment: int = 6, seed: int = 3,
               single_service: bool = False) -> int:
    """A small fleet over ``hours`` hours written as L0 segments; returns the segment count."""
    from workers import synth
    from workers.storage_io import write_l0

    items = synth.fleet_items(T0, services=3, instances=2, duration_s=hours * 3600, step_s=600,
                              stacks_per_profile=40, stack_pool=300, seed=seed)
    if single_service:
        n = 0
        for svc in sorted({it.labels["service_name"] for it in items}):
            n += write_l0(store, index, tenant, [it for it in items if it.labels["service_name"] == svc], per_segment=per_segment)
        return n
    return write_l0(store, index, tenant, items, per_segment=per_segment)


def submit_job(client, *, timeout_s: float = 180.0, **kw) -> str:  # noqa: ANN001 - JobSubmissionClient
    """``client.submit_job(**kw)`` once the head's job agent takes jobs; the submission id.

    ``ray start`` returns before the dashboard agent has registered with the head (longer on a
    loaded machine), and until then the job API answers "No available agent to submit job":
    retry that answer until ``timeout_s``, always with the same submission id (so an attempt
    that got through before failing is found, never submitted twice)."""
    sid = kw.pop("submission_id", None) or f"fleetprof-test-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.submit_job(submission_id=sid, **kw)
        except RuntimeError as e:
            if "already exists" in str(e):
                return sid
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def wait_for(pred, timeout: float = 120.0, step: float = 0.5) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False
