"""Queries over span segments: lookup by trace id or span ids, search, tags, RED.

Every function takes the object store and index, a tenant and a time range in Unix
nanoseconds (``None``: unbounded), reads only ``live`` span segments overlapping the range
(decoded segments are cached: :mod:`fleetprof.traces.cache`), and returns plain Python
data. A lookup by trace id reads the heads of those segments (meta and trace-id filter)
and then only the segments whose filter admits the trace. Spans stored twice (an exporter's retry) are answered once (first by trace and span
id). Time ranges select spans that overlap them.

Search semantics (Tempo's): a trace matches when one of its spans satisfies every condition
at once — service, span name, status, duration bounds and each ``key=value`` tag, where a
tag matches the span's own attributes or its resource's. ``service.name``, ``name`` and
``status`` as tag keys mean the span's service, name and status (``unset``/``ok``/``error``).
A result describes the trace from the spans found in the searched range: its root span
(without parent), its earliest start and latest end.

RED (:func:`red`) counts **entry spans**: spans of kind SERVER or CONSUMER, and root spans
of any kind (a service's work as its callers see it); rate = entry spans per second,
errors = those with status ERROR, durations = their duration percentiles (linear
interpolation), per service and per ``step`` bucket of their start time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from fleetprof.metastore.index import MAX_TIME_MS, Index, SegmentEntry
from fleetprof.storage.objectstore import ObjectStore
from fleetprof.traces.cache import CACHE
from fleetprof.traces.format import SEARCH_COLUMNS, SpanSegment
from fleetprof.traces.otlp import SPAN_KIND_CONSUMER, SPAN_KIND_SERVER, STATUS_ERROR, _tags

NS_PER_MS = 1_000_000
STATUS_CODES = {"unset": 0, "ok": 1, "error": 2}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}
MAX_TAG_VALUES = 1000
"""Distinct values kept per tag name and segment, and answered per request."""
_MEMO_LOCK = threading.Lock()


def _ms_range(start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
    lo = 0 if start_ns is None else max(0, start_ns // NS_PER_MS)
    hi = MAX_TIME_MS if end_ns is None else min(MAX_TIME_MS, -(-end_ns // NS_PER_MS))
    return lo, hi


def span_entries(index: Index, tenant: str, start_ns: int | None = None, end_ns: int | None = None,
                 services: Iterable[str] | None = None) -> list[SegmentEntry]:
    """Live span segments of ``tenant`` overlapping the range (optionally holding ``services``)."""
    lo, hi = _ms_range(start_ns, end_ns)
    return index.query(tenant, lo, hi, services=services, kind="spans")


def load(store: ObjectStore, entry: SegmentEntry) -> SpanSegment:
    return CACHE.get(store, entry.key)


_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="span-read")
"""Reads of several segments (object store round trips; decoding releases the GIL)."""


def _parallel(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(x) for x in items]``, several at once when there are several."""
    if len(items) < 2:
        return [fn(x) for x in items]
    return list(_POOL.map(fn, items))


def _memo(seg: SpanSegment, name: str, make: Any) -> Any:
    memo: dict[str, Any] = seg.__dict__.setdefault("_memo", {})
    if name not in memo:
        value = make()
        with _MEMO_LOCK:
            memo.setdefault(name, value)
    return memo[name]


