"""Errors and limits shared by every decoder.

Every decoder raises :class:`ProfileFormatError` (never another exception type) for bad
input, naming the format and the offending field or byte offset. :class:`Limits` holds the
configurable bounds; decoders enforce them and never allocate past them.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

TRUNCATED_FRAME = "[truncated]"
"""Name of the marker frame that replaces the root-most frames of an over-deep stack."""


class ProfileFormatError(ValueError):
    """Bad profile input. ``format`` names the decoder, ``where`` the field or offset."""

    def __init__(self, fmt: str, message: str, where: str | None = None) -> None:
        self.format = fmt
        self.where = where
        self.reason = message
        at = f" at {where}" if where else ""
        super().__init__(f"{fmt}: {message}{at}")


@dataclass(frozen=True)
class Limits:
    """Decoder bounds. Defaults fit real agents with a wide margin."""

    max_decompressed_bytes: int = 256 * 1024 * 1024
    max_stack_depth: int = 1024
    max_string_length: int = 64 * 1024
    max_samples: int = 20_000_000
    max_labels_per_sample: int = 64


DEFAULT_LIMITS = Limits()

GZIP_MAGIC = b"\x1f\x8b"


def maybe_gunzip(data: bytes, fmt: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Gunzip ``data`` if it starts with the gzip magic (never trust extensions), enforcing
    ``limits.max_decompressed_bytes`` while streaming (a gzip bomb stops at the limit).
    Concatenated gzip members are decompressed in turn, as ``gzip``/``zcat`` do."""
    if not data.startswith(GZIP_MAGIC):
        if len(data) > limits.max_decompressed_bytes:
            raise ProfileFormatError(fmt, f"input of {len(data)} bytes exceeds the {limits.max_decompressed_bytes}-byte limit")
        return data
    out = bytearray()
    cap = limits.max_decompressed_bytes
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = rest
            while chunk and not d.eof:
                out += d.decompress(chunk, cap + 1 - len(out))
                if len(out) > cap:
                    raise ProfileFormatError(fmt, f"decompressed size exceeds the {cap}-byte limit")
                chunk = d.unconsumed_tail
            if not d.eof:
                raise ProfileFormatError(fmt, "truncated gzip stream", f"byte {len(data)}")
            rest = d.unused_data
            if rest and not rest.startswith(GZIP_MAGIC):
                if rest.strip(b"\0"):
                    raise ProfileFormatError(fmt, "trailing garbage after gzip stream", f"byte {len(data) - len(rest)}")
                break
    except (zlib.error, gzip.BadGzipFile, EOFError) as e:
        raise ProfileFormatError(fmt, f"bad gzip data ({e})") from None
    return bytes(out)


def safe_text(raw: bytes, fmt: str, where: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Decode UTF-8 with replacement; enforce ``max_string_length``."""
    if len(raw) > limits.max_string_length:
        raise ProfileFormatError(fmt, f"string of {len(raw)} bytes exceeds the {limits.max_string_length}-byte limit", where)
    return raw.decode("utf-8", "replace")
