"""Query execution over segments: index lookup, per-segment sums, one merge.

* :func:`select_merge` — the merged profile of one profile type for the series matching
  the matchers in ``[start_ms, end_ms]`` (inclusive). Segments come from the index
  (tenant, time, profile type, ``service_name=`` matchers). Every segment contributes its
  values summed per leaf (:meth:`~fleetprof.segment.format.Segment.sums`: one array
  operation over its sample rows, memoised on the immutable segment when its metadata
  proves the type and time filters, so a repeated or shifted query over a warm range sums
  a few hundred values per segment instead of every sample). The per-segment ``(leaf id,
  sum)`` arrays are then summed in **one** exact hash group-by (``sum_by_key``). The call
  tree is built only from the node tables of as many segments as needed to cover the
  distinct leaves (a node id is the hash of its whole path, so any segment holding a leaf
  holds the same ancestors): usually a handful, not one per segment. Nothing loops per
  sample or per node row in Python; the loop per segment is a few array operations.
* :func:`select_timeline` — values summed per ``step_ms`` bucket (``times_ms[k] =
  start_ms + k * step_ms``), from each segment's sums per timestamp (memoised the same way).
* Series: a selector made only of ``service_name="X"`` is answered from each segment's own
  series table (nothing to filter in segments of that service alone); other label matchers
  are resolved on the index entries' series summaries (parsed and hashed once per distinct
  summary) and applied per segment as a mask over its series rows.
* Series labelled ``__aggregation__="average"`` (Pyroscope's legacy ``aggregationType``)
  are averaged instead: their merged values are divided by the number of their profiles
  merged (per bucket in the timeline), as Pyroscope does for gauges such as in-use memory.
* :func:`label_names`, :func:`label_values`, :func:`profile_types`, :func:`services` —
  answered from the index entries' series summaries; segments are read only for entries
  whose summary is incomplete.

Segment objects are fetched ahead on a thread pool from S3 (request latency) and decoded
in the calling thread (see :func:`_map_segments`); concurrent queries over the same
segments (a page's flame graph and timeline) share the decoding. Decoded segments are kept
in :data:`SEGMENT_CACHE`, an LRU bounded by bytes and keyed by ``(store url, object key)``:
segment objects are immutable, so a repeated query over the same range (a dashboard
refresh) reads nothing again. Its size comes from ``FLEETPROF_SEGMENT_CACHE_MB`` (default
512; ``0`` disables it).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

from fleetprof import telemetry
from fleetprof.metastore.index import Index, PackedSeries, SegmentEntry
from fleetprof.model.groupsum import sum_by_key
from fleetprof.model.hashing import ROOT_ID, series_id
from fleetprof.model.profile import FRAMES_SCHEMA, NODES_SCHEMA, Profile, ValueType
from fleetprof.query.selector import Matcher, SelectorError
from fleetprof.segment.cache import SEGMENT_CACHE, cache_key
from fleetprof.segment.format import (
    Segment,
    SegmentCorrupt,
    ancestors_mask,
    decode_segment,
    node_ids_from_rows,
)
from fleetprof.storage.objectstore import ObjectStore

FETCH_THREADS = 16
"""Concurrent GETs against a remote (S3) store."""
_T = TypeVar("_T")


def open_segment(store: ObjectStore, entry: SegmentEntry) -> Segment:
    """The decoded segment of ``entry`` (from :data:`SEGMENT_CACHE` when present)."""
    ck = cache_key(store, entry.key)
    seg = SEGMENT_CACHE.get(ck)
    if seg is None:
        seg = decode_segment(store.get(entry.key))
    return seg


def _remember(store: ObjectStore, entry: SegmentEntry, seg: Segment) -> None:
    if SEGMENT_CACHE.max_bytes > 0:
        SEGMENT_CACHE.put(cache_key(store, entry.key), seg)


def _is_local(store: ObjectStore) -> bool:
    return str(getattr(store, "url", "")).startswith("file:")


@contextlib.contextmanager
def _objects(store: ObjectStore, keys: Sequence[str]) -> Iterator[Callable[[int], bytes]]:
    """``get(j)``: the bytes of ``keys[j]``. A local store is read on demand; a remote one
    is fetched ahead on :data:`FETCH_THREADS` threads (request latency), so the caller
    decodes object ``j`` while later ones are in flight."""
    if _is_local(store) or len(keys) <= 1:
        yield lambda j: store.get(keys[j])
        return
    ex = ThreadPoolExecutor(min(FETCH_THREADS, len(keys)))
    try:
        futures = [ex.submit(store.get, k) for k in keys]
        yield lambda j: futures[j].result()
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def fetch_objects(store: ObjectStore, keys: Sequence[str]) -> Iterator[bytes]:
    """The bytes of ``keys``, in order (fetched as :func:`_objects` does)."""
    with _objects(store, keys) as get:
        for j in range(len(keys)):
            yield get(j)


def _map_segments(
    store: ObjectStore, entries: Sequence[SegmentEntry], fn: Callable[[Segment], _T]
) -> list[tuple[Segment, _T]]:
    """``(segment, fn(segment))`` for every entry, in order: cached segments from the cache,
    the others fetched (see :func:`_objects`) and decoded in this thread — decoding an L0
    segment's query columns is mostly Python work, which threads would only contend for
    (measured: 16 decoding threads on 2 cores took 1.4x the wall time of one). A segment
    that a concurrent query is decoding (the page's flame graph and timeline requests read
    the same segments at once) is left to it and picked up from the cache afterwards, so
    each is decoded once. Decoded segments are inserted in the cache after ``fn`` so it
    accounts for the columns ``fn`` read."""
    out: list[tuple[Segment, _T] | None] = [None] * len(entries)
    missing: list[int] = []
    for i, e in enumerate(entries):
        seg = SEGMENT_CACHE.get(cache_key(store, e.key))
        if seg is None:
            missing.append(i)
        else:
            out[i] = (seg, fn(seg))
    if missing:
        _load_missing(store, entries, missing, fn, out)
    return out  # type: ignore[return-value]


def _load_missing(
    store: ObjectStore, entries: Sequence[SegmentEntry], missing: Sequence[int], fn: Callable[[Segment], _T],
    out: list[tuple[Segment, _T] | None],
) -> None:
    """Set ``out[i]`` for every ``i`` in ``missing`` (segments not in the cache when
    :func:`_map_segments` looked): each is decoded here, unless a concurrent query has
    claimed it; those are taken from the cache once that query is done with them."""
    waits: list[tuple[int, int, threading.Event]] = []
    with _objects(store, [entries[i].key for i in missing]) as get:
        for j, i in enumerate(missing):
            ck = cache_key(store, entries[i].key)
            seg, event = SEGMENT_CACHE.claim(ck)
            if event is not None:
                waits.append((j, i, event))
                continue
            if seg is None:
                try:
                    out[i] = _load(store, entries[i], get(j), fn)
                finally:
                    SEGMENT_CACHE.release(ck)
            else:
                out[i] = (seg, fn(seg))
        for j, i, event in waits:
            event.wait()
            seg = SEGMENT_CACHE.get(cache_key(store, entries[i].key))
            if seg is None:  # the other load failed, or the cache did not keep it
                out[i] = _load(store, entries[i], get(j), fn)
            else:
                out[i] = (seg, fn(seg))


def _load(store: ObjectStore, entry: SegmentEntry, data: bytes, fn: Callable[[Segment], _T]) -> tuple[Segment, _T]:
    """``(segment, fn(segment))`` of the object bytes ``data``; the segment is then cached."""
    seg = decode_segment(data)
    got = fn(seg)
    _remember(store, entry, seg)
    return seg, got


def profile_type_value_types(profile_type: str) -> tuple[ValueType, ValueType | None]:
    """``(sample type, period type)`` of a Pyroscope profile type id (period type None for
    ``name:type:unit::``)."""
    parts = profile_type.split(":")
    if len(parts) != 5:
        raise SelectorError(f"invalid profile type {profile_type!r}")
    return ValueType(parts[1], parts[2]), (ValueType(parts[3], parts[4]) if parts[3] or parts[4] else None)


def _service_filter(matchers: Sequence[Matcher]) -> list[str] | None:
    for m in matchers:
        if m.name == "service_name" and m.op == "=":
            return [m.value]
    return None


def _lookup(
    index: Index, tenant: str, start_ms: int, end_ms: int, matchers: Sequence[Matcher], profile_type: str | None
) -> list[SegmentEntry]:
    return index.query(
        tenant, start_ms, end_ms, services=_service_filter(matchers),
        profile_types=[profile_type] if profile_type else None,
    )


def match_series(labels: pl.DataFrame, matchers: Sequence[Matcher]) -> pl.Series:
    """Series ids in a long ``series_id, key, value`` table that satisfy every matcher."""
    ids = labels.select(pl.col("series_id").unique())
    for m in matchers:
        vals = labels.filter(pl.col("key") == m.name).select("series_id", pl.col("value").alias("_v"))
        v = ids.join(vals, on="series_id", how="left").with_columns(pl.col("_v").fill_null(""))
        if m.op == "=":
            cond = pl.col("_v") == m.value
        elif m.op == "!=":
            cond = pl.col("_v") != m.value
        elif m.op == "=~":
            cond = pl.col("_v").str.contains(m.anchored)
        else:
            cond = ~pl.col("_v").str.contains(m.anchored)
        ids = v.filter(cond).select("series_id")
    return ids["series_id"]


@functools.lru_cache(maxsize=512)
def _packed_summary(blob: bytes) -> tuple[np.ndarray, tuple[dict[str, str], ...]]:
    """Series ids and label sets of a stored series summary, memoised by its bytes: the
    segments written one after another mostly hold the same series, so the same bytes."""
    items = tuple(PackedSeries(blob))
    return np.fromiter((series_id(x) for x in items), dtype=np.uint64, count=len(items)), items


def _summary(e: SegmentEntry) -> tuple[np.ndarray, Sequence[dict[str, str]]]:
    """Series ids and label sets of ``e``'s series summary."""
    s = e.series
    if isinstance(s, PackedSeries) and s.blob is not None:
        return _packed_summary(s.blob)
    return np.fromiter((series_id(x) for x in s), dtype=np.uint64, count=len(s)), s


