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


def series_id(labels: dict[str, str]) -> int:
    """Stable id of a series label set (must contain ``service_name``)."""
    return labels_id(labels.items())
