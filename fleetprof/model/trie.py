"""Call-tree nodes of CSR stacks by a compiled trie (numba): the node builder of small and
medium builds.

Contract: :func:`trie_nodes` takes stacks in CSR form (``fidx[offsets[i]:offsets[i+1]]``,
root first, indexing the frame id table ``ftab``; equal ids in ``ftab`` are one frame) and
returns ``(node_id, parent_id, frame_id, depth, leaf_row, parent_row)`` exactly as
:func:`fleetprof.model.profile._prefix_tree` does: one row per distinct path, ``node_id =
mix(parent_id, frame_id)`` (see :mod:`.hashing`), rows listed level by level (breadth
first: depth 1 first, and within a level grouped by parent in row order, so a level's
``parent_row`` never decreases), ``leaf_row`` the row of every stack's leaf (-1 for an
empty stack) and ``parent_row`` each node's parent row (-1 at depth 1).

Nodes are found by walking every stack down a hash table keyed by ``(parent row, frame)``
(open addressing, linear probing) that holds one entry per *node*, not per element: for
inputs whose node count fits in cache every element costs one probe of a warm table.

Also: :func:`expand_locations` turns pprof's location stacks (leaf first) into CSR frame
stacks (root first); :func:`sum_by_leaf` sums sample values per (leaf row, label code).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fleetprof.model.hashing import ROOT_ID, open_table
from fleetprof.numba_cache import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MIN_BITS = 10
_ROOT = np.uint64(ROOT_ID)
_HIGH = np.uint64(32)
_LOW = np.uint64(0xFFFFFFFF)
_MAX_BITS = 32
"""Trie keys hold a parent row + 1 and a frame code + 1 in 32 bits each."""


@njit(cache=True, nogil=True)
def _mix(parent: np.uint64, frame: np.uint64) -> np.uint64:
    """:func:`fleetprof.model.hashing.mix` for one pair."""
    x = parent * _GOLDEN + frame
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True)
def _slot(key: np.uint64, shift: np.uint64) -> np.int64:
    return np.int64((key * _GOLDEN) >> shift)


@njit(cache=True, nogil=True)
def _rehash(keyof: np.ndarray, rows: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Tables of ``2 ** bits`` slots (key, row) holding rows ``0 .. rows - 1``."""
    keys = np.zeros(1 << bits, dtype=np.uint64)
    rowt = np.empty(1 << bits, dtype=np.int32)
    shift, mask = np.uint64(64 - bits), (1 << bits) - 1
    for r in range(rows):
        h = _slot(keyof[r], shift)
        while keys[h] != 0:
            h = (h + 1) & mask
        keys[h] = keyof[r]
        rowt[h] = r
    return keys, rowt


@njit(cache=True, nogil=True, inline="always")
def _key(parent: int, code: int) -> np.uint64:
    """The trie key of the node below row ``parent`` (-1: the root) with frame ``code``;
    never 0 (the empty slot)."""
    return (np.uint64(parent + 1) << np.uint64(32)) | np.uint64(code + 1)


@njit(cache=True, nogil=True, inline="always")
def _probe(keys, rowt, keyof, shift, mask, key, rows):
    """(row of ``key``, rows after it): found, or inserted as row ``rows``."""
    h = _slot(key, shift)
    while True:
        slot = keys[h]
        if slot == key:
            return np.int64(rowt[h]), rows
        if slot == 0:
            keys[h] = key
            rowt[h] = rows
            keyof[rows] = key
            return np.int64(rows), rows + 1
        h = (h + 1) & mask


