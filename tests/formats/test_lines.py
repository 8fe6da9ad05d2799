import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textprof import stacks

from fleetprof.formats.errors import TRUNCATED_FRAME, Limits, ProfileFormatError
from fleetprof.formats.lines import decode_lines
from fleetprof.model import ValueType


def test_each_line_is_one_sample():
    p = decode_lines(b"a;b;c\na;b\n\na;b;c\r\nx y;z 12\n")
    assert stacks(p) == {("a", "b", "c"): 2, ("a", "b"): 1, ("x y", "z 12"): 1}
    assert p.totals() == [4]
    assert p.sample_types == (ValueType("samples", "count"),)


def test_leading_whitespace_and_empty_frames():
    p = decode_lines(b"  a;;b\na;b\n")
    assert stacks(p) == {("a", "b"): 2}


def test_pyspy_frames_and_sample_rate():
    p = decode_lines(b"main (m.py:1);f (m.py:4)\nmain (m.py:1);f (m.py:5)\n", sample_rate=100)
    assert stacks(p, files=True) == {(("main", "m.py"), ("f", "m.py")): 20_000_000}
    assert p.sample_types == (ValueType("cpu", "nanoseconds"),)
    with pytest.raises(ProfileFormatError) as e:
        decode_lines(b"a\n", sample_rate=0)
    assert e.value.format == "lines"


def test_limits_and_gzip():
    assert stacks(decode_lines(gzip.compress(b"a;b\n"))) == {("a", "b"): 1}
    with pytest.raises(ProfileFormatError, match="sample limit"):
        decode_lines(b"a\nb\nc\n", limits=Limits(max_samples=2))
    p = decode_lines(b"a;b;c;d;e\n", limits=Limits(max_stack_depth=3))
    assert stacks(p) == {(TRUNCATED_FRAME, "d", "e"): 1} and p.truncated_stacks == 1
    with pytest.raises(ProfileFormatError) as e:
        decode_lines(b"a\nb;" + b"y" * 40 + b"\n", limits=Limits(max_string_length=10))
    assert e.value.where == "line 2"


def test_invalid_utf8_and_empty():
    assert stacks(decode_lines(b"\xc3(;b\n")) == {("\ufffd(", "b"): 1}
    assert decode_lines(b"").totals() == [0]
    assert decode_lines(b"\n\n  \n").totals() == [0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b c", "d", "é"]), min_size=1, max_size=5).map(tuple), max_size=40))
def test_counts_match_reference(samples):
    text = "".join(";".join(s) + "\n" for s in samples).encode()
    want: dict[tuple, int] = {}
    for s in samples:
        want[s] = want.get(s, 0) + 1
    p = decode_lines(text)
    assert stacks(p) == want
    assert p.totals() == [len(samples)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_profile_format_error(data):
    try:
        decode_lines(data, limits=Limits(max_stack_depth=4, max_string_length=32))
    except ProfileFormatError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab; \t\r\n(:1)") + ["\x1c", "\x85", "\u2003", "é"]), max_size=50))
def test_small_and_vectorised_paths_agree(text):
    def run(vectorized):
        try:
            p = decode_lines(text.encode(), vectorized=vectorized, limits=Limits(max_stack_depth=3))
            return sorted(p.frames.rows()), sorted(p.nodes.rows()), sorted(p.samples.rows())
        except ProfileFormatError as e:
            return str(e)

    assert run(True) == run(False)
