import pytest
from stackutil import make

from fleetprof.model.hotpath import HOT_PATH_COLUMNS, hot_path

P = {
    "main;serve;handle;parse": 40,
    "main;serve;handle;render": 25,
    "main;serve;idle": 10,
    "main;gc": 15,
    "other_root": 5,
    "": 5,
}


def test_follows_heaviest_child():
    hp = hot_path(make(P), 0, min_fraction=0.1)
    assert tuple(hp.columns) == HOT_PATH_COLUMNS
    assert hp["name"].to_list() == ["main", "serve", "handle", "parse"]
    assert hp["total"].to_list() == [90, 75, 65, 40]
    assert hp["depth"].to_list() == [1, 2, 3, 4]
    assert hp["share"].to_list() == pytest.approx([0.9, 0.75, 0.65, 0.4])


def test_stops_below_fraction():
    hp = hot_path(make(P), 0, min_fraction=0.5)
    assert hp["name"].to_list() == ["main", "serve", "handle"]
    assert hot_path(make(P), 0, min_fraction=0.95).height == 0


def test_recursion_and_ties():
    hp = hot_path(make({"a;a;a": 5, "b": 5}), 0, min_fraction=0.0)
    assert hp["name"].to_list() == ["a", "a", "a"]


def test_empty():
    assert hot_path(make({"": 3}), 0).height == 0
