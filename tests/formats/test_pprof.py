"""decode_pprof: every shared fixture against an independent protobuf reference, the
pprof semantics (inlining, address frames, drop/keep frames, labels, limits), and
hypothesis properties (random valid messages; random corruption → ProfileFormatError)."""

from __future__ import annotations

import gzip
import zlib

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pprof_testutil import (
    DATA,
    fixture_files,
    parse_reference,
    pprof_messages,
    profile_stacks,
    reference_stacks,
    reference_totals,
    serialize_unpacked,
)

from fleetprof.formats.errors import TRUNCATED_FRAME, Limits, ProfileFormatError
from fleetprof.formats.pprof import decode_pprof, simplify_func
from fleetprof.formats.proto import profile_pb2
from fleetprof.model.hashing import labels_id

FILES = fixture_files()


def test_fixtures_found():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:50])
def test_fixture_matches_reference(path):
    data = path.read_bytes()
    ref = parse_reference(data)
    prof = decode_pprof(data)
    assert prof.totals() == reference_totals(ref)
    assert [f"{t.type}:{t.unit}" for t in prof.sample_types] == [
        f"{ref.string_table[v.type].decode()}:{ref.string_table[v.unit].decode()}" for v in ref.sample_type
    ]
    assert prof.period == ref.period
    assert prof.time_nanos == ref.time_nanos
    assert prof.duration_nanos == ref.duration_nanos
    assert profile_stacks(prof) == reference_stacks(ref)


@pytest.mark.parametrize("path", FILES[::4], ids=lambda p: p.name[:50])
def test_fixture_keep_lines(path):
    data = path.read_bytes()
    prof = decode_pprof(data, keep_lines=True)
    assert profile_stacks(prof, with_lines=True) == reference_stacks(parse_reference(data), keep_lines=True)


def _fixture(name):
    return next(p for p in FILES if p.name == name).read_bytes()


def test_raw_despite_gz_name():
    data = _fixture("pyspy-1.pb.gz")
    assert data[:2] != b"\x1f\x8b"
    prof = decode_pprof(data)
    assert prof.totals() == [781]
    assert "slow_function" in prof.frames["name"].to_list()


def test_invalid_utf8_replaced():
    data = _fixture("invalid_utf8.pb.gz")
    with pytest.raises(DecodeError):  # plain proto3 parsing rejects it …
        profile_pb2.Profile().ParseFromString(gzip.decompress(data))
    prof = decode_pprof(data)  # … we replace instead
    texts = prof.frames["name"].to_list() + prof.frames["file"].to_list() + [t.type for t in prof.sample_types]
    assert any("\ufffd" in t for t in texts)


def test_locations_without_lines_named_by_mapping_and_address():
    prof = decode_pprof(_fixture("no_addr_no_line.pb.gz"))
    names = prof.frames["name"].to_list()
    assert any(n.endswith(" 0x5e997") for n in names)  # location 5: mapping 2, address 0x5e997
    assert all(n for n in names)


def test_default_sample_type():
    prof = decode_pprof(next(p for p in FILES if "cpu__0" in p.name).read_bytes())
    assert prof.default_sample_type == "cpu"
    assert prof.type_index() == 0


def test_numeric_and_string_labels():
    prof = decode_pprof(_fixture("alloc_objects.pb.gz"))
    assert "bytes" in prof.labels["key"].to_list()
    prof = decode_pprof(_fixture("pyspy-1.pb.gz"))
    pairs = set(prof.labels.select("key", "value").iter_rows())
    assert ("function", "slow") in pairs and ("function", "fast") in pairs


def test_truncated_go_stacks_decode():
    prof = decode_pprof(_fixture("cpu_go_truncated_1.pb.gz"))
    assert prof.totals() == [756, 7560000000]


# ---------------------------------------------------------------------------------------
# hand-built profiles


