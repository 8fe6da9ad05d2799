"""Layout pruning, tree JSON and SVG structure (well-formed XML, totals, %, icicle, diff)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from render_util import SMALL, profile_of

from fleetprof.render.layout import call_tree, fold_max_nodes, layout, profile_layout, prune_narrow
from fleetprof.render.svg import package_of, render_diff_svg, render_svg, warm_colour
from fleetprof.render.tree_json import to_tree
from fleetprof.render.units import format_value

NS = "{http://www.w3.org/2000/svg}"


def _check_layout(lay, exact=True):
    """Children lie inside [x+self, x+total) of their parent, siblings do not overlap."""
    for i in range(1, lay.size):
        p = lay.parent[i]
        assert lay.depth[i] == lay.depth[p] + 1
        assert lay.x[i, 0] >= lay.x[p, 0] + lay.self[p, 0]
        assert lay.x[i, 0] + lay.total[i, 0] <= lay.x[p, 0] + lay.total[p, 0]
    child_sum = np.zeros(lay.size, dtype=np.int64)
    np.add.at(child_sum, lay.parent[1:], lay.total[1:, 0])
    if exact:  # no node lost: total = self + children everywhere
        assert (lay.total[:, 0] == lay.self[:, 0] + child_sum).all()
    else:
        assert (lay.total[:, 0] >= lay.self[:, 0] + child_sum).all()


stacks_st = st.lists(
    st.tuples(st.lists(st.sampled_from(["a", "b", "c", "d.x", "e.y"]), max_size=6), st.integers(1, 1000)),
    min_size=1, max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(stacks_st, st.integers(1, 12))
def test_fold_and_prune_keep_totals_exact(stacks, max_nodes):
    p = profile_of(stacks)
    total = sum(v for _, v in stacks)
    tree = call_tree(p, 0)
    full = layout(tree)
    assert full.total[0, 0] == total
    _check_layout(full)
    folded = layout(fold_max_nodes(tree, max_nodes))
    assert folded.total[0, 0] == total
    _check_layout(folded)
    # sum of self over all nodes (including "other") is still the total
    assert folded.self[:, 0].sum() == total
    pruned = layout(prune_narrow(tree, total / 7))
    _check_layout(pruned, exact=False)
    assert (pruned.total[1:, 0] >= total / 7).all()
    assert pruned.total[0, 0] == total


def test_by_name_merges_frames_that_differ_only_by_file():
    p = profile_of([(["m", "f"], 2), (["m", "g"], 3)], files={"f": "x.py", "g": "y.py"})
    lay = profile_layout(p, 0)
    assert list(lay.node_names()) == ["total", "m", "f", "g"]
    assert list(lay.x[:, 0]) == [0, 0, 0, 2]


def test_tree_json():
    t = to_tree(profile_of(SMALL, files={"c": "c.py"}), 0)
    assert (t["unit"], t["sample_type"], t["total"], t["self"], t["name"]) == ("nanoseconds", "cpu", 15, 5, "total")
    a, e = t["children"]
    assert (a["name"], a["total"], a["self"], e["name"], e["total"]) == ("a", 9, 0, "e", 1)
    b, d = a["children"]
    assert (b["name"], b["total"], b["self"], d["total"]) == ("b", 5, 2, 4)
    assert b["children"][0] == {"name": "c", "file": "c.py", "self": 3, "total": 3, "children": []}
    pruned = to_tree(profile_of(SMALL), 0, max_nodes=2)
    assert pruned["total"] == 15 and [c["name"] for c in pruned["children"]] == ["a", "other"]


def _frames(svg: str):
    root = ET.fromstring(svg)
    out = {}
    for g in root.find(f"{NS}g[@id='frames']"):
        title = g.find(f"{NS}title").text
        rect = g.find(f"{NS}rect")
        out.setdefault(title.split("\n")[0], []).append((title, rect.attrib, g.attrib))
    return root, out


def test_svg_well_formed_totals_and_percentages():
    p = profile_of(SMALL + [([f"tiny{i}"], 1) for i in range(3)])
    svg = render_svg(p, 0, title="T <&>", min_width_px=50)
    root, frames = _frames(svg)  # parses: well-formed
    assert root.find(f"{NS}text[@id='title']").text == "T <&>"
    assert "Total: 18 ns" in root.find(f"{NS}text[@id='subtitle']").text
    assert frames["total"][0][0] == "total\n18 ns (100.00%)"
    assert frames["a"][0][0] == "a\n9 ns (50.00%)"
    assert frames["d"][0][0] == "d\n4 ns (22.22%)"
    # frames narrower than 50 px (1 ns of 18 over 1180 px ≈ 66 px is kept; min 50) ...
    assert "tiny0" in frames
    svg = render_svg(p, 0, min_width_px=100)
    _, frames = _frames(svg)
    assert "tiny0" not in frames and "e" not in frames  # omitted, their time stays in the root
    assert float(frames["a"][0][2]["data-w"]) == 9
    widths = {n: float(v[0][1]["width"]) for n, v in frames.items()}
    assert abs((widths["a"] + 0.5) / (widths["total"] + 0.5) - 9 / 18) < 1e-3
    assert "<![CDATA[" in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_svg_icicle_flips():
    p = profile_of(SMALL)
    _, flame = _frames(render_svg(p, 0))
    _, ice = _frames(render_svg(p, 0, icicle=True))
    y = lambda fr, n: float(fr[n][0][1]["y"])  # noqa: E731
    assert y(flame, "total") > y(flame, "a") > y(flame, "b") > y(flame, "c")
    assert y(ice, "total") < y(ice, "a") < y(ice, "b") < y(ice, "c")


def test_units_and_colours():
    assert format_value(1.234e9, "nanoseconds") == "1.23 s"
    assert format_value(12.3 * 2**20, "bytes") == "12.3 MiB"
    assert format_value(1234, "count") == "1,234"
    assert package_of("pkg.mod.func") == "pkg.mod" and package_of("a::b::c") == "a::b"
    assert package_of("foo (x.py:12)") == "foo"
    c = warm_colour("pkg.mod")
    assert c == warm_colour("pkg.mod")
    r, g, b = map(int, re.findall(r"\d+", c))
    assert r >= 205 and r > g and r > b  # warm


def test_diff_svg_colours_and_tooltips():
    base = profile_of([(["m", "grow"], 10), (["m", "shrink"], 30), (["m", "same"], 60)])
    cand = profile_of([(["m", "grow"], 60), (["m", "shrink"], 20), (["m", "same"], 120)])
    _, frames = _frames(render_diff_svg(base, cand, 0))
    rgb = lambda n: tuple(map(int, re.findall(r"\d+", frames[n][0][1]["fill"])))  # noqa: E731
    r, g, b = rgb("grow")
    assert r > b and r > g
    r, g, b = rgb("shrink")
    assert b > r
    r, g, b = rgb("same")
    assert r == g == b
    title = frames["grow"][0][0]
    assert "base: 10 ns (10.00%)" in title and "candidate: 60 ns (30.00%)" in title and "+20.00 pp" in title
    assert np.isclose(float(frames["m"][0][2]["data-w"]), 1e12)
    assert "-20.00 pp" in frames["shrink"][0][0]


def _shuffled(p, seed):
    """The same profile with its node table in another row order (not pre-order)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    return replace(p, nodes=p.nodes[rng.permutation(p.nodes.height)])


