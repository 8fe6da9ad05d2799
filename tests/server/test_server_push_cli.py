"""``fleetprof push`` against a real server: ``--sample-rate`` for count-based files, a
py-spy speedscope recording stored as the CPU profile type; the native routes' advice for
``top?by=line`` and duration steps (``step=30s``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverutil import CPU_TYPE, REPO, ServerProc, server_list, start_server

PYSPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


@pytest.fixture
def server(tmp_path: Path, servers: list[ServerProc]) -> ServerProc:
    (tmp_path / "data").mkdir()
    return start_server(servers, (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}", "--flush-max-age-s", "0.05", tmp=tmp_path)


def push(server: ServerProc, path: Path, service: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetprof", "push", str(path), "--url", server.url, "--service", service, *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def window() -> dict[str, str]:
    return {"from": "now-1h", "until": str(time.time_ns() // 1_000_000 + 120_000)}


def total(server: ServerProc, service: str) -> int:
    r = httpx.get(server.url + "/api/v1/top", params={"query": CPU_TYPE + f'{{service_name="{service}"}}', **window()})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def pyspy_speedscope(out: Path) -> Path:
    assert PYSPY, "py-spy is a dev dependency (pip install py-spy)"
    prog = "import time\nt = time.time()\nwhile time.time() - t < 1.5:\n    sum(range(1000))\n"
    proc = subprocess.run([PYSPY, "record", "--format", "speedscope", "--rate", "200", "--duration", "1", "-o", str(out), "--",
                           sys.executable, "-c", prog], capture_output=True, timeout=120)
    assert proc.returncode == 0 and out.exists(), proc.stderr.decode()[-2000:]
    return out


def test_push_sample_rate_and_pyspy_speedscope_are_cpu(server: ServerProc, tmp_path: Path) -> None:
    folded = tmp_path / "app.folded"
    folded.write_text("main;work 30\nmain;idle 10\n")
    r = push(server, folded, "rated", "--sample-rate", "250")
    assert r.returncode == 0, r.stderr
    assert total(server, "rated") == 40 * 4_000_000  # 40 samples at 250 Hz = 4 ms each

    rec = pyspy_speedscope(tmp_path / "pyspy.speedscope.json")
    r = push(server, rec, "pyspy")
    assert r.returncode == 0, r.stderr
    types = httpx.get(server.url + "/api/v1/profile-types", params=window()).json()
    assert CPU_TYPE in types and not [t for t in types if t.endswith("::")], types
    assert total(server, "pyspy") > 0

    bad = push(server, folded, "rated", "--sample-rate", "0")
    assert bad.returncode != 0 and "sample-rate" in bad.stderr


def test_top_by_line_advice_and_duration_step(server: ServerProc, tmp_path: Path) -> None:
    folded = tmp_path / "app.folded"
    folded.write_text("main;work 3\n")
    assert push(server, folded, "api").returncode == 0
    q = {"query": CPU_TYPE + '{service_name="api"}', **window()}
    r = httpx.get(server.url + "/api/v1/top", params={**q, "by": "line"})
    assert r.status_code == 400, r.text
    msg = r.json()["message"]
    assert "by=frame" in msg and "fleetprof top --by line" in msg and "keep_lines" not in msg
    assert httpx.get(server.url + "/api/v1/top", params={**q, "by": "frame"}).status_code == 200

    for step, ms in (("30s", 30_000), ("2m", 120_000), ("45", 45_000)):
        r = httpx.get(server.url + "/api/v1/timeline", params={**q, "step": step})
        assert r.status_code == 200, r.text
        assert r.json()["step_ms"] == ms and sum(r.json()["values"]) == 3 * 10_000_000
    r = httpx.get(server.url + "/api/v1/explorer/timelines", params={**q, "groupBy": "service_name", "step": "30s"})
    assert r.status_code == 200 and r.json()["step_ms"] == 30_000, r.text
    for bad in ("thirty", "0s", "400d"):
        r = httpx.get(server.url + "/api/v1/timeline", params={**q, "step": bad})
        assert r.status_code == 400 and "step" in r.json()["message"], r.text


def test_exports_titled_with_service_kind_and_range(server: ServerProc, tmp_path: Path) -> None:
    folded = tmp_path / "app.folded"
    folded.write_text("main;work 3\n")
    assert push(server, folded, "api", "--labels", "env=prod").returncode == 0
    q = {"query": CPU_TYPE + '{service_name="api",env="prod"}', **window()}
    svg = httpx.get(server.url + "/api/v1/export", params={**q, "format": "svg"}).text
    assert "api · CPU time · env=&quot;prod&quot; · " in svg and " UTC" in svg and CPU_TYPE not in svg
    page = httpx.get(server.url + "/api/v1/export", params={**q, "format": "html", "icicle": "true"}).text
    assert "<title>api · CPU time · env=&quot;prod&quot; · " in page and CPU_TYPE not in page and '"icicle":true' in page
    diff = httpx.get(server.url + "/api/v1/diff", params={"leftQuery": q["query"], "rightQuery": q["query"], "format": "svg"}).text
    assert "diff: api · CPU time" in diff and CPU_TYPE not in diff
    r = httpx.get(server.url + "/api/v1/export", params={**q, "format": "svg", "icicle": "maybe"})
    assert r.status_code == 400 and "icicle" in r.json()["message"]