class B:
    """Tiny builder for pprof messages in tests."""

    def __init__(self, types=(("samples", "count"),)):
        self.p = profile_pb2.Profile()
        self.strings = [""]
        for t, u in types:
            self.p.sample_type.add(type=self.s(t), unit=self.s(u))
        self.funcs: dict[str, int] = {}

    def s(self, text):
        if text not in self.strings:
            self.strings.append(text)
        return self.strings.index(text)

    def fn(self, name):
        if name not in self.funcs:
            fid = len(self.funcs) + 1
            self.funcs[name] = fid
            self.p.function.add(id=fid, name=self.s(name), filename=self.s(name.split(".")[0] + ".py"))
        return self.funcs[name]

    def loc(self, *inlined):
        """A location; ``inlined`` innermost first (wire order)."""
        lid = len(self.p.location) + 1
        loc = self.p.location.add(id=lid, address=0x1000 + lid)
        for i, name in enumerate(inlined):
            loc.line.add(function_id=self.fn(name), line=10 + i)
        return lid

    def sample(self, locs_leaf_first, *values, labels=()):
        smp = self.p.sample.add(location_id=locs_leaf_first, value=values or [1])
        for k, v in labels:
            if isinstance(v, str):
                smp.label.add(key=self.s(k), str=self.s(v))
            else:
                smp.label.add(key=self.s(k), num=v[0], num_unit=self.s(v[1]) if v[1] else 0)
        return smp

    def bytes(self, gz=False):
        del self.p.string_table[:]
        self.p.string_table.extend(self.strings)
        raw = self.p.SerializeToString()
        return gzip.compress(raw) if gz else raw


def stacks(prof):
    return {tuple(n for n, _, _ in k[0]): v for k, v in profile_stacks(prof).items()}


def test_inlined_frames_caller_last():
    b = B()
    outer = b.loc("main")
    inl = b.loc("leaf", "mid")  # leaf inlined into mid
    b.sample([inl, outer], 5)
    assert stacks(decode_pprof(b.bytes(gz=True))) == {("main", "mid", "leaf"): (5,)}


def test_empty_stack_counts_in_totals():
    b = B()
    b.sample([], 7)
    b.sample([b.loc("f")], 3)
    prof = decode_pprof(b.bytes())
    assert prof.totals() == [10]


def _chain(b, names):
    """Locations for a root-first chain of names; returns leaf-first ids."""
    return [b.loc(n) for n in names][::-1]


def test_drop_frames_removes_match_and_below():
    b = B()
    b.sample(_chain(b, ["main", "work", "runtime.mallocgc", "runtime.memclr"]), 4)
    b.p.drop_frames = b.s("runtime\\..*")
    assert stacks(decode_pprof(b.bytes())) == {("main", "work"): (4,)}


def test_drop_frames_not_before_first_user_frame_and_keep_frames():
    b = B()
    b.sample(_chain(b, ["runtime.main", "app.run", "runtime.gc"]), 2)
    b.p.drop_frames = b.s("runtime\\..*")
    assert stacks(decode_pprof(b.bytes())) == {("runtime.main", "app.run"): (2,)}
    b.p.keep_frames = b.s("runtime\\.gc")
    assert stacks(decode_pprof(b.bytes())) == {("runtime.main", "app.run", "runtime.gc"): (2,)}


def test_drop_frames_anchored_and_simplified():
    b = B()
    b.sample(_chain(b, ["main", "foo(int)", "bar"]), 1)
    b.p.drop_frames = b.s("fo")  # anchored: does not match "foo"
    assert stacks(decode_pprof(b.bytes())) == {("main", "foo(int)", "bar"): (1,)}
    b.p.drop_frames = b.s("foo")  # matches the simplified name of "foo(int)"
    assert stacks(decode_pprof(b.bytes())) == {("main",): (1,)}
    assert simplify_func(".foo(int)") == "foo"
    assert simplify_func("(anonymous namespace)::f(int)") == "(anonymous namespace)::f"


