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


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("process_cpu:cpu:<script>alert(1)</script>:cpu:nanoseconds", "sample unit"),
        ("process cpu:cpu:nanoseconds:cpu:nanoseconds", "name"),
        ('memory:"alloc":bytes:space:bytes', "sample type"),
        ("memory:alloc_space:bytes:sp/ace:bytes", "period type"),
        ("memory:alloc_space:bytes:space:by&tes", "period unit"),
    ],
)
def test_parse_refuses_characters_outside_the_name_alphabet(text, part):
    with pytest.raises(ValueError, match=f"in the {part} of the profile type"):
        ProfileTypeId.parse(text)
    assert ProfileTypeId.parse("wall:wall.v2:nano-seconds:Wall_9:ns").sample_unit == "nano-seconds"


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
