import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textprof import frame_rows, stacks

from fleetprof.formats.errors import TRUNCATED_FRAME, Limits, ProfileFormatError
from fleetprof.formats.folded import _parse_vectorized, decode_folded, encode_folded, parse_frame
from fleetprof.model import ValueType, frame_id

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def test_basic_stacks_totals_and_comments():
    p = decode_folded(b"# a comment\na;b;c 3\n\na;b 2\r\nx 1\na;b 4\n")
    assert stacks(p) == {("a", "b", "c"): 3, ("a", "b"): 6, ("x",): 1}
    assert p.totals() == [10]
    assert p.sample_types == (ValueType("samples", "count"),)
    assert p.default_sample_type == "samples"
    assert p.truncated_stacks == 0


def test_split_at_last_whitespace_frames_keep_spaces():
    p = decode_folded(b"main loop;do some work 5\nroot;tabbed\t7\nroot;wide   2\n")
    assert stacks(p) == {("main loop", "do some work"): 5, ("root", "tabbed"): 7, ("root", "wide"): 2}


def test_empty_stack_counts_at_root_and_empty_frames_dropped():
    # py-spy writes " 2" for samples without a Python stack.
    p = decode_folded(b" 2\na;;b 1\n;c; 4\n")
    assert stacks(p) == {(): 2, ("a", "b"): 1, ("c",): 4}
    assert p.totals() == [7]


def test_custom_sample_type():
    p = decode_folded(b"a 1\n", sample_type=ValueType("alloc_space", "bytes"))
    assert p.sample_types == (ValueType("alloc_space", "bytes"),)


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (b"a;b 1\na;b x\n", 2, "bad count"),
        (b"a 1\n\n# c\nnocount\n", 4, "missing count"),
        (b"a -1\n", 1, "bad count"),
        (b"a 1.5\n", 1, "bad count"),
        (b"a 99999999999999999999\n", 1, "bad count"),
        (b"a 1\nb \xd9\xa3\n", 2, "bad count"),  # a non-ASCII digit
    ],
)
def test_bad_count_names_line(text, line, what):
    with pytest.raises(ProfileFormatError) as e:
        decode_folded(text)
    assert e.value.format == "folded"
    assert e.value.where == f"line {line}"
    assert what in str(e.value)


def test_total_overflow_is_an_error():
    big = str(2**62).encode()
    with pytest.raises(ProfileFormatError, match="overflow"):
        decode_folded(b"a " + big + b"\nb " + big + b"\n")


def test_pyspy_frames_function_and_file():
    text = (
        b'process 4242:"python app.py";thread (0x7f3a2c1b4740): "MainThread";<module> (app.py:31);'
        b"main (app.py:27);hash_loop (app.py:12) 9\n"
        b"thread (4243): Worker-1;Thread.run (threading.py);spin (thr.py) 3\n"
        b"thread (0x7f00);_find_and_load (<frozen importlib._bootstrap>:1176) 1\n"
    )
    p = decode_folded(text)
    assert stacks(p, files=True) == {
        (
            ('process 4242:"python app.py"', ""),
            ('thread (0x7f3a2c1b4740): "MainThread"', ""),
            ("<module>", "app.py"),
            ("main", "app.py"),
            ("hash_loop", "app.py"),
        ): 9,
        (("thread (4243): Worker-1", ""), ("Thread.run", "threading.py"), ("spin", "thr.py")): 3,
        (("thread (0x7f00)", ""), ("_find_and_load", "<frozen importlib._bootstrap>")): 1,
    }
    # Lines are dropped by default, so frames hash like any line-less (name, file) frame.
    assert {r[2] for r in frame_rows(p)} == {0}
    ids = set(p.frames["frame_id"].to_list())
    assert frame_id("hash_loop", "app.py") in ids


def test_pyspy_keep_lines_distinguishes_lines():
    p = decode_folded(b"f (a.py:1);g (a.py:5) 1\nf (a.py:2);g (a.py:5) 1\n", keep_lines=True)
    assert ("f", "a.py", 1) in frame_rows(p) and ("f", "a.py", 2) in frame_rows(p)
    assert len(stacks(p)) == 1  # names only: both stacks are f;g
    q = decode_folded(b"f (a.py:1);g (a.py:5) 1\nf (a.py:2);g (a.py:5) 1\n")
    assert frame_rows(q) == {("f", "a.py", 0), ("g", "a.py", 0)}
    assert stacks(q) == {("f", "g"): 2}


