"""Series-level queries for Pyroscope's ``SelectSeries``/``Series`` semantics.

* :func:`select_series` — one timeline per distinct combination of the ``group_by``
  label values (a series without a label counts as ``""`` for it and the label is left
  out of its group's labels). Buckets follow :func:`fleetprof.query.select.select_timeline`
  (bucket ``k`` covers ``[start_ms + k*step_ms, start_ms + (k+1)*step_ms)`` and is stamped
  ``start_ms + k*step_ms``); only buckets holding samples become points. ``average``
  divides each bucket's sum by the number of profiles (distinct series and timestamp) in
  it; series labelled ``__aggregation__="average"`` are always averaged that way, as in
  ``select_timeline``. ``limit`` keeps the groups with the largest totals.
* :func:`matching_series` — the label sets of the series matching the matchers, with
  optionally their profile types (read from the segments' sample columns, exact per
  series).

Everything is one pass over the selected sample columns (numpy/polars), no loop per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from fleetprof.metastore.index import Index
from fleetprof.query.select import (
    AGGREGATION_LABEL,
    _cat,
    _entries_with_series,
    _filters,
    _lookup,
    _map_segments,
    _series_of,
    match_series,
    profile_type_value_types,
)
from fleetprof.query.selector import Matcher
from fleetprof.storage.objectstore import ObjectStore


@dataclass(frozen=True)
class GroupSeries:
    """One group's timeline: its labels (the present ``group_by`` labels, in that order),
    bucket timestamps (ms) and values."""

    labels: list[tuple[str, str]]
    times_ms: np.ndarray
    values: np.ndarray

    @property
    def total(self) -> float:
        return float(self.values.sum())


def _group_keys(labels: pl.DataFrame, ids: np.ndarray, group_by: Sequence[str]) -> tuple[np.ndarray, list[list[tuple[str, str]]]]:
    """Group index of every series id in ``ids`` (sorted) and each group's labels."""
    frame = pl.DataFrame({"series_id": ids}, schema={"series_id": pl.UInt64})
    cols = []
    for i, name in enumerate(dict.fromkeys(group_by)):
        col = f"g{i}"
        vals = labels.filter(pl.col("key") == name).select("series_id", pl.col("value").alias(col)).unique("series_id")
        frame = frame.join(vals, on="series_id", how="left", maintain_order="left").with_columns(pl.col(col).fill_null(""))
        cols.append((name, col))
    if not cols:
        return np.zeros(len(ids), dtype=np.int64), [[]]
    keys = [c for _, c in cols]
    groups = frame.select(keys).unique().sort(keys).with_row_index("_g")
    keyed = frame.join(groups, on=keys, how="left", maintain_order="left")
    names = [[(n, v) for (n, _), v in zip(cols, row, strict=True) if v] for row in groups.select(keys).iter_rows()]
    return keyed["_g"].to_numpy().astype(np.int64), names


