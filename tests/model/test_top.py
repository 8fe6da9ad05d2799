import pytest
from stackutil import ALLOC, CPU, make

from fleetprof.model.top import top

P = {
    "main;fib;fib;fib": 10,
    "main;fib;fib": 5,
    "main;fib;helper;fib": 3,
    "main;io": 2,
    "": 4,
}


def rows(df):
    return {r["name"]: (r["self"], r["total"]) for r in df.iter_rows(named=True)}


def test_recursion_counts_each_frame_once_per_stack():
    t = rows(top(make(P), 0))
    assert t == {"fib": (18, 18), "main": (0, 20), "helper": (0, 3), "io": (2, 2)}


def test_percent_of_grand_total_and_order():
    df = top(make(P), 0)
    assert df["name"].to_list()[:2] == ["fib", "io"]
    fib = df.row(0, named=True)
    assert fib["self_pct"] == pytest.approx(75.0)
    assert fib["total_pct"] == pytest.approx(75.0)
    assert df.filter(df["name"] == "main")["total_pct"].item() == pytest.approx(100 * 20 / 24)
    assert (df["total_pct"] <= 100.0).all()


def test_n_and_type_index():
    p = make({"a;b": (1, 100), "a;c": (5, 1)}, types=(CPU, ALLOC))
    assert top(p, 0, n=1)["name"].to_list() == ["c"]
    assert top(p, 1, n=1)["name"].to_list() == ["b"]
    assert top(p, 1).height == 3


def test_by_function_merges_files():
    a = make({"m;f": 3}, file="a.py")
    b = make({"m;f": 4}, file="b.py")
    from fleetprof.model import merge

    p = merge([a, b])
    assert top(p, 0).height == 4
    t = top(p, 0, by="function")
    assert rows(t) == {"f": (7, 7), "m": (0, 7)}


def test_empty_profile():
    p = make({"": 5})
    df = top(p, 0)
    assert df.height == 0
