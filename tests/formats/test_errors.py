"""maybe_gunzip: magic detection, limits while streaming, concatenated members, bad data."""

from __future__ import annotations

import gzip

import pytest

from fleetprof.formats.errors import Limits, ProfileFormatError, maybe_gunzip, safe_text


def test_raw_passes_through_and_is_bounded() -> None:
    assert maybe_gunzip(b"abc", "x") == b"abc"
    with pytest.raises(ProfileFormatError, match="limit"):
        maybe_gunzip(b"a" * 11, "x", Limits(max_decompressed_bytes=10))


def test_members_are_concatenated() -> None:
    assert maybe_gunzip(gzip.compress(b"hello ") + gzip.compress(b"world"), "x") == b"hello world"


def test_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))
    with pytest.raises(ProfileFormatError, match="decompressed size exceeds the 1048576-byte limit"):
        maybe_gunzip(bomb, "pprof", Limits(max_decompressed_bytes=1 << 20))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (gzip.compress(b"payload")[:-5], "truncated"),
        (b"\x1f\x8b\x08\x00garbage-garbage", "bad gzip"),
        (gzip.compress(b"payload") + b"junk", "trailing garbage"),
    ],
)
def test_bad_gzip_is_a_format_error(data: bytes, message: str) -> None:
    with pytest.raises(ProfileFormatError, match=message) as e:
        maybe_gunzip(data, "pprof")
    assert e.value.format == "pprof"


def test_safe_text_replaces_invalid_utf8_and_bounds_length() -> None:
    assert safe_text(b"a\xffb", "x", "string_table[3]") == "a\ufffdb"
    with pytest.raises(ProfileFormatError, match=r"string_table\[3\]"):
        safe_text(b"a" * 9, "x", "string_table[3]", Limits(max_string_length=8))
