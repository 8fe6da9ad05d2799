"""Re-key the frames of a profile (pprof's ``-functions`` / ``-lines`` / ``-files`` granularity).

Contract of :func:`aggregate` — every frame ``(name, file, line)`` is replaced by a key
frame, and stacks are re-interned, so paths that become equal merge and their values sum
(all value columns; totals are unchanged):

* ``"function"`` — ``(name, "", 0)``: function name only (the same name in two files merges).
* ``"frame"``    — ``(name, file, 0)``: the canonical frame (drops line numbers).
* ``"line"``     — ``(name, file, line)``: function + line. Needs a profile decoded with
  ``keep_lines=True``; a profile without any line number raises :class:`ValueError`.
* ``"file"``     — ``(file, "", 0)`` (``name`` when a frame has no file).

Recursion is left as is (``a;a`` stays two frames). Frame ids of the key frames follow
:func:`fleetprof.model.hashing.frame_id`, so they match profiles decoded at that granularity.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from fleetprof.model.hashing import frame_ids
from fleetprof.model.profile import FRAMES_SCHEMA, Profile, expand, positions, rebuild

AGGREGATIONS = ("function", "frame", "line", "file")


def aggregate(profile: Profile, by: str) -> Profile:
    """Profile with frames re-keyed by ``by`` (one of :data:`AGGREGATIONS`)."""
    if by not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {by!r} (expected one of {', '.join(AGGREGATIONS)})")
    fr = profile.frames
    if by == "line" and fr.height and not (fr["line"] != 0).any():
        raise ValueError("profile has no line numbers (decode it with keep_lines=True to aggregate by line)")
    keys = _key_frames(fr, by)
    if keys.equals(fr.select(list(FRAMES_SCHEMA))):
        return profile
    new_ids = frame_ids(keys["name"].to_list(), keys["file"].to_list(), keys["line"].to_list())
    keys = keys.with_columns(pl.Series("frame_id", new_ids, dtype=pl.UInt64))
    ex = expand(profile)
    pos = positions(fr["frame_id"].to_numpy(), ex.frame_ids)
    ex = replace(ex, frame_ids=new_ids[pos] if len(pos) else np.zeros(0, np.uint64))
    frames = keys.unique(subset="frame_id", keep="first")
    return rebuild(replace(profile, frames=frames), ex)


def _key_frames(fr: pl.DataFrame, by: str) -> pl.DataFrame:
    """The key frame of every row of the frame table (same order), unhashed ids kept."""
    if by == "function":
        cols = [pl.col("name"), pl.lit("").alias("file"), pl.lit(0, dtype=pl.Int64).alias("line")]
    elif by == "frame":
        cols = [pl.col("name"), pl.col("file"), pl.lit(0, dtype=pl.Int64).alias("line")]
    elif by == "line":
        cols = [pl.col("name"), pl.col("file"), pl.col("line")]
    else:
        name = pl.when(pl.col("file") != "").then(pl.col("file")).otherwise(pl.col("name"))
        cols = [name.alias("name"), pl.lit("").alias("file"), pl.lit(0, dtype=pl.Int64).alias("line")]
    return fr.select(pl.col("frame_id"), *cols).cast(FRAMES_SCHEMA)  # type: ignore[arg-type]