@njit(cache=True, nogil=True)
def _walk(offsets, elems, leaf_first, one, lf_off, fcode, keys, rowt, bits, keyof, rows, start, leaf):
    """Walk stacks ``start, start + 1, ...`` down the trie: returns ``(rows, stopped)``
    where ``stopped`` is the stack at which the table (``keys``/``rowt``: ``2 ** bits``
    slots holding the first ``rows`` rows) reached half load, or the number of stacks once
    all are walked (then ``leaf`` holds every stack's leaf row). A stopped walk resumes at
    ``stopped`` once the table is grown (the rows it already made are found again).

    Element ``e`` of a stack stands for one frame of code ``one[elems[e]]`` when that is
    not negative, else for the frames of codes ``fcode[lf_off[l]:lf_off[l + 1]]``
    (``l = elems[e]``); ``leaf_first`` stacks are walked from their end. Returns ``(-1,
    s)`` at stack ``s`` when its offsets decrease or pass the end of ``elems``, or an element is out of
    range of ``one`` (the caller checks that the offsets start at 0). Row ``r`` is the
    node ``keyof[r] = _key(parent row, frame code)``; a key 0 in ``keys`` marks an empty
    slot."""
    shift, mask, half = np.uint64(64 - bits), len(keys) - 1, len(keys) >> 1
    n = len(one)
    for s in range(start, len(offsets) - 1):
        parent = -1
        lo, hi = offsets[s], offsets[s + 1]
        if hi < lo or hi > len(elems):
            return -1, s
        first, step = (hi - 1, -1) if leaf_first else (lo, 1)
        for k in range(hi - lo):
            li = elems[first + step * k]
            if li < 0 or li >= n:
                return -1, s
            c = one[li]
            if c >= 0:
                parent, rows = _probe(keys, rowt, keyof, shift, mask, _key(parent, c), rows)
            else:
                for f in range(lf_off[li], lf_off[li + 1]):
                    parent, rows = _probe(keys, rowt, keyof, shift, mask, _key(parent, fcode[f]), rows)
                    if rows >= half:
                        return rows, s
            if rows >= half:
                return rows, s
        leaf[s] = parent
    return rows, len(offsets) - 1


@njit(cache=True, nogil=True)
def _breadth_first(keyof, rows, uf, first_frame, leaf, nid, pid, fid, dep, prow, leaf_row, used):
    """Rows reordered breadth first (children grouped under their parents, in creation
    order) with their ids and depths; every stack's leaf mapped to its output row
    (``leaf_row``); ``used[f]`` set for the first local frame ``f`` of every frame code
    that some node has."""
    first = np.zeros(rows + 2, dtype=np.int64)  # children CSR by parent row + 1 (0: the root)
    for r in range(rows):
        first[np.int64(keyof[r] >> _HIGH) + 1] += 1
    for i in range(1, rows + 2):
        first[i] += first[i - 1]
    kids = np.empty(rows, dtype=np.int64)
    fill = first[: rows + 1].copy()
    for r in range(rows):
        p1 = np.int64(keyof[r] >> _HIGH)
        kids[fill[p1]] = r
        fill[p1] += 1
    queue = np.empty(rows, dtype=np.int64)  # creation row of every output row
    new_row = np.empty(rows, dtype=np.int64)
    out = 0
    for k in range(first[0], first[1]):
        queue[out] = kids[k]
        prow[out] = -1
        out += 1
    for at in range(rows):
        old = queue[at]
        new_row[old] = at
        for k in range(first[old + 1], first[old + 2]):
            queue[out] = kids[k]
            prow[out] = at
            out += 1
    for o in range(rows):  # parents precede children
        code = np.int64(keyof[queue[o]] & _LOW) - 1
        used[first_frame[code]] = True
        f = uf[code]
        if prow[o] < 0:
            p, d = _ROOT, 1
        else:
            p, d = nid[prow[o]], dep[prow[o]] + 1
        fid[o] = f
        dep[o] = d
        pid[o] = p
        nid[o] = _mix(p, f)
    for s in range(len(leaf)):
        leaf_row[s] = new_row[leaf[s]] if leaf[s] >= 0 else -1


@njit(cache=True, nogil=True)
def _location_codes(lf_off, lf_frames, codes, one, fcode) -> bool:
    """Frame codes of every location's frames (``fcode``) and, for a location of one
    frame, its code (``one``; -1 otherwise). False unless ``lf_off`` partitions
    ``lf_frames`` and every frame is in range of ``codes``."""
    if len(lf_off) == 0 or lf_off[0] != 0 or lf_off[len(lf_off) - 1] != len(lf_frames):
        return False
    for i in range(len(lf_off) - 1):
        if lf_off[i + 1] < lf_off[i]:
            return False
        one[i] = -1
    for f in range(len(lf_frames)):
        if lf_frames[f] < 0 or lf_frames[f] >= len(codes):
            return False
        fcode[f] = codes[lf_frames[f]]
    for i in range(len(lf_off) - 1):
        if lf_off[i + 1] - lf_off[i] == 1:
            one[i] = fcode[lf_off[i]]
    return True


@njit(cache=True, nogil=True)
def _frame_codes(ftab, codes, first_frame, uf) -> int:
    """One code per distinct frame id, numbered in first appearance: ``codes[i]`` of frame
    ``i``, and per code its first frame and id. Returns the number of codes."""
    table, shift, mask = open_table(len(ftab))
    n = 0
    for i in range(len(ftab)):
        h = np.int64((ftab[i] * _GOLDEN) >> shift)
        while True:
            c = table[h]
            if c < 0:
                table[h] = n
                first_frame[n] = i
                uf[n] = ftab[i]
                codes[i] = n
                n += 1
                break
            if uf[c] == ftab[i]:
                codes[i] = c
                break
            h = (h + 1) & mask
    return n


