"""The compiled trie (``trie_nodes``) agrees with hashing every stack element, for plain
stacks and for pprof's location-indirected shape; rows come breadth first."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from stackutil import FTAB, STACKS, check_nodes, csr

from fleetprof.model.trie import expand_locations, trie_nodes

# locations: each stands for 1..3 frames (root first)
LOCS = st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=3), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(STACKS, FTAB)
def test_trie_matches_hashed_nodes(stacks, ftab):
    offsets, fidx = csr(stacks)
    tab = np.array(ftab, dtype=np.uint64)
    check_nodes(trie_nodes(offsets, fidx, tab), offsets, fidx, tab)


@settings(max_examples=300, deadline=None)
@given(st.data(), LOCS, FTAB)
def test_located_trie_matches_expanded_stacks(data, locs, ftab):
    stacks = data.draw(st.lists(st.lists(st.integers(0, len(locs) - 1), max_size=6), min_size=1, max_size=20))
    lf_off, lf_frames = csr(locs)
    offsets, elems = csr(stacks)  # location indices, leaf first
    tab = np.array(ftab, dtype=np.uint64)
    plain_off, plain = expand_locations(offsets, elems, lf_off, lf_frames)
    expected = [[f for li in reversed(s) for f in locs[li]] for s in stacks]
    assert [plain[a:b].tolist() for a, b in zip(plain_off[:-1], plain_off[1:], strict=True)] == expected
    root_off, root_elems = csr([s[::-1] for s in stacks])  # the same stacks listed root first
    assert expand_locations(root_off, root_elems, lf_off, lf_frames, leaf_first=False)[1].tolist() == plain.tolist()
    check_nodes(trie_nodes(offsets, elems, tab, (lf_off, lf_frames)), plain_off, plain, tab)


def test_trie_grows_past_its_first_table():
    # every stack a new path: far more nodes than the first table holds at half load
    rng = np.random.default_rng(3)
    stacks = [rng.integers(0, 400, size=int(rng.integers(1, 12))).tolist() for _ in range(6000)]
    offsets, fidx = csr(stacks)
    tab = np.arange(1, 401, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    got = trie_nodes(offsets, fidx, tab)
    first_table = 1 << max(10, (len(fidx) // 4).bit_length())
    assert got is not None and len(got[0]) > first_table // 2
    check_nodes(got, offsets, fidx, tab)


def test_out_of_range_elements_are_refused_not_read():
    import pytest

    with pytest.raises(ValueError):
        trie_nodes(np.array([0, 2], np.int64), np.array([0, 3], np.int64), np.array([5, 6], np.uint64))
    with pytest.raises(ValueError):
        trie_nodes(np.array([0, 1], np.int64), np.array([-1], np.int64), np.array([5], np.uint64))
    with pytest.raises(ValueError):
        trie_nodes(np.array([0, 3, 1, 3], np.int64), np.array([0, 0, 0], np.int64), np.array([5], np.uint64))
    with pytest.raises(ValueError):  # stack 0 would run past the elements before stack 1's decrease shows
        trie_nodes(np.array([0, 5, 3], np.int64), np.array([0, 0, 0], np.int64), np.array([5], np.uint64))
    with pytest.raises(ValueError):  # location 0 claims frames past the end of lf_frames
        trie_nodes(np.array([0, 1], np.int64), np.array([0], np.int64), np.array([5], np.uint64), (np.array([0, 4]), np.array([0])))
