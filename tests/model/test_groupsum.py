import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetprof.model.groupsum import sum_by_key


def reference(keys, vals):
    out: dict[int, np.ndarray] = {}
    for k, v in zip(keys.tolist(), vals.tolist(), strict=True):
        out[k] = out.get(k, 0) + np.asarray(v, dtype=np.int64)
    return out


def as_dict(keys, sums):
    assert len(set(keys.tolist())) == len(keys)
    return {k: np.asarray(s) for k, s in zip(keys.tolist(), sums.tolist(), strict=True)}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([0, 1, 2, 2**63, 2**64 - 1, 12345, 99, 7 << 40]) | st.integers(0, 2**64 - 1), max_size=300),
    st.integers(1, 12),
)
def test_matches_reference(key_list, bits):
    keys = np.array(key_list, dtype=np.uint64)
    rng = np.random.default_rng(len(key_list))
    vals = rng.integers(-(2**40), 2**40, size=len(keys))
    got = as_dict(*sum_by_key(keys, vals, initial_bits=bits))
    want = reference(keys, vals)
    assert got.keys() == want.keys()
    for k in want:
        assert int(got[k]) == int(want[k])


def test_two_columns_growth_and_exact_large_values():
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 2**64 - 1, 50_000, dtype=np.uint64)
    keys = ids[rng.integers(0, len(ids), 100_000)]
    vals = np.stack([rng.integers(0, 2**62 // 100_000, len(keys)), np.ones(len(keys), np.int64)], axis=1)
    k, s = sum_by_key(keys, vals, initial_bits=4)  # grows 13 times
    assert s.shape == (len(np.unique(keys)), 2)
    order = np.argsort(k)
    uk, inv = np.unique(keys, return_inverse=True)
    exp0 = np.zeros(len(uk), np.int64)
    np.add.at(exp0, inv, vals[:, 0])
    assert np.array_equal(k[order], uk)
    assert np.array_equal(s[order, 0], exp0)
    assert np.array_equal(s[order, 1], np.bincount(inv))


def test_sequential_keys_and_empty():
    keys = np.arange(10_000, dtype=np.uint64) % 1000  # includes key 0, dense small ints
    k, s = sum_by_key(keys, np.ones(len(keys), np.int64))
    assert sorted(k.tolist()) == list(range(1000))
    assert (s == 10).all()
    k, s = sum_by_key(np.zeros(0, np.uint64), np.zeros(0, np.int64))
    assert len(k) == 0 and len(s) == 0


def test_region_sorted_chunks_with_growth_match_reference():
    # 100k distinct keys: the table outgrows the cache-sized threshold, so rows are sorted
    # by region in chunks of 16k (growing mid-chunk), with two value columns and key 0.
    rng = np.random.default_rng(11)
    ids = rng.integers(1, 2**64 - 1, 100_000, dtype=np.uint64)
    keys = ids[rng.integers(0, len(ids), 300_000)]
    keys[::1000] = 0
    vals = rng.integers(-(2**40), 2**40, size=(len(keys), 2))
    got_k, got_s = sum_by_key(keys, vals, initial_bits=4, sort_chunk=1 << 14)
    uk, inv = np.unique(keys, return_inverse=True)
    want = np.zeros((len(uk), 2), np.int64)
    np.add.at(want, inv, vals)
    order = np.argsort(got_k)
    assert np.array_equal(got_k[order], uk)
    assert np.array_equal(got_s[order], want)
    # the same answer without sorting and without growth
    k2, s2 = sum_by_key(keys, vals, initial_bits=20, sort_chunk=0)
    assert np.array_equal(k2[np.argsort(k2)], uk) and np.array_equal(s2[np.argsort(k2)], want)


_THREADS = """
import numpy as np
from concurrent.futures import ThreadPoolExecutor
from fleetprof.model.groupsum import sum_by_key
rng = np.random.default_rng(5)
keys = rng.integers(1, 5000, 200_000).astype(np.uint64)
vals = rng.integers(0, 100, len(keys))
uk, inv = np.unique(keys, return_inverse=True)
want = np.bincount(inv, weights=vals).astype(np.int64)
def one(_):
    k, s = sum_by_key(keys, vals, sort_chunk=1 << 15)
    o = np.argsort(k)
    return np.array_equal(k[o], uk) and np.array_equal(s[o], want)
with ThreadPoolExecutor(4) as pool:
    assert all(pool.map(one, range(16)))
import numba
print("ok", numba.threading_layer())
"""


def test_region_path_from_many_threads_at_once():
    # numba's workqueue threading layer (where neither OpenMP nor TBB is installed) aborts
    # the process on concurrent parallel launches; sum_by_key serialises its parallel
    # kernels, so threads (server queries, the segment writer) may call it at once.
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    out = subprocess.run([sys.executable, "-c", _THREADS], env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ok", "workqueue"]


def test_degenerate_arguments():
    keys = np.array([5, 0, 5, 9], dtype=np.uint64)
    k, s = sum_by_key(keys, np.ones(4, np.int64), initial_bits=0)  # a one-slot table grows
    assert dict(zip(k.tolist(), s.tolist(), strict=True)) == {5: 2, 0: 1, 9: 1}
    k, s = sum_by_key(keys, np.zeros((4, 0), np.int64))  # no value columns
    assert sorted(k.tolist()) == [0, 5, 9] and s.shape == (3, 0)
