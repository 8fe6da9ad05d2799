"""Exact group-by-sum of int64 values keyed by uint64 ids: the kernel of sample merging.

:func:`sum_by_key` is a vectorised open-addressing hash table (multiplicative hash, linear
probing) driven by numpy. Each table entry holds a key and its accumulators side by side,
so finding a row's slot (one gather) and adding its values there (``np.add.at``) touch
the same cache line. Rows are processed in small chunks so those lines are still cached
when the values are added; only rows whose key is not in its home slot enter the probe
loop, where new keys claim empty slots. The table doubles past a quarter load. The cost is
a small multiple of ``numpy.bincount`` on dense ids, and several times faster than a
general hash group-by on two cores.

Contract: ``sum_by_key(keys, values) -> (unique_keys, sums)``; ``keys`` uint64 ``(N,)``,
``values`` int64 ``(N,)`` or ``(N, T)``. ``unique_keys`` holds each distinct key once (in
no particular order) and ``sums`` the exact int64 sums of the rows with that key (same
shape convention as ``values``; int64 wraps only where int64 arithmetic itself would).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
CHUNK = 1 << 15
"""Rows per chunk: small enough that a chunk's table lines stay in cache."""


class _Full(Exception):
    """The table passed its maximum load while claiming slots (grow it and retry)."""


class _Table:
    """``entries[:, 0]`` = key (0 = empty; key 0 is summed aside), ``entries[:, 1:]`` = sums."""

    def __init__(self, bits: int, width: int) -> None:
        self.bits = bits
        self.entries = np.zeros((1 << bits, 1 + width), dtype=np.uint64)
        self.keys = self.entries[:, 0]
        self.sums = self.entries[:, 1:].view(np.int64)
        self.count = 0
        self._stamp: np.ndarray | None = None

    def _distinct(self, slots: np.ndarray) -> int:
        """Number of distinct values in ``slots`` (a scatter and a gather, no sort)."""
        if self._stamp is None:
            self._stamp = np.empty(self.size, dtype=np.int64)
        pos = np.arange(len(slots), dtype=np.int64)
        self._stamp[slots] = pos
        return int(np.count_nonzero(self._stamp[slots] == pos))

    @property
    def size(self) -> int:
        return 1 << self.bits

    def slots(self, keys: np.ndarray) -> np.ndarray:
        """Slot of every non-zero key of ``keys``, claiming empty slots for new keys."""
        with np.errstate(over="ignore"):
            slot = ((keys * _GOLDEN) >> np.uint64(64 - self.bits)).view(np.int64)
        todo = np.flatnonzero(self.keys[slot] != keys)
        mask = self.size - 1
        tk = self.keys
        while len(todo):
            s = slot[todo]
            k = keys[todo]
            cur = tk[s]
            empty = cur == 0
            if empty.any():
                se = s[empty]
                tk[se] = k[empty]  # among rival keys for one slot, the last write wins
                self.count += self._distinct(se)
                if self.count * 4 > self.size * 3:
                    raise _Full
                cur = tk[s]
            miss = cur != k
            todo = todo[miss]
            slot[todo] = (s[miss] + 1) & mask
        return slot

    def grown(self) -> _Table:
        """A table twice as large holding the same keys and sums."""
        out = _Table(self.bits + 1, self.sums.shape[1])
        used = np.flatnonzero(self.keys != 0)
        new = out.slots(self.keys[used])
        out.sums[new] = self.sums[used]
        return out


def sum_by_key(keys: np.ndarray, values: np.ndarray, *, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``keys`` and the exact int64 sums of ``values`` per key (module contract)."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    vals = np.asarray(values, dtype=np.int64)
    flat = vals.ndim == 1
    n = len(keys)
    vals2 = vals.reshape(n, 1) if flat else vals
    width = vals2.shape[1]
    table = _Table(max(10, min(n, 1 << 20).bit_length()), width)
    has_zero = bool(n) and not keys.all()
    zero_sum = np.zeros(width, dtype=np.int64)
    for lo in range(0, n, chunk):
        k = keys[lo : lo + chunk]
        v = vals2[lo : lo + chunk]
        if has_zero:
            zero = k == 0
            if zero.any():
                zero_sum += v[zero].sum(axis=0)
                k, v = k[~zero], v[~zero]
        while True:
            try:
                slot = table.slots(k)
                break
            except _Full:  # keys claimed so far stay (with zero sums); retry larger
                table = table.grown()
        for j in range(width):
            np.add.at(table.sums[:, j], slot, v[:, j])
        if table.count * 4 > table.size:
            table = table.grown()
    used = np.flatnonzero(table.keys != 0)
    out_keys = table.keys[used]
    out_sums = table.sums[used]
    if has_zero:
        out_keys = np.concatenate([out_keys, np.zeros(1, np.uint64)])
        out_sums = np.concatenate([out_sums, zero_sum[None, :]])
    return out_keys, (out_sums[:, 0].copy() if flat else out_sums)
