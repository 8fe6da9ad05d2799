"""BLAKE2b with an 8-byte digest (RFC 7693, unkeyed) over many messages in one compiled
call: the hash behind frame and label set ids (:mod:`.hashing`), batched.

Contract: :func:`digests64(data, offsets)` returns, for every message
``data[offsets[i]:offsets[i + 1]]`` (``data`` uint8), the little-endian uint64 of
``hashlib.blake2b(message, digest_size=8).digest()`` — bit for bit (the tests compare
with :mod:`hashlib` on random messages of every length around the block size). It exists
because calling :mod:`hashlib` once per message costs about a microsecond of interpreter
overhead per frame, several times the hash itself.
"""

from __future__ import annotations

import numpy as np

from fleetprof.numba_cache import njit

_IV = np.array(
    [
        0x6A09E667F3BCC908,
        0xBB67AE8584CAA73B,
        0x3C6EF372FE94F82B,
        0xA54FF53A5F1D36F1,
        0x510E527FADE682D1,
        0x9B05688C2B3E6C1F,
        0x1F83D9ABFB41BD6B,
        0x5BE0CD19137E2179,
    ],
    dtype=np.uint64,
)
_PARAM = np.uint64(0x01010008)
"""Parameter block word 0: digest length 8, no key, fanout 1, depth 1."""


@njit(cache=True, nogil=True, inline="always")
def _rotr(x: np.uint64, n: int) -> np.uint64:
    return (x >> np.uint64(n)) | (x << np.uint64(64 - n))


@njit(cache=True, nogil=True, inline="always")
def _g(a: np.uint64, b: np.uint64, c: np.uint64, d: np.uint64, x: np.uint64, y: np.uint64):
    a = a + b + x
    d = _rotr(d ^ a, 32)
    c = c + d
    b = _rotr(b ^ c, 24)
    a = a + b + y
    d = _rotr(d ^ a, 16)
    c = c + d
    b = _rotr(b ^ c, 63)
    return a, b, c, d


@njit(cache=True, nogil=True, inline="always")
def _round(v, m, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15):
    """One round on the working vector ``v`` (a 16-tuple: registers) with message word
    schedule ``s0 .. s15`` (a row of RFC 7693's SIGMA)."""
    v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 = v
    v0, v4, v8, v12 = _g(v0, v4, v8, v12, m[s0], m[s1])
    v1, v5, v9, v13 = _g(v1, v5, v9, v13, m[s2], m[s3])
    v2, v6, v10, v14 = _g(v2, v6, v10, v14, m[s4], m[s5])
    v3, v7, v11, v15 = _g(v3, v7, v11, v15, m[s6], m[s7])
    v0, v5, v10, v15 = _g(v0, v5, v10, v15, m[s8], m[s9])
    v1, v6, v11, v12 = _g(v1, v6, v11, v12, m[s10], m[s11])
    v2, v7, v8, v13 = _g(v2, v7, v8, v13, m[s12], m[s13])
    v3, v4, v9, v14 = _g(v3, v4, v9, v14, m[s14], m[s15])
    return (v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15)


@njit(cache=True, nogil=True)
def _compress(h: np.ndarray, m: np.ndarray, t: int, last: bool) -> None:
    """The compression function F on state ``h`` and block ``m``: twelve rounds, each
    with its row of SIGMA spelled out so that every index is a constant."""
    v14 = ~_IV[6] if last else _IV[6]
    v = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], _IV[0], _IV[1], _IV[2], _IV[3], _IV[4] ^ np.uint64(t), _IV[5], v14, _IV[7])
    v = _round(v, m, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    v = _round(v, m, 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3)
    v = _round(v, m, 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4)
    v = _round(v, m, 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8)
    v = _round(v, m, 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13)
    v = _round(v, m, 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9)
    v = _round(v, m, 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11)
    v = _round(v, m, 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10)
    v = _round(v, m, 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5)
    v = _round(v, m, 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0)
    v = _round(v, m, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
    v = _round(v, m, 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3)
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


@njit(cache=True, nogil=True, inline="always")
def word8(data: np.ndarray, p: int) -> np.uint64:
    """The little-endian uint64 of ``data[p:p + 8]`` (uint8; LLVM makes it one load)."""
    return (
        np.uint64(data[p])
        | (np.uint64(data[p + 1]) << np.uint64(8))
        | (np.uint64(data[p + 2]) << np.uint64(16))
        | (np.uint64(data[p + 3]) << np.uint64(24))
        | (np.uint64(data[p + 4]) << np.uint64(32))
        | (np.uint64(data[p + 5]) << np.uint64(40))
        | (np.uint64(data[p + 6]) << np.uint64(48))
        | (np.uint64(data[p + 7]) << np.uint64(56))
    )


@njit(cache=True, nogil=True, inline="always")
def _block(data: np.ndarray, pos: int, n: int, m: np.ndarray) -> None:
    """Message words of the ``n <= 128`` bytes at ``data[pos:]``, zero padded."""
    full = n >> 3
    for w in range(full):
        m[w] = word8(data, pos + 8 * w)
    for w in range(full, 16):
        m[w] = 0
    tail = np.uint64(0)
    for k in range(n & 7):
        tail |= np.uint64(data[pos + 8 * full + k]) << np.uint64(8 * k)
    if n & 7:
        m[full] = tail


@njit(cache=True, nogil=True)
def _digests(data: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    h = np.empty(8, dtype=np.uint64)
    m = np.empty(16, dtype=np.uint64)
    for i in range(len(offsets) - 1):
        lo, hi = offsets[i], offsets[i + 1]
        h[:] = _IV
        h[0] ^= _PARAM
        pos = lo
        while True:
            n = min(128, hi - pos)
            _block(data, pos, n, m)
            pos += n
            last = pos >= hi
            _compress(h, m, pos - lo, last)
            if last:
                break
        out[i] = h[0]


def digests64(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """BLAKE2b-64 of every message ``data[offsets[i]:offsets[i + 1]]`` (module contract)."""
    out = np.empty(max(len(offsets) - 1, 0), dtype=np.uint64)
    _digests(np.ascontiguousarray(data, dtype=np.uint8), np.ascontiguousarray(offsets, dtype=np.int64), out)
    return out
