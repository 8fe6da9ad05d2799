"""The segment object format (``.fps``): one immutable, self-describing, checksummed object.

Layout (all integers little-endian)::

    b"FPSG" | version: u16 | flags: u16 | meta_len: u32 | meta (JSON, meta_len bytes)
    | digest: 32 bytes = blake2b-256(meta + body) | body

``meta`` holds ``tables`` (name → ``[offset, length]`` into ``body``) and the segment's
tenant, level, time range, sample count, services and profile types. Each table is a
Parquet file (zstd, dictionary encoding, statistics, sorted rows):

* ``labels``  — ``series_id: u64, key: str, value: str`` (long form; includes ``service_name``)
* ``series``  — ``series_id: u64, service_name: str, profile_type: str`` (pairs present)
* ``samples`` — ``profile_type: str, series_id: u64, time_ms: i64, node: i32, value: i64``
  sorted by (profile_type, series_id, time_ms, node); ``node`` is the row of the node in
  ``nodes`` (``-1`` = empty stack / root).
* ``nodes``   — ``parent: i32, frame: i32, depth: u16`` in breadth-first order (``parent``
  is the row of the parent, ``-1`` for top-level nodes, always smaller than the row itself).
* ``frames``  — ``frame_id: u64, name: str, file: str, line: i64``.

Node ids are not stored: they are the model's stable hashes and are recomputed on decode
(``mix(parent node id, frame id)`` from the root, one vector step per depth level), which
keeps random 64-bit values out of the largest tables. Decoding checks the magic, the
version and the digest and raises :class:`SegmentCorrupt` on any mismatch.

A :class:`SegmentBatch` is the canonical-table input of :func:`encode_segment` (node ids,
not rows); :func:`batch_from_profiles` builds one from ingested profiles and
:func:`concat_batches` merges batches or decoded segments (compaction), optionally
re-bucketing time to a coarser step.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fleetprof.model.hashing import ROOT_ID, mix, series_id
from fleetprof.model.profile import FRAMES_SCHEMA, NODES_SCHEMA, Profile, positions

MAGIC = b"FPSG"
FORMAT_VERSION = 1
_HEAD = struct.Struct("<4sHHI")
_DIGEST = 32

SAMPLES_SCHEMA = {
    "series_id": pl.UInt64, "profile_type": pl.Utf8, "time_ms": pl.Int64, "node_id": pl.UInt64, "value": pl.Int64,
}
LABELS_SCHEMA = {"series_id": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8}
TABLES = ("labels", "series", "samples", "nodes", "frames")
ROW_GROUP = 256 * 1024


class SegmentCorrupt(ValueError):
    """A segment object failed validation (magic, version, checksum or table layout)."""


@dataclass
class SegmentBatch:
    """Canonical tables of one segment (see module docstring; ids are model hashes).

    * ``labels``: ``series_id, key, value`` · ``samples``: ``series_id, profile_type,
      time_ms, node_id, value`` · ``nodes``: model node table · ``frames``: model frame table.
    Every sample's node and its ancestors must be in ``nodes``; every node's frame in ``frames``.
    """

    labels: pl.DataFrame
    samples: pl.DataFrame
    nodes: pl.DataFrame
    frames: pl.DataFrame

    @property
    def sample_rows(self) -> int:
        return self.samples.height


def _profile_value(profile: Profile, profile_type: str) -> str:
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
    are summed over: a series is the item's label set). One polars step per item."""
    samples: list[pl.DataFrame] = []
    nodes: list[pl.DataFrame] = []
    frames: list[pl.DataFrame] = []
    label_rows: dict[int, dict[str, str]] = {}
    for labels, ptype, time_ms, profile in items:
        if "service_name" not in labels:
            raise ValueError("series labels must contain service_name")
        sid = series_id(labels)
        label_rows.setdefault(sid, labels)
        col = _profile_value(profile, ptype)
        samples.append(
            profile.samples.select(
                pl.lit(sid, dtype=pl.UInt64).alias("series_id"),
                pl.lit(ptype, dtype=pl.Utf8).alias("profile_type"),
                pl.lit(int(time_ms), dtype=pl.Int64).alias("time_ms"),
                pl.col("node_id"),
                pl.col(col).alias("value"),
            )
        )
        nodes.append(profile.nodes)
        frames.append(profile.frames)
    lab = pl.DataFrame(
        [(sid, k, v) for sid, ls in label_rows.items() for k, v in ls.items()], schema=LABELS_SCHEMA, orient="row"
    )
    return _normalise(lab, samples, nodes, frames)


