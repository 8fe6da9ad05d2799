"""Deferred Connect push parsing: the server's hot path leaves each pushed profile as
decoded stacks and the segment writer builds a whole batch at once. The segment tables
must equal those of the eager path (one profile built per push), and every check of the
eager path must still reject bad input."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest

from fleetprof.distributor.common import IngestConfig
from fleetprof.distributor.push import parse_push, parse_push_deferred
from fleetprof.formats.pprof import decode_pprof, decode_pprof_stacks
from fleetprof.formats.pprof_encode import encode_pprof
from fleetprof.formats.proto import push_pb2
from fleetprof.model.profile import Stacks, ValueType, build
from fleetprof.segment.writer import StackItem, batch_from_items
from fleetprof.server.errors import ApiError

DATA = Path(__file__).resolve().parents[1] / "formats" / "data"
NOW = 1_700_000_000_000
WALL = time.time_ns() // 1_000_000
"""The parsers' "now" (the captured agent push is dated by the real clock)."""
CFG = IngestConfig()
KEYS = {"samples": ["series_id", "profile_type", "time_ms", "node_id"], "nodes": ["node_id"], "frames": ["frame_id"], "labels": ["series_id", "key"]}


def _push(seed: int, *, two_types: bool = False, service: str | None = None, depth: int = 6, zero: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    names = [f"mod{seed % 3}.f{i}" for i in range(12)]
    stacks = [list(rng.choice(len(names), size=int(rng.integers(1, depth + 1)))) for _ in range(20)]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in stacks])]).astype(np.int64)
    frames = np.concatenate([np.asarray(s, dtype=np.int64) for s in stacks])
    types = [ValueType("cpu", "nanoseconds")] + ([ValueType("samples", "count")] if two_types else [])
    values = rng.integers(0 if zero else 1, 100, size=(len(stacks), len(types))).astype(np.int64)
    if zero:
        values[:] = 0
    st = Stacks(names=names, files=[f"/src/{n.split('.')[0]}.py" for n in names], offsets=offsets, frames=frames, values=values)
    prof = build(st, types, period_type=types[0], period=10_000_000, time_nanos=NOW * 1_000_000 + seed)
    req = push_pb2.PushRequest()
    s = req.series.add()
    labels = [("__name__", "process_cpu"), ("instance", f"i-{seed % 4}")] + ([("service_name", service)] if service else [])
    for k, v in labels:
        s.labels.add(name=k, value=v)
    s.samples.add(raw_profile=encode_pprof(prof, compress=bool(seed % 2)), ID=str(seed))
    return req.SerializeToString()


def _same_tables(eager: list, lazy: list) -> None:
    a, la = batch_from_items(eager)
    b, lb = batch_from_items(lazy)
    assert sorted(map(sorted, (x.items() for x in la))) == sorted(map(sorted, (x.items() for x in lb)))
    for table, key in KEYS.items():
        x, y = getattr(a, table).sort(key), getattr(b, table).sort(key)
        assert x.equals(y), table


def test_decode_pprof_is_build_of_its_stacks() -> None:
    body = push_pb2.PushRequest.FromString(_push(3, two_types=True)).series[0].samples[0].raw_profile
    stacks, types, meta = decode_pprof_stacks(body)
    want = decode_pprof(body)
    got = build(stacks, types, **meta)
    assert got.sample_types == want.sample_types and got.time_nanos == want.time_nanos
    for t in ("samples", "nodes", "frames"):
        assert getattr(got, t).sort(getattr(got, t).columns).equals(getattr(want, t).sort(getattr(want, t).columns))


def test_deferred_batch_equals_eager_batch() -> None:
    bodies = [_push(i, two_types=(i % 3 == 0), service=None if i % 5 == 0 else f"svc-{i % 2}") for i in range(12)]
    bodies.append((DATA / "pyroscope_io_1.4_push.body.gz").read_bytes())
    bodies = [gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b for b in bodies]
    eager = [it for b in bodies for it in parse_push(b, "application/proto", CFG, WALL)]
    lazy = [it for b in bodies for it in parse_push_deferred(b, "application/proto", CFG, WALL)]
    assert all(isinstance(it, StackItem) for it in lazy)
    assert [(it.labels, it.profile_type, it.time_ms) for it in eager] == [(it.labels, it.profile_type, it.time_ms) for it in lazy]
    _same_tables(eager, lazy)
    _same_tables(eager, lazy[:5] + eager[5:])  # a batch mixing both kinds
    one = lazy[0].profile
    assert one.samples.sort("node_id").equals(eager[0].profile.samples.sort("node_id"))


def test_deferred_skips_empty_profiles_like_eager() -> None:
    body = _push(7, zero=True)
    assert parse_push(body, "application/proto", CFG, WALL) == []
    assert parse_push_deferred(body, "application/proto", CFG, WALL) == []


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (b"\x0a\x05garbage", "application/proto", 400),
        (b"", "text/plain", 415),
        (_push(1, depth=40), "application/proto", 400),  # deeper than max_stack_depth below
    ],
)
def test_deferred_rejects_like_eager(body: bytes, ctype: str, status: int) -> None:
    cfg = IngestConfig(max_stack_depth=16)
    for parse in (parse_push, parse_push_deferred):
        with pytest.raises(ApiError) as e:
            parse(body, ctype, cfg, WALL)
        assert e.value.status == status
