"""Query execution over segments: index lookup, selective decode, vectorised merge.

* :func:`select_merge` — the merged profile of one profile type for the series matching
  the matchers in ``[start_ms, end_ms]`` (inclusive): segments come from the index
  (tenant, time, profile type, ``service_name=`` matchers), only the ``samples`` row groups
  of that profile type and the needed columns are decoded, series are filtered with
  polars expressions, and every segment's node table is concatenated and hashed back to
  model node ids in one vector step per depth; the merge is a polars group-by over node
  ids. Nothing loops per sample or per segment row in Python.
* :func:`select_timeline` — values summed per ``step_ms`` bucket (``times_ms[k] =
  start_ms + k * step_ms``).
* :func:`label_names`, :func:`label_values`, :func:`profile_types`, :func:`services` —
  answered from the index entries' series summaries; segments are read only for entries
  whose summary is incomplete.

Segments are fetched and decoded on a thread pool (S3 latency, Parquet decoding release
the GIL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from fleetprof.metastore.index import Index, SegmentEntry
from fleetprof.model.hashing import ROOT_ID, mix, series_id
from fleetprof.model.profile import FRAMES_SCHEMA, NODES_SCHEMA, Profile, ValueType
from fleetprof.query.selector import Matcher, SelectorError
from fleetprof.segment.format import Segment, decode_segment
from fleetprof.storage.objectstore import ObjectStore

FETCH_THREADS = 16


def profile_type_value_types(profile_type: str) -> tuple[ValueType, ValueType]:
    """``(sample type, period type)`` of a Pyroscope profile type id."""
    parts = profile_type.split(":")
    if len(parts) != 5:
        raise SelectorError(f"invalid profile type {profile_type!r}")
    return ValueType(parts[1], parts[2]), ValueType(parts[3], parts[4])


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


def _summary_labels(entries: Iterable[SegmentEntry]) -> pl.DataFrame:
    seen: dict[int, dict[str, str]] = {}
    for e in entries:
        for s in e.series:
            sid = series_id(s)
            if sid not in seen:
                seen[sid] = s
    rows = [(sid, k, v) for sid, s in seen.items() for k, v in s.items()]
    return pl.DataFrame(rows, schema={"series_id": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8}, orient="row")


def _fetch(store: ObjectStore, entries: Sequence[SegmentEntry]) -> list[Segment]:
    def one(e: SegmentEntry) -> Segment:
        return decode_segment(store.get(e.key))

    if len(entries) <= 1:
        return [one(e) for e in entries]
    with ThreadPoolExecutor(min(FETCH_THREADS, len(entries))) as ex:
        return list(ex.map(one, entries))


def _series_of(
    store: ObjectStore, entries: Sequence[SegmentEntry], segments: Sequence[Segment] | None = None
) -> pl.DataFrame:
    """Long label table of every series in ``entries`` (summaries, else segment reads)."""
    complete = [e for e in entries if e.series_complete]
    incomplete = [e for e in entries if not e.series_complete]
    parts = [_summary_labels(complete)]
    if incomplete:
        segs = _fetch(store, incomplete)
        parts.extend(s.labels() for s in segs)
    return pl.concat(parts).unique()


@dataclass
class _Part:
    """Arrays read from one segment for a merge."""

    series: np.ndarray
    time: np.ndarray
    node: np.ndarray
    value: np.ndarray
    parent: np.ndarray
    frame: np.ndarray
    depth: np.ndarray
    frames: pa.Table


def _read_part(store: ObjectStore, entry: SegmentEntry, profile_type: str, start_ms: int, end_ms: int) -> _Part:
    seg = decode_segment(store.get(entry.key))
    filt = [("profile_type", "=", profile_type), ("time_ms", ">=", start_ms), ("time_ms", "<=", end_ms)]
    t = seg.table("samples", ["series_id", "time_ms", "node", "value"], filters=filt)
    nodes = seg.table("nodes")
    return _Part(
        series=t.column("series_id").to_numpy(),
        time=t.column("time_ms").to_numpy(),
        node=t.column("node").to_numpy().astype(np.int64),
        value=t.column("value").to_numpy(),
        parent=nodes.column("parent").to_numpy().astype(np.int64),
        frame=nodes.column("frame").to_numpy().astype(np.int64),
        depth=nodes.column("depth").to_numpy().astype(np.int64),
        frames=seg.table("frames"),
    )


def _read_parts(
    store: ObjectStore, entries: Sequence[SegmentEntry], profile_type: str, start_ms: int, end_ms: int
) -> list[_Part]:
    if len(entries) <= 1:
        return [_read_part(store, e, profile_type, start_ms, end_ms) for e in entries]
    with ThreadPoolExecutor(min(FETCH_THREADS, len(entries))) as ex:
        return list(ex.map(lambda e: _read_part(store, e, profile_type, start_ms, end_ms), entries))


def _wanted_series(
    store: ObjectStore, entries: Sequence[SegmentEntry], matchers: Sequence[Matcher]
) -> np.ndarray | None:
    """Sorted series ids that satisfy the matchers (``None`` = no filtering needed)."""
    if not matchers:
        return None
    ids = match_series(_series_of(store, entries), matchers)
    return np.sort(ids.to_numpy())


def _entries_with_series(entries: Sequence[SegmentEntry], wanted: np.ndarray | None) -> list[SegmentEntry]:
    if wanted is None:
        return list(entries)
    out = []
    for e in entries:
        if not e.series_complete:
            out.append(e)
            continue
        ids = np.fromiter((series_id(s) for s in e.series), dtype=np.uint64, count=len(e.series))
        if np.isin(ids, wanted).any():
            out.append(e)
    return out


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
    entries = _lookup(index, tenant, start_ms, end_ms, matchers, profile_type)
    wanted = _wanted_series(store, entries, matchers)
    entries = _entries_with_series(entries, wanted)
    parts = _read_parts(store, entries, profile_type, start_ms, end_ms)
    return _merge_parts(parts, wanted, (sample_type,), meta)


def _merge_parts(parts: Sequence[_Part], wanted: np.ndarray | None, sample_types: tuple[ValueType, ...], meta: dict) -> Profile:
    node_counts = np.array([len(p.parent) for p in parts], dtype=np.int64)
    frame_counts = np.array([p.frames.num_rows for p in parts], dtype=np.int64)
    noff = np.concatenate([[0], np.cumsum(node_counts)])
    foff = np.concatenate([[0], np.cumsum(frame_counts)])
    sample_counts = np.array([len(p.node) for p in parts], dtype=np.int64)

    def cat(arrs: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(arrs).astype(dtype, copy=False) if arrs else np.zeros(0, dtype=dtype)

    snode = cat([p.node for p in parts], np.int64)
    sval = cat([p.value for p in parts], np.int64)
    sser = cat([p.series for p in parts], np.uint64)
    s_off = np.repeat(noff[:-1], sample_counts)
    keep = snode >= -1
    if wanted is not None:
        keep &= np.isin(sser, wanted)
    snode = np.where(snode >= 0, snode + s_off, -1)[keep]
    sval = sval[keep]

    parent = cat([p.parent for p in parts], np.int64)
    parent = np.where(parent >= 0, parent + np.repeat(noff[:-1], node_counts), -1)
    frame = cat([p.frame for p in parts], np.int64) + np.repeat(foff[:-1], node_counts)
    depth = cat([p.depth for p in parts], np.int64)
    frames_tab = pa.concat_tables([p.frames for p in parts]) if parts else None
    fid_all = frames_tab.column("frame_id").to_numpy() if frames_tab is not None else np.zeros(0, np.uint64)
    fid = fid_all[frame] if len(frame) else np.zeros(0, np.uint64)

    # Nodes actually used by the selected samples (and their ancestors): deepest level first.
    used = np.zeros(len(parent), dtype=bool)
    used[snode[snode >= 0]] = True
    order = np.argsort(depth, kind="stable")
    bounds = np.flatnonzero(np.diff(depth[order])) + 1
    levels = np.split(order, bounds) if len(order) else []
    for level in reversed(levels):
        lv = level[used[level]]
        p = parent[lv]
        used[p[p >= 0]] = True
    # Model node ids, one vector step per depth level over the used rows only.
    nid = np.zeros(len(parent), dtype=np.uint64)
    for level in levels:
        lv = level[used[level]]
        if not len(lv):
            continue
        p = parent[lv]
        base = np.where(p >= 0, nid[np.maximum(p, 0)], np.uint64(ROOT_ID)).astype(np.uint64)
        nid[lv] = mix(base, fid[lv])
    rows = np.flatnonzero(used)
    pr = parent[rows]
    nodes = pl.DataFrame(
        {
            "node_id": nid[rows],
            "parent_id": np.where(pr >= 0, nid[np.maximum(pr, 0)], np.uint64(ROOT_ID)).astype(np.uint64),
            "frame_id": fid[rows],
            "depth": depth[rows].astype(np.uint32),
        },
        schema=NODES_SCHEMA,
    ).unique("node_id", keep="any")
    leaf = np.where(snode >= 0, nid[np.maximum(snode, 0)] if len(nid) else 0, np.uint64(ROOT_ID)).astype(np.uint64)
    samples = (
        pl.DataFrame({"node_id": leaf, "v0": sval}, schema={"node_id": pl.UInt64, "v0": pl.Int64})
        .group_by("node_id").agg(pl.col("v0").sum())
        .filter(pl.col("v0") != 0)
        .select("node_id", pl.lit(0, dtype=pl.UInt64).alias("labels"), "v0")
    )
    if frames_tab is not None and len(rows):
        used_f = np.unique(frame[rows])
        ft = pl.from_arrow(frames_tab.take(pa.array(used_f)))
        frames = ft.cast(FRAMES_SCHEMA).select(list(FRAMES_SCHEMA)).unique("frame_id", keep="first")  # type: ignore[union-attr]
    else:
        frames = pl.DataFrame(schema=FRAMES_SCHEMA)
    labels = pl.DataFrame(schema={"labels": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8})
    return Profile(sample_types, frames, nodes, samples, labels, **meta)  # type: ignore[arg-type]


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
    entries = _lookup(index, tenant, start_ms, end_ms, matchers, profile_type)
    wanted = _wanted_series(store, entries, matchers)
    entries = _entries_with_series(entries, wanted)
    filt = [("profile_type", "=", profile_type), ("time_ms", ">=", start_ms), ("time_ms", "<=", end_ms)]

    def one(e: SegmentEntry) -> pa.Table:
        return decode_segment(store.get(e.key)).table("samples", ["series_id", "time_ms", "value"], filters=filt)

    if not entries:
        return times, values
    with ThreadPoolExecutor(min(FETCH_THREADS, len(entries))) as ex:
        tables = list(ex.map(one, entries))
    t = pa.concat_tables(tables)
    if wanted is not None:
        t = t.filter(pc.is_in(t.column("series_id"), value_set=pa.array(wanted, pa.uint64())))
    bucket = (t.column("time_ms").to_numpy() - int(start_ms)) // step_ms
    ok = (bucket >= 0) & (bucket < n)
    np.add.at(values, bucket[ok], t.column("value").to_numpy()[ok])
    return times, values


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
