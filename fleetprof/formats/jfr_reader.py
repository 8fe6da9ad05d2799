"""JFR (Java Flight Recorder) binary reader: chunks, metadata, constant pools, events.

Format (version 2.x, as the JDK since 11 and async-profiler write it): a recording is one or
more self-contained chunks. A chunk starts with a 68-byte big-endian header (magic
``FLR\\0``, major and minor version, chunk size, constant-pool and metadata offsets from the
chunk start, start nanos, duration nanos, start ticks, ticks per second, feature flags),
followed by events. Every event is its size (varint, counting itself), its type id (varint)
and its fields in the order that the chunk's metadata declares for that type. Type 0 is
the metadata event (a string table and an element tree of classes and fields), type 1 a
constant-pool event (a linked list, by relative offsets, starting at the chunk's pool
offset). Integers (``int``, ``long``, ``short``, ``char``) are LEB128 varints of at most 9
bytes, the ninth carrying 8 bits; ``byte``/``boolean`` are one byte, ``float``/``double``
4/8 big-endian bytes. A string is an encoding byte then: nothing (0 null, 1 empty), a
``java.lang.String`` pool reference (2), UTF-8 bytes (3), UTF-16 code units as varints (4)
or Latin-1 bytes (5), each with a varint length. A field marked ``constantPool`` holds a
varint reference into its type's pool; a field with ``dimension=1`` is a varint count and
that many values; any other field of a non-primitive class is that class's fields inline.

Contract: :class:`JfrReader` yields :class:`Chunk` objects whose pools are decoded, then
the chosen events of each chunk, as lists of field values. Values are ints, floats, strings
(:class:`StrRef` for a pool reference, resolved with :meth:`Chunk.text`), lists (inline
structs and arrays) or ``None``. Every count, offset and length is checked against the
bytes that remain before anything is allocated, nesting is bounded, and the work is
linear in the input size; bad or truncated input raises :class:`ProfileFormatError`
(format ``jfr``) naming the offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from fleetprof.formats.errors import DEFAULT_LIMITS, Limits, ProfileFormatError

FMT = "jfr"
MAGIC = b"FLR\0"
HEADER_SIZE = 68
_HEADER = struct.Struct(">4sHHqqqqqqqI")
_MAX_NESTING = 32
_META_DEPTH = 8
_FEATURE_COMPRESSED_INTS = 1

# field kinds
_VARINT, _BYTE, _FLOAT, _DOUBLE, _STRING, _REF, _STRUCT = range(7)
_PRIMITIVES = {
    "int": _VARINT, "long": _VARINT, "short": _VARINT, "char": _VARINT,
    "byte": _BYTE, "boolean": _BYTE, "float": _FLOAT, "double": _DOUBLE,
    "java.lang.String": _STRING,
}
_FIXED = {_BYTE: 1, _FLOAT: 4, _DOUBLE: 8}


def fail(message: str, where: str | None = None) -> NoReturn:
    raise ProfileFormatError(FMT, message, where)


class StrRef(int):
    """A string held in the chunk's ``java.lang.String`` pool (its key)."""


@dataclass
class JfrField:
    name: str
    type_id: int
    constant_pool: bool
    array: bool


@dataclass
class JfrClass:
    """A type of the chunk's metadata; ``index`` maps field names to positions."""

    id: int
    name: str
    fields: list[JfrField] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    plan: list[tuple[int, Any, bool]] | None = None
    min_size: int = -1


@dataclass
class ChunkHeader:
    start: int
    size: int
    version: tuple[int, int]
    start_nanos: int
    duration_nanos: int
    ticks_per_second: int


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """JFR varint at ``pos`` (``IndexError`` past the end of ``data``)."""
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = data[pos]
        pos += 1
        if shift == 56:
            return value | (b << 56), pos
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


