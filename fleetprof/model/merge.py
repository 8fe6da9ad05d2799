"""Merge profiles: the union of call trees with values summed per (node, label set).

Contract: associative and commutative; totals of the result are the exact sums of the
inputs' totals per sample type. Inputs must have the same sample types (compared as
``type:unit``, in order) or a :class:`ValueError` is raised; use ``select_type`` first to
merge one type out of differently-shaped profiles. Metadata: earliest ``time_nanos``,
covering ``duration_nanos``, first input's period and default type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import polars as pl

from fleetprof.model.profile import (
    Profile,
    ValueType,
    empty_frames,
    empty_labels,
    from_tables,
    meta_of,
)


def merge(profiles: Sequence[Profile]) -> Profile:
    """Merge one or more profiles (see module contract)."""
    if not profiles:
        raise ValueError("merge needs at least one profile")
    first = profiles[0]
    for p in profiles[1:]:
        if p.sample_types != first.sample_types:
            raise ValueError(f"cannot merge sample types {list(map(str, p.sample_types))} into {list(map(str, first.sample_types))}")
    if len(profiles) == 1:
        return first
    meta = meta_of(first)
    starts = [p.time_nanos for p in profiles if p.time_nanos]
    ends = [p.time_nanos + p.duration_nanos for p in profiles if p.time_nanos]
    if starts:
        meta["time_nanos"] = min(starts)
        meta["duration_nanos"] = max(ends) - min(starts)
    meta["truncated_stacks"] = sum(p.truncated_stacks for p in profiles)
    return from_tables(
        first.sample_types,
        pl.concat([p.frames for p in profiles]),
        pl.concat([p.nodes for p in profiles]),
        pl.concat([p.samples for p in profiles]),
        pl.concat([p.labels for p in profiles]),
        **meta,
    )


def select_type(profile: Profile, index: int) -> Profile:
    """A profile with only value column ``index`` (renamed ``v0``)."""
    col = f"v{index}"
    samples = profile.samples.select("node_id", "labels", pl.col(col).alias("v0")).filter(pl.col("v0") != 0)
    st = profile.sample_types[index]
    default = st.type
    return replace(profile, sample_types=(st,), samples=samples, default_sample_type=default)


def empty_profile(sample_types: Sequence[ValueType], **meta: object) -> Profile:
    """A profile with no samples (the identity of :func:`merge`)."""
    from fleetprof.model.profile import NODES_SCHEMA, value_columns

    cols = value_columns(len(sample_types))
    samples = pl.DataFrame(schema={"node_id": pl.UInt64, "labels": pl.UInt64} | {c: pl.Int64 for c in cols})
    return Profile(tuple(sample_types), empty_frames(), pl.DataFrame(schema=NODES_SCHEMA), samples, empty_labels(), **meta)  # type: ignore[arg-type]
