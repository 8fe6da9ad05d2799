"""Helpers for the text-format codec tests: read a profile back as plain stacks."""

from __future__ import annotations

import numpy as np

from fleetprof.model import Profile, expand
from fleetprof.model.profile import frame_lookup


def stacks(profile: Profile, col: int = 0, *, files: bool = False) -> dict[tuple, int]:
    """``{(frame, …root→leaf): value}`` of one value column (frames are names, or
    ``(name, file)`` pairs with ``files``); equal paths summed, zero values dropped."""
    ex = expand(profile)
    ids = ex.frame_ids
    names = frame_lookup(profile, ids, "name") if len(ids) else np.array([], dtype=object)
    fnames = frame_lookup(profile, ids, "file") if len(ids) else np.array([], dtype=object)
    vals = ex.samples[f"v{col}"].to_list()
    out: dict[tuple, int] = {}
    for i, v in enumerate(vals):
        lo, hi = ex.offsets[i], ex.offsets[i + 1]
        key = tuple(zip(names[lo:hi], fnames[lo:hi], strict=True)) if files else tuple(names[lo:hi])
        out[key] = out.get(key, 0) + int(v)
    return {k: v for k, v in out.items() if v}


def frame_rows(profile: Profile) -> set[tuple[str, str, int]]:
    """The frame table as a set of ``(name, file, line)``."""
    return set(profile.frames.select("name", "file", "line").iter_rows())
