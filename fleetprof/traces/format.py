"""The span segment object (``kind = "spans"`` in the index): one immutable, versioned,
checksummed object per flush or compaction, rows sorted by trace id.

Layout of version 2, written now (integers little-endian)::

    b"FPSP" | version: u16 | flags: u16 | meta_len: u32 | filter_len: u32
    | head digest: 32 bytes = blake2b-256(meta + filter) | meta (JSON) | filter
    | body digest: 32 bytes = blake2b-256(body) | body = [id block][tag block][Parquet file]

The head (everything before the body digest) answers "may this segment hold trace X?"
without the body: a lookup reads the heads of the segments in its time range (a ranged
read each, :func:`read_head`) and then only the segments whose filter admits the trace.

* ``meta``: ``rows``, ``tenant``, ``level``, ``created_ms``, ``min_time_ns`` (earliest
  start), ``max_time_ns`` (latest end), ``services``, ``resources`` and ``scopes`` (base64
  of the serialized ``ResourceSpans`` / ``ScopeSpans`` without children; spans refer to
  them by position), ``ids_bytes`` (size of the id block), ``tag_block_bytes`` (size of the
  tag block), ``row_group_rows``, ``bloom`` (``{"bits": m, "k": k}``).
* filter: a Bloom filter of the segment's trace ids, ``m / 64`` little-endian ``u64``
  words, about 16 bits per trace (false positives about 1 in 1,500); probe ``i`` of a trace
  sets bit ``(h1 + i * h2) mod m`` with ``h1``, ``h2`` from :func:`trace_hashes` (our own
  splitmix64 mixing of the id's halves: stable across processes and versions).
* id block: four arrays of ``rows`` big-endian ``u64`` one after another — trace id high
  half, trace id low half, span id, parent span id (0: none). Rows are sorted by (trace id,
  start), so the rows of a trace are one contiguous run found by binary search, and the
  block is read without opening the Parquet file. Ids are random bytes, which compression
  cannot shrink, so the block is stored raw.
* tag block (:func:`tag_block`): the segment's distinct ``key=value`` tags and each
  span's tags as positions among them, in zstd-compressed flat arrays — a tag search finds
  the tag's position once and compares integers; tag autocomplete reads the distinct tags
  alone.
* Parquet (zstd, row groups of ``row_group_rows``): ``name: str, kind: i8,
  start_ns: i64, duration_ns: i64, status_code: i8, status_message: str, service: str,
  resource: i32, scope: i32, extra: binary, tag_types: str`` — the columns of
  :class:`fleetprof.traces.table.SpanTable` but ``tags`` (``extra``/``tags``/``tag_types``
  as described in :mod:`fleetprof.traces.otlp`). A lookup reads only the row groups holding
  its trace.

Version 1 (``b"FPSP" | 1 | flags | meta_len | meta | digest = blake2b-256(meta + body) |
body``, no filter, no tag dictionary: ``tags: list<str>`` in the Parquet file) is still read. Decoding checks magic, version, digests and sizes and
raises :class:`SpanSegmentCorrupt`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fleetprof.traces.table import COLUMNS, SpanTable, concat_tables

MAGIC = b"FPSP"
VERSION = 2
READS = (1, 2)
_HEAD1 = struct.Struct("<4sHHI")
_HEAD2 = struct.Struct("<4sHHII")
HEAD_PREFIX = _HEAD2.size + 32
"""Bytes before a version 2 meta: fixed header and head digest."""
BLOOM_BITS_PER_TRACE = 16
BLOOM_K = 7
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
ROW_GROUP_ROWS = 8192
SEARCH_COLUMNS = ("name", "kind", "start_ns", "duration_ns", "status_code", "service", "resource")


class SpanSegmentCorrupt(ValueError):
    """A span segment object failed its checks."""


def table_from_chunks(chunks: Sequence[SpanTable]) -> SpanTable:
    """One table of every chunk's spans (resources and scopes de-duplicated)."""
    return concat_tables(chunks)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise on ``uint64`` (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def trace_hashes(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(h1, h2)`` of trace ids given as ``uint64`` halves (``h2`` odd): the Bloom probes."""
    hi = np.asarray(hi, dtype=np.uint64)
    lo = np.asarray(lo, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h1 = _mix(hi ^ _mix(lo + _GOLDEN))
        h2 = _mix(h1 + _GOLDEN) | np.uint64(1)
    return h1, h2


def _probes(hi: np.ndarray, lo: np.ndarray, bits: int, k: int) -> np.ndarray:
    """(len, k) bit positions of the traces."""
    h1, h2 = trace_hashes(hi, lo)
    i = np.arange(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return (h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(bits)


def bloom_of(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, int]:
    """The filter words and bit count for the distinct traces among ``(hi, lo)`` (sorted)."""
    if len(hi):
        first = np.ones(len(hi), dtype=bool)
        first[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        hi, lo = hi[first], lo[first]
    bits = max(64, -(-len(hi) * BLOOM_BITS_PER_TRACE // 64) * 64)
    words = np.zeros(bits // 64, dtype=np.uint64)
    pos = _probes(hi, lo, bits, BLOOM_K).reshape(-1)
    np.bitwise_or.at(words, (pos >> np.uint64(6)).astype(np.int64), np.uint64(1) << (pos & np.uint64(63)))
    return words, bits


def encode(table: SpanTable, *, tenant: str, level: int, created_ms: int) -> tuple[bytes, dict[str, Any]]:
    """The version 2 object of ``table`` (sorted here) and its meta."""
    t = table.sorted()
    n = len(t)
    start = t.cols.get_column("start_ns")
    end = start + t.cols.get_column("duration_ns")
    ids = b"".join(a.astype(">u8").tobytes() for a in (t.trace_hi, t.trace_lo, t.span, t.parent))
    arrow = t.cols.to_arrow()
    block = tag_block(arrow.column("tags"))
    arrow = arrow.drop_columns(["tags"])
    buf = io.BytesIO()
    pq.write_table(arrow, buf, compression="zstd", row_group_size=ROW_GROUP_ROWS,
                   write_statistics=False, use_dictionary=["name", "service", "status_message", "tag_types"])
    words, bits = bloom_of(t.trace_hi, t.trace_lo)
    meta = {
        "rows": n, "tenant": tenant, "level": int(level), "created_ms": int(created_ms),
        "min_time_ns": int(start.min()) if n else 0, "max_time_ns": int(end.max()) if n else 0,
        "services": sorted(set(t.cols.get_column("service").unique().to_list())),
        "resources": [base64.b64encode(r).decode() for r in t.resources],
        "scopes": [base64.b64encode(s).decode() for s in t.scopes],
        "ids_bytes": len(ids), "tag_block_bytes": len(block), "row_group_rows": ROW_GROUP_ROWS,
        "bloom": {"bits": bits, "k": BLOOM_K},
    }
    mbytes = json.dumps(meta, separators=(",", ":")).encode()
    fbytes = words.astype("<u8").tobytes()
    body = ids + block + buf.getvalue()
    head_digest = hashlib.blake2b(mbytes + fbytes, digest_size=32).digest()
    body_digest = hashlib.blake2b(body, digest_size=32).digest()
    head = _HEAD2.pack(MAGIC, VERSION, 0, len(mbytes), len(fbytes)) + head_digest
    return head + mbytes + fbytes + body_digest + body, meta


_TAG_HEAD = struct.Struct("<8I")


def _z(a: np.ndarray | bytes) -> bytes:
    return pa.compress(a if isinstance(a, bytes) else a.tobytes(), "zstd", asbytes=True)


def tag_block(tags: pa.ChunkedArray | pa.Array) -> bytes:
    """The tag block of a ``tags`` column (lists of ``key=value`` strings): header
    ``<8I``: distinct tags, their bytes, tag occurrences, spans, then the compressed sizes of
    four zstd parts: the distinct tags' lengths (``u32``), their UTF-8 bytes, each span's tag
    count (``u32``), each occurrence's position in the distinct tags (``u32``)."""
    if isinstance(tags, pa.ChunkedArray):
        tags = tags.combine_chunks() if tags.num_chunks != 1 else tags.chunk(0)
    flat = tags.flatten().cast(pa.large_string())
    enc = pc.dictionary_encode(flat) if len(flat) else None
    dictionary = enc.dictionary.cast(pa.large_string()) if enc is not None else pa.array([], pa.large_string())
    codes = np.asarray(enc.indices, dtype=np.uint32) if enc is not None else np.zeros(0, np.uint32)
    bufs = dictionary.buffers()
    doffs = np.frombuffer(bufs[1], dtype=np.int64)[dictionary.offset:dictionary.offset + len(dictionary) + 1] if len(dictionary) else np.zeros(1, np.int64)
    data = bufs[2].to_pybytes()[doffs[0]:doffs[-1]] if len(dictionary) and bufs[2] is not None else b""
    offs = np.asarray(tags.offsets, dtype=np.int64)
    parts = [_z(np.diff(doffs).astype(np.uint32)), _z(data), _z(np.diff(offs).astype(np.uint32)), _z(codes)]
    head = _TAG_HEAD.pack(len(dictionary), len(data), len(codes), len(tags), *(len(x) for x in parts))
    return head + b"".join(parts)


@dataclass(frozen=True)
class TagBlock:
    """A decoded tag block: the distinct tags, and per span the range of its tag positions."""

    dictionary: pa.LargeStringArray
    offsets: np.ndarray
    """(spans + 1) int64: span ``i``'s tags are ``codes[offsets[i]:offsets[i + 1]]``."""
    codes: np.ndarray

    def lists(self, rows: np.ndarray | None = None) -> pa.LargeListArray:
        """The tags of ``rows`` (default: every span) as lists of strings."""
        if rows is None:
            return pa.LargeListArray.from_arrays(pa.array(self.offsets), self.dictionary.take(pa.array(self.codes)))
        idx, offs = _ranges(self.offsets, rows)
        return pa.LargeListArray.from_arrays(pa.array(offs), self.dictionary.take(pa.array(self.codes[idx])))

    def has(self, rows: np.ndarray, tag: str) -> np.ndarray:
        """Whether each span of ``rows`` carries ``tag``."""
        code = pc.index(self.dictionary, tag).as_py()
        if code < 0:
            return np.zeros(len(rows), dtype=bool)
        idx, offs = _ranges(self.offsets, rows)
        owner = np.repeat(np.arange(len(rows)), np.diff(offs))
        out = np.zeros(len(rows), dtype=bool)
        out[owner[self.codes[idx] == code]] = True
        return out


def _ranges(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the elements of ``rows``' ranges, the new offsets)."""
    starts = offsets[rows]
    lens = offsets[rows + 1] - starts
    offs = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lens, out=offs[1:])
    return np.repeat(starts - offs[:-1], lens) + np.arange(offs[-1], dtype=np.int64), offs


def read_tag_block(data: bytes, rows: int) -> TagBlock:
    """:func:`tag_block` back; :class:`SpanSegmentCorrupt` when it does not add up."""
    try:
        n_dict, n_data, n_codes, n_rows, *sizes = _TAG_HEAD.unpack_from(data)
        if n_rows != rows or _TAG_HEAD.size + sum(sizes) != len(data):
            raise ValueError("sizes do not match")
        at = _TAG_HEAD.size
        raw = []
        for size, want in zip(sizes, (4 * n_dict, n_data, 4 * n_rows, 4 * n_codes), strict=True):
            raw.append(pa.decompress(data[at:at + size], want, "zstd", asbytes=True))
            at += size
        lens = np.frombuffer(raw[0], dtype="<u4").astype(np.int64)
        counts = np.frombuffer(raw[2], dtype="<u4").astype(np.int64)
        codes = np.frombuffer(raw[3], dtype="<u4")
        doffs = np.zeros(n_dict + 1, np.int64)
        np.cumsum(lens, out=doffs[1:])
        offs = np.zeros(n_rows + 1, np.int64)
        np.cumsum(counts, out=offs[1:])
        if doffs[-1] != n_data or offs[-1] != n_codes or (n_codes and int(codes.max()) >= n_dict):
            raise ValueError("counts do not add up")
        dictionary = pa.LargeStringArray.from_buffers(n_dict, pa.py_buffer(doffs), pa.py_buffer(raw[1]))
        dictionary.validate(full=True)
    except (ValueError, struct.error, pa.ArrowException) as e:
        raise SpanSegmentCorrupt(f"span segment tag block: {e}") from None
    return TagBlock(dictionary, offs, codes)


@dataclass(frozen=True)
class SegmentHead:
    """A segment's meta and trace filter (``None`` for version 1: admits every trace)."""

    meta: dict[str, Any]
    words: np.ndarray | None
    bits: int
    k: int

    def may_hold(self, hi: int, lo: int) -> bool:
        """False only when the segment holds no span of trace ``(hi, lo)``."""
        return bool(self.may_hold_each(np.asarray([hi], np.uint64), np.asarray([lo], np.uint64))[0])

    def may_hold_each(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """:meth:`may_hold` of each trace ``(hi[i], lo[i])`` (``uint64`` arrays), as bools."""
        if self.words is None:
            return np.ones(len(hi), dtype=bool)
        pos = _probes(np.asarray(hi, np.uint64), np.asarray(lo, np.uint64), self.bits, self.k)
        got = self.words[(pos >> np.uint64(6)).astype(np.int64)] >> (pos & np.uint64(63))
        return np.all(got & np.uint64(1), axis=1)


def _meta(mbytes: bytes | memoryview) -> dict[str, Any]:
    try:
        meta = json.loads(bytes(mbytes))
        if not isinstance(meta, dict):
            raise TypeError("meta is not an object")
        int(meta["rows"])
        int(meta["ids_bytes"])
        return meta
    except (ValueError, KeyError, TypeError) as e:
        raise SpanSegmentCorrupt(f"span segment meta: {e}") from None


def parse_head(data: bytes | memoryview) -> tuple[SegmentHead, int]:
    """The head at the start of ``data`` and where the body digest starts; raises
    :class:`SpanSegmentCorrupt` (also when ``data`` is too short to hold the head: the
    caller reads more, up to the object's size)."""
    if len(data) < _HEAD1.size:
        raise SpanSegmentCorrupt("span segment too short")
    magic, version, _flags, mlen = _HEAD1.unpack_from(data)
    if magic != MAGIC:
        raise SpanSegmentCorrupt("not a span segment (bad magic)")
    if version not in READS:
        raise SpanSegmentCorrupt(f"span segment version {version} is not supported (this code reads {READS})")
    if version == 1:
        m0 = _HEAD1.size
        if m0 + mlen + 32 > len(data):
            raise SpanSegmentCorrupt("span segment meta overruns the object")
        return SegmentHead(_meta(data[m0:m0 + mlen]), None, 0, 0), m0 + mlen
    if len(data) < HEAD_PREFIX:
        raise SpanSegmentCorrupt("span segment too short")
    _, _, _, mlen, flen = _HEAD2.unpack_from(data)
    m0 = HEAD_PREFIX
    if m0 + mlen + flen + 32 > len(data):
        raise SpanSegmentCorrupt("span segment head overruns the object")
    mf = data[m0:m0 + mlen + flen]
    if hashlib.blake2b(mf, digest_size=32).digest() != bytes(data[_HEAD2.size:HEAD_PREFIX]):
        raise SpanSegmentCorrupt("span segment head checksum mismatch")
    meta = _meta(mf[:mlen])
    try:
        bits, k = int(meta["bloom"]["bits"]), int(meta["bloom"]["k"])
    except (KeyError, TypeError, ValueError) as e:
        raise SpanSegmentCorrupt(f"span segment meta: bloom {e}") from None
    if bits <= 0 or bits % 64 or flen * 8 != bits or not 0 < k <= 32:
        raise SpanSegmentCorrupt("span segment filter does not match its meta")
    words = np.frombuffer(bytes(mf[mlen:]), dtype="<u8").astype(np.uint64)
    return SegmentHead(meta, words, bits, k), m0 + mlen + flen


def head_size(prefix: bytes) -> int:
    """Bytes of the head (through the body digest) given its first :data:`HEAD_PREFIX` bytes."""
    if len(prefix) < _HEAD1.size:
        return HEAD_PREFIX
    _, version, _, mlen = _HEAD1.unpack_from(prefix)
    if version == 1 or len(prefix) < _HEAD2.size:
        return _HEAD1.size + mlen + 32
    _, _, _, mlen, flen = _HEAD2.unpack_from(prefix)
    return HEAD_PREFIX + mlen + flen + 32


class SpanSegment:
    """A decoded span segment: ids at once, Parquet columns on demand (memoised)."""

    def __init__(self, data: bytes) -> None:
        head, at = parse_head(data)
        if at + 32 > len(data):
            raise SpanSegmentCorrupt("span segment too short")
        body = memoryview(data)[at + 32:]
        if head.words is None:  # version 1: one digest over meta and body
            ok = _digest(data[_HEAD1.size:at], body) == data[at:at + 32]
        else:
            ok = hashlib.blake2b(body, digest_size=32).digest() == data[at:at + 32]
        if not ok:
            raise SpanSegmentCorrupt("span segment checksum mismatch")
        self.head = head
        self.meta: dict[str, Any] = head.meta
        n = int(self.meta["rows"])
        ib = int(self.meta["ids_bytes"])
        if ib != 32 * n or ib > len(body):
            raise SpanSegmentCorrupt("span segment id block does not match its row count")
        ids = np.frombuffer(body[:ib], dtype=">u8").astype(np.uint64).reshape(4, n) if n else np.zeros((4, 0), np.uint64)
        self.trace_hi, self.trace_lo, self.span, self.parent = ids
        self.rows = n
        try:
            self.resources = [base64.b64decode(r) for r in self.meta["resources"]]
            self.scopes = [base64.b64decode(s) for s in self.meta["scopes"]]
        except (KeyError, TypeError, ValueError) as e:
            raise SpanSegmentCorrupt(f"span segment meta: {e}") from None
        tb = self.meta.get("tag_block_bytes")
        if tb is not None and (not isinstance(tb, int) or tb < 0 or ib + tb > len(body)):
            raise SpanSegmentCorrupt("span segment tag block overruns the object")
        self._tag_bytes = bytes(body[ib:ib + tb]) if tb is not None else None
        self._parquet = bytes(body[ib + (tb or 0):])
        self._lock = threading.Lock()
        self._cols: dict[str, pl.Series] = {}
        self.nbytes = len(data)

    def _file(self) -> pq.ParquetFile:
        return pq.ParquetFile(io.BytesIO(self._parquet))

    def _tags(self) -> TagBlock | None:
        """The decoded tag block (``None``: tags stored as strings in the Parquet file, version 1)."""
        if self._tag_bytes is None:
            return None
        got = self.__dict__.get("_tag_block")
        if got is None:
            got = self.__dict__["_tag_block"] = read_tag_block(self._tag_bytes, self.rows)
        return got

    def _read(self, names: Sequence[str], groups: Sequence[int] | None = None) -> pl.DataFrame:
        """Columns ``names`` (of row groups ``groups``, else all rows)."""
        block = self._tags()
        cols = [c for c in names if not (c == "tags" and block is not None)]
        f = self._file()
        tab = f.read(columns=cols) if groups is None else f.read_row_groups(groups, columns=cols)
        if block is not None and "tags" in names:
            rows = None if groups is None else self._group_rows(groups)
            tab = tab.append_column("tags", block.lists(rows)).select(list(names))
        out = pl.from_arrow(tab)
        assert isinstance(out, pl.DataFrame)
        return out

    def _group_rows(self, groups: Sequence[int]) -> np.ndarray:
        per = int(self.meta.get("row_group_rows", ROW_GROUP_ROWS))
        return np.concatenate([np.arange(g * per, min((g + 1) * per, self.rows)) for g in groups])

    def columns(self, names: Sequence[str]) -> pl.DataFrame:
        """The named columns of every row (memoised per column)."""
        with self._lock:
            missing = [c for c in names if c not in self._cols]
            if missing:
                tab = self._read(missing)
                for c in missing:
                    self._cols[c] = tab.get_column(c).cast(COLUMNS[c])
            return pl.DataFrame([self._cols[c] for c in names])

    def distinct_tags(self) -> list[str]:
        """Every distinct ``key=value`` tag of the segment's spans."""
        with self._lock:
            block = self._tags()
        if block is not None:
            return block.dictionary.to_pylist()
        return self.columns(["tags"]).get_column("tags").explode().drop_nulls().unique().to_list()

    def has_tag(self, rows: np.ndarray, tag: str) -> np.ndarray:
        """Whether each span of ``rows`` carries ``tag`` (``key=value``) among its own tags."""
        with self._lock:
            block = self._tags()
            if block is None:
                lists = self.__dict__.get("_tag_lists")
                if lists is None:
                    col = self._file().read(columns=["tags"]).column(0)
                    lists = self.__dict__["_tag_lists"] = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if block is not None:
            return block.has(rows, tag)
        sub = lists.take(pa.array(rows, pa.int64()))
        owner = np.repeat(np.arange(len(rows)), np.diff(np.asarray(sub.offsets, dtype=np.int64)))
        eq = np.asarray(pc.equal(sub.flatten(), tag).fill_null(False), dtype=bool)
        out = np.zeros(len(rows), dtype=bool)
        out[owner[eq]] = True
        return out

    def rows_of(self, rows: np.ndarray) -> pl.DataFrame:
        """Every Parquet column of ``rows`` (sorted row numbers), reading only their row groups."""
        if len(rows) == 0:
            return pl.DataFrame(schema=COLUMNS)
        per = int(self.meta.get("row_group_rows", ROW_GROUP_ROWS))
        groups = sorted(set((rows // per).tolist()))
        with self._lock:
            tab = self._read(list(COLUMNS), groups)
        local = np.searchsorted(self._group_rows(groups), rows)
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


HEAD_READ = 16 * 1024
"""First ranged read of a head (a second one fetches the rest of a larger head)."""


def read_head(store: Any, key: str) -> tuple[SegmentHead, SpanSegment | None]:
    """The head of the object at ``key``: ranged reads when the store has ``get_range``
    (then no segment), else the whole object, decoded (returned too). ``KeyError`` when
    absent, :class:`SpanSegmentCorrupt` when the head fails its checks."""
    get_range = getattr(store, "get_range", None)
    if get_range is None:
        seg = decode(store.get(key))
        return seg.head, seg
    data = get_range(key, 0, HEAD_READ)
    need = head_size(data[:HEAD_PREFIX])
    if need > len(data) and len(data) == HEAD_READ:
        data += get_range(key, len(data), need - len(data))
    return parse_head(data)[0], None
