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
from fleetprof.model.profile import Profile


def node_values(profile: Profile, i: int) -> pl.DataFrame:
    """Nodes with ``self`` and ``total`` (int64) for value column ``v{i}``, sorted by node id."""
    col = f"v{i}"
    nodes = profile.nodes.sort("node_id")
    self_vals = profile.samples.group_by("node_id").agg(pl.col(col).sum().alias("self"))
    nodes = nodes.join(self_vals, on="node_id", how="left").with_columns(pl.col("self").fill_null(0)).sort("node_id")
    nid = nodes["node_id"].to_numpy()
    par = nodes["parent_id"].to_numpy()
    dep = nodes["depth"].to_numpy()
    total = nodes["self"].to_numpy().astype(np.int64).copy()
    ppos = np.searchsorted(nid, par)
    has_parent = par != np.uint64(ROOT_ID)
    if len(dep):
        order = np.argsort(-dep.astype(np.int64), kind="stable")
        dsorted = dep[order]
        bounds = np.flatnonzero(np.diff(dsorted)) + 1
        for level in np.split(order, bounds):
            level = level[has_parent[level]]
            if len(level):
                np.add.at(total, ppos[level], total[level])
    return nodes.with_columns(pl.Series("total", total, dtype=pl.Int64))


def root_self(profile: Profile, i: int) -> int:
    """Value of samples with an empty stack (attributed to the root)."""
    col = f"v{i}"
    s = profile.samples.filter(pl.col("node_id") == ROOT_ID)[col].sum()
    return int(s or 0)
