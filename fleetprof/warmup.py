"""Load (or compile) every numba kernel once, so that no request pays for it.

Contract: :func:`warm_up` runs each compiled kernel of the data path (pprof scans, frame
resolution, stack grouping, call-tree trie, hashing, the merge group-by) on a tiny input and returns the seconds it
took; later calls in the same process return at once. Kernels are cached on disk next to
their modules (numba ``cache=True``) or under ``NUMBA_CACHE_DIR``: the first process after
an install compiles (seconds), later ones only load (a fraction of a second). The service
image runs ``python -m fleetprof.warmup`` at build time so that containers only load.
"""

from __future__ import annotations

import time

import numpy as np

_DONE = False


def _tiny_pprof() -> bytes:
    from fleetprof.formats.proto import profile_pb2

    p = profile_pb2.Profile()
    p.string_table.extend(["", "cpu", "nanoseconds", "main", "work", "/app.py", "thread", "t1"])
    p.sample_type.add(type=1, unit=2)
    p.function.add(id=1, name=3, filename=5)
    p.function.add(id=2, name=4, filename=5)
    p.location.add(id=1).line.add(function_id=1, line=3)
    loc = p.location.add(id=2)
    loc.line.add(function_id=2, line=7)
    loc.line.add(function_id=1, line=4)  # an inlined caller
    for _ in range(2):
        s = p.sample.add(location_id=[2, 1], value=[10])
        s.label.add(key=6, str=7)
        s.label.add(key=6, num=-3, num_unit=2)  # a numeric label: its value is formatted
    return p.SerializeToString()


def warm_up() -> float:
    """Run every kernel once (module contract); returns the seconds spent."""
    global _DONE
    if _DONE:
        return 0.0
    t0 = time.perf_counter()
    from fleetprof.formats.folded import decode_folded
    from fleetprof.formats.pprof import decode_pprof, decode_pprof_stacks
    from fleetprof.model.groupsum import sum_by_key

    decode_pprof(_tiny_pprof())  # scans, trie over locations, label sets, hashing
    decode_pprof_stacks(_tiny_pprof())  # grouping and expansion (the server's batch path)
    decode_folded(b"main;work 3\nmain 1\n")  # the trie over frames
    keys = np.arange(1, 5000, dtype=np.uint64)
    sum_by_key(keys, np.ones(len(keys), dtype=np.int64), initial_bits=4, sort_chunk=1024)
    sum_by_key(keys, np.ones((len(keys), 2), dtype=np.int64))
    from fleetprof.traces.scan import warm as warm_span_scan

    warm_span_scan()  # the OTLP span scan
    _DONE = True
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"numba kernels ready in {warm_up():.2f} s")
