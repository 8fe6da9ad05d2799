import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textprof import stacks

from fleetprof.formats.detect import ENCODE_FORMATS, FORMATS, decode, detect_format, encode
from fleetprof.formats.errors import Limits, ProfileFormatError
from fleetprof.formats.folded import decode_folded, encode_folded
from fleetprof.formats.speedscope import encode_speedscope
from fleetprof.model import Stacks, ValueType, build

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "pprof"
PPROF_FILES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".gz", ".pprof"))
FOLDED = b"main;work 5\nmain;idle 2\n"
SPEEDSCOPE = encode_speedscope(decode_folded(FOLDED))


def test_formats_constant():
    assert FORMATS == ("pprof", "folded", "speedscope", "lines", "pushrequest", "jfr")
    assert set(ENCODE_FORMATS) == {"pprof", "folded", "speedscope", "flamebearer", "tree"}


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (FOLDED, "folded"),
        (b"# comment\n\n" + FOLDED, "folded"),
        (b"a;b 1\r\nc\t22\r\n", "folded"),
        (gzip.compress(FOLDED), "folded"),
        (b"main;work\nmain;idle\nmain;work\n", "lines"),
        (gzip.compress(b"a;b\nc\n"), "lines"),
        (SPEEDSCOPE, "speedscope"),
        (b"\xef\xbb\xbf  \n" + SPEEDSCOPE, "speedscope"),
        (gzip.compress(SPEEDSCOPE), "speedscope"),
        (b"", "folded"),
        (b"\n  \n", "folded"),
        ('fünf;straße 3\n'.encode(), "folded"),
    ],
)
def test_detect_text_formats(data, fmt):
    assert detect_format(data) == fmt


def test_detect_mostly_counted_lines_is_folded():
    # One bad line among many counted ones is still folded (the decoder then names the line).
    data = b"".join(b"f%d 1\n" % i for i in range(30)) + b"oops\n"
    assert detect_format(data) == "folded"
    with pytest.raises(ProfileFormatError, match="line 31"):
        decode(data)


@pytest.mark.parametrize("path", PPROF_FILES, ids=lambda p: p.name)
def test_detect_pprof_fixtures(path):
    assert detect_format(path.read_bytes()) == "pprof"


def test_fixtures_present():
    assert len(PPROF_FILES) >= 10


def test_detect_pushrequest_from_pyroscope_io():
    body = (DATA / "pyroscope_io_1.4_push.body.gz").read_bytes()
    assert detect_format(body) == "pushrequest"
    assert detect_format(gzip.decompress(body)) == "pushrequest"


@pytest.mark.parametrize("data", [b"\x00\x01\x02\x03", b"\xff\xff\xff", b"\x07garbage\x00"])
def test_detect_unknown_binary_raises(data):
    with pytest.raises(ProfileFormatError) as e:
        detect_format(data)
    assert e.value.format == "detect"


def test_detect_bad_gzip_goes_to_pprof_decoder_error():
    bad = b"\x1f\x8b\x08\x00garbage"
    assert detect_format(bad) == "pprof"
    with pytest.raises(ProfileFormatError):
        decode(bad)


def test_decode_dispatch_text_formats():
    assert stacks(decode(FOLDED)) == {("main", "work"): 5, ("main", "idle"): 2}
    assert stacks(decode(b"a;b\na;b\n")) == {("a", "b"): 2}
    assert stacks(decode(SPEEDSCOPE)) == {("main", "work"): 5, ("main", "idle"): 2}
    # An explicit format wins over detection.
    assert stacks(decode(b"a;b 3\n", "lines")) == {("a", "b 3"): 1}
    p = decode(FOLDED, sample_rate=100)
    assert p.sample_types == (ValueType("cpu", "nanoseconds"),) and p.totals() == [70_000_000]


def test_decode_unknown_format():
    with pytest.raises(ProfileFormatError, match="unknown input format"):
        decode(FOLDED, "yaml")


