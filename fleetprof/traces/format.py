"""The span segment object (``kind = "spans"`` in the index): one immutable, versioned,
checksummed object per flush or compaction, rows sorted by trace id.

Layout (integers little-endian)::

    b"FPSP" | version: u16 | flags: u16 | meta_len: u32 | meta (JSON)
    | digest: 32 bytes = blake2b-256(meta + body) | body = [id block][Parquet file]

* ``meta``: ``rows``, ``tenant``, ``level``, ``created_ms``, ``min_time_ns`` (earliest
  start), ``max_time_ns`` (latest end), ``services``, ``resources`` and ``scopes`` (base64
  of the serialized ``ResourceSpans`` / ``ScopeSpans`` without children; spans refer to
  them by position), ``ids_bytes`` (size of the id block), ``row_group_rows``.
* id block: four arrays of ``rows`` big-endian ``u64`` one after another — trace id high
  half, trace id low half, span id, parent span id (0: none). Rows are sorted by (trace id,
  start), so the rows of a trace are one contiguous run found by binary search, and the
  block is read without opening the Parquet file. Ids are random bytes, which compression
  cannot shrink, so the block is stored raw.
* Parquet (zstd, row groups of ``row_group_rows``): ``name: str, kind: i8,
  start_ns: i64, duration_ns: i64, status_code: i8, status_message: str, service: str,
  resource: i32, scope: i32, extra: binary, tags: list<str>, tag_types: str`` — the columns
  of :class:`fleetprof.traces.otlp.SpanChunk` (``extra``/``tags``/``tag_types`` as
  described there). A lookup reads only the row groups holding its trace.

Decoding checks magic, version, digest and sizes and raises :class:`SpanSegmentCorrupt`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from fleetprof.traces.table import COLUMNS, SpanTable, concat_tables

MAGIC = b"FPSP"
VERSION = 1
_HEAD = struct.Struct("<4sHHI")
ROW_GROUP_ROWS = 8192
SEARCH_COLUMNS = ("name", "kind", "start_ns", "duration_ns", "status_code", "service", "resource", "tags")


class SpanSegmentCorrupt(ValueError):
    """A span segment object failed its checks."""


def table_from_chunks(chunks: Sequence[SpanTable]) -> SpanTable:
    """One table of every chunk's spans (resources and scopes de-duplicated)."""
    return concat_tables(chunks)


def encode(table: SpanTable, *, tenant: str, level: int, created_ms: int) -> tuple[bytes, dict[str, Any]]:
    """The object of ``table`` (sorted here) and its meta."""
    t = table.sorted()
    n = len(t)
    start = t.cols.get_column("start_ns")
    end = start + t.cols.get_column("duration_ns")
    ids = b"".join(a.astype(">u8").tobytes() for a in (t.trace_hi, t.trace_lo, t.span, t.parent))
    buf = io.BytesIO()
    pq.write_table(t.cols.to_arrow(), buf, compression="zstd", row_group_size=ROW_GROUP_ROWS,
                   write_statistics=False, use_dictionary=["name", "service", "status_message", "tags", "tag_types"])
    meta = {
        "rows": n, "tenant": tenant, "level": int(level), "created_ms": int(created_ms),
        "min_time_ns": int(start.min()) if n else 0, "max_time_ns": int(end.max()) if n else 0,
        "services": sorted(set(t.cols.get_column("service").unique().to_list())),
        "resources": [base64.b64encode(r).decode() for r in t.resources],
        "scopes": [base64.b64encode(s).decode() for s in t.scopes],
        "ids_bytes": len(ids), "row_group_rows": ROW_GROUP_ROWS,
    }
    mbytes = json.dumps(meta, separators=(",", ":")).encode()
    body = ids + buf.getvalue()
    digest = hashlib.blake2b(mbytes + body, digest_size=32).digest()
    return _HEAD.pack(MAGIC, VERSION, 0, len(mbytes)) + mbytes + digest + body, meta


