"""The sorting node builder (``_prefix_tree``) agrees with hashing every stack element."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from stackutil import FTAB, STACKS, check_nodes, csr

from fleetprof.model.hashing import ROOT_ID
from fleetprof.model.profile import _prefix_tree


@settings(max_examples=300, deadline=None)
@given(STACKS, FTAB)
def test_prefix_tree_matches_hashed_nodes(stacks, ftab):
    offsets, fidx = csr(stacks)
    tab = np.array(ftab, dtype=np.uint64)
    check_nodes(_prefix_tree(offsets, fidx, tab), offsets, fidx, tab)


def test_build_remembers_parent_rows_of_large_tables():
    from fleetprof.model import Stacks, ValueType, build
    from fleetprof.model.profile import parent_rows_hint, sample_rows_hint

    n = 60_000
    offsets = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    fidx = np.stack([np.zeros(n, np.int64), np.arange(1, n + 1)], axis=1).ravel()
    names = [f"f{i}" for i in range(n + 1)]
    p = build(Stacks(names, [""] * (n + 1), offsets, fidx, np.ones((n, 1), np.int64)), [ValueType("samples", "count")])
    hint = parent_rows_hint(p.nodes)
    assert hint is not None
    nid, pid = p.nodes["node_id"].to_numpy(), p.nodes["parent_id"].to_numpy()
    assert (nid[hint[hint >= 0]] == pid[hint >= 0]).all() and (pid[hint < 0] == ROOT_ID).all()
    assert parent_rows_hint(p.nodes.clone()) is None
    rows = sample_rows_hint(p.samples)
    assert rows is not None and (nid[rows] == p.samples["node_id"].to_numpy()).all()
    assert p.samples.height == n and p.totals() == [n]


def test_padding_bound_falls_back():
    # one very deep stack among many empty ones: the padded matrix would be too large
    offsets = np.concatenate([np.zeros(100_000, dtype=np.int64), [5000]])
    fidx = np.zeros(5000, dtype=np.int64)
    assert _prefix_tree(offsets, fidx, np.array([7], dtype=np.uint64)) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 6), st.integers(-3, 3), st.integers(0, 2), st.sampled_from([0, 0, 5, 2**64 - 1])), max_size=40))
def test_aggregate_rows_matches_sorted_aggregation(rows):
    from fleetprof.model.profile import _aggregate_arrays, _aggregate_rows

    nid = np.array([101, 102, 103, 104, 105, 106, 107], dtype=np.uint64)
    leaf_row = np.array([r[0] for r in rows], dtype=np.int64)
    lab = np.array([r[3] for r in rows], dtype=np.uint64)
    values = np.array([[r[1], r[2]] for r in rows], dtype=np.int64).reshape(len(rows), 2)
    ids, code = np.unique(lab, return_inverse=True)
    got, grows = _aggregate_rows(leaf_row, nid, code.reshape(-1), ids, values, ["v0", "v1"])
    leaf = np.where(leaf_row >= 0, nid[np.maximum(leaf_row, 0)], np.uint64(ROOT_ID)).astype(np.uint64)
    ref = _aggregate_arrays(leaf, lab, values, ["v0", "v1"])
    assert sorted(got.rows()) == sorted(ref.rows())
    assert (np.where(grows >= 0, nid[np.maximum(grows, 0)], np.uint64(ROOT_ID)) == got["node_id"].to_numpy()).all()
