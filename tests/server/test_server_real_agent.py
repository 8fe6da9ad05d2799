"""The real pyroscope-io agent pushing to a server subprocess, and a pyroscope-go-style
multipart ``/ingest`` built here; both visible in the flame graph."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverutil import CPU_TYPE, REPO, ServerProc, folded_of, pprof_bytes, server_list, start_server


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


def _wait_for_service(h: httpx.Client, service: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service in h.get("/api/v1/services").json():
            return
        time.sleep(0.2)
    raise AssertionError(f"{service} never showed up")


def test_pyroscope_io_agent_and_go_style_multipart(tmp_path: Path, servers: list[ServerProc]) -> None:
    srv = start_server(servers, (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}", "--flush-max-age-s", "0.2", tmp=tmp_path)
    agent = subprocess.Popen(
        [sys.executable, "-m", "fleetprof.demo_services.json_api", "--server", srv.url, "--seconds", "3", "--app-name", "agent-test"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        # meanwhile: what pyroscope-go sends — multipart pprof + sample_type_config
        pprof = pprof_bytes([["runtime.main", "main.handler", "main.compress"]], [250_000_000])
        stc = {"cpu": {"units": "samples", "display-name": "cpu", "aggregation": "sum", "cumulative": False, "sampled": True}}
        files = {
            "profile": ("profile.pprof", pprof, "application/octet-stream"),
            "sample_type_config": ("sample_type_config.json", json.dumps(stc).encode(), "application/json"),
        }
        now = int(time.time())
        r = httpx.post(srv.url + "/ingest", params={"name": "goapp.cpu{region=eu}", "from": str(now - 10), "until": str(now), "spyName": "gospy", "sampleRate": "100", "units": "samples", "aggregationType": "sum"}, files=files, timeout=30)
        assert r.status_code == 200, r.text
        folded = tmp_path / "cli.folded"
        folded.write_text("main;from_cli 4\n")
        cli = subprocess.run(
            [sys.executable, "-m", "fleetprof", "push", str(folded), "--url", srv.url, "--service", "cli-svc", "--labels", "env=cli,team=t1"],
            cwd=REPO, capture_output=True, timeout=60,
        )
        assert cli.returncode == 0, cli.stderr.decode()
        _, err = agent.communicate(timeout=60)
        assert agent.returncode == 0, err.decode()[-2000:]
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    with httpx.Client(base_url=srv.url, timeout=30) as h:
        _wait_for_service(h, "agent-test")
        got = folded_of(h, CPU_TYPE + '{service_name="agent-test"}')
        functions = {f for stack in got for f in stack.split(";")}
        assert functions & {"build_order", "encode_orders", "decode_orders", "checksum_orders", "handle_request"}, sorted(functions)[:40]
        labels = h.get("/pyroscope/label-values", params={"label": "env"}).json()
        assert "demo" in labels
        doc = h.get("/pyroscope/render", params={"query": CPU_TYPE + '{service_name="agent-test"}', "from": "now-1h"}).json()
        assert doc["flamebearer"]["numTicks"] > 0 and doc["metadata"]["units"] == "samples"
        assert folded_of(h, CPU_TYPE + '{service_name="goapp",region="eu"}') == {"runtime.main;main.handler;main.compress": 250_000_000}
        assert folded_of(h, CPU_TYPE + '{service_name="cli-svc",team="t1"}') == {"main;from_cli": 40_000_000}
