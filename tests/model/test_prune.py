import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from stackutil import ALLOC, CPU, folded, make

from fleetprof.model import node_values
from fleetprof.model.prune import OTHER_FRAME, kept_nodes, prune

BASE = {
    "main;a;x": 50,
    "main;a;y": 5,
    "main;b": 30,
    "main;c;d": 4,
    "main;c;e": 3,
    "": 8,
}


def test_max_nodes_keeps_heaviest_and_collapses_rest():
    p = make(BASE)
    out = prune(p, 0, max_nodes=4)  # main(92), a(55), x(50), b(30)
    assert folded(out) == {
        "main;a;x": 50,
        "main;a;other": 5,
        "main;b": 30,
        "main;other": 7,
        "": 8,
    }
    assert out.totals() == p.totals()


def test_min_fraction_and_totals_exact():
    p = make(BASE)
    out = prune(p, 0, min_fraction=0.05)  # >= 5 of 100
    assert folded(out) == {"main;a;x": 50, "main;a;y": 5, "main;b": 30, "main;c;other": 7, "": 8}


def test_zero_nodes_everything_other():
    p = make(BASE)
    out = prune(p, 0, max_nodes=0)
    assert folded(out) == {"other": 92, "": 8}


def test_noop_returns_same_profile():
    p = make(BASE)
    assert prune(p, 0) is p
    assert prune(p, 0, max_nodes=1000) is p


def test_kept_totals_unchanged_and_other_types_preserved():
    p = make({"m;a": (10, 1), "m;b": (1, 100), "m;b;c": (2, 7)}, types=(CPU, ALLOC))
    out = prune(p, 0, max_nodes=2)  # m(13), a(10)
    assert out.totals() == p.totals()
    assert folded(out, 1) == {"m;a": 1, "m;other": 107}
    before = node_values(p, 0).select("node_id", "total")
    after = node_values(out, 0).select("node_id", pl.col("total").alias("t2"))
    joined = before.join(after, on="node_id")
    assert joined.height == 2 and (joined["total"] == joined["t2"]).all()


def test_ties_keep_ancestors():
    p = make({"a;b;c": 10, "x;y": 10})
    ids = kept_nodes(p, 0, max_nodes=3)
    kept = node_values(p, 0).filter(pl.col("node_id").is_in(pl.Series(ids, dtype=pl.UInt64).implode()))
    parents = set(kept["parent_id"].to_list()) - {0}
    assert parents <= set(kept["node_id"].to_list())


stacks_st = st.dictionaries(
    st.lists(st.sampled_from("abcdef"), min_size=0, max_size=6).map(";".join),
    st.integers(min_value=1, max_value=1000),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(stacks_st, st.integers(min_value=0, max_value=20), st.floats(min_value=0, max_value=1))
def test_property_totals_exact_and_ancestor_closed(stacks, max_nodes, frac):
    p = make(stacks)
    out = prune(p, 0, max_nodes=max_nodes, min_fraction=frac)
    assert out.totals() == p.totals()
    non_other = out.frames.filter(pl.col("name") != OTHER_FRAME)["frame_id"]
    real_nodes = out.nodes.filter(pl.col("frame_id").is_in(non_other.implode()))
    assert real_nodes.height <= max_nodes
    # every kept real node keeps its exact total
    nv_in = node_values(p, 0).select("node_id", "total")
    nv_out = node_values(out, 0).join(nv_in, on="node_id", suffix="_in")
    assert np.array_equal(nv_out["total"].to_numpy(), nv_out["total_in"].to_numpy())
    # parents exist
    ids = set(out.nodes["node_id"].to_list()) | {0}
    assert set(out.nodes["parent_id"].to_list()) <= ids