def test_drop_frames_inlined_caller_match_keeps_callers():
    b = B()
    root = b.loc("main")
    inl = b.loc("leaf", "dropme", "host")  # host calls dropme (inlined) calls leaf
    b.sample([inl, root], 1)
    b.p.drop_frames = b.s("dropme")
    assert stacks(decode_pprof(b.bytes())) == {("main", "host"): (1,)}


def test_bad_drop_regex_is_format_error():
    b = B()
    b.sample([b.loc("f")])
    b.p.drop_frames = b.s("(")
    with pytest.raises(ProfileFormatError, match="drop_frames"):
        decode_pprof(b.bytes())


def test_labels_string_and_numeric():
    b = B()
    leaf = b.loc("f")
    b.sample([leaf], 1, labels=[("thread", "t1"), ("bytes", (4096, "bytes"))])
    b.sample([leaf], 2, labels=[("thread", "t1"), ("bytes", (4096, "bytes"))])
    b.sample([leaf], 4, labels=[("n", (7, ""))])
    b.sample([leaf], 8)
    got = profile_stacks(decode_pprof(b.bytes()))
    assert got == {
        ((("f", "f.py", 0),), (("bytes", "4096 bytes"), ("thread", "t1"))): (3,),
        ((("f", "f.py", 0),), (("n", "7"),)): (4,),
        ((("f", "f.py", 0),), ()): (8,),
    }


def test_label_sets_are_sets_of_texts_with_contract_ids():
    """A pair repeated in a sample counts once; equal texts under different string indices
    (a duplicated table entry, a string label spelling a numeric one) are one pair; every
    set's id is ``labels_id`` of its pairs."""
    b = B()
    leaf = b.loc("f")
    b.sample([leaf], 1, labels=[("thread", "t1"), ("thread", "t1")])
    b.sample([leaf], 2, labels=[("thread", "t1")])
    b.sample([leaf], 4, labels=[("size", (48, "bytes")), ("size", "48 bytes")])
    b.sample([leaf], 8, labels=[("size", "48 bytes")])
    b.sample([leaf], 16, labels=[("é", "ü"), ("a", "z"), ("n", (-(2**63), "")), ("b", "y")])
    dup = len(b.strings)
    b.strings.append("t1")  # the same text again
    b.p.sample.add(location_id=[leaf], value=[32]).label.add(key=b.s("thread"), str=dup)
    prof = decode_pprof(b.bytes())
    got = profile_stacks(prof)
    assert got == {
        ((("f", "f.py", 0),), (("thread", "t1"),)): (35,),
        ((("f", "f.py", 0),), (("size", "48 bytes"),)): (12,),
        ((("f", "f.py", 0),), (("a", "z"), ("b", "y"), ("n", "-9223372036854775808"), ("é", "ü"))): (16,),
    }
    sets: dict[int, list[tuple[str, str]]] = {}
    for lid, k, v in prof.labels.iter_rows():
        sets.setdefault(lid, []).append((k, v))
    assert {lid: labels_id(pairs) for lid, pairs in sets.items()} == {lid: lid for lid in sets}
    assert all(len(set(pairs)) == len(pairs) for pairs in sets.values())


def test_metadata():
    b = B(types=(("samples", "count"), ("cpu", "nanoseconds")))
    b.sample([b.loc("f")], 1, 10)
    b.p.period_type.type, b.p.period_type.unit = b.s("cpu"), b.s("nanoseconds")
    b.p.period = 10_000_000
    b.p.time_nanos, b.p.duration_nanos = 123, 456
    b.p.comment.extend([b.s("hello"), b.s("world")])
    b.p.default_sample_type = b.s("cpu")
    prof = decode_pprof(b.bytes())
    assert (prof.period, prof.time_nanos, prof.duration_nanos) == (10_000_000, 123, 456)
    assert str(prof.period_type) == "cpu:nanoseconds"
    assert prof.comments == ("hello", "world")
    assert prof.default_sample_type == "cpu"
    assert prof.totals() == [1, 10]


