from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stackutil import ALLOC, CPU, folded, make

from fleetprof.model import empty_profile, merge

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"

stacks_st = st.dictionaries(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=0, max_size=5).map(";".join),
    st.tuples(st.integers(0, 10**12), st.integers(0, 10**6)),
    max_size=12,
)


def canon(p):
    """Order-independent content of a profile: stacks per type, totals, node set."""
    return (folded(p, 0), folded(p, 1), p.totals(), sorted(p.nodes["node_id"].to_list()))


@settings(max_examples=60, deadline=None)
@given(stacks_st, stacks_st, stacks_st)
def test_merge_associative_commutative_exact(x, y, z):
    a, b, c = (make(s, types=(CPU, ALLOC)) for s in (x, y, z))
    left = merge([merge([a, b]), c])
    right = merge([a, merge([b, c])])
    flat = merge([c, b, a])
    assert canon(left) == canon(right) == canon(flat)
    assert left.totals() == [sum(t) for t in zip(a.totals(), b.totals(), c.totals(), strict=True)]
    expect: dict[str, int] = {}
    for s in (x, y, z):
        for k, v in s.items():
            expect[k] = expect.get(k, 0) + v[0]
    assert folded(left, 0) == {k: v for k, v in expect.items() if v}


def test_empty_is_identity_and_type_mismatch():
    a = make({"a;b": (3, 4)}, types=(CPU, ALLOC))
    assert canon(merge([a, empty_profile((CPU, ALLOC))])) == canon(a)
    with pytest.raises(ValueError):
        merge([a, make({"a": 1})])
    with pytest.raises(ValueError):
        merge([])


def test_merge_parca_many():
    import fleetprof.formats.pprof as pprof
    files = sorted((FIXTURES / "pprof" / "parca" / "many").glob("*.pb.gz"))
    assert len(files) == 10
    profiles = [pprof.decode_pprof(f.read_bytes()) for f in files]
    merged = merge(profiles)
    for i in range(len(merged.sample_types)):
        assert merged.totals()[i] == sum(p.totals()[i] for p in profiles)
    assert merged.nodes["node_id"].n_unique() == merged.nodes.height
    assert set(merged.nodes["node_id"].to_list()) == set().union(*(p.nodes["node_id"].to_list() for p in profiles))
    halves = merge([merge(profiles[:5]), merge(profiles[5:])])
    assert folded(halves, 0) == folded(merged, 0)
    assert min(p.time_nanos for p in profiles) == merged.time_nanos
