"""The small-profile sample path of the pprof decoder (all sample messages parsed by upb as
one merged message, split at marker fields) must agree exactly with the vectorised field
walk, fall back to it whenever a marker is ambiguous, and report the same errors."""

from __future__ import annotations

import numpy as np
import pytest

import fleetprof.formats.pprof as P
from fleetprof.formats.errors import ProfileFormatError
from fleetprof.formats.proto import profile_pb2


def _profile(n: int, *, ntypes: int = 1, loc_ids: list[int] | None = None, values: list[int] | None = None, labels: bool = False) -> bytes:
    p = profile_pb2.Profile()
    p.string_table.extend(["", "cpu", "nanoseconds", "f", "/x.py", "k", "v"])
    for _ in range(ntypes):
        p.sample_type.add(type=1, unit=2)
    ids = loc_ids or [1, 2, 3]
    p.function.add(id=1, name=3, filename=4)
    for lid in ids:
        p.location.add(id=lid).line.add(function_id=1, line=0)
    rng = np.random.default_rng(n)
    for _ in range(n):
        s = p.sample.add()
        s.location_id.extend(ids[int(i)] for i in rng.integers(0, len(ids), size=int(rng.integers(1, 4))))
        s.value.extend((values or [int(x) for x in rng.integers(1, 10**9, size=ntypes)])[:ntypes])
        if labels:
            s.label.add(key=5, str=6)
    return p.SerializeToString()


def _both(data: bytes) -> tuple[object, object]:
    out = []
    for mx in (P.MERGED_SAMPLES_MAX, -1):
        old = P.MERGED_SAMPLES_MAX
        P.MERGED_SAMPLES_MAX = mx
        try:
            st, types, meta = P.decode_pprof_stacks(data)
            out.append((st.names, st.offsets.tolist(), st.frames.tolist(), np.asarray(st.values).tolist(), types, meta))
        except ProfileFormatError as e:
            out.append(("error", e.reason, e.where))
        finally:
            P.MERGED_SAMPLES_MAX = old
    return out[0], out[1]


@pytest.mark.parametrize("n", [0, 1, 2, 37, 500])
@pytest.mark.parametrize("ntypes", [1, 2])
def test_merged_path_equals_walk(n: int, ntypes: int) -> None:
    merged, walked = _both(_profile(n, ntypes=ntypes))
    assert merged == walked


def test_merged_path_is_used_for_small_profiles() -> None:
    raw = list(profile_pb2.Profile.FromString(_profile(5)).sample)
    assert P._samples_merged([s.SerializeToString() for s in raw], 1) is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loc_ids": [1, (1 << 64) - 1]},  # a real id equal to the location marker
        {"values": [-(1 << 63)]},  # a real value equal to the value marker
        {"labels": True},  # sample labels: the walk handles them
    ],
)
def test_ambiguous_or_labelled_inputs_fall_back(kwargs: dict) -> None:
    merged, walked = _both(_profile(6, **kwargs))
    assert merged == walked


def test_wrong_value_count_reports_the_sample() -> None:
    p = profile_pb2.Profile.FromString(_profile(4, ntypes=2))
    del p.sample[2].value[1]
    merged, walked = _both(p.SerializeToString())
    assert merged == walked
    assert merged[0] == "error" and merged[2] == "sample[2].value"