def test_semicolon_inside_pyspy_location_does_not_split():
    p = decode_folded(b"main (dir;x/a.py:3);leaf (c.py:4) 2\nplain;other 1\n")
    assert stacks(p, files=True) == {
        (("main", "dir;x/a.py"), ("leaf", "c.py")): 2,
        (("plain", ""), ("other", "")): 1,
    }


@pytest.mark.parametrize(
    ("frame", "parsed"),
    [
        ("foo (a.py:12)", ("foo", "a.py", 12)),
        ("foo (a.py)", ("foo", "a.py", 0)),
        ("Cls.method (pkg/mod.py:7)", ("Cls.method", "pkg/mod.py", 7)),
        ("<lambda> (x.py:1)", ("<lambda>", "x.py", 1)),
        ("std::vector<int>::push_back(int const&)", ("std::vector<int>::push_back(int const&)", "", 0)),
        ("plain", ("plain", "", 0)),
        ("thread (123)", ("thread (123)", "", 0)),
        (" (a.py:3)", (" (a.py:3)", "", 0)),
    ],
)
def test_parse_frame(frame, parsed):
    assert parse_frame(frame) == parsed


def test_pyspy_parsing_can_be_disabled():
    p = decode_folded(b"foo (a.py:12) 1\n", pyspy_frames=False)
    assert stacks(p, files=True) == {(("foo (a.py:12)", ""),): 1}


def test_invalid_utf8_replaced():
    p = decode_folded(b"a\xff\xfe;b 1\n")
    assert stacks(p) == {("a\ufffd\ufffd", "b"): 1}


def test_gzip_input_and_bomb_limit():
    raw = b"a;b 3\nc 1\n"
    assert stacks(decode_folded(gzip.compress(raw))) == stacks(decode_folded(raw))
    bomb = gzip.compress(b"a 1\n" * 300_000)
    with pytest.raises(ProfileFormatError, match="limit"):
        decode_folded(bomb, limits=Limits(max_decompressed_bytes=1_000_000))


def test_depth_limit_truncates_root_side_with_marker():
    deep = ";".join(f"f{i}" for i in range(10)).encode()
    p = decode_folded(deep + b" 5\na;b 1\n", limits=Limits(max_stack_depth=4))
    assert stacks(p) == {(TRUNCATED_FRAME, "f7", "f8", "f9"): 5, ("a", "b"): 1}
    assert p.truncated_stacks == 1
    assert p.totals() == [6]


def test_sample_count_limit():
    decode_folded(b"a 1\nb 1\n", limits=Limits(max_samples=2))
    with pytest.raises(ProfileFormatError, match="sample limit"):
        decode_folded(b"a 1\nb 1\nc 1\n", limits=Limits(max_samples=2))


def test_string_length_limit_names_line():
    with pytest.raises(ProfileFormatError) as e:
        decode_folded(b"a 1\nok;" + b"x" * 50 + b" 1\n", limits=Limits(max_string_length=20))
    assert e.value.where == "line 2"


def test_sample_rate_to_cpu_nanoseconds():
    p = decode_folded(b"a;b 3\na 1\n", sample_rate=100)
    assert p.sample_types == (ValueType("cpu", "nanoseconds"),)
    assert p.period == 10_000_000 and p.period_type == ValueType("cpu", "nanoseconds")
    assert stacks(p) == {("a", "b"): 30_000_000, ("a",): 10_000_000}
    for bad in (0, -5, 10**10):
        with pytest.raises(ProfileFormatError, match="sampleRate"):
            decode_folded(b"a 1\n", sample_rate=bad)


def test_empty_input():
    p = decode_folded(b"")
    assert p.totals() == [0] and stacks(p) == {}
    assert encode_folded(p) == b""


def test_encode_sorted_sums_and_omits_zero():
    p = decode_folded(b"b;c 2\na 1\nb 0\nb;c 3\n 4\n")
    assert encode_folded(p) == b" 4\na 1\nb;c 5\n"


def test_encode_with_files_round_trips_pyspy_style():
    text = b"<module> (app.py:3);work (lib/w.py:10) 4\nmain (m.py) 1\n"
    p = decode_folded(text, keep_lines=True)
    out = encode_folded(p, with_files=True)
    assert out == b"<module> (app.py:3);work (lib/w.py:10) 4\nmain (m.py) 1\n"
    assert frame_rows(decode_folded(out, keep_lines=True)) == frame_rows(p)


