"""Ingest throughput and ack latency of ``fleetprof serve``.

A server subprocess pinned to one core (``taskset -c 0`` when available) with durable
acks on ``file://`` + SQLite receives pyroscope-io-sized pushes: gzipped ``PushRequest``
holding a 1–2 KB pprof, 100 distinct "instances", sent with the exact headers the
pyroscope-io 1.4 agent sends (``tests/formats/data/pyroscope_io_1.4_push.json``).

The load generator is ``--procs`` worker processes (pinned to the other cores), each a
raw asyncio (uvloop when installed) HTTP/1.1 keep-alive client: pre-built request bytes,
one request in flight per connection, the response parsed from its status line and
``Content-Length``; per-request ack latency is recorded. The same client first drives
the server's trivial ``GET /healthz`` (the reference: what the client + HTTP stack can do
at all), and the ratio is printed. Figures are wall-clock plus the server's CPU time
(``/proc/<pid>/stat``), so that a shared machine does not hide the per-profile cost.
Every phase is bounded by ``--requests`` and ``--seconds``; loopback only.

Targets: ≥ 1000 profiles/s on one server core, p99 ack < 1 s.

Phases: reference (closed loop), ingest capacity (closed loop: every connection sends its next
push as soon as the previous is acked), and ingest at an offered rate (open loop, like a
fleet of agents each pushing on a timer: ``--open-connections`` connections, ``--rate``
pushes/s in all). The target is judged on the open-loop phase: the pushes acked per second
in steady state (acks completed from 2 s into the phase to the end of its sending window,
so neither connection start-up nor the final drain counts), no errors, and p99 ack < 1 s.
The wall rate including the drain is printed too. The server runs with
``--flush-max-age-s 0.3`` (``--flush-age``): an ack waits for its batch's flush, so the
server's default batch age of 1 s alone would put p99 above 1 s.

``python -m benchmarks.bench_ingest [--requests 20000] [--seconds 15] [--concurrency 256] [--rate 1100] [--procs 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PUSH = "/push.v1.PusherService/Push"
N_INSTANCES = 100


def make_payloads(n: int = N_INSTANCES, seed: int = 7) -> list[bytes]:
    """``n`` gzipped PushRequests, each one pyroscope-io-like pprof (≈ 1–2 KB gzipped)."""
    import gzip
    import random

    from fleetprof.formats.pprof_encode import encode_pprof
    from fleetprof.formats.proto import push_pb2
    from fleetprof.model.profile import Stacks, ValueType, build

    rng = random.Random(seed)
    funcs = [f"{m}.{f}" for m in ("app", "json", "hashlib", "re", "threading", "http") for f in ("run", "handle", "encode", "decode", "parse", "loop", "step", "wait")]
    cpu = ValueType("cpu", "nanoseconds")
    out = []
    for i in range(n):
        stacks = [["<module>", "main"] + rng.sample(funcs, rng.randint(4, 12)) for _ in range(rng.randint(25, 40))]
        names = sorted({f for s in stacks for f in s})
        pos = {x: k for k, x in enumerate(names)}
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in stacks])]).astype(np.int64)
        frames = np.array([pos[f] for s in stacks for f in s], dtype=np.int64)
        values = np.array([[rng.randint(1, 50) * 10_000_000] for _ in stacks], dtype=np.int64)
        st = Stacks(names=names, files=[f"/srv/app/{x.split('.')[0]}.py" for x in names], offsets=offsets, frames=frames, values=values)
        prof = build(st, [cpu], period_type=cpu, period=10_000_000, time_nanos=time.time_ns(), duration_nanos=10**10)
        req = push_pb2.PushRequest()
        s = req.series.add()
        labels = (("__name__", "process_cpu"), ("service_name", f"svc-{i % 5}"), ("instance", f"i-{i % n}"), ("env", "bench"),
                  ("otel.scope.name", "com.grafana.pyroscope/python"), ("otel.scope.version", "1.4.0"),
                  ("process.runtime.name", "cpython"), ("process.runtime.version", "3.11.7"))  # as the agent sends them
        for k, v in labels:
            s.labels.add(name=k, value=v)
        s.samples.add(raw_profile=encode_pprof(prof, compress=False), ID=str(i))
        out.append(gzip.compress(req.SerializeToString()))
    return out


def push_request(port: int, body: bytes) -> bytes:
    """The HTTP/1.1 request pyroscope-io 1.4 (pyroscope-rs, reqwest) sends."""
    head = (
        f"POST {PUSH} HTTP/1.1\r\nuser-agent: pyroscope-rs/pyspy/1.4.0 reqwest\r\ncontent-type: application/proto\r\n"
        f"content-encoding: gzip\r\naccept: */*\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get_request(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nuser-agent: fleetprof-bench\r\naccept: */*\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()


# --------------------------------------------------------------------------- client

class _Conn(asyncio.Protocol):
    """One keep-alive connection: send, read one response, record, repeat."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.buf = bytearray()
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.next_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self, at: float) -> None:
        """First request at ``at`` (perf_counter): connections start staggered."""
        self.next_at = at
        asyncio.get_running_loop().call_at(asyncio.get_running_loop().time() + max(0.0, at - time.perf_counter()), self.send)

    def send(self) -> None:
        if self.run.period > 0:  # open loop: this connection's next slot (or now, if late)
            delay = self.next_at - time.perf_counter()
            if delay > 0.0005:
                asyncio.get_running_loop().call_later(delay, self.send)
                return
            self.next_at = max(self.next_at, time.perf_counter() - self.run.period) + self.run.period
        i = self.run.take()
        if i < 0:
            self.busy = False
            assert self.transport is not None
            self.transport.close()
            return
        self.busy = True
        self.t0 = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.run.requests[i % len(self.run.requests)])

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            k = head.find(b"content-length:")
            length = int(head[k + 15:head.find(b"\r\n", k) if head.find(b"\r\n", k) > 0 else None]) if k >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            status = int(head[9:12])
            del self.buf[:end + 4 + length]
            self.run.record(status, time.perf_counter() - self.t0)
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.run.record(0, time.perf_counter() - self.t0)
        self.run.closed()


