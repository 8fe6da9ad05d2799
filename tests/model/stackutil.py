"""Build small profiles from ``{"a;b;c": value}`` dicts for model tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fleetprof.model import Profile, Stacks, ValueType, build, expand
from fleetprof.model.profile import frame_lookup

CPU = ValueType("cpu", "nanoseconds")
ALLOC = ValueType("alloc_space", "bytes")


def make(stacks: Mapping[str, int | Sequence[int]], types: Sequence[ValueType] = (CPU,), file: str = "") -> Profile:
    """Profile from folded-style stacks; a value may be a tuple (one per sample type)."""
    names: list[str] = []
    index: dict[str, int] = {}
    offsets = [0]
    frames: list[int] = []
    values = []
    for stack, v in stacks.items():
        for name in (stack.split(";") if stack else []):
            if name not in index:
                index[name] = len(names)
                names.append(name)
            frames.append(index[name])
        offsets.append(len(frames))
        values.append(list(v) if isinstance(v, (tuple, list)) else [v])
    st = Stacks(
        names=names,
        files=[file] * len(names),
        offsets=np.array(offsets, dtype=np.int64),
        frames=np.array(frames, dtype=np.int64),
        values=np.array(values, dtype=np.int64).reshape(len(values), len(types)),
    )
    return build(st, types)


def folded(profile: Profile, col: int = 0) -> dict[str, int]:
    """Inverse of :func:`make` for one value column (stacks with equal paths summed)."""
    ex = expand(profile)
    names = frame_lookup(profile, ex.frame_ids) if len(ex.frame_ids) else np.array([], dtype=object)
    vals = ex.samples[f"v{col}"].to_list()
    out: dict[str, int] = {}
    for i, v in enumerate(vals):
        key = ";".join(names[ex.offsets[i] : ex.offsets[i + 1]])
        out[key] = out.get(key, 0) + int(v)
    return {k: v for k, v in out.items() if v}
