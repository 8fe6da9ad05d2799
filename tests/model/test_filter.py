import numpy as np
import pytest
from stackutil import folded, make

from fleetprof.model import ROOT_ID, mix_scalar
from fleetprof.model.filter import focus, ignore, keep_subtree, resolve_path, show_from
from fleetprof.model.hashing import frame_id

P = {
    "main;handle;parse;json_load": 10,
    "main;handle;render": 7,
    "main;gc": 3,
    "main;parse": 2,
    "worker;parse;json_load": 5,
    "": 4,
}


def test_focus_keeps_full_paths():
    out = focus(make(P), r"^parse$")
    assert folded(out) == {"main;handle;parse;json_load": 10, "main;parse": 2, "worker;parse;json_load": 5}


def test_show_from_reroots_at_rootmost_match():
    out = show_from(make(P), "parse")
    assert folded(out) == {"parse;json_load": 15, "parse": 2}
    out2 = focus(make({"a;r;b;r;c": 3, "x": 1}), "^r$", reroot=True)
    assert folded(out2) == {"r;b;r;c": 3}


def test_ignore_drops_matching_stacks_keeps_empty():
    out = ignore(make(P), "json|gc")
    assert folded(out) == {"main;handle;render": 7, "main;parse": 2, "": 4}
    assert out.totals() == [13]


def test_ignore_nothing_matching_is_identity():
    p = make(P)
    assert ignore(p, "nomatch") is p


def test_focus_nothing_matches_gives_empty_profile():
    out = focus(make(P), "nomatch")
    assert out.totals() == [0]
    assert out.samples.height == 0


def test_match_file():
    p = make({"a;b": 1, "c": 2}, file="lib/x.py")
    assert focus(p, r"x\.py").totals() == [0]
    assert focus(p, r"x\.py", match_file=True).totals() == [3]


def test_keep_subtree_by_path_and_id():
    p = make(P)
    assert folded(keep_subtree(p, ["main", "handle"])) == {"main;handle;parse;json_load": 10, "main;handle;render": 7}
    assert folded(keep_subtree(p, ["main", "handle"], reroot=True)) == {"handle;parse;json_load": 10, "handle;render": 7}
    nid = mix_scalar(mix_scalar(ROOT_ID, frame_id("main")), frame_id("handle"))
    assert folded(keep_subtree(p, nid)) == folded(keep_subtree(p, ["main", "handle"]))
    ids = resolve_path(p, ["main", "handle"])
    assert np.array_equal(ids, np.array([nid], dtype=np.uint64))
    assert len(resolve_path(p, ["handle"])) == 0
    with pytest.raises(TypeError):
        resolve_path(p, "main")


def test_labels_and_other_columns_survive():
    from stackutil import ALLOC, CPU

    p = make({"a;b": (1, 10), "a;c": (2, 20)}, types=(CPU, ALLOC))
    out = focus(p, "^c$")
    assert out.totals() == [2, 20]
