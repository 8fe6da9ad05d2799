"""Ingest throughput and ack latency of ``fleetprof serve`` (issue 3 §8).

A server subprocess pinned to one core (``taskset -c 0`` when available) with durable
acks on ``file://`` + SQLite receives pyroscope-io-sized pushes (gzipped
``PushRequest`` holding a 1–2 KB pprof, 100 distinct "instances") from an asyncio httpx
pool of ``--concurrency`` connections (pinned to the other cores). Prints profiles/s and
p50/p99 ack latency, and the same client against the server's trivial ``GET /healthz``
as the reference measured in the same run. Targets: ≥ 1000 profiles/s, p99 < 1 s.

``python -m benchmarks.bench_ingest [--requests 4000] [--seconds 20] [--concurrency 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
PUSH = "/push.v1.PusherService/Push"
HEADERS = {"content-type": "application/proto", "content-encoding": "gzip"}


def make_payloads(n: int, seed: int = 7) -> list[bytes]:
    """``n`` gzipped PushRequests, each one pyroscope-io-like pprof (≈ 1–2 KB gzipped)."""
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
        for k, v in (("__name__", "process_cpu"), ("service_name", f"svc-{i % 5}"), ("instance", f"i-{i % 100}"), ("env", "bench")):
            s.labels.add(name=k, value=v)
        s.samples.add(raw_profile=encode_pprof(prof, compress=False), ID=str(i))
        out.append(gzip.compress(req.SerializeToString()))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int, flush_age: float) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fleetprof", "serve", "--port", str(port), "--storage", (tmp / "data").as_uri(),
           "--index", f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", str(flush_age), "--max-queue", "100000", "--log-level", "warning"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))  # noqa: SIM115


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready")


async def drive(url: str, payloads: list[bytes] | None, total: int, seconds: float, concurrency: int) -> tuple[int, float, np.ndarray, int]:
    """Send up to ``total`` requests (or for ``seconds``): (ok, elapsed, latencies, errors)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    lat: list[float] = []
    errors = 0
    counter = iter(range(total))
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                if payloads is None:
                    r = await client.get("/healthz")
                else:
                    r = await client.post(PUSH, content=payloads[i % len(payloads)], headers=HEADERS)
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return len(lat), elapsed, np.asarray(lat), errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--flush-age", type=float, default=0.5, help="segment writer max batch age (s)")
    args = ap.parse_args()
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    payloads = make_payloads(200)
    sizes = [len(p) for p in payloads]
    print(f"payloads: {len(payloads)} gzipped PushRequests, {min(sizes)}–{max(sizes)} bytes (median {int(np.median(sizes))})")
    tmp = Path(tempfile.mkdtemp(prefix="fleetprof-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(tmp, port, args.flush_age)
    try:
        wait_ready(url, proc)
        asyncio.run(drive(url, payloads, 200, 10, 16))  # warm-up
        ok_ref, el_ref, lat_ref, _ = asyncio.run(drive(url, None, args.requests, args.seconds, args.concurrency))
        ok, el, lat, err = asyncio.run(drive(url, payloads, args.requests, args.seconds, args.concurrency))
        stored = sum(f.stat().st_size for f in (tmp / "data").rglob("*") if f.is_file())
        pinned = "pinned to core 0" if shutil.which("taskset") else "not pinned (no taskset)"
        print(f"server {pinned}; client: asyncio httpx, {args.concurrency} connections; flush age {args.flush_age:g} s; durable file:// + SQLite")
        rate = ok / el
        print(f"ingest:    {ok} profiles acked in {el:.2f} s = {rate:.0f} profiles/s; ack latency p50 {np.percentile(lat, 50) * 1000:.0f} ms, p99 {np.percentile(lat, 99) * 1000:.0f} ms; errors {err}")
        ref = ok_ref / el_ref
        print(f"reference: GET /healthz (trivial 200, same client/server) {ref:.0f} req/s; p99 {np.percentile(lat_ref, 99) * 1000:.0f} ms")
        print(f"ratio ingest/reference: {rate / ref:.2f}; stored {stored / max(ok, 1):.0f} bytes/profile vs {int(np.mean(sizes))} bytes/push gzipped")
        print(f"targets: >= 1000 profiles/s: {'MET' if rate >= 1000 else 'NOT MET'}; p99 < 1 s: {'MET' if np.percentile(lat, 99) < 1 else 'NOT MET'}")
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
