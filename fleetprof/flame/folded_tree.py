"""Folded bytes straight to a pruned flame-graph call tree, for ``fleetprof flamegraph``.

Contract of :func:`folded_call_tree`: for a plain folded file, gzip'd or not (see
:func:`~fleetprof.formats.folded_scan.scan_plain`), whose frames carry no py-spy location
(no ``" ("``), no empty frame and no stack beyond the limits, the result equals
``call_tree(decode_folded(raw), 0, min_total=min_total)`` pruned by ``prune_narrow`` at
``min_total(root total)``: the same nodes, parents, depths, names, self and total values
(rows may come in another order; the layout orders them). ``key`` holds a 64-bit path
hash, not the model's name-path id, so the tree must not be ``combine``-d with another.
Anything else returns ``None`` and the caller takes the general decoder, which also
reports every error.

How: the lines still alive are grouped by path, several depth levels per step (numpy over
a lines × levels matrix; the fewer lines are alive, the more levels a step takes, so deep
recursion costs a few dozen steps rather than one per level). Each frame's bytes are
hashed (eight at a time) and chained into a path hash along its line; cells of one path
hash form a node. Every member of a node that is drawn is then checked against the node's
first member — same parent node, same frame bytes (frames of at most 16 bytes are
compared as their length and first and last eight bytes) — so a hash collision is never drawn
(the caller takes the exact general path instead). A node whose total is below the
threshold is dropped; its lines stop there, so narrow subtrees are never read, and only
the distinct frames that are drawn become Python strings. Nothing here imports polars or
numba.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fleetprof.formats.errors import (
    DEFAULT_LIMITS,
    GZIP_MAGIC,
    Limits,
    ProfileFormatError,
    maybe_gunzip,
)
from fleetprof.formats.folded_scan import positions, scan_plain
from fleetprof.render.layout import CallTree

_INT64_MAX = (1 << 63) - 1
_SEMI = 59
_OPEN = 40
_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xBF58476D1CE4E5B9)
_P3 = np.uint64(0x94D049BB133111EB)
CELL_BUDGET = 1 << 15
"""Cells (line × level) one step may take: steps take ``CELL_BUDGET // alive lines``
levels (at least one, at most :data:`MAX_STEP_LEVELS`)."""
MAX_STEP_LEVELS = 256


class ValueKind(NamedTuple):
    """What the values of a folded file count (the type and unit of its sample type)."""

    type: str
    unit: str


SAMPLES = ValueKind("samples", "count")
"""The sample type of a folded file (as :data:`fleetprof.formats.folded.SAMPLES`)."""


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    h = (h ^ (h >> np.uint64(30))) * _P2
    h = (h ^ (h >> np.uint64(27))) * _P3
    return h ^ (h >> np.uint64(31))


class _Bytes:
    """Unaligned little-endian 8-byte reads at any position of ``raw``."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw if len(raw) >= 8 else raw + b"\0" * 8
        self.last = len(self.raw) - 8  # the last position a full word can be read at
        self.words = np.ndarray((self.last + 1,), dtype="<u8", buffer=self.raw, strides=(1,))

    def word(self, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        """The ``min(length, 8)`` bytes at ``pos`` as a uint64 (higher bytes zero);
        ``length >= 1``."""
        at = np.minimum(pos, self.last)
        w = self.words[at]
        tail = np.flatnonzero(pos > at)  # within the file's last 8 bytes: shift the wanted bytes down
        if len(tail):
            w[tail] >>= ((pos[tail] - at[tail]) * 8).astype(np.uint64)
        drop = ((8 - np.minimum(length, 8)) * 8).astype(np.uint64)  # 0 … 56 bits
        return (w << drop) >> drop

    def fingerprints(self, start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(hash, head, tail)`` of every span ``[start, start + length)``: ``head`` is its
        first ``min(length, 8)`` bytes, ``tail`` its last 8 bytes when longer than 8 (else
        0), so that length, head and tail are the whole span when it is at most 16 bytes
        long; ``hash`` is a 64-bit hash of all its bytes."""
        head = self.word(start, length)
        end = start + length
        # the 8 bytes before each end (inside the file, so no end-of-file care), kept for spans over 8 bytes
        tail = np.where(length > 8, self.words[np.maximum(end - 8, 0)], np.uint64(0))
        long = np.flatnonzero(length > 16)
        with np.errstate(over="ignore"):
            h = _mix((_mix((length.astype(np.uint64) * _P1) ^ head) * _P1) ^ tail)
            rows = long
            r = 8
            while len(rows):  # the middle bytes of longer spans
                h[rows] = _mix((h[rows] ^ self.word(start[rows] + r, length[rows] - 8 - r)) * _P1)
                r += 8
                rows = rows[length[rows] - 8 > r]
        return h, head, tail

    def same(self, a: np.ndarray, b: np.ndarray, start: np.ndarray, length: np.ndarray, head: np.ndarray, tail: np.ndarray) -> bool:
        """Whether span ``a[i]`` equals span ``b[i]`` for every ``i`` (indices into the
        ``start``/``length`` arrays and their :meth:`fingerprints`)."""
        if np.any(length[a] != length[b]) or np.any(head[a] != head[b]) or np.any(tail[a] != tail[b]):
            return False
        long = np.flatnonzero(length[a] > 16)
        return self.equal(start[a[long]], start[b[long]], length[a[long]])

    def equal(self, a_start: np.ndarray, b_start: np.ndarray, length: np.ndarray) -> bool:
        """Whether every span at ``a_start`` equals the one at ``b_start`` (same lengths)."""
        rows = np.flatnonzero(a_start != b_start)
        r = 0
        while len(rows):
            rem = length[rows] - r
            if np.any(self.word(a_start[rows] + r, rem) != self.word(b_start[rows] + r, rem)):
                return False
            r += 8
            rows = rows[length[rows] > r]
        return True


class _Lines(NamedTuple):
    """Line ``i``'s frames end at ``semis[sep[i]]``, ``semis[sep[i] + 1]`` … and, the last
    one, at ``last[i]``; there are ``nframes[i]`` of them, the first starting at ``starts[i]``."""

    starts: np.ndarray
    last: np.ndarray
    counts: np.ndarray
    semis: np.ndarray
    sep: np.ndarray
    nframes: np.ndarray


class _Nodes:
    """The kept nodes, appended a step at a time (rows in order of depth)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("parent", "depth", "start", "length", "hash", "key", "own", "total")}
        self.rows = 0

    def add(self, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            self.parts[k].append(v)
        self.rows += len(cols["parent"])

    def column(self, name: str, dtype: type) -> np.ndarray:
        parts = self.parts[name]
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def folded_call_tree(
    raw: bytes,
    *,
    min_total: Callable[[int], float],
    limits: Limits = DEFAULT_LIMITS,
) -> CallTree | None:
    """The pruned call tree of plain folded ``raw`` (see the module contract), or ``None``."""
    if raw.startswith(GZIP_MAGIC):
        try:
            raw = maybe_gunzip(raw, "folded", limits)
        except ProfileFormatError:
            return None  # the general path reports it
    lines = _plain_lines(raw, limits)
    if lines is None:
        return None
    root_total = int(lines.counts.sum())
    root_self = int(lines.counts[lines.nframes == 0].sum())
    data = _Bytes(raw)
    nodes = _grow(data, lines, min_total(root_total))
    if nodes is None:
        return None
    return _tree(data, nodes, root_self, root_total)


def _plain_lines(raw: bytes, limits: Limits) -> _Lines | None:
    """The lines of ``raw`` and where their frames end, or ``None`` when the file is not
    plain folded text without py-spy locations and empty frames, within ``limits``."""
    scan = scan_plain(raw, limits)
    if scan is None:
        return None
    buf, starts, last, counts = scan.buf, scan.starts, scan.last, scan.counts
    if len(raw) > limits.max_decompressed_bytes or float(counts.astype(np.float64).sum()) > _INT64_MAX:
        return None
    if int((last - starts).max()) > limits.max_string_length:
        return None
    spaces = scan.spaces
    if np.any(buf[np.minimum(spaces + 1, len(buf) - 1)] == _OPEN):
        return None  # " (": a py-spy location, merged by name on the general path
    nonempty = last > starts
    if np.any(buf[starts[nonempty]] == _SEMI) or np.any(buf[last[nonempty] - 1] == _SEMI):
        return None  # an empty first or last frame
    semis = positions(buf, _SEMI, _SEMI)
    if np.any(np.diff(semis) == 1):
        return None  # ";;": an empty frame
    sep = np.searchsorted(semis, starts)  # the separator ending each line's first frame
    # a line's separators end where the next line's begin (counts and newlines hold none)
    nframes = np.where(nonempty, np.append(sep[1:], len(semis)) - sep + 1, 0)
    if int(nframes.max()) > limits.max_stack_depth:
        return None
    return _Lines(starts, last, counts, semis, sep, nframes)


def _grow(data: _Bytes, lines: _Lines, threshold: float) -> _Nodes | None:
    """Kept nodes of the call tree, several levels per step (see the module docstring);
    ``None`` on a hash collision."""
    nodes = _Nodes()
    alive = np.flatnonzero(lines.nframes > 0)
    node = np.full(len(lines.starts), -1, dtype=np.int64)  # each line's node at ``depth``
    key = np.zeros(len(lines.starts), dtype=np.uint64)  # its path hash
    depth = 0
    while len(alive):
        levels = max(1, min(MAX_STEP_LEVELS, CELL_BUDGET // len(alive), int(lines.nframes[alive].max()) - depth))
        cont = _step(data, lines, alive, depth, levels, threshold, node, key, nodes)
        if cont is None:
            return None
        alive = cont
        depth += levels
    return nodes


def _step(
    data: _Bytes, lines: _Lines, alive: np.ndarray, depth: int, levels: int, threshold: float,
    node: np.ndarray, key: np.ndarray, nodes: _Nodes,
) -> np.ndarray | None:
    """Group the frames at depths ``depth + 1 … depth + levels`` of the ``alive`` lines;
    append the kept nodes, update ``node``/``key`` of the lines that go on and return
    them (``None`` on a hash collision)."""
    nf = lines.nframes[alive]
    valid = np.arange(depth, depth + levels)[None, :] < nf[:, None]  # a prefix of each row
    li, col = np.nonzero(valid)  # cells, line by line, left to right
    line = alive[li]
    t = depth + col  # 0-based frame index within the line
    is_last = t == lines.nframes[line] - 1
    s = lines.sep[line] + t  # the separator ending the frame (unless it is the last)
    semis = lines.semis
    end = np.where(is_last, lines.last[line], semis[np.minimum(s, len(semis) - 1)])
    start = np.where(t == 0, lines.starts[line], semis[np.maximum(s - 1, 0)] + 1)
    length = end - start
    h, head, tail = data.fingerprints(start, length)
    # path hashes, chained left to right along each line (the depth mixed in)
    hm = np.zeros((levels, len(alive)), dtype=np.uint64)  # level-major: each level's row is contiguous
    hm[col, li] = h
    pk = key[alive]
    with np.errstate(over="ignore"):
        for c in range(levels):
            pk = _mix((pk * _P1) ^ hm[c] ^ np.uint64(depth + c + 1))
            hm[c] = pk
    ck = hm[col, li]
    order = _grouping_order(ck)
    sk = ck[order]
    first = np.ones(len(sk), dtype=bool)
    first[1:] = sk[1:] != sk[:-1]
    gstart = np.flatnonzero(first)
    gid = np.empty(len(sk), dtype=np.int64)
    gid[order] = np.cumsum(first) - 1  # each cell's group
    counts = lines.counts[line]
    c_sorted = counts[order]
    total = np.add.reduceat(c_sorted, gstart)
    self_vals = np.add.reduceat(np.where(is_last[order], c_sorted, 0), gstart)
    keep = (total >= threshold) & (total > 0)  # the general path draws no zero-total node
    rep = order[gstart]  # each group's first cell
    # each cell's parent: the line's node before this step, or the group of the cell to its left
    left = np.arange(len(li)) - 1
    parent = np.where(col == 0, node[line], -2 - gid[np.maximum(left, 0)])
    members = np.flatnonzero(keep[gid])
    r = rep[gid[members]]
    if np.any(parent[members] != parent[r]) or not data.same(members, r, start, length, head, tail):
        return None
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(col[rep[kept]].astype(np.uint16), kind="stable")]  # rows by depth (levels <= 256)
    row_of = np.full(len(gstart), -1, dtype=np.int64)
    row_of[kept] = nodes.rows + np.arange(len(kept))
    kr = rep[kept]
    kp = parent[kr]
    nodes.add(
        parent=np.where(kp >= -1, kp, row_of[np.maximum(-2 - kp, 0)]), depth=t[kr] + 1,
        start=start[kr], length=length[kr], hash=h[kr], key=ck[kr], own=self_vals[kept], total=total[kept],
    )
    # lines that reach the step's last level in a kept node and have frames below it go on
    going = np.flatnonzero((col == levels - 1) & ~is_last)
    going = going[keep[gid[going]]]
    on = line[going]
    node[on] = row_of[gid[going]]
    key[on] = ck[going]
    return on


def _grouping_order(keys: np.ndarray) -> np.ndarray:
    """An order of ``keys`` in which equal keys are adjacent: two stable sorts on 16-bit
    digits of the keys' top 32 bits (numpy sorts 16-bit integers by radix, several times
    faster than 64-bit ones), or a full sort when two different keys share those bits."""
    digit = np.uint64(16)
    top = keys >> np.uint64(32)
    order = np.argsort(top.astype(np.uint16), kind="stable")
    order = order[np.argsort((top[order] >> digit).astype(np.uint16), kind="stable")]
    sk = keys[order]
    st = top[order]
    if np.any((st[1:] == st[:-1]) & (sk[1:] != sk[:-1])):
        return np.argsort(keys)
    return order


def _tree(data: _Bytes, nodes: _Nodes, root_self: int, root_total: int) -> CallTree:
    """The :class:`CallTree` of the kept nodes: names decoded once per distinct frame
    (each node's frame checked byte for byte against its name's first occurrence)."""
    start, length, fhash = nodes.column("start", np.int64), nodes.column("length", np.int64), nodes.column("hash", np.uint64)
    _, first, inv = np.unique(fhash, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    _, head, tail = data.fingerprints(start, length)
    if not data.same(np.arange(len(start)), first[inv], start, length, head, tail):
        names_of = [data.raw[a : a + n].decode("ascii") for a, n in zip(start.tolist(), length.tolist(), strict=True)]
        names = sorted(set(names_of))
        code = {n: i for i, n in enumerate(names)}
        name = np.fromiter((code[f] for f in names_of), dtype=np.int64, count=len(names_of))
    else:
        distinct = [data.raw[a : a + n].decode("ascii") for a, n in zip(start[first].tolist(), length[first].tolist(), strict=True)]
        order = sorted(range(len(distinct)), key=distinct.__getitem__)
        names = [distinct[i] for i in order]
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        name = rank[inv]
    n = nodes.rows
    return CallTree(
        parent=nodes.column("parent", np.int64),
        depth=nodes.column("depth", np.int64),
        name=name,
        file=np.zeros(n, dtype=np.int64),
        key=nodes.column("key", np.uint64),
        self=nodes.column("own", np.int64)[:, None],
        total=nodes.column("total", np.int64)[:, None],
        root_self=np.array([root_self], dtype=np.int64),
        root_total=np.array([root_total], dtype=np.int64),
        names=np.array(names, dtype=object),
        files=np.array([""], dtype=object),
    )