class SpanSegment:
    """A decoded span segment: ids at once, Parquet columns on demand (memoised)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < _HEAD.size + 32:
            raise SpanSegmentCorrupt("span segment too short")
        magic, version, _flags, mlen = _HEAD.unpack_from(data)
        if magic != MAGIC:
            raise SpanSegmentCorrupt("not a span segment (bad magic)")
        if version != VERSION:
            raise SpanSegmentCorrupt(f"span segment version {version} is not supported (this code reads {VERSION})")
        m0 = _HEAD.size
        if m0 + mlen + 32 > len(data):
            raise SpanSegmentCorrupt("span segment meta overruns the object")
        mbytes = data[m0:m0 + mlen]
        digest = data[m0 + mlen:m0 + mlen + 32]
        body = memoryview(data)[m0 + mlen + 32:]
        if _digest(mbytes, body) != digest:
            raise SpanSegmentCorrupt("span segment checksum mismatch")
        try:
            self.meta: dict[str, Any] = json.loads(mbytes)
            n = int(self.meta["rows"])
            ib = int(self.meta["ids_bytes"])
        except (ValueError, KeyError, TypeError) as e:
            raise SpanSegmentCorrupt(f"span segment meta: {e}") from None
        if ib != 32 * n or ib > len(body):
            raise SpanSegmentCorrupt("span segment id block does not match its row count")
        ids = np.frombuffer(body[:ib], dtype=">u8").astype(np.uint64).reshape(4, n) if n else np.zeros((4, 0), np.uint64)
        self.trace_hi, self.trace_lo, self.span, self.parent = ids
        self.rows = n
        self.resources = [base64.b64decode(r) for r in self.meta["resources"]]
        self.scopes = [base64.b64decode(s) for s in self.meta["scopes"]]
        self._parquet = bytes(body[ib:])
        self._lock = threading.Lock()
        self._cols: dict[str, pl.Series] = {}
        self.nbytes = len(data)

    def _file(self) -> pq.ParquetFile:
        return pq.ParquetFile(io.BytesIO(self._parquet))

    def columns(self, names: Sequence[str]) -> pl.DataFrame:
        """The named Parquet columns of every row (memoised per column)."""
        with self._lock:
            missing = [c for c in names if c not in self._cols]
            if missing:
                tab = pl.from_arrow(self._file().read(columns=missing))
                assert isinstance(tab, pl.DataFrame)
                for c in missing:
                    self._cols[c] = tab.get_column(c).cast(COLUMNS[c])
            return pl.DataFrame([self._cols[c] for c in names])

    def rows_of(self, rows: np.ndarray) -> pl.DataFrame:
        """Every Parquet column of ``rows`` (sorted row numbers), reading only their row groups."""
        if len(rows) == 0:
            return pl.DataFrame(schema=COLUMNS)
        per = int(self.meta.get("row_group_rows", ROW_GROUP_ROWS))
        groups = sorted(set((rows // per).tolist()))
        tab = pl.from_arrow(self._file().read_row_groups(groups))
        assert isinstance(tab, pl.DataFrame)
        base = np.concatenate([np.arange(g * per, min((g + 1) * per, self.rows)) for g in groups])
        local = np.searchsorted(base, rows)
        return tab[local].cast(COLUMNS)  # type: ignore[arg-type]

    def trace_rows(self, hi: int, lo: int) -> np.ndarray:
        """Row numbers of the trace ``(hi, lo)`` (a contiguous run; empty if absent)."""
        a = np.searchsorted(self.trace_hi, np.uint64(hi), "left")
        b = np.searchsorted(self.trace_hi, np.uint64(hi), "right")
        if a == b:
            return np.zeros(0, np.int64)
        return (a + np.flatnonzero(self.trace_lo[a:b] == np.uint64(lo))).astype(np.int64)

    def table(self) -> SpanTable:
        """Every row as a :class:`SpanTable` (compaction)."""
        return SpanTable(self.trace_hi, self.trace_lo, self.span, self.parent, self.columns(list(COLUMNS)),
                         self.resources, self.scopes)


def _digest(meta: bytes, body: memoryview) -> bytes:
    h = hashlib.blake2b(meta, digest_size=32)
    h.update(body)
    return h.digest()


def decode(data: bytes) -> SpanSegment:
    return SpanSegment(data)
