"""Build small profiles for renderer tests (stacks root first)."""

from __future__ import annotations

import numpy as np

from fleetprof.model import Stacks, ValueType, build

CPU = ValueType("cpu", "nanoseconds")


def profile_of(stacks: list[tuple[list[str], int]], st: ValueType = CPU, files: dict[str, str] | None = None):
    names: list[str] = []
    index: dict[str, int] = {}
    frames: list[int] = []
    offsets = [0]
    values = []
    for stack, v in stacks:
        for f in stack:
            if f not in index:
                index[f] = len(names)
                names.append(f)
            frames.append(index[f])
        offsets.append(len(frames))
        values.append(v)
    files = files or {}
    return build(
        Stacks(
            names=names, files=[files.get(n, "") for n in names], offsets=np.array(offsets),
            frames=np.array(frames, dtype=np.int64), values=np.array(values, dtype=np.int64).reshape(-1, 1),
        ),
        [st],
    )


# a;b;c 3, a;b 2, a;d 4, e 1, <empty> 5  → total 15
SMALL = [(["a", "b", "c"], 3), (["a", "b"], 2), (["a", "d"], 4), (["e"], 1), ([], 5)]
