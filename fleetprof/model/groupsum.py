"""Exact group-by-sum of int64 values keyed by uint64 ids: the kernel of sample merging.

:func:`sum_by_key` is an open-addressing hash table (multiplicative hash, linear probing)
compiled with numba: one pass over the rows, keys and sums in parallel arrays. Key 0 marks
an empty slot, so rows keyed 0 are summed aside. The table doubles past half load; tables
are allocated by numpy (which backs large arrays with huge pages) and the kernel stops and
resumes around each growth. Once the table outgrows the cache, rows are first
counting-sorted in large chunks by the top bits of their home slot, so they visit the table
one cache-sized region at a time instead of missing the cache on every row. The cost is a
small multiple of ``numpy.bincount`` on dense ids and well below a general hash group-by.

Contract: ``sum_by_key(keys, values) -> (unique_keys, sums)``; ``keys`` uint64 ``(N,)``,
``values`` int64 ``(N,)`` or ``(N, T)``. ``unique_keys`` holds each distinct key once (in
no particular order, but the same for the same input) and ``sums`` the exact int64 sums of
the rows with that key (same shape convention as ``values``; int64 wraps only where int64
arithmetic itself would).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIN_BITS = 10
CACHED_TABLE_BYTES = 1 << 20
"""Tables up to this size take rows in input order (they stay in cache anyway)."""
REGION_BYTES = 1 << 17
"""Larger tables take rows sorted into regions of about this many bytes of keys."""
SORT_CHUNK = 1 << 24
"""Rows sorted at a time (many per table entry, so that each sort pays for itself)."""
SORT_MIN_ROWS = 1 << 20
"""Inputs with fewer rows never sort (their table hardly outgrows the cache)."""
MAX_REGION_BITS = 8
"""At most 256 regions: more output streams than that cost TLB misses in the sort."""

# kernel state (int64 array shared with the Python driver)
_COUNT, _NEXT, _POS, _SORTED, _RBITS, _ZERO = range(6)


@njit(cache=True, nogil=True)
def _home(key: np.uint64, shift: np.uint64) -> np.uint64:
    return (key * _GOLDEN) >> shift


@njit(cache=True, nogil=True)
def _bits(size: int) -> int:
    b = 0
    while (1 << b) < size:
        b += 1
    return b


@njit(cache=True, nogil=True)
def _accumulate(tk, ts, width, keys, vals, lo, hi, zero, rbits, rcount, st) -> int:
    """Add rows ``lo:hi`` into the table (keys ``tk``, sums ``ts``; values and sums are
    flat row-major arrays of ``width`` columns). Returns -1 when done, or the first row
    not added because the table must grow first: past half load, or any region past half
    load (``rcount[p]`` counts the keys of region ``p``, the top ``rbits`` bits of the home
    slot; one region when ``rbits`` is 0). Rows sorted by region fill one region after
    another, so the global load alone would let one region overflow into a long probe
    chain."""
    bits = _bits(len(tk))
    shift = np.uint64(64 - bits)
    rshift = np.uint64(64 - max(rbits, 1))
    mask = np.uint64(len(tk) - 1)
    count = st[_COUNT]
    region_half = (len(tk) >> rbits) // 2
    for i in range(lo, hi):
        k = keys[i]
        if k == 0:
            st[_ZERO] = 1
            for j in range(width):
                zero[j] += vals[i * width + j]
            continue
        h = _home(k, shift)
        while True:
            e = tk[h]
            if e == k:
                break
            if e == 0:
                p = _home(k, rshift) if rbits else np.uint64(0)
                if 2 * (count + 1) > len(tk) or rcount[p] + 1 > region_half:
                    st[_COUNT] = count
                    return i
                tk[h] = k
                count += 1
                rcount[p] += 1
                break
            h = (h + np.uint64(1)) & mask
        if width == 1:
            ts[h] += vals[i]
        else:
            base = np.int64(h) * width
            for j in range(width):
                ts[base + j] += vals[i * width + j]
    st[_COUNT] = count
    return -1


@njit(cache=True, nogil=True)
def _rehash(tk, ts, width, nk, ns) -> None:
    """Move every entry of (``tk``, ``ts``) into the larger empty table (``nk``, ``ns``)."""
    shift = np.uint64(64 - _bits(len(nk)))
    mask = np.uint64(len(nk) - 1)
    for old in range(len(tk)):
        k = tk[old]
        if k != 0:
            h = _home(k, shift)
            while nk[h] != 0:
                h = (h + np.uint64(1)) & mask
            nk[h] = k
            ns[np.int64(h) * width : (np.int64(h) + 1) * width] = ts[old * width : (old + 1) * width]


@njit(cache=True, nogil=True)
def _region_counts(tk, rbits) -> np.ndarray:
    rcount = np.zeros(1 << rbits, dtype=np.int64)
    if rbits == 0:
        rcount[0] = np.count_nonzero(tk)
        return rcount
    rshift = np.uint64(64 - rbits)
    for h in range(len(tk)):
        if tk[h] != 0:
            rcount[_home(tk[h], rshift)] += 1
    return rcount


@njit(cache=True, nogil=True)
def _sort_by_region(keys, vals, width, lo, hi, rbits, buf_k, buf_v) -> None:
    """Rows ``lo:hi`` into ``buf_k``/``buf_v`` ordered by region (a counting sort)."""
    shift = np.uint64(64 - rbits)
    start = np.zeros((1 << rbits) + 1, dtype=np.int64)
    for i in range(lo, hi):
        start[_home(keys[i], shift) + np.uint64(1)] += 1
    for p in range(1 << rbits):
        start[p + 1] += start[p]
    for i in range(lo, hi):
        p = _home(keys[i], shift)
        r = start[p]
        start[p] = r + 1
        buf_k[r] = keys[i]
        if width == 1:
            buf_v[r] = vals[i]
        else:
            for j in range(width):
                buf_v[r * width + j] = vals[i * width + j]


@njit(cache=True, nogil=True)
def _sum_kernel(keys, vals, width, tk, ts, zero, buf_k, buf_v, st) -> bool:
    """Sum rows into the table from the position saved in ``st``; True when all rows are
    in, False when the table must grow (the position is saved; call again with a larger
    table). ``buf_k``/``buf_v`` are scratch for the region sort (their length is the sort
    chunk; empty: never sort)."""
    n = len(keys)
    while True:
        if st[_SORTED] > 0:  # finish the sorted chunk
            rbits = st[_RBITS]
            stop = _accumulate(tk, ts, width, buf_k, buf_v, st[_POS], st[_SORTED], zero, rbits, _region_counts(tk, rbits), st)
            if stop >= 0:
                st[_POS] = stop
                return False
            st[_SORTED] = 0
        lo = st[_NEXT]
        if lo >= n:
            return True
        if len(tk) * (1 + width) * 8 <= CACHED_TABLE_BYTES or len(buf_k) == 0:
            hi = min(n, lo + (1 << 16))
            stop = _accumulate(tk, ts, width, keys, vals, lo, hi, zero, 0, _region_counts(tk, 0), st)
            st[_NEXT] = hi if stop < 0 else stop
            if stop >= 0:
                return False
        else:
            hi = min(n, lo + len(buf_k))
            # regions sized for the largest table this chunk can lead to
            bound = max(len(tk), 2 * (st[_COUNT] + hi - lo)) * 8
            rbits = min(MAX_REGION_BITS, max(1, _bits(bound // REGION_BYTES + 1) - 1))
            _sort_by_region(keys, vals, width, lo, hi, rbits, buf_k, buf_v)
            st[_NEXT] = hi
            st[_POS] = 0
            st[_SORTED] = hi - lo
            st[_RBITS] = rbits


@njit(cache=True, nogil=True)
def _collect(tk, ts, width, out_keys, out_sums) -> None:
    r = 0
    for h in range(len(tk)):
        if tk[h] != 0:
            out_keys[r] = tk[h]
            out_sums[r * width : (r + 1) * width] = ts[h * width : (h + 1) * width]
            r += 1


def sum_by_key(
    keys: np.ndarray, values: np.ndarray, *, initial_bits: int | None = None, sort_chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys`` and the exact int64 sums of ``values`` per key (module contract).
    The table starts with ``2**initial_bits`` slots (default: sized from the row count);
    ``sort_chunk`` overrides the rows sorted at a time (0: never sort)."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    vals = np.asarray(values, dtype=np.int64)
    flat = vals.ndim == 1
    n = len(keys)
    width = 1 if flat else vals.shape[1]
    flat_vals = np.ascontiguousarray(vals).reshape(-1)
    bits = initial_bits if initial_bits is not None else max(_MIN_BITS, (2 * min(n, 1 << 16)).bit_length())
    if sort_chunk is None:
        sort_chunk = min(n, SORT_CHUNK) if n >= SORT_MIN_ROWS else 0
    buf_k, buf_v = np.empty(sort_chunk, dtype=np.uint64), np.empty(sort_chunk * width, dtype=np.int64)
    tk, ts = np.zeros(1 << bits, dtype=np.uint64), np.zeros((1 << bits) * width, dtype=np.int64)
    zero = np.zeros(width, dtype=np.int64)
    st = np.zeros(6, dtype=np.int64)
    while not _sum_kernel(keys, flat_vals, width, tk, ts, zero, buf_k, buf_v, st):
        nk, ns = np.zeros(2 * len(tk), dtype=np.uint64), np.zeros(2 * len(ts), dtype=np.int64)
        _rehash(tk, ts, width, nk, ns)
        tk, ts = nk, ns
    count = int(st[_COUNT])
    out_keys = np.empty(count + int(st[_ZERO]), dtype=np.uint64)
    out_sums = np.empty(len(out_keys) * width, dtype=np.int64)
    _collect(tk, ts, width, out_keys, out_sums)
    if st[_ZERO]:
        out_keys[count] = 0
        out_sums[count * width :] = zero
    return out_keys, (out_sums if flat else out_sums.reshape(-1, width))
