"""Pyroscope flamebearer JSON (``format: "single"`` and the ``"double"`` diff variant).

Encoding (as Pyroscope's ``NewFlameGraph`` / ``NewFlamegraphDiff`` produce it):

* ``names[0] == "total"``; names are deduplicated strings, indexed in the order Pyroscope's
  traversal first meets them (pre-order, children visited right to left).
* ``levels[d]`` lists the blocks of depth ``d`` left to right as flat groups
  ``[Δx, total, self, nameIndex]``; ``Δx`` is the offset from the end of the previous
  block of the same level (the first block: from 0). Level 0 is ``[0, total, rootSelf, 0]``.
  Children are sorted by name and start after their parent's ``self``.
* ``numTicks`` = root total, ``maxSelf`` = largest ``self``.
* Diff: 7-int groups ``[Δx_l, total_l, self_l, Δx_r, total_r, self_r, nameIndex]``, each
  side delta-encoded on its own; ``numTicks = leftTicks + rightTicks``; ``leftTicks`` /
  ``rightTicks`` at the top level. Values are raw (the viewer normalises).
* ``max_nodes``: Pyroscope's ``maxNodes`` (see :func:`fleetprof.render.layout.fold_max_nodes`).

Metadata follows Pyroscope's ``ExportToFlamebearer``: ``units`` is the sample unit, except
object-count types (``objects``) and ``cpu`` (``samples``, with ``sampleRate`` 1e9 when the
values are nanoseconds); ``sampleRate`` defaults to 100.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fleetprof.model.profile import Profile, ValueType
from fleetprof.render.layout import Layout, diff_layout, profile_layout

OBJECT_TYPES = {"inuse_objects", "alloc_objects", "goroutine", "goroutines", "samples"}


def flamebearer_metadata(st: ValueType, *, fmt: str = "single", name: str | None = None) -> dict[str, Any]:
    """Pyroscope's metadata block for sample type ``st``."""
    units = st.unit
    rate = 100
    if st.type in OBJECT_TYPES:
        units = "objects"
    elif st.type == "cpu":
        units = "samples"
        if st.unit == "nanoseconds":
            rate = 1_000_000_000
    return {"format": fmt, "spyName": "", "sampleRate": rate, "units": units, "name": name or st.type}


def name_order(lay: Layout) -> tuple[list[str], np.ndarray]:
    """Deduplicated names in Pyroscope's first-visit order (pre-order, right to left) and
    the flamebearer name index of every layout row. The root is always index 0."""
    if lay.size == 0:
        return ["total"], np.zeros(0, np.int64)
    xs = lay.x.sum(axis=1)
    end = xs + lay.total.sum(axis=1)
    visit = np.lexsort((lay.depth, -end))
    codes = lay.name[visit]
    uniq, first = np.unique(codes, return_index=True)
    order = np.argsort(first, kind="stable")
    remap = np.empty(int(lay.name.max()) + 1, dtype=np.int64)
    remap[uniq[order]] = np.arange(len(uniq))
    names = [str(s) for s in lay.names[uniq[order]]]
    return names, remap[lay.name]


def _levels(lay: Layout, fb_name: np.ndarray, diff: bool) -> list[list[int]]:
    """Per-depth flat lists of 4-int (or 7-int) groups, delta-encoded."""
    out: list[list[int]] = []
    order = np.lexsort((np.arange(lay.size), lay.depth))  # DFS order within each depth = x order
    bounds = np.flatnonzero(np.diff(lay.depth[order])) + 1
    for rows in np.split(order, bounds):
        cols = []
        for c in range(lay.x.shape[1]):
            x = lay.x[rows, c]
            t = lay.total[rows, c]
            prev_end = np.concatenate([[0], (x + t)[:-1]])
            cols += [x - prev_end, t, lay.self[rows, c]]
        cols.append(fb_name[rows])
        out.append(np.column_stack(cols).astype(np.int64).ravel().tolist())
    return out


def _flamebearer(lay: Layout, diff: bool) -> dict[str, Any]:
    names, fb_name = name_order(lay)
    return {
        "names": names,
        "levels": _levels(lay, fb_name, diff),
        "numTicks": int(lay.total[0].sum()) if lay.size else 0,
        "maxSelf": int(lay.self.max()) if lay.size else 0,
    }


def to_flamebearer(profile: Profile, type_index: int, *, max_nodes: int | None = None, name: str | None = None) -> dict[str, Any]:
    """Flamebearer profile (``format: "single"``) of value column ``type_index``."""
    lay = profile_layout(profile, type_index, max_nodes=max_nodes)
    return {
        "version": 1,
        "flamebearer": _flamebearer(lay, diff=False),
        "metadata": flamebearer_metadata(profile.sample_types[type_index], name=name),
        "timeline": None,
    }


def diff_flamebearer(
    base: Profile, cand: Profile, type_index: int, *, max_nodes: int | None = None, name: str | None = None
) -> dict[str, Any]:
    """Flamebearer diff (``format: "double"``): base on the left, candidate on the right.

    ``type_index`` selects the value column in both profiles (their sample types at that
    index should match)."""
    lay = diff_layout(base, cand, type_index, max_nodes=max_nodes)
    return {
        "version": 1,
        "flamebearer": _flamebearer(lay, diff=True),
        "metadata": flamebearer_metadata(base.sample_types[type_index], fmt="double", name=name),
        "timeline": None,
        "leftTicks": int(lay.total[0, 0]),
        "rightTicks": int(lay.total[0, 1]),
    }
