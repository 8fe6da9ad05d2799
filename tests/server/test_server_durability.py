"""Durability, statelessness and graceful shutdown against real server subprocesses."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serverutil import (
    CPU_TYPE,
    PUSH,
    PUSH_HEADERS,
    ServerProc,
    folded_of,
    pprof_bytes,
    push_body,
    server_list,
    start_server,
)


@pytest.fixture
def servers() -> Iterator[list[ServerProc]]:
    yield from server_list()


CLIENTS = 4
PER_CLIENT = 60
QUERY = CPU_TYPE + '{service_name="durable"}'


def _value(c: int, i: int) -> int:
    return (c * 1000 + i + 1) * 10_000_000


def _push_until_dead(url: str, c: int, acked: set[tuple[str, int]], lock: threading.Lock) -> None:
    """Push PER_CLIENT profiles (one unique stack each); record the acknowledged ones."""
    with httpx.Client(base_url=url, timeout=10) as h:
        for i in range(PER_CLIENT):
            stack = ["main", f"client{c}", f"c{c}p{i}"]
            body = push_body("durable", pprof_bytes([stack], [_value(c, i)]), {"client": str(c)})
            try:
                r = h.post(PUSH, content=body, headers=PUSH_HEADERS)
            except httpx.HTTPError:
                return
            if r.status_code != 200:
                return
            with lock:
                acked.add((";".join(stack), _value(c, i)))


def test_acked_profiles_survive_sigkill_exactly_once(backend: tuple[str, str], servers: list[ServerProc], tmp_path: Path) -> None:
    store, index = backend
    srv = start_server(servers, store, index, "--flush-max-age-s", "0.1", tmp=tmp_path)
    acked: set[tuple[str, int]] = set()
    lock = threading.Lock()
    threads = [threading.Thread(target=_push_until_dead, args=(srv.url, c, acked, lock)) for c in range(CLIENTS)]
    for t in threads:
        t.start()
    delay = random.Random().uniform(0.4, 1.5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(acked) < 3:  # make sure some pushes were acked
        time.sleep(0.02)
    time.sleep(delay)
    srv.kill()
    for t in threads:
        t.join(30)
    assert acked, "no push was acknowledged before the kill"
    sent = {f"main;client{c};c{c}p{i}": _value(c, i) for c in range(CLIENTS) for i in range(PER_CLIENT)}

    srv2 = start_server(servers, store, index, tmp=tmp_path)
    with httpx.Client(base_url=srv2.url, timeout=30) as h:
        got = folded_of(h, QUERY)
    for stack, value in acked:
        assert got.get(stack) == value, f"acked {stack} has {got.get(stack)} (want exactly {value})"
    for stack, value in got.items():
        assert stack in sent, f"unexpected stack {stack}"
        assert value == sent[stack], f"unacked {stack} is partial or duplicated: {value} vs {sent[stack]}"


def test_two_replicas_on_s3_dynamodb_answer_identically(s3_store_url: str, dynamo_index_url: str, servers: list[ServerProc], tmp_path: Path) -> None:
    a = start_server(servers, s3_store_url, dynamo_index_url, "--flush-max-age-s", "0.1", tmp=tmp_path)
    b = start_server(servers, s3_store_url, dynamo_index_url, tmp=tmp_path)
    with httpx.Client(base_url=a.url, timeout=30) as ha, httpx.Client(base_url=b.url, timeout=30) as hb:
        for i in range(5):
            body = push_body("shared", pprof_bytes([["main", "work", f"f{i % 2}"], ["main", "idle"]], [10_000_000 * (i + 1), 10_000_000]), {"pod": f"p{i % 3}"})
            assert ha.post(PUSH, content=body, headers=PUSH_HEADERS).status_code == 200
        r = ha.post("/ingest", params={"name": "shared.cpu{pod=p9}", "from": "now-5s", "sampleRate": "100"}, content=b"main;legacy 7\n")
        assert r.status_code == 200, r.text
        until = str(time.time_ns() // 1_000_000 + 60_000)
        paths = [
            ("/pyroscope/render", {"query": CPU_TYPE + '{service_name="shared"}', "from": "now-1h", "until": until}),
            ("/pyroscope/label-names", {"from": "now-1h", "until": until}),
            ("/pyroscope/label-values", {"label": "pod", "from": "now-1h", "until": until}),
            ("/api/v1/export", {"format": "folded", "query": CPU_TYPE + '{service_name="shared",pod=~"p[01]"}', "from": "now-1h", "until": until}),
            ("/api/v1/services", {"from": "now-1h", "until": until}),
        ]
        for path, params in paths:
            ra, rb = ha.get(path, params=params), hb.get(path, params=params)
            assert ra.status_code == rb.status_code == 200, (path, ra.text, rb.text)
            if path == "/pyroscope/render":
                ja, jb = ra.json(), rb.json()
                ja["timeline"] = jb["timeline"] = None  # both see the same data; "now" differs by ms
                assert ja == jb
                assert ja["flamebearer"]["numTicks"] == 10_000_000 * (1 + 2 + 3 + 4 + 5) + 5 * 10_000_000 + 70_000_000
            else:
                assert ra.content == rb.content, path
        assert hb.get("/pyroscope/label-values", params={"label": "pod", "from": "now-1h", "until": until}).json() == ["p0", "p1", "p2", "p9"]


def _received_push_bytes(url: str, timeout_s: float) -> bool:
    """Whether the server read a push body (its ``fleetprof_ingest_bytes`` counter for the
    push route is above 0) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
            if line.startswith('fleetprof_ingest_bytes_total{route="push"}') and float(line.split()[-1]) > 0:
                return True
        time.sleep(0.05)
    return False


def test_sigterm_flushes_pending_and_acks_in_flight(tmp_path: Path, servers: list[ServerProc]) -> None:
    store, index = (tmp_path / "data").as_uri(), f"sqlite://{tmp_path / 'index.db'}"
    srv = start_server(servers, store, index, "--flush-max-age-s", "60", tmp=tmp_path)
    result: dict[str, int] = {}

    def push() -> None:
        body = push_body("graceful", pprof_bytes([["main", "pending"]], [123_000_000]))
        result["status"] = httpx.post(srv.url + PUSH, content=body, headers=PUSH_HEADERS, timeout=30).status_code

    t = threading.Thread(target=push)
    t.start()
    assert _received_push_bytes(srv.url, 60), "the server never received the push"
    assert "status" not in result  # the push now waits for a flush that is 60 s away
    assert srv.terminate(30) in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    t.join(30)
    assert result.get("status") == 200
    srv2 = start_server(servers, store, index, tmp=tmp_path)
    with httpx.Client(base_url=srv2.url, timeout=30) as h:
        assert folded_of(h, CPU_TYPE + '{service_name="graceful"}') == {"main;pending": 123_000_000}
