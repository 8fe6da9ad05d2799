"""Protobuf wire-format primitives for building messages by hand (raw bytes).

``varint(v)`` encodes ``v`` modulo 2**64 as a base-128 varint (negative int64 values take
ten bytes, as protobuf writes them); ``field_len(num, payload)`` a length-delimited field.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def varint(v: int) -> bytes:
    """Base-128 varint of ``v`` (two's complement modulo 2**64)."""
    v &= _MASK64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_len(num: int, payload: bytes) -> bytes:
    """Length-delimited field ``num`` (wire type 2) holding ``payload``."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload
