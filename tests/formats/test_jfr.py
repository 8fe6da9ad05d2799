"""JFR decoding against real async-profiler recordings and Pyroscope's own conversions."""

from __future__ import annotations

import gzip
import random
import struct
from collections import Counter
from pathlib import Path

import pytest

from fleetprof.formats.detect import decode, detect_format
from fleetprof.formats.errors import Limits, ProfileFormatError
from fleetprof.formats.folded import encode_folded
from fleetprof.formats.jfr import KINDS, decode_jfr, decode_jfr_profiles, merge_generated
from fleetprof.formats.pprof import decode_pprof
from fleetprof.formats.proto import jfr_labels_pb2
from fleetprof.model.profile import Profile, ValueType

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
JFR = SHARED / "jfr"
REF = SHARED / "pprof" / "java-jfr"
KAFKA_CPU = JFR / "cortex-dev-01__kafka-0__cpu__0.jfr.gz"
KAFKA_ALL = JFR / "cortex-dev-01__kafka-0__cpu_lock0_alloc0__0.jfr.gz"
JFR_FILES = sorted(JFR.glob("*.jfr.gz"))


def folded(profile: Profile, ti: int) -> Counter[str]:
    out: Counter[str] = Counter()
    for line in encode_folded(profile, ti).decode().splitlines():
        stack, _, v = line.rpartition(" ")
        out[stack] += int(v)
    return out


def kind(data: bytes, key: str, **kw: object) -> Profile:
    rec = decode_jfr_profiles(data, **kw)  # type: ignore[arg-type]
    return next(p.profile for p in rec.profiles if p.kind == key)


def ticks_per_second(path: Path) -> int:
    return struct.unpack_from(">q", gzip.decompress(path.read_bytes()), 56)[0]


def test_fixtures_present() -> None:
    assert len(JFR_FILES) == 5 and len(list(REF.glob("*.pb.gz"))) == 3


@pytest.mark.parametrize(
    ("recording", "ref", "key", "column"),
    [
        (KAFKA_CPU, "process_cpu_cpu_nanoseconds_cpu_nanoseconds", "cpu", 0),
        (KAFKA_ALL, "memory_alloc_in_new_tlab_bytes_bytes_space_bytes", "alloc_in_new_tlab", 1),
    ],
)
def test_same_stacks_and_values_as_pyroscope(recording: Path, ref: str, key: str, column: int) -> None:
    mine = kind(recording.read_bytes(), key)
    theirs = decode_pprof((REF / f"{recording.name}.{ref}.pb.gz").read_bytes())
    assert folded(mine, column) == folded(theirs, 0)
    assert mine.samples.height == theirs.samples.height


