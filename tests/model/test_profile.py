"""Contracts of the canonical model: stable hashes, CSR build/expand, subtree totals."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetprof.model import (
    ROOT_ID,
    Stacks,
    ValueType,
    build,
    expand,
    frame_id,
    mix,
    mix_scalar,
    node_values,
    rebuild,
)
from fleetprof.model.hashing import labels_id

TYPES = [ValueType("samples", "count"), ValueType("cpu", "nanoseconds")]


def _stacks(stacks: list[list[str]], values: list[list[int]]) -> Stacks:
    names = sorted({f for s in stacks for f in s})
    idx = {n: i for i, n in enumerate(names)}
    offsets = np.zeros(len(stacks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in stacks])
    frames = np.array([idx[f] for s in stacks for f in s], dtype=np.int64)
    return Stacks(names, [""] * len(names), offsets, frames, np.array(values, dtype=np.int64))


def _stack_values(p) -> dict[tuple[str, ...], tuple[int, ...]]:
    ex = expand(p)
    names = dict(zip(p.frames["frame_id"].to_list(), p.frames["name"].to_list(), strict=True))
    vals = ex.samples.select(p.value_cols).rows()
    out: dict[tuple[str, ...], tuple[int, ...]] = {}
    for i, v in enumerate(vals):
        key = tuple(names[int(f)] for f in ex.frame_ids[ex.offsets[i] : ex.offsets[i + 1]])
        prev = out.get(key, (0,) * len(v))
        out[key] = tuple(a + b for a, b in zip(prev, v, strict=True))
    return out


def test_hashes_are_stable_constants() -> None:
    # Persisted ids: these literals must never change.
    assert frame_id("main", "") == frame_id("main")
    assert frame_id("main", "app.py", 0) == frame_id("main", "app.py")
    assert frame_id("main", "app.py", 3) != frame_id("main", "app.py")
    assert frame_id("main") == int.from_bytes(__import__("hashlib").blake2b(b"main\0", digest_size=8).digest(), "little")
    assert mix_scalar(0, 1) == 0x5692161D100B05E5
    assert frame_id("main", "app.py") == 0xD068D29585025312
    assert labels_id([("a", "1")]) == 0xAC560BA36C11BE76
    a = np.array([1, 2, 2**64 - 1], dtype=np.uint64)
    b = np.array([7, 9, 2**63], dtype=np.uint64)
    assert [int(x) for x in mix(a, b)] == [mix_scalar(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    assert labels_id([]) == 0
    assert labels_id([("a", "1"), ("b", "2")]) == labels_id([("b", "2"), ("a", "1")])


def test_build_nodes_samples_and_totals() -> None:
    p = build(_stacks([["main", "a"], ["main", "b"], ["main"], []], [[3, 30], [4, 40], [5, 50], [7, 70]]), TYPES)
    assert p.totals() == [19, 190]
    assert p.nodes.height == 3
    top = p.nodes.filter(pl.col("depth") == 1)
    assert top["parent_id"].to_list() == [ROOT_ID]
    nv = node_values(p, 0).sort("depth")
    assert nv["total"].to_list()[0] == 12  # main: 3 + 4 + 5; the empty stack stays on the root
    assert sorted(nv["self"].to_list()) == [3, 4, 5]
    assert _stack_values(p)[("main", "a")] == (3, 30)
    assert _stack_values(p)[()] == (7, 70)


def test_same_stack_in_two_builds_has_same_node_ids() -> None:
    p = build(_stacks([["x", "y", "z"]], [[1, 1]]), TYPES)
    q = build(_stacks([["w"], ["x", "y", "z"]], [[1, 1], [2, 2]]), TYPES)
    assert set(p.nodes["node_id"].to_list()) <= set(q.nodes["node_id"].to_list())


def test_recursion_gives_distinct_nodes() -> None:
    p = build(_stacks([["f", "f", "f"]], [[1, 1]]), TYPES)
    assert p.nodes.height == 3
    assert p.frames.height == 1


def test_rebuild_with_mask_drops_frames_and_keeps_totals() -> None:
    p = build(_stacks([["main", "a", "b"], ["main", "c"]], [[1, 10], [2, 20]]), TYPES)
    ex = expand(p)
    names = dict(zip(p.frames["frame_id"].to_list(), p.frames["name"].to_list(), strict=True))
    keep = np.array([names[int(f)] != "a" for f in ex.frame_ids])
    q = rebuild(p, ex, keep)
    assert q.totals() == p.totals()
    assert set(_stack_values(q)) == {("main", "b"), ("main", "c")}


stack_st = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=0, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(stack_st, st.integers(0, 10**12)), min_size=1, max_size=40))
def test_build_expand_roundtrip(rows: list[tuple[list[str], int]]) -> None:
    p = build(_stacks([r[0] for r in rows], [[r[1], 2 * r[1]] for r in rows]), TYPES)
    expected: dict[tuple[str, ...], int] = {}
    for s, v in rows:
        expected[tuple(s)] = expected.get(tuple(s), 0) + v
    got = {k: v[0] for k, v in _stack_values(p).items()}
    assert got == {k: v for k, v in expected.items() if v}
    assert p.totals() == [sum(expected.values()), 2 * sum(expected.values())]
    nv = node_values(p, 0)
    top_total = int(nv.filter(pl.col("depth") == 1)["total"].sum() or 0)
    assert top_total == sum(v for k, v in expected.items() if k)
