"""The explorer's server-side queries in-process, without a browser: the data shape of
``benchmarks/bench_explorer.py`` (one hour of one service on 100 instances, one profile per
instance per minute, about 300 distinct stacks each: one L0 segment per minute).

Printed (wall ms; the machine may be shared, so CPU ms too), for the flame graph of the
hour (``select_merge`` + ``to_flamebearer``, what ``/api/v1/explorer/flamebearer`` runs) and
its timeline (``select_timeline`` at the page's 10 s step):

* on the writing process (its writer cached the segments it flushed);
* cold (segment cache cleared: every segment read and decoded), one query at a time and
  the flame graph and timeline at once (as the page sends them);
* warm (median of 5), and a brush (a 20-minute sub-range: segments at its ends are cut).

``python -m benchmarks.bench_query [--instances 100] [--minutes 60]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "server"))
from serverutil import CPU_TYPE, cpu_profile  # noqa: E402

from benchmarks.bench_explorer import _stacks  # noqa: E402
from fleetprof.metastore.index import open_index  # noqa: E402
from fleetprof.query.select import select_merge, select_timeline  # noqa: E402
from fleetprof.query.selector import parse_query  # noqa: E402
from fleetprof.render.flamebearer import to_flamebearer  # noqa: E402
from fleetprof.segment.cache import SEGMENT_CACHE  # noqa: E402
from fleetprof.segment.writer import IngestItem, SegmentWriter  # noqa: E402
from fleetprof.storage.objectstore import open_store  # noqa: E402
from fleetprof.warmup import warm_up  # noqa: E402

TENANT = "bench"
STEP_MS = 10_000


def seed(store: object, index: object, instances: int, minutes: int, t0_ms: int) -> int:
    """Write one segment per minute of ``instances`` profiles; returns the sample rows."""
    rng = random.Random(7)
    stacks = _stacks(rng)
    rows = 0

    async def go() -> None:
        nonlocal rows
        w = SegmentWriter(store, index, max_age_s=3600)  # type: ignore[arg-type]
        w.start()
        for m in range(minutes):
            t_ms = t0_ms + m * 60_000 + 1_000
            items = []
            for i in range(instances):
                values = [rng.randint(1, 50) * 10_000_000 for _ in stacks]
                labels = {"service_name": "shop", "instance": f"i-{i:03d}", "region": ("eu", "us", "ap")[i % 3]}
                items.append(IngestItem(labels, CPU_TYPE, t_ms, cpu_profile(stacks, values, time_ns=t_ms * 1_000_000)))
                rows += len(stacks)
            acked = asyncio.ensure_future(w.submit(TENANT, items))
            await asyncio.sleep(0)  # the items are queued: flush them as one segment
            await w.flush()
            await acked
        await w.stop()

    asyncio.run(go())
    return rows


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - w0) * 1000, (time.process_time() - c0) * 1000


def at_once(fns: list[Callable[[], object]]) -> float:
    """Wall ms of running ``fns`` in threads at the same time."""
    ts = [threading.Thread(target=f) for f in fns]
    w0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return (time.perf_counter() - w0) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=100)
    ap.add_argument("--minutes", type=int, default=60)
    args = ap.parse_args(argv)
    warm_up()
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "data").mkdir()
        store, index = open_store((tmp / "data").as_uri()), open_index(f"sqlite://{tmp / 'index.db'}")
        start = 1_700_000_000_000
        end = start + args.minutes * 60_000
        t = time.perf_counter()
        rows = seed(store, index, args.instances, args.minutes, start)
        print(f"seeded {args.instances} instances x {args.minutes} min: {len(index.query(TENANT, start, end))} L0 "
              f"segments, {rows} sample rows in {time.perf_counter() - t:.1f} s")
        ptype, ms = parse_query(CPU_TYPE + '{service_name="shop"}')

        def flame(lo: int = start, hi: int = end) -> object:
            return to_flamebearer(select_merge(store, index, TENANT, ptype, ms, lo, hi), 0, max_nodes=8192, name=ptype)

        def line(lo: int = start, hi: int = end) -> object:
            return select_timeline(store, index, TENANT, ptype, ms, lo, hi, STEP_MS)

        def show(label: str, fl: tuple[float, float], tl: tuple[float, float]) -> None:
            print(f"{label}: flame graph {fl[0]:.0f} ms (CPU {fl[1]:.0f}), timeline {tl[0]:.0f} ms (CPU {tl[1]:.0f})")

        show("on the writing process", timed(flame), timed(line))
        SEGMENT_CACHE.clear()
        show("cold, one at a time", timed(flame), timed(line))
        SEGMENT_CACHE.clear()
        print(f"cold, flame graph and timeline at once: {at_once([flame, line]):.0f} ms")
        warm = [(timed(flame)[0], timed(line)[0]) for _ in range(5)]
        print(f"warm, median of 5: flame graph {statistics.median(f for f, _ in warm):.1f} ms, "
              f"timeline {statistics.median(x for _, x in warm):.1f} ms")
        lo, hi = start + 17 * 60_000 + 12_345, start + 37 * 60_000 + 6_789
        brush = [at_once([lambda: flame(lo, hi), lambda: line(lo, hi)]) for _ in range(5)]
        print(f"brush (20 min, both at once), median of 5: {statistics.median(brush):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
