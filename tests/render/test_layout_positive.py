"""fleetprof.render.layout: the whole-tree layout of positive single-column trees places
every node where the level-by-level layout does."""

from __future__ import annotations

import numpy as np
import pytest

from fleetprof.render import layout as lay


def _random_tree(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Root row 0 and ``n`` nodes in shuffled rows: parent, depth, self, total (subtree sums
    plus gaps, as pruning leaves), and sibling ranks with ties."""
    parent = np.full(n + 1, -1, dtype=np.int64)
    for i in range(1, n + 1):
        parent[i] = int(rng.integers(0, i))
    depth = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        depth[i] = depth[parent[i]] + 1
    own = rng.integers(0, 4, size=n + 1)
    total = own + rng.integers(0, 3, size=n + 1)
    total[total == 0] = 1
    for i in range(n, 0, -1):  # children have larger row numbers here
        total[parent[i]] += total[i]
    perm = np.concatenate([[0], 1 + rng.permutation(n)])
    inv = np.empty(n + 1, dtype=np.int64)
    inv[perm] = np.arange(n + 1)
    parent = np.where(parent[perm] >= 0, inv[np.maximum(parent[perm], 0)], -1)
    rank = rng.integers(0, 5, size=n + 1)
    rank[0] = 0
    return parent, depth[perm], own[perm][:, None], total[perm][:, None], rank


@pytest.mark.parametrize("seed", range(6))
def test_positive_layout_matches_level_layout(seed: int):
    rng = np.random.default_rng(seed)
    parent, depth, own, total, rank = _random_tree(rng, int(rng.integers(1, 400)))
    levels = lay._levels(depth)
    x_fast, pre_fast = lay._positive_layout(parent, depth, own, total, rank, levels)
    x_ref, pre_ref = lay._level_layout(parent, own, total, rank, levels)
    assert np.array_equal(x_fast, x_ref)
    assert np.array_equal(pre_fast, pre_ref)


def test_layout_takes_the_level_path_for_zero_or_negative_values():
    """Zero totals or negative self values (delta profiles) keep the level-by-level order."""
    tree = lay.CallTree(
        parent=np.array([-1, 0, 0, -1]), depth=np.array([1, 2, 2, 1]), name=np.array([0, 1, 2, 3]),
        file=np.zeros(4, dtype=np.int64), key=np.arange(4, dtype=np.uint64),
        self=np.array([[-2], [3], [0], [1]]), total=np.array([[1], [3], [0], [1]]),
        root_self=np.array([0]), root_total=np.array([2]),
        names=np.array(["a", "b", "c", "d"], dtype=object), files=np.array([""], dtype=object),
    )
    out = lay.layout(tree)
    assert [out.names[i] for i in out.name] == ["total", "a", "b", "c", "d"]
    assert out.x[:, 0].tolist() == [0, 0, -2, 1, 1]