def _normalise(
    labels: pl.DataFrame, samples: Sequence[pl.DataFrame], nodes: Sequence[pl.DataFrame], frames: Sequence[pl.DataFrame]
) -> SegmentBatch:
    s = pl.concat(samples) if samples else pl.DataFrame(schema=SAMPLES_SCHEMA)
    s = (
        s.group_by(["series_id", "profile_type", "time_ms", "node_id"])
        .agg(pl.col("value").sum())
        .filter(pl.col("value") != 0)
        .cast(SAMPLES_SCHEMA)  # type: ignore[arg-type]
        .select(list(SAMPLES_SCHEMA))
    )
    n = pl.concat([x.select(list(NODES_SCHEMA)) for x in nodes]).unique("node_id", keep="any") if nodes else pl.DataFrame(schema=NODES_SCHEMA)
    f = (
        pl.concat([x.select(list(FRAMES_SCHEMA)) for x in frames]).unique("frame_id", keep="first")
        if frames else pl.DataFrame(schema=FRAMES_SCHEMA)
    )
    return SegmentBatch(labels.unique(), s, n, f)


def concat_batches(parts: Sequence[SegmentBatch | Segment], *, step_ms: int | None = None) -> SegmentBatch:
    """Merge batches and/or decoded segments into one batch (compaction). With ``step_ms``
    sample times are floored to multiples of ``step_ms`` (coarser timelines, fewer rows)."""
    batches = [p.batch() if isinstance(p, Segment) else p for p in parts]
    samples = [b.samples for b in batches]
    if step_ms:
        samples = [s.with_columns((pl.col("time_ms") // step_ms * step_ms).alias("time_ms")) for s in samples]
    labels = pl.concat([b.labels for b in batches]) if batches else pl.DataFrame(schema=LABELS_SCHEMA)
    return _normalise(labels, samples, [b.nodes for b in batches], [b.frames for b in batches])


# --------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------


def _parquet(table: pa.Table, *, dictionary: Sequence[str], delta: Sequence[str] = ()) -> bytes:
    sink = io.BytesIO()
    encodings = {c: "DELTA_BINARY_PACKED" for c in delta}
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=9,
        use_dictionary=list(dictionary),
        column_encoding=encodings or None,
        row_group_size=ROW_GROUP,
        write_statistics=True,
        write_page_index=False,
        store_schema=False,
    )
    return sink.getvalue()


def _lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Positions of ``queries`` in unique ``keys`` (-1 if absent): sort-based for small
    inputs (no per-call overhead), the model's hash join for large ones."""
    if len(keys) > 65536:
        return positions(keys, queries)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    i = np.minimum(np.searchsorted(sk, queries), max(len(sk) - 1, 0))
    if not len(sk):
        return np.full(len(queries), -1, dtype=np.int64)
    return np.where(sk[i] == queries, order[i], -1).astype(np.int64)


def _bfs_layout(nodes: pl.DataFrame, frames: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order nodes breadth-first (depth, parent row, frame row); return
    ``(node_id in that order, parent row, frame row, depth)``. One step per depth level."""
    frame_keys = frames["frame_id"].to_numpy()
    nid = nodes["node_id"].to_numpy()
    pid = nodes["parent_id"].to_numpy()
    depth = nodes["depth"].to_numpy().astype(np.int64)
    fpos = positions(frame_keys, nodes["frame_id"].to_numpy())
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


def encode_segment(batch: SegmentBatch, *, tenant: str, level: int = 0, created_ms: int = 0) -> bytes:
    """Encode ``batch`` into one segment object (see module docstring)."""
    frames = batch.frames.sort(["file", "name", "line"])
    node_ids, prow, frow, depth = _bfs_layout(batch.nodes, frames)
    s = batch.samples.sort(["profile_type", "series_id", "time_ms", "node_id"])
    leaf = s["node_id"].to_numpy()
    nrow = positions(node_ids, leaf)
    missing = (nrow < 0) & (leaf != np.uint64(ROOT_ID))
    if missing.any():
        raise ValueError("segment samples reference nodes missing from the node table")
    samples = pa.table({
        "profile_type": pa.array(s["profile_type"].to_numpy(), pa.string()),
        "series_id": pa.array(s["series_id"].to_numpy(), pa.uint64()),
        "time_ms": pa.array(s["time_ms"].to_numpy(), pa.int64()),
        "node": pa.array(nrow.astype(np.int32), pa.int32()),
        "value": pa.array(s["value"].to_numpy(), pa.int64()),
    })
    series = (
        s.select("series_id", "profile_type").unique()
        .join(batch.labels.filter(pl.col("key") == "service_name").select("series_id", pl.col("value").alias("service_name")),
              on="series_id", how="left")
        .with_columns(pl.col("service_name").fill_null(""))
        .sort(["profile_type", "service_name", "series_id"])
    )
    used_series = s["series_id"].unique()
    labels = batch.labels.filter(pl.col("series_id").is_in(used_series.implode())).sort(["key", "value", "series_id"])
    nodes = pa.table({
        "parent": pa.array(prow.astype(np.int32), pa.int32()),
        "frame": pa.array(frow.astype(np.int32), pa.int32()),
        "depth": pa.array(depth.astype(np.uint16), pa.uint16()),
    })
    blobs = {
        "labels": _parquet(labels.to_arrow(), dictionary=["series_id", "key", "value"]),
        "series": _parquet(series.select("series_id", "service_name", "profile_type").to_arrow(),
                           dictionary=["series_id", "service_name", "profile_type"]),
        "samples": _parquet(samples, dictionary=["profile_type", "series_id", "time_ms", "node", "value"]),
        "nodes": _parquet(nodes, dictionary=["depth", "frame"], delta=["parent"]),
        "frames": _parquet(frames.select(list(FRAMES_SCHEMA)).to_arrow(), dictionary=["file"]),
    }
    tables: dict[str, list[int]] = {}
    off = 0
    for name in TABLES:
        tables[name] = [off, len(blobs[name])]
        off += len(blobs[name])
    times = s["time_ms"]
    meta = {
        "tenant": tenant,
        "level": int(level),
        "created_ms": int(created_ms),
        "min_time_ms": int(times.min()) if s.height else 0,  # type: ignore[arg-type]
        "max_time_ms": int(times.max()) if s.height else 0,  # type: ignore[arg-type]
        "samples": s.height,
        "services": sorted(x for x in series["service_name"].unique().to_list() if x),
        "profile_types": sorted(series["profile_type"].unique().to_list()),
        "tables": tables,
    }
    meta_b = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
    body = b"".join(blobs[n] for n in TABLES)
    h = hashlib.blake2b(digest_size=_DIGEST)
    h.update(meta_b)
    h.update(body)
    return _HEAD.pack(MAGIC, FORMAT_VERSION, 0, len(meta_b)) + meta_b + h.digest() + body


# --------------------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------------------


@dataclass
class Segment:
    """A decoded (validated) segment; tables are parsed lazily and only the asked columns."""

    meta: dict[str, Any]
    body: memoryview
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

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

    def table(self, name: str, columns: Sequence[str] | None = None, filters: Any = None) -> pa.Table:
        """Raw Parquet table ``name``: only ``columns``; ``filters`` is a list of
        ``(column, op, value)`` with ops ``=``, ``>=``, ``<=`` (AND-ed). Row groups whose
        statistics exclude the filter are skipped, then rows are filtered exactly."""
        try:
            off, length = self.meta["tables"][name]
        except KeyError:
            raise SegmentCorrupt(f"segment has no table {name!r}") from None
        if off < 0 or off + length > len(self.body):
            raise SegmentCorrupt(f"table {name!r} lies outside the segment body")
        buf = pa.py_buffer(self.body[off:off + length])
        try:
            pf = pq.ParquetFile(pa.BufferReader(buf))
            conds = list(filters or ())
            want = list(columns) if columns else None
            if not conds:
                return pf.read(columns=want)
            groups, exact = _row_groups(pf, conds)
            if exact:  # statistics prove every row of the kept groups matches
                return pf.read_row_groups(groups, columns=want)
            extra = [c for c, _, _ in conds if want is not None and c not in want]
            t = pf.read_row_groups(groups, columns=(want + extra) if want is not None else None)
            mask = None
            for col, op, val in conds:
                m = _compare(t.column(col), op, val)
                mask = m if mask is None else pc.and_(mask, m)
            t = t.filter(mask)
            return t.select(want) if want is not None else t
        except (pa.ArrowException, OSError) as e:
            raise SegmentCorrupt(f"table {name!r}: {e}") from e

    def labels(self) -> pl.DataFrame:
        return pl.from_arrow(self.table("labels")).cast(LABELS_SCHEMA)  # type: ignore[return-value, union-attr]

    def series(self) -> pl.DataFrame:
        return pl.from_arrow(self.table("series"))  # type: ignore[return-value]

    def frames(self) -> pl.DataFrame:
        return pl.from_arrow(self.table("frames")).cast(FRAMES_SCHEMA)  # type: ignore[return-value, union-attr]

    def node_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(parent row, frame row, depth)`` of the stored BFS node table."""
        if "nodes" not in self._cache:
            t = self.table("nodes")
            self._cache["nodes"] = (
                t.column("parent").to_numpy().astype(np.int64),
                t.column("frame").to_numpy().astype(np.int64),
                t.column("depth").to_numpy().astype(np.int64),
            )
        return self._cache["nodes"]  # type: ignore[no-any-return]

    def node_ids(self) -> np.ndarray:
        """Model node ids of the stored node rows (recomputed: see module docstring)."""
        prow, frow, depth = self.node_arrays()
        fids = self.table("frames", ["frame_id"]).column("frame_id").to_numpy()
        return node_ids_from_rows(prow, fids[frow] if len(frow) else np.zeros(0, np.uint64), depth)

    def nodes(self) -> pl.DataFrame:
        """The model node table (``node_id, parent_id, frame_id, depth``)."""
        prow, frow, depth = self.node_arrays()
        fids = self.table("frames", ["frame_id"]).column("frame_id").to_numpy()
        fid = fids[frow] if len(frow) else np.zeros(0, np.uint64)
        nid = node_ids_from_rows(prow, fid, depth)
        parent = np.where(prow >= 0, nid[np.maximum(prow, 0)] if len(nid) else 0, np.uint64(ROOT_ID)).astype(np.uint64)
        return pl.DataFrame(
            {"node_id": nid, "parent_id": parent, "frame_id": fid, "depth": depth.astype(np.uint32)}, schema=NODES_SCHEMA
        )

    def samples(self, filters: Any = None) -> pl.DataFrame:
        """Samples with model node ids (``series_id, profile_type, time_ms, node_id, value``)."""
        t = self.table("samples", filters=filters)
        nid = self.node_ids()
        rows = t.column("node").to_numpy().astype(np.int64)
        leaf = np.where(rows >= 0, nid[np.maximum(rows, 0)] if len(nid) else 0, np.uint64(ROOT_ID)).astype(np.uint64)
        return pl.DataFrame({
            "series_id": t.column("series_id").to_numpy(),
            "profile_type": t.column("profile_type").to_pylist(),
            "time_ms": t.column("time_ms").to_numpy(),
            "node_id": leaf,
            "value": t.column("value").to_numpy(),
        }, schema=SAMPLES_SCHEMA)

    def batch(self) -> SegmentBatch:
        """The segment's canonical tables (input for :func:`concat_batches` / re-encoding)."""
        return SegmentBatch(self.labels(), self.samples(), self.nodes(), self.frames())


def _compare(col: Any, op: str, val: Any) -> Any:
    if op in ("=", "=="):
        return pc.equal(col, val)
    if op == ">=":
        return pc.greater_equal(col, val)
    if op == "<=":
        return pc.less_equal(col, val)
    raise ValueError(f"unsupported filter op {op!r}")


def _row_groups(pf: pq.ParquetFile, conds: Sequence[tuple[str, str, Any]]) -> tuple[list[int], bool]:
    """Row groups whose min/max statistics may satisfy every condition, and whether the
    statistics prove that all their rows do."""
    md = pf.metadata
    names = [md.schema.column(i).name for i in range(md.num_columns)]
    out = []
    exact = True
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        ok = True
        for col, op, val in conds:
            st = rg.column(names.index(col)).statistics
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
    parents must be computed before children, i.e. processed by increasing depth."""
    nid = np.zeros(len(parent_row), dtype=np.uint64)
    if len(nid) == 0:
        return nid
    order = np.argsort(depth, kind="stable")
    bounds = np.flatnonzero(np.diff(depth[order])) + 1
    for level in np.split(order, bounds):
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
    if version != FORMAT_VERSION:
        raise SegmentCorrupt(f"unsupported segment format version {version} (this build reads {FORMAT_VERSION})")
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
        tables = meta["tables"]
        for name in TABLES:
            off, length = tables[name]
            if not (0 <= off and 0 <= length and off + length <= len(body)):
                raise SegmentCorrupt(f"table {name!r} lies outside the segment body")
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, SegmentCorrupt):
            raise
        raise SegmentCorrupt(f"bad segment metadata: {e}") from e
    return meta, body


def decode_segment(data: bytes | memoryview) -> Segment:
    """Validate and open a segment object (tables are read on access)."""
    meta, body = read_meta(data)
    return Segment(meta, body)
