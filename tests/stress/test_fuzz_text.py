"""Fuzz the text decoders with >= 1,000,000 seeded inputs in total (``make stress``).

Only :class:`ProfileFormatError` may escape a decoder; no input may take more than a few
seconds (a hang guard, not a performance threshold). ``FLEETPROF_FUZZ_SCALE`` scales the
input counts down for a quick local run (default 1.0 = the full million).
"""

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_fuzzer import run_batch  # noqa: E402

SHARES = {"folded": 400_000, "lines": 200_000, "speedscope": 400_000}
BATCH = 5_000


@pytest.mark.stress
@pytest.mark.timeout(1800)
def test_fuzz_text_decoders():
    scale = float(os.environ.get("FLEETPROF_FUZZ_SCALE", "1"))
    jobs = []
    for name, total in SHARES.items():
        n = int(total * scale)
        for seed, start in enumerate(range(0, n, BATCH)):
            jobs.append((name, seed, min(BATCH, n - start), 10))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=ctx) as pool:
        results = list(pool.map(run_batch, *zip(*jobs, strict=True)))
    seen = {name: 0 for name in SHARES}
    failures = []
    slowest = 0.0
    for r in results:
        seen[r["name"]] += r["ok"] + r["errors"]
        failures += r["failures"]
        slowest = max(slowest, r["slowest"])
        assert r["ok"] > 0 and r["errors"] > 0, r  # the mix reaches both outcomes
    print(f"fuzzed {sum(seen.values())} inputs: {seen}; slowest input {slowest:.3f}s")
    assert not failures, "\n\n".join(failures[:5])
    assert sum(seen.values()) >= int(1_000_000 * scale)
    assert slowest < 10.0
