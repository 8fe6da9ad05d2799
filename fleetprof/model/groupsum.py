"""Exact group-by-sum of int64 values keyed by uint64 ids: the kernel of sample merging.

:func:`sum_by_key` is open-addressing hashing (multiplicative hash, linear probing)
compiled with numba; key 0 marks an empty slot, so rows keyed 0 are summed aside. Tables
double past half load; they are allocated by numpy (which backs large arrays with huge
pages) and the kernels stop and resume around each growth.

* Fewer than :data:`SORT_MIN_ROWS` rows: one table, rows in input order (it stays in cache).
* More: the table is split into :data:`REGIONS` regions by the top bits of each key's
  hash. Rows are counting-sorted by region in large chunks, then each region takes its own
  rows: a region is small enough to stay in cache while it does (rows in input order would
  miss the cache on every row once the table outgrows it), and regions are independent,
  so both the sort and the regions run on every core (numba ``prange``).

The cost is a small multiple of ``numpy.bincount`` on dense ids and well below a general
hash group-by.

Contract: ``sum_by_key(keys, values) -> (unique_keys, sums)``; ``keys`` uint64 ``(N,)``,
``values`` int64 ``(N,)`` or ``(N, T)``. ``unique_keys`` holds each distinct key once (in
no particular order, but the same for the same input) and ``sums`` the exact int64 sums of
the rows with that key (same shape convention as ``values``; int64 wraps only where int64
arithmetic itself would).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import get_num_threads, njit, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIN_BITS = 10
SORT_MIN_ROWS = 1 << 20
"""Inputs with at least this many rows take the region path."""
SORT_CHUNK = 1 << 24
"""Rows sorted at a time on the region path."""
REGION_BITS = 8
REGIONS = 1 << REGION_BITS
"""Regions of the region path (256: enough that a region of a table of millions of keys
stays in cache, few enough that the sort's output streams do not thrash the TLB)."""
_PARALLEL = threading.Lock()
"""numba's default threading layer (workqueue) must not run parallel kernels from two
threads at once: callers of the region path take turns."""


@njit(cache=True, nogil=True)
def _hash(key: np.uint64) -> np.uint64:
    return key * _GOLDEN


@njit(cache=True, nogil=True)
def _bits(size: int) -> int:
    b = 0
    while (1 << b) < size:
        b += 1
    return b


# ---------------------------------------------------------------------------------------
# one region: a table of its own (the one-table path is a single region of 0 bits)


@njit(cache=True, nogil=True)
def _accumulate(tk, ts, width, keys, vals, lo, hi, zero, count, rbits):
    """Add rows ``lo:hi`` into one region's table (keys ``tk``, sums ``ts``: flat row-major,
    like ``vals``; key 0 is summed into ``zero``). A key's slot comes from its hash bits
    below the top ``rbits`` (which chose the region); probing wraps within the table.
    Returns ``(first row not added, key count)``: ``hi`` when done, else the row at which
    the table passed half load and must grow."""
    shift = np.uint64(64 - _bits(len(tk)))
    mask = np.uint64(len(tk) - 1)
    for i in range(lo, hi):
        k = keys[i]
        if k == 0:
            for j in range(width):
                zero[j] += vals[i * width + j]
            continue
        h = (_hash(k) << np.uint64(rbits)) >> shift
        while True:
            e = tk[h]
            if e == k:
                break
            if e == 0:
                if 2 * (count + 1) > len(tk):
                    return i, count
                tk[h] = k
                count += 1
                break
            h = (h + np.uint64(1)) & mask
        if width == 1:
            ts[h] += vals[i]
        else:
            for j in range(width):
                ts[np.int64(h) * width + j] += vals[i * width + j]
    return hi, count


@njit(cache=True, nogil=True)
def _rehash(tk, ts, width, nk, ns, rbits) -> None:
    """Move every entry of one region's table (``tk``, ``ts``) into its larger empty
    table (``nk``, ``ns``)."""
    shift = np.uint64(64 - _bits(len(nk)))
    mask = np.uint64(len(nk) - 1)
    for old in range(len(tk)):
        k = tk[old]
        if k != 0:
            h = (_hash(k) << np.uint64(rbits)) >> shift
            while nk[h] != 0:
                h = (h + np.uint64(1)) & mask
            nk[h] = k
            ns[np.int64(h) * width : (np.int64(h) + 1) * width] = ts[old * width : (old + 1) * width]


@njit(cache=True, nogil=True)
def _collect(tk, ts, width, out_keys, out_sums, at) -> int:
    for h in range(len(tk)):
        if tk[h] != 0:
            out_keys[at] = tk[h]
            out_sums[at * width : (at + 1) * width] = ts[h * width : (h + 1) * width]
            at += 1
    return at


def _finish(tk: np.ndarray, ts: np.ndarray, width: int, count: int, zero: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys and sums of (flattened) tables holding ``count`` keys, then key 0
    with ``zero`` when given."""
    out_keys = np.empty(count + (zero is not None), dtype=np.uint64)
    out_sums = np.empty(len(out_keys) * width, dtype=np.int64)
    _collect(tk.reshape(-1), ts.reshape(-1), width, out_keys, out_sums, 0)
    if zero is not None:
        out_keys[count] = 0
        out_sums[count * width :] = zero
    return out_keys, out_sums


def _one_table(keys: np.ndarray, vals: np.ndarray, width: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    tk, ts = np.zeros(1 << bits, dtype=np.uint64), np.zeros((1 << bits) * width, dtype=np.int64)
    zero = np.zeros(width, dtype=np.int64)
    lo, count = 0, 0
    while True:
        lo, count = _accumulate(tk, ts, width, keys, vals, lo, len(keys), zero, count, 0)
        if lo == len(keys):
            break
        nk, ns = np.zeros(2 * len(tk), dtype=np.uint64), np.zeros(2 * len(ts), dtype=np.int64)
        _rehash(tk, ts, width, nk, ns, 0)
        tk, ts = nk, ns
    return _finish(tk, ts, width, count, zero if (keys == 0).any() else None)


# ---------------------------------------------------------------------------------------
# regions


@njit(cache=True, nogil=True, parallel=True)
def _sort_by_region(keys, vals, width, lo, hi, buf_k, buf_v, start, nt) -> None:
    """Rows ``lo:hi`` into ``buf_k``/``buf_v`` grouped by region (a counting sort, one
    slice of rows for each of ``nt`` threads); region ``r``'s rows end up at
    ``start[r]:start[r + 1]``."""
    step = (hi - lo + nt - 1) // nt
    shift = np.uint64(64 - REGION_BITS)
    hist = np.zeros((nt, REGIONS), dtype=np.int64)
    for t in prange(nt):
        for i in range(lo + t * step, min(hi, lo + (t + 1) * step)):
            hist[t, np.int64(_hash(keys[i]) >> shift)] += 1
    at = 0
    for r in range(REGIONS):
        start[r] = at
        for t in range(nt):
            c = hist[t, r]
            hist[t, r] = at
            at += c
    start[REGIONS] = at
    for t in prange(nt):
        nxt = hist[t]
        for i in range(lo + t * step, min(hi, lo + (t + 1) * step)):
            r = np.int64(_hash(keys[i]) >> shift)
            o = nxt[r]
            nxt[r] = o + 1
            buf_k[o] = keys[i]
            if width == 1:
                buf_v[o] = vals[i]
            else:
                for j in range(width):
                    buf_v[o * width + j] = vals[i * width + j]


@njit(cache=True, nogil=True, parallel=True)
def _accumulate_regions(tk, ts, width, buf_k, buf_v, start, pos, count, zero) -> bool:
    """Every region adds its sorted rows ``pos[r]:start[r + 1]`` into its own row of the
    tables (:func:`_accumulate`). True when every row is in; False when some region
    stopped (``pos`` saved) because its table must grow."""
    done = np.ones(REGIONS, dtype=np.bool_)
    for r in prange(REGIONS):
        pos[r], count[r] = _accumulate(tk[r], ts[r], width, buf_k, buf_v, pos[r], start[r + 1], zero[r], count[r], REGION_BITS)
        done[r] = pos[r] == start[r + 1]
    return done.all()


@njit(cache=True, nogil=True, parallel=True)
def _rehash_regions(tk, ts, width, nk, ns) -> None:
    for r in prange(REGIONS):
        _rehash(tk[r], ts[r], width, nk[r], ns[r], REGION_BITS)


def _regions(keys: np.ndarray, vals: np.ndarray, width: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    with _PARALLEL:
        return _regions_locked(keys, vals, width, chunk)


def _regions_locked(keys: np.ndarray, vals: np.ndarray, width: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    cap = 64
    tk, ts = np.zeros((REGIONS, cap), dtype=np.uint64), np.zeros((REGIONS, cap * width), dtype=np.int64)
    count = np.zeros(REGIONS, dtype=np.int64)
    zero = np.zeros((REGIONS, width), dtype=np.int64)
    buf_k, buf_v = np.empty(chunk, dtype=np.uint64), np.empty(chunk * width, dtype=np.int64)
    start = np.zeros(REGIONS + 1, dtype=np.int64)
    for lo in range(0, len(keys), chunk):
        hi = min(len(keys), lo + chunk)
        _sort_by_region(keys, vals, width, lo, hi, buf_k, buf_v, start, get_num_threads())
        pos = start[:-1].copy()
        while not _accumulate_regions(tk, ts, width, buf_k, buf_v, start, pos, count, zero):
            cap *= 2
            nk, ns = np.zeros((REGIONS, cap), dtype=np.uint64), np.zeros((REGIONS, cap * width), dtype=np.int64)
            _rehash_regions(tk, ts, width, nk, ns)
            tk, ts = nk, ns
    return _finish(tk, ts, width, int(count.sum()), zero.sum(axis=0) if (keys == 0).any() else None)


def sum_by_key(
    keys: np.ndarray, values: np.ndarray, *, initial_bits: int | None = None, sort_chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys`` and the exact int64 sums of ``values`` per key (module contract).
    ``initial_bits``: the one-table path's first table has ``2**initial_bits`` slots
    (default: sized from the row count). ``sort_chunk``: rows sorted at a time on the region
    path (default: the region path from :data:`SORT_MIN_ROWS` rows; 0: never)."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    vals = np.asarray(values, dtype=np.int64)
    flat = vals.ndim == 1
    n = len(keys)
    width = 1 if flat else vals.shape[1]
    flat_vals = np.ascontiguousarray(vals).reshape(-1)
    if width == 0:  # no value columns: the distinct keys alone
        return np.unique(keys), np.zeros((len(np.unique(keys)), 0), dtype=np.int64)
    if sort_chunk is None:
        sort_chunk = min(n, SORT_CHUNK) if n >= SORT_MIN_ROWS else 0
    if sort_chunk > 0 and n:
        out_keys, out_sums = _regions(keys, flat_vals, width, sort_chunk)
    else:
        bits = max(1, initial_bits) if initial_bits is not None else max(_MIN_BITS, (2 * min(n, 1 << 16)).bit_length())
        out_keys, out_sums = _one_table(keys, flat_vals, width, bits)
    return out_keys, (out_sums if flat else out_sums.reshape(-1, width))