def select_series(
    store: ObjectStore, index: Index, tenant: str, profile_type: str, matchers: Sequence[Matcher],
    start_ms: int, end_ms: int, step_ms: int, group_by: Sequence[str] = (), *,
    average: bool = False, limit: int | None = None,
) -> list[GroupSeries]:
    """Timelines of the matching series grouped by ``group_by`` (see the module docstring),
    largest total first when ``limit`` applies, else in group-label order."""
    if step_ms <= 0:
        raise ValueError("step_ms must be positive")
    profile_type_value_types(profile_type)
    entries = _lookup(index, tenant, start_ms, end_ms, matchers, profile_type)
    if not entries:
        return []
    labels = _series_of(store, entries)
    ids = np.sort((match_series(labels, matchers) if matchers else labels["series_id"].unique()).to_numpy())
    entries = _entries_with_series(entries, ids)
    cols = ["time_ms", "value", "series_id"]
    parts = [a for _, a in _map_segments(store, entries, lambda seg: seg.sample_arrays(cols, _filters(profile_type, start_ms, end_ms)))]
    t, v, sid = (_cat([a[c] for a in parts], dt) for c, dt in (("time_ms", np.int64), ("value", np.int64), ("series_id", np.uint64)))
    pos = np.searchsorted(ids, sid)
    keep = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == sid) if len(ids) else np.zeros(len(sid), bool)
    t, v, sid, pos = t[keep], v[keep], sid[keep], pos[keep]
    group_of, group_labels = _group_keys(labels, ids, group_by)
    n = max(1, (int(end_ms) - int(start_ms)) // step_ms + 1)
    g = group_of[pos]
    b = (t - int(start_ms)) // step_ms
    ok = (b >= 0) & (b < n)
    g, b, t, v, sid = g[ok], b[ok], t[ok], v[ok], sid[ok]
    averaged = _averaged_ids(labels)
    avg = np.ones(len(v), bool) if average else np.isin(sid, averaged)
    values = _bucket_sums(len(group_labels), n, g, b, t, v, sid, avg)
    present = np.zeros((len(group_labels), n), dtype=bool)
    present[g, b] = True
    times = int(start_ms) + np.arange(n, dtype=np.int64) * step_ms
    out = [GroupSeries(group_labels[k], times[present[k]], values[k][present[k]]) for k in range(len(group_labels)) if present[k].any()]
    if limit is not None and limit > 0:
        out = sorted(out, key=lambda s: -s.total)[:limit]
    return out


def _averaged_ids(labels: pl.DataFrame) -> np.ndarray:
    avg = labels.filter((pl.col("key") == AGGREGATION_LABEL) & (pl.col("value") == "average"))["series_id"].unique()
    return avg.to_numpy()


def _bucket_sums(groups: int, n: int, g: np.ndarray, b: np.ndarray, t: np.ndarray, v: np.ndarray, sid: np.ndarray, avg: np.ndarray) -> np.ndarray:
    """``[groups, n]`` float sums; the ``avg`` rows' part of each cell divided by the number
    of distinct profiles (series, timestamp) among them in that cell."""
    out = np.zeros((groups, n), dtype=np.float64)
    plain = ~avg
    np.add.at(out, (g[plain], b[plain]), v[plain].astype(np.float64))
    if avg.any():
        sums = np.zeros((groups, n), dtype=np.float64)
        np.add.at(sums, (g[avg], b[avg]), v[avg].astype(np.float64))
        prof = np.unique(np.stack([g[avg].astype(np.uint64), b[avg].astype(np.uint64), sid[avg], t[avg].astype(np.uint64)], axis=1), axis=0)
        counts = np.zeros((groups, n), dtype=np.int64)
        np.add.at(counts, (prof[:, 0].astype(np.int64), prof[:, 1].astype(np.int64)), 1)
        out += np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return out


def matching_series(
    store: ObjectStore, index: Index, tenant: str, start_ms: int, end_ms: int, matchers: Sequence[Matcher],
    profile_type: str | None = None, *, with_profile_types: bool = False,
) -> pl.DataFrame:
    """Long ``series_id, key, value`` table of the series matching ``matchers`` (within
    ``profile_type`` when given). With ``with_profile_types`` a ``profile_type`` column
    pairs every row with each profile type the series has samples of in the range."""
    entries = _lookup(index, tenant, start_ms, end_ms, matchers, profile_type)
    labels = _series_of(store, entries) if entries else pl.DataFrame(schema={"series_id": pl.UInt64, "key": pl.Utf8, "value": pl.Utf8})
    if matchers:
        labels = labels.filter(pl.col("series_id").is_in(match_series(labels, matchers).implode()))
    if not with_profile_types and profile_type is None:
        return labels
    ids = np.sort(labels["series_id"].unique().to_numpy())
    entries = _entries_with_series(entries, ids)
    filt = [("time_ms", ">=", int(start_ms)), ("time_ms", "<=", int(end_ms))]
    if profile_type is not None:
        filt.append(("profile_type", "=", profile_type))
    parts = [a for _, a in _map_segments(store, entries, lambda seg: seg.sample_arrays(["series_id", "profile_type"], filt))]
    pairs = pl.DataFrame(
        {"series_id": _cat([a["series_id"] for a in parts], np.uint64),
         "profile_type": np.concatenate([a["profile_type"] for a in parts]).astype(str) if parts else np.zeros(0, str)},
        schema={"series_id": pl.UInt64, "profile_type": pl.Utf8},
    ).unique()
    joined = labels.join(pairs, on="series_id", how="inner")
    return joined if with_profile_types else joined.drop("profile_type").unique()