def test_lock_delay_is_in_nanoseconds() -> None:
    """Same stacks as Pyroscope; Pyroscope leaves the duration in ticks (2.8 GHz here),
    fleetprof converts it to the nanoseconds the unit says."""
    mine = kind(KAFKA_ALL.read_bytes(), "lock")
    theirs = folded(decode_pprof((REF / f"{KAFKA_ALL.name}.mutex_delay_nanoseconds_mutex_count.pb.gz").read_bytes()), 0)
    ours = folded(mine, 1)
    assert set(ours) == set(theirs)
    tps = ticks_per_second(KAFKA_ALL)
    assert tps != 10**9
    for stack, ticks in theirs.items():
        assert abs(ours[stack] - ticks * 10**9 // tps) <= mine.totals()[0]  # per-event rounding
    assert mine.sample_types == (ValueType("contentions", "count"), ValueType("delay", "nanoseconds"))


def test_profile_types_of_every_kind() -> None:
    rec = decode_jfr_profiles(KAFKA_ALL.read_bytes())
    ids = {f"{p.name}:{st}:{p.profile.period_type}" for p in rec.profiles for st in p.profile.sample_types}
    assert ids == {
        "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        "memory:alloc_in_new_tlab_objects:count:space:bytes",
        "memory:alloc_in_new_tlab_bytes:bytes:space:bytes",
        "memory:alloc_outside_tlab_objects:count:space:bytes",
        "memory:alloc_outside_tlab_bytes:bytes:space:bytes",
        "mutex:contentions:count:mutex:count",
        "mutex:delay:nanoseconds:mutex:count",
        "block:contentions:count:block:count",
        "block:delay:nanoseconds:block:count",
    }
    assert rec.event == "cpu"
    totals = {p.kind: p.profile.totals() for p in rec.profiles}
    assert totals["cpu"] == [5_820_000_000]  # 582 samples at 100 Hz
    assert totals["alloc_in_new_tlab"] == [7972, 1_598_335_640]
    assert totals["alloc_outside_tlab"][0] == 2238 and totals["park"][0] == 435


def test_wall_recording_counts_execution_samples_as_wall_and_cpu() -> None:
    rec = decode_jfr_profiles((JFR / "dump2.jfr.gz").read_bytes(), sample_rate=50)
    assert rec.event == "wall"
    got = {p.kind: p.profile for p in rec.profiles}
    assert {"cpu", "wall", "alloc_in_new_tlab", "live"} <= set(got)
    assert got["wall"].totals() == [14723 * 20_000_000]  # every execution sample, 50 Hz
    assert 0 < got["cpu"].totals()[0] < got["wall"].totals()[0]  # sleeping threads are not CPU
    assert got["wall"].period_type == ValueType("wall", "nanoseconds")


def test_frame_names_are_class_dot_method_with_generated_classes_merged() -> None:
    names = set(kind(KAFKA_ALL.read_bytes(), "alloc_in_new_tlab").frames["name"])
    assert "java/lang/Thread.run" in names
    assert "scala/collection/mutable/HashMap$$Lambda_.apply" in names
    assert not any("$$Lambda$" in n for n in names)


@pytest.mark.parametrize(
    ("symbol", "merged"),
    [
        ("jdk/internal/reflect/GeneratedMethodAccessor31", "jdk/internal/reflect/GeneratedMethodAccessor_"),
        ("org/example/OrderService$$Lambda$669.0x0000000800fd7318", "org/example/OrderService$$Lambda_"),
        ("Fib$$Lambda.0x00007ffa600c4da0", "Fib$$Lambda_"),
        ("com/x/Svc$$EnhancerBySpringCGLIB$$a1b2c3", "com/x/Svc$$EnhancerBySpringCGLIB$$_"),
        ("/tmp/libzstd-jni-1.5.1-16931311898282279136.so", "libzstd-jni-_.so"),
        ("./tmp/libamazonCorrettoCryptoProvider109b39cf33c563eb.so", "libamazonCorrettoCryptoProvider_.so"),
        ("libasyncProfiler-linux-x64-17b9a1d8156277a98ccc871afa9a8f69215f92.so", "libasyncProfiler-_.so"),
        ("java/lang/Thread", "java/lang/Thread"),
        ("Foo$$Lambda$1\n", "Foo$$Lambda$1\n"),
    ],
)
def test_merge_generated(symbol: str, merged: str) -> None:
    assert merge_generated(symbol) == merged


def test_labels_snapshot_gives_sample_labels() -> None:
    data = (JFR / "dump1.jfr.gz").read_bytes()
    snap = jfr_labels_pb2.LabelsSnapshot()
    snap.strings.update({1: b"route", 2: b"/a", 3: b"/b"})
    snap.contexts[1].labels[1] = 2
    snap.contexts[2].labels[1] = 3
    plain = kind(data, "cpu")
    labelled = kind(data, "cpu", labels=gzip.compress(snap.SerializeToString()))
    assert labelled.totals() == plain.totals()
    values = set(zip(labelled.labels["key"], labelled.labels["value"], strict=True))
    assert values == {("route", "/a"), ("route", "/b")}
    with pytest.raises(ProfileFormatError, match="LabelsSnapshot"):
        decode_jfr_profiles(data, labels=b"\xff\xff\xff")


def test_detect_and_cli_decode_merge_every_kind() -> None:
    data = KAFKA_ALL.read_bytes()
    assert detect_format(data) == "jfr" and detect_format(gzip.decompress(data)) == "jfr"
    p = decode(data)
    assert [st.type for st in p.sample_types] == [
        "cpu", "alloc_in_new_tlab_objects", "alloc_in_new_tlab_bytes", "alloc_outside_tlab_objects",
        "alloc_outside_tlab_bytes", "contentions", "delay", "block_contentions", "block_delay",
    ]
    assert p.default_sample_type == "cpu" and p.totals()[0] == 5_820_000_000
    assert decode_jfr(gzip.decompress(data)).totals() == p.totals()


def test_keep_lines_and_depth_limit() -> None:
    data = KAFKA_CPU.read_bytes()
    with_lines = kind(data, "cpu", keep_lines=True)
    assert (with_lines.frames["line"] > 0).any()
    shallow = kind(data, "cpu", limits=Limits(max_stack_depth=5))
    assert shallow.truncated_stacks > 0 and "[truncated]" in set(shallow.frames["name"])
    assert shallow.totals() == with_lines.totals()


def test_limits_are_enforced() -> None:
    data = KAFKA_CPU.read_bytes()
    with pytest.raises(ProfileFormatError, match="sample limit"):
        decode_jfr_profiles(data, limits=Limits(max_samples=100))
    with pytest.raises(ProfileFormatError, match="limit"):
        decode_jfr_profiles(data, limits=Limits(max_decompressed_bytes=1000))


@pytest.mark.parametrize("path", JFR_FILES, ids=lambda p: p.name)
def test_truncated_recordings_are_format_errors(path: Path) -> None:
    raw = gzip.decompress(path.read_bytes())
    for cut in (4, 67, 68, 200, len(raw) // 3, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ProfileFormatError) as e:
            decode_jfr_profiles(raw[:cut])
        assert e.value.format == "jfr"


def test_corrupted_recordings_only_raise_format_errors() -> None:
    raw = bytearray(gzip.decompress(KAFKA_CPU.read_bytes()))
    rng = random.Random(7)
    for _ in range(150):
        bad = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        try:
            decode_jfr_profiles(bytes(bad))
        except ProfileFormatError:
            pass


def test_not_jfr() -> None:
    with pytest.raises(ProfileFormatError, match="no FLR magic"):
        decode_jfr_profiles(b"main;work 1\n")
    with pytest.raises(ProfileFormatError, match="version"):
        decode_jfr_profiles(b"FLR\0\0\1\0\0" + bytes(60))


def test_kinds_table_matches_pyroscope_names() -> None:
    assert {k.name for k in KINDS.values()} == {"process_cpu", "wall", "memory", "mutex", "block"}