def _tree_rows(tree):
    """Order-independent content of a call tree: (name path, self, total) per node."""
    paths = []
    for i in range(tree.size):
        path, j = [], i
        while j >= 0:
            path.append(str(tree.names[tree.name[j]]))
            j = tree.parent[j]
        paths.append((tuple(reversed(path)), int(tree.self[i, 0]), int(tree.total[i, 0])))
    return sorted(paths), int(tree.root_self[0]), int(tree.root_total[0])


@settings(max_examples=60, deadline=None)
@given(stacks_st, st.integers(0, 2**32 - 1), st.sampled_from([None, 0.0, 0.1, 0.3]))
def test_call_tree_same_for_preorder_and_shuffled_nodes(stacks, seed, share):
    p = profile_of(stacks)
    min_total = None if share is None else (lambda t: share * t)
    fast = call_tree(p, 0, min_total=min_total)
    slow = call_tree(_shuffled(p, seed), 0, min_total=min_total)
    assert _tree_rows(fast) == _tree_rows(slow)
    ref = call_tree(_shuffled(p, seed), 0)
    if share:  # early pruning drops exactly what prune_narrow drops later
        ref = prune_narrow(ref, share * int(ref.root_total[0]))
    assert _tree_rows(fast) == _tree_rows(ref)


