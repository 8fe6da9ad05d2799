"""Storage benchmark: 1 h of 100 instances x 10 s CPU profiles (36k profiles) into L0 segments.

Synthetic pyroscope-io-like data: 5 services x 20 instances; each service has a pool of a
few hundred distinct stacks (depth ~25 around shared framework prefixes); each 10 s profile
draws 200-700 samples at 100 Hz from a per-profile subset of the pool (Zipf-weighted), values
in nanoseconds. Every profile is also encoded as the gzipped pprof an agent would push
(samples + locations + functions + string table, one value type ``cpu/nanoseconds``).

Profiles are submitted to ``SegmentWriter`` (file:// + sqlite) one request per profile,
flushed once per ``--window-s`` simulated seconds (1 s = the server's real L0 cadence at
10 profiles/s; larger windows model a busier server or backfill).

Prints (a) segment bytes vs gzipped pprof bytes (target <= 0.5x) and (b) the flame-graph
query over the whole hour (``select_merge`` + ``to_flamebearer``) against a reference
measured in the same run: reading every segment object's bytes (target < 2 s).

Wall and CPU (``time.process_time``) times are both printed: the machine may be shared.
Query run 0 is on the ingesting process (its writer cached the segments it flushed); run 1 is
the first query with a cleared cache (cold); later runs (``--repeat``) hit the decoded-segment cache.

Run: ``.venv/bin/python -m benchmarks.bench_storage --window-s 1`` (the issue's case: 3,600 L0
segments of ~10 profiles). Quicker iteration with (nearly) the same 3,600-segment shape
but half the profiles per segment: ``--window-s 1 --instances 10`` (50 instances, ~3,580
segments of ~5 profiles); ``--instances 4`` is quicker still (~2,900 segments).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from fleetprof.formats.wire import field_len, varint
from fleetprof.metastore import open_index
from fleetprof.model import Stacks, ValueType, build
from fleetprof.model.profile import Profile
from fleetprof.query import select_merge
from fleetprof.segment.cache import SEGMENT_CACHE
from fleetprof.segment.writer import IngestItem, SegmentWriter
from fleetprof.storage import open_store

CPU_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
SERVICES = ["checkout", "search", "ingest-api", "auth", "recommender"]
INSTANCES_PER_SERVICE = 20
PERIOD_NS = 10_000_000  # 100 Hz
T0_MS = 1_700_000_000_000


def _field_int(num: int, v: int) -> bytes:
    return varint(num << 3) + varint(v)


@dataclass
class ServiceModel:
    """A service's stack pool: frames, stacks (frame index lists), pprof header parts."""

    name: str
    names: list[str]
    files: list[str]
    stacks: list[list[int]]
    weights: np.ndarray
    loc_bytes: list[bytes]  # per stack: packed location ids (pprof: leaf first)
    pprof_static: bytes  # locations + functions + string table + sample_type + period


