"""The segment object format (``.fps``): one immutable, self-describing, checksummed object.

Layout (all integers little-endian)::

    b"FPSG" | version: u16 | flags: u16 | meta_len: u32 | meta (JSON, meta_len bytes)
    | digest: 32 bytes = blake2b-256(meta + body) | body

``meta`` holds ``rows`` (logical table → row count) and the segment's tenant, level, time
range, sample count, services, profile types, ``frame_ids`` (``"derived"`` or
``"stored"``) and, from version 3, optionally ``block`` (below). ``body`` is
``[array block][Parquet file]``: the array block is empty unless ``meta.block`` describes
it, and the Parquet file (zstd) holds every other stored column, the logical tables side by
side as columns named ``<table>.<column>``; a table with fewer rows than the file is padded
with nulls (one run-length-encoded null run: a few bytes). One file per segment keeps the
fixed cost small — one footer and one Parquet open per segment instead of one per table,
which dominated both the bytes and the read time of the ~1 s L0 segments (format v1 had
five Parquet files). Statistics — only for the columns queries filter on
(``samples.profile_type``, ``samples.time_ms``) — are written only when the file has more
than one row group (large compacted segments); a one-group segment's ranges are in its
metadata, which readers use to skip filters the metadata proves.

**Array block (version 3).** ``meta.block = {"codec": "zstd", "bytes": n, "raw_bytes": m,
"columns": [[name, dtype], ...]}``: the first ``n`` body bytes are one zstd frame of ``m``
bytes, the named columns' raw little-endian values one after another (each as long as its
table's row count). The encoder puts there exactly the columns a flame-graph query reads
from every segment — ``leaves.node_id`` (``<u8``), ``samples.leaf`` (``<u2`` when the
segment has at most :data:`U16_LEAVES` leaves, else ``<i4``) and ``samples.value``
(``<i8``) — and leaves them out of the Parquet file, but only for small segments (at most
:data:`BLOCK_MAX_ROWS` rows, hence one row group: the ~1 s L0 segments). Larger (compacted)
segments keep them in Parquet, where row-group statistics prune reads, the fixed cost of a
Parquet read is spread over many rows, and Parquet's dictionary and bit-packed encodings
store these columns smaller than zstd of the raw values (the compaction benchmark's L2
segments, ~180k sample rows each: 4.9 MB in all this way, 5.1 MB with the block). Reading
the block is one decompression and three ``numpy.frombuffer`` calls, without opening the
Parquet file (footer parse and column decoding cost ~0.25 ms per L0 segment, most of a
cold query over 3,600 segments); for L0 segments the stored bytes are about the same (zstd
of the raw values vs. Parquet's encodings plus three fewer footer entries: 57.86 vs
57.92 MB in ``benchmarks/bench_storage.py --window-s 1``). Version 2 objects (no block)
are still read.

Why Parquet and not Arrow IPC for these small objects (measured on the 1 s L0 segments of
``benchmarks/bench_storage.py``): the same columns as zstd Arrow IPC are 1.6-2x larger
(no dictionary / run-length / delta encodings) and reading three columns costs ~2x more
(IPC decompresses every buffer of the batch). Tables:

* ``frames``  — ``name: str, file: str, line: i64`` (only frames used by ``nodes``);
  ``frame_id: u64`` only if ``meta.frame_ids == "stored"``. Normally the ids are the
  model's ``frame_id(name, file, line)`` and are recomputed on read (memoised), which keeps
  ~8 random bytes per frame out of every segment; the encoder checks this and stores the
  column when some id differs.
* ``nodes``   — ``parent: i32, frame: i32, depth: u16`` in breadth-first order (``parent``
  is the row of the parent, ``-1`` for top-level nodes, always smaller than the row itself;
  ``frame`` is a ``frames`` row). Only the sampled leaves and their ancestors are stored.
  Node ids are not stored: they are the model's hashes ``mix(parent id, frame id)`` and are
  recomputed on read (one vector step per depth level).
* ``leaves``  — ``node: i32, node_id: u64``: the distinct sampled nodes (``node`` = their
  ``nodes`` row, ``-1`` = empty stack / root) and their model node ids. Storing the leaf
  ids (8 bytes per distinct leaf, not per node) lets a query merge many segments by leaf id
  without rebuilding every segment's node ids; the call tree is then built only from one
  segment per distinct leaf (see ``fleetprof.query.select``). Decoders check the stored ids
  against the recomputed ones when they rebuild node ids.
* ``series``  — ``series_id: u64, service_name: str``; ``labels`` — ``series: i32`` (a
  ``series`` row), ``key: str, value: str`` (long form; includes ``service_name``).
* ``samples`` — ``profile_type: str, series: i32, time_ms: i64, leaf: i32, value: i64``
  sorted by (profile_type, series, time_ms, leaf); ``series`` / ``leaf`` are rows of
  ``series`` / ``leaves``.

**Span ids (version 4).** Span profiles keep the ``span_id`` of every sample (see
:mod:`fleetprof.model.spans`; never a series label): ``samples.span_id: u64`` (``0`` = no
span) and the side table ``spans`` — ``span_id: u64, name: str, trace_id: str``, one row
per distinct span id of the segment. Version 4 is version 3 plus these columns, so the
encoder writes version 4 only for segments that hold span ids and version 3 for the
others (readers that know only version 3 keep reading them); asked for version 2 or 3
(:data:`WRITE_VERSION_ENV`), it writes that layout and leaves span ids out.

Decoding checks the magic, the version, the digest and the array block's description
against the row counts, and raises :class:`SegmentCorrupt` on any mismatch; objects of
versions other than :data:`READ_VERSIONS` are rejected with a clear error.
:class:`Segment` reads columns lazily (one Parquet read for all the columns asked at once)
and memoises them: a decoded segment is immutable, so callers may cache it.

A :class:`SegmentBatch` is the canonical-table input of :func:`encode_segment` (node ids,
not rows); :func:`batch_from_profiles` builds one from ingested profiles and
:func:`concat_batches` merges batches or decoded segments (compaction), optionally
re-bucketing time to a coarser step.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

try:  # the reader ``pq.ParquetFile`` wraps, without its per-open Python bookkeeping
    from pyarrow._parquet import ParquetReader as _ParquetReader
except ImportError:  # pragma: no cover - other pyarrow builds: the public wrapper
    _ParquetReader = None

from fleetprof.model.hashing import ROOT_ID, frame_id, mix, series_id
from fleetprof.model.profile import FRAMES_SCHEMA, NODES_SCHEMA, Profile, positions

MAGIC = b"FPSG"
FORMAT_VERSION = 4
READ_VERSIONS = (2, 3, 4)
SPANS_VERSION = 4
"""The first version that stores span ids; span-less segments are written as version 3."""
WRITE_VERSION_ENV = "FLEETPROF_SEGMENT_FORMAT"
"""Environment variable naming the version new segments are written in (default
:data:`FORMAT_VERSION`): ``2`` during a rolling upgrade, while replicas that read only
version 2 still share the store."""


def write_version() -> int:
    """The segment format version to write (``FLEETPROF_SEGMENT_FORMAT``, else the
    current one); ``ValueError`` naming the variable for anything this code cannot write."""
    raw = os.environ.get(WRITE_VERSION_ENV, "").strip()
    if not raw:
        return FORMAT_VERSION
    if not raw.isdigit() or int(raw) not in READ_VERSIONS:
        raise ValueError(f"{WRITE_VERSION_ENV}={raw!r}: expected one of {', '.join(map(str, READ_VERSIONS))}")
    return int(raw)
"""Format versions :func:`decode_segment` reads (v2: no array block; see module docstring)."""
_HEAD = struct.Struct("<4sHHI")
_DIGEST = 32

SAMPLES_SCHEMA = {
    "series_id": pl.UInt64, "profile_type": pl.Utf8, "time_ms": pl.Int64, "node_id": pl.UInt64, "value": pl.Int64,
}
LABELS_SCHEMA = {"series_id": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8}
TABLES = ("frames", "nodes", "leaves", "series", "labels", "samples", "spans")
COLUMNS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "frames": (("name", pa.string()), ("file", pa.string()), ("line", pa.int64()), ("frame_id", pa.uint64())),
    "nodes": (("parent", pa.int32()), ("frame", pa.int32()), ("depth", pa.uint16())),
    "leaves": (("node", pa.int32()), ("node_id", pa.uint64())),
    "series": (("series_id", pa.uint64()), ("service_name", pa.string())),
    "labels": (("series", pa.int32()), ("key", pa.string()), ("value", pa.string())),
    "samples": (("profile_type", pa.string()), ("series", pa.int32()), ("time_ms", pa.int64()), ("leaf", pa.int32()),
                ("value", pa.int64()), ("span_id", pa.uint64())),
    "spans": (("span_id", pa.uint64()), ("name", pa.string()), ("trace_id", pa.string())),
}
ROW_GROUP = 256 * 1024
ZSTD_LEVEL = 15
_DICTIONARY = ["frames.name", "frames.file", "frames.line", "nodes.depth", "nodes.frame", "series.service_name",
               "labels.series", "labels.key", "labels.value", "samples.profile_type", "samples.series",
               "samples.value", "samples.span_id", "spans.trace_id"]
_DELTA = {"nodes.parent": "DELTA_BINARY_PACKED", "leaves.node": "DELTA_BINARY_PACKED"}
_STATISTICS = ["samples.profile_type", "samples.time_ms"]
BLOCK_DTYPES: dict[str, tuple[str, ...]] = {
    "leaves.node_id": ("<u8",), "samples.leaf": ("<u2", "<i4"), "samples.value": ("<i8",),
}
"""Columns the array block may hold (v3) and the little-endian dtypes each may be stored as."""
_LOGICAL_DTYPES = {"leaves.node_id": np.uint64, "samples.leaf": np.int32, "samples.value": np.int64}
BLOCK_MAX_ROWS = 1 << 16
"""Segments whose Parquet file would have more rows keep every column in Parquet."""
QUERY_COLUMNS = ("leaves.node_id", "samples.leaf", "samples.value", "samples.time_ms", "samples.series",
                 "series.series_id", "series.service_name")
"""Columns a flame-graph or timeline query reads from every segment it covers."""
SUMS_MEMO = 4
"""Series masks per segment whose :meth:`Segment.sums` results are memoised (besides "all")."""
U16_LEAVES = 1 << 16
"""Up to this many leaves, the block stores sample leaf rows as ``<u2`` (else ``<i4``)."""
_ZSTD = pa.Codec("zstd")  # stateless per call: safe to share between threads


class SegmentCorrupt(ValueError):
    """A segment object failed validation (magic, version, checksum or table layout)."""


@dataclass
class SegmentBatch:
    """Canonical tables of one segment (see module docstring; ids are model hashes).

    * ``labels``: ``series_id, key, value`` · ``samples``: ``series_id, profile_type,
      time_ms, node_id, value`` and optionally ``span_id`` · ``nodes``: model node table ·
      ``frames``: model frame table · ``spans``: span side table (optional).
    Every sample's node and its ancestors must be in ``nodes``; every node's frame in ``frames``.
    """

    labels: pl.DataFrame
    samples: pl.DataFrame
    nodes: pl.DataFrame
    frames: pl.DataFrame
    spans: pl.DataFrame | None = None
    """Span side table (``span_id, span_name, trace_id``) when ``samples`` has a
    ``span_id`` column (u64, 0 = no span; see :mod:`fleetprof.model.spans`)."""

    @property
    def sample_rows(self) -> int:
        return self.samples.height


def profile_value_column(profile: Profile, profile_type: str) -> str:
    """Value column of ``profile`` holding ``profile_type``'s sample type."""
    if len(profile.sample_types) == 1:
        return "v0"
    parts = profile_type.split(":")
    if len(parts) >= 3:
        want = f"{parts[1]}:{parts[2]}"
        for i, st in enumerate(profile.sample_types):
            if str(st) == want:
                return f"v{i}"
    raise ValueError(f"profile has {len(profile.sample_types)} sample types; none matches {profile_type!r}")


