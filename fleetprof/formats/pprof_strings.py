"""pprof's string table as UTF-8 spans: what the compiled stages of :mod:`.pprof` read
instead of Python strings.

Contract (:class:`StringTable`): ``texts[i]`` is string-table entry ``i`` decoded as UTF-8
with invalid sequences replaced (U+FFFD), and ``data[starts[i]:ends[i]]`` is exactly
``texts[i].encode("utf-8")``: the bytes of the wire when they are valid UTF-8 (gathered in
one compiled pass), re-encoded otherwise. Because the spans are the texts' encodings,
byte-wise equality and order are the texts' equality and order, so :meth:`canon` and the
hashes of :mod:`fleetprof.model.hashing` (``frame_ids_utf8``, ``labels_ids_utf8``) work on
them directly. :meth:`with_numeric` appends numeric label values (``"<num> <unit>"``) as
further spans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fleetprof.model.blake2b import word8
from fleetprof.model.hashing import copy_span, decimal, open_table
from fleetprof.numba_cache import njit

_M = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def _gather(buf, starts, ends, out, new_starts) -> None:
    """Entries copied into ``out`` one after another, a NUL after each."""
    at = 0
    for i in range(len(starts)):
        new_starts[i] = at
        n = ends[i] - starts[i]
        out[at : at + n] = buf[starts[i] : ends[i]]
        out[at + n] = 0
        at += n + 1


def _encoded(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    encoded = [t.encode("utf-8") for t in texts]
    ends = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) + 1) - 1
    starts = ends - np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"\0".join(encoded) + b"\0", dtype=np.uint8)
    return data, starts, ends


@njit(cache=True, nogil=True)
def _span_hash(data, lo, hi) -> np.uint64:
    h = np.uint64(hi - lo) * _M
    p = lo
    while p + 8 <= hi:
        h = (h ^ word8(data, p)) * _M
        h ^= h >> np.uint64(29)
        p += 8
    tail = np.uint64(0)
    for k in range(hi - p):
        tail |= np.uint64(data[p + k]) << np.uint64(8 * k)
    h = (h ^ tail) * _M
    return h ^ (h >> np.uint64(32))


@njit(cache=True, nogil=True)
def _same_span(data, a_lo, a_hi, b_lo, b_hi) -> bool:
    if a_hi - a_lo != b_hi - b_lo:
        return False
    for k in range(a_hi - a_lo):
        if data[a_lo + k] != data[b_lo + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _canon(data, starts, ends, hashes, known, out) -> int:
    """``out[i]``: the first entry with the bytes of entry ``i``; returns the number of
    distinct entries. ``hashes[:known]`` are the entries' hashes already; the rest are
    computed into ``hashes``."""
    table, shift, mask = open_table(len(starts))
    distinct = 0
    for i in range(len(starts)):
        if i >= known:
            hashes[i] = _span_hash(data, starts[i], ends[i])
        h = np.int64((hashes[i] * _M) >> shift)
        while True:
            j = table[h]
            if j < 0:
                table[h] = i
                out[i] = i
                distinct += 1
                break
            if _same_span(data, starts[i], ends[i], starts[j], ends[j]):
                out[i] = j
                break
            h = (h + 1) & mask
    return distinct


@njit(cache=True, nogil=True)
def _numeric(data, starts, ends, num, unit, out, at, new_starts, new_ends) -> int:
    for k in range(len(num)):
        new_starts[k] = at
        at = decimal(num[k], out, at)
        if unit[k] != 0:
            out[at] = 32  # " "
            at = copy_span(data, starts[unit[k]], ends[unit[k]], out, at + 1)
        new_ends[k] = at
        out[at] = 0
        at += 1
    return at


@dataclass
class StringTable:
    """The decoded string table and its UTF-8 spans (module contract)."""

    texts: list[str]
    data: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    hashes: np.ndarray | None = None
    """Hashes of the first entries' bytes, once :meth:`canon` has computed them."""

    @property
    def spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.data, self.starts, self.ends

    def canon(self) -> np.ndarray:
        """One entry index per distinct text (the first), for every entry."""
        n = len(self.starts)
        out, hashes = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.uint64)
        known = 0 if self.hashes is None else len(self.hashes)
        if known:
            hashes[:known] = self.hashes
        distinct = _canon(self.data, self.starts, self.ends, hashes, known, out)
        self.hashes = hashes
        return np.arange(len(out), dtype=np.int64) if distinct == len(out) else out

    def empty(self) -> np.ndarray:
        """Mask of the empty entries."""
        return self.starts == self.ends

    def with_numeric(self, num: np.ndarray, unit: np.ndarray) -> StringTable:
        """This table followed by one entry per numeric label value ``k``: ``"<num[k]>
        <texts[unit[k]]>"`` (``"<num[k]>"`` when ``unit[k]`` is 0)."""
        num, unit = (np.asarray(a, dtype=np.int64) for a in (num, unit))
        lengths = self.ends - self.starts
        size = len(self.data) + int(lengths[unit].sum()) + 22 * len(num)
        data = np.empty(size, dtype=np.uint8)
        data[: len(self.data)] = self.data
        starts, ends = np.empty(len(num), dtype=np.int64), np.empty(len(num), dtype=np.int64)
        stop = _numeric(self.data, self.starts, self.ends, num, unit, data, len(self.data), starts, ends)
        texts = data[len(self.data) : stop - 1].tobytes().decode("utf-8").split("\0") if len(num) else []
        if len(texts) != len(num):  # a unit holds a NUL
            texts = [data[a:b].tobytes().decode("utf-8") for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        return StringTable(self.texts + texts, data, np.concatenate([self.starts, starts]), np.concatenate([self.ends, ends]), self.hashes)


def string_table(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> StringTable:
    """The string table whose entries are ``buf[starts[i]:ends[i]]`` (wire bytes)."""
    lengths = ends - starts
    out = np.empty(int(lengths.sum()) + len(starts), dtype=np.uint8)
    new_starts = np.empty(len(starts), dtype=np.int64)
    _gather(buf, starts, ends, out, new_starts)
    raw = out.tobytes()
    if np.count_nonzero(out == 0) == len(starts):  # no NUL inside an entry
        try:
            texts = raw.decode("utf-8").split("\0")[:-1]
            return StringTable(texts, out, new_starts, new_starts + lengths)
        except UnicodeDecodeError:
            # NUL never continues a UTF-8 sequence: replacing in the whole equals entry by entry
            return from_texts(raw.decode("utf-8", "replace").split("\0")[:-1])
    return from_bytes([raw[a : a + n] for a, n in zip(new_starts.tolist(), lengths.tolist(), strict=True)])


def from_bytes(entries: list[bytes]) -> StringTable:
    """The string table of these entries (any bytes)."""
    return from_texts([e.decode("utf-8", "replace") for e in entries])


def from_texts(texts: list[str]) -> StringTable:
    """The string table of already decoded entries."""
    return StringTable(texts, *_encoded(texts))
