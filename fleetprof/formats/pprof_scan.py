"""Compiled (numba) scans of pprof's sample messages: the hot loop of :mod:`.pprof`.

Contracts:

* :func:`table_spans` walks the top level of a ``Profile`` message and returns the byte
  spans of every ``sample``, ``location`` and ``function`` message and string-table entry
  in wire order, or
  ``None`` when the top level is not well-formed protobuf (the caller then reports the
  error through upb).
* :func:`scan_samples` decodes those sample messages in one pass: location ids (resolved
  to rows of the location table as they are read) and values (packed or not, in wire
  order; a message may mix both), and labels (``key``, ``str``, ``num``, ``num_unit``;
  within one label the last occurrence of a field wins). Unknown fields are skipped. It
  returns ``None`` for anything it does not accept as valid (a truncated varint or field,
  a wrong wire type for a known field, a value count other than the number of sample
  types, an unknown location id); the caller's exact, slower decoder then names the error.
* :func:`scan_records` and :func:`scan_locations` decode the ``function`` and ``location``
  tables (varint fields, last occurrence wins, unknown fields skipped), or return None for
  anything malformed, so that the caller's exact decoder names the error;
  :func:`resolve_frames` turns them into interned frames.
* :func:`dedupe_stacks` sums samples with equal location sequences and equal ``extra`` keys
  (the label set); groups are compared element by element, never merged on a hash alone.
  Groups are numbered in order of first appearance.
* :func:`label_values` reads the pairs that labels stand for; :func:`label_sets` groups
  samples by their label set (a pair repeated within a sample counts once), compared code
  by code.
"""

from __future__ import annotations

import numpy as np

from fleetprof.model.hashing import open_table
from fleetprof.numba_cache import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)


