"""encode_pprof: valid per profile.proto, and decode → encode → decode preserves every
stack, label set and total per sample type (every fixture and random profiles)."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import HealthCheck, given, settings
from pprof_testutil import fixture_files, pprof_messages, profile_stacks

from fleetprof.formats.errors import TRUNCATED_FRAME, Limits
from fleetprof.formats.pprof import decode_pprof
from fleetprof.formats.pprof_encode import encode_pprof
from fleetprof.formats.proto import profile_pb2
from fleetprof.model import merge

FILES = fixture_files()


def _check_valid(data: bytes) -> profile_pb2.Profile:
    msg = profile_pb2.Profile()
    msg.ParseFromString(gzip.decompress(data))  # gzipped, and strict proto3 parse
    n = len(msg.string_table)
    assert msg.string_table[0] == ""
    fids = [f.id for f in msg.function]
    lids = [loc.id for loc in msg.location]
    assert all(i >= 1 for i in fids + lids)
    assert len(set(fids)) == len(fids) and len(set(lids)) == len(lids)
    assert len({(f.name, f.filename) for f in msg.function}) == len(fids)  # deduplicated
    for f in msg.function:
        assert 0 <= f.name < n and 0 <= f.filename < n and 0 <= f.system_name < n
    for loc in msg.location:
        assert len(loc.line) == 1 and loc.line[0].function_id in set(fids)
    for s in msg.sample:
        assert len(s.value) == len(msg.sample_type)
        assert set(s.location_id) <= set(lids)
        for lab in s.label:
            assert 0 < lab.key < n and 0 < lab.str < n
    return msg


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:50])
def test_round_trip_fixture(path):
    prof = decode_pprof(path.read_bytes())
    data = encode_pprof(prof)
    msg = _check_valid(data)
    back = decode_pprof(data)
    assert back.totals() == prof.totals()
    assert back.sample_types == prof.sample_types
    assert profile_stacks(back) == profile_stacks(prof)
    assert (back.period, back.period_type, back.time_nanos, back.duration_nanos) == (
        prof.period,
        prof.period_type,
        prof.time_nanos,
        prof.duration_nanos,
    )
    assert back.default_sample_type == prof.default_sample_type
    assert len(msg.sample) == prof.samples.height


def test_round_trip_keeps_lines_and_comments():
    path = next(p for p in FILES if p.name == "cpu_go_truncated_1.pb.gz")
    prof = decode_pprof(path.read_bytes(), keep_lines=True).with_meta(comments=("a", "b"))
    back = decode_pprof(encode_pprof(prof), keep_lines=True)
    assert profile_stacks(back, with_lines=True) == profile_stacks(prof, with_lines=True)
    assert back.comments == ("a", "b")


def test_uncompressed_and_deterministic():
    prof = decode_pprof(FILES[0].read_bytes())
    raw = encode_pprof(prof, compress=False)
    assert raw[:2] != b"\x1f\x8b"
    assert profile_stacks(decode_pprof(raw)) == profile_stacks(prof)
    assert encode_pprof(prof) == encode_pprof(prof)


def test_merged_profiles_encode():
    many = [decode_pprof(p.read_bytes()) for p in FILES if "/many/" in str(p)]
    merged = merge(many)
    back = decode_pprof(encode_pprof(merged))
    assert back.totals() == merged.totals() == [sum(t) for t in zip(*(m.totals() for m in many), strict=True)]
    assert profile_stacks(back) == profile_stacks(merged)


def test_truncation_marker_survives():
    path = next(p for p in FILES if p.name == "cpu_go_truncated_1.pb.gz")
    prof = decode_pprof(path.read_bytes(), limits=Limits(max_stack_depth=8))
    assert prof.truncated_stacks > 0
    back = decode_pprof(encode_pprof(prof))
    assert profile_stacks(back) == profile_stacks(prof)
    assert TRUNCATED_FRAME in back.frames["name"].to_list()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=pprof_messages())
def test_round_trip_random(msg):
    prof = decode_pprof(msg.SerializeToString())
    data = encode_pprof(prof)
    _check_valid(data)
    back = decode_pprof(data)
    assert back.totals() == prof.totals()
    assert profile_stacks(back) == profile_stacks(prof)