class TrieNodes(NamedTuple):
    """:func:`trie_nodes`'s result (module contract), with ``frames``: the local frame
    table index of the first frame of every distinct frame id that some node has,
    ascending (the rows of the profile's frame table)."""

    node_id: np.ndarray
    parent_id: np.ndarray
    frame_id: np.ndarray
    depth: np.ndarray
    leaf_row: np.ndarray
    parent_row: np.ndarray
    frames: np.ndarray


def trie_nodes(
    offsets: np.ndarray,
    elems: np.ndarray,
    ftab: np.ndarray,
    locations: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrieNodes | None:
    """Nodes of CSR stacks (module contract); None when there is no frame at all (nor
    then any node). Raises ValueError for offsets that do not partition their elements
    or elements out of range (they are never read).

    ``elems`` index ``ftab`` (stacks root first) or, with ``locations = (lf_off,
    lf_frames)``, they are location indices with stacks listed **leaf first**, location
    ``i`` standing for frames ``lf_frames[lf_off[i]:lf_off[i + 1]]`` (root first; pprof's
    shape, walked without expanding it first)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    elems = np.asarray(elems, dtype=np.int64)
    n_stacks = len(offsets) - 1
    ftab = np.ascontiguousarray(ftab, dtype=np.uint64)
    codes, first_frame, uf = np.empty(len(ftab), np.int64), np.empty(len(ftab), np.int64), np.empty(len(ftab), np.uint64)
    ncodes = _frame_codes(ftab, codes, first_frame, uf)
    uf = uf[:ncodes]
    if len(uf) >= int(_LOW):
        raise ValueError("more than 2**32 - 1 distinct frames")
    if locations is None:
        lf_off, one, fcode = np.zeros(1, np.int64), codes, codes
    else:
        lf_off, lf_frames = (np.asarray(a, dtype=np.int64) for a in locations)
        one, fcode = np.empty(max(len(lf_off) - 1, 0), np.int64), np.empty(len(lf_frames), np.int64)
        if not _location_codes(lf_off, lf_frames, codes, one, fcode):
            raise ValueError("location offsets are not a CSR partition of their frames, or a frame is out of range")
    if n_stacks <= 0 or len(elems) == 0:
        return None
    if offsets[0] != 0 or offsets[-1] != len(elems):
        raise ValueError("stack offsets are not a CSR partition of the elements")
    leaf = np.empty(n_stacks, np.int64)
    bits = max(_MIN_BITS, (len(elems) // 4).bit_length())  # room for a node per 4 to 8 elements at half load
    keyof = np.empty(1 << (bits - 1), np.uint64)  # the walk stops when the table is half full
    rows, done = 0, 0
    while True:
        keys, rowt = _rehash(keyof, rows, bits)
        rows, done = _walk(offsets, elems, locations is not None, one, lf_off, fcode, keys, rowt, bits, keyof, rows, done, leaf)
        if rows < 0:
            raise ValueError(f"stack {done}: offsets decrease or an element is out of range")
        if done == n_stacks:
            break
        bits += 1
        if bits > _MAX_BITS:
            raise ValueError("more than 2**31 call-tree nodes")
        keyof = np.concatenate([keyof[:rows], np.empty((1 << (bits - 1)) - rows, np.uint64)])
    if rows == 0:
        return None
    nid, pid, fid = np.empty(rows, np.uint64), np.empty(rows, np.uint64), np.empty(rows, np.uint64)
    dep, prow, leaf_row = np.empty(rows, np.uint32), np.empty(rows, np.int64), np.empty(n_stacks, np.int64)
    used = np.zeros(len(ftab), dtype=bool)
    _breadth_first(keyof, rows, uf, first_frame, leaf, nid, pid, fid, dep, prow, leaf_row, used)
    return TrieNodes(nid, pid, fid, dep, leaf_row, prow, np.flatnonzero(used))


@njit(cache=True, nogil=True)
def _expand(offsets, elems, leaf_first, lf_off, lf_frames, out_off, out_frames) -> None:
    at = 0
    for s in range(len(offsets) - 1):
        out_off[s] = at
        lo, hi = offsets[s], offsets[s + 1]
        first, step = (hi - 1, -1) if leaf_first else (lo, 1)
        for k in range(hi - lo):
            li = elems[first + step * k]
            for f in range(lf_off[li], lf_off[li + 1]):
                out_frames[at] = lf_frames[f]
                at += 1
    out_off[len(offsets) - 1] = at


def expand_locations(
    offsets: np.ndarray, elems: np.ndarray, lf_off: np.ndarray, lf_frames: np.ndarray, *, leaf_first: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Stacks of location indices (leaf first, or root first with ``leaf_first=False``) as
    CSR stacks of frames, root first: every location ``i`` replaced by its frames
    ``lf_frames[lf_off[i]:lf_off[i + 1]]`` (root first)."""
    offsets, elems, lf_off = (np.asarray(a, dtype=np.int64) for a in (offsets, elems, lf_off))
    total = int(np.diff(lf_off)[elems].sum())
    out_off, out_frames = np.empty(len(offsets), dtype=np.int64), np.empty(total, dtype=np.int64)
    _expand(offsets, elems, leaf_first, lf_off, np.ascontiguousarray(lf_frames, dtype=np.int64), out_off, out_frames)
    return out_off, out_frames


@njit(cache=True, nogil=True)
def _sum_by_leaf(leaf_row, code, values, nrows, out_row, out_code, out_sums) -> int:
    """Rows summed per (leaf row, code): a chain of (code, sums) slots per leaf row
    (leaves rarely carry more than a few label sets). Returns the number of slots."""
    head = np.full(nrows + 1, -1, dtype=np.int64)  # leaf row + 1 (0: the root)
    nxt = np.empty(len(leaf_row), dtype=np.int64)
    slots = 0
    width = values.shape[1]
    for i in range(len(leaf_row)):
        r = leaf_row[i] + 1
        c = code[i]
        k = head[r]
        while k >= 0 and out_code[k] != c:
            k = nxt[k]
        if k < 0:
            k = slots
            slots += 1
            out_row[k] = r - 1
            out_code[k] = c
            nxt[k] = head[r]
            head[r] = k
            for j in range(width):
                out_sums[k, j] = 0
        for j in range(width):
            out_sums[k, j] += values[i, j]
    return slots


def sum_by_leaf(
    leaf_row: np.ndarray, code: np.ndarray, values: np.ndarray, nrows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values ``(S, T)`` (or ``(S,)``, as one column) summed per distinct (``leaf_row``, ``code``) pair, where
    ``-1 <= leaf_row < nrows`` (-1: the root) and ``code`` are small ints: ``(row, code,
    sums)`` for every pair, in order of first appearance; exact int64 sums."""
    n = len(leaf_row)
    values = np.ascontiguousarray(values, dtype=np.int64)
    values = values.reshape(n, 1) if values.ndim == 1 else values
    out_row, out_code = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    out_sums = np.empty((n, values.shape[1]), dtype=np.int64)
    k = _sum_by_leaf(np.asarray(leaf_row, dtype=np.int64), np.asarray(code, dtype=np.int64), values, nrows, out_row, out_code, out_sums)
    return out_row[:k], out_code[:k], out_sums[:k]


@njit(cache=True, nogil=True)
def _sample_columns(rows, codes, sums, nid, ids, drop_zero, node, lab, columns, kept) -> int:
    k = 0
    for i in range(len(rows)):
        if drop_zero:
            nonzero = False
            for j in range(sums.shape[1]):
                nonzero |= sums[i, j] != 0
            if not nonzero:
                continue
        node[k] = nid[rows[i]] if rows[i] >= 0 else _ROOT
        lab[k] = ids[codes[i]]
        for j in range(sums.shape[1]):
            columns[j, k] = sums[i, j]
        kept[k] = rows[i]
        k += 1
    return k


def sample_columns(
    leaf_row: np.ndarray, code: np.ndarray, values: np.ndarray, nid: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sample rows of a profile: :func:`sum_by_leaf` of ``values`` ``(S, T)`` per
    (``leaf_row``, label set ``code``), rows whose sums are all zero dropped (when ``T >
    0``). Returns ``(node_id, labels, columns, rows)``: the node id of each row (``nid`` of
    its leaf row, ``ROOT_ID`` for -1), its label set id ``ids[code]``, the sums as ``(T,
    rows)`` (each value column contiguous) and the leaf row."""
    rows, codes, sums = sum_by_leaf(leaf_row, code, values, len(nid))
    n, width = sums.shape
    node, lab = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    columns, kept = np.empty((width, n), dtype=np.int64), np.empty(n, dtype=np.int64)
    k = _sample_columns(rows, codes, sums, np.asarray(nid, dtype=np.uint64), np.asarray(ids, dtype=np.uint64), width > 0, node, lab, columns, kept)
    return node[:k], lab[:k], columns[:, :k], kept[:k]