def _res_key(blob: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big")


def _resource_tags(seg: SpanSegment) -> list[tuple[int, list[str]]]:
    """``(resource key, tags)`` of each of the segment's resources."""
    def make() -> list[tuple[int, list[str]]]:
        out = []
        for blob in seg.resources:
            tags, _, _ = _tags(ResourceSpans.FromString(blob).resource.attributes)
            out.append((_res_key(blob), tags))
        return out
    return _memo(seg, "resource_tags", make)


def _search_frame(seg: SpanSegment) -> pl.DataFrame:
    """The columns search, RED and span lookups read, one row per span, memoised."""
    def make() -> pl.DataFrame:
        cols = seg.columns(SEARCH_COLUMNS)
        keys = np.asarray([k for k, _ in _resource_tags(seg)] or [0], dtype=np.uint64)
        return cols.with_columns(
            pl.Series("hi", seg.trace_hi), pl.Series("lo", seg.trace_lo), pl.Series("span", seg.span),
            pl.Series("root", seg.parent == 0),
            pl.Series("res_key", keys[cols.get_column("resource").to_numpy().astype(np.int64)]),
        ).drop("resource")
    return _memo(seg, "search", make)


def _frames(store: ObjectStore, entries: Sequence[SegmentEntry]) -> tuple[pl.DataFrame, list[SpanSegment]]:
    segs = [load(store, e) for e in entries]
    frames = [_search_frame(s) for s in segs if s.rows]
    if not frames:
        return pl.DataFrame(), segs
    return pl.concat(frames, rechunk=False), segs


def _overlap(start_ns: int | None, end_ns: int | None) -> pl.Expr:
    e = pl.lit(True)
    if end_ns is not None:
        e = e & (pl.col("start_ns") <= end_ns)
    if start_ns is not None:
        e = e & (pl.col("start_ns") + pl.col("duration_ns") >= start_ns)
    return e


def _split_ids(trace_id: bytes) -> tuple[int, int]:
    return int.from_bytes(trace_id[:8], "big"), int.from_bytes(trace_id[8:], "big")


def _b8(x: int) -> bytes:
    return int(x).to_bytes(8, "big")


# ---------------------------------------------------------------------------------------
# lookup


def get_trace(store: ObjectStore, index: Index, tenant: str, trace_id: bytes,
              start_ns: int | None = None, end_ns: int | None = None) -> list[dict[str, Any]]:
    """Every stored span of the trace (rows as :func:`fleetprof.traces.otlp.spans_to_request`
    takes them), ordered by start; empty when the trace is unknown."""
    hi, lo = _split_ids(trace_id)
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    entries = span_entries(index, tenant, start_ns, end_ns)
    for e, head in zip(entries, _parallel(lambda e: CACHE.head(store, e.key), entries), strict=True):
        if not head.may_hold(hi, lo):
            continue
        seg = load(store, e)
        rows = seg.trace_rows(hi, lo)
        if len(rows) == 0:
            continue
        cols = seg.rows_of(rows)
        for r, rec in zip(rows.tolist(), cols.iter_rows(named=True), strict=True):
            sid = int(seg.span[r])
            if sid in seen:
                continue
            seen.add(sid)
            rec["trace_id"] = trace_id
            rec["span_id"] = _b8(sid)
            rec["parent_span_id"] = _b8(seg.parent[r]) if seg.parent[r] else b""
            rec["resource"] = seg.resources[rec["resource"]]
            rec["scope"] = seg.scopes[rec["scope"]]
            out.append(rec)
    out.sort(key=lambda r: (r["start_ns"], r["span_id"]))
    return out


def spans_by_id(store: ObjectStore, index: Index, tenant: str, span_ids: Iterable[bytes | str | int],
                start_ns: int | None = None, end_ns: int | None = None) -> list[dict[str, Any]]:
    """The spans with the given ids (8 bytes, an int, or hex digits) in the range: dicts
    with ``trace_id`` and ``span_id`` (hex), ``parent_span_id`` (hex, ``""`` for a root),
    ``name``, ``service``, ``start_ns``, ``duration_ns``; one per (trace id, span id), by start."""
    from fleetprof.traces.otlp import parse_span_id

    wanted = np.asarray(sorted({int.from_bytes(parse_span_id(s), "big") for s in span_ids}), dtype=np.uint64)
    if len(wanted) == 0:
        return []
    out: dict[tuple[int, int, int], dict[str, Any]] = {}
    for e in span_entries(index, tenant, start_ns, end_ns):
        seg = load(store, e)
        rows = np.flatnonzero(np.isin(seg.span, wanted))
        if len(rows) == 0:
            continue
        f = _search_frame(seg)[rows].with_columns(pl.Series("row", rows)).filter(_overlap(start_ns, end_ns))
        for rec in f.iter_rows(named=True):
            sid = int(rec["span"])
            key = (rec["hi"], rec["lo"], sid)
            if key in out:
                continue
            r = int(rec["row"])
            out[key] = {
                "trace_id": (_b8(rec["hi"]) + _b8(rec["lo"])).hex(), "span_id": _b8(sid).hex(),
                "parent_span_id": _b8(seg.parent[r]).hex() if seg.parent[r] else "",
                "name": rec["name"], "service": rec["service"], "start_ns": rec["start_ns"],
                "duration_ns": rec["duration_ns"],
            }
    return sorted(out.values(), key=lambda d: (d["start_ns"], d["span_id"]))


# ---------------------------------------------------------------------------------------
# search


@dataclass(frozen=True)
class SearchQuery:
    """What :func:`search` looks for (see the module docstring)."""

    start_ns: int | None = None
    end_ns: int | None = None
    service: str | None = None
    name: str | None = None
    status: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    limit: int = 20
    spans_per_set: int = 3


def _conditions(q: SearchQuery, res_tags: list[tuple[int, list[str]]]) -> pl.Expr:
    cond = _overlap(q.start_ns, q.end_ns)
    service, name, status = q.service, q.name, q.status
    tags = dict(q.tags)
    service = tags.pop("service.name", service) if service is None else service
    name = tags.pop("name", name) if name is None else name
    status = tags.pop("status", status) if status is None else status
    if service is not None:
        cond = cond & (pl.col("service") == service)
    if name is not None:
        cond = cond & (pl.col("name") == name)
    if status is not None:
        cond = cond & (pl.col("status_code") == STATUS_CODES[status])
    if q.min_duration_ns is not None:
        cond = cond & (pl.col("duration_ns") >= q.min_duration_ns)
    if q.max_duration_ns is not None:
        cond = cond & (pl.col("duration_ns") <= q.max_duration_ns)
    for k, v in tags.items():
        tag = f"{k}={v}"
        keys = sorted({rk for rk, ts in res_tags if tag in ts})
        span_has = pl.col("tags").list.contains(pl.lit(tag))
        cond = cond & (span_has | pl.col("res_key").is_in(keys) if keys else span_has)
    return cond


def search(store: ObjectStore, index: Index, tenant: str, q: SearchQuery) -> list[dict[str, Any]]:
    """Tempo search results (``traceID``, ``rootServiceName``, ``rootTraceName``,
    ``startTimeUnixNano``, ``durationMs``, ``spanSet``/``spanSets``), most recent first, at
    most ``q.limit``."""
    entries = span_entries(index, tenant, q.start_ns, q.end_ns, [q.service] if q.service else None)
    frame, segs = _frames(store, entries)
    if frame.height == 0:
        return []
    res_tags = [rt for s in segs for rt in _resource_tags(s)]
    hits = frame.filter(_conditions(q, res_tags)).unique(["hi", "lo", "span"])
    if hits.height == 0:
        return []
    traces = hits.group_by(["hi", "lo"]).agg(pl.col("start_ns").min().alias("hit_start"))
    traces = traces.sort("hit_start", descending=True).head(q.limit)
    spans = frame.join(traces.select("hi", "lo"), on=["hi", "lo"], how="semi").filter(_overlap(q.start_ns, q.end_ns))
    spans = spans.unique(["hi", "lo", "span"])
    summary = spans.group_by(["hi", "lo"]).agg(
        pl.col("start_ns").min().alias("start"), (pl.col("start_ns") + pl.col("duration_ns")).max().alias("end"),
    )
    roots = spans.filter(pl.col("root")).sort("start_ns").unique(["hi", "lo"], keep="first").select("hi", "lo", "service", "name")
    summary = summary.join(roots, on=["hi", "lo"], how="left").sort("start", descending=True)
    sets = hits.join(traces.select("hi", "lo"), on=["hi", "lo"], how="semi").sort("start_ns")
    by_trace: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for rec in sets.select("hi", "lo", "span", "name", "start_ns", "duration_ns", "service", "status_code").iter_rows(named=True):
        by_trace.setdefault((rec["hi"], rec["lo"]), []).append(rec)
    out = []
    for rec in summary.iter_rows(named=True):
        matched = by_trace.get((rec["hi"], rec["lo"]), [])
        span_set = {
            "spans": [{
                "spanID": _b8(s["span"]).hex(), "name": s["name"], "startTimeUnixNano": str(s["start_ns"]),
                "durationNanos": str(s["duration_ns"]),
                "attributes": [{"key": "service.name", "value": {"stringValue": s["service"]}},
                               {"key": "status", "value": {"stringValue": STATUS_NAMES.get(s["status_code"], "unset")}}],
            } for s in matched[:q.spans_per_set]],
            "matched": len(matched),
        }
        out.append({
            "traceID": (_b8(rec["hi"]) + _b8(rec["lo"])).hex(),
            "rootServiceName": rec["service"] if rec["service"] is not None else "<root span not yet received>",
            "rootTraceName": rec["name"] if rec["name"] is not None else "",
            "startTimeUnixNano": str(rec["start"]),
            "durationMs": int((rec["end"] - rec["start"]) // NS_PER_MS),
            "spanSet": span_set, "spanSets": [span_set],
        })
    return out


# ---------------------------------------------------------------------------------------
# tags


def _segment_tags(seg: SpanSegment) -> dict[str, list[str]]:
    """Tag name → distinct values (at most :data:`MAX_TAG_VALUES`), spans and resources."""
    def make() -> dict[str, list[str]]:
        vals = _search_frame(seg).get_column("tags").explode().drop_nulls().unique()
        out: dict[str, set[str]] = {}
        for t in vals.to_list() + [t for _, ts in _resource_tags(seg) for t in ts]:
            k, _, v = t.partition("=")
            s = out.setdefault(k, set())
            if len(s) < MAX_TAG_VALUES:
                s.add(v)
        return {k: sorted(v) for k, v in out.items()}
    return _memo(seg, "tags", make)


def tag_names(store: ObjectStore, index: Index, tenant: str, start_ns: int | None = None, end_ns: int | None = None) -> list[str]:
    """Attribute names of the spans and resources in the range, sorted."""
    names: set[str] = set()
    for e in span_entries(index, tenant, start_ns, end_ns):
        names.update(_segment_tags(load(store, e)))
    return sorted(names)


def tag_values(store: ObjectStore, index: Index, tenant: str, name: str, start_ns: int | None = None,
               end_ns: int | None = None) -> list[str]:
    """Distinct values of attribute ``name`` in the range (sorted, at most
    :data:`MAX_TAG_VALUES`); ``name``/``status`` give span names and statuses."""
    vals: set[str] = set()
    for e in span_entries(index, tenant, start_ns, end_ns):
        seg = load(store, e)
        if name == "name":
            vals.update(_search_frame(seg).get_column("name").unique().to_list())
        elif name == "status":
            vals.update(STATUS_NAMES.get(c, "unset") for c in _search_frame(seg).get_column("status_code").unique().to_list())
        else:
            vals.update(_segment_tags(seg).get(name, ()))
        if len(vals) >= MAX_TAG_VALUES:
            break
    return sorted(vals)[:MAX_TAG_VALUES]


# ---------------------------------------------------------------------------------------
# RED


def red(store: ObjectStore, index: Index, tenant: str, start_ns: int, end_ns: int, step_ns: int,
        service: str | None = None) -> list[dict[str, Any]]:
    """Per service: points ``{t (ms), count, rate (/s), errors, errorRate, p50Ms, p90Ms,
    p99Ms}`` for each step with entry spans (see the module docstring), by time."""
    entries = span_entries(index, tenant, start_ns, end_ns, [service] if service else None)
    frame, _ = _frames(store, entries)
    if frame.height == 0:
        return []
    entry = pl.col("kind").is_in([SPAN_KIND_SERVER, SPAN_KIND_CONSUMER]) | pl.col("root")
    f = frame.filter(entry & (pl.col("start_ns") >= start_ns) & (pl.col("start_ns") < end_ns))
    if service:
        f = f.filter(pl.col("service") == service)
    f = f.unique(["hi", "lo", "span"])
    if f.height == 0:
        return []
    ms = pl.col("duration_ns").cast(pl.Float64) / NS_PER_MS
    g = (f.with_columns(((pl.col("start_ns") - start_ns) // step_ns).alias("bucket"))
         .group_by(["service", "bucket"])
         .agg(pl.len().alias("count"), (pl.col("status_code") == STATUS_ERROR).sum().alias("errors"),
              ms.quantile(0.5, "linear").alias("p50"), ms.quantile(0.9, "linear").alias("p90"),
              ms.quantile(0.99, "linear").alias("p99"))
         .sort(["service", "bucket"]))
    step_s = step_ns / 1e9
    out: dict[str, list[dict[str, Any]]] = {}
    for r in g.iter_rows(named=True):
        out.setdefault(r["service"], []).append({
            "t": (start_ns + r["bucket"] * step_ns) // NS_PER_MS, "count": r["count"], "rate": r["count"] / step_s,
            "errors": r["errors"], "errorRate": r["errors"] / r["count"],
            "p50Ms": r["p50"], "p90Ms": r["p90"], "p99Ms": r["p99"],
        })
    return [{"service": s, "points": pts} for s, pts in sorted(out.items())]
