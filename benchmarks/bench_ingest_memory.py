"""Peak server memory per ingest request: the worst accepted request of each ingest type.

For every case a fresh ``fleetprof serve`` (default limits, ``file://`` + SQLite in a
temporary directory) starts on 127.0.0.1; its idle RSS is read from ``/proc/<pid>/status``
once it is ready, the kernel's peak-RSS mark is reset (``/proc/<pid>/clear_refs``; a 5 ms
RSS sampler stands in where that is not allowed), the request is sent and the peak
(``VmHWM``) read after the answer. Printed per case: the answer, the idle and peak RSS,
the peak's growth over idle and the ratio peak/idle (both measured in the same run).

Cases, each built to the default limits (16 MiB decompressed, 250,000 samples and
2,000,000 frames per request, ratio 100, stacks of 1,024 frames): Connect push and ``/ingest`` pprof (many short distinct stacks; deep
stacks; a large string table), folded (long distinct stacks; short lines of distinct
frames), lines, speedscope, the largest real JFR recording in ``../shared/fixtures/jfr``
when present, and three of the worst requests sent at once (the decode gate admits two;
the third is answered 429). The largest peak among the accepted single requests is
printed last as the worst request found.

``python -m benchmarks.bench_ingest_memory [--only folded,pprof-push]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
JFR_DIR = REPO.parent / "shared" / "fixtures" / "jfr"
MIB = 1024 * 1024
CAP = 16 * MIB - 64 * 1024  # just under the default decompressed cap (room for the envelope)
MAX_SAMPLES = 250_000
MAX_FRAMES = 2_000_000
PUSH = "/push.v1.PusherService/Push"


# ---- payloads --------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _int(num: int, v: int) -> bytes:
    return _varint(num << 3) + _varint(v)


def pprof(n_funcs: int, stacks: list[list[int]], name_len: int = 12) -> bytes:
    """A pprof (uncompressed) with ``n_funcs`` functions/locations (ids 1..n) and one
    sample of value 1 per stack (location ids, leaf first)."""
    strings = ["", "cpu", "nanoseconds", "app.py"] + [f"f{i:0{name_len}d}" for i in range(n_funcs)]
    parts = [_field(1, _int(1, 1) + _int(2, 2))]
    for st in stacks:
        locs = b"".join(_varint(x) for x in st)
        parts.append(_field(2, _field(1, locs) + _field(2, b"\x01")))
    for i in range(1, n_funcs + 1):
        parts.append(_field(4, _int(1, i) + _field(4, _int(1, i) + _int(2, 1))))
        parts.append(_field(5, _int(1, i) + _int(2, 3 + i) + _int(3, 3 + i) + _int(4, 3)))
    parts += [_field(6, s.encode()) for s in strings]
    parts += [_int(9, time.time_ns()), _int(10, 10**10), _field(11, _int(1, 1) + _int(2, 2)), _int(12, 10_000_000)]
    return b"".join(parts)


def pprof_many_stacks() -> bytes:
    """Short random stacks over 2,000 functions: as many samples as the limits allow."""
    rng = random.Random(1)
    stacks, size = [], 0
    while len(stacks) < MAX_SAMPLES - 1 and size < CAP - 400_000:
        st = [rng.randrange(1, 2001) for _ in range(5)]
        stacks.append(st)
        size += 18
    return pprof(2000, stacks)


def pprof_deep() -> bytes:
    """1,024-frame distinct stacks over 8,000 functions, up to the frames cap."""
    rng = random.Random(2)
    n = min((CAP - 600_000) // (2 * 1024 + 8), MAX_FRAMES // 1024)
    return pprof(8000, [[rng.randrange(1, 8001) for _ in range(1024)] for _ in range(n)])


def pprof_strings() -> bytes:
    """A large string table: 110,000 functions with 100-character names, one sample each."""
    n = 110_000
    return pprof(n, [[i] for i in range(1, n + 1)], name_len=100)


def push_of(raw: bytes) -> bytes:
    from fleetprof.formats.proto import push_pb2

    req = push_pb2.PushRequest()
    s = req.series.add()
    for k, v in (("__name__", "process_cpu"), ("service_name", "bench")):
        s.labels.add(name=k, value=v)
    s.samples.add(raw_profile=raw, ID="x")
    return req.SerializeToString()


def folded_long() -> bytes:
    """Distinct 30-frame stacks of ``package.module.function`` frames up to the cap."""
    rng = random.Random(3)
    names = [f"pkg{i % 50}.mod{i % 37}.func{i}" for i in range(20_000)]
    lines, size = [], 0
    while size < CAP - 2000:
        line = ";".join(rng.choice(names) for _ in range(30)) + f" {rng.randrange(1, 100)}\n"
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()


def folded_short() -> bytes:
    """The sample limit of one-frame lines, every frame distinct."""
    return "".join(f"f{i} 1\n" for i in range(MAX_SAMPLES)).encode()


def lines_distinct() -> bytes:
    """The sample limit of two-frame ``lines`` stacks, every frame distinct."""
    return "".join(f"a{i};b{i}\n" for i in range(MAX_SAMPLES)).encode()


def speedscope() -> bytes:
    """A sampled speedscope profile: the sample limit of 3-frame stacks over 5,000 frames."""
    rng = random.Random(4)
    n = MAX_SAMPLES - 1
    samples = [[rng.randrange(5000) for _ in range(3)] for _ in range(n)]
    doc = {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": f"frame{i}"} for i in range(5000)]},
        "profiles": [{"type": "sampled", "name": "bench", "unit": "none", "startValue": 0, "endValue": n,
                      "samples": samples, "weights": [1] * n}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def largest_jfr() -> bytes | None:
    files = sorted(JFR_DIR.glob("*.jfr*"), key=lambda p: p.stat().st_size) if JFR_DIR.is_dir() else []
    return files[-1].read_bytes() if files else None


# ---- server and measurement ------------------------------------------------------------


def _status(pid: int, key: str) -> int:
    """``VmRSS``/``VmHWM`` of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class Peak:
    """Peak RSS of a process from now on: the kernel's mark after a reset, else sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sampled = 0
        self.stop = threading.Event()
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.kernel = True
        except OSError:
            self.kernel = False
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.sampled = max(self.sampled, _status(self.pid, "VmRSS"))
            time.sleep(0.005)

    def done(self) -> int:
        self.stop.set()
        self.thread.join()
        return max(self.sampled, _status(self.pid, "VmHWM")) if self.kernel else self.sampled


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = tmp / f"data-{self.port}"
        data.mkdir()
        cmd = [sys.executable, "-m", "fleetprof", "serve", "--port", str(self.port), "--storage", data.as_uri(),
               "--index", f"sqlite://{tmp / f'index-{self.port}.db'}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROF_")}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready in time")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Request:
    path: str
    body: bytes
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class Result:
    case: str
    statuses: list[int]
    sent_bytes: int
    idle: int
    peak: int
    seconds: float


def measure(tmp: Path, case: str, requests: list[Request]) -> Result:
    srv = Server(tmp)
    try:
        with httpx.Client(base_url=srv.url, timeout=600) as c:
            c.get("/api/v1/services")  # one round trip through the app first
        time.sleep(0.5)
        idle = _status(srv.proc.pid, "VmRSS")
        peak = Peak(srv.proc.pid)
        t0 = time.perf_counter()

        def send(r: Request) -> int:
            with httpx.Client(base_url=srv.url, timeout=600) as c:
                return c.post(r.path, content=r.body, params=r.params, headers=r.headers).status_code

        with ThreadPoolExecutor(len(requests)) as pool:
            statuses = list(pool.map(send, requests))
        seconds = time.perf_counter() - t0
        return Result(case, statuses, sum(len(r.body) for r in requests), idle, peak.done(), seconds)
    finally:
        srv.close()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, 1)


def cases() -> dict[str, Callable[[], list[Request]]]:
    proto = {"content-type": "application/proto", "content-encoding": "gzip"}

    def push(make: Callable[[], bytes]) -> Callable[[], list[Request]]:
        return lambda: [Request(PUSH, _gz(push_of(make())), {}, proto)]

    def ingest(make: Callable[[], bytes], fmt: str, gz: bool = True) -> Callable[[], list[Request]]:
        def build() -> list[Request]:
            body = make()
            return [Request("/ingest", _gz(body) if gz else body, {"name": "bench.cpu", "format": fmt}, {})]
        return build

    out: dict[str, Callable[[], list[Request]]] = {
        "pprof-push-many-stacks": push(pprof_many_stacks),
        "pprof-push-deep": push(pprof_deep),
        "pprof-push-strings": push(pprof_strings),
        "pprof-ingest-many-stacks": ingest(pprof_many_stacks, "pprof"),
        "pprof-ingest-deep": ingest(pprof_deep, "pprof"),
        "folded-long-stacks": ingest(folded_long, "folded"),
        "folded-short-distinct": ingest(folded_short, "folded"),
        "lines-distinct": ingest(lines_distinct, "lines"),
        "speedscope": ingest(speedscope, "speedscope"),
    }
    jfr = largest_jfr()
    if jfr is not None:
        out["jfr-largest-fixture"] = lambda: [Request("/ingest", jfr, {"name": "bench.cpu", "format": "jfr"}, {})]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--concurrent", type=int, default=3, help="copies of the worst request sent at once (0: skip)")
    args = ap.parse_args()
    only = {x for x in args.only.split(",") if x}
    tmp = Path(tempfile.mkdtemp(prefix="fleetprof-bench-mem-"))
    results: list[Result] = []
    built: dict[str, list[Request]] = {}
    print(f"{'case':28} {'status':>10} {'sent':>9} {'idle':>8} {'peak':>8} {'growth':>8} {'peak/idle':>9} {'s':>6}")
    try:
        for name, make in cases().items():
            if only and name not in only:
                continue
            built[name] = make()
            results.append(r := measure(tmp, name, built[name]))
            _print(r)
        accepted = [r for r in results if all(s == 200 for s in r.statuses)]
        if accepted and args.concurrent > 1:
            worst = max(accepted, key=lambda r: r.peak - r.idle)
            r = measure(tmp, f"{args.concurrent}x {worst.case}", built[worst.case] * args.concurrent)
            _print(r)
        if accepted:
            worst = max(accepted, key=lambda r: r.peak - r.idle)
            print(f"\nworst accepted single request: {worst.case}: peak {worst.peak / MIB:.0f} MiB, "
                  f"+{(worst.peak - worst.idle) / MIB:.0f} MiB over idle ({worst.peak / worst.idle:.2f}x idle)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _print(r: Result) -> None:
    status = ",".join(str(s) for s in r.statuses)
    print(f"{r.case:28} {status:>10} {r.sent_bytes / MIB:8.2f}M {r.idle / MIB:7.0f}M {r.peak / MIB:7.0f}M "
          f"{(r.peak - r.idle) / MIB:7.0f}M {r.peak / r.idle:9.2f} {r.seconds:6.1f}", flush=True)


if __name__ == "__main__":
    main()
