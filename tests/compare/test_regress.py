import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))
from stackutil import ALLOC, CPU, make  # noqa: E402

from fleetprof.compare import regress  # noqa: E402

BASE = {
    "main;handle;parse": 300,
    "main;handle;render": 300,
    "main;handle;db": 300,
    "main;tiny": 4,  # 0.4 %
    "main;log": 96,
}


def cand_with(**changes):
    d = dict(BASE)
    d.update(changes)
    return d


def flagged(df):
    return {(r["function"], r["kind"]) for r in df.iter_rows(named=True)}


def test_known_regression_found_and_nothing_else():
    # parse 300 -> 1300 of 2000: 30 % -> 65 % self; everything else shrinks
    rep = regress(make(BASE), make(cand_with(**{"main;handle;parse": 1300})), 0, threshold_pp=1.0)
    assert rep.failed
    assert flagged(rep.flagged) == {("parse", "self"), ("parse", "total"), ("handle", "total")}
    # one culprit: parse's total is its self change, handle only carries it
    assert flagged(rep.regressions) == {("parse", "self")}
    assert rep.regressions["via"].to_list() == ["handle"]
    assert dict(zip(rep.carried["function"], rep.carried["into"], strict=True)) == {"parse": "parse (self)", "handle": "parse"}
    first = rep.regressions.row(0, named=True)
    assert (first["function"], first["kind"]) == ("parse", "self")
    assert first["base_pct"] == pytest.approx(30.0)
    assert first["cand_pct"] == pytest.approx(65.0)
    assert first["delta_pp"] == pytest.approx(35.0)
    assert ("render", "self") in flagged(rep.improvements)
    assert all(d < -1.0 for d in rep.improvements["delta_pp"].to_list())


def test_identical_profiles_pass():
    rep = regress(make(BASE), make(BASE), 0)
    assert not rep.failed
    assert rep.improvements.height == 0
    assert "no regression" in rep.to_markdown()


def test_noise_floor_respected():
    # tiny: 0.4 % -> 0.9 % of ~1000 is +0.5 pp; with threshold 0.1 it would flag unless under the floor
    cand = cand_with(**{"main;tiny": 9, "main;log": 91})
    rep = regress(make(BASE), make(cand), 0, threshold_pp=0.1, min_share_pct=1.0)
    assert not rep.failed
    rep2 = regress(make(BASE), make(cand), 0, threshold_pp=0.1, min_share_pct=0.5)
    assert ("tiny", "self") in flagged(rep2.regressions)


def test_threshold_is_strict_and_scale_invariant():
    # doubling every value changes no share
    doubled = {k: 2 * v for k, v in BASE.items()}
    assert not regress(make(BASE), make(doubled), 0, threshold_pp=0.0).failed
    # log 96 -> 106: share 9.6 % -> 10.5 % (+0.9 pp) is below a 1 pp threshold
    rep = regress(make(BASE), make(cand_with(**{"main;log": 106})), 0, threshold_pp=1.0)
    assert not rep.failed


def test_new_function_and_type_index():
    b = make({"m;a": (10, 1)}, types=(CPU, ALLOC))
    c = make({"m;a": (10, 1), "m;new": (10, 0)}, types=(CPU, ALLOC))
    rep = regress(b, c, 0)
    assert ("new", "self") in flagged(rep.regressions)
    assert not regress(b, c, 1).failed
    assert rep.sample_type == "cpu:nanoseconds"


def test_markdown_and_json():
    rep = regress(make(BASE), make(cand_with(**{"main;handle;parse": 1300, "weird|name": 50})), 0)
    md = rep.to_markdown()
    assert "| function | base % | cand % | Δ pp | self/total | via (callers) | inside (callees, Δ pp) |" in md
    assert md.index("**Culprit:** `parse`") < md.index("#### Regressions")
    assert "| `parse` | 30.00 | 63.41 | +33.41 | self |" in md
    assert "weird\\|name" in md
    assert "#### Improvements" in md
    data = json.loads(rep.to_json())
    assert data["failed"] is True
    assert data["regressions"][0]["function"] == "parse"
    assert set(data["regressions"][0]) == {"function", "file", "kind", "base_pct", "cand_pct", "delta_pp", "via", "inside"}
    assert {r["function"] for r in data["carried"]} == {"parse", "handle", "weird|name"}


def test_empty_candidate_note():
    rep = regress(make(BASE), make({"": 0}), 0)
    assert not rep.failed
    assert rep.notes


def test_spread_change_is_one_culprit_with_callers_and_callees_folded():
    # a new helper subtree under handle: its callees each get a part, none explains it alone
    base = {"main;serve;handle;work": 900, "main;serve;other": 100}
    cand = {"main;serve;handle;work": 900, "main;serve;other": 100,
            "main;serve;handle;rx.compile;rx.parse": 300, "main;serve;handle;rx.compile;rx.code": 300}
    rep = regress(make(base), make(cand), 0, threshold_pp=1.0)
    assert rep.flagged.height >= 6  # rx.compile total, rx.parse/rx.code self+total, handle total …
    assert flagged(rep.regressions) == {("rx.compile", "total")}
    row = rep.regressions.row(0, named=True)
    assert row["via"] == "handle" and row["inside"].startswith("rx.code +18.8, rx.parse +18.8")
