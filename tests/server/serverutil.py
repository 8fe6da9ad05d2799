"""Helpers for server tests: a server subprocess, synthetic pprof payloads, pushes."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np

from fleetprof.formats.pprof_encode import encode_pprof
from fleetprof.formats.proto import push_pb2
from fleetprof.model.profile import Profile, Stacks, ValueType, build

REPO = Path(__file__).resolve().parents[2]
CPU = ValueType("cpu", "nanoseconds")
CPU_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProc:
    """``python -m fleetprof serve`` on 127.0.0.1 with the given storage/index."""

    def __init__(self, storage: str, index: str, *args: str, port: int | None = None, env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "fleetprof", "serve", "--port", str(self.port), "--storage", storage, "--index", index, *args]
        self.log = log
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=out, stderr=out)

    def wait_ready(self, timeout_s: float = 30.0) -> ServerProc:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-3000:] if self.log and self.log.exists() else ""
                raise RuntimeError(f"server exited with {self.proc.returncode}: {tail}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready in time")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def server_list() -> Iterator[list[ServerProc]]:
    """Body of a ``servers`` fixture: a list to append started servers to; every one is
    killed at teardown (``yield from server_list()``)."""
    started: list[ServerProc] = []
    yield started
    for s in started:
        try:
            s.kill()
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def start_server(servers: list[ServerProc], storage: str, index: str, *args: str, tmp: Path | None = None, **kw: object) -> ServerProc:
    """A started server, ready. A free port is taken by the time the server binds it when
    another process got it in between: with a log (``tmp``) that start is retried on a new
    port (unless ``port`` was given)."""
    for attempt in range(3):
        log = (tmp / f"server-{len(servers)}.log") if tmp else None
        s = ServerProc(storage, index, *args, log=log, **kw)  # type: ignore[arg-type]
        servers.append(s)
        try:
            return s.wait_ready()
        except RuntimeError as e:
            if "port" in kw or "address already in use" not in str(e).lower() or attempt == 2:
                raise
    raise AssertionError("unreachable")


def cpu_profile(stacks: Sequence[Sequence[str]], values: Sequence[int], time_ns: int | None = None) -> Profile:
    """A cpu:nanoseconds profile (period cpu:nanoseconds) of ``stacks`` (root first)."""
    names: list[str] = sorted({f for s in stacks for f in s})
    pos = {n: i for i, n in enumerate(names)}
    offsets = np.zeros(len(stacks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in stacks])
    frames = np.array([pos[f] for s in stacks for f in s], dtype=np.int64)
    st = Stacks(names=names, files=["app.py"] * len(names), offsets=offsets, frames=frames, values=np.asarray(values, dtype=np.int64).reshape(-1, 1))
    return build(st, [CPU], period_type=CPU, period=10_000_000, time_nanos=time_ns if time_ns is not None else time.time_ns(), duration_nanos=10**10)


def pprof_bytes(stacks: Sequence[Sequence[str]], values: Sequence[int], time_ns: int | None = None) -> bytes:
    return encode_pprof(cpu_profile(stacks, values, time_ns))


def push_body(service: str, pprof: bytes, labels: dict[str, str] | None = None, name: str = "process_cpu", gz: bool = True) -> bytes:
    """A ``PushRequest`` as the pyroscope-io agent sends it (gzipped proto by default)."""
    req = push_pb2.PushRequest()
    s = req.series.add()
    for k, v in {"__name__": name, "service_name": service, **(labels or {})}.items():
        lp = s.labels.add()
        lp.name, lp.value = k, v
    s.samples.add(raw_profile=pprof, ID="x")
    data = req.SerializeToString()
    return gzip.compress(data) if gz else data


PUSH = "/push.v1.PusherService/Push"
PUSH_HEADERS = {"content-type": "application/proto", "content-encoding": "gzip"}


def folded_of(client: httpx.Client, query: str, tenant: str | None = None, start: str = "now-1h", until: int | None = None) -> dict[str, int]:
    """``{stack: value}`` of ``/api/v1/export?format=folded`` for ``query``."""
    until_ms = until if until is not None else time.time_ns() // 1_000_000 + 120_000
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    r = client.get("/api/v1/export", params={"format": "folded", "query": query, "from": start, "until": str(until_ms)}, headers=headers)
    assert r.status_code == 200, r.text
    out: dict[str, int] = {}
    for line in r.text.splitlines():
        if line.strip():
            stack, _, v = line.rpartition(" ")
            out[stack] = out.get(stack, 0) + int(v)
    return out