def test_depth_limit_truncates_root_end_with_marker():
    b = B()
    chain = _chain(b, [f"f{i}" for i in range(12)])
    b.sample(chain, 3)
    b.sample(chain[-4:], 1)  # shallow: untouched
    prof = decode_pprof(b.bytes(), limits=Limits(max_stack_depth=5))
    assert prof.truncated_stacks == 1
    got = stacks(prof)
    assert got[(TRUNCATED_FRAME, "f8", "f9", "f10", "f11")] == (3,)
    assert got[("f0", "f1", "f2", "f3")] == (1,)
    assert prof.totals() == [4]


def test_positional_ids_when_all_zero():
    data = _fixture("dotnet-pprof-3.pb.gz")
    prof = decode_pprof(data)
    assert "WebApplication1.Controllers!CpuController.fib" in prof.frames["name"].to_list()


# ---------------------------------------------------------------------------------------
# malformed input


def _valid():
    b = B()
    b.sample([b.loc("main.f", "main.g"), b.loc("main.main")], 1)
    return b


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda b: b.p.sample[0].location_id.append(99), "sample[0].location_id"),
        (lambda b: b.p.location[0].line.add(function_id=42), "location[0].line[2].function_id"),
        (lambda b: setattr(b.p.function[0], "name", 1000), "function[0].name"),
        (lambda b: setattr(b.p.location[1], "mapping_id", 5), "location[1].mapping_id"),
        (lambda b: b.p.sample[0].value.append(3), "sample[0].value"),
        (lambda b: setattr(b.p.location[1], "id", 1), "location[1].id"),
        (lambda b: b.p.sample_type.add(type=77, unit=0), "sample_type[1].type"),
        (lambda b: b.p.sample[0].label.add(key=500, str=0), "sample[0].label.key"),
        (lambda b: setattr(b.p, "default_sample_type", 10**6), "default_sample_type"),
        (lambda b: b.strings.__setitem__(0, "x"), "string_table[0]"),
    ],
)
def test_invalid_references_name_the_field(mutate, where):
    b = _valid()
    mutate(b)
    with pytest.raises(ProfileFormatError) as exc:
        decode_pprof(b.bytes())
    assert exc.value.where is not None and where in exc.value.where
    assert exc.value.format == "pprof"


def test_garbage_and_empty_inputs():
    for data in (b"", b"\x00", b"hello world", b"\x1f\x8b\x08\x00garbage", b"\xff" * 20):
        with pytest.raises(ProfileFormatError):
            decode_pprof(data)


def test_truncated_gzip():
    data = _valid().bytes(gz=True)
    with pytest.raises(ProfileFormatError):
        decode_pprof(data[:-9])


def test_string_length_and_sample_count_limits():
    b = _valid()
    b.s("x" * 5000)
    with pytest.raises(ProfileFormatError, match="string_table"):
        decode_pprof(b.bytes(), limits=Limits(max_string_length=1000))
    with pytest.raises(ProfileFormatError, match="limit"):
        decode_pprof(b.bytes(), limits=Limits(max_samples=0))


@pytest.fixture(scope="module")
def gzip_bomb():
    """A valid gzip stream of 1 GiB of zeros (about 1 MiB): one fully flushed deflate
    segment of 1 MiB of zeros repeated 1024 times (each is independent of history)."""
    seg = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = seg.compress(bytes(1 << 20)) + seg.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    chunk = bytes(1 << 20)
    for _ in range(1024):
        crc = zlib.crc32(chunk, crc)
    trailer = crc.to_bytes(4, "little") + (1 << 30).to_bytes(4, "little")
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + block * 1024 + final + trailer


def test_gzip_bomb_rejected_at_limit(gzip_bomb):
    assert len(gzip_bomb) < 2 << 20
    head = zlib.decompressobj(31).decompress(gzip_bomb, 1 << 24)
    assert head == bytes(1 << 24)  # really a stream of zeros
    with pytest.raises(ProfileFormatError, match="limit"):
        decode_pprof(gzip_bomb)  # default limit: 256 MiB
    with pytest.raises(ProfileFormatError, match="limit"):
        decode_pprof(gzip_bomb, limits=Limits(max_decompressed_bytes=1 << 20))


