"""fleetprof's own spans from a real server process (``fleetprof serve`` with OTEL_* set):
exported to itself and found through its trace search, without a feedback loop; an
unreachable collector neither breaks serving, floods the log nor hangs the shutdown."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import (  # noqa: E402
    CPU_TYPE,
    PUSH,
    PUSH_HEADERS,
    ServerProc,
    free_port,
    pprof_bytes,
    push_body,
    server_list,
    start_server,
)

QUERY = CPU_TYPE + '{service_name="svc"}'
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
FAST_FLUSH = ("--flush-max-age-s", "0.05")


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


def _backend(tmp: Path) -> tuple[str, str]:
    (tmp / "data").mkdir(exist_ok=True)
    return (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}"


def _push_and_query(url: str, n: int = 1) -> None:
    for i in range(n):
        body = push_body("svc", pprof_bytes([["main", f"work{i}"]], [30_000_000]))
        assert httpx.post(url + PUSH, content=body, headers=PUSH_HEADERS, timeout=30).status_code == 200
    assert httpx.get(url + "/pyroscope/render", params={"query": QUERY, "from": "now-1h"}, timeout=30).status_code == 200


def _search(url: str, **params: str) -> list[dict]:
    r = httpx.get(url + "/api/search", params={"service": "fleetprof-server", "limit": "1000", **params}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["traces"]


def _wait_search(url: str, timeout_s: float = 60.0, **params: str) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = _search(url, **params)
        if found:
            return found
        assert time.monotonic() < deadline, f"no trace for {params} within {timeout_s:g}s"
        time.sleep(0.2)


def _spans_of(url: str, trace_id: str) -> list[dict]:
    r = httpx.get(f"{url}/api/traces/{trace_id}", params={"format": "otlp"}, timeout=30)
    assert r.status_code == 200, r.text
    return [s for rs in r.json()["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def test_server_traces_itself_without_feedback(servers: list[ServerProc], tmp_path: Path) -> None:
    port = free_port()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", **FAST_EXPORT}
    s = start_server(servers, *_backend(tmp_path), *FAST_FLUSH, port=port, env=env, tmp=tmp_path)
    _push_and_query(s.url)
    render = _wait_search(s.url, name="GET /pyroscope/render")
    spans = _spans_of(s.url, render[0]["traceID"])
    root = next(x for x in spans if x["name"] == "GET /pyroscope/render")
    kids = sorted(x["name"] for x in spans if x.get("parentSpanId") == root["spanId"])
    assert kids == ["query.select_merge", "query.select_timeline", "render.flamebearer"]
    flushes = _wait_search(s.url, name="segment.flush")
    flush_spans = _spans_of(s.url, flushes[0]["traceID"])
    assert {x["name"] for x in flush_spans} >= {"segment.flush", "segment.encode", "store.put", "index.add"}
    assert _wait_search(s.url, name="POST /push.v1.PusherService/Push")
    # every export of the server's spans is itself ingested by the server: were that traced,
    # each export would add a flush span to export again, forever
    before = len(_search(s.url, name="segment.flush"))
    time.sleep(2.0)  # ~20 export rounds at OTEL_BSP_SCHEDULE_DELAY=100 ms
    assert len(_search(s.url, name="segment.flush")) == before
    assert s.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown


def test_unreachable_collector_is_harmless(servers: list[ServerProc], tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{dead}/v1/traces", "OTEL_BSP_SCHEDULE_DELAY": "50"}
    s = start_server(servers, *_backend(tmp_path), *FAST_FLUSH, env=env, tmp=tmp_path)
    _push_and_query(s.url, n=5)
    assert s.terminate(timeout_s=60) in (0, -15)  # no hang: the final span flush gives up after ~2 s
    lines = [ln for ln in s.log.read_text(errors="replace").splitlines() if "export" in ln.lower() and "span" in ln.lower()]
    assert len(lines) <= 5, lines  # once per exporter logger and minute, not per batch or retry
