"""A flat, columnar view of many profiles: what compaction and analysis work on.

A :class:`Dataset` is the union of segments (or of ingest items, in tests) as four tables:

* ``samples`` — ``series_id: u64, profile_type: str, time_ms: i64, node_id: u64, value: i64``
  (one value per row: every profile type has exactly one sample type, as in segments).
* ``series``  — ``labels: u64, key: str, value: str``: the label sets of ``series_id`` in long
  form (the model's labels-table schema, so a series id can stand as a sample's label set).
* ``nodes``   — the model's node table (``node_id, parent_id, frame_id, depth``).
* ``frames``  — the model's frame table (``frame_id, name, file, line``).

Node and frame ids are the model's stable hashes, so unions of datasets only need a
de-duplication (that is the "re-interning" of stacks across inputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from fleetprof.model import Profile, ValueType, from_tables, series_id
from fleetprof.model.profile import FRAMES_SCHEMA, LABELS_SCHEMA, NODES_SCHEMA

SAMPLES_SCHEMA: dict[str, Any] = {
    "series_id": pl.UInt64,
    "profile_type": pl.Utf8,
    "time_ms": pl.Int64,
    "node_id": pl.UInt64,
    "value": pl.Int64,
}


class ItemLike(Protocol):
    """What :func:`from_items` needs of an ingest item (``fleetprof.segment.writer.IngestItem``)."""

    labels: dict[str, str]
    profile_type: str
    time_ms: int
    profile: Profile


@dataclass(frozen=True)
class Dataset:
    """See the module docstring for the table contracts."""

    samples: pl.DataFrame
    series: pl.DataFrame
    nodes: pl.DataFrame
    frames: pl.DataFrame

    @property
    def profile_types(self) -> list[str]:
        return sorted(self.samples["profile_type"].unique().to_list())

    def series_table(self) -> pl.DataFrame:
        """One row per series: ``series_id, service, version`` (``""`` when absent)."""
        wide = self.series.filter(pl.col("key").is_in(["service_name", "version"])).pivot(
            on="key", index="labels", values="value", aggregate_function="first"
        )
        for col in ("service_name", "version"):
            if col not in wide.columns:
                wide = wide.with_columns(pl.lit(None, dtype=pl.Utf8).alias(col))
        ids = self.series.select(pl.col("labels").alias("series_id")).unique()
        return ids.join(
            wide.select(
                pl.col("labels").alias("series_id"),
                pl.col("service_name").fill_null("").alias("service"),
                pl.col("version").fill_null("").alias("version"),
            ),
            on="series_id",
            how="left",
        ).with_columns(pl.col("service").fill_null(""), pl.col("version").fill_null(""))

    def with_series(self) -> pl.DataFrame:
        """``samples`` joined with ``service`` and ``version``."""
        return self.samples.join(self.series_table(), on="series_id", how="left").with_columns(
            pl.col("service").fill_null(""), pl.col("version").fill_null("")
        )

    def filter_samples(self, predicate: pl.Expr) -> Dataset:
        """Same dataset with only the sample rows matching ``predicate`` (tables kept)."""
        return Dataset(self.samples.filter(predicate), self.series, self.nodes, self.frames)


def empty_dataset() -> Dataset:
    return Dataset(
        pl.DataFrame(schema=SAMPLES_SCHEMA),
        pl.DataFrame(schema=LABELS_SCHEMA),
        pl.DataFrame(schema=NODES_SCHEMA),
        pl.DataFrame(schema=FRAMES_SCHEMA),
    )


def concat(parts: Iterable[Dataset]) -> Dataset:
    """Union of datasets: samples appended, dictionaries de-duplicated by their stable ids."""
    parts = list(parts)
    if not parts:
        return empty_dataset()
    return Dataset(
        pl.concat([p.samples.select(list(SAMPLES_SCHEMA)).cast(SAMPLES_SCHEMA) for p in parts]),
        pl.concat([p.series.select(list(LABELS_SCHEMA)).cast(LABELS_SCHEMA) for p in parts]).unique(maintain_order=True),
        pl.concat([p.nodes.select(list(NODES_SCHEMA)).cast(NODES_SCHEMA) for p in parts]).unique(
            subset="node_id", keep="first", maintain_order=True
        ),
        pl.concat([p.frames.select(list(FRAMES_SCHEMA)).cast(FRAMES_SCHEMA) for p in parts]).unique(
            subset="frame_id", keep="first", maintain_order=True
        ),
    )


def from_items(items: Sequence[ItemLike]) -> Dataset:
    """Dataset of ingest items (each profile contributes its value column ``v0``)."""
    parts = []
    for item in items:
        p = item.profile
        sid = series_id(item.labels)
        samples = p.samples.group_by("node_id").agg(pl.col("v0").sum().alias("value")).select(
            pl.lit(sid, dtype=pl.UInt64).alias("series_id"),
            pl.lit(item.profile_type).alias("profile_type"),
            pl.lit(int(item.time_ms), dtype=pl.Int64).alias("time_ms"),
            pl.col("node_id"),
            pl.col("value"),
        )
        series = pl.DataFrame(
            {"labels": [sid] * len(item.labels), "key": list(item.labels), "value": list(item.labels.values())},
            schema=LABELS_SCHEMA,
        )
        parts.append(Dataset(samples.filter(pl.col("value") != 0), series, p.nodes, p.frames))
    return concat(parts)


def value_type(profile_type: str) -> ValueType:
    """Sample type of a Pyroscope profile-type id ``name:type:unit:period_type:period_unit``."""
    parts = profile_type.split(":")
    if len(parts) < 3:
        return ValueType(profile_type, "count")
    return ValueType(parts[1], parts[2])


def to_profile(ds: Dataset, profile_type: str, predicate: pl.Expr | None = None) -> Profile:
    """One-type profile of the rows of ``profile_type`` (optionally filtered); each sample's
    label set is its series id, with the series labels as the labels table."""
    rows = ds.samples.filter(pl.col("profile_type") == profile_type)
    if predicate is not None:
        rows = rows.join(ds.series_table(), on="series_id", how="left").filter(predicate)
    samples = rows.select(pl.col("node_id"), pl.col("series_id").alias("labels"), pl.col("value").alias("v0"))
    used = samples["labels"].unique()
    return from_tables(
        (value_type(profile_type),),
        ds.frames,
        ds.nodes,
        samples,
        ds.series.filter(pl.col("labels").is_in(used.implode())),
    )
