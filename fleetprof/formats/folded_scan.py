"""Line scan of plain folded files, numpy over the byte positions of newlines and spaces.

Shared by the folded decoder (:mod:`fleetprof.formats.folded`) and the direct folded →
call-tree path (:mod:`fleetprof.flame.folded_tree`); imports only numpy, so a command
that needs nothing else starts fast.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fleetprof.formats.errors import Limits, ProfileFormatError

MAX_DIGITS = 18
"""Every count of at most 18 digits fits int64."""
CHUNK = 1 << 20
"""Bytes compared per pass of :func:`positions` (its temporaries stay small and in cache)."""


def positions(buf: np.ndarray, low: int, high: int) -> np.ndarray:
    """Ascending int64 positions of the bytes of ``buf`` within ``[low, high]``, found a
    chunk at a time (no temporary the size of the file)."""
    parts = []
    for at in range(0, len(buf), CHUNK):
        chunk = buf[at : at + CHUNK]
        hit = (chunk <= high) if low == 0 else ((chunk >= low) & (chunk <= high))
        found = np.flatnonzero(hit)
        if len(found):
            parts.append(found + at)
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, np.int64)


class PlainLines(NamedTuple):
    """Stack ``i`` is ``buf[starts[i]:last[i]]`` (``last[i]`` is the space before its
    count), with count ``counts[i]``, on 0-based line ``linenos[i]``; blank lines are skipped.
    ``spaces`` holds the position of every space of the file, in order."""

    buf: np.ndarray
    starts: np.ndarray
    last: np.ndarray
    counts: np.ndarray
    linenos: np.ndarray
    spaces: np.ndarray


def check_sample_count(n: int, limits: Limits, fmt: str) -> None:
    """Raise when ``n`` stacks exceed ``limits.max_samples``."""
    if n > limits.max_samples:
        raise ProfileFormatError(fmt, f"{n} stacks exceed the sample limit of {limits.max_samples}")


def scan_plain(raw: bytes, limits: Limits, fmt: str = "folded") -> PlainLines | None:
    """The lines of a plain folded file: ASCII without control characters other than
    ``\\n``, no comment lines, one space before each count of at most 18 digits, no spaces
    around the stack. ``None`` for anything else (the caller takes the general path, which
    also produces every error); the only error raised here is the sample limit."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    if len(buf) == 0 or len(buf) >= 1 << 31 or int(buf.max()) >= 0x80:
        return None
    blank = positions(buf, 0, 32)  # newlines and spaces (and control characters)
    kind = buf[blank]
    if np.any((kind != 10) & (kind != 32)):  # tabs, CR, other control characters
        return None
    nl = blank[kind == 10]
    spaces = blank[kind == 32]
    starts = np.concatenate([np.zeros(1, np.int64), nl + 1])
    ends = np.concatenate([nl, np.array([len(buf)], np.int64)])
    linenos = np.flatnonzero(ends > starts)
    starts, ends = starts[linenos], ends[linenos]
    if len(linenos) == 0 or np.any(buf[ends - 1] == 32) or np.any(buf[starts] == 35):  # trailing space, '#'
        return None
    check_sample_count(len(linenos), limits, fmt)
    at = np.searchsorted(spaces, ends) - 1
    if np.any(at < 0):
        return None
    last = spaces[at]
    digits = ends - last - 1
    if np.any(last < starts) or int(digits.max()) > MAX_DIGITS:
        return None
    counts = np.zeros(len(last), dtype=np.int64)
    active = np.arange(len(last), dtype=np.int64)
    for j in range(int(digits.max())):  # Horner, one digit position at a time
        active = active[digits[active] > j]
        d = buf[last[active] + 1 + j].astype(np.int64) - 48
        if np.any((d < 0) | (d > 9)):
            return None
        counts[active] = counts[active] * 10 + d
    nonempty = last > starts
    if np.any(nonempty & ((buf[starts] == 32) | (buf[np.maximum(last - 1, 0)] == 32))):
        return None  # whitespace to strip around the stack
    return PlainLines(buf, starts, last, counts, linenos, spaces)
