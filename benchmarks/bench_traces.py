"""Traces: span ingest with durable ack over HTTP, lookup by trace id and search over an
hour of spans, storage bytes per span.

1. Ingest: one server process (file + SQLite storage) pinned to CPU 0 (as ``taskset -c 0``:
   every thread), ``--clients`` threads of this process pinned to the other CPUs, each
   exporting OTLP/HTTP protobuf requests of ``--batch`` spans (gzip, as the SDK exporter
   sends) and waiting for the answer, as the SDK's batch processor does; spans/s over the run
   (wall clock) and per second of server CPU time (what one dedicated core would do: robust
   on a shared machine), and the p50/p99 time to the acknowledgement seen by the clients.
   Targets: >= 20,000 spans/s on one core, p99 < 1 s.
2. Query: ``--hour-spans`` spans (default 1M; traces of 10 spans with 8 attributes each)
   spread over one hour in 60 L0 span segments, written through the span segment encoder;
   trace lookups by id and searches (tag + duration) over the hour, in process and over
   HTTP against a fresh server process (pinned to CPU 0), cold (no decoded segment cached)
   and warm. Targets: lookup < 100 ms, search < 500 ms.
3. Storage: segment bytes per span against the OTLP protobuf bytes of the same spans
   (uncompressed and gzip), the reference measured in the same run.
4. Ingest stages in process: CPU time per span of protobuf parse, decode to columns, batch
   table and segment encode (target: <= 25 µs together, leaving a core room for HTTP).

``python -m benchmarks.bench_traces [--quick]`` (``--quick``: 200k spans, shorter ingest).
The load average is printed: on a machine shared with other work, wall-clock figures
drop while the CPU-time figure holds.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from fleetprof.metastore.index import open_index
from fleetprof.storage.objectstore import open_store
from fleetprof.traces import otlp
from fleetprof.traces.cache import CACHE
from fleetprof.traces.format import table_from_chunks
from fleetprof.traces.query import SearchQuery, get_trace, search
from fleetprof.traces.writer import encode_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "server"))
from serverutil import ServerProc  # noqa: E402 - the server tests' process helper

S = 1_000_000_000
ROUTES = ["/cart", "/pay", "/search", "/login", "/items", "/orders", "/users", "/health"]


def make_request(rng: random.Random, traces: int, t0_ns: int, span_s: float) -> otlp.ExportTraceServiceRequest:
    """``traces`` traces of 10 spans (1 SERVER root, 9 children) across 3 services."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    req = ExportTraceServiceRequest()
    groups = []
    for svc in ("frontend", "cart", "db"):
        rs = req.resource_spans.add()
        for k, v in (("service.name", svc), ("deployment.environment", "prod"), ("host.name", f"{svc}-7f9c")):
            rs.resource.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = "opentelemetry.instrumentation.requests", "0.48b0"
        groups.append(ss)
    for _ in range(traces):
        tid = rng.randbytes(16)
        start = t0_ns + int(rng.random() * span_s * S)
        route = rng.choice(ROUTES)
        root_id = rng.randbytes(8)
        dur = int(rng.lognormvariate(17, 1))
        for j in range(10):
            sp = groups[min(j // 4, 2)].spans.add()
            sp.trace_id, sp.span_id = tid, root_id if j == 0 else rng.randbytes(8)
            if j:
                sp.parent_span_id = root_id
            sp.name = f"GET {route}" if j == 0 else f"op-{j}"
            sp.kind = 2 if j == 0 else 3
            sp.start_time_unix_nano = start + j * 1000
            sp.end_time_unix_nano = start + j * 1000 + (dur if j == 0 else dur // 10)
            code = 500 if rng.random() < 0.02 else 200
            if code == 500:
                sp.status.code = 2
            for k, v in (("http.method", "GET"), ("http.route", route), ("net.peer.name", "10.0.3.17"),
                         ("user_agent.original", "python-requests/2.32")):
                sp.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
            for k, n in (("http.status_code", code), ("http.response_content_length", rng.randrange(100, 90_000)),
                         ("thread.id", rng.randrange(1, 64)), ("retry", 0)):
                sp.attributes.append(KeyValue(key=k, value=AnyValue(int_value=n)))
    return req


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process ``pid`` on ``cpus`` (threads started later inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, PermissionError):
            pass


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


@functools.cache
def _cpus() -> tuple[set[int], set[int]]:
    """(server CPUs, client CPUs): CPU 0 for the server, the others for clients."""
    mine = sorted(os.sched_getaffinity(0))
    return {mine[0]}, set(mine[1:]) or {mine[0]}


def start_pinned(storage: str, index: str, log: Path) -> ServerProc:
    srv = ServerProc(storage, index, log=log).wait_ready(120)
    _pin(srv.proc.pid, _cpus()[0])
    return srv


def bench_ingest(tmp: Path, *, clients: int, batch: int, requests_per_client: int) -> dict[str, float]:
    rng = random.Random(1)
    now = time.time_ns()
    bodies = [gzip.compress(make_request(rng, batch // 10, now - 600 * S, 600).SerializeToString(), 1)
              for _ in range(min(64, clients * requests_per_client))]
    srv = start_pinned((tmp / "ingest-data").as_uri(), f"sqlite://{tmp / 'ingest.db'}", tmp / "server.log")
    os.sched_setaffinity(0, _cpus()[1])
    lat: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}

    def client(c: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as h:
            for i in range(requests_per_client):
                body = bodies[(c * requests_per_client + i) % len(bodies)]
                t0 = time.perf_counter()
                r = h.post("/v1/traces", content=body, headers=headers)
                with lock:
                    (lat if r.status_code == 200 else errors).append(time.perf_counter() - t0 if r.status_code == 200 else r.status_code)
    try:
        for _ in range(3):  # the first requests load what the server lazily imports
            warm = httpx.post(srv.url + "/v1/traces", content=bodies[0], headers=headers, timeout=60)
            assert warm.status_code == 200, warm.text
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        cpu0 = _cpu_s(srv.proc.pid)
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = _cpu_s(srv.proc.pid) - cpu0
    finally:
        srv.terminate()
        os.sched_setaffinity(0, _cpus()[0] | _cpus()[1])
    lat.sort()
    spans = len(lat) * batch
    return {"spans_per_s": spans / wall, "spans_per_cpu_s": spans / max(cpu, 1e-9), "server_cpu_s": cpu,
            "p50_ack_s": statistics.median(lat), "p99_ack_s": lat[int(0.99 * (len(lat) - 1))],
            "errors": len(errors), "spans": spans, "wall_s": wall}


def bench_hour(tmp: Path, hour_spans: int) -> dict[str, float]:
    store = open_store((tmp / "hour-data").as_uri())
    index = open_index(f"sqlite://{tmp / 'hour.db'}")
    rng = random.Random(2)
    t0 = (time.time_ns() // (3600 * S) - 2) * 3600 * S
    per_seg = hour_spans // 60
    proto_bytes = gz_bytes = stored = 0
    lookups: list[bytes] = []
    limits = otlp.SpanLimits(max_spans=10**7)
    for m in range(60):
        req = make_request(rng, per_seg // 10, t0 + m * 60 * S, 60)
        raw = req.SerializeToString()
        proto_bytes += len(raw)
        gz_bytes += len(gzip.compress(raw, 6))
        lookups.append(req.resource_spans[0].scope_spans[0].spans[rng.randrange(len(req.resource_spans[0].scope_spans[0].spans))].trace_id)
        chunk, _, _ = otlp.to_chunk(req, t0 + 3600 * S, limits)
        data, entry = encode_table("bench", table_from_chunks([chunk]), now_ms=t0 // 10**6 + m * 60_000)
        store.put(entry.key, data)
        index.add(entry)
        stored += len(data)
    spans = per_seg // 10 * 10 * 60
    q = SearchQuery(start_ns=t0, end_ns=t0 + 3600 * S, tags={"http.route": "/pay"}, min_duration_ns=50_000_000, limit=20)

    def timed(fn) -> float:  # noqa: ANN001
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    CACHE.clear()
    cold_lookup = timed(lambda: get_trace(store, index, "bench", lookups[0], t0, t0 + 3600 * S))
    CACHE.clear()
    cold_search = timed(lambda: search(store, index, "bench", q))
    warm_lookups = sorted(timed(lambda tid=tid: get_trace(store, index, "bench", tid, t0, t0 + 3600 * S)) for tid in lookups[1:21])
    found = [len(get_trace(store, index, "bench", tid)) for tid in lookups[:5]]
    assert all(n >= 1 for n in found), found
    warm_search = sorted(timed(lambda: search(store, index, "bench", q)) for _ in range(5))
    hits = len(search(store, index, "bench", q))
    http = _http_queries(tmp, lookups, t0)
    return {**http, "spans": spans, "segments": 60, "lookup_cold_ms": cold_lookup * 1e3, "lookup_warm_median_ms": statistics.median(warm_lookups) * 1e3,
            "lookup_warm_max_ms": warm_lookups[-1] * 1e3, "search_cold_ms": cold_search * 1e3,
            "search_warm_median_ms": statistics.median(warm_search) * 1e3, "search_hits": hits,
            "stored_bytes_per_span": stored / spans, "otlp_proto_bytes_per_span": proto_bytes / spans,
            "otlp_gzip_bytes_per_span": gz_bytes / spans}


def bench_stages(rounds: int = 3) -> dict[str, float]:
    """In-process CPU per span of each ingest stage over 40 requests of 500 spans (the best
    of ``rounds``): protobuf parse, decode to columns, batch table, segment encode."""
    from fleetprof.traces.format import encode

    rng = random.Random(3)
    now = time.time_ns()
    bodies = [make_request(rng, 50, now - 600 * S, 600).SerializeToString() for _ in range(40)]
    limits = otlp.SpanLimits()
    best: dict[str, float] = {}
    for _ in range(rounds):
        t = {"parse": 0.0, "decode": 0.0, "table": 0.0, "encode": 0.0}
        chunks = []
        for b in bodies:
            t0 = time.process_time()
            req = otlp.parse_protobuf(b, limits)
            t1 = time.process_time()
            chunks.append(otlp.to_chunk(req, now, limits, body=b)[0])
            t["parse"] += t1 - t0
            t["decode"] += time.process_time() - t1
        t0 = time.process_time()
        table = table_from_chunks(chunks)
        t1 = time.process_time()
        encode(table, tenant="bench", level=0, created_ms=1)
        t["table"], t["encode"] = t1 - t0, time.process_time() - t1
        for k, v in t.items():
            best[k] = min(best.get(k, 1e9), v / (len(bodies) * 500) * 1e6)
    return best


def _http_queries(tmp: Path, lookups: list[bytes], t0: int) -> dict[str, float]:
    """Lookups and searches over HTTP against a fresh server process on the hour's data
    (the first of each cold, then warm medians)."""
    srv = start_pinned((tmp / "hour-data").as_uri(), f"sqlite://{tmp / 'hour.db'}", tmp / "hour-server.log")
    span = {"start": str(t0 // S), "end": str(t0 // S + 3600)}
    search_params = {**span, "tags": "http.route=/pay", "minDuration": "50ms", "limit": "20"}
    out: dict[str, float] = {}
    try:
        with httpx.Client(base_url=srv.url, timeout=120, headers={"X-Scope-OrgID": "bench"}) as h:
            def get(path: str, params: dict[str, str]) -> float:
                t = time.perf_counter()
                r = h.get(path, params=params)
                assert r.status_code == 200, r.text[:300]
                return time.perf_counter() - t
            out["http_lookup_cold_ms"] = get(f"/api/traces/{lookups[0].hex()}", span) * 1e3
            out["http_search_cold_ms"] = get("/api/search", search_params) * 1e3
            out["http_lookup_warm_ms"] = statistics.median(get(f"/api/traces/{tid.hex()}", span) for tid in lookups[1:21]) * 1e3
            out["http_search_warm_ms"] = statistics.median(get("/api/search", search_params) for _ in range(5)) * 1e3
    finally:
        srv.terminate()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hour-spans", type=int, default=None)
    ap.add_argument("--clients", type=int, default=32, help="concurrent exporters (each waits for its answer)")
    ap.add_argument("--batch", type=int, default=510, help="spans per request (the SDK's batch holds up to 512)")
    a = ap.parse_args(argv)
    hour = a.hour_spans or (200_000 if a.quick else 1_000_000)
    per_client = 8 if a.quick else 30
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        st = bench_stages()
        print("ingest CPU per span in process (µs): " + ", ".join(f"{k} {v:.2f}" for k, v in st.items())
              + f"; total {sum(st.values()):.2f} (target <= 25)")
        ing = bench_ingest(tmp, clients=a.clients, batch=a.batch, requests_per_client=per_client)
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; server on CPU {sorted(_cpus()[0])}, "
              f"clients on {sorted(_cpus()[1])}")
        print(f"ingest: {ing['spans']} spans in {ing['wall_s']:.1f} s = {ing['spans_per_s']:,.0f} spans/s wall "
              f"(target 20,000: x{ing['spans_per_s'] / 20_000:.2f}); {ing['spans_per_cpu_s']:,.0f} spans per server CPU-second "
              f"({ing['server_cpu_s']:.1f} CPU-s; x{ing['spans_per_cpu_s'] / 20_000:.2f}); ack p50 {ing['p50_ack_s'] * 1e3:.0f} ms, "
              f"p99 {ing['p99_ack_s'] * 1e3:.0f} ms (target < 1000 ms); refused {ing['errors']}")
        h = bench_hour(tmp, hour)
        print(f"hour: {h['spans']:,} spans in {h['segments']} segments")
        print(f"lookup by trace id: cold {h['lookup_cold_ms']:.1f} ms, warm median {h['lookup_warm_median_ms']:.2f} ms, "
              f"max {h['lookup_warm_max_ms']:.2f} ms (target < 100 ms)")
        print(f"search (tag + minDuration) over the hour: cold {h['search_cold_ms']:.0f} ms, warm median "
              f"{h['search_warm_median_ms']:.0f} ms, {h['search_hits']} traces (target < 500 ms)")
        print(f"over HTTP (fresh server): lookup cold {h['http_lookup_cold_ms']:.1f} ms, warm median {h['http_lookup_warm_ms']:.1f} ms; "
              f"search cold {h['http_search_cold_ms']:.0f} ms, warm median {h['http_search_warm_ms']:.0f} ms")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        print(f"storage: {h['stored_bytes_per_span']:.1f} B/span stored vs OTLP protobuf {h['otlp_proto_bytes_per_span']:.1f} B/span "
              f"(ratio {h['stored_bytes_per_span'] / h['otlp_proto_bytes_per_span']:.3f}), gzip {h['otlp_gzip_bytes_per_span']:.1f} B/span "
              f"(ratio {h['stored_bytes_per_span'] / h['otlp_gzip_bytes_per_span']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
