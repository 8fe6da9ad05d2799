"""Child process for the durability test: ingest items through SegmentWriter, print acks.

Usage: ``python ingest_child.py STORE_URL INDEX_URL N``. Item ``i`` is a profile with two
stacks ``svc;item{i};a`` (value ``i+1``) and ``svc;item{i};b`` (value ``2*(i+1)``) at
``time_ms = 1_000_000 + i``. Six concurrent submitters; after each acknowledged submit the
child prints ``ACK i`` and flushes stdout. The parent SIGKILLs it at some point.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from fleetprof.metastore import open_index
from fleetprof.model import Stacks, ValueType, build
from fleetprof.segment.writer import IngestItem, SegmentWriter
from fleetprof.storage import open_store

CPU_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def item(i: int) -> IngestItem:
    st = Stacks(
        names=["svc", f"item{i}", "a", "b"], files=["f.py"] * 4,
        offsets=np.array([0, 3, 6]), frames=np.array([0, 1, 2, 0, 1, 3]),
        values=np.array([[i + 1], [2 * (i + 1)]]),
    )
    return IngestItem({"service_name": f"svc{i % 3}"}, CPU_TYPE, 1_000_000 + i, build(st, [ValueType("cpu", "nanoseconds")]))


async def main(store_url: str, index_url: str, n: int) -> None:
    writer = SegmentWriter(open_store(store_url), open_index(index_url), max_age_s=0.02)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await writer.submit("t1", [item(i)])
            sys.stdout.write(f"ACK {i}\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(6)))
    await writer.stop()
    sys.stdout.write("DONE\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
