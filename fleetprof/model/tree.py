"""Per-node self and total values of the call tree.

``node_values(profile, i)`` returns the node table joined with ``self`` (the sample values
of that node as a leaf) and ``total`` (self plus every descendant's self) for value column
``i``. Totals are exact int64 sums, propagated one depth level at a time (vectorised).
The root (``ROOT_ID``) is not a row; its total is ``profile.totals()[i]``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fleetprof.model.hashing import ROOT_ID
from fleetprof.model.profile import Profile, dense_tree


def node_values(profile: Profile, i: int) -> pl.DataFrame:
    """Nodes with ``self`` and ``total`` (int64) for value column ``v{i}``."""
    col = f"v{i}"
    self_vals = profile.samples.group_by("node_id").agg(pl.col(col).sum().alias("self"))
    nodes = profile.nodes.join(self_vals, on="node_id", how="left", maintain_order="left").with_columns(
        pl.col("self").fill_null(0)
    )
    tree = dense_tree(profile)
    total = nodes["self"].to_numpy().astype(np.int64).copy()
    if len(tree.depth):
        order = np.argsort(-tree.depth, kind="stable")
        bounds = np.flatnonzero(np.diff(tree.depth[order])) + 1
        for level in np.split(order, bounds):
            level = level[tree.parent_pos[level] >= 0]
            if len(level):
                np.add.at(total, tree.parent_pos[level], total[level])
    return nodes.with_columns(pl.Series("total", total, dtype=pl.Int64))


def root_self(profile: Profile, i: int) -> int:
    """Value of samples with an empty stack (attributed to the root)."""
    col = f"v{i}"
    s = profile.samples.filter(pl.col("node_id") == ROOT_ID)[col].sum()
    return int(s or 0)
