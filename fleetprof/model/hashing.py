"""Stable 64-bit hashes for frames, call-tree nodes, label sets and series.

Contract (persisted in segments and indexes, so never change these functions):

* ``frame_id(name, file, line)`` = little-endian uint64 of ``blake2b(digest_size=8)`` over
  ``name + b"\\0" + file`` (UTF-8), with ``b"\\0" + str(line)`` appended only when ``line``
  is non-zero. A frame without a line hashes the same whatever the decoder.
* ``mix(parent, frame)`` is a splitmix64 finaliser of ``parent * GOLDEN + frame`` (mod 2**64).
  A call-tree node id is ``mix(parent node id, frame id)`` with ``ROOT_ID`` as the root.
* ``labels_id(pairs)`` hashes the sorted ``(key, value)`` pairs; ``()`` maps to ``0``.

Nothing here depends on Python's ``hash()`` or a library's unspecified hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from fleetprof.model.blake2b import digests64
from fleetprof.numba_cache import njit

ROOT_ID: int = 0
"""Node id of the call-tree root (the parent of every top-level frame)."""

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def frame_id(name: str, file: str = "", line: int = 0) -> int:
    """Stable id of one frame; see the module contract."""
    data = name.encode("utf-8", "replace") + b"\0" + file.encode("utf-8", "replace")
    if line:
        data += b"\0" + str(int(line)).encode()
    return _digest(data)


def frame_ids(names: Sequence[str], files: Sequence[str], lines: Sequence[int] | None = None) -> np.ndarray:
    """Vector of ``frame_id`` for parallel sequences (uint64; hashed in one compiled call)."""
    if lines is None:
        texts = [f"{n}\0{f}" for n, f in zip(names, files, strict=True)]
    else:
        texts = [f"{n}\0{f}\0{int(ln)}" if ln else f"{n}\0{f}" for n, f, ln in zip(names, files, lines, strict=True)]
    return _hash_texts(texts)


def _hash_texts(texts: list[str]) -> np.ndarray:
    """BLAKE2b-64 of every text's UTF-8 (errors replaced), as :func:`_digest` computes it."""
    joined = "".join(texts)
    data = joined.encode("utf-8", "replace")
    if len(data) == len(joined):  # one byte per character: character offsets are byte offsets
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    else:
        encoded = [t.encode("utf-8", "replace") for t in texts]
        data = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return _digests_of(data, lengths)


