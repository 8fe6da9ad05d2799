"""Flamebearer (single and diff) against hand-built trees with exact expected levels."""

from __future__ import annotations

from render_util import SMALL, ValueType, profile_of

from fleetprof.render.flamebearer import diff_flamebearer, to_flamebearer


def decode_levels(fb: dict, step: int = 4, offsets: tuple[int, ...] = (0,)) -> list[list[int]]:
    """Undo the Δx encoding (each x column on its own)."""
    out = []
    for level in fb["flamebearer"]["levels"]:
        level = list(level)
        for off in offsets:
            prev = 0
            for i in range(off, len(level), step):
                level[i] += prev
                prev = level[i] + level[i + 1]
        out.append(level)
    return out


def test_single_exact_levels():
    fb = to_flamebearer(profile_of(SMALL), 0)
    f = fb["flamebearer"]
    # Pyroscope name order: first met in a pre-order walk visiting children right to left
    assert f["names"] == ["total", "e", "a", "d", "b", "c"]
    assert f["levels"] == [
        [0, 15, 5, 0],                 # root: total 15, self 5 (empty stacks)
        [5, 9, 0, 2, 0, 1, 1, 1],      # a at x=5 (after root self), e right after a
        [5, 5, 2, 4, 0, 4, 4, 3],      # b at 5, d at 10 (Δ 0 from b's end)
        [7, 3, 3, 5],                  # c at 7 = b.x + b.self
    ]
    assert f["numTicks"] == 15 and f["maxSelf"] == 5
    assert fb["version"] == 1 and fb["timeline"] is None
    md = fb["metadata"]
    assert md["format"] == "single" and md["units"] == "samples" and md["sampleRate"] == 1_000_000_000


def test_children_sorted_by_name_and_names_deduplicated():
    p = profile_of([(["m", "zeta"], 1), (["m", "alpha"], 2), (["n", "alpha"], 3)])
    f = to_flamebearer(p, 0)["flamebearer"]
    assert sorted(f["names"]) == sorted(set(f["names"]))
    lv = decode_levels({"flamebearer": f})
    names = f["names"]
    level1 = [names[lv[1][i + 3]] for i in range(0, len(lv[1]), 4)]
    level2 = [names[lv[2][i + 3]] for i in range(0, len(lv[2]), 4)]
    assert level1 == ["m", "n"]
    assert level2 == ["alpha", "zeta", "alpha"]
    assert [lv[2][i] for i in range(0, 12, 4)] == [0, 2, 3]


def test_units_metadata():
    p = profile_of(SMALL, st=ValueType("alloc_space", "bytes"))
    assert to_flamebearer(p, 0)["metadata"]["units"] == "bytes"
    p = profile_of(SMALL, st=ValueType("samples", "count"))
    md = to_flamebearer(p, 0)["metadata"]
    assert md["units"] == "objects" and md["sampleRate"] == 100


def test_max_nodes_folds_into_other_with_exact_totals():
    f = to_flamebearer(profile_of(SMALL), 0, max_nodes=2)["flamebearer"]
    # cut-off = 2nd largest node total (5): a and b kept, c/d/e folded into "other"
    assert f["names"] == ["total", "other", "a", "b"]
    assert f["levels"] == [
        [0, 15, 5, 0],
        [5, 9, 0, 2, 0, 1, 1, 1],
        [5, 5, 2, 3, 0, 4, 4, 1],
        [7, 3, 3, 1],
    ]
    # every level's blocks stay inside the root's total
    for level in decode_levels({"flamebearer": f}):
        assert sum(level[i + 1] for i in range(0, len(level), 4)) <= 15


def test_max_nodes_larger_than_tree_is_identity():
    p = profile_of(SMALL)
    assert to_flamebearer(p, 0, max_nodes=100) == to_flamebearer(p, 0)


def test_diff_exact_levels():
    base = profile_of(SMALL)
    cand = profile_of([(["a", "b", "c"], 1), (["a", "x"], 2), (["f"], 4)])
    fb = diff_flamebearer(base, cand, 0)
    f = fb["flamebearer"]
    assert fb["metadata"]["format"] == "double"
    assert fb["leftTicks"] == 15 and fb["rightTicks"] == 7 and f["numTicks"] == 22
    assert f["names"] == ["total", "f", "e", "a", "x", "d", "b", "c"]
    assert f["levels"] == [
        [0, 15, 5, 0, 7, 0, 0],
        [5, 9, 0, 0, 3, 0, 3,   0, 1, 1, 0, 0, 0, 2,   0, 0, 0, 0, 4, 4, 1],
        [5, 5, 2, 0, 1, 0, 6,   0, 4, 4, 0, 0, 0, 5,   0, 0, 0, 0, 2, 2, 4],
        [7, 3, 3, 0, 1, 1, 7],
    ]
    assert f["maxSelf"] == 5


def test_diff_max_nodes_keeps_totals():
    base = profile_of(SMALL)
    cand = profile_of([(["a", "b", "c"], 1), (["a", "x"], 2), (["f"], 4)])
    f = diff_flamebearer(base, cand, 0, max_nodes=3)["flamebearer"]
    lv = decode_levels({"flamebearer": f}, step=7, offsets=(0, 3))
    assert "other" in f["names"]
    # level 1 left/right totals still sum to the root totals minus root self
    assert sum(lv[1][i + 1] for i in range(0, len(lv[1]), 7)) == 10
    assert sum(lv[1][i + 4] for i in range(0, len(lv[1]), 7)) == 7