def _summary_labels(entries: Iterable[SegmentEntry]) -> pl.DataFrame:
    seen: dict[int, dict[str, str]] = {}
    blobs: set[bytes] = set()
    for e in entries:
        blob = e.series.blob if isinstance(e.series, PackedSeries) else None
        if blob is not None:
            if blob in blobs:  # a summary met before (same bytes)
                continue
            blobs.add(blob)
        ids, items = _summary(e)
        for sid, labels in zip(ids.tolist(), items, strict=True):
            seen.setdefault(sid, labels)
    rows = [(sid, k, v) for sid, s in seen.items() for k, v in s.items()]
    return pl.DataFrame(rows, schema={"series_id": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8}, orient="row")


def _series_of(store: ObjectStore, entries: Sequence[SegmentEntry]) -> pl.DataFrame:
    """Long label table of every series in ``entries`` (summaries, else segment reads)."""
    complete = [e for e in entries if e.series_complete]
    incomplete = [e for e in entries if not e.series_complete]
    parts = [_summary_labels(complete)]
    if incomplete:
        parts.extend(lab for _, lab in _map_segments(store, incomplete, lambda s: s.labels()))
    return pl.concat(parts).unique()


AGGREGATION_LABEL = "__aggregation__"
"""Series label set by Pyroscope's legacy ``/ingest`` with ``aggregationType=average``: a
query reports such series' values averaged over the profiles it merges, not summed."""


