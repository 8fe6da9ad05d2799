from __future__ import annotations

import pytest
from pprof_testutil import fixture_files

from fleetprof.formats.pprof import decode_pprof
from fleetprof.formats.profile_types import (
    ProfileTypeId,
    infer_name,
    profile_type_id,
    profile_type_ids,
)

FILES = {p.name: p for p in fixture_files()}


def test_parse_and_format():
    pt = ProfileTypeId.parse("process_cpu:cpu:nanoseconds:cpu:nanoseconds")
    assert pt == ProfileTypeId("process_cpu", "cpu", "nanoseconds", "cpu", "nanoseconds")
    assert str(pt) == pt.id == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    assert str(ProfileTypeId.parse("memory:alloc_space:bytes::")) == "memory:alloc_space:bytes::"


@pytest.mark.parametrize("bad", ["", "cpu", "a:b:c:d", "a:b:c:d:e:f", ":cpu:ns:cpu:ns", "x::ns:cpu:ns"])
def test_parse_rejects(bad):
    with pytest.raises(ValueError):
        ProfileTypeId.parse(bad)


def test_ids_per_sample_type():
    heap = decode_pprof(FILES["heap.pb.gz"].read_bytes())
    assert profile_type_ids(heap, "memory") == [
        "memory:alloc_objects:count:space:bytes",
        "memory:alloc_space:bytes:space:bytes",
        "memory:inuse_objects:count:space:bytes",
        "memory:inuse_space:bytes:space:bytes",
    ]
    cpu = decode_pprof(FILES["cpu.pb.gz"].read_bytes())
    assert profile_type_ids(cpu, "process_cpu")[1] == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    assert profile_type_id(cpu, "process_cpu", 0).value_type.type == "samples"


def test_missing_period_type():
    prof = decode_pprof(FILES["two-stacks.pb.gz"].read_bytes())
    prof = prof.with_meta(period_type=None)
    assert profile_type_ids(prof, "process_cpu") == ["process_cpu:cpu:nanoseconds::"]


def test_infer_name():
    assert infer_name(decode_pprof(FILES["heap.pb.gz"].read_bytes())) == "memory"
    assert infer_name(decode_pprof(FILES["cpu.pb.gz"].read_bytes())) == "process_cpu"
    mutex = next(v for k, v in FILES.items() if "mutex" in k)
    assert infer_name(decode_pprof(mutex.read_bytes())) in ("mutex", "block")