def make_service(name: str, rng: np.random.Generator, n_stacks: int = 300, depth: int = 25) -> ServiceModel:
    modules = [f"{name.replace('-', '_')}/{m}.py" for m in ("app", "handlers", "models", "db", "cache", "util", "serde")]
    libs = ["asyncio/events.py", "json/decoder.py", "re/__init__.py", "threading.py", "site-packages/sqlalchemy/engine.py",
            "site-packages/requests/adapters.py", "hashlib.py", "site-packages/uvicorn/protocols/http.py"]
    names: list[str] = []
    files: list[str] = []
    index: dict[tuple[str, str], int] = {}

    def frame(fn: str, file: str) -> int:
        k = (fn, file)
        if k not in index:
            index[k] = len(names)
            names.append(fn)
            files.append(file)
        return index[k]

    prefix = [frame(f, "uvicorn/main.py" if i < 4 else libs[0]) for i, f in enumerate(
        ["<module>", "main", "run", "serve", "run_forever", "_run_once", "_run", "handle"])]
    # Stacks: random walks in a tree with branching ~ 3-6 per level below the prefix.
    stacks: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    vocab = [(f"{verb}_{noun}", rng.choice(modules + libs)) for verb in
             ("get", "load", "parse", "render", "compute", "hash", "query", "encode", "decode", "validate", "lock", "wait")
             for noun in ("user", "order", "item", "page", "token", "row", "batch", "cfg", "key", "blob")]
    children: dict[tuple[int, ...], list[int]] = {}
    while len(stacks) < n_stacks:
        path = list(prefix)
        d = int(rng.integers(depth - 10, depth + 10))
        while len(path) < d:
            key = tuple(path)
            opts = children.setdefault(key, [])
            if not opts or (len(opts) < 5 and rng.random() < 0.25):
                fn, file = vocab[int(rng.integers(len(vocab)))]
                opts.append(frame(fn, str(file)))
            path.append(opts[int(rng.integers(len(opts)))])
        if tuple(path) not in seen:
            seen.add(tuple(path))
            stacks.append(path)
    weights = 1.0 / np.arange(1, n_stacks + 1) ** 1.1
    rng.shuffle(weights)
    # pprof pieces: string table, functions (id = frame + 1), locations (id = frame + 1).
    strings = ["", "cpu", "nanoseconds", *names, *sorted(set(files))]
    sidx = {s: i for i, s in enumerate(strings)}
    parts = [field_len(1, _field_int(1, 1) + _field_int(2, 2))]  # sample_type
    for i, (fn, file) in enumerate(zip(names, files, strict=True)):
        parts.append(field_len(5, _field_int(1, i + 1) + _field_int(2, sidx[fn]) + _field_int(3, sidx[fn]) + _field_int(4, sidx[file])))
    for i in range(len(names)):
        line = _field_int(1, i + 1) + _field_int(2, 10 + i % 200)
        parts.append(field_len(4, _field_int(1, i + 1) + _field_int(3, 0x1000 + 16 * i) + field_len(4, line)))
    parts.extend(field_len(6, s.encode()) for s in strings)
    parts.append(field_len(11, _field_int(1, 1) + _field_int(2, 2)))  # period_type
    parts.append(_field_int(12, PERIOD_NS))
    loc_bytes = [b"".join(varint(f + 1) for f in reversed(st)) for st in stacks]
    return ServiceModel(name, names, files, stacks, weights / weights.sum(), loc_bytes, b"".join(parts))


@dataclass
class Template:
    service: ServiceModel
    profile: Profile  # all stacks of the subset, values placeholder
    subset: np.ndarray  # stack indices (rows of profile.samples after build order)
    probs: np.ndarray
    leaf: np.ndarray  # node id per subset stack


def make_template(svc: ServiceModel, rng: np.random.Generator) -> Template:
    k = int(rng.integers(40, 120))
    subset = np.sort(rng.choice(len(svc.stacks), size=k, replace=False, p=svc.weights))
    paths = [svc.stacks[i] for i in subset]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in paths])])
    st = Stacks(names=svc.names, files=svc.files, offsets=offsets, frames=np.concatenate(paths),
                values=np.arange(1, k + 1, dtype=np.int64).reshape(k, 1))
    prof = build(st, [ValueType("cpu", "nanoseconds")], period_type=ValueType("cpu", "nanoseconds"), period=PERIOD_NS)
    # Map stack i -> leaf node id through its unique placeholder value.
    by_val = dict(zip(prof.samples["v0"].to_list(), prof.samples["node_id"].to_list(), strict=True))
    leaf = np.array([by_val[i + 1] for i in range(k)], dtype=np.uint64)
    probs = svc.weights[subset] / svc.weights[subset].sum()
    return Template(svc, prof, subset, probs, leaf)