def test_decode_passes_limits_and_keep_lines():
    with pytest.raises(ProfileFormatError, match="sample limit"):
        decode(FOLDED, limits=Limits(max_samples=1))
    p = decode(b"f (a.py:3) 1\n", keep_lines=True)
    assert p.frames["line"].to_list() == [3]


@pytest.mark.parametrize("path", PPROF_FILES[:6], ids=lambda p: p.name)
def test_decode_pprof_dispatch(path):
    from fleetprof.formats.pprof import decode_pprof

    data = path.read_bytes()
    try:
        want = decode_pprof(data)
    except ProfileFormatError:
        with pytest.raises(ProfileFormatError):
            decode(data)
        return
    got = decode(data)
    assert got.sample_types == want.sample_types
    assert got.totals() == want.totals()


def test_decode_pushrequest_merges_series():
    from fleetprof.formats.pushrequest import decode_push_request

    body = (DATA / "pyroscope_io_1.4_push.body.gz").read_bytes()
    series = decode_push_request(body)
    p = decode(body)
    assert p.sample_types == series[0].profile.sample_types
    assert p.totals() == [sum(s.profile.totals()[i] for s in series) for i in range(len(p.sample_types))]


def _two_type_profile():
    s = Stacks(
        names=["main", "work", "idle"],
        files=["m.py", "w.py", ""],
        offsets=[0, 2, 4, 4],
        frames=[0, 1, 0, 2],
        values=[[5, 50], [2, 20], [1, 10]],
    )
    import numpy as np

    s.offsets = np.asarray(s.offsets)
    s.frames = np.asarray(s.frames)
    s.values = np.asarray(s.values)
    return build(s, [ValueType("samples", "count"), ValueType("cpu", "nanoseconds")])


def test_encode_folded_and_speedscope_round_trip():
    p = _two_type_profile()
    assert encode(p, "folded") == encode_folded(p, 1) == b" 10\nmain;idle 20\nmain;work 50\n"
    assert encode(p, "folded", type_index=0) == b" 1\nmain;idle 2\nmain;work 5\n"
    sp = encode(p, "speedscope", type_index=0)
    assert detect_format(sp) == "speedscope"
    assert stacks(decode(sp)) == stacks(p, 0)


def test_encode_pprof_round_trip():
    p = _two_type_profile()
    out = encode(p, "pprof")
    assert detect_format(out) == "pprof"
    q = decode(out)
    assert [str(t) for t in q.sample_types] == [str(t) for t in p.sample_types]
    assert stacks(q, 0) == stacks(p, 0) and stacks(q, 1) == stacks(p, 1)
    one = decode(encode(p, "pprof", type_index=0))
    assert len(one.sample_types) == 1 and stacks(one) == stacks(p, 0)


def test_encode_flamebearer_and_tree():
    p = _two_type_profile()
    fb = json.loads(encode(p, "flamebearer"))
    assert fb["flamebearer"]["numTicks"] == 80
    assert {"main", "work", "idle"} <= set(fb["flamebearer"]["names"])
    tree = json.loads(encode(p, "tree", type_index=0))
    assert tree["total"] == 8


def test_encode_max_nodes_keeps_totals():
    text = b"".join(b"root;f%d %d\n" % (i, i + 1) for i in range(50))
    p = decode(text)
    small = decode(encode(p, "folded", max_nodes=5))
    assert small.totals() == p.totals()
    assert small.nodes.height < p.nodes.height
    fb = json.loads(encode(p, "flamebearer", max_nodes=5))
    assert fb["flamebearer"]["numTicks"] == p.totals()[0]


def test_encode_rejects_unknown_format_and_type():
    p = _two_type_profile()
    with pytest.raises(ValueError, match="unknown output format"):
        encode(p, "svg")
    with pytest.raises(ValueError, match="out of range"):
        encode(p, "folded", type_index=5)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_detect_and_decode_arbitrary_bytes(data):
    """Random bytes: detection and decoding only ever raise ProfileFormatError."""
    try:
        decode(data, limits=Limits(max_stack_depth=8))
    except ProfileFormatError:
        pass