def batch_from_profiles(items: Iterable[tuple[dict[str, str], str, int, Profile]]) -> SegmentBatch:
    """Tables for ``(labels, profile_type, time_ms, profile)`` items (per-sample pprof labels
    are summed over: a series is the item's label set, except a sample's span
    (:mod:`fleetprof.model.spans`), kept as its ``span_id``). One polars step per item."""
    from fleetprof.model.spans import spans_of_sets

    samples: list[pl.DataFrame] = []
    spans: list[pl.DataFrame] = []
    nodes: list[pl.DataFrame] = []
    frames: list[pl.DataFrame] = []
    label_rows: dict[int, dict[str, str]] = {}
    for labels, ptype, time_ms, profile in items:
        if "service_name" not in labels:
            raise ValueError("series labels must contain service_name")
        sid = series_id(labels)
        label_rows.setdefault(sid, labels)
        col = profile_value_column(profile, ptype)
        set_ids = profile.samples["labels"].to_numpy() if "labels" in profile.samples.columns else np.zeros(0, np.uint64)
        uniq, inv = np.unique(set_ids, return_inverse=True)
        per_set, table = spans_of_sets(uniq, profile.labels)
        spans.append(table)
        samples.append(
            profile.samples.select(
                pl.lit(sid, dtype=pl.UInt64).alias("series_id"),
                pl.lit(ptype, dtype=pl.Utf8).alias("profile_type"),
                pl.lit(int(time_ms), dtype=pl.Int64).alias("time_ms"),
                pl.col("node_id"),
                pl.col(col).alias("value"),
            ).with_columns(pl.Series("span_id", per_set[inv.reshape(-1)] if len(uniq) else np.zeros(0, np.uint64), dtype=pl.UInt64))
        )
        nodes.append(profile.nodes)
        frames.append(profile.frames)
    lab = pl.DataFrame(
        [(sid, k, v) for sid, ls in label_rows.items() for k, v in ls.items()], schema=LABELS_SCHEMA, orient="row"
    )
    return _normalise(lab, samples, nodes, frames, spans)


def _normalise(
    labels: pl.DataFrame, samples: Sequence[pl.DataFrame], nodes: Sequence[pl.DataFrame], frames: Sequence[pl.DataFrame],
    spans: Sequence[pl.DataFrame | None] = (),
) -> SegmentBatch:
    from fleetprof.model.spans import unique_spans

    table = unique_spans(spans)
    schema = {**SAMPLES_SCHEMA, "span_id": pl.UInt64} if table.height else SAMPLES_SCHEMA
    keys = [k for k in schema if k != "value"]
    parts = [x.select([c for c in schema if c in x.columns]) for x in samples]
    if table.height:
        parts = [x if "span_id" in x.columns else x.with_columns(pl.lit(0, dtype=pl.UInt64).alias("span_id")) for x in parts]
    s = pl.concat([x.cast(schema) for x in parts]) if parts else pl.DataFrame(schema=schema)  # type: ignore[arg-type]
    s = (
        s.group_by(keys)
        .agg(pl.col("value").sum())
        .filter(pl.col("value") != 0)
        .cast(schema)  # type: ignore[arg-type]
        .select(list(schema))
    )
    n = pl.concat([x.select(list(NODES_SCHEMA)) for x in nodes]).unique("node_id", keep="any") if nodes else pl.DataFrame(schema=NODES_SCHEMA)
    f = (
        pl.concat([x.select(list(FRAMES_SCHEMA)) for x in frames]).unique("frame_id", keep="first")
        if frames else pl.DataFrame(schema=FRAMES_SCHEMA)
    )
    return SegmentBatch(labels.unique(), s, n, f, table if table.height else None)