# ---------------------------------------------------------------------------------------
# properties


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=pprof_messages(), gz=st.booleans(), unpacked=st.booleans())
def test_random_profiles_match_reference(msg, gz, unpacked):
    raw = serialize_unpacked(msg) if unpacked else msg.SerializeToString()
    data = gzip.compress(raw) if gz else raw
    prof = decode_pprof(data)
    ref = parse_reference(data)
    assert prof.totals() == reference_totals(ref)
    assert profile_stacks(prof) == reference_stacks(ref)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=pprof_messages(max_samples=5, max_depth=60))
def test_many_fields_fallback_path(msg):
    # unpacked stacks deeper than the bulk walker's field budget go through upb
    raw = serialize_unpacked(msg)
    assert profile_stacks(decode_pprof(raw)) == reference_stacks(parse_reference(raw))


SEEDS = [p.read_bytes() for p in FILES if p.stat().st_size < 3000] + [(DATA / "pyroscope_io_1.4_push.body.gz").read_bytes()]


@settings(max_examples=200, deadline=None)
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from(["set", "ins", "del"])), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    gunzip=st.booleans(),
)
def test_corrupted_input_only_raises_format_error(seed, edits, cut, gunzip):
    data = bytearray(gzip.decompress(seed) if gunzip and seed[:2] == b"\x1f\x8b" else seed)
    for pos, byte, op in edits:
        i = pos % (len(data) + 1)
        if op == "set" and i < len(data):
            data[i] = byte
        elif op == "ins":
            data.insert(i, byte)
        elif op == "del" and i < len(data):
            del data[i]
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        prof = decode_pprof(bytes(data))
    except ProfileFormatError:
        return
    assert len(prof.totals()) == len(prof.sample_types)


# ---------------------------------------------------------------------------------------
# bulk location table (no Python loop per location) vs the per-location loop


def _decode_both(data, monkeypatch, **kw):
    import fleetprof.formats.pprof as pprof_mod

    taken = []
    bulk = pprof_mod._locations_bulk

    def spy(*a, **k):
        out = bulk(*a, **k)
        taken.append(out is not None)
        return out

    with monkeypatch.context() as m:
        m.setattr(pprof_mod, "_locations_bulk", spy)
        fast = decode_pprof(data, **kw)
    with monkeypatch.context() as m:
        m.setattr(pprof_mod, "_locations_bulk", lambda *a, **k: None)
        slow = decode_pprof(data, **kw)
    return fast, slow, taken


def _same_profile(a, b):
    assert a.frames.equals(b.frames)  # same frames, same (first-appearance) order
    assert a.nodes.sort("node_id").equals(b.nodes.sort("node_id"))
    assert a.samples.sort(["node_id", "labels"]).equals(b.samples.sort(["node_id", "labels"]))
    assert a.truncated_stacks == b.truncated_stacks


@pytest.mark.parametrize("keep_lines", [False, True])
def test_bulk_locations_match_loop_on_fixtures(monkeypatch, keep_lines):
    used = 0
    for path in FILES:
        fast, slow, taken = _decode_both(path.read_bytes(), monkeypatch, keep_lines=keep_lines)
        _same_profile(fast, slow)
        used += sum(taken)
    assert used >= len(FILES) - 5  # the bulk path is the common one


