"""Compiled (numba) scan of an OTLP ``ExportTraceServiceRequest``: spans to flat columns.

Contract of :func:`scan`: ``buf`` is a request's protobuf bytes that upb has already parsed
(so the wire format and every string's UTF-8 are valid). The scan walks resource spans →
scope spans → spans in wire order and returns :class:`Scanned` (flat arrays, no Python
object per span), or ``None`` — the caller then takes the exact, slower path
(:func:`fleetprof.traces.otlp.to_chunk_exact`), which names the error or handles the
unusual encoding — whenever the request

* breaks a :class:`~fleetprof.traces.otlp.SpanLimits` count (spans per request;
  attributes per resource, span, event or link; events or links per span),
* has a malformed id (trace id not 16 bytes or all zero, span id not 8 bytes or zero,
  parent id neither empty nor 8 bytes, link ids not 16 / 8 bytes),
* or is encoded in a way the scan does not follow: a known field with another wire type,
  a group, a ``status`` or attribute ``value`` given more than once, an unknown field in
  an attribute or its value.

What it extracts per span: the ids as ``u64`` halves (big-endian), name, kind, start,
end, status code and message, resource and scope ordinal, the byte lengths of its longest
attribute key and its longest string attribute value (for the caller's length limits),
and ``extra``: the span's bytes
without the column fields (1, 2, 4, 5, 6, 7, 8, 15) and without its scalar attributes —
every other field (trace state, flags, events, links, dropped counts, non-scalar
attributes, unknown fields) stays, in wire order. Per attribute: its type letter (``s``,
``i``, ``b``, ``d`` for string, int, bool, double values whose key has no ``=`` and
that have no ``key_strindex``; ``x`` otherwise, kept in ``extra``) and, for scalars, the tag text ``key=value`` (integers in
decimal, booleans ``true``/``false``; doubles as ``key=`` with the value's bits in
``double_bits``, rendered by the caller with Python's ``repr``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetprof.formats.pprof_scan import _varint  # the protobuf varint kernel, inlined
from fleetprof.numba_cache import njit

T_STR, T_INT, T_BOOL, T_DOUBLE, T_OTHER = 115, 105, 98, 100, 120  # "s", "i", "b", "d", "x"


@dataclass
class Scanned:
    """The flat columns of one request (``n`` spans, ``m`` scalar attributes)."""

    ids: np.ndarray
    """(4, n) uint64: trace id high and low halves, span id, parent span id (0: none)."""
    num: np.ndarray
    """(9, n) int64: kind, start, end (as uint64 bits), status code, resource, scope, scalar
    attributes, longest attribute key, longest string attribute value (bytes)."""
    strs: np.ndarray
    """(4, n) int64: name offset, name length, status message offset, length (into ``buf``)."""
    extra_data: np.ndarray
    extra_offsets: np.ndarray
    types_data: np.ndarray
    types_offsets: np.ndarray
    tag_data: np.ndarray
    tag_offsets: np.ndarray
    double_at: np.ndarray
    """Tag numbers (0..m) of double attributes."""
    double_bits: np.ndarray


@njit(cache=True, nogil=True, inline="always")
def _field(buf: np.ndarray, pos: int, end: int) -> tuple[int, int, int, int, np.uint64]:
    """(field number, wire type, payload start, payload end, varint/fixed value) of the
    field at ``pos``; payload start -1 when malformed or a group."""
    tag, pos = _varint(buf, pos, end)
    if pos < 0:
        return 0, 0, -1, -1, np.uint64(0)
    f = np.int64(tag >> np.uint64(3))
    w = np.int64(tag & np.uint64(7))
    if w == 0:
        v, p2 = _varint(buf, pos, end)
        return f, w, pos, p2, v
    if w == 1:
        if pos + 8 > end:
            return 0, 0, -1, -1, np.uint64(0)
        v = np.uint64(0)
        for i in range(8):
            v |= np.uint64(buf[pos + i]) << np.uint64(8 * i)
        return f, w, pos, pos + 8, v
    if w == 5:
        if pos + 4 > end:
            return 0, 0, -1, -1, np.uint64(0)
        return f, w, pos, pos + 4, np.uint64(0)
    if w == 2:
        ln, p2 = _varint(buf, pos, end)
        if p2 < 0 or ln > np.uint64(end - p2):
            return 0, 0, -1, -1, np.uint64(0)
        return f, w, p2, p2 + np.int64(ln), ln
    return 0, 0, -1, -1, np.uint64(0)


@njit(cache=True, nogil=True, inline="always")
def _be64(buf: np.ndarray, pos: int) -> np.uint64:
    v = np.uint64(0)
    for i in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[pos + i])
    return v


@njit(cache=True, nogil=True)
def _count_attrs(buf: np.ndarray, pos: int, end: int, field_no: int) -> int:
    """Occurrences of ``field_no`` (length-delimited) in the message ``buf[pos:end]``; -1 if malformed."""
    n = 0
    while pos < end:
        f, w, a, b, _ = _field(buf, pos, end)
        if a < 0:
            return -1
        if f == field_no:
            if w != 2:
                return -1
            n += 1
        pos = b
    return n


@njit(cache=True, nogil=True)
def _attr(buf: np.ndarray, pos: int, end: int) -> tuple[int, int, int, int, int, np.uint64]:
    """(type letter, key start, key end, value start, value end, value bits) of a
    ``KeyValue``; type -1 when the scan declines it. The value range is that of a string
    value (also of an ``x`` attribute holding one), else empty."""
    ks, ke = 0, 0
    vtype = T_OTHER
    vs, ve = 0, 0
    bits = np.uint64(0)
    nvalue = 0
    other = False
    while pos < end:
        f, w, a, b, v = _field(buf, pos, end)
        if a < 0:
            return -1, 0, 0, 0, 0, bits
        if f == 1:
            if w != 2:
                return -1, 0, 0, 0, 0, bits
            ks, ke = a, b
        elif f == 2:
            if w != 2:
                return -1, 0, 0, 0, 0, bits
            nvalue += 1
            vtype = T_OTHER
            p = a
            while p < b:
                g, gw, ga, gb, gv = _field(buf, p, b)
                if ga < 0:
                    return -1, 0, 0, 0, 0, bits
                if g == 1 and gw == 2:
                    vtype, vs, ve = T_STR, ga, gb
                elif g == 2 and gw == 0:
                    vtype, bits = T_BOOL, gv
                elif g == 3 and gw == 0:
                    vtype, bits = T_INT, gv
                elif g == 4 and gw == 1:
                    vtype, bits = T_DOUBLE, gv
                elif (5 <= g <= 7 and gw == 2) or (g == 8 and gw == 0):
                    vtype = T_OTHER
                else:
                    return -1, 0, 0, 0, 0, bits
                p = gb
        elif f == 3 and w == 0:
            other = True
        else:
            return -1, 0, 0, 0, 0, bits
        pos = b
    if nvalue > 1:
        return -1, 0, 0, 0, 0, bits
    if vtype != T_STR:
        vs, ve = 0, 0
    if nvalue == 0 or other:
        return T_OTHER, ks, ke, vs, ve, bits
    for i in range(ks, ke):
        if buf[i] == 61:  # "="
            return T_OTHER, ks, ke, vs, ve, bits
    return vtype, ks, ke, vs, ve, bits


@njit(cache=True, nogil=True)
def _itoa(out: np.ndarray, pos: int, v: np.int64) -> int:
    if v == 0:
        out[pos] = 48
        return pos + 1
    neg = v < 0
    u = np.uint64(-(v + 1)) + np.uint64(1) if neg else np.uint64(v)
    tmp = np.empty(20, np.uint8)
    k = 0
    while u > 0:
        tmp[k] = 48 + np.uint8(u % np.uint64(10))
        u //= np.uint64(10)
        k += 1
    if neg:
        out[pos] = 45
        pos += 1
    for i in range(k):
        out[pos + i] = tmp[k - 1 - i]
    return pos + k


@njit(cache=True, nogil=True)
def _walk(buf: np.ndarray, fill: bool, limits: np.ndarray, n_spans: int, n_tags: int, n_attrs: int,
          ids: np.ndarray, num: np.ndarray, strs: np.ndarray, extra: np.ndarray, extra_off: np.ndarray,
          types: np.ndarray, types_off: np.ndarray, tags: np.ndarray, tags_off: np.ndarray,
          dbl_at: np.ndarray, dbl_bits: np.ndarray) -> tuple[int, int, int, int, int, int]:
    """One pass over the request; counts only (``fill`` false) or fills the arrays.
    Returns (status, spans, scalar attributes, attributes, tag bytes, doubles); status 0 = ok."""
    max_spans, max_attrs, max_events, max_links = limits[0], limits[1], limits[2], limits[3]
    end = len(buf)
    pos = 0
    ns = 0
    nt = 0
    na = 0
    tb = 0
    nd = 0
    xb = 0
    res_no = -1
    scope_no = -1
    while pos < end:
        f, w, rs_a, rs_b, _ = _field(buf, pos, end)
        if rs_a < 0 or (f == 1 and w != 2):
            return 1, 0, 0, 0, 0, 0
        pos = rs_b
        if f != 1:
            continue
        res_no += 1
        p = rs_a
        while p < rs_b:
            g, gw, ss_a, ss_b, _ = _field(buf, p, rs_b)
            if ss_a < 0:
                return 1, 0, 0, 0, 0, 0
            p = ss_b
            if g == 1:
                if gw != 2:
                    return 1, 0, 0, 0, 0, 0
                if _count_attrs(buf, ss_a, ss_b, 1) > max_attrs:
                    return 2, 0, 0, 0, 0, 0
                continue
            if g != 2:
                continue
            if gw != 2:
                return 1, 0, 0, 0, 0, 0
            scope_no += 1
            q = ss_a
            while q < ss_b:
                h, hw, sp_a, sp_b, _ = _field(buf, q, ss_b)
                if sp_a < 0:
                    return 1, 0, 0, 0, 0, 0
                q = sp_b
                if h != 2:
                    continue
                if hw != 2:
                    return 1, 0, 0, 0, 0, 0
                if ns >= max_spans:
                    return 2, 0, 0, 0, 0, 0
                # one span
                tid_a, tid_b, sid_a, sid_b, pid_a, pid_b = 0, 0, 0, 0, 0, 0
                name_a, name_b, msg_a, msg_b = 0, 0, 0, 0
                kind = np.uint64(0)
                start = np.uint64(0)
                stop = np.uint64(0)
                code = np.uint64(0)
                n_status = 0
                n_ev = 0
                n_ln = 0
                n_at = 0
                n_sc = 0
                long_key = 0
                long_value = 0
                if fill:
                    extra_off[ns] = xb
                    types_off[ns] = na
                r = sp_a
                while r < sp_b:
                    k, kw, a, b, v = _field(buf, r, sp_b)
                    if a < 0:
                        return 1, 0, 0, 0, 0, 0
                    keep = True
                    if k == 1 or k == 2 or k == 4 or k == 5:
                        if kw != 2:
                            return 1, 0, 0, 0, 0, 0
                        keep = False
                        if k == 1:
                            tid_a, tid_b = a, b
                        elif k == 2:
                            sid_a, sid_b = a, b
                        elif k == 4:
                            pid_a, pid_b = a, b
                        else:
                            name_a, name_b = a, b
                    elif k == 6:
                        if kw != 0:
                            return 1, 0, 0, 0, 0, 0
                        keep = False
                        kind = v
                    elif k == 7 or k == 8:
                        if kw != 1:
                            return 1, 0, 0, 0, 0, 0
                        keep = False
                        if k == 7:
                            start = v
                        else:
                            stop = v
                    elif k == 15:
                        if kw != 2:
                            return 1, 0, 0, 0, 0, 0
                        keep = False
                        n_status += 1
                        s = a
                        while s < b:
                            u, uw, ua, ub, uv = _field(buf, s, b)
                            if ua < 0:
                                return 1, 0, 0, 0, 0, 0
                            if u == 2:
                                if uw != 2:
                                    return 1, 0, 0, 0, 0, 0
                                msg_a, msg_b = ua, ub
                            elif u == 3:
                                if uw != 0:
                                    return 1, 0, 0, 0, 0, 0
                                code = uv
                            s = ub
                    elif k == 9:
                        if kw != 2:
                            return 1, 0, 0, 0, 0, 0
                        n_at += 1
                        t, ks, ke, vs, ve, bits = _attr(buf, a, b)
                        if t < 0:
                            return 1, 0, 0, 0, 0, 0
                        long_key = max(long_key, ke - ks)
                        long_value = max(long_value, ve - vs)
                        if fill:
                            types[na] = t
                        na += 1
                        if t != T_OTHER:
                            keep = False
                            n_sc += 1
                            if fill:
                                tags_off[nt] = tb
                                for i in range(ks, ke):
                                    tags[tb] = buf[i]
                                    tb += 1
                                tags[tb] = 61
                                tb += 1
                                if t == T_STR:
                                    for i in range(vs, ve):
                                        tags[tb] = buf[i]
                                        tb += 1
                                elif t == T_INT:
                                    tb = _itoa(tags, tb, np.int64(bits))
                                elif t == T_BOOL:
                                    if bits != 0:
                                        tags[tb:tb + 4] = np.array([116, 114, 117, 101], np.uint8)
                                        tb += 4
                                    else:
                                        tags[tb:tb + 5] = np.array([102, 97, 108, 115, 101], np.uint8)
                                        tb += 5
                                else:
                                    dbl_at[nd] = nt
                                    dbl_bits[nd] = bits
                            else:
                                tb += (ke - ks) + 1 + max(ve - vs, 20)
                            if t == T_DOUBLE:
                                nd += 1
                            nt += 1
                    elif k == 11:
                        if kw != 2:
                            return 1, 0, 0, 0, 0, 0
                        n_ev += 1
                        if _count_attrs(buf, a, b, 3) > max_attrs:
                            return 2, 0, 0, 0, 0, 0
                    elif k == 13:
                        if kw != 2:
                            return 1, 0, 0, 0, 0, 0
                        n_ln += 1
                        if _count_attrs(buf, a, b, 4) > max_attrs:
                            return 2, 0, 0, 0, 0, 0
                        lt, ls = -1, -1
                        s = a
                        while s < b:
                            u, uw, ua, ub, _uv = _field(buf, s, b)
                            if ua < 0:
                                return 1, 0, 0, 0, 0, 0
                            if u == 1 and uw == 2:
                                lt = ub - ua
                            elif u == 2 and uw == 2:
                                ls = ub - ua
                            s = ub
                        if lt != 16 or ls != 8:
                            return 3, 0, 0, 0, 0, 0
                    elif kw == 3 or kw == 4:
                        return 1, 0, 0, 0, 0, 0
                    if keep:
                        if fill:
                            for i in range(r, b):
                                extra[xb + i - r] = buf[i]
                        xb += b - r
                    r = b
                if n_at > max_attrs or n_ev > max_events or n_ln > max_links:
                    return 2, 0, 0, 0, 0, 0
                if n_status > 1:
                    return 1, 0, 0, 0, 0, 0
                if tid_b - tid_a != 16 or sid_b - sid_a != 8 or (pid_b - pid_a != 0 and pid_b - pid_a != 8):
                    return 3, 0, 0, 0, 0, 0
                hi = _be64(buf, tid_a)
                lo = _be64(buf, tid_a + 8)
                sid = _be64(buf, sid_a)
                if (hi == 0 and lo == 0) or sid == 0:
                    return 3, 0, 0, 0, 0, 0
                if fill:
                    ids[0, ns] = hi
                    ids[1, ns] = lo
                    ids[2, ns] = sid
                    ids[3, ns] = _be64(buf, pid_a) if pid_b - pid_a == 8 else np.uint64(0)
                    num[0, ns] = np.int64(kind & np.uint64(0xFFFFFFFF))
                    num[1, ns] = np.int64(start)
                    num[2, ns] = np.int64(stop)
                    num[3, ns] = np.int64(code & np.uint64(0xFFFFFFFF))
                    num[4, ns] = res_no
                    num[5, ns] = scope_no
                    num[6, ns] = n_sc
                    num[7, ns] = long_key
                    num[8, ns] = long_value
                    strs[0, ns] = name_a
                    strs[1, ns] = name_b - name_a
                    strs[2, ns] = msg_a
                    strs[3, ns] = msg_b - msg_a
                ns += 1
    if fill:
        extra_off[ns] = xb
        types_off[ns] = na
        tags_off[nt] = tb
    return 0, ns, nt, na, tb, nd


def scan(buf: bytes, max_spans: int, max_attributes: int, max_events: int, max_links: int) -> Scanned | None:
    """The flat columns of the request in ``buf`` (see the module docstring), or ``None``."""
    a = np.frombuffer(buf, dtype=np.uint8)
    limits = np.asarray([max_spans, max_attributes, max_events, max_links], dtype=np.int64)
    e64 = np.zeros(0, np.int64)
    e8 = np.zeros(0, np.uint8)
    status, ns, nt, na, tb, nd = _walk(a, False, limits, 0, 0, 0, np.zeros((4, 0), np.uint64), np.zeros((9, 0), np.int64),
                                       np.zeros((4, 0), np.int64), e8, e64, e8, e64, e8, e64, e64, np.zeros(0, np.uint64))
    if status != 0:
        return None
    ids = np.empty((4, ns), np.uint64)
    num = np.empty((9, ns), np.int64)
    strs = np.empty((4, ns), np.int64)
    extra = np.empty(len(a), np.uint8)
    extra_off = np.empty(ns + 1, np.int64)
    types = np.empty(na, np.uint8)
    types_off = np.empty(ns + 1, np.int64)
    tags = np.empty(tb, np.uint8)
    tags_off = np.empty(nt + 1, np.int64)
    dbl_at = np.empty(nd, np.int64)
    dbl_bits = np.empty(nd, np.uint64)
    status, ns2, nt2, _, tb2, _ = _walk(a, True, limits, ns, nt, na, ids, num, strs, extra, extra_off, types, types_off,
                                        tags, tags_off, dbl_at, dbl_bits)
    if status != 0 or ns2 != ns or nt2 != nt:
        return None
    return Scanned(ids, num, strs, extra[:extra_off[ns]], extra_off, types, types_off, tags[:tb2], tags_off,
                   dbl_at, dbl_bits)


def warm() -> None:
    """Compile (or load) the scan on a one-span request."""
    span = (b"\x0a\x10" + bytes(range(1, 17)) + b"\x12\x08" + bytes(range(1, 9)) + b"\x2a\x01a"
            + b"\x4a\x0a\x0a\x01k\x12\x05\x0a\x03abc")
    scope = b"\x12" + bytes([len(span)]) + span
    rs = b"\x12" + bytes([len(scope)]) + scope
    got = scan(b"\x0a" + bytes([len(rs)]) + rs, 10, 10, 10, 10)
    assert got is not None and got.ids.shape == (4, 1)