def concat_batches(parts: Sequence[SegmentBatch | Segment], *, step_ms: int | None = None) -> SegmentBatch:
    """Merge batches and/or decoded segments into one batch (compaction). With ``step_ms``
    sample times are floored to multiples of ``step_ms`` (coarser timelines, fewer rows)."""
    batches = [p.batch() if isinstance(p, Segment) else p for p in parts]
    samples = [b.samples for b in batches]
    if step_ms:
        samples = [s.with_columns((pl.col("time_ms") // step_ms * step_ms).alias("time_ms")) for s in samples]
    labels = pl.concat([b.labels for b in batches]) if batches else pl.DataFrame(schema=LABELS_SCHEMA)
    return _normalise(labels, samples, [b.nodes for b in batches], [b.frames for b in batches], [b.spans for b in batches])


# --------------------------------------------------------------------------------------
# frame ids
# --------------------------------------------------------------------------------------

_FRAME_MEMO: dict[tuple[str, str, int], int] = {}
_FRAME_MEMO_MAX = 1 << 20


def derive_frame_ids(names: Sequence[str], files: Sequence[str], lines: Sequence[int]) -> np.ndarray:
    """The model's ``frame_id(name, file, line)`` of each frame (uint64), memoised per
    process: a fleet has a bounded set of frames and every segment repeats most of them."""
    memo = _FRAME_MEMO
    out = []
    for key in zip(names, files, lines, strict=True):
        v = memo.get(key)
        if v is None:
            v = memo[key] = frame_id(key[0], key[1], int(key[2] or 0))
        out.append(v)
    if len(memo) > _FRAME_MEMO_MAX:
        memo.clear()
    return np.array(out, dtype=np.uint64)


# --------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------


def _lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Positions of ``queries`` in unique ``keys`` (-1 if absent): sort-based for small
    inputs (no per-call overhead), the model's hash join for large ones."""
    if len(keys) > 65536:
        return positions(keys, queries)
    if not len(keys):
        return np.full(len(queries), -1, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    i = np.minimum(np.searchsorted(sk, queries), len(sk) - 1)
    return np.where(sk[i] == queries, order[i], -1).astype(np.int64)


def _bfs_layout(nodes: pl.DataFrame, frame_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order nodes breadth-first (depth, parent row, frame row); return
    ``(node_id in that order, parent row, frame row, depth)``; ``frame_keys`` are the frame
    ids in frame-row order. One step per depth level."""
    nid = nodes["node_id"].to_numpy()
    pid = nodes["parent_id"].to_numpy()
    depth = nodes["depth"].to_numpy().astype(np.int64)
    fpos = _lookup(frame_keys, nodes["frame_id"].to_numpy())
    if len(fpos) and (fpos < 0).any():
        raise ValueError("segment nodes reference frames missing from the frame table")
    order_parts: list[np.ndarray] = []
    parent_rows: list[np.ndarray] = []
    prev_ids = np.zeros(0, dtype=np.uint64)  # node ids of the previous depth level, in row order
    next_row = 0
    for d in np.unique(depth):
        idx = np.flatnonzero(depth == d)
        if d == 1:
            prow = np.full(len(idx), -1, dtype=np.int64)
        else:
            p = _lookup(prev_ids, pid[idx])
            if (p < 0).any():
                raise ValueError("segment nodes reference parents missing from the node table")
            prow = p + (next_row - len(prev_ids))
        o = np.lexsort((fpos[idx], prow))
        idx, prow = idx[o], prow[o]
        order_parts.append(idx)
        parent_rows.append(prow)
        next_row += len(idx)
        prev_ids = nid[idx]
    order = np.concatenate(order_parts) if order_parts else np.zeros(0, dtype=np.int64)
    prow_all = np.concatenate(parent_rows) if parent_rows else np.zeros(0, dtype=np.int64)
    return nid[order], prow_all, fpos[order], depth[order]


def depth_levels(depth: np.ndarray) -> list[Any]:
    """Row selections of each depth level, shallowest first: slices when the rows are
    already sorted by depth (one breadth-first table), else index arrays (several tables
    concatenated)."""
    if not len(depth):
        return []
    if len(depth) == 1 or (np.diff(depth) >= 0).all():
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(depth)) + 1, [len(depth)]])
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    order = np.argsort(depth, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(depth[order])) + 1)


def ancestors_mask(prow: np.ndarray, depth: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mask of ``rows`` and all their ancestors in a node table whose ``prow`` are parent
    rows (``-1`` = top level) and ``depth`` the rows' depths (a parent is one level up;
    rows need not be sorted by depth). One vector step per depth level, deepest first."""
    used = np.zeros(len(prow), dtype=bool)
    used[rows[rows >= 0]] = True
    for level in depth_levels(depth)[::-1]:
        sel = np.flatnonzero(used[level])
        u = sel + level.start if isinstance(level, slice) else level[sel]
        p = prow[u]
        used[p[p >= 0]] = True
    return used


def _padded(arr: pa.Array, n: int) -> pa.Array:
    return arr if len(arr) == n else pa.concat_arrays([arr, pa.nulls(n - len(arr), arr.type)])


def _codes(values: np.ndarray) -> np.ndarray:
    """Sort rank of each value (equal values share a rank): lexsort keys for strings."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    return np.unique(values, return_inverse=True)[1].reshape(-1)


def _strings(col: pl.Series) -> np.ndarray:
    return (col.fill_null("") if col.null_count() else col).to_numpy().astype(object, copy=False)


def encode_segment(
    batch: SegmentBatch, *, tenant: str, level: int = 0, created_ms: int = 0, format_version: int | None = None
) -> bytes:
    """Encode ``batch`` into one segment object (see module docstring). The small
    per-segment tables are arranged with numpy (a polars query per tiny table costs more
    than the work). ``format_version`` 2 writes the previous layout (no array block), for
    readers that do not know version 3 yet; the default is :func:`write_version`. Span ids
    are written only in version 4, and a segment without any is written as version 3
    (module docstring)."""
    if format_version is None:
        format_version = write_version()
    if format_version not in READ_VERSIONS:
        raise ValueError(f"cannot write segment format version {format_version} (one of {READ_VERSIONS})")
    bf = batch.frames
    f_id, f_name, f_file = bf["frame_id"].to_numpy(), _strings(bf["name"]), _strings(bf["file"])
    f_line = bf["line"].fill_null(0).to_numpy().astype(np.int64)
    order = np.lexsort((f_line, _codes(f_name), _codes(f_file)))  # by (file, name, line)
    f_id, f_name, f_file, f_line = f_id[order], f_name[order], f_file[order], f_line[order]
    node_ids, prow, frow, depth = _bfs_layout(batch.nodes, f_id)
    s = batch.samples
    s_span = _span_column(batch, format_version)
    s_node = s["node_id"].to_numpy()
    leaf_ids = np.unique(s_node)
    lrow = _lookup(node_ids, leaf_ids)
    if ((lrow < 0) & (leaf_ids != np.uint64(ROOT_ID))).any():
        raise ValueError("segment samples reference nodes missing from the node table")
    # Keep only the sampled leaves and their ancestors, and the frames they use.
    used = ancestors_mask(prow, depth, lrow)
    keep = np.flatnonzero(used)
    newrow = np.cumsum(used) - 1
    pk = prow[keep]
    prow = np.where(pk >= 0, newrow[np.maximum(pk, 0)], -1) if len(keep) else pk
    frow, depth = frow[keep], depth[keep]
    lrow = np.where(lrow >= 0, newrow[np.maximum(lrow, 0)], -1) if len(newrow) else lrow
    fkeep = np.unique(frow)
    frow = np.searchsorted(fkeep, frow)
    f_id, f_name, f_file, f_line = f_id[fkeep], f_name[fkeep], f_file[fkeep], f_line[fkeep]
    derived = derive_frame_ids(f_name.tolist(), f_file.tolist(), f_line.tolist())
    store_ids = not np.array_equal(derived, f_id)
    # Leaves in node-row order; each sample points at its leaf row.
    lorder = np.argsort(lrow, kind="stable")
    leaf_of_id = np.empty(len(lorder), dtype=np.int64)
    leaf_of_id[lorder] = np.arange(len(lorder))
    s_leaf = leaf_of_id[np.searchsorted(leaf_ids, s_node)] if len(s_node) else np.zeros(0, np.int64)
    # Series (sorted by service, id) and their labels (sorted by series row, key, value).
    s_sid = s["series_id"].to_numpy()
    bl = batch.labels
    l_sid, l_key, l_val = bl["series_id"].to_numpy(), _strings(bl["key"]), _strings(bl["value"])
    sids = np.unique(s_sid)
    is_svc = l_key == "service_name"
    svc_of = dict(zip(l_sid[is_svc].tolist(), l_val[is_svc].tolist(), strict=True))
    svc = np.array([svc_of.get(x, "") for x in sids.tolist()], dtype=object)
    order = np.lexsort((sids, _codes(svc)))
    sids, svc = sids[order], svc[order]
    lab_series = _lookup(sids, l_sid)
    inside = lab_series >= 0
    lab_series, l_key, l_val = lab_series[inside], l_key[inside], l_val[inside]
    kc, vc = _codes(l_key), _codes(l_val)
    order = np.lexsort((vc, kc, lab_series))
    lab_series, l_key, l_val, kc, vc = lab_series[order], l_key[order], l_val[order], kc[order], vc[order]
    if len(order) > 1:  # drop duplicate label rows
        first = np.concatenate([[True], (np.diff(lab_series) != 0) | (np.diff(kc) != 0) | (np.diff(vc) != 0)])
        lab_series, l_key, l_val = lab_series[first], l_key[first], l_val[first]
    s_type = _strings(s["profile_type"])
    s_series = _lookup(sids, s_sid)
    s_time, s_value = s["time_ms"].to_numpy(), s["value"].to_numpy()
    keys = (s_leaf, s_time, s_series, _codes(s_type))
    order = np.lexsort(keys if s_span is None else (s_span, *keys))
    s_type, s_series, s_time, s_leaf, s_value = (x[order] for x in (s_type, s_series, s_time, s_leaf, s_value))
    cols: dict[str, pa.Array] = {
        "frames.name": pa.array(f_name, pa.string()),
        "frames.file": pa.array(f_file, pa.string()),
        "frames.line": pa.array(f_line, pa.int64()),
        "nodes.parent": pa.array(prow.astype(np.int32), pa.int32()),
        "nodes.frame": pa.array(frow.astype(np.int32), pa.int32()),
        "nodes.depth": pa.array(depth.astype(np.uint16), pa.uint16()),
        "leaves.node": pa.array(lrow[lorder].astype(np.int32), pa.int32()),
        "leaves.node_id": pa.array(leaf_ids[lorder], pa.uint64()),
        "series.series_id": pa.array(sids, pa.uint64()),
        "series.service_name": pa.array(svc, pa.string()),
        "labels.series": pa.array(lab_series.astype(np.int32), pa.int32()),
        "labels.key": pa.array(l_key, pa.string()),
        "labels.value": pa.array(l_val, pa.string()),
        "samples.profile_type": pa.array(s_type, pa.string()),
        "samples.series": pa.array(s_series.astype(np.int32), pa.int32()),
        "samples.time_ms": pa.array(s_time, pa.int64()),
        "samples.leaf": pa.array(s_leaf.astype(np.int32), pa.int32()),
        "samples.value": pa.array(s_value, pa.int64()),
    }
    if store_ids:
        cols["frames.frame_id"] = pa.array(f_id, pa.uint64())
    rows = {
        "frames": len(f_id), "nodes": len(prow), "leaves": len(leaf_ids), "series": len(sids),
        "labels": len(lab_series), "samples": len(s_value),
    }
    if s_span is not None:
        s_span = s_span[order]
        cols.update(_span_columns(s_span, batch.spans))
        rows["spans"] = len(cols["spans.span_id"])
        format_version = SPANS_VERSION
    else:
        format_version = min(format_version, SPANS_VERSION - 1)
    n = max(rows.values())
    block = b""
    block_meta: dict[str, Any] | None = None
    if format_version >= 3 and n <= min(ROW_GROUP, BLOCK_MAX_ROWS):  # small, one row group: see docstring
        arrays = {
            "leaves.node_id": leaf_ids[lorder].astype("<u8"),
            "samples.leaf": s_leaf.astype("<u2" if rows["leaves"] <= U16_LEAVES else "<i4"),
            "samples.value": s_value.astype("<i8"),
        }
        raw = b"".join(a.tobytes() for a in arrays.values())
        block = pa.Codec("zstd", compression_level=ZSTD_LEVEL).compress(raw, asbytes=True) if raw else b""
        block_meta = {"bytes": len(block), "codec": "zstd", "columns": [[k, a.dtype.str] for k, a in arrays.items()],
                      "raw_bytes": len(raw)}
        for k in arrays:
            del cols[k]
    table = pa.table({k: _padded(v, n) for k, v in cols.items()})
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=[c for c in _DICTIONARY if c in cols],
        column_encoding=_DELTA,
        write_statistics=_STATISTICS if n > ROW_GROUP else False,  # one row group: the meta has the ranges
        row_group_size=ROW_GROUP,
        write_page_index=False,
        store_schema=False,
    )
    body = block + sink.getvalue()
    meta: dict[str, Any] = {
        "tenant": tenant,
        "level": int(level),
        "created_ms": int(created_ms),
        "min_time_ms": int(s_time.min()) if len(s_time) else 0,
        "max_time_ms": int(s_time.max()) if len(s_time) else 0,
        "samples": len(s_value),
        "services": sorted({x for x in svc.tolist() if x}),
        "profile_types": sorted(set(s_type.tolist())),
        "rows": rows,
        "frame_ids": "stored" if store_ids else "derived",
    }
    if block_meta is not None:
        meta["block"] = block_meta
    meta_b = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    h = hashlib.blake2b(digest_size=_DIGEST)
    h.update(meta_b)
    h.update(body)
    return _HEAD.pack(MAGIC, format_version, 0, len(meta_b)) + meta_b + h.digest() + body


def _span_column(batch: SegmentBatch, format_version: int) -> np.ndarray | None:
    """The samples' span ids (u64) when they are to be written: version 4 and some span."""
    s = batch.samples
    if format_version < SPANS_VERSION or batch.spans is None or "span_id" not in s.columns:
        return None
    span = s["span_id"].fill_null(0).to_numpy().astype(np.uint64, copy=False)
    return span if span.any() else None


def _span_columns(span: np.ndarray, spans: pl.DataFrame | None) -> dict[str, pa.Array]:
    """``samples.span_id`` and the ``spans`` side table of the span ids in use (sorted);
    a span id missing from ``spans`` gets an empty name and trace id."""
    used = np.unique(span[span != 0])
    name = np.full(len(used), "", dtype=object)
    trace = np.full(len(used), "", dtype=object)
    if spans is not None and spans.height:
        known = spans.unique("span_id", keep="first")
        pos = _lookup(known["span_id"].to_numpy().astype(np.uint64), used)
        hit = pos >= 0
        name[hit] = _strings(known["span_name"])[pos[hit]]
        trace[hit] = _strings(known["trace_id"])[pos[hit]]
    return {
        "samples.span_id": pa.array(span, pa.uint64()),
        "spans.span_id": pa.array(used, pa.uint64()),
        "spans.name": pa.array(name, pa.string()),
        "spans.trace_id": pa.array(trace, pa.string()),
    }


# --------------------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------------------

_READ_ERRORS = (pa.ArrowException, OSError, KeyError, ValueError, IndexError)
SAMPLE_COLUMNS = ("profile_type", "series_id", "time_ms", "node", "node_id", "value", "series", "leaf", "span_id")
"""Logical columns of ``Segment.table("samples")`` (``series``/``leaf`` are the stored rows;
``span_id`` is 0 for samples without a span and in segments without span ids)."""


_LAYOUT = [f"{t}.{c}" for t in TABLES for c, _ in COLUMNS[t] if c != "frame_id"]
_COLUMN_INDEX: dict[int, dict[str, int]] = {}
"""Column positions by column count (the encoder writes one fixed order); every read
checks the names it got and falls back to a lookup by name."""


class _Body:
    """The segment body's Parquet file, opened once (footer parsed once per segment)."""

    def __init__(self, body: memoryview) -> None:
        src = pa.BufferReader(pa.py_buffer(body))
        if _ParquetReader is not None:
            self._reader = _ParquetReader()
            self._reader.open(src, pre_buffer=False)
            self.metadata = self._reader.metadata
            self._file = None
        else:  # pragma: no cover
            self._file = pq.ParquetFile(src, pre_buffer=False)
            self.metadata = self._file.metadata

    def read(self, columns: Sequence[str], row_groups: Sequence[int] | None = None) -> pa.Table:
        """Columns by full name (``<table>.<column>``), optionally of some row groups only."""
        try:
            if self._file is not None:  # pragma: no cover
                if row_groups is None:
                    return self._file.read(columns=list(columns), use_threads=False)
                return self._file.read_row_groups(list(row_groups), columns=list(columns), use_threads=False)
            known = _COLUMN_INDEX.get(self.metadata.num_columns)
            idx = [known.get(c, -1) for c in columns] if known else []
            t = self._read(idx, row_groups) if idx and min(idx) >= 0 else None
            if t is None or t.schema.names != list(columns):  # unseen layout: look the names up
                if self.metadata.num_columns <= len(_LAYOUT) + 1 and known is None:
                    paths = [".".join(p) for p in self._reader.column_paths]
                    _COLUMN_INDEX[self.metadata.num_columns] = {c: i for i, c in enumerate(paths)}
                t = self._read([self._reader.column_name_idx(c) for c in columns], row_groups)
            return t
        except _READ_ERRORS as e:
            raise SegmentCorrupt(f"segment columns {list(columns)}: {e}") from e

    def _read(self, idx: list[int], row_groups: Sequence[int] | None) -> pa.Table:
        if row_groups is None:
            return self._reader.read_all(column_indices=idx, use_threads=False)
        return self._reader.read_row_groups(list(row_groups), column_indices=idx, use_threads=False)


@dataclass
class Segment:
    """A decoded (validated) segment. Columns are read lazily — all columns asked at once
    in one Parquet read — and memoised; the object is immutable and safe to share between
    threads (and to cache: see ``fleetprof.query.select``)."""

    meta: dict[str, Any]
    body: memoryview
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tenant(self) -> str:
        return str(self.meta["tenant"])

    @property
    def level(self) -> int:
        return int(self.meta["level"])

    @property
    def min_time_ms(self) -> int:
        return int(self.meta["min_time_ms"])

    @property
    def max_time_ms(self) -> int:
        return int(self.meta["max_time_ms"])

    def rows(self, table: str) -> int:
        return int(self.meta["rows"][table])

    def nbytes(self) -> int:
        """Approximate memory held: the object bytes plus the memoised columns."""
        return len(self.body) + sum(_held(v) for v in list(self._cache.values()))

    # -- raw columns ---------------------------------------------------------------------

    def _block_columns(self) -> dict[str, str]:
        """Column name -> stored dtype of the v3 array block (empty: none)."""
        cols = self._cache.get("#block_columns")
        if cols is None:
            b = self.meta.get("block")
            cols = self._cache["#block_columns"] = {name: dt for name, dt in b["columns"]} if b else {}
        return cols  # type: ignore[no-any-return]

    def _block(self) -> dict[str, np.ndarray]:
        """The array block's columns as numpy arrays (stored dtypes; decompressed once)."""
        arrs = self._cache.get("#block")
        if arrs is None:
            b = self.meta.get("block")
            arrs = {}
            if b and b["raw_bytes"]:
                try:
                    buf = _ZSTD.decompress(
                        self.body[:b["bytes"]], decompressed_size=b["raw_bytes"], asbytes=True)
                except _READ_ERRORS as e:
                    raise SegmentCorrupt(f"array block: {e}") from e
                if len(buf) != b["raw_bytes"]:
                    raise SegmentCorrupt("array block decompressed to the wrong size")
                off = 0
                for name, dt in b["columns"]:
                    n = self.rows(name.split(".", 1)[0])
                    arrs[name] = np.frombuffer(buf, dtype=dt, count=n, offset=off)
                    off += n * arrs[name].itemsize
            elif b:
                arrs = {name: np.zeros(0, dtype=dt) for name, dt in b["columns"]}
            self._cache["#block"] = arrs
        return arrs  # type: ignore[no-any-return]

    def _file(self) -> _Body:
        body = self._cache.get("_pf")
        if body is None:
            try:
                b = self.meta.get("block")
                body = _Body(self.body[b["bytes"]:] if b else self.body)
            except _READ_ERRORS as e:
                raise SegmentCorrupt(f"segment body is not a readable Parquet file: {e}") from e
            if body.metadata.num_rows < max(self.meta["rows"].values(), default=0):
                raise SegmentCorrupt("segment body has fewer rows than its tables")
            self._cache["_pf"] = body
        return body

    def columns(self, table: str, names: Sequence[str]) -> list[pa.Array]:
        """Whole stored columns ``names`` of ``table`` (memoised; one read for the missing)."""
        return self.read_columns([f"{table}.{n}" for n in names])

    def read_columns(self, want: Sequence[str]) -> list[pa.Array]:
        """Whole stored columns ``<table>.<column>`` of any tables, memoised; the missing
        ones are read in **one** Parquet read (a read has a fixed cost per call)."""
        missing = [c for c in want if c not in self._cache]
        if missing:
            with self._lock:
                missing = [c for c in want if c not in self._cache]
                in_block = self._block_columns()
                for c in [c for c in missing if c in in_block]:
                    self._cache[c] = pa.array(self._block_np(c))
                missing = [c for c in missing if c not in in_block]
                if missing:
                    t = self._file().read(missing)
                    for c in missing:
                        n = self.rows(c.split(".", 1)[0])
                        ch = t.column(c)
                        col = ch.chunk(0) if ch.num_chunks == 1 else ch.combine_chunks()
                        if len(col) != n:
                            col = col.slice(0, n)
                        if col.null_count:
                            raise SegmentCorrupt(f"column {c!r} has missing values")
                        self._cache[c] = col
        return [self._cache[c] for c in want]

    def _block_np(self, col: str) -> np.ndarray:
        """Block column ``col`` as its logical numpy type (no copy where the stored type is)."""
        return self._block()[col].astype(_LOGICAL_DTYPES[col], copy=False)

    def _np(self, table: str, name: str) -> np.ndarray:
        key = f"{table}.{name}#np"
        arr = self._cache.get(key)
        if arr is None:
            col = f"{table}.{name}"
            if col in self._block_columns():
                arr = self._cache[key] = self._block_np(col)
            else:
                arr = self._cache[key] = self.columns(table, [name])[0].to_numpy(zero_copy_only=False)
        return arr  # type: ignore[no-any-return]

    # -- logical tables ------------------------------------------------------------------

    def frame_ids(self) -> np.ndarray:
        """``frame_id`` of every ``frames`` row (stored, or recomputed: module docstring)."""
        if self.meta.get("frame_ids") == "stored":
            return self._np("frames", "frame_id")
        arr = self._cache.get("#frame_ids")
        if arr is None:
            name, file, line = self.columns("frames", ["name", "file", "line"])
            arr = self._cache["#frame_ids"] = derive_frame_ids(name.to_pylist(), file.to_pylist(), line.to_pylist())
        return arr  # type: ignore[no-any-return]

    def frames(self) -> pl.DataFrame:
        name, file, line = self.columns("frames", ["name", "file", "line"])
        return pl.DataFrame(
            {"frame_id": self.frame_ids(), "name": name, "file": file, "line": line}, schema=FRAMES_SCHEMA
        )

    def leaf_ids(self) -> np.ndarray:
        """Model node id of every ``leaves`` row."""
        return self._np("leaves", "node_id")

    def leaf_rows(self) -> np.ndarray:
        """``nodes`` row of every ``leaves`` row (``-1`` = root)."""
        return self._np("leaves", "node")

    def series_ids(self) -> np.ndarray:
        return self._np("series", "series_id")

    @property
    def has_spans(self) -> bool:
        """Whether some sample carries a span id (version 4 with a ``spans`` table)."""
        return self.rows("spans") > 0

    def spans(self) -> pl.DataFrame:
        """The span side table: ``span_id, span_name, trace_id`` (empty without span ids)."""
        from fleetprof.model.spans import SPANS_SCHEMA

        if not self.has_spans:
            return pl.DataFrame(schema=SPANS_SCHEMA)
        sid, name, trace = self.columns("spans", ["span_id", "name", "trace_id"])
        return pl.DataFrame({"span_id": sid, "span_name": name, "trace_id": trace}, schema=SPANS_SCHEMA)

    def preload(self) -> None:
        """Decode and memoise the columns queries read from every segment (:data:`QUERY_COLUMNS`:
        the array block, sample times and series, the series table; one Parquet read) and the
        :meth:`sums` of all its series per profile type."""
        block = self._block_columns()
        self.read_columns([c for c in QUERY_COLUMNS if c not in block])
        for c in QUERY_COLUMNS:
            table, name = c.split(".", 1)
            if c != "series.service_name":
                self._np(table, name)
        for profile_type in self.meta["profile_types"]:
            for by in ("leaf", "time_ms"):
                self.sums(by, profile_type, self.min_time_ms, self.max_time_ms)

    def service_rows(self, service: str) -> np.ndarray:
        """Boolean mask over the ``series`` rows: the series of ``service``."""
        col = self.columns("series", ["service_name"])[0]
        return np.asarray(pc.equal(col, service).to_numpy(zero_copy_only=False), dtype=bool)

    def series(self) -> pl.DataFrame:
        sid, svc = self.columns("series", ["series_id", "service_name"])
        return pl.DataFrame({"series_id": sid, "service_name": svc}, schema={"series_id": pl.UInt64, "service_name": pl.Utf8})

    def labels(self) -> pl.DataFrame:
        row = self._np("labels", "series")
        key, value = self.columns("labels", ["key", "value"])
        sids = self.series_ids()
        if len(row) and (row.min() < 0 or row.max() >= len(sids)):
            raise SegmentCorrupt("labels reference series outside the series table")
        return pl.DataFrame({"series_id": sids[row], "key": key, "value": value}, schema=LABELS_SCHEMA)

    def node_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(parent row, frame row, depth)`` of the stored BFS node table (int64)."""
        if "#nodes" not in self._cache:
            prow = self._np("nodes", "parent").astype(np.int64)
            frow = self._np("nodes", "frame").astype(np.int64)
            depth = self._np("nodes", "depth").astype(np.int64)
            n = len(prow)
            if n and ((prow >= np.arange(n)).any() or prow.min() < -1 or frow.min() < 0
                      or frow.max() >= self.rows("frames")):
                raise SegmentCorrupt("node table references rows outside the segment")
            self._cache["#nodes"] = (prow, frow, depth)
        return self._cache["#nodes"]  # type: ignore[no-any-return]

    def node_ids(self) -> np.ndarray:
        """Model node ids of the stored node rows (recomputed, checked against the leaves)."""
        nid = self._cache.get("#node_ids")
        if nid is None:
            prow, frow, depth = self.node_arrays()
            fids = self.frame_ids()
            nid = node_ids_from_rows(prow, fids[frow] if len(frow) else np.zeros(0, np.uint64), depth)
            lrow, lid = self.leaf_rows(), self.leaf_ids()
            if len(lrow) and (lrow.max() >= len(nid) or lrow.min() < -1):
                raise SegmentCorrupt("leaves reference rows outside the node table")
            got = np.where(lrow >= 0, nid[np.maximum(lrow, 0)] if len(nid) else 0, np.uint64(ROOT_ID)).astype(np.uint64)
            if not np.array_equal(got, lid):
                raise SegmentCorrupt("stored leaf ids do not match the node table")
            self._cache["#node_ids"] = nid
        return nid  # type: ignore[no-any-return]

    def nodes(self) -> pl.DataFrame:
        """The model node table (``node_id, parent_id, frame_id, depth``)."""
        prow, frow, depth = self.node_arrays()
        fid = self.frame_ids()[frow] if len(frow) else np.zeros(0, np.uint64)
        nid = self.node_ids()
        parent = np.where(prow >= 0, nid[np.maximum(prow, 0)] if len(nid) else 0, np.uint64(ROOT_ID)).astype(np.uint64)
        return pl.DataFrame(
            {"node_id": nid, "parent_id": parent, "frame_id": fid, "depth": depth.astype(np.uint32)}, schema=NODES_SCHEMA
        )

    # -- samples -------------------------------------------------------------------------

    def _proven(self, cond: tuple[str, str, Any]) -> bool:
        """Whether the metadata proves every sample satisfies ``cond``."""
        col, op, val = cond
        if col == "profile_type" and op in ("=", "=="):
            return bool(self.meta["profile_types"] == [val])
        if col == "time_ms" and self.meta["samples"]:
            if op == ">=":
                return bool(self.min_time_ms >= val)
            if op == "<=":
                return bool(self.max_time_ms <= val)
        return False

    def _stored_samples(self, names: Sequence[str], filters: Any, extra: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Stored sample columns ``names`` (numpy; strings as objects) of the rows matching
        ``filters`` (AND-ed ``(column, op, value)``, ops ``=``, ``>=``, ``<=`` on stored
        columns); ``extra`` other stored columns (``<table>.<column>``) to read in the same
        Parquet read. Columns in the array block (v3) are never read from Parquet."""
        conds = [c for c in (filters or ()) if not self._proven(c)]
        need = list(dict.fromkeys([*names, *(c for c, _, _ in conds)]))
        block = self._block_columns()
        if not conds:
            want = [c for c in (*(f"samples.{c}" for c in need), *extra) if c not in block and f"{c}#np" not in self._cache]
            if want:
                self.read_columns(want)  # one Parquet read for everything outside the block
            return {c: self._np("samples", c) for c in names}
        if block or self._file().metadata.num_row_groups <= 1:
            got = self.read_columns([*(f"samples.{c}" for c in need), *extra])
            arrs = dict(zip(need, got, strict=False))
        else:  # large (compacted) segments: skip row groups by statistics
            pf = self._file()
            groups, _exact = _row_groups(pf.metadata, [(f"samples.{c}", op, v) for c, op, v in conds])
            t = pf.read([f"samples.{c}" for c in dict.fromkeys([*need, "leaf"])], groups)
            t = t.filter(pc.is_valid(t.column("samples.leaf")))
            arrs = {c: t.column(f"samples.{c}").combine_chunks() for c in need}
        mask = None
        for col, op, val in conds:
            m = _compare(arrs[col], op, val)
            mask = m if mask is None else pc.and_(mask, m)
        return {c: arrs[c].filter(mask).to_numpy(zero_copy_only=False) for c in names}

    def sample_arrays(self, columns: Sequence[str], filters: Any = None) -> dict[str, np.ndarray]:
        """Logical sample columns (``SAMPLE_COLUMNS``) as numpy arrays (strings as objects).

        When the metadata proves every filter (the usual case for a query over a time
        range that covers the segment), the result is memoised: callers must not modify it."""
        whole = not [c for c in (filters or ()) if not self._proven(c)]
        key = ("#samples", tuple(columns))
        if whole:
            hit = self._cache.get(key)
            if hit is not None:
                return hit  # type: ignore[no-any-return]
        out = self._block_samples(columns) if whole else None
        if out is None:
            out = self._sample_arrays(columns, filters)
        if whole:
            self._cache[key] = out
        return out

    def sums(
        self, by: str, profile_type: str, start_ms: int, end_ms: int, series: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact int64 sums of the values of the samples of ``profile_type`` with
        ``start_ms <= time_ms <= end_ms`` — of the series whose ``series`` rows are True in
        the boolean mask ``series``, or of all — grouped ``by``:

        * ``"leaf"``: ``(model node ids, sums)`` of the leaves whose sum is not zero;
        * ``"time_ms"``: ``(distinct timestamps, sums)``, timestamps ascending.

        When the metadata proves the time conditions, the result is memoised (per profile
        type, for at most :data:`SUMS_MEMO` series masks besides "all"): callers must not
        modify it."""
        if by not in ("leaf", "time_ms"):
            raise ValueError(f"cannot sum by {by!r}")
        filt = [("profile_type", "=", profile_type), ("time_ms", ">=", int(start_ms)), ("time_ms", "<=", int(end_ms))]
        memo: dict[Any, Any] | None = None
        key = (by, profile_type, None if series is None else series.tobytes())
        if self._proven(filt[1]) and self._proven(filt[2]):
            memo = self._cache.setdefault("#sums", {})
            hit = memo.get(key)
            if hit is not None:
                return hit  # type: ignore[no-any-return]
        raw = self._sum_inputs(by, filt, series is not None)
        keys, vals = raw[by], raw["value"]
        try:
            if series is not None:
                keep = series[_as_index(raw["series"])]
                keys, vals = keys[keep], vals[keep]
            out = self._leaf_sums(keys, vals) if by == "leaf" else _sums_by_value(keys, vals)
        except IndexError as e:
            raise SegmentCorrupt(f"samples reference rows outside the series or leaf table: {e}") from e
        if memo is not None and (series is None or _masks(memo, profile_type) < SUMS_MEMO):
            memo[key] = out
        return out

    def _sum_inputs(self, by: str, filt: Sequence[tuple[str, str, Any]], series: bool) -> dict[str, np.ndarray]:
        """Stored sample columns ``by``, ``value`` (and ``series``) of the rows matching
        ``filt``; the leaf rows and values of a whole segment straight from the array block."""
        if by == "leaf" and not series and "samples.leaf" in self._block_columns() and all(map(self._proven, filt)):
            blk = self._block()
            return {"leaf": blk["samples.leaf"], "value": blk["samples.value"]}
        return self._stored_samples([by, "value", *(["series"] if series else [])], filt)

    def _leaf_sums(self, leaf: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(leaf ids, sums)`` of stored leaf rows ``leaf`` (only non-zero sums)."""
        sums = np.zeros(self.rows("leaves"), dtype=np.int64)
        np.add.at(sums, _as_index(leaf), vals)
        nz = np.flatnonzero(sums)
        return self.leaf_ids()[nz], sums[nz]

    def _block_samples(self, columns: Sequence[str]) -> dict[str, np.ndarray] | None:
        """The flame-graph columns (``node_id``, ``value``) of every sample straight from the
        array block (``None`` if some column is not there): the cold-query fast path."""
        if not set(columns) <= {"node_id", "value"} or "samples.leaf" not in self._block_columns():
            return None
        blk = self._block()
        try:
            leaf_ids = self._np("leaves", "node_id")
            return {c: leaf_ids[_as_index(blk["samples.leaf"])] if c == "node_id" else blk["samples.value"]
                    for c in columns}
        except (IndexError, KeyError) as e:
            raise SegmentCorrupt(f"samples reference rows outside the leaf table: {e}") from e

    def _sample_arrays(self, columns: Sequence[str], filters: Any) -> dict[str, np.ndarray]:
        if "span_id" in columns and not self.has_spans:  # no stored column: every span id is 0
            rest = [c for c in columns if c != "span_id"] or ["value"]
            got = self._sample_arrays(rest, filters)
            n = len(next(iter(got.values())))
            return {c: (np.zeros(n, dtype=np.uint64) if c == "span_id" else got[c]) for c in columns}
        stored = []
        for c in columns:
            if c not in SAMPLE_COLUMNS:
                raise KeyError(f"unknown samples column {c!r}")
            stored.append({"series_id": "series", "node": "leaf", "node_id": "leaf"}.get(c, c))
        extra = [x for c, x in (("series_id", "series.series_id"), ("node", "leaves.node"), ("node_id", "leaves.node_id"))
                 if c in columns and x not in self._cache]
        raw = self._stored_samples(list(dict.fromkeys(stored)), filters, extra)
        out: dict[str, np.ndarray] = {}
        try:  # rows as uint32: a negative or too large row raises instead of wrapping
            for c in columns:
                if c == "series_id":
                    out[c] = self.series_ids()[_as_index(raw["series"])]
                elif c in ("node", "node_id"):
                    ref = self.leaf_rows() if c == "node" else self.leaf_ids()
                    out[c] = ref[_as_index(raw["leaf"])]
                else:
                    out[c] = raw[c]
        except IndexError as e:
            raise SegmentCorrupt(f"samples reference rows outside the series or leaf table: {e}") from e
        return out

    def table(self, name: str, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
        """Logical table ``name`` as Arrow: only ``columns``; ``filters`` (samples only) is
        a list of ``(column, op, value)`` with ops ``=``, ``>=``, ``<=`` (AND-ed) on
        ``profile_type``, ``time_ms``, ``value``, ``series``, ``leaf``."""
        if name == "samples":
            cols = list(columns) if columns else ["profile_type", "series_id", "time_ms", "node", "value"]
            arrs = self.sample_arrays(cols, filters)
            if "profile_type" in arrs:
                arrs["profile_type"] = pa.array(arrs["profile_type"], pa.string())  # type: ignore[assignment]
            return pa.table(arrs)
        if filters:
            raise ValueError("filters apply to the samples table only")
        if name == "frames":
            t = self.frames().to_arrow()
        elif name == "nodes":
            prow, frow, depth = self.node_arrays()
            t = pa.table({"parent": prow, "frame": frow, "depth": depth})
        elif name == "leaves":
            t = pa.table({"node": self.leaf_rows(), "node_id": self.leaf_ids()})
        elif name == "series":
            t = self.series().to_arrow()
        elif name == "labels":
            t = self.labels().to_arrow()
        elif name == "spans":
            t = self.spans().to_arrow()
        else:
            raise SegmentCorrupt(f"segment has no table {name!r}")
        return t.select(list(columns)) if columns else t

    def samples(self, filters: Any = None) -> pl.DataFrame:
        """Samples with model node ids (``series_id, profile_type, time_ms, node_id, value``,
        and ``span_id`` when the segment has span ids)."""
        schema = {**SAMPLES_SCHEMA, "span_id": pl.UInt64} if self.has_spans else SAMPLES_SCHEMA
        a = self.sample_arrays(list(schema), filters)
        return pl.DataFrame(
            {k: (pl.Series(k, a[k], dtype=pl.Utf8) if k == "profile_type" else a[k]) for k in schema},
            schema=schema,
        )

    def batch(self) -> SegmentBatch:
        """The segment's canonical tables (input for :func:`concat_batches` / re-encoding)."""
        spans = self.spans() if self.has_spans else None
        return SegmentBatch(self.labels(), self.samples(), self.nodes(), self.frames(), spans)


def _held(v: Any) -> int:
    """Bytes of the arrays in a memoised value (arrays, or dicts and tuples of them)."""
    if isinstance(v, dict):
        return sum(_held(x) for x in list(v.values()))
    if isinstance(v, tuple):
        return sum(_held(x) for x in v)
    return int(getattr(v, "nbytes", 0) or 0)


def _masks(memo: dict[Any, Any], profile_type: str) -> int:
    """Number of series masks memoised by :meth:`Segment.sums` for ``profile_type``."""
    return sum(k[2] is not None and k[1] == profile_type for k in memo)


def _sums_by_value(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys`` (ascending) and the int64 sums of ``vals`` per key."""
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.zeros(len(uniq), dtype=np.int64)
    np.add.at(sums, inv, vals)
    return uniq, sums


def _as_index(rows: np.ndarray) -> np.ndarray:
    """Stored row numbers as an unsigned index: a negative row raises instead of wrapping."""
    if rows.dtype.kind == "u":
        return rows
    return rows.view(np.uint32) if rows.dtype == np.int32 else rows.astype(np.uint64)


def _compare(col: Any, op: str, val: Any) -> Any:
    if op in ("=", "=="):
        return pc.equal(col, val)
    if op == ">=":
        return pc.greater_equal(col, val)
    if op == "<=":
        return pc.less_equal(col, val)
    raise ValueError(f"unsupported filter op {op!r}")


def _row_groups(md: pq.FileMetaData, conds: Sequence[tuple[str, str, Any]]) -> tuple[list[int], bool]:
    """Row groups whose min/max statistics may satisfy every condition (groups where a
    condition's column is all null — padding — are skipped), and whether the statistics
    prove that all their rows do."""
    names = [md.schema.column(i).name for i in range(md.num_columns)]
    out = []
    exact = True
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        ok = True
        for col, op, val in conds:
            st = rg.column(names.index(col)).statistics
            if st is not None and st.has_null_count and st.null_count == rg.num_rows:
                ok = False
                break
            if st is None or not st.has_min_max:
                exact = False
                continue
            lo, hi = st.min, st.max
            if isinstance(lo, bytes):
                lo, hi = lo.decode("utf-8", "replace"), hi.decode("utf-8", "replace")
            if (op in ("=", "==") and not (lo <= val <= hi)) or (op == ">=" and hi < val) or (op == "<=" and lo > val):
                ok = False
                break
            if not ((op in ("=", "==") and lo == hi == val) or (op == ">=" and lo >= val) or (op == "<=" and hi <= val)):
                exact = False
        if ok:
            out.append(g)
    return out, exact


def node_ids_from_rows(parent_row: np.ndarray, frame_id: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Model node ids for a node table whose parents are row numbers (``-1`` = root);
    computed level by level from the top (rows need not be sorted by depth)."""
    nid = np.zeros(len(parent_row), dtype=np.uint64)
    for level in depth_levels(depth):
        p = parent_row[level]
        base = np.where(p >= 0, nid[np.maximum(p, 0)], np.uint64(ROOT_ID)).astype(np.uint64)
        nid[level] = mix(base, frame_id[level])
    return nid


def read_meta(data: bytes | memoryview) -> tuple[dict[str, Any], memoryview]:
    """Validate the envelope and return ``(meta, body)``; raises :class:`SegmentCorrupt`."""
    mv = memoryview(data)
    if len(mv) < _HEAD.size + _DIGEST:
        raise SegmentCorrupt(f"segment too short ({len(mv)} bytes)")
    magic, version, _flags, meta_len = _HEAD.unpack_from(mv, 0)
    if magic != MAGIC:
        raise SegmentCorrupt(f"bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version not in READ_VERSIONS:
        raise SegmentCorrupt(
            f"unsupported segment format version {version} (this build reads {', '.join(map(str, READ_VERSIONS))})"
        )
    start = _HEAD.size
    if start + meta_len + _DIGEST > len(mv):
        raise SegmentCorrupt("segment header length exceeds the object")
    meta_b = mv[start:start + meta_len]
    digest = bytes(mv[start + meta_len:start + meta_len + _DIGEST])
    body = mv[start + meta_len + _DIGEST:]
    h = hashlib.blake2b(digest_size=_DIGEST)
    h.update(meta_b)
    h.update(body)
    if h.digest() != digest:
        raise SegmentCorrupt("segment checksum mismatch (object corrupted or truncated)")
    try:
        meta = json.loads(bytes(meta_b))
        rows = meta["rows"]
        if version < SPANS_VERSION or "spans" not in rows:
            rows["spans"] = 0  # no span table before version 4
        for name in TABLES:
            if not isinstance(rows[name], int) or rows[name] < 0:
                raise SegmentCorrupt(f"bad row count for table {name!r}")
        for k in ("min_time_ms", "max_time_ms", "samples", "profile_types", "tenant", "level"):
            meta[k]  # noqa: B018 - presence check
        if version < 3:
            meta.pop("block", None)  # v2 has no array block
        elif meta.get("block") is not None:
            _check_block(meta, len(body))
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, SegmentCorrupt):
            raise
        raise SegmentCorrupt(f"bad segment metadata: {e}") from e
    return meta, body


def _check_block(meta: dict[str, Any], body_len: int) -> None:
    """Validate a v3 ``meta["block"]`` against the row counts and the body size."""
    b = meta["block"]
    if not isinstance(b, dict) or not isinstance(b.get("columns"), list):
        raise SegmentCorrupt("bad array block description")
    if b.get("codec") != "zstd":
        raise SegmentCorrupt(f"unknown array block codec {b.get('codec')!r}")
    size, raw = b["bytes"], b["raw_bytes"]
    if not (isinstance(size, int) and isinstance(raw, int)) or not 0 <= size <= body_len or raw < 0:
        raise SegmentCorrupt("array block size exceeds the segment body")
    expect = 0
    if len({name for name, _ in b["columns"]}) != len(b["columns"]):
        raise SegmentCorrupt("array block names a column twice")
    for name, dt in b["columns"]:
        if dt not in BLOCK_DTYPES.get(name, ()):
            raise SegmentCorrupt(f"array block column {name!r} of type {dt!r} is not allowed")
        expect += meta["rows"][name.split(".", 1)[0]] * int(dt[2:])
    if expect != raw or (raw == 0) != (size == 0):
        raise SegmentCorrupt("array block sizes do not match the table row counts")


def decode_segment(data: bytes | memoryview) -> Segment:
    """Validate and open a segment object (columns are read on access)."""
    meta, body = read_meta(data)
    return Segment(meta, body)