@njit(cache=True, nogil=True, inline="always")
def _varint(buf: np.ndarray, pos: int, end: int) -> tuple[np.uint64, int]:
    """(value, position after it); position -1 for a truncated or over-long varint."""
    result = np.uint64(0)
    shift = np.uint64(0)
    while pos < end:
        b = buf[pos]
        pos += 1
        result |= np.uint64(b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += np.uint64(7)
        if shift >= np.uint64(70):
            return np.uint64(0), -1
    return np.uint64(0), -1


@njit(cache=True, nogil=True, inline="always")
def _tag(buf: np.ndarray, pos: int, end: int) -> tuple[np.int64, np.int64, int]:
    """(field number, wire type, position after the tag); position -1 for a truncated tag,
    field number 0 or a tag beyond 32 bits (protobuf rejects them)."""
    tag, pos = _varint(buf, pos, end)
    if pos < 0 or tag > np.uint64(0xFFFFFFFF) or (tag >> np.uint64(3)) == 0:
        return np.int64(0), np.int64(0), -1
    return np.int64(tag >> np.uint64(3)), np.int64(tag & np.uint64(7)), pos


@njit(cache=True, nogil=True, inline="always")
def _skip_scalar(buf: np.ndarray, pos: int, end: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    if wire == 2:
        ln, pos = _varint(buf, pos, end)
        if pos < 0 or ln > np.uint64(end - pos):
            return -1
        return pos + np.int64(ln)
    return -1


MAX_GROUP_DEPTH = 64
"""Nested (deprecated) groups deeper than this are declined."""


@njit(cache=True, nogil=True)
def _skip(buf: np.ndarray, pos: int, end: int, wire: int, field: int) -> int:
    """Position after the payload of an unknown field ``field``; -1 when malformed. A group
    (wire type 3) runs to its matching end-group tag (wire type 4, same field number),
    nested groups included; an end-group tag anywhere else is malformed."""
    if wire != 3:
        return _skip_scalar(buf, pos, end, wire)
    open_fields = np.empty(MAX_GROUP_DEPTH, dtype=np.int64)
    open_fields[0] = field
    depth = 1
    while pos < end:
        f, w, pos = _tag(buf, pos, end)
        if pos < 0:
            return -1
        if w == 4:
            if f != open_fields[depth - 1]:
                return -1
            depth -= 1
            if depth == 0:
                return pos
        elif w == 3:
            if depth == MAX_GROUP_DEPTH:
                return -1
            open_fields[depth] = f
            depth += 1
        else:
            pos = _skip_scalar(buf, pos, end, w)
            if pos < 0:
                return -1
    return -1


SAMPLE, LOCATION, FUNCTION, STRING_TABLE = 2, 4, 5, 6
"""Field numbers of the ``Profile`` tables that :func:`table_spans` locates."""


@njit(cache=True, nogil=True)
def _spans(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, counts: np.ndarray) -> bool:
    """Top-level walk: the spans of the sample, location and function messages and of the
    string-table entries (row 0, 1, 2, 3 of ``starts``/``ends``, written while they fit)
    and their ``counts``. False when the top level is malformed."""
    # counters in locals, one-byte tags and lengths inline: 3x faster than a counts array
    end = len(buf)
    cap = starts.shape[1]
    c0 = c1 = c2 = c3 = 0
    pos = 0
    while pos < end:
        b = buf[pos]
        if b < 0x80 and b >= 8:  # a one-byte tag with a field number
            field, wire = np.int64(b >> 3), np.int64(b & 7)
            pos += 1
        else:
            field, wire, pos = _tag(buf, pos, end)
            if pos < 0:
                return False
        if wire != 2:
            pos = _skip(buf, pos, end, wire, field)
            if pos < 0:
                return False
            continue
        if pos < end and buf[pos] < 0x80:
            ln = np.int64(buf[pos])
            pos += 1
        else:
            length, pos = _varint(buf, pos, end)
            if pos < 0 or length > np.uint64(end - pos):
                return False
            ln = np.int64(length)
        if ln > end - pos:
            return False
        if field == SAMPLE:
            if c0 < cap:
                starts[0, c0], ends[0, c0] = pos, pos + ln
            c0 += 1
        elif field == LOCATION:
            if c1 < cap:
                starts[1, c1], ends[1, c1] = pos, pos + ln
            c1 += 1
        elif field == FUNCTION:
            if c2 < cap:
                starts[2, c2], ends[2, c2] = pos, pos + ln
            c2 += 1
        elif field == STRING_TABLE:
            if c3 < cap:
                starts[3, c3], ends[3, c3] = pos, pos + ln
            c3 += 1
        pos += ln
    counts[0], counts[1], counts[2], counts[3] = c0, c1, c2, c3
    return True


Spans = tuple[np.ndarray, np.ndarray]
"""(starts, ends) of messages within the profile bytes."""


def table_spans(buf: np.ndarray, expect: int = 256) -> tuple[Spans, Spans, Spans, Spans] | None:
    """The spans of every top-level ``sample``, ``location`` and ``function`` message and
    ``string_table`` entry of ``buf`` (uint8), in wire order; None when the top level is
    malformed. ``expect`` (the largest table's size, when known) saves a second walk."""
    counts = np.zeros(4, dtype=np.int64)
    starts = np.empty((4, expect), dtype=np.int64)
    ends = np.empty((4, expect), dtype=np.int64)
    if not _spans(buf, starts, ends, counts):
        return None
    if counts.max() > starts.shape[1]:
        starts, ends = np.empty((4, counts.max()), dtype=np.int64), np.empty((4, counts.max()), dtype=np.int64)
        _spans(buf, starts, ends, counts)
    return tuple((starts[r, : counts[r]], ends[r, : counts[r]]) for r in range(4))  # type: ignore[return-value]


@njit(cache=True, nogil=True, inline="always")
def _field(buf: np.ndarray, pos: int, end: int) -> tuple[np.int64, np.int64, int]:
    """:func:`_tag` with a one-byte tag read inline."""
    b = buf[pos]
    if 8 <= b < 0x80:
        return np.int64(b >> 3), np.int64(b & 7), pos + 1
    return _tag(buf, pos, end)


@njit(cache=True, nogil=True, inline="always")
def _varint_row(buf, pos, end, out, row) -> bool:
    """One message whose fields ``1 .. out.shape[1]`` (at most 5) are varints into
    ``out[row, f - 1]`` (0 when absent; the last occurrence wins); other fields are
    skipped. False when malformed or when one of those fields is not a varint."""
    width = out.shape[1]
    f1 = f2 = f3 = f4 = f5 = np.uint64(0)
    while pos < end:
        field, wire, pos = _field(buf, pos, end)
        if pos < 0:
            return False
        if 1 <= field <= width:
            if wire != 0:
                return False
            v, pos = _varint(buf, pos, end)
            if pos < 0:
                return False
            if field == 1:
                f1 = v
            elif field == 2:
                f2 = v
            elif field == 3:
                f3 = v
            elif field == 4:
                f4 = v
            else:
                f5 = v
        else:
            pos = _skip(buf, pos, end, wire, field)
            if pos < 0:
                return False
    out[row, 0] = f1
    if width > 1:
        out[row, 1] = f2
    if width > 2:
        out[row, 2] = f3
    if width > 3:
        out[row, 3] = f4
    if width > 4:
        out[row, 4] = f5
    return True


@njit(cache=True, nogil=True)
def _fill(buf, starts, ends, ntypes, ids, table, id_shift, lf_off, loc_offsets, loc_index, values, owner, lab):
    """One pass over the sample messages into arrays of sufficient size (a varint takes a
    byte at least, a label two), every location id resolved to its index through
    :func:`_id_table`. Returns (location references, labels, frames in all, frames of the
    deepest sample), or -1s for anything malformed, a value count other than ``ntypes``
    or an unknown location id."""
    loc_offsets[0] = 0
    li = 0
    vi = 0
    bi = 0
    total = 0
    deepest = 0
    for s in range(len(starts)):
        pos = starts[s]
        end = ends[s]
        depth = 0
        while pos < end:
            field, wire, pos = _field(buf, pos, end)
            if pos < 0:
                return -1, -1, -1, -1
            if field == 1 or field == 2:
                if wire == 2:  # packed: every varint of the payload (none when it is empty)
                    ln, pos = _varint(buf, pos, end)
                    if pos < 0 or ln > np.uint64(end - pos):
                        return -1, -1, -1, -1
                    stop = pos + np.int64(ln)
                    limit = stop
                elif wire == 0:  # one varint
                    stop = pos + 1
                    limit = end
                else:
                    return -1, -1, -1, -1
                while pos < stop:
                    v = np.uint64(0)
                    shift = np.uint64(0)
                    while True:
                        if pos >= limit:
                            return -1, -1, -1, -1
                        byte = buf[pos]
                        pos += 1
                        v |= np.uint64(byte & 0x7F) << shift
                        if byte < 0x80:
                            break
                        shift += np.uint64(7)
                        if shift >= np.uint64(70):
                            return -1, -1, -1, -1
                    if field == 1:
                        i = _find(ids, table, id_shift, v)
                        if i < 0:
                            return -1, -1, -1, -1
                        loc_index[li] = i
                        depth += lf_off[i + 1] - lf_off[i]
                        li += 1
                    else:
                        if vi >= (s + 1) * ntypes:
                            return -1, -1, -1, -1
                        values[vi] = np.int64(v)
                        vi += 1
            elif field == 3:
                if wire != 2:
                    return -1, -1, -1, -1
                ln, pos = _varint(buf, pos, end)
                if pos < 0 or ln > np.uint64(end - pos):
                    return -1, -1, -1, -1
                stop = pos + np.int64(ln)
                owner[bi] = s
                if not _varint_row(buf, pos, stop, lab, bi):  # key, str, num, num_unit
                    return -1, -1, -1, -1
                bi += 1
                pos = stop
            else:
                pos = _skip(buf, pos, end, wire, field)
                if pos < 0:
                    return -1, -1, -1, -1
        if vi != (s + 1) * ntypes:
            return -1, -1, -1, -1
        loc_offsets[s + 1] = li
        total += depth
        deepest = max(deepest, depth)
    return li, bi, total, deepest


def scan_samples(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, ntypes: int, ids: np.ndarray, lf_off: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int] | None:
    """Decode the sample messages at ``buf[starts[i]:ends[i]]`` (module contract), every
    location id resolved against the location table's ``ids`` (location ``i`` has
    ``lf_off[i + 1] - lf_off[i]`` frames): ``(loc_offsets, loc_index, values (S, ntypes),
    label_owner, labels (L, 4), frames in all, frames of the deepest sample)``, or None
    (also for an unknown location id)."""
    n = len(starts)
    nbytes = int((ends - starts).sum())
    ids = np.ascontiguousarray(ids, dtype=np.uint64)
    loc_offsets, loc_index = np.empty(n + 1, dtype=np.int64), np.empty(nbytes, dtype=np.int64)
    values, owner = np.empty(n * ntypes, dtype=np.int64), np.empty(nbytes // 2, dtype=np.int64)
    lab = np.empty((nbytes // 2, 4), dtype=np.int64)
    table, id_shift = _id_table(ids)
    got = _fill(buf, starts, ends, ntypes, ids, table, id_shift, lf_off, loc_offsets, loc_index, values, owner, lab)
    nloc, nlab, total, deepest = got
    if nloc < 0:
        return None
    return loc_offsets, loc_index[:nloc], values.reshape(n, ntypes), owner[:nlab], lab[:nlab], total, deepest


@njit(cache=True, nogil=True, inline="always")
def _stack_hash(elems, lo, hi, extra) -> np.uint64:
    h = np.uint64(extra) * _GOLDEN + np.uint64(hi - lo)
    for i in range(lo, hi):
        h = (h ^ np.uint64(elems[i])) * _M1
        h ^= h >> np.uint64(29)
    return h


@njit(cache=True, nogil=True)
def _group(offsets, elems, extra):
    """Segments numbered by distinct (elements, ``extra``) in order of first appearance:
    ``(first segment of each group, group of every segment)``. Equal hashes are confirmed
    element by element."""
    n = len(offsets) - 1
    table, shift, mask = open_table(n)
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    groups = 0
    for s in range(n):
        lo, hi = offsets[s], offsets[s + 1]
        slot = np.int64((_stack_hash(elems, lo, hi, extra[s]) * _GOLDEN) >> shift)
        while True:
            g = table[slot]
            if g < 0:
                table[slot] = groups
                first[groups] = s
                inverse[s] = groups
                groups += 1
                break
            f = first[g]
            fl = offsets[f]
            same = offsets[f + 1] - fl == hi - lo and extra[f] == extra[s]
            if same:
                for i in range(hi - lo):
                    if elems[fl + i] != elems[lo + i]:
                        same = False
                        break
            if same:
                inverse[s] = g
                break
            slot = (slot + 1) & mask
    return first[:groups], inverse


@njit(cache=True, nogil=True)
def _gather(offsets, elems, values, first, inverse):
    g = len(first)
    new_off = np.zeros(g + 1, dtype=np.int64)
    for i in range(g):
        f = first[i]
        new_off[i + 1] = new_off[i] + offsets[f + 1] - offsets[f]
    new_elems = np.empty(new_off[g], dtype=elems.dtype)
    for i in range(g):
        f = first[i]
        new_elems[new_off[i] : new_off[i + 1]] = elems[offsets[f] : offsets[f + 1]]
    summed = np.zeros((g, values.shape[1]), dtype=np.int64)
    counts = np.zeros(g, dtype=np.int64)
    for s in range(len(inverse)):
        k = inverse[s]
        counts[k] += 1
        for j in range(values.shape[1]):
            summed[k, j] += values[s, j]
    return new_off, new_elems, summed, counts


def dedupe_stacks(
    offsets: np.ndarray, elems: np.ndarray, extra: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples summed per distinct (location sequence, ``extra``): ``(offsets, elems,
    summed values, samples per group, first sample of each group)``."""
    first, inverse = _group(offsets, elems, np.ascontiguousarray(extra, dtype=np.int64))
    new_off, new_elems, summed, counts = _gather(offsets, elems, np.ascontiguousarray(values, dtype=np.int64), first, inverse)
    return new_off, new_elems, summed, counts, first


@njit(cache=True, nogil=True)
def _records(buf, starts, ends, out) -> bool:
    """The messages at ``starts``/``ends`` through :func:`_varint_row` into the rows of
    ``out`` (0 where a field is absent)."""
    for i in range(len(starts)):
        if not _varint_row(buf, starts[i], ends[i], out, i):
            return False
    return True


def scan_records(buf: np.ndarray, spans: Spans, width: int) -> np.ndarray | None:
    """The messages at ``spans`` as uint64 rows of their varint fields ``1 .. width``
    (``Function``: id, name, system_name, filename, start_line); None when a message is
    malformed or one of those fields is not a varint."""
    out = np.empty((len(spans[0]), width), dtype=np.uint64)
    return out if _records(buf, spans[0], spans[1], out) else None


@njit(cache=True, nogil=True)
def _locations(buf, starts, ends, head, line_offsets, lines) -> int:
    """``Location`` messages: ``head[i]`` = (id, mapping_id, address, is_folded) and their
    ``Line`` messages (function_id, line, column) in wire order into ``lines`` (room for
    all). Returns the number of lines, or -1 when malformed."""
    nl = 0
    for i in range(len(starts)):
        line_offsets[i] = nl
        pos = starts[i]
        end = ends[i]
        h0 = h1 = h2 = h3 = np.uint64(0)
        while pos < end:
            field, wire, pos = _field(buf, pos, end)
            if pos < 0:
                return -1
            if field == 4:
                if wire != 2:
                    return -1
                ln, pos = _varint(buf, pos, end)
                if pos < 0 or ln > np.uint64(end - pos):
                    return -1
                stop = pos + np.int64(ln)
                if not _varint_row(buf, pos, stop, lines, nl):  # function_id, line, column
                    return -1
                nl += 1
                pos = stop
            elif 1 <= field <= 5:
                if wire != 0:
                    return -1
                v, pos = _varint(buf, pos, end)
                if pos < 0:
                    return -1
                if field == 1:
                    h0 = v
                elif field == 2:
                    h1 = v
                elif field == 3:
                    h2 = v
                else:
                    h3 = v
            else:
                pos = _skip(buf, pos, end, wire, field)
                if pos < 0:
                    return -1
        head[i, 0], head[i, 1], head[i, 2], head[i, 3] = h0, h1, h2, h3
    line_offsets[len(starts)] = nl
    return nl


def scan_locations(buf: np.ndarray, spans: Spans) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The ``Location`` messages at ``spans``: ``(head (L, 4): id, mapping_id, address,
    is_folded; line_offsets (L+1); lines (N, 3): function_id, line, column)``, lines in
    wire order (innermost first); None when malformed."""
    starts, ends = spans
    n = len(starts)
    head = np.empty((n, 4), dtype=np.uint64)
    # a Line message takes two bytes at least: room for every one
    line_offsets, lines = np.empty(n + 1, dtype=np.int64), np.empty((int((ends - starts).sum()) // 2, 3), dtype=np.uint64)
    nl = _locations(buf, starts, ends, head, line_offsets, lines)
    return None if nl < 0 else (head, line_offsets, lines[:nl])


@njit(cache=True, nogil=True, inline="always")
def _key_hash(a: np.int64, b: np.int64, c: np.int64) -> np.uint64:
    h = (np.uint64(a) * _GOLDEN) ^ np.uint64(b)
    h = (h * _M1) ^ np.uint64(c)
    return (h ^ (h >> np.uint64(31))) * _GOLDEN


@njit(cache=True, nogil=True)
def _resolve(functions, canon, empty, offsets, lines, keep_lines, frames, keys) -> int:
    """See :func:`resolve_frames`; returns the number of distinct frames, -1 to decline."""
    nf = len(functions)
    nstr = len(canon)
    # function id -> row (ids all zero: positional)
    positional = nf > 0
    for r in range(nf):
        if functions[r, 0] != 0:
            positional = False
        for k in range(1, 4):
            if functions[r, k] >= np.uint64(nstr):
                return -1
    frow, fshift, fmask = open_table(nf)
    for r in range(nf):
        fid = np.uint64(r + 1) if positional else functions[r, 0]
        if fid == 0:
            return -1
        h = np.int64((fid * _GOLDEN) >> fshift)
        while frow[h] >= 0:
            if (np.uint64(frow[h] + 1) if positional else functions[frow[h], 0]) == fid:
                return -1  # duplicate id
            h = (h + 1) & fmask
        frow[h] = r
    # frames interned by (name, file, line) text, first appearance, locations root first
    slot_rank, kshift, kmask = open_table(len(lines))
    nk = 0
    out = 0
    for i in range(len(offsets) - 1):
        for j in range(offsets[i + 1] - 1, offsets[i] - 1, -1):  # wire order is innermost first
            fid = lines[j, 0]
            if fid == 0:
                return -1  # an address frame: the caller's loop names it
            h = np.int64((fid * _GOLDEN) >> fshift)
            r = -1
            while frow[h] >= 0:
                c = frow[h]
                if (np.uint64(c + 1) if positional else functions[c, 0]) == fid:
                    r = c
                    break
                h = (h + 1) & fmask
            if r < 0:
                return -1  # unknown function id
            name = np.int64(functions[r, 1])
            if empty[name]:
                name = np.int64(functions[r, 2])
            if empty[name]:
                return -1  # a nameless function: named from its mapping by the loop
            name = canon[name]
            file = canon[np.int64(functions[r, 3])]
            line = np.int64(lines[j, 1]) if keep_lines else np.int64(0)
            h = np.int64(_key_hash(name, file, line) >> kshift)
            while True:
                k = slot_rank[h]
                if k < 0:
                    slot_rank[h] = nk
                    keys[nk, 0] = name
                    keys[nk, 1] = file
                    keys[nk, 2] = line
                    k = nk
                    nk += 1
                    break
                if keys[k, 0] == name and keys[k, 1] == file and keys[k, 2] == line:
                    break
                h = (h + 1) & kmask
            frames[out] = k
            out += 1
    return nk


def resolve_frames(
    functions: np.ndarray, canon: np.ndarray, empty: np.ndarray, offsets: np.ndarray, lines: np.ndarray, keep_lines: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Frames of every location (root first): ``(frames, keys)`` where ``frames`` indexes
    ``keys`` rows ``(name string, file string, line)`` (line 0 unless ``keep_lines``),
    interned in first appearance. A function's name is its ``name``, else its
    ``system_name``; strings are mapped through ``canon`` (one index per distinct text);
    ``empty`` marks empty strings. None (the caller's loop then decides) for a bad string
    index, a zero or duplicate function id, an unknown function id, a line without a
    function, or a function without any name."""
    frames = np.empty(len(lines), dtype=np.int64)
    keys = np.empty((len(lines), 3), dtype=np.int64)
    nk = _resolve(functions, canon, empty, offsets, lines, keep_lines, frames, keys)
    return None if nk < 0 else (frames, keys[:nk])


@njit(cache=True, nogil=True)
def _all_known(values, ids, table, shift) -> bool:
    for i in range(len(values)):
        if values[i] != 0 and _find(ids, table, shift, values[i]) < 0:
            return False
    return True


def all_known(values: np.ndarray, ids: np.ndarray) -> bool:
    """Every non-zero value (uint64) is one of ``ids`` (distinct, uint64)."""
    ids = np.ascontiguousarray(ids, dtype=np.uint64)
    table, shift = _id_table(ids)
    return bool(_all_known(np.ascontiguousarray(values, dtype=np.uint64), ids, table, shift))


@njit(cache=True, nogil=True)
def _id_table(ids: np.ndarray) -> tuple[np.ndarray, np.uint64]:
    """Open-addressing table of the indices of ``ids`` (distinct) and its hash shift, or
    an empty table when the ids are ``1 .. L`` in order (then an id's index is the id - 1)."""
    dense = True
    for i in range(len(ids)):
        if ids[i] != np.uint64(i + 1):
            dense = False
            break
    if dense:
        return np.empty(0, dtype=np.int64), np.uint64(0)
    table, shift, mask = open_table(len(ids))
    for i in range(len(ids)):
        h = np.int64((ids[i] * _GOLDEN) >> shift)
        while table[h] >= 0:
            h = (h + 1) & mask
        table[h] = i
    return table, shift


@njit(cache=True, nogil=True, inline="always")
def _find(ids: np.ndarray, table: np.ndarray, shift: np.uint64, r: np.uint64) -> np.int64:
    """Index of id ``r`` through :func:`_id_table`'s ``table`` and ``shift``; -1 when
    unknown."""
    if len(table) == 0:
        return np.int64(r) - 1 if np.uint64(0) < r <= np.uint64(len(ids)) else np.int64(-1)
    h = np.int64((r * _GOLDEN) >> shift)
    mask = len(table) - 1
    while True:
        i = table[h]
        if i < 0 or ids[i] == r:
            return i
        h = (h + 1) & mask


@njit(cache=True, nogil=True)
def _label_pairs(owner, lab, nstr, out_owner, key, vid, pairs):
    """The kept labels' owner, key and value id (module contract of :func:`label_values`),
    the distinct (num, unit) pairs numbered in first appearance. Returns (kept labels,
    pairs, whether ``owner`` is non-decreasing)."""
    table, shift, mask = open_table(len(owner))
    n = 0
    k = 0
    ordered = True
    for i in range(len(owner)):
        if i and owner[i] < owner[i - 1]:
            ordered = False
        sv, num, unit = lab[i, 1], lab[i, 2], lab[i, 3]
        if sv != 0:
            v = sv
        elif num != 0 or unit != 0:
            h = np.int64(((np.uint64(num) * _GOLDEN) ^ np.uint64(unit)) * _GOLDEN >> shift)
            while True:
                j = table[h]
                if j < 0:
                    table[h] = k
                    pairs[k, 0], pairs[k, 1] = num, unit
                    v = nstr + k
                    k += 1
                    break
                if pairs[j, 0] == num and pairs[j, 1] == unit:
                    v = nstr + j
                    break
                h = (h + 1) & mask
        else:
            continue
        out_owner[n] = owner[i]
        key[n] = lab[i, 0]
        vid[n] = v
        n += 1
    return n, k, ordered


@njit(cache=True, nogil=True)
def _sorted_spans(owner, code) -> np.ndarray:
    """Each labelled sample's span of ``code`` (labels in ``owner`` order) sorted, its
    repeated codes dropped and the spans packed to the front of ``code`` and ``owner``:
    then equal label sets are equal spans. Returns the spans' offsets."""
    n = len(code)
    starts = np.empty(n + 1, dtype=np.int64)
    m = 0
    w = 0
    i = 0
    while i < n:
        j = i
        while j < n and owner[j] == owner[i]:
            j += 1
        for a in range(i + 1, j):  # insertion sort: a sample has few labels
            c = code[a]
            b = a - 1
            while b >= i and code[b] > c:
                code[b + 1] = code[b]
                b -= 1
            code[b + 1] = c
        starts[m] = w
        m += 1
        for a in range(i, j):
            if a == i or code[a] != code[a - 1]:
                code[w] = code[a]
                owner[w] = owner[i]
                w += 1
        i = j
    starts[m] = w
    return starts[: m + 1]


def label_values(owner: np.ndarray, lab: np.ndarray, nstr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The pairs that labels stand for. ``owner`` is the sample of every label (any order)
    and ``lab`` its (key, str, num, num_unit) row, string indices already checked. A label
    with a ``str`` is the pair (key, str); else one with a ``num`` or ``num_unit`` is (key,
    value id ``nstr + k``) with ``pairs[k]`` = (num, unit) (distinct); others are ignored.
    Returns ``(owner, key, value id, pairs)`` of the kept labels, ordered by owner, or None
    when no label is kept."""
    n = len(owner)
    out_owner, key, vid = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    pairs = np.empty((n, 2), dtype=np.int64)
    kept, npairs, ordered = _label_pairs(np.ascontiguousarray(owner, dtype=np.int64), np.ascontiguousarray(lab, dtype=np.int64), nstr, out_owner, key, vid, pairs)
    if kept == 0:
        return None
    out_owner, key, vid = out_owner[:kept], key[:kept], vid[:kept]
    if not ordered:
        order = np.argsort(out_owner, kind="stable")
        out_owner, key, vid = out_owner[order], key[order], vid[order]
    return out_owner, key, vid, pairs[:npairs]


@njit(cache=True, nogil=True)
def _set_codes(spans, code, first, set_off, set_codes) -> None:
    at = 0
    for g in range(len(first)):
        set_off[g] = at
        for i in range(spans[first[g]], spans[first[g] + 1]):
            set_codes[at] = code[i]
            at += 1
    set_off[len(first)] = at


def label_sets(owner: np.ndarray, code: np.ndarray, nsamples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples grouped by label set: ``owner`` (non-decreasing) is the sample of every
    label and ``code`` the pair it stands for. Returns ``(label_index, set_off,
    set_codes)``: ``label_index[s]`` = set + 1 (0: none) and set ``g``'s pairs are
    ``set_codes[set_off[g]:set_off[g + 1]]`` (sorted, distinct: a pair repeated within a
    sample counts once)."""
    owner, code = owner.astype(np.int64), code.astype(np.int64)  # copies: packed in place below
    spans = _sorted_spans(owner, code)
    first, inverse = _group(spans, code, np.zeros(len(spans) - 1, dtype=np.int64))
    label_index = np.zeros(nsamples, dtype=np.int64)
    label_index[owner[spans[:-1]]] = inverse + 1
    set_off, set_codes = np.empty(len(first) + 1, dtype=np.int64), np.empty(spans[-1], dtype=np.int64)
    _set_codes(spans, code, first, set_off, set_codes)
    return label_index, set_off, set_codes[: set_off[-1]]
