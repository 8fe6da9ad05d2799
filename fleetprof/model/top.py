"""Top functions: flat self and cumulative values per frame (pprof's ``top``).

Contract of :func:`top` for value column ``v{type_index}``:

* ``self``  — sum of the values of the stacks whose **leaf** is the frame.
* ``total`` — sum of the values of the stacks that contain the frame **anywhere**, each
  stack counted once however often the frame recurses in it (so no frame's total ever
  exceeds the grand total).
* ``self_pct`` / ``total_pct`` — those values as percent of the grand total (which
  includes empty stacks); 0 when the grand total is 0.
* One row per frame id (so per function+file, or per function+file+line when the profile
  was decoded with lines); re-key first with :mod:`fleetprof.model.aggregate`, or pass
  ``by=``, to group by function name, file, … Rows with zero self and total are omitted.
  Sorted by self, then total (descending), then name; ``n`` keeps the first ``n`` rows.
"""

from __future__ import annotations

import polars as pl

from fleetprof.model.paths import leaf_frames, stack_of_element, values_of
from fleetprof.model.profile import Profile, expand

TOP_SCHEMA = {
    "frame_id": pl.UInt64,
    "name": pl.Utf8,
    "file": pl.Utf8,
    "line": pl.Int64,
    "self": pl.Int64,
    "total": pl.Int64,
    "self_pct": pl.Float64,
    "total_pct": pl.Float64,
}


def top(profile: Profile, type_index: int, *, n: int | None = None, by: str | None = None) -> pl.DataFrame:
    """Flat per-frame self/total table (module contract); ``by`` is an
    :func:`~fleetprof.model.aggregate.aggregate` key applied first."""
    if by is not None:
        from fleetprof.model.aggregate import aggregate

        profile = aggregate(profile, by)
    ex = expand(profile)
    vals = values_of(ex, type_index)
    rows, leaves = leaf_frames(ex)
    self_df = (
        pl.DataFrame({"frame_id": leaves, "self": vals[rows]}, schema={"frame_id": pl.UInt64, "self": pl.Int64})
        .group_by("frame_id")
        .agg(pl.col("self").sum())
    )
    stack = stack_of_element(ex)
    pairs = pl.DataFrame({"stack": stack, "frame_id": ex.frame_ids}, schema={"stack": pl.Int64, "frame_id": pl.UInt64}).unique()
    total_df = (
        pairs.with_columns(pl.Series("total", vals[pairs["stack"].to_numpy()], dtype=pl.Int64))
        .group_by("frame_id")
        .agg(pl.col("total").sum())
    )
    grand = profile.totals()[type_index]
    scale = 100.0 / grand if grand else 0.0
    out = (
        total_df.join(self_df, on="frame_id", how="left")
        .with_columns(pl.col("self").fill_null(0))
        .filter((pl.col("total") != 0) | (pl.col("self") != 0))
        .join(profile.frames, on="frame_id", how="left")
        .with_columns(
            (pl.col("self").cast(pl.Float64) * scale).alias("self_pct"),
            (pl.col("total").cast(pl.Float64) * scale).alias("total_pct"),
        )
        .select(list(TOP_SCHEMA))
        .cast(TOP_SCHEMA)  # type: ignore[arg-type]
        .sort(["self", "total", "name"], descending=[True, True, False])
    )
    return out.head(n) if n is not None else out