def instance_profile(tpl: Template, rng: np.random.Generator) -> tuple[Profile, bytes]:
    """One 10 s profile drawn from a template and its gzipped pprof bytes."""
    n = int(rng.integers(200, 700))
    counts = rng.multinomial(n, tpl.probs)
    nz = np.flatnonzero(counts)
    vals = counts[nz].astype(np.int64) * PERIOD_NS
    samples = pl.DataFrame({"node_id": tpl.leaf[nz], "labels": np.zeros(len(nz), np.uint64), "v0": vals},
                           schema={"node_id": pl.UInt64, "labels": pl.UInt64, "v0": pl.Int64})
    prof = tpl.profile.with_meta(samples=samples)
    svc = tpl.service
    sample_parts = [
        field_len(2, field_len(1, svc.loc_bytes[tpl.subset[i]]) + field_len(2, varint(int(v))))
        for i, v in zip(nz, vals, strict=True)
    ]
    raw = b"".join(sample_parts) + svc.pprof_static + _field_int(10, 10_000_000_000)
    return prof, gzip.compress(raw, 6)


async def ingest(store, index, minutes: int, window_s: int, seed: int,
                 instances_per_service: int = INSTANCES_PER_SERVICE) -> tuple[int, int, float]:
    rng = np.random.default_rng(seed)
    services = [make_service(s, rng) for s in SERVICES]
    templates = {s.name: [make_template(s, rng) for _ in range(24)] for s in services}
    writer = SegmentWriter(store, index, max_age_s=3600, max_bytes=1 << 40, max_queue=1 << 20)
    instances = [(svc, i, int(rng.integers(0, 10_000))) for svc in services for i in range(instances_per_service)]
    pprof_bytes = 0
    n = 0
    t_ingest = 0.0
    pending: list[asyncio.Future[None]] = []
    for w0 in range(0, minutes * 60, window_s):
        for svc, inst, phase in instances:
            # profiles of this instance whose timestamp falls in [w0, w0 + window_s)
            first = (w0 * 1000 - phase + 9_999) // 10_000
            for k in range(max(0, first), 10**9):
                t = phase + k * 10_000
                if t >= (w0 + window_s) * 1000 or t >= minutes * 60_000:
                    break
                tpl = templates[svc.name][int(rng.integers(len(templates[svc.name])))]
                prof, pp = instance_profile(tpl, rng)
                pprof_bytes += len(pp)
                n += 1
                labels = {"service_name": svc.name, "instance": f"{svc.name}-{inst}", "region": "eu-west-1"}
                item = IngestItem(labels, CPU_TYPE, T0_MS + t, prof)
                pending.append(asyncio.ensure_future(writer.submit("bench", [item])))
        t0 = time.perf_counter()
        await asyncio.sleep(0)
        await writer.flush()
        await asyncio.gather(*pending)
        t_ingest += time.perf_counter() - t0
        pending.clear()
    await writer.stop()
    return n, pprof_bytes, t_ingest


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - t[0], time.process_time() - t[1]


def _fmt(wc: tuple[float, float]) -> str:
    return f"{wc[0]:.3f}s wall / {wc[1]:.3f}s CPU"