def test_bulk_locations_duplicate_strings_and_inlining(monkeypatch):
    p = profile_pb2.Profile()
    p.string_table.extend(["", "samples", "count", "main", "file.go", "main", "file.go", "inl"])
    p.sample_type.add(type=1, unit=2)
    p.function.add(id=10, name=3, filename=4)
    p.function.add(id=20, name=5, filename=6)  # same texts, other string indices
    p.function.add(id=30, name=0, system_name=7, filename=4)  # name from system_name
    p.location.add(id=1).line.add(function_id=10, line=3)
    loc = p.location.add(id=2)
    loc.line.add(function_id=30, line=9)  # inlined callee first on the wire
    loc.line.add(function_id=20, line=5)
    p.sample.add(location_id=[2, 1], value=[4])
    fast, slow, taken = _decode_both(p.SerializeToString(), monkeypatch)
    assert taken == [True]
    _same_profile(fast, slow)
    assert fast.frames.height == 2  # main/file.go interned once, inl
    assert fast.frames["name"].to_list() == ["main", "inl"]
    assert profile_stacks(fast) == reference_stacks(parse_reference(p.SerializeToString()))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.location.add(id=9),  # no lines: address frame
        lambda p: p.location[0].line.add(function_id=0),  # line without a function
        lambda p: p.function.add(id=99, name=0),  # nameless function ...
        lambda p: setattr(p, "drop_frames", 3),
    ],
)
def test_bulk_locations_fall_back(monkeypatch, mutate):
    p = profile_pb2.Profile()
    p.string_table.extend(["", "samples", "count", "main", "file.go"])
    p.sample_type.add(type=1, unit=2)
    p.function.add(id=1, name=3, filename=4)
    p.location.add(id=1).line.add(function_id=1)
    p.sample.add(location_id=[1], value=[1])
    mutate(p)
    if len(p.function) > 1:  # ... referenced by a location
        p.location.add(id=7).line.add(function_id=99)
    fast, slow, taken = _decode_both(p.SerializeToString(), monkeypatch)
    assert not any(taken)
    _same_profile(fast, slow)
    assert profile_stacks(fast) == reference_stacks(parse_reference(p.SerializeToString()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(msg=pprof_messages(), keep_lines=st.booleans())
def test_bulk_locations_match_loop_random(monkeypatch, msg, keep_lines):
    fast, slow, _ = _decode_both(msg.SerializeToString(), monkeypatch, keep_lines=keep_lines)
    _same_profile(fast, slow)


def test_mixed_packed_and_unpacked_fields_keep_wire_order():
    # sample.location_id written as: 3 (unpacked), [1, 2] (packed), 4 (unpacked); two such
    # samples plus packed-only ones, so the bulk reader merges packed and unpacked parts
    p = profile_pb2.Profile()
    p.string_table.extend(["", "samples", "count"] + [f"f{i}" for i in range(1, 5)])
    p.sample_type.add(type=1, unit=2)
    for i in range(1, 5):
        p.function.add(id=i, name=2 + i)
        p.location.add(id=i).line.add(function_id=i)
    for k in range(MANY := 5000):  # above the merged-message path's sample count
        p.sample.add(location_id=[1 + k % 4, 1 + (k + 1) % 4, 1 + (k + 2) % 4], value=[1])
    head = p.SerializeToString()
    mixed = b"\x08\x03" + b"\x0a\x02\x01\x02" + b"\x08\x04" + b"\x10\x07"  # locs 3,[1,2],4; value 7
    sample = b"\x12" + bytes([len(mixed)]) + mixed
    data = head + sample + sample
    prof = decode_pprof(data)
    ref = parse_reference(data)
    assert list(ref.sample[MANY].location_id) == [3, 1, 2, 4]
    assert profile_stacks(prof) == reference_stacks(ref)


def test_profiles_of_every_size_take_the_bulk_location_path(monkeypatch):
    """The compiled table scans serve small profiles (agent pushes) too."""
    import fleetprof.formats.pprof as pprof_mod

    calls = []
    bulk = pprof_mod._locations_bulk
    monkeypatch.setattr(pprof_mod, "_locations_bulk", lambda *a, **k: calls.append(bulk(*a, **k) is not None))
    small = min(FILES, key=lambda p: len(gzip.decompress(p.read_bytes()) if p.read_bytes()[:2] == b"\x1f\x8b" else p.read_bytes()))
    decode_pprof(small.read_bytes())
    assert calls == [True]