def test_encode_sanitises_separators_in_names():
    import numpy as np

    from fleetprof.model import Stacks, build

    s = Stacks(
        names=["a;b", "c\nd"],
        files=["", ""],
        offsets=np.array([0, 2]),
        frames=np.array([0, 1]),
        values=np.array([[7]]),
    )
    out = encode_folded(build(s, [ValueType("samples", "count")]))
    assert out == b"a:b;c d 7\n"
    assert stacks(decode_folded(out)) == {("a:b", "c d"): 7}


def test_encode_picks_value_column():
    import numpy as np

    from fleetprof.model import Stacks, build

    s = Stacks(names=["a", "b"], files=["", ""], offsets=np.array([0, 1, 2]), frames=np.array([0, 1]),
               values=np.array([[1, 0], [2, 5]]))
    p = build(s, [ValueType("samples", "count"), ValueType("cpu", "nanoseconds")])
    assert encode_folded(p, 0) == b"a 1\nb 2\n"
    assert encode_folded(p, 1) == b"b 5\n"
    assert encode_folded(p) == b"b 5\n"  # default: last type


NAME = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters=";\n\r()\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", exclude_categories=("Cs", "Zs", "Cc")),
    min_size=1,
    max_size=8,
)
STACKS = st.dictionaries(
    st.lists(st.sampled_from(["main", "a b", "work", "λ", "x.y"]) | NAME, min_size=0, max_size=8).map(tuple),
    st.integers(0, 10**12),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(STACKS)
def test_round_trip_preserves_stacks_and_totals(d):
    text = "".join(f"{';'.join(k)} {v}\n" for k, v in d.items()).encode()
    p = decode_folded(text)
    want = {k: v for k, v in d.items() if v}
    assert stacks(p) == want
    assert p.totals() == [sum(d.values())]
    out = encode_folded(p)
    q = decode_folded(out)
    assert stacks(q) == want
    assert q.totals() == p.totals()
    assert encode_folded(q) == out
    assert out.splitlines() == sorted(out.splitlines(), key=lambda b: b.rsplit(b" ", 1)[0].decode())


VALID = b"main;work (w.py:3);leaf 5\nthread (1): T;f (a;b.py:1) 2\n 1\n# c\n"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda i, b: VALID[:i] + b + VALID[i:], st.integers(0, len(VALID)), st.binary(max_size=8)))
def test_arbitrary_bytes_only_raise_profile_format_error(data):
    try:
        p = decode_folded(data, limits=Limits(max_stack_depth=3, max_string_length=64))
    except ProfileFormatError:
        return
    assert len(p.totals()) == 1


