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
A result describes the trace from all of its spans in the searched range, whichever
segments hold them (a trace's spans arrive in several export requests, and the segments
pruned by the search's service may hold its other spans): its root span (without parent),
its earliest start and latest end.

RED (:func:`red`) counts **entry spans**: spans of kind SERVER or CONSUMER, and root spans
of any kind (a service's work as its callers see it); rate = entry spans per second,
errors = those with status ERROR, durations = their duration percentiles (linear
interpolation), per service and per ``step`` bucket of their start time. Buckets are
aligned to multiples of ``step`` since the Unix epoch, as Prometheus and Tempo align them
(:func:`align`): the range is widened to whole buckets, so two requests over overlapping
ranges answer the same figures for the buckets they share.
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


def _heads(store: ObjectStore, entries: Sequence[SegmentEntry]) -> list[Any]:
    """The heads of the entries' segments: one after another from local files (a ranged
    read costs microseconds), several at once from a remote store (a round trip each)."""
    if str(getattr(store, "url", "")).startswith("file:"):
        return [CACHE.head(store, e.key) for e in entries]
    return _parallel(lambda e: CACHE.head(store, e.key), entries)


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
    """The columns RED and span-id lookups read, one row per span, memoised."""
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
    for e, head in zip(entries, _heads(store, entries), strict=True):
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


@dataclass(frozen=True)
class _Cond:
    """A search's conditions, ``service.name`` / ``name`` / ``status`` tags folded in."""

    service: str | None
    name: str | None
    status: int | None
    tags: tuple[str, ...]
    min_duration_ns: int | None
    max_duration_ns: int | None
    start_ns: int | None
    end_ns: int | None


def _cond(q: SearchQuery) -> _Cond:
    tags = dict(q.tags)
    service = tags.pop("service.name", q.service) if q.service is None else q.service
    name = tags.pop("name", q.name) if q.name is None else q.name
    status = tags.pop("status", q.status) if q.status is None else q.status
    return _Cond(service, name, None if status is None else STATUS_CODES[status], tuple(f"{k}={v}" for k, v in tags.items()),
                 q.min_duration_ns, q.max_duration_ns, q.start_ns, q.end_ns)


def _num(seg: SpanSegment, name: str) -> np.ndarray:
    """A numeric column of the segment as a numpy array (memoised with the segment)."""
    return _memo(seg, "np_" + name, lambda: seg.columns([name]).get_column(name).to_numpy())


def _in_range(seg: SpanSegment, start_ns: int | None, end_ns: int | None) -> np.ndarray:
    start, dur = _num(seg, "start_ns"), _num(seg, "duration_ns")
    ok = np.ones(seg.rows, dtype=bool)
    if end_ns is not None:
        ok &= start <= end_ns
    if start_ns is not None:
        ok &= start + dur >= start_ns
    return ok


def _equals(seg: SpanSegment, col: str, value: Any) -> np.ndarray:
    return (seg.columns([col]).get_column(col) == value).to_numpy()


_HIT_COLUMNS = ("start_ns", "duration_ns", "status_code", "resource", "name", "service")


def _hits(seg: SpanSegment, c: _Cond) -> np.ndarray:
    """Rows of ``seg`` whose span satisfies every condition (cheap columns first; tags
    only on the rows left)."""
    if not seg.rows:
        return np.zeros(0, np.int64)
    seg.columns(_HIT_COLUMNS)  # one read: the conditions' columns and what a hit shows
    ok = _in_range(seg, c.start_ns, c.end_ns)
    dur = _num(seg, "duration_ns")
    if c.min_duration_ns is not None:
        ok &= dur >= c.min_duration_ns
    if c.max_duration_ns is not None:
        ok &= dur <= c.max_duration_ns
    if c.status is not None:
        ok &= _num(seg, "status_code") == c.status
    if c.service is not None and ok.any():
        ok &= _equals(seg, "service", c.service)
    if c.name is not None and ok.any():
        ok &= _equals(seg, "name", c.name)
    rows = np.flatnonzero(ok)
    if not c.tags or len(rows) == 0:
        return rows
    res_tags = _resource_tags(seg)
    resource = _num(seg, "resource")[rows]
    keep = np.ones(len(rows), dtype=bool)
    for tag in c.tags:
        res_has = np.asarray([tag in ts for _, ts in res_tags] or [False], dtype=bool)
        keep &= res_has[resource] | seg.has_tag(rows, tag)
    return rows[keep]


def _trace_rows(seg: SpanSegment, hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, trace number) of every span of the traces ``(hi[i], lo[i])`` in ``seg``."""
    a = np.searchsorted(seg.trace_hi, hi, "left")
    b = np.searchsorted(seg.trace_hi, hi, "right")
    rows: list[np.ndarray] = []
    which: list[np.ndarray] = []
    for i in np.flatnonzero(b > a).tolist():
        r = a[i] + np.flatnonzero(seg.trace_lo[a[i]:b[i]] == lo[i])
        rows.append(r)
        which.append(np.full(len(r), i, dtype=np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(which)


def _gather(seg: SpanSegment, rows: np.ndarray, cols: Sequence[str]) -> pl.DataFrame:
    return seg.columns(cols)[rows]


def _other_segments(store: ObjectStore, index: Index, tenant: str, q: SearchQuery, searched: Sequence[SegmentEntry],
                    his: np.ndarray, los: np.ndarray) -> list[SpanSegment]:
    """Segments in the range outside ``searched`` that may hold a span of one of the traces
    ``(his[i], los[i])`` (their heads' filters decide)."""
    seen = {e.segment_id for e in searched}
    rest = [e for e in span_entries(index, tenant, q.start_ns, q.end_ns) if e.segment_id not in seen]
    wanted = [e for e, head in zip(rest, _heads(store, rest), strict=True) if head.may_hold_each(his, los).any()]
    return [s for s in _parallel(lambda e: load(store, e), wanted) if s.rows]


def search(store: ObjectStore, index: Index, tenant: str, q: SearchQuery) -> list[dict[str, Any]]:
    """Tempo search results (``traceID``, ``rootServiceName``, ``rootTraceName``,
    ``startTimeUnixNano``, ``durationMs``, ``spanSet``/``spanSets``), most recent first, at
    most ``q.limit``. Segments are pruned by time and service through the index; each is
    filtered on its cheap columns first, tags only on the rows left."""
    c = _cond(q)
    entries = span_entries(index, tenant, q.start_ns, q.end_ns, [c.service] if c.service else None)
    segs = [s for s in _parallel(lambda e: load(store, e), entries) if s.rows]
    per_seg = _parallel(lambda s: _hits(s, c), segs)
    parts = []
    for seg, rows in zip(segs, per_seg, strict=True):
        if len(rows):
            f = _gather(seg, rows, ["name", "start_ns", "duration_ns", "service", "status_code"])
            parts.append(f.with_columns(pl.Series("hi", seg.trace_hi[rows]), pl.Series("lo", seg.trace_lo[rows]),
                                        pl.Series("span", seg.span[rows])))
    if not parts:
        return []
    hits = pl.concat(parts).unique(["hi", "lo", "span"], keep="first", maintain_order=True)
    traces = (hits.group_by(["hi", "lo"]).agg(pl.col("start_ns").min().alias("hit_start"))
              .sort(["hit_start", "hi", "lo"], descending=True).head(q.limit))
    his, los = traces.get_column("hi").to_numpy(), traces.get_column("lo").to_numpy()
    spans = []
    for seg in segs + (_other_segments(store, index, tenant, q, entries, his, los) if c.service else []):
        rows, which = _trace_rows(seg, his, los)
        if len(rows) == 0:
            continue
        rows_ok = _in_range(seg, c.start_ns, c.end_ns)[rows]
        rows, which = rows[rows_ok], which[rows_ok]
        f = _gather(seg, rows, ["name", "start_ns", "duration_ns", "service"])
        spans.append(f.with_columns(pl.Series("t", which), pl.Series("root", seg.parent[rows] == 0)))
    summary = pl.concat(spans).group_by("t").agg(
        pl.col("start_ns").min().alias("start"), (pl.col("start_ns") + pl.col("duration_ns")).max().alias("end"),
        pl.col("service").filter(pl.col("root")).sort_by(pl.col("start_ns").filter(pl.col("root"))).first().alias("root_service"),
        pl.col("name").filter(pl.col("root")).sort_by(pl.col("start_ns").filter(pl.col("root"))).first().alias("root_name"),
    ).sort(["start", "t"], descending=[True, False])
    sets = hits.join(traces.select("hi", "lo"), on=["hi", "lo"], how="semi").sort("start_ns")
    by_trace: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for rec in sets.iter_rows(named=True):
        by_trace.setdefault((rec["hi"], rec["lo"]), []).append(rec)
    out = []
    for rec in summary.iter_rows(named=True):
        t = int(rec["t"])
        hi, lo = int(his[t]), int(los[t])
        matched = by_trace.get((hi, lo), [])
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
            "traceID": (_b8(hi) + _b8(lo)).hex(),
            "rootServiceName": rec["root_service"] if rec["root_service"] is not None else "<root span not yet received>",
            "rootTraceName": rec["root_name"] if rec["root_name"] is not None else "",
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
        out: dict[str, set[str]] = {}
        for t in seg.distinct_tags() + [t for _, ts in _resource_tags(seg) for t in ts]:
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


def align(start_ns: int, end_ns: int, step_ns: int) -> tuple[int, int]:
    """``[start, end)`` widened to whole steps: start floored, end ceiled to multiples of
    ``step_ns`` (> 0); an empty range at a boundary stays one step long."""
    lo = start_ns - start_ns % step_ns
    hi = max(-(-end_ns // step_ns) * step_ns, lo + step_ns)
    return lo, hi


def red(store: ObjectStore, index: Index, tenant: str, start_ns: int, end_ns: int, step_ns: int,
        service: str | None = None) -> list[dict[str, Any]]:
    """Per service: points ``{t (ms), count, rate (/s), errors, errorRate, p50Ms, p90Ms,
    p99Ms}`` for each step with entry spans (see the module docstring), by time. ``t`` is
    the start of the point's bucket, a multiple of ``step_ns``; spans starting in
    :func:`align` ``(start_ns, end_ns, step_ns)`` are counted."""
    start_ns, end_ns = align(start_ns, end_ns, step_ns)
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
    g = (f.with_columns((pl.col("start_ns") // step_ns).alias("bucket"))
         .group_by(["service", "bucket"])
         .agg(pl.len().alias("count"), (pl.col("status_code") == STATUS_ERROR).sum().alias("errors"),
              ms.quantile(0.5, "linear").alias("p50"), ms.quantile(0.9, "linear").alias("p90"),
              ms.quantile(0.99, "linear").alias("p99"))
         .sort(["service", "bucket"]))
    step_s = step_ns / 1e9
    out: dict[str, list[dict[str, Any]]] = {}
    for r in g.iter_rows(named=True):
        out.setdefault(r["service"], []).append({
            "t": r["bucket"] * step_ns // NS_PER_MS, "count": r["count"], "rate": r["count"] / step_s,
            "errors": r["errors"], "errorRate": r["errors"] / r["count"],
            "p50Ms": r["p50"], "p90Ms": r["p90"], "p99Ms": r["p99"],
        })
    return [{"service": s, "points": pts} for s, pts in sorted(out.items())]
