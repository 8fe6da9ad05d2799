"""Per-node comparison of two profiles (base vs candidate), normalised by their totals.

Contract of :func:`diff`: one row per call-tree node present in either profile (node ids
are stable hashes of the root-first frame path, so equal paths line up), with

* ``node_id, parent_id, frame_id, name, file, depth`` and ``path`` (frame names from the
  root joined by ``;``);
* ``base`` / ``cand`` — the node's **total** in each profile (0 where absent), and
  ``base_self`` / ``cand_self`` its self value;
* ``base_share`` / ``cand_share`` — those totals as fractions of each profile's grand
  total (empty stacks included; 0 when the grand total is 0);
* ``delta`` = ``cand_share - base_share`` (positive = grew).

Value column ``v{type_index}`` of ``base`` is compared with ``v{cand_type_index}`` of
``cand`` (default: the same index). Rows are sorted by ``path``. Vectorised: joins plus
one join per depth level to build paths.
"""

from __future__ import annotations

import polars as pl

from fleetprof.model.hashing import ROOT_ID
from fleetprof.model.profile import Profile
from fleetprof.model.tree import node_values

DIFF_COLUMNS = (
    "node_id", "parent_id", "frame_id", "name", "file", "depth", "path",
    "base", "cand", "base_self", "cand_self", "base_share", "cand_share", "delta",
)


def diff(base: Profile, cand: Profile, type_index: int, *, cand_type_index: int | None = None) -> pl.DataFrame:
    """Node-by-node base vs candidate table (module contract)."""
    ci = type_index if cand_type_index is None else cand_type_index
    bt, ct = base.totals()[type_index], cand.totals()[ci]
    keys = ["node_id", "parent_id", "frame_id", "depth"]
    b = node_values(base, type_index).select(*keys, pl.col("total").alias("base"), pl.col("self").alias("base_self"))
    c = node_values(cand, ci).select(*keys, pl.col("total").alias("cand"), pl.col("self").alias("cand_self"))
    nodes = pl.concat([b.select(keys), c.select(keys)]).unique(subset="node_id", keep="first")
    frames = pl.concat([base.frames, cand.frames]).unique(subset="frame_id", keep="first").select("frame_id", "name", "file")
    out = (
        nodes.join(b.drop(keys[1:]), on="node_id", how="left")
        .join(c.drop(keys[1:]), on="node_id", how="left")
        .join(frames, on="frame_id", how="left")
        .with_columns(pl.col("base", "cand", "base_self", "cand_self").fill_null(0), pl.col("name", "file").fill_null(""))
        .with_columns(
            _share("base", bt).alias("base_share"),
            _share("cand", ct).alias("cand_share"),
        )
        .with_columns((pl.col("cand_share") - pl.col("base_share")).alias("delta"))
    )
    return _with_paths(out).select(DIFF_COLUMNS).sort("path")


def _share(col: str, total: int) -> pl.Expr:
    return pl.col(col).cast(pl.Float64) / total if total else pl.lit(0.0, dtype=pl.Float64)


def _with_paths(nodes: pl.DataFrame) -> pl.DataFrame:
    """Add ``path`` (root-first frame names joined by ``;``), one join per depth level."""
    if nodes.height == 0:
        return nodes.with_columns(pl.lit("", dtype=pl.Utf8).alias("path"))
    parts = []
    prev = pl.DataFrame({"parent_id": [ROOT_ID], "ppath": [None]}, schema={"parent_id": pl.UInt64, "ppath": pl.Utf8})
    for d in range(1, int(nodes["depth"].max()) + 1):
        level = nodes.filter(pl.col("depth") == d).join(prev, on="parent_id", how="left")
        level = level.with_columns(
            pl.when(pl.col("ppath").is_null()).then(pl.col("name")).otherwise(pl.col("ppath") + ";" + pl.col("name")).alias("path")
        ).drop("ppath")
        parts.append(level)
        prev = level.select(pl.col("node_id").alias("parent_id"), pl.col("path").alias("ppath"))
    return pl.concat(parts)
