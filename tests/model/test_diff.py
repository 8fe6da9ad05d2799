import pytest
from stackutil import ALLOC, CPU, make

from fleetprof.model.diff import DIFF_COLUMNS, diff

BASE = {"main;a": 60, "main;b": 30, "gc": 10}
CAND = {"main;a": 60, "main;b": 120, "main;c": 10, "": 10}  # total 200


def by_path(df):
    return {r["path"]: r for r in df.iter_rows(named=True)}


def test_diff_values_shares_and_delta():
    df = diff(make(BASE), make(CAND), 0)
    assert tuple(df.columns) == DIFF_COLUMNS
    rows = by_path(df)
    assert set(rows) == {"main", "main;a", "main;b", "main;c", "gc"}
    b = rows["main;b"]
    assert (b["base"], b["cand"], b["base_self"], b["cand_self"]) == (30, 120, 30, 120)
    assert b["base_share"] == pytest.approx(0.30)
    assert b["cand_share"] == pytest.approx(0.60)
    assert b["delta"] == pytest.approx(0.30)
    a = rows["main;a"]
    assert a["delta"] == pytest.approx(0.30 - 0.60)
    gc = rows["gc"]
    assert (gc["cand"], gc["cand_share"], gc["delta"]) == (0, 0.0, pytest.approx(-0.1))
    c = rows["main;c"]
    assert (c["base"], c["depth"], c["name"]) == (0, 2, "c")
    assert rows["main"]["base_self"] == 0 and rows["main"]["base"] == 90


def test_shares_sum_and_sorted():
    df = diff(make(BASE), make(CAND), 0)
    assert df["path"].to_list() == sorted(df["path"].to_list())
    top = df.filter(df["depth"] == 1)
    assert top["base_share"].sum() == pytest.approx(1.0)
    assert top["cand_share"].sum() == pytest.approx(0.95)  # 10 empty-stack units


def test_cross_type_index_and_empty():
    b = make({"x;y": (1, 50)}, types=(CPU, ALLOC))
    c = make({"x;y": 5})
    df = diff(b, c, 1, cand_type_index=0)
    assert by_path(df)["x;y"]["delta"] == pytest.approx(0.0)
    empty = diff(make({"": 1}), make({"": 2}), 0)
    assert empty.height == 0
