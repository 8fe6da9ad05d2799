import numpy as np
import pytest
from stackutil import CPU, folded, make

from fleetprof.model import Stacks, build, merge
from fleetprof.model.aggregate import aggregate
from fleetprof.model.hashing import frame_id


def lined():
    # main(app.py:1) -> f(app.py:10) | f(app.py:12) ; main -> g(lib.py:3)
    st = Stacks(
        names=["main", "f", "f", "g"],
        files=["app.py", "app.py", "app.py", "lib.py"],
        lines=[1, 10, 12, 3],
        offsets=np.array([0, 2, 4, 6, 6]),
        frames=np.array([0, 1, 0, 2, 0, 3]),
        values=np.array([[5], [7], [2], [1]]),
    )
    return build(st, [CPU])


def test_by_frame_merges_lines():
    p = lined()
    assert p.nodes.height == 4
    out = aggregate(p, "frame")
    assert folded(out) == {"main;f": 12, "main;g": 2, "": 1}
    assert out.totals() == p.totals()
    assert set(out.frames["frame_id"].to_list()) == {frame_id("main", "app.py"), frame_id("f", "app.py"), frame_id("g", "lib.py")}


def test_by_line_keeps_lines_and_requires_them():
    p = lined()
    out = aggregate(p, "line")
    assert out.nodes.height == 4
    assert sorted(out.frames["line"].to_list()) == [1, 3, 10, 12]
    with pytest.raises(ValueError, match="keep_lines"):
        aggregate(make({"a;b": 1}), "line")


def test_by_function_and_file():
    p = merge([make({"m;f": 3, "m;h": 1}, file="a.py"), make({"m;f": 4}, file="b.py")])
    assert folded(aggregate(p, "function")) == {"m;f": 7, "m;h": 1}
    assert folded(aggregate(p, "file")) == {"a.py;a.py": 4, "b.py;b.py": 4}
    nofile = make({"x;y": 2})
    assert folded(aggregate(nofile, "file")) == {"x;y": 2}


def test_unknown_key():
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(make({"a": 1}), "module")


def test_identity_when_already_keyed():
    p = make({"a;b": 1})
    assert aggregate(p, "function") is p