def table_bytes(store, entries) -> dict[str, int]:
    """Bytes per part of the segment objects: envelope + metadata, the array block (format
    v3: the columns a flame-graph query reads), the Parquet footer and each logical table's
    compressed column chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fleetprof.segment.format import read_meta

    out: dict[str, int] = {}
    for e in entries:
        data = store.get(e.key)
        meta, body = read_meta(data)
        out["envelope+meta"] = out.get("envelope+meta", 0) + len(data) - len(body)
        block = meta.get("block")
        if block:
            out["array block"] = out.get("array block", 0) + block["bytes"]
            body = body[block["bytes"]:]
        md = pq.ParquetFile(pa.BufferReader(pa.py_buffer(body))).metadata
        out["parquet footer"] = out.get("parquet footer", 0) + md.serialized_size + 12
        for g in range(md.num_row_groups):
            for c in range(md.num_columns):
                col = md.row_group(g).column(c)
                table = col.path_in_schema.split(".", 1)[0]
                out[table] = out.get(table, 0) + col.total_compressed_size
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--window-s", type=int, default=10, help="simulated seconds per L0 flush")
    ap.add_argument("--instances", type=int, default=INSTANCES_PER_SERVICE,
                    help="instances per service (5 services; default 20 = 100 instances). Fewer instances keep "
                         "the segment count (minutes*60/window) with fewer profiles per segment: quick iteration")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-nodes", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=2, help="query runs (run 1 = first time; later = warm cache)")
    ap.add_argument("--breakdown", action="store_true", help="print stored bytes per segment table")
    args = ap.parse_args()
    from fleetprof.warmup import warm_up

    warm_up()  # as `fleetprof serve` does at start: no query pays for loading the numba kernels
    root = tempfile.mkdtemp(prefix="fleetprof-bench-")
    try:
        print(f"load average at start: {os.getloadavg()}")
        store = open_store(f"file://{root}/data")
        index = open_index(f"sqlite://{root}/index.db")
        t0 = time.perf_counter()
        n, pprof_bytes, t_write = asyncio.run(
            ingest(store, index, args.minutes, args.window_s, args.seed, args.instances))
        gen = time.perf_counter() - t0
        entries = index.query("bench", 0, 10**13)
        seg_bytes = sum(e.bytes for e in entries)
        print(f"profiles: {n}  segments: {len(entries)} (window {args.window_s}s, {args.instances * len(SERVICES)} "
              f"instances)  generate+ingest: {gen:.1f}s "
              f"(writer flush+ack time {t_write:.1f}s, {n / max(t_write, 1e-9):.0f} profiles/s)")
        print(f"(a) storage: segments {seg_bytes / 1e6:.2f} MB vs gzipped pprof {pprof_bytes / 1e6:.2f} MB "
              f"-> ratio {seg_bytes / pprof_bytes:.3f}x (target <= 0.5x); {seg_bytes / max(len(entries), 1):.0f} B/segment")
        if args.breakdown:
            parts = table_bytes(store, entries)
            print("    bytes by part: " + ", ".join(f"{k} {v / 1e6:.2f} MB ({v / seg_bytes:.0%})" for k, v in parts.items()))
        start, end = T0_MS, T0_MS + args.minutes * 60_000
        t = _clock()
        raw = sum(len(store.get(e.key)) for e in entries)
        ref = _since(t)
        print(f"    reference: read of {raw / 1e6:.1f} MB segment bytes ({len(entries)} objects): {_fmt(ref)}")
        try:
            from fleetprof.render.flamebearer import to_flamebearer
        except ImportError:  # pragma: no cover
            to_flamebearer = None  # type: ignore[assignment]
        # Run 0: the ingesting server's view (the writer cached what it flushed); then the
        # cache is cleared so run 1 is a cold query (another replica, or after a restart).
        for run in range(0, max(1, args.repeat) + 1):
            if run == 1:
                SEGMENT_CACHE.clear()
            t = _clock()
            prof = select_merge(store, index, "bench", CPU_TYPE, [], start, end)
            merge_t = _since(t)
            fb_t = (0.0, 0.0)
            fb_levels = -1
            if to_flamebearer is not None:
                t = _clock()
                fb = to_flamebearer(prof, 0, max_nodes=args.max_nodes)
                fb_t = _since(t)
                fb_levels = len(fb.get("flamebearer", {}).get("levels", []))
            total = (merge_t[0] + fb_t[0], merge_t[1] + fb_t[1])
            label = {0: "on the ingesting server (segments cached by the writer)", 1: "first (cold cache)"}.get(
                run, "repeat (warm segment cache)")
            print(f"(b) flame graph over {args.minutes} min, run {run} {label}: select_merge {_fmt(merge_t)} + "
                  f"to_flamebearer {_fmt(fb_t)} = {_fmt(total)} (target < 2 s); "
                  f"{total[0] / max(ref[0], 1e-9):.1f}x wall / {total[1] / max(ref[1], 1e-9):.1f}x CPU of the raw read; "
                  f"merged nodes {prof.nodes.height}, samples {prof.samples.height}, levels {fb_levels}, "
                  f"total {prof.totals()[0]}")
        print(f"load average at end: {os.getloadavg()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
