"""Approval workflows run against a freshly deployed stack's URL.

Contract: each workflow returns a :class:`Verdict` (``ok``, a one-line ``summary`` and a
JSON-able ``detail``); network failures are a failed verdict, never an exception.

* :func:`smoke` — ``/readyz`` turns 200 within ``timeout_s``; a profile pushed the way the
  pyroscope agent pushes (Connect ``Push``, gzipped ``PushRequest``) under tenant A is
  read back under tenant A and is invisible under tenant B; the explorer (``/``) loads.
* :func:`load` — the ingest benchmark's payloads (``benchmarks.bench_ingest``) pushed
  ``requests`` times over ``concurrency`` connections; fails when acked pushes/s is below
  ``min_rate``, p99 ack latency above ``max_p99_ms`` or the error ratio above ``max_error_rate``.

Tenants go in ``X-Scope-OrgID``; when the stack uses token auth, ``token_env_a`` /
``token_env_b`` name environment variables holding each tenant's bearer token.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PUSH = "/push.v1.PusherService/Push"
AGENT_HEADERS = {"content-type": "application/proto", "content-encoding": "gzip",
                 "user-agent": "pyroscope-rs/pyspy/1.4.0 reqwest"}
CPU_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def tenant_headers(tenant: str, token_env: str = "") -> dict[str, str]:
    h = {"X-Scope-OrgID": tenant}
    token = os.environ.get(token_env, "") if token_env else ""
    if token:
        h["Authorization"] = f"Bearer {token}"
    return h


def smoke_push_body(service: str, labels: Mapping[str, str], frames: list[str]) -> bytes:
    """A gzipped ``PushRequest`` holding one CPU pprof of the stack ``frames`` (root first)."""
    import numpy as np

    from fleetprof.formats.pprof_encode import encode_pprof
    from fleetprof.formats.proto import push_pb2
    from fleetprof.model.profile import Stacks, ValueType, build

    cpu = ValueType("cpu", "nanoseconds")
    st = Stacks(names=frames, files=["smoke.py"] * len(frames), offsets=np.array([0, len(frames)], dtype=np.int64),
                frames=np.arange(len(frames), dtype=np.int64), values=np.array([[10_000_000]], dtype=np.int64))
    prof = build(st, [cpu], period_type=cpu, period=10_000_000, time_nanos=time.time_ns(), duration_nanos=10**10)
    req = push_pb2.PushRequest()
    s = req.series.add()
    for k, v in {"__name__": "process_cpu", "service_name": service, **labels}.items():
        s.labels.add(name=k, value=v)
    s.samples.add(raw_profile=encode_pprof(prof), ID=uuid.uuid4().hex)
    return gzip.compress(req.SerializeToString())


def _folded(client: httpx.Client, query: str, headers: Mapping[str, str]) -> dict[str, int]:
    until = time.time_ns() // 1_000_000 + 120_000
    r = client.get("/api/v1/export", params={"format": "folded", "query": query, "from": "now-1h", "until": str(until)},
                   headers=dict(headers))
    if r.status_code != 200:
        raise httpx.HTTPError(f"export answered {r.status_code}: {r.text[:200]}")
    out: dict[str, int] = {}
    for line in r.text.splitlines():
        stack, _, v = line.rpartition(" ")
        if stack:
            out[stack] = out.get(stack, 0) + int(v)
    return out


def _wait_ready(client: httpx.Client, deadline: float) -> str:
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = client.get("/readyz")
            if r.status_code == 200:
                return ""
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.5)
    return f"/readyz not ready: {last}"


def smoke(url: str, params: Mapping[str, Any], version: str) -> Verdict:
    """The smoke workflow (module contract)."""
    timeout_s = float(params.get("timeout_s", 60))
    a = tenant_headers(str(params.get("tenant_a", "release-smoke-a")), str(params.get("token_env_a", "")))
    b = tenant_headers(str(params.get("tenant_b", "release-smoke-b")), str(params.get("token_env_b", "")))
    run = uuid.uuid4().hex[:12]
    service = str(params.get("service", "fleetprof-release-smoke"))
    frames = ["main", "release_smoke", f"check_{run}"]
    query = f'{CPU_TYPE}{{service_name="{service}",smoke_run="{run}"}}'
    deadline = time.monotonic() + timeout_s
    try:
        with httpx.Client(base_url=url, timeout=10.0, follow_redirects=True) as c:
            problem = _wait_ready(c, deadline)
            if problem:
                return Verdict(False, problem)
            r = c.post(PUSH, content=smoke_push_body(service, {"smoke_run": run, "version": version}, frames),
                       headers={**AGENT_HEADERS, **a})
            if r.status_code != 200:
                return Verdict(False, f"push answered {r.status_code}: {r.text[:200]}")
            want = ";".join(frames)
            got: dict[str, int] = {}
            while time.monotonic() < deadline and want not in got:
                got = _folded(c, query, a)
                if want not in got:
                    time.sleep(0.2)
            if want not in got:
                return Verdict(False, f"pushed profile not readable back within {timeout_s:g} s")
            leaked = _folded(c, query, b)
            if leaked:
                return Verdict(False, "tenant isolation broken: tenant B reads tenant A's profile")
            page = c.get("/")
            if page.status_code != 200 or "html" not in page.headers.get("content-type", ""):
                return Verdict(False, f"explorer / answered {page.status_code} {page.headers.get('content-type', '')}")
    except httpx.HTTPError as e:
        return Verdict(False, f"smoke against {url}: {type(e).__name__}: {e}")
    return Verdict(True, "ready; push read back; tenants isolated; explorer loads", {"run": run})


# ----------------------------------------------------------------------------- load

def bench_payloads(n: int, repo: Path) -> list[bytes]:
    """The ingest benchmark's pushes (``benchmarks.bench_ingest.make_payloads``)."""
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from benchmarks.bench_ingest import make_payloads

    return make_payloads(n)