def test_real_pyspy_recording(tmp_path):
    """Record the workload with py-spy (needs ptrace: root or CAP_SYS_PTRACE) and find
    its functions. Never skipped: a py-spy failure fails the test with its output."""
    out = tmp_path / "raw.txt"
    pyspy = Path(sys.executable).parent / "py-spy"
    cmd = [str(pyspy), "record", "--format", "raw", "--rate", "200", "--duration", "3", "-o", str(out),
           "--", sys.executable, str(DATA / "pyspy_workload.py"), "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0 or not out.exists():
        # Without ptrace rights py-spy may still sample a child it launched non-blocking.
        res = subprocess.run([*cmd[:2], "--nonblocking", *cmd[2:]], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and out.exists(), f"py-spy failed: {res.stdout}\n{res.stderr}"
    p = decode_folded(out.read_bytes())
    names = set(p.frames["name"].to_list())
    assert {"hash_loop", "json_roundtrip", "main"} <= names
    files = dict(zip(p.frames["name"].to_list(), p.frames["file"].to_list(), strict=True))
    assert files["hash_loop"] == "pyspy_workload.py"
    st_ = stacks(p)
    hash_total = sum(v for k, v in st_.items() if "hash_loop" in k)
    json_total = sum(v for k, v in st_.items() if "json_roundtrip" in k)
    assert hash_total > 0 and json_total > 0
    assert p.totals()[0] == sum(st_.values()) >= 100


def test_comment_lines_versus_hash_frames():
    p = decode_folded(b"# generated by a tool\n#root;x 3\n# another comment\n")
    assert stacks(p) == {("#root", "x"): 3}


def canonical(p):
    """Order-independent content of a profile's tables."""
    return (
        p.sample_types,
        p.truncated_stacks,
        sorted(p.frames.rows()),
        sorted(p.nodes.rows()),
        sorted(p.samples.rows()),
    )


def outcome(fn, data, **kw):
    try:
        return ("ok", canonical(fn(data, **kw)))
    except ProfileFormatError as e:
        return ("error", str(e))


TRICKY = st.lists(
    st.sampled_from(list("ab;# 0123:().py\t\r\n") + ["\x1c", "\x85", "\xa0", "\u2003", "\u3000", "\ufeff", "é", "٣", "thread (", "process 1:", " (f;g.py:1)"]),
    max_size=40,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(TRICKY, st.booleans())
def test_small_and_vectorised_paths_agree(text, keep_lines):
    data = text.encode()
    kw = {"keep_lines": keep_lines, "limits": Limits(max_stack_depth=3, max_string_length=12)}
    assert outcome(decode_folded, data, vectorized=True, **kw) == outcome(decode_folded, data, vectorized=False, **kw)


PLAIN = st.lists(
    st.sampled_from(list("ab;# 0123:().py\n") + ["x 12\n", " 5\n", "a;b 1\n", "#c 3\n", "a 99999999999999999\n", ";;"]),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(PLAIN, st.booleans())
def test_byte_level_parser_agrees_with_small_path(text, keep_lines):
    from fleetprof.formats.folded import _parse_bytes

    data = text.encode()
    kw = {"keep_lines": keep_lines, "limits": Limits(max_stack_depth=3, max_string_length=12)}
    assert outcome(decode_folded, data, vectorized=True, **kw) == outcome(decode_folded, data, vectorized=False, **kw)
    parsed = _parse_bytes(data, Limits())
    if parsed is not None:  # where it answers, it answers like the string-kernel path
        stacks, counts, linenos = parsed
        ref_stacks, ref_counts, ref_linenos = _parse_vectorized(data.decode(), Limits())
        assert stacks.to_list() == ref_stacks.to_list()
        assert counts.tolist() == ref_counts.tolist()
        assert linenos.tolist() == ref_linenos.tolist()


def test_byte_level_parser_takes_plain_files_and_declines_the_rest():
    from fleetprof.formats.folded import _parse_bytes

    stacks, counts, linenos = _parse_bytes(b"a;bb;a-very-long-frame-name 3\n 2\n\nx;y 12345678901\n", Limits())
    assert stacks.to_list() == ["a;bb;a-very-long-frame-name", "", "x;y"]
    assert counts.tolist() == [3, 2, 12345678901]
    assert linenos.tolist() == [0, 1, 3]
    for text in [b"a 1\r\n", b"a\t1\n", b"# c\na 1\n", b"a 1 \n", b"a  1\n", b" a 1\n", b"a x\n", b"\xc3\xa9 1\n", b"a\n"]:
        assert _parse_bytes(text, Limits()) is None, text
    assert _parse_bytes(b"a 1234567890123456789\n", Limits()) is None  # 19 digits: the general path checks


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=3000), st.integers(0, 2**64 - 1))
def test_dense_codes_group_equal_keys(small, salt):
    from fleetprof.formats.folded import _dense_codes

    keys = (np.array(small, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64(salt)
    codes, first = _dense_codes(keys)
    assert len(first) == len(set(keys.tolist()))
    assert (keys[first[codes]] == keys).all()
    assert codes.min(initial=0) >= 0 and codes.max(initial=-1) < len(first)


def test_dense_codes_grow_past_the_sample_estimate():
    from fleetprof.formats.folded import _dense_codes

    keys = np.concatenate([np.zeros(70_000, np.uint64), np.arange(1, 50_001, dtype=np.uint64) * np.uint64(2**40 + 7)])
    codes, first = _dense_codes(keys)
    assert len(first) == 50_001
    assert (keys[first[codes]] == keys).all()


def test_intern_survives_a_hash_collision(monkeypatch):
    import polars as pl

    from fleetprof.formats import folded

    tokens = pl.Series("f", ["a", "b", "a", "c"])
    monkeypatch.setattr(folded, "_dense_codes", lambda keys: (np.zeros(len(keys), np.int64), np.zeros(1, np.int64)))
    codes, uniq = folded._intern(tokens)
    assert [uniq[int(c)] for c in codes] == ["a", "b", "a", "c"]