def _series_sets(
    store: ObjectStore, entries: Sequence[SegmentEntry], matchers: Sequence[Matcher]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(sorted series ids that satisfy the matchers, ``None`` = no filtering needed; sorted
    ids of series to average, ``None`` = none)."""
    if not entries or (not matchers and not _may_average(entries)):
        return None, None
    labels = _series_of(store, entries)
    wanted = np.sort(match_series(labels, matchers).to_numpy()) if matchers else None
    avg = labels.filter((pl.col("key") == AGGREGATION_LABEL) & (pl.col("value") == "average"))["series_id"].unique()
    return wanted, (np.sort(avg.to_numpy()) if len(avg) else None)


def _may_average(entries: Sequence[SegmentEntry]) -> bool:
    """False only when no entry's series can carry :data:`AGGREGATION_LABEL` (checked on
    the summaries' raw text: no parse for the common case of no averaged series)."""
    for e in entries:
        if not e.series_complete:
            return True
        s = e.series
        if s.mentions(AGGREGATION_LABEL) if isinstance(s, PackedSeries) else any(AGGREGATION_LABEL in d for d in s):
            return True
    return False


def _profiles(series: np.ndarray, time_ms: np.ndarray) -> int:
    """Number of distinct profiles among sample rows (one per series and timestamp)."""
    if len(series) == 0:
        return 0
    return len(np.unique(np.stack([series, time_ms.astype(np.uint64)], axis=1), axis=0))


def _entries_with_series(entries: Sequence[SegmentEntry], wanted: np.ndarray | None) -> list[SegmentEntry]:
    if wanted is None:
        return list(entries)
    out = []
    for e in entries:
        if not e.series_complete:
            out.append(e)
            continue
        if np.isin(_summary(e)[0], wanted).any():
            out.append(e)
    return out


def _filters(profile_type: str, start_ms: int, end_ms: int) -> list[tuple[str, str, Any]]:
    return [("profile_type", "=", profile_type), ("time_ms", ">=", int(start_ms)), ("time_ms", "<=", int(end_ms))]


@dataclass(frozen=True)
class _Scope:
    """The segments a query reads and, in each, the series it reads: those with ids in
    ``wanted`` (sorted) when given, else those of ``service`` when given, else all.
    ``average``: sorted ids of the series to average (see :data:`AGGREGATION_LABEL`)."""

    entries: list[SegmentEntry]
    wanted: np.ndarray | None = None
    service: str | None = None
    average: np.ndarray | None = None

    def mask(self, seg: Segment) -> np.ndarray | None:
        """Boolean mask over ``seg``'s series rows of the series read (``None``: all)."""
        if self.wanted is not None:
            m = np.isin(seg.series_ids(), self.wanted)
        elif self.service is not None:
            if seg.meta.get("services") == [self.service]:
                return None  # every series has a non-empty service_name (the writer checks)
            m = seg.service_rows(self.service)
        else:
            return None
        return None if m.all() else m


def _service_only(matchers: Sequence[Matcher]) -> str | None:
    """``X`` when every matcher is ``service_name="X"`` (one non-empty ``X``), else None."""
    values = {m.value for m in matchers if m.name == "service_name" and m.op == "="}
    if len(values) == 1 and all(m.name == "service_name" and m.op == "=" for m in matchers):
        return values.pop() or None
    return None


def _scope(
    store: ObjectStore, index: Index, tenant: str, start_ms: int, end_ms: int, matchers: Sequence[Matcher],
    profile_type: str,
) -> _Scope:
    """The segments and series of a query: a selector of one service only is answered from
    the segments' own series tables (no index summary is parsed); other label matchers are
    resolved on the summaries first (segments without a wanted series are not read)."""
    entries = _lookup(index, tenant, start_ms, end_ms, matchers, profile_type)
    service = _service_only(matchers)
    if service is not None and not _may_average(entries):
        telemetry.annotate({"fleetprof.query.segments": len(entries)})
        return _Scope(entries, service=service)
    wanted, average = _series_sets(store, entries, matchers)
    scope = _Scope(_entries_with_series(entries, wanted), wanted, None, average)
    telemetry.annotate({"fleetprof.query.segments": len(scope.entries)} | ({} if wanted is None else {"fleetprof.query.series": len(wanted)}))
    return scope


def _segment_sums(
    seg: Segment, scope: _Scope, by: str, profile_type: str, start_ms: int, end_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`Segment.sums` of the series ``scope`` reads in ``seg``."""
    mask = scope.mask(seg)
    if mask is not None and not mask.any():
        return np.zeros(0, np.uint64 if by == "leaf" else np.int64), np.zeros(0, np.int64)
    return seg.sums(by, profile_type, start_ms, end_ms, mask)


def select_merge(
    store: ObjectStore,
    index: Index,
    tenant: str,
    profile_type: str,
    matchers: Sequence[Matcher],
    start_ms: int,
    end_ms: int,
) -> Profile:
    """Merged profile (one sample type, labels dropped) of the matching series."""
    sample_type, period_type = profile_type_value_types(profile_type)
    meta = {
        "period_type": period_type, "default_sample_type": sample_type.type,
        "time_nanos": int(start_ms) * 1_000_000, "duration_nanos": max(0, int(end_ms) - int(start_ms)) * 1_000_000,
    }
    scope = _scope(store, index, tenant, start_ms, end_ms, matchers, profile_type)
    if scope.average is not None:
        return _merge_averaged(store, scope, profile_type, start_ms, end_ms, (sample_type,), meta)
    parts = _map_segments(
        store, scope.entries, lambda seg: _segment_sums(seg, scope, "leaf", profile_type, start_ms, end_ms)
    )
    keys, sums = sum_by_key(_cat([k for _, (k, _) in parts], np.uint64), _cat([v for _, (_, v) in parts], np.int64))
    return _profile_of(keys, sums, [seg for seg, (k, _) in parts if len(k)], (sample_type,), meta)


def _merge_averaged(
    store: ObjectStore, scope: _Scope, profile_type: str, start_ms: int, end_ms: int,
    sample_types: tuple[ValueType, ...], meta: dict[str, Any],
) -> Profile:
    """:func:`select_merge` when some series are averaged: from the samples' series and times."""
    cols = ["node_id", "value", "series_id", "time_ms"]
    filt = _filters(profile_type, start_ms, end_ms)
    parts = _map_segments(store, scope.entries, lambda seg: seg.sample_arrays(cols, filt))
    return merge_segments(parts, scope.wanted, sample_types, meta, average=scope.average)


def _cat(arrs: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrs).astype(dtype, copy=False) if arrs else np.zeros(0, dtype=dtype)


def merge_segments(
    parts: Sequence[tuple[Segment, dict[str, np.ndarray]]], wanted: np.ndarray | None,
    sample_types: tuple[ValueType, ...], meta: dict[str, Any], *, average: np.ndarray | None = None,
) -> Profile:
    """One profile from segments and their selected sample arrays (``node_id``, ``value``
    and, when ``wanted`` filters series or ``average`` names series, ``series_id``; with
    ``average`` also ``time_ms``): one group-by over all samples, then the tree of the
    distinct leaves from as few segments as cover them. The values of the series in
    ``average`` are divided (rounding down) by the number of their profiles merged."""
    leaf = _cat([a["node_id"] for _, a in parts], np.uint64)
    val = _cat([a["value"] for _, a in parts], np.int64)
    sid = _cat([a["series_id"] for _, a in parts], np.uint64) if wanted is not None or average is not None else None
    t = _cat([a["time_ms"] for _, a in parts], np.int64) if average is not None else None
    if wanted is not None:
        keep = np.isin(sid, wanted)
        leaf, val, sid = leaf[keep], val[keep], sid[keep]
        t = t[keep] if t is not None else None
    if average is not None and (avg := np.isin(sid, average)).any():
        k_avg, s_avg = sum_by_key(leaf[avg], val[avg])
        s_avg //= _profiles(sid[avg], t[avg])
        k_sum, s_sum = sum_by_key(leaf[~avg], val[~avg])
        keys, sums = sum_by_key(np.concatenate([k_avg, k_sum]), np.concatenate([s_avg, s_sum]))
    else:
        keys, sums = sum_by_key(leaf, val)
    return _profile_of(keys, sums, [seg for seg, a in parts if len(a["value"])], sample_types, meta)


def _profile_of(
    keys: np.ndarray, sums: np.ndarray, segs: Sequence[Segment], sample_types: tuple[ValueType, ...],
    meta: dict[str, Any],
) -> Profile:
    """The profile of leaf ids ``keys`` with values ``sums`` (zeros dropped), its call tree
    taken from ``segs`` (see :func:`_tree_of`)."""
    nz = sums != 0
    keys, sums = keys[nz], sums[nz]
    nodes, frames = _tree_of(keys, segs)
    samples = pl.DataFrame(
        {"node_id": keys, "labels": np.zeros(len(keys), np.uint64), "v0": sums},
        schema={"node_id": pl.UInt64, "labels": pl.UInt64, "v0": pl.Int64},
    )
    labels = pl.DataFrame(schema={"labels": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8})
    return Profile(sample_types, frames, nodes, samples, labels, **meta)  # type: ignore[arg-type]


_TREE_COLUMNS = ("nodes.parent", "nodes.frame", "nodes.depth", "frames.name", "frames.file", "frames.line")


def _covering(leaves: np.ndarray, segs: Sequence[Segment]) -> list[tuple[Segment, np.ndarray]]:
    """For every leaf id in ``leaves`` one segment whose leaf table holds it: ``(segment,
    leaf-table rows)`` pairs. Segments with more distinct leaves are preferred, so few
    segments cover all. One hash group-by over all segments' leaf tables."""
    sizes = np.array([seg.rows("leaves") for seg in segs], dtype=np.int64)
    order = np.argsort(-sizes, kind="stable")
    cat = _cat([segs[k].leaf_ids() for k in order], np.uint64)
    seg_of = np.repeat(order, sizes[order])
    start = np.repeat(np.cumsum(sizes[order]) - sizes[order], sizes[order])
    first = (
        pl.DataFrame({"k": cat}, schema={"k": pl.UInt64})
        .with_row_index("i")
        .filter(pl.col("k").is_in(pl.Series(leaves, dtype=pl.UInt64).implode()))
        .group_by("k")
        .agg(pl.col("i").min())
    )
    if first.height < len(leaves):
        raise SegmentCorrupt(f"{len(leaves) - first.height} sampled leaves are missing from every segment's leaf table")
    i = np.sort(first["i"].to_numpy().astype(np.int64))
    owner = seg_of[i]
    out = []
    bounds = np.flatnonzero(np.diff(owner)) + 1
    for grp in np.split(np.arange(len(i)), bounds) if len(i) else []:
        k = int(owner[grp[0]])
        out.append((segs[k], i[grp] - start[i[grp]]))
    return out


def _tree_of(leaves: np.ndarray, segs: Sequence[Segment]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Model node and frame tables of ``leaves`` and their ancestors, each leaf's path taken
    from one segment that holds it (see :func:`_covering`). The covering segments' node
    tables are concatenated (rows offset per segment) so the ancestor walk and the node-id
    hashing run once over all of them: one vector step per depth level, not per segment."""
    todo = np.unique(leaves[leaves != np.uint64(ROOT_ID)])
    cover = _covering(todo, segs) if len(todo) else []
    if not cover:
        return pl.DataFrame(schema=NODES_SCHEMA), pl.DataFrame(schema=FRAMES_SCHEMA)
    prows, frows, depths, rows, expect, fids, fcols = [], [], [], [], [], [], []
    n_off = f_off = 0
    for seg, lrows in cover:
        seg.read_columns(_TREE_COLUMNS)  # one Parquet read for the node and frame tables
        prow, frow, depth = seg.node_arrays()
        r = seg.leaf_rows()[lrows]
        prows.append(np.where(prow >= 0, prow + n_off, -1))
        frows.append(frow + f_off)
        depths.append(depth)
        rows.append(np.where(r >= 0, r + n_off, -1))
        expect.append(seg.leaf_ids()[lrows])
        fids.append(seg.frame_ids())
        fcols.append(seg.columns("frames", ["name", "file", "line"]))
        n_off += len(prow)
        f_off += seg.rows("frames")
    prow, frow, depth, row = (_cat(x, np.int64) for x in (prows, frows, depths, rows))
    used = ancestors_mask(prow, depth, row)
    keep = np.flatnonzero(used)
    sub = np.cumsum(used) - 1  # row -> row among the kept (a parent keeps a smaller row)
    pr = prow[keep]
    pk = np.where(pr >= 0, sub[np.maximum(pr, 0)], -1)
    fid_all = _cat(fids, np.uint64)
    fid = fid_all[frow[keep]]
    nid = node_ids_from_rows(pk, fid, depth[keep])
    got = np.where(row >= 0, nid[sub[np.maximum(row, 0)]], np.uint64(ROOT_ID)).astype(np.uint64)
    if not np.array_equal(got, _cat(expect, np.uint64)):
        raise SegmentCorrupt("stored leaf ids do not match the node table")
    nodes = pl.DataFrame(
        {
            "node_id": nid, "parent_id": np.where(pk >= 0, nid[np.maximum(pk, 0)], np.uint64(ROOT_ID)).astype(np.uint64),
            "frame_id": fid, "depth": depth[keep].astype(np.uint32),
        },
        schema=NODES_SCHEMA,
    ).unique("node_id", keep="first")
    fu = pa.array(np.unique(frow[keep]), pa.int64())
    name, file, line = (pa.concat_arrays([c[k] for c in fcols]).take(fu) for k in range(3))
    frames = pl.DataFrame(
        {"frame_id": fid_all[fu.to_numpy()], "name": name, "file": file, "line": line},
        schema=FRAMES_SCHEMA,
    ).unique("frame_id", keep="first")
    return nodes, frames


def select_timeline(
    store: ObjectStore,
    index: Index,
    tenant: str,
    profile_type: str,
    matchers: Sequence[Matcher],
    start_ms: int,
    end_ms: int,
    step_ms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(times_ms, values)``: the sum of matching values in each ``step_ms`` bucket from
    ``start_ms`` (bucket ``k`` covers ``[start_ms + k*step_ms, start_ms + (k+1)*step_ms)``)."""
    if step_ms <= 0:
        raise ValueError("step_ms must be positive")
    profile_type_value_types(profile_type)
    n = max(1, (int(end_ms) - int(start_ms)) // step_ms + 1)
    times = int(start_ms) + np.arange(n, dtype=np.int64) * step_ms
    values = np.zeros(n, dtype=np.int64)
    scope = _scope(store, index, tenant, start_ms, end_ms, matchers, profile_type)
    if scope.average is not None:
        return times, _averaged_timeline(store, scope, profile_type, start_ms, end_ms, step_ms, n)
    parts = _map_segments(
        store, scope.entries, lambda seg: _segment_sums(seg, scope, "time_ms", profile_type, start_ms, end_ms)
    )
    t = _cat([k for _, (k, _) in parts], np.int64)
    v = _cat([x for _, (_, x) in parts], np.int64)
    bucket = (t - int(start_ms)) // step_ms
    ok = (bucket >= 0) & (bucket < n)
    np.add.at(values, bucket[ok], v[ok])
    return times, values


def _averaged_timeline(
    store: ObjectStore, scope: _Scope, profile_type: str, start_ms: int, end_ms: int, step_ms: int, n: int
) -> np.ndarray:
    """:func:`select_timeline`'s values when some series are averaged: from the samples'
    series and times (per bucket, an averaged series adds its sum over its profiles)."""
    values = np.zeros(n, dtype=np.int64)
    filt = _filters(profile_type, start_ms, end_ms)
    cols = ["time_ms", "value", "series_id"]
    parts = [a for _, a in _map_segments(store, scope.entries, lambda seg: seg.sample_arrays(cols, filt))]
    t = _cat([a["time_ms"] for a in parts], np.int64)
    v = _cat([a["value"] for a in parts], np.int64)
    sid = _cat([a["series_id"] for a in parts], np.uint64)
    if scope.wanted is not None:
        keep = np.isin(sid, scope.wanted)
        t, v, sid = t[keep], v[keep], sid[keep]
    bucket = (t - int(start_ms)) // step_ms
    ok = (bucket >= 0) & (bucket < n)
    avg = np.isin(sid, scope.average)
    np.add.at(values, bucket[ok & ~avg], v[ok & ~avg])
    a = ok & avg
    sums = np.zeros(n, dtype=np.int64)
    np.add.at(sums, bucket[a], v[a])
    first = np.unique(np.stack([bucket[a].astype(np.uint64), sid[a], t[a].astype(np.uint64)], axis=1), axis=0)
    counts = np.bincount(first[:, 0].astype(np.int64), minlength=n)
    values += np.where(counts > 0, sums // np.maximum(counts, 1), 0)
    return values


def label_names(
    store: ObjectStore, index: Index, tenant: str, start_ms: int, end_ms: int, matchers: Sequence[Matcher] = ()
) -> list[str]:
    """Sorted label names of series matching ``matchers`` in the time range."""
    labels = _matching_labels(store, index, tenant, start_ms, end_ms, matchers)
    return sorted(labels["key"].unique().to_list())


def label_values(
    store: ObjectStore, index: Index, tenant: str, name: str, start_ms: int, end_ms: int,
    matchers: Sequence[Matcher] = (),
) -> list[str]:
    """Sorted values of label ``name`` over series matching ``matchers``."""
    labels = _matching_labels(store, index, tenant, start_ms, end_ms, matchers)
    return sorted(labels.filter(pl.col("key") == name)["value"].unique().to_list())


def _matching_labels(
    store: ObjectStore, index: Index, tenant: str, start_ms: int, end_ms: int, matchers: Sequence[Matcher]
) -> pl.DataFrame:
    entries = _lookup(index, tenant, start_ms, end_ms, matchers, None)
    labels = _series_of(store, entries)
    if matchers:
        ids = match_series(labels, matchers)
        labels = labels.filter(pl.col("series_id").is_in(ids.implode()))
    return labels


def profile_types(store: ObjectStore, index: Index, tenant: str, start_ms: int, end_ms: int) -> list[str]:
    """Profile type ids present in the time range (from the index only)."""
    return sorted({p for e in index.query(tenant, start_ms, end_ms) for p in e.profile_types})


def services(store: ObjectStore, index: Index, tenant: str, start_ms: int, end_ms: int) -> list[str]:
    """Service names present in the time range (from the index only)."""
    return sorted({s for e in index.query(tenant, start_ms, end_ms) for s in e.services})
