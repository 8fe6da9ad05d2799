"""Hot path: the chain of heaviest call-tree nodes from the root.

Contract of :func:`hot_path` for value column ``v{type_index}``: starting at the root,
repeatedly step to the child with the largest total (ties: smaller function name, then
smaller node id) as long as that child's total is ``>= min_fraction × grand total`` (the
grand total includes empty stacks) and positive. Returns one row per step, root-most
first: ``node_id, frame_id, name, file, depth, self, total, share`` (``share`` = total /
grand total, a fraction in [0, 1]). An empty profile, or a root whose heaviest child is
below the threshold, gives an empty table. One vectorised pass over the node table plus
a Python step per depth level.
"""

from __future__ import annotations

import polars as pl

from fleetprof.model.hashing import ROOT_ID
from fleetprof.model.profile import Profile
from fleetprof.model.tree import node_values

HOT_PATH_COLUMNS = ("node_id", "frame_id", "name", "file", "depth", "self", "total", "share")


def hot_path(profile: Profile, type_index: int, *, min_fraction: float = 0.1) -> pl.DataFrame:
    """Heaviest root-to-leaf chain above ``min_fraction`` of the total (module contract)."""
    grand = profile.totals()[type_index]
    nv = (
        node_values(profile, type_index)
        .join(profile.frames.select("frame_id", "name", "file"), on="frame_id", how="left")
        .filter((pl.col("total") > 0) & (pl.col("total").cast(pl.Float64) >= min_fraction * grand))
    )
    best = (
        nv.sort(["total", "name", "node_id"], descending=[True, False, False])
        .group_by("parent_id", maintain_order=True)
        .first()
    )
    child = dict(zip(best["parent_id"].to_list(), range(best.height), strict=True))
    rows: list[int] = []
    cur = ROOT_ID
    while cur in child and len(rows) <= best.height:
        i = child[cur]
        rows.append(i)
        cur = best["node_id"][i]
    share = pl.col("total").cast(pl.Float64) / grand if grand else pl.lit(0.0)
    return best[rows].with_columns(share.alias("share")).select(HOT_PATH_COLUMNS)
