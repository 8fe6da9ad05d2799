"""``make run``'s demo (``python -m fleetprof.demo``) for real: the server, two services
profiled by the pyroscope-io agent and traced with the OpenTelemetry SDK + pyroscope-otel.
Their traces (with errors) and the server's own spans land in the server, and profile
samples carry the span ids, so a span's flame graph has data; Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(what: str, fn: Callable[[], Any], timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = fn()
        except httpx.HTTPError:
            got = None
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g}s"
        time.sleep(0.3)


def _search(url: str, **params: str) -> list[dict[str, Any]]:
    r = httpx.get(url + "/api/search", params={"limit": "50", "start": str(int(time.time()) - 600), **params}, timeout=10)
    r.raise_for_status()
    return r.json()["traces"]


def _trace_spans(url: str, trace_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/traces/{trace_id}", params={"format": "otlp"}, timeout=10)
    r.raise_for_status()
    return [s for rs in r.json()["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def _span_profile_ticks(url: str, service: str, span_name: str) -> int:
    r = httpx.get(url + "/api/v1/span-profile", params={
        "query": f'{CPU}{{service_name="{service}"}}', "spanName": span_name, "from": "now-15m"}, timeout=10)
    r.raise_for_status()
    return int(r.json()["flamebearer"]["numTicks"])


def test_demo_traces_and_span_profiles(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log = (tmp_path / "demo.log").open("wb")
    demo = subprocess.Popen([sys.executable, "-m", "fleetprof.demo", "--port", str(port), "--seconds", "600", "--data", str(tmp_path / "fp")],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _until("json-api request traces", lambda: _search(url, service="json-api", name="GET /api/orders"))
        _until("text-worker batch traces", lambda: _search(url, service="text-worker", name="process access-logs"))
        failed = _until("a failed json-api request", lambda: _search(url, service="json-api", name="GET /api/orders", status="error"))
        spans = _until("the whole failed request", lambda: (lambda s: s if len(s) >= 5 else None)(_trace_spans(url, failed[0]["traceID"])))
        names = {s["name"] for s in spans}
        assert {"GET /api/orders", "SELECT sku", "build_orders", "json.serialize", "validate"} <= names
        root = next(s for s in spans if s["name"] == "GET /api/orders")
        attrs = {a["key"]: a["value"] for a in root["attributes"]}
        assert attrs["http.route"] == {"stringValue": "/api/orders"}
        assert root["status"]["code"] == 2 and any(e["name"] == "exception" for e in root.get("events", []))
        _until("the server's own spans", lambda: _search(url, service="fleetprof-server", name="segment.flush"))
        # the agent uploads every ~10 s; samples taken inside a request span carry its id
        _until("a span flame graph of json-api requests", lambda: _span_profile_ticks(url, "json-api", "GET /api/orders") > 0)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        try:
            rc = demo.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            raise
        log.close()
    assert rc == 0, (tmp_path / "demo.log").read_text()[-3000:]
    _until("every demo process gone", lambda: _group_gone(demo.pid), timeout_s=30)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
