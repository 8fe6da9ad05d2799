"""Folded bytes straight to a pruned flame-graph call tree, for ``fleetprof flamegraph``.

Contract of :func:`folded_call_tree`: for a plain folded file (see
:func:`~fleetprof.formats.folded_scan.scan_plain`) whose frames carry no py-spy location
(no ``" ("``), no empty frame and no stack beyond the limits, the result equals
``call_tree(decode_folded(raw), 0, min_total=min_total)`` pruned by ``prune_narrow`` at
``min_total(root total)``: the same nodes, parents, depths, names, self and total values
(rows may come in another order; the layout orders them). ``key`` holds a path hash that is
unique within this tree but is not the model's name-path id, so the tree must not be
``combine``-d with another. Anything else returns ``None`` and the caller takes the general
decoder, which also reports every error.

How: the call tree is built level by level over the lines (numpy, one iteration per depth):
at each depth the lines still alive are grouped by (parent node, frame bytes), using a
64-bit hash of the frame's bytes read eight at a time and then checking every frame
byte-for-byte against its group's first one. A group whose total is below the threshold is
dropped with all its lines, so narrow subtrees are never read, and only the frames that
survive become Python strings. Nothing here imports polars or numba.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fleetprof.formats.errors import DEFAULT_LIMITS, Limits
from fleetprof.formats.folded_scan import scan_plain
from fleetprof.render.layout import CallTree

_INT64_MAX = (1 << 63) - 1
_SEMI = 59
_P1 = np.uint64(0x9E3779B97F4A7C15)
_P2 = np.uint64(0xBF58476D1CE4E5B9)
_P3 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    h = (h ^ (h >> np.uint64(30))) * _P2
    h = (h ^ (h >> np.uint64(27))) * _P3
    return h ^ (h >> np.uint64(31))


class _Bytes:
    """Unaligned little-endian 8-byte reads at any position of ``raw`` (zero-padded)."""

    def __init__(self, raw: bytes) -> None:
        self.padded = raw + b"\0" * 8
        self.words = np.ndarray((len(raw) + 1,), dtype="<u8", buffer=self.padded, strides=(1,))

    def word(self, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
        """The ``min(length, 8)`` bytes at ``pos`` as a uint64 (higher bytes zero)."""
        w = self.words[pos]
        short = length < 8
        if short.any():
            shift = (np.clip(length[short], 0, 8) * 8).astype(np.uint64)
            w[short] &= (np.uint64(1) << shift) - np.uint64(1)
        return w

    def hashes(self, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        """A 64-bit hash of every span ``[start, start + length)``."""
        with np.errstate(over="ignore"):
            h = _mix(length.astype(np.uint64) * _P1)
            rows = np.arange(len(start))
            r = 0
            while len(rows):
                w = self.word(start[rows] + r, length[rows] - r)
                h[rows] = _mix((h[rows] ^ w) * _P1)
                r += 8
                rows = rows[length[rows] > r]
        return h

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


def folded_call_tree(
    raw: bytes,
    *,
    min_total: Callable[[int], float],
    limits: Limits = DEFAULT_LIMITS,
) -> CallTree | None:
    """The pruned call tree of plain folded ``raw`` (see the module contract), or ``None``."""
    lines = scan_plain(raw, limits)
    if lines is None or b" (" in raw or b";;" in raw:
        return None
    buf, starts, last, counts = lines.buf, lines.starts, lines.last, lines.counts
    if float(counts.astype(np.float64).sum()) > _INT64_MAX or int((last - starts).max()) > limits.max_string_length:
        return None
    nonempty = last > starts
    if np.any(buf[starts[nonempty]] == _SEMI) or np.any(buf[last[nonempty] - 1] == _SEMI):
        return None  # an empty first or last frame
    semis = np.flatnonzero(buf == _SEMI)
    sep = np.searchsorted(semis, starts)  # the separator ending each line's current frame
    sep_end = np.searchsorted(semis, last)
    nframes = np.where(nonempty, sep_end - sep + 1, 0)
    if int(nframes.max()) > limits.max_stack_depth:
        return None
    root_total = int(counts.sum())
    threshold = min_total(root_total)
    root_self = int(counts[~nonempty].sum())
    return _grow(_Bytes(raw), semis, starts, last, counts, sep, sep_end, nframes, root_self, root_total, threshold)


def _grow(
    data: _Bytes, semis: np.ndarray, starts: np.ndarray, last: np.ndarray, counts: np.ndarray,
    sep: np.ndarray, sep_end: np.ndarray, nframes: np.ndarray, root_self: int, root_total: int, threshold: float,
) -> CallTree | None:
    """Level-by-level grouping of the lines (see the module docstring)."""
    alive = np.flatnonzero(nframes > 0)
    pos = starts.copy()  # start of each line's current frame
    node = np.full(len(starts), -1, dtype=np.int64)  # each line's node at the previous depth
    parents, depths, tok_start, tok_len, keys, selfs, totals = ([] for _ in range(7))
    rows = 0
    depth = 0
    prev_keys = np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        while len(alive):
            depth += 1
            s = sep[alive]
            at_sep = s < sep_end[alive]
            end = np.where(at_sep, semis[np.minimum(s, len(semis) - 1)], last[alive])
            start = pos[alive]
            length = end - start
            h = data.hashes(start, length)
            par = node[alive]
            pkey = prev_keys[par - (rows - len(prev_keys))] if depth > 1 else np.zeros(len(alive), np.uint64)
            key = _mix((pkey * _P1) ^ h)
            order = np.argsort(key, kind="stable")
            sk = key[order]
            first = np.ones(len(sk), dtype=bool)
            first[1:] = sk[1:] != sk[:-1]
            group_start = np.flatnonzero(first)
            group = np.cumsum(first) - 1
            rep = order[group_start][group]  # each line's group representative (index into alive)
            o_par, o_len, o_start = par[order], length[order], start[order]
            r_par, r_len, r_start = par[rep], length[rep], start[rep]
            if np.any(o_par != r_par) or np.any(o_len != r_len) or not data.equal(o_start, r_start, o_len):
                return None  # a hash collision: leave it to the exact general path
            c = counts[alive][order]
            total = np.add.reduceat(c, group_start)
            ends_here = (nframes[alive] == depth)[order]
            self_vals = np.add.reduceat(np.where(ends_here, c, 0), group_start)
            keep = total >= threshold
            new_row = np.cumsum(keep) - 1 + rows
            g_first = order[group_start[keep]]
            parents.append(par[g_first])
            depths.append(np.full(len(g_first), depth, dtype=np.int64))
            tok_start.append(start[g_first])
            tok_len.append(length[g_first])
            keys.append(sk[group_start[keep]])
            selfs.append(self_vals[keep])
            totals.append(total[keep])
            prev_keys = keys[-1]
            line_kept = keep[group]
            line = alive[order]
            node[line] = np.where(line_kept, new_row[group], -1)
            go_on = line_kept & ~ends_here
            cont = line[go_on]
            pos[cont] = end[order][go_on] + 1
            sep[cont] += 1
            rows += int(keep.sum())
            alive = np.sort(cont)
    return _tree(data, parents, depths, tok_start, tok_len, keys, selfs, totals, root_self, root_total)


def _tree(
    data: _Bytes, parents: list, depths: list, tok_start: list, tok_len: list, keys: list,
    selfs: list, totals: list, root_self: int, root_total: int,
) -> CallTree:
    """The :class:`CallTree` of the kept groups (names decoded once per kept node)."""
    cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))  # noqa: E731
    start, length = cat(tok_start, np.int64), cat(tok_len, np.int64)
    text = data.padded
    frames = [text[a : a + n].decode("ascii") for a, n in zip(start.tolist(), length.tolist(), strict=True)]
    names = sorted(set(frames))
    code = {n: i for i, n in enumerate(names)}
    n = len(frames)
    return CallTree(
        parent=cat(parents, np.int64),
        depth=cat(depths, np.int64),
        name=np.fromiter((code[f] for f in frames), dtype=np.int64, count=n),
        file=np.zeros(n, dtype=np.int64),
        key=cat(keys, np.uint64),
        self=cat(selfs, np.int64)[:, None],
        total=cat(totals, np.int64)[:, None],
        root_self=np.array([root_self], dtype=np.int64),
        root_total=np.array([root_total], dtype=np.int64),
        names=np.array(names, dtype=object),
        files=np.array([""], dtype=object),
    )
