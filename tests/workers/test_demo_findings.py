"""The demo end to end: its services profiled by the real pyroscope-io agent pushing to a
real server, then the fleet analysis over the stored segments. json-api spends most of its
CPU in JSON: the JSON finding fires there and nothing else is flagged; the cost is the CPU
the agent measured over the time it measured, which matches the process's own CPU time."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import polars as pl
import pytest
from workers_support import REPO, free_port  # type: ignore[import-not-found]

from fleetprof.demo import stop, wait_ready
from workers.analyze import Window, analyze_window
from workers.storage_io import open_backends

SECONDS = 6


@pytest.fixture(scope="module")
def demo_analysis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    storage, index = (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "fleetprof", "serve", "--port", str(port), "--storage", storage,
                               "--index", index, "--flush-max-age-s", "0.2"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))  # noqa: SIM115
    try:
        wait_ready(url, timeout_s=60, proc=server)
        start_ms = int(time.time() * 1000)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        services = {name: subprocess.Popen([sys.executable, "-m", f"fleetprof.demo_services.{mod}", "--server", url,
                                            "--seconds", str(SECONDS), "--upload-interval", "1"],
                                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                           env=dict(os.environ, PYTHONUNBUFFERED="1"))
                    for name, mod in (("json-api", "json_api"), ("text-worker", "text_worker"))}
        for name, p in services.items():
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, f"{name}: {err.decode()[-2000:]}"
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        store, idx = open_backends(storage, index)
        # the last upload is flushed by the server within its flush age: wait for both services
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            summary = analyze_window(store, idx, "anonymous", Window("demo", start_ms - 30 * 60_000, start_ms + 30 * 60_000),
                                     flame_graphs=False)
            if set(summary["services"]) >= {"json-api", "text-worker"} and summary["observed_seconds"] >= SECONDS - 2:
                break
            time.sleep(0.5)
        import io

        from workers.analysis_store import read_analysis_file

        tables = {n: pl.read_parquet(io.BytesIO(read_analysis_file(store, "anonymous", "demo", f"{n}.parquet")))
                  for n in ("recommendations", "cost_services")}
        yield summary, tables, cpu, wall
    finally:
        stop([server])


def test_json_finding_fires_on_the_demo_and_nothing_else(demo_analysis) -> None:
    summary, tables, _cpu, _wall = demo_analysis
    recs = tables["recommendations"]
    assert set(recs.select("rule_id", "service").iter_rows()) == {("json-serialization", "json-api")}
    row = recs.row(0, named=True)
    assert row["share"] > 0.4  # the demo spends well over half its CPU in JSON
    assert "[json" in row["top_functions"] and row["packages"].startswith("json")
    assert row["usd_month"] > 0 and "service=json-api" in row["flamegraph_url"]
    assert summary["recommendations"][0]["rule_id"] == "json-serialization"


def test_demo_cost_uses_measured_duration(demo_analysis) -> None:
    """The profiles' CPU over the profiles' time, not over the whole window (the old report
    divided 6 s of CPU by the hour). The agent samples runnable threads as on CPU, so on a
    loaded machine its CPU may exceed the processes' own: compared loosely."""
    summary, tables, cpu, wall = demo_analysis
    cost = tables["cost_services"]
    assert 0.3 * cpu <= float(cost["cpu_seconds"].sum()) <= 2.5 * cpu
    for r in cost.iter_rows(named=True):
        assert 1.0 <= r["observed_seconds"] <= wall + 2.0
        assert r["avg_vcpus"] == pytest.approx(r["cpu_seconds"] / r["observed_seconds"])
        assert r["usd_month"] == pytest.approx(r["avg_vcpus"] * 730 * 0.0425)
        assert r["usd_month"] > 100 * r["cpu_seconds"] / r["window_seconds"] * 730 * 0.0425
        assert r["complete"] is False
    assert summary["cost_window_complete"] is False and "Window incomplete" in summary["cost_note"]
