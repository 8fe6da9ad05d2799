"""Build small profiles from ``{"a;b;c": value}`` dicts for model tests; check node
builders against hashing every stack element."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from hypothesis import strategies as st

from fleetprof.model import Profile, Stacks, ValueType, build, expand
from fleetprof.model.hashing import ROOT_ID
from fleetprof.model.profile import _hashed_nodes, frame_lookup

CPU = ValueType("cpu", "nanoseconds")
ALLOC = ValueType("alloc_space", "bytes")


def make(stacks: Mapping[str, int | Sequence[int]], types: Sequence[ValueType] = (CPU,), file: str = "") -> Profile:
    """Profile from folded-style stacks; a value may be a tuple (one per sample type)."""
    names: list[str] = []
    index: dict[str, int] = {}
    offsets = [0]
    frames: list[int] = []
    values = []
    for stack, v in stacks.items():
        for name in (stack.split(";") if stack else []):
            if name not in index:
                index[name] = len(names)
                names.append(name)
            frames.append(index[name])
        offsets.append(len(frames))
        values.append(list(v) if isinstance(v, (tuple, list)) else [v])
    st = Stacks(
        names=names,
        files=[file] * len(names),
        offsets=np.array(offsets, dtype=np.int64),
        frames=np.array(frames, dtype=np.int64),
        values=np.array(values, dtype=np.int64).reshape(len(values), len(types)),
    )
    return build(st, types)


def folded(profile: Profile, col: int = 0) -> dict[str, int]:
    """Inverse of :func:`make` for one value column (stacks with equal paths summed)."""
    ex = expand(profile)
    names = frame_lookup(profile, ex.frame_ids) if len(ex.frame_ids) else np.array([], dtype=object)
    vals = ex.samples[f"v{col}"].to_list()
    out: dict[str, int] = {}
    for i, v in enumerate(vals):
        key = ";".join(names[ex.offsets[i] : ex.offsets[i + 1]])
        out[key] = out.get(key, 0) + int(v)
    return {k: v for k, v in out.items() if v}


# stacks over a few frame codes; the frame id table may map two codes to one id
STACKS = st.lists(st.lists(st.integers(0, 5), max_size=7), min_size=1, max_size=30)
FTAB = st.lists(st.sampled_from([11, 12, 13, 2**63 + 5, 2**64 - 1]), min_size=6, max_size=6)


def csr(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, elements)`` of a list of int lists."""
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in lists])
    return offsets, np.array([v for x in lists for v in x], dtype=np.int64)


def check_nodes(got, offsets: np.ndarray, fidx: np.ndarray, tab: np.ndarray) -> None:
    """``got`` (a node builder's ``(node_id, parent_id, frame_id, depth, leaf_row,
    parent_row)``) equals hashing every element, listed level by level with parent rows
    that point at the parents and never decrease within a level."""
    nodes, leaf = _hashed_nodes(offsets, fidx, tab, np.diff(offsets))
    if len(fidx) == 0:
        assert got is None
        return
    assert got is not None
    nid, pid, fid, depth, lrow, prow = got[:6]
    assert len(np.unique(nid)) == len(nid)
    assert sorted(zip(nid.tolist(), pid.tolist(), fid.tolist(), depth.tolist(), strict=True)) == sorted(nodes.rows())
    assert np.where(lrow >= 0, nid[np.maximum(lrow, 0)], np.uint64(ROOT_ID)).tolist() == leaf.tolist()
    assert (np.diff(depth.astype(np.int64)) >= 0).all()
    top = depth == 1
    assert (prow[top] == -1).all() and (pid[top] == ROOT_ID).all()
    assert (nid[prow[~top]] == pid[~top]).all()
    for d in range(2, int(depth.max()) + 1):
        assert (np.diff(prow[depth == d]) >= 0).all()
    if len(got) == 7:  # the trie also names the frame table's rows
        ids = tab.tolist()
        assert got[6].tolist() == sorted(ids.index(f) for f in set(fid.tolist()))
