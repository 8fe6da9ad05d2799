"""Prune a call tree to its heaviest nodes without losing any value.

Contract of :func:`prune`:

* The weight of a node is its **total** (self + descendants) in value column
  ``v{type_index}``. Nodes with a zero total in that column are never kept.
* ``min_fraction``: keep nodes whose total is ``>= min_fraction × grand total``
  (the grand total includes empty-stack samples).
* ``max_nodes``: keep at most ``max_nodes`` nodes, the heaviest first (ties broken by
  shallower depth, then node id, so the choice is deterministic).
* Both limits may be given (a node must pass both); neither keeps every weighted node.
* The kept set is closed under ancestors (a parent's total is never below its child's,
  and the tie-break puts parents first), so every kept node keeps its full path.
* Every pruned stack is cut at its first dropped node, which is replaced by one
  :data:`OTHER_FRAME` frame under the nearest kept ancestor (or at the top level). All
  the dropped children of one kept node therefore collapse into a single ``other`` node.
  Values are only moved, never dropped: every total of every value column, and every
  kept node's total in ``v{type_index}``, is exactly what it was. The output may hold up
  to one ``other`` node per kept node on top of ``max_nodes``.
* Labels are preserved. The result is a new :class:`Profile`; the input is untouched.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from fleetprof.model.hashing import frame_id
from fleetprof.model.profile import FRAMES_SCHEMA, Profile, expand, rebuild
from fleetprof.model.tree import node_values

OTHER_FRAME = "other"
"""Function name of the frame that stands for pruned subtrees."""

OTHER_FRAME_ID = frame_id(OTHER_FRAME, "")


def kept_nodes(profile: Profile, type_index: int, *, max_nodes: int | None = None, min_fraction: float | None = None) -> np.ndarray:
    """Node ids (uint64) that :func:`prune` keeps (ancestor-closed, see module contract)."""
    if max_nodes is not None and max_nodes < 0:
        raise ValueError("max_nodes must be >= 0")
    if min_fraction is not None and not 0.0 <= min_fraction <= 1.0:
        raise ValueError("min_fraction must be within [0, 1]")
    nv = node_values(profile, type_index).filter(pl.col("total") > 0)
    if min_fraction is not None:
        grand = profile.totals()[type_index]
        nv = nv.filter(pl.col("total").cast(pl.Float64) >= min_fraction * grand)
    if max_nodes is not None and nv.height > max_nodes:
        nv = nv.sort(["total", "depth", "node_id"], descending=[True, False, False]).head(max_nodes)
    return nv["node_id"].to_numpy()


def prune(profile: Profile, type_index: int, *, max_nodes: int | None = None, min_fraction: float | None = None) -> Profile:
    """Keep the heaviest nodes; collapse the rest into ``other`` frames (module contract)."""
    if max_nodes is None and min_fraction is None:
        return profile
    keep_ids = kept_nodes(profile, type_index, max_nodes=max_nodes, min_fraction=min_fraction)
    if len(keep_ids) == profile.nodes.height:
        return profile
    ex = expand(profile)
    keep = np.isin(ex.node_ids, keep_ids)
    offsets = ex.offsets
    lengths = np.diff(offsets)
    # Kept elements form a prefix of each stack (the kept set is ancestor-closed).
    kept_len = np.zeros(len(lengths), dtype=np.int64)
    nonempty = lengths > 0
    if len(keep):
        kept_len[nonempty] = np.add.reduceat(keep.astype(np.int64), offsets[:-1][nonempty])
    cut = np.flatnonzero(kept_len < lengths)
    frames = ex.frame_ids.copy()
    cut_at = offsets[cut] + kept_len[cut]
    frames[cut_at] = np.uint64(OTHER_FRAME_ID)
    keep[cut_at] = True
    ex = replace(ex, frame_ids=frames)
    base = profile
    if len(cut):
        other = pl.DataFrame({"frame_id": [OTHER_FRAME_ID], "name": [OTHER_FRAME], "file": [""], "line": [0]}, schema=FRAMES_SCHEMA)
        base = replace(profile, frames=pl.concat([profile.frames, other]).unique(subset="frame_id", keep="first"))
    return rebuild(base, ex, keep)