class Chunk:
    """One chunk: header, metadata classes and decoded constant pools."""

    def __init__(self, reader: JfrReader, header: ChunkHeader) -> None:
        self.reader = reader
        self.header = header
        self.end = header.start + header.size
        self.classes: dict[int, JfrClass] = {}
        self.by_name: dict[str, JfrClass] = {}
        self.pools: dict[str, dict[int, Any]] = {}

    # ---------------------------------------------------------------- values

    def text(self, value: Any) -> str:
        """A string field's text (pool references resolved; null → ``""``)."""
        if isinstance(value, StrRef):
            value = self.pools.get("java.lang.String", {}).get(int(value))
        return value if isinstance(value, str) else ""

    def _plan(self, cls: JfrClass) -> list[tuple[int, Any, bool]]:
        if cls.plan is None:
            plan: list[tuple[int, Any, bool]] = []
            for f in cls.fields:
                target = self.classes.get(f.type_id)
                if target is None:
                    fail(f"field {cls.name}.{f.name} has unknown type id {f.type_id}", "metadata")
                if f.constant_pool:
                    plan.append((_REF, None, f.array))
                elif target.name in _PRIMITIVES and not target.fields:
                    plan.append((_PRIMITIVES[target.name], None, f.array))
                else:
                    plan.append((_STRUCT, target, f.array))
            cls.plan = plan
        return cls.plan

    def _min_size(self, cls: JfrClass, seen: frozenset[int] = frozenset()) -> int:
        """Fewest bytes a value of ``cls`` takes; a class that contains itself inline
        (not through a pool reference or an array) could never end: an error."""
        if cls.min_size >= 0:
            return cls.min_size
        if cls.id in seen:
            fail(f"type {cls.name} contains itself", "metadata")
        total = 0
        for kind, arg, array in self._plan(cls):
            if array:
                total += 1
            elif kind == _STRUCT:
                total += self._min_size(arg, seen | {cls.id})
            else:
                total += _FIXED.get(kind, 1)
        cls.min_size = total
        return total

    def read_struct(self, cls: JfrClass, pos: int, end: int, depth: int = 0) -> tuple[list[Any], int]:
        """The field values of one ``cls`` value at ``pos`` (which must end by ``end``)."""
        if depth > _MAX_NESTING:
            fail(f"values nested deeper than {_MAX_NESTING} levels", f"byte {pos}")
        data = self.reader.data
        out: list[Any] = []
        for kind, arg, array in self._plan(cls):
            if not array:
                value, pos = self._read_one(kind, arg, data, pos, end, depth)
                out.append(value)
                continue
            n, pos = varint(data, pos)
            if n > end - pos:
                fail(f"array of {n} values in {end - pos} bytes", f"byte {pos}")
            if kind == _STRUCT and self._min_size(arg) == 0:
                out.append([])  # values without fields carry nothing: not materialised
                continue
            values = []
            for _ in range(n):
                value, pos = self._read_one(kind, arg, data, pos, end, depth)
                values.append(value)
            out.append(values)
        if pos > end:
            fail(f"value of type {cls.name} overruns its event", f"byte {end}")
        return out, pos

    def _read_one(self, kind: int, arg: Any, data: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
        if kind == _VARINT or kind == _REF:
            return varint(data, pos)
        if kind == _STRUCT:
            return self.read_struct(arg, pos, end, depth + 1)
        if kind == _STRING:
            return self._string(data, pos, end)
        if kind == _BYTE:
            return data[pos], pos + 1
        if kind == _FLOAT:
            if pos + 4 > end:
                fail("truncated float", f"byte {pos}")
            return struct.unpack_from(">f", data, pos)[0], pos + 4
        if pos + 8 > end:
            fail("truncated double", f"byte {pos}")
        return struct.unpack_from(">d", data, pos)[0], pos + 8

    def _string(self, data: bytes, pos: int, end: int) -> tuple[Any, int]:
        enc = data[pos]
        pos += 1
        if enc == 0:
            return None, pos
        if enc == 1:
            return "", pos
        if enc == 2:
            ref, pos = varint(data, pos)
            return StrRef(ref), pos
        if enc not in (3, 4, 5):
            fail(f"unknown string encoding {enc}", f"byte {pos - 1}")
        n, pos = varint(data, pos)
        if n > end - pos:
            fail(f"string of {n} units in {end - pos} bytes", f"byte {pos}")
        if n > self.reader.limits.max_string_length:
            fail(f"string of {n} units exceeds the {self.reader.limits.max_string_length} limit", f"byte {pos}")
        if enc == 3:
            return data[pos : pos + n].decode("utf-8", "replace"), pos + n
        if enc == 5:
            return data[pos : pos + n].decode("latin-1"), pos + n
        units = []
        for _ in range(n):
            c, pos = varint(data, pos)
            units.append(c & 0xFFFF)
        raw = b"".join(u.to_bytes(2, "big") for u in units)
        return raw.decode("utf-16-be", "replace"), pos

    # ---------------------------------------------------------------- metadata

    def read_metadata(self, pos: int) -> None:
        data = self.reader.data
        start = pos
        size, pos = varint(data, pos)
        end = start + size
        if size < 2 or end > self.end:
            fail(f"metadata event of {size} bytes does not fit its chunk", f"byte {start}")
        kind, pos = varint(data, pos)
        if kind != 0:
            fail(f"expected the metadata event (type 0), found type {kind}", f"byte {start}")
        for _ in range(3):  # start time, duration, metadata id
            _, pos = varint(data, pos)
        n, pos = varint(data, pos)
        if n > end - pos:
            fail(f"{n} metadata strings in {end - pos} bytes", f"byte {pos}")
        strings: list[str] = []
        for _ in range(n):
            s, pos = self._string(data, pos, end)
            strings.append(s if isinstance(s, str) else "")
        root, pos = self._element(strings, pos, end, 0)
        if pos > end:
            fail("metadata overruns its event", f"byte {end}")
        for meta in root[2]:
            if meta[0] == "metadata":
                for el in meta[2]:
                    if el[0] == "class":
                        self._add_class(el)

    def _element(self, strings: list[str], pos: int, end: int, depth: int) -> tuple[tuple[str, dict[str, str], list[Any]], int]:
        if depth > _META_DEPTH:
            fail(f"metadata nested deeper than {_META_DEPTH} levels", f"byte {pos}")
        data = self.reader.data
        name, pos = self._string_index(strings, data, pos)
        n, pos = varint(data, pos)
        if n > end - pos:
            fail(f"{n} attributes in {end - pos} bytes", f"byte {pos}")
        attrs = {}
        for _ in range(n):
            k, pos = self._string_index(strings, data, pos)
            v, pos = self._string_index(strings, data, pos)
            attrs[k] = v
        n, pos = varint(data, pos)
        if n > end - pos:
            fail(f"{n} child elements in {end - pos} bytes", f"byte {pos}")
        children = []
        for _ in range(n):
            child, pos = self._element(strings, pos, end, depth + 1)
            children.append(child)
        return (name, attrs, children), pos

    @staticmethod
    def _string_index(strings: list[str], data: bytes, pos: int) -> tuple[str, int]:
        i, pos = varint(data, pos)
        if i >= len(strings):
            fail(f"metadata string index {i} out of range ({len(strings)} strings)", f"byte {pos}")
        return strings[i], pos

    def _add_class(self, el: tuple[str, dict[str, str], list[Any]]) -> None:
        attrs = el[1]
        try:
            cid = int(attrs["id"])
        except (KeyError, ValueError):
            fail(f"class {attrs.get('name', '?')!r} without a numeric id", "metadata")
        cls = JfrClass(cid, attrs.get("name", ""))
        for child in el[2]:
            if child[0] != "field":
                continue
            fa = child[1]
            try:
                tid = int(fa["class"])
            except (KeyError, ValueError):
                fail(f"field {cls.name}.{fa.get('name', '?')} without a numeric type", "metadata")
            cls.index.setdefault(fa.get("name", ""), len(cls.fields))
            cls.fields.append(JfrField(fa.get("name", ""), tid, fa.get("constantPool") == "true", fa.get("dimension", "0") not in ("", "0")))
        self.classes[cid] = cls
        self.by_name[cls.name] = cls

    # ---------------------------------------------------------------- constant pools

    def read_pools(self, pos: int) -> None:
        data = self.reader.data
        seen: set[int] = set()
        first = self.header.start + HEADER_SIZE
        while True:
            if pos in seen or not first <= pos < self.end:
                fail("constant-pool list points outside its chunk or loops", f"byte {pos}")
            seen.add(pos)
            start = pos
            size, pos = varint(data, pos)
            end = start + size
            if size < 2 or end > self.end:
                fail(f"constant-pool event of {size} bytes does not fit its chunk", f"byte {start}")
            kind, pos = varint(data, pos)
            if kind != 1:
                fail(f"expected a constant-pool event (type 1), found type {kind}", f"byte {start}")
            for _ in range(2):  # start time, duration
                _, pos = varint(data, pos)
            delta, pos = varint(data, pos)
            _, pos = varint(data, pos)  # flush
            self._read_pool_event(pos, end)
            delta = signed64(delta)
            if delta == 0:
                return
            pos = start + delta

    def _read_pool_event(self, pos: int, end: int) -> None:
        data = self.reader.data
        n, pos = varint(data, pos)
        if n > end - pos:
            fail(f"{n} constant pools in {end - pos} bytes", f"byte {pos}")
        for _ in range(n):
            tid, pos = varint(data, pos)
            cls = self.classes.get(tid)
            if cls is None:
                fail(f"constant pool of unknown type id {tid}", f"byte {pos}")
            count, pos = varint(data, pos)
            if count > end - pos:
                fail(f"{count} constants in {end - pos} bytes", f"byte {pos}")
            pool = self.pools.setdefault(cls.name, {})
            kind = _PRIMITIVES.get(cls.name) if not cls.fields else None
            for _ in range(count):
                key, pos = varint(data, pos)
                if kind is not None:
                    pool[key], pos = self._read_one(kind, None, data, pos, end, 0)
                else:
                    pool[key], pos = self.read_struct(cls, pos, end)
            if pos > end:
                fail("constant pool overruns its event", f"byte {end}")

    # ---------------------------------------------------------------- events

    def events(self, names: set[str]) -> Iterator[tuple[str, list[Any]]]:
        """``(type name, field values)`` of every event whose type is in ``names``."""
        data = self.reader.data
        wanted = {c.id: c for c in self.classes.values() if c.name in names}
        pos = self.header.start + HEADER_SIZE
        chunk_end = self.end
        while pos < chunk_end:
            start = pos
            size, pos = varint(data, pos)
            end = start + size
            if size < 2 or end > chunk_end:
                fail(f"event of {size} bytes does not fit its chunk", f"byte {start}")
            tid, pos = varint(data, pos)
            cls = wanted.get(tid)
            if cls is not None:
                values, _ = self.read_struct(cls, pos, end)
                yield cls.name, values
            pos = end


class JfrReader:
    """Iterates the chunks of a JFR recording held in ``data`` (already decompressed)."""

    def __init__(self, data: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
        self.data = data
        self.limits = limits

    def chunks(self) -> Iterator[Chunk]:
        pos = 0
        data = self.data
        if not data.startswith(MAGIC):
            fail("not a JFR recording (no FLR magic)", "byte 0")
        while pos < len(data):
            if not data[pos:].strip(b"\0"):
                return  # zero padding after the last chunk
            header = self._header(pos)
            chunk = Chunk(self, header)
            try:
                chunk.read_metadata(pos + self._offset(pos, 24, header))
                chunk.read_pools(pos + self._offset(pos, 16, header))
            except IndexError:
                fail("truncated recording", f"chunk at byte {pos}")
            yield chunk
            pos += header.size

    def _header(self, pos: int) -> ChunkHeader:
        data = self.data
        if pos + HEADER_SIZE > len(data):
            fail("truncated chunk header", f"byte {pos}")
        magic, major, minor, size, _, _, start_ns, dur_ns, _, tps, features = _HEADER.unpack_from(data, pos)
        if magic != MAGIC:
            fail("bad chunk magic (expected FLR\\0)", f"byte {pos}")
        if major != 2:
            fail(f"unsupported JFR version {major}.{minor} (expected 2.x)", f"byte {pos + 4}")
        if size < HEADER_SIZE or pos + size > len(data):
            fail(f"chunk size {size} does not fit the {len(data) - pos} bytes left (truncated recording?)", f"byte {pos + 8}")
        if not features & _FEATURE_COMPRESSED_INTS:
            fail("recordings without compressed integers are not supported", f"byte {pos + 64}")
        return ChunkHeader(pos, size, (major, minor), start_ns, dur_ns, tps)

    def _offset(self, pos: int, at: int, header: ChunkHeader) -> int:
        off = struct.unpack_from(">q", self.data, pos + at)[0]
        if not HEADER_SIZE <= off < header.size:
            fail(f"offset {off} outside its chunk of {header.size} bytes", f"byte {pos + at}")
        return off