def test_svg_independent_of_node_order():
    stacks = [(["a", "b", "c"], 5), (["a", "b"], 3), (["a", "d"], 1), (["e"], 2), (["a", "b", "c", "f"], 1), ([], 1)]
    p = profile_of(stacks)
    assert render_svg(p, 0, min_width_px=30) == render_svg(_shuffled(p, 1), 0, min_width_px=30)
    assert render_svg(p, 0) == render_svg(_shuffled(p, 2), 0)


def test_merged_names_then_pruned():
    # two frames named "b" (different files) under "a" merge before narrow nodes are dropped
    p = profile_of([(["a", "b"], 3), (["a", "b2"], 3), (["a", "c"], 4)], files={"b2": "other.py"})
    from dataclasses import replace

    frames = p.frames.with_columns(
        name=pl.when(pl.col("name") == "b2").then(pl.lit("b")).otherwise(pl.col("name"))
    )
    p = replace(p, frames=frames)
    tree = call_tree(p, 0, min_total=lambda t: 0.5 * t)
    rows, _, total = _tree_rows(tree)
    assert total == 10
    assert rows == [(("a",), 0, 10), (("a", "b"), 6, 6)]  # "c" (4) < 5 dropped; the b's (3 + 3) kept


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), unique=True, max_size=200), st.lists(st.integers(0, 2**64 - 1), max_size=200))
def test_hash_index_exact_positions(keys, extra):
    from fleetprof.render.layout import _HashIndex

    k = np.array(keys, dtype=np.uint64)
    q = np.array(keys[::-1] + extra + [0, 1, 2], dtype=np.uint64)
    got = _HashIndex(k).lookup(q)
    where = {v: i for i, v in enumerate(keys)}
    assert got.tolist() == [where.get(int(v), -1) for v in q.tolist()]


def test_parent_rule_without_preorder_is_not_taken_for_preorder():
    # rows a, a;b, c, a;b;k: every parent is the nearest earlier row one level up, yet the
    # subtree of a;b is not contiguous (the depth jumps from 1 to 3)
    from dataclasses import replace

    p = profile_of([(["a", "b", "k"], 5), (["c"], 2), (["a", "b"], 1)])
    names = dict(zip(p.frames["frame_id"].to_list(), p.frames["name"].to_list(), strict=True))
    rank = {"a": 0, "b": 1, "c": 2, "k": 3}
    order = sorted(range(p.nodes.height), key=lambda i: rank[names[p.nodes["frame_id"][i]]])
    q = replace(p, nodes=p.nodes[order])
    assert q.nodes["depth"].to_list() == [1, 2, 1, 3]
    assert _tree_rows(call_tree(q, 0)) == _tree_rows(call_tree(p, 0))


def _large_profile():
    rng = np.random.default_rng(3)
    stacks = []
    for i in range(40_000):
        depth = int(rng.integers(1, 8))
        stacks.append(([f"f{int(x)}" for x in rng.integers(0, 20, size=depth)] + [f"leaf{i % 7}"], int(rng.integers(0, 5))))
    stacks.append(([], 3))
    return profile_of(stacks)


def test_hinted_build_renders_like_a_plain_node_table():
    from dataclasses import replace

    from fleetprof.model.profile import parent_rows_hint, sample_rows_hint

    p = _large_profile()
    assert p.nodes.height > 50_000
    assert parent_rows_hint(p.nodes) is not None and sample_rows_hint(p.samples) is not None
    plain = replace(p, nodes=p.nodes.clone(), samples=p.samples.clone())  # no hints
    assert parent_rows_hint(plain.nodes) is None and sample_rows_hint(plain.samples) is None
    assert _tree_rows(call_tree(p, 0)) == _tree_rows(call_tree(plain, 0))
    assert render_svg(p, 0) == render_svg(plain, 0)


def test_wrong_hints_are_not_trusted(monkeypatch):
    from fleetprof.model import profile as model

    p = _large_profile()
    want = _tree_rows(call_tree(p, 0))
    for table in (p.nodes, p.samples):
        rows = model._rows_hint(table).copy()
        rows[[-1, -5]] = rows[[-5, -1]]
        model._remember_rows(table, rows)
    assert _tree_rows(call_tree(p, 0)) == want