def _digests_of(data: bytes, lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return digests64(np.frombuffer(data, dtype=np.uint8), offsets)


def mix(parent: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Vectorised node-id mix of uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = parent.astype(np.uint64, copy=False) * GOLDEN + frame.astype(np.uint64, copy=False)
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def mix_scalar(parent: int, frame: int) -> int:
    """Pure-Python reference of :func:`mix` for one pair (used by tests and tools)."""
    x = (parent * int(GOLDEN) + frame) & _MASK
    x = ((x ^ (x >> 30)) * int(_M1)) & _MASK
    x = ((x ^ (x >> 27)) * int(_M2)) & _MASK
    return x ^ (x >> 31)


def labels_id(pairs: Iterable[tuple[str, str]]) -> int:
    """Stable id of a label set (order-insensitive); the empty set is ``0``."""
    data = _labels_message(pairs)
    return 0 if data is None else _digest(data) or 1


def _labels_message(pairs: Iterable[tuple[str, str]]) -> bytes | None:
    items = sorted(pairs)
    if not items:
        return None
    return b"L" + b"\xff".join(k.encode("utf-8", "replace") + b"\0" + v.encode("utf-8", "replace") for k, v in items)


def labels_ids(sets: Sequence[Sequence[tuple[str, str]]]) -> np.ndarray:
    """Vector of :func:`labels_id` (uint64; hashed in one compiled call)."""
    texts = ["L" + "\xff".join([f"{k}\0{v}" for k, v in sorted(ls)]) if ls else "" for ls in sets]
    joined = "".join(texts)
    separators = sum(max(len(ls) - 1, 0) for ls in sets)
    if joined.count("\xff") == separators and joined.replace("\xff", "").isascii():
        # every "\xff" is a separator and the rest ASCII: Latin-1 gives the UTF-8 bytes
        data = joined.encode("latin-1")
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    else:
        messages = [_labels_message(ls) or b"" for ls in sets]
        data = b"".join(messages)
        lengths = np.fromiter(map(len, messages), dtype=np.int64, count=len(messages))
    ids = _digests_of(data, lengths)
    ids[ids == 0] = 1
    ids[lengths == 0] = 0  # the empty set (every other message starts with "L")
    return ids


@njit(cache=True, nogil=True)
def open_table(entries: int) -> tuple[np.ndarray, np.uint64, int]:
    """An open-addressing table (int64 slots, -1 = empty) with room for ``entries`` at
    half load, with its multiplicative-hash shift and index mask."""
    bits = 4
    while (1 << bits) < 2 * entries + 2:
        bits += 1
    return np.full(1 << bits, -1, dtype=np.int64), np.uint64(64 - bits), (1 << bits) - 1


StringSpans = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(data, starts, ends)``: string ``i`` is the UTF-8 ``data[starts[i]:ends[i]]`` (uint8)."""


@njit(cache=True, nogil=True, inline="always")
def copy_span(data, lo, hi, out, at) -> int:
    """``data[lo:hi]`` copied to ``out[at:]``; returns the position after it."""
    out[at : at + hi - lo] = data[lo:hi]
    return at + hi - lo


@njit(cache=True, nogil=True)
def decimal(value: np.int64, out: np.ndarray, at: int) -> int:
    """``str(value)`` (ASCII) written at ``out[at:]``; returns the position after it."""
    mag = np.uint64(value) if value >= 0 else np.uint64(0) - np.uint64(value)  # no overflow at -2**63
    if value < 0:
        out[at] = 45  # "-"
        at += 1
    n = 1
    while mag >= np.uint64(10) ** np.uint64(n) and n < 20:
        n += 1
    for k in range(n - 1, -1, -1):
        out[at + k] = 48 + np.uint8(mag % np.uint64(10))
        mag //= np.uint64(10)
    return at + n


@njit(cache=True, nogil=True)
def _frame_messages(data, starts, ends, name, file, line, out, off) -> None:
    at = 0
    for i in range(len(name)):
        off[i] = at
        at = copy_span(data, starts[name[i]], ends[name[i]], out, at)
        out[at] = 0
        at = copy_span(data, starts[file[i]], ends[file[i]], out, at + 1)
        if line[i] != 0:
            out[at] = 0
            at = decimal(line[i], out, at + 1)
    off[len(name)] = at


def frame_ids_utf8(strings: StringSpans, name: np.ndarray, file: np.ndarray, line: np.ndarray | None = None) -> np.ndarray:
    """``frame_ids`` of frames given as string indices (``name[i]``, ``file[i]``, and
    ``line[i]`` or 0) into UTF-8 ``strings``: equal to ``frame_ids`` of the decoded texts,
    with no Python string per frame."""
    data, starts, ends = strings
    name, file = (np.asarray(a, dtype=np.int64) for a in (name, file))
    line = np.zeros(len(name), dtype=np.int64) if line is None else np.asarray(line, dtype=np.int64)
    lengths = ends - starts
    size = int(lengths[name].sum() + lengths[file].sum()) + 22 * len(name)
    out, off = np.empty(size, dtype=np.uint8), np.empty(len(name) + 1, dtype=np.int64)
    _frame_messages(data, starts, ends, name, file, line, out, off)
    return digests64(out, off)


@njit(cache=True, nogil=True)
def _cmp(data, starts, ends, a, b) -> int:
    """-1, 0 or 1 as string ``a`` sorts before, equal to or after string ``b`` (UTF-8 byte
    order is code point order, Python's)."""
    la, lb = ends[a] - starts[a], ends[b] - starts[b]
    for k in range(min(la, lb)):
        x, y = data[starts[a] + k], data[starts[b] + k]
        if x != y:
            return -1 if x < y else 1
    return -1 if la < lb else 1 if la > lb else 0


@njit(cache=True, nogil=True)
def _pair_less(data, starts, ends, keys, vals, i, j) -> bool:
    c = _cmp(data, starts, ends, keys[i], keys[j])
    return c < 0 if c != 0 else _cmp(data, starts, ends, vals[i], vals[j]) < 0


@njit(cache=True, nogil=True)
def _label_messages(data, starts, ends, set_off, keys, vals, out, off) -> None:
    order = np.empty(len(keys), dtype=np.int64)
    at = 0
    for g in range(len(set_off) - 1):
        off[g] = at
        lo, hi = set_off[g], set_off[g + 1]
        if lo == hi:
            continue
        for a in range(lo, hi):  # insertion sort by (key, value) text: sets are small
            order[a] = a
            b = a - 1
            while b >= lo and _pair_less(data, starts, ends, keys, vals, a, order[b]):
                order[b + 1] = order[b]
                b -= 1
            order[b + 1] = a
        out[at] = 76  # "L"
        at += 1
        for a in range(lo, hi):
            if a > lo:
                out[at] = 0xFF
                at += 1
            k, v = keys[order[a]], vals[order[a]]
            at = copy_span(data, starts[k], ends[k], out, at)
            out[at] = 0
            at = copy_span(data, starts[v], ends[v], out, at + 1)
    off[len(set_off) - 1] = at


def labels_ids_utf8(strings: StringSpans, set_off: np.ndarray, keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``labels_ids`` of sets given as string indices into UTF-8 ``strings``: set ``g`` is
    the pairs (``keys[k]``, ``vals[k]``) for ``k`` in ``set_off[g]:set_off[g + 1]`` (in any
    order; the texts are sorted here as :func:`labels_id` sorts them)."""
    data, starts, ends = strings
    set_off, keys, vals = (np.asarray(a, dtype=np.int64) for a in (set_off, keys, vals))
    lengths = ends - starts
    size = int(lengths[keys].sum() + lengths[vals].sum()) + 2 * len(keys) + len(set_off)
    out, off = np.empty(size, dtype=np.uint8), np.empty(len(set_off), dtype=np.int64)
    _label_messages(data, starts, ends, set_off, keys, vals, out, off)
    ids = digests64(out, off)
    ids[ids == 0] = 1
    ids[np.diff(off) == 0] = 0  # the empty set
    return ids


def series_id(labels: dict[str, str]) -> int:
    """Stable id of a series label set (must contain ``service_name``)."""
    return labels_id(labels.items())