async def _drive(url: str, bodies: list[bytes], total: int, conns: int, headers: Mapping[str, str]) -> tuple[float, list[float], int]:
    lat: list[float] = []
    errors = 0
    next_i = 0
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as c:
        async def worker() -> None:
            nonlocal next_i, errors
            while next_i < total:
                i = next_i
                next_i += 1
                t0 = time.perf_counter()
                try:
                    r = await c.post(PUSH, content=bodies[i % len(bodies)], headers={**AGENT_HEADERS, **headers})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        return time.perf_counter() - t0, lat, errors


def load(url: str, params: Mapping[str, Any], repo: Path) -> Verdict:
    """The load workflow (module contract)."""
    import numpy as np

    total = int(params.get("requests", 2000))
    conns = max(1, int(params.get("concurrency", 32)))
    headers = tenant_headers(str(params.get("tenant", "release-load")), str(params.get("token_env", "")))
    elapsed, lat, errors = asyncio.run(_drive(url, bench_payloads(100, repo), total, conns, headers))
    rate = len(lat) / elapsed if elapsed > 0 else 0.0
    p99_ms = float(np.percentile(lat, 99) * 1000) if lat else float("inf")
    err_ratio = errors / total if total else 0.0
    detail = {"requests": total, "acked": len(lat), "errors": errors, "seconds": round(elapsed, 3),
              "rate": round(rate, 1), "p99_ms": round(p99_ms, 1)}
    failures = []
    if rate < float(params.get("min_rate", 0)):
        failures.append(f"{rate:.0f} pushes/s < min_rate {params['min_rate']}")
    if p99_ms > float(params.get("max_p99_ms", 1000)):
        failures.append(f"p99 {p99_ms:.0f} ms > max_p99_ms {params.get('max_p99_ms', 1000)}")
    if err_ratio > float(params.get("max_error_rate", 0.0)):
        failures.append(f"error ratio {err_ratio:.3f} > max_error_rate {params.get('max_error_rate', 0.0)}")
    summary = "; ".join(failures) if failures else f"{rate:.0f} pushes/s, p99 {p99_ms:.0f} ms, {errors} errors"
    return Verdict(not failures, summary, detail)