class _Run:
    def __init__(self, requests: list[bytes], count: int, seconds: float, period: float = 0.0) -> None:
        self.requests = requests
        self.count = count
        self.seconds = seconds
        self.period = period  # open loop: seconds between one connection's requests (0: closed loop)
        self.deadline = time.perf_counter() + seconds
        self.next = 0
        self.lat = np.zeros(count, dtype=np.float64)
        self.acked_at = np.zeros(count, dtype=np.float64)  # perf_counter of each response
        self.status = np.zeros(count, dtype=np.int16)
        self.done = 0
        self.open = 0
        self.finished: asyncio.Future[None] | None = None

    def take(self) -> int:
        if self.next >= self.count or time.perf_counter() > self.deadline:
            return -1
        self.next += 1
        return self.next - 1

    def record(self, status: int, seconds: float) -> None:
        self.lat[self.done] = seconds
        self.acked_at[self.done] = time.perf_counter()
        self.status[self.done] = status
        self.done += 1

    def closed(self) -> None:
        self.open -= 1
        if self.open == 0 and self.finished is not None and not self.finished.done():
            self.finished.set_result(None)


async def _drive(port: int, requests: list[bytes], count: int, seconds: float, conns: int, rate: float) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Open every connection first, then start them (staggered over one period in open
    loop, ``rate`` requests/s in all; at once in closed loop)."""
    loop = asyncio.get_running_loop()
    period = conns / rate if rate > 0 else 0.0
    run = _Run(requests, count, seconds, period)
    run.finished = loop.create_future()
    run.open = conns
    made: list[_Conn] = []
    for _ in range(conns):
        made.append((await loop.create_connection(lambda: _Conn(run), "127.0.0.1", port))[1])
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()
    run.deadline = t0 + seconds
    for k, c in enumerate(made):
        c.start(t0 + (period * k / conns if period else 0.0))
    await asyncio.wait_for(run.finished, seconds + 60)
    return time.perf_counter() - t0, run.lat[:run.done], run.status[:run.done], run.acked_at[:run.done] - t0


def client_worker(port: int, requests: list[bytes], count: int, seconds: float, conns: int, rate: float, cpus: list[int] | None, start_at: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One load-generator process: ``conns`` connections, up to ``count`` requests."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    time.sleep(max(0.0, start_at - time.time()))
    c0 = time.process_time()
    elapsed, lat, status, acked_at = asyncio.run(_drive(port, requests, count, seconds, conns, rate))
    out.put((elapsed, lat, status, time.process_time() - c0, acked_at))


def load(port: int, requests: list[bytes], total: int, seconds: float, conns: int, procs: int, cpus: list[int] | None, rate: float = 0.0) -> dict[str, float | np.ndarray]:
    """Run ``procs`` client processes; aggregate their results."""
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 1.5  # all processes start together, after their imports
    ps = [ctx.Process(target=client_worker, args=(port, requests, total // procs, seconds, max(1, conns // procs), rate / procs, cpus, start_at, q), daemon=True) for _ in range(procs)]
    for p in ps:
        p.start()
    try:
        res = [q.get(timeout=seconds + 120) for _ in ps]
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()
    lat = np.concatenate([r[1] for r in res])
    status = np.concatenate([r[2] for r in res])
    acked_at = np.concatenate([r[4] for r in res])
    ok = status == 200
    return {"elapsed": max(r[0] for r in res), "lat": lat[ok], "ok": float(ok.sum()), "errors": float((~ok).sum()), "status": status,
            "client_cpu": sum(r[3] for r in res), "acked_at": acked_at[ok]}


STEADY_FROM_S = 2.0
"""Acks before this many seconds into a phase are warm-up (connections still starting)."""


# --------------------------------------------------------------------------- server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int, flush_age: float, max_queue: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fleetprof", "serve", "--port", str(port), "--storage", (tmp / "data").as_uri(),
           "--index", f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", str(flush_age), "--max-queue", str(max_queue), "--log-level", "warning"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))  # noqa: SIM115


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(get_request(port, "/readyz").replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))
                if s.recv(64)[9:12] == b"200":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(proc: subprocess.Popen[bytes]) -> int:
    """The Python process (``taskset`` execs it, so it is the same pid)."""
    return proc.pid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=20000, help="requests per phase (upper bound)")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds per phase (upper bound)")
    ap.add_argument("--concurrency", type=int, default=256, help="connections in total")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--flush-age", type=float, default=0.3, help="segment writer max batch age (s); the server default is 1 s")
    ap.add_argument("--max-queue", type=int, default=100000)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--rate", type=float, default=1100.0, help="open-loop phase: offered pushes/s in all (0: skip it)")
    ap.add_argument("--open-connections", type=int, default=2000, help="connections of the open-loop phase (agents)")
    args = ap.parse_args()
    ncpu = os.cpu_count() or 1
    pin = shutil.which("taskset") is not None and ncpu > 1
    client_cpus = list(range(1, ncpu)) if pin else None
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    payloads = make_payloads()
    sizes = [len(p) for p in payloads]
    print(f"payloads: {len(payloads)} gzipped PushRequests (distinct instances), {min(sizes)}–{max(sizes)} bytes (median {int(np.median(sizes))})")
    tmp = Path(tempfile.mkdtemp(prefix="fleetprof-bench-"))
    port = free_port()
    proc = start_server(tmp, port, args.flush_age, args.max_queue)
    pushes = [push_request(port, p) for p in payloads]
    try:
        wait_ready(port, proc)
        pid = server_pid(proc)
        load(port, pushes, 500, 10, 16, 1, client_cpus)  # warm-up

        def phase(requests: list[bytes], conns: int, rate: float = 0.0) -> dict[str, float | np.ndarray]:
            c0, l0 = cpu_seconds(pid), os.getloadavg()[0]
            r = load(port, requests, args.requests, args.seconds, conns, args.procs, client_cpus, rate)
            r["server_cpu"], r["load"] = cpu_seconds(pid) - c0, (l0 + os.getloadavg()[0]) / 2
            r["rate"] = r["ok"] / r["elapsed"]
            # steady state: acks completed between the warm-up and the end of the sending window
            lo, hi = min(STEADY_FROM_S, args.seconds / 4), args.seconds
            r["steady"] = float(((r["acked_at"] >= lo) & (r["acked_at"] < hi)).sum()) / (hi - lo)
            r["per_cpu"] = r["ok"] / max(r["server_cpu"], 1e-9)
            r["p50"], r["p99"] = (float(np.percentile(r["lat"], q) * 1000) if len(r["lat"]) else float("nan") for q in (50, 99))
            return r

        def show(name: str, r: dict[str, float | np.ndarray], what: str) -> None:
            codes = {int(k): int(v) for k, v in zip(*np.unique(r["status"], return_counts=True), strict=True) if k != 200}
            print(f"{name:10s} {int(r['ok'])} {what} in {r['elapsed']:.2f} s = {r['rate']:.0f}/s (wall, drain included), "
                  f"{r['steady']:.0f}/s steady (acks from {min(STEADY_FROM_S, args.seconds / 4):g} s to {args.seconds:g} s); ack p50 {r['p50']:.0f} ms, "
                  f"p99 {r['p99']:.0f} ms; non-200 {int(r['errors'])} {codes or ''}")
            print(f"{'':10s} server CPU {r['server_cpu']:.2f} s = {r['per_cpu']:.0f} per server-CPU-second "
                  f"({r['server_cpu'] / r['elapsed'] * 100:.0f}% of its core); client CPU {r['client_cpu']:.2f} s; load average {r['load']:.2f}")

        pinned = "server pinned to core 0, clients to the other cores" if pin else "not pinned"
        print(f"{pinned}; client: {args.procs} process(es) x raw asyncio HTTP/1.1 keep-alive; flush age {args.flush_age:g} s; "
              f"durable file:// + SQLite; {ncpu} cores (shared: see load average)")
        ref = None if args.no_reference else phase([get_request(port, "/healthz")], args.concurrency)
        cap = phase(pushes, args.concurrency)
        stored = sum(f.stat().st_size for f in (tmp / "data").rglob("*") if f.is_file())
        if ref is not None:
            show("reference", ref, f"GET /healthz ({args.concurrency} conns, closed loop)")
        show("capacity", cap, f"pushes acked ({args.concurrency} conns, closed loop)")
        if ref is not None:
            print(f"{'':10s} ratio ingest/reference: {cap['rate'] / ref['rate']:.2f} (wall), {cap['per_cpu'] / ref['per_cpu']:.2f} (server CPU)")
        print(f"{'':10s} stored {stored / max(cap['ok'], 1):.0f} bytes/profile vs {int(np.mean(sizes))} bytes/push gzipped")
        final = cap
        if args.rate > 0:
            final = phase(pushes, args.open_connections, args.rate)
            show("open loop", final, f"pushes acked at an offered {args.rate:g}/s ({args.open_connections} conns)")
        ok_rate = final["steady"] >= 1000 and final["errors"] == 0
        print(f"targets: >= 1000 profiles/s: {'MET' if ok_rate else 'NOT MET'} ({final['steady']:.0f}/s acked in steady state, "
              f"{cap['per_cpu']:.0f} per server-CPU-second at capacity); "
              f"p99 < 1 s: {'MET' if final['p99'] < 1000 else 'NOT MET'} ({final['p99']:.0f} ms)")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
