"""Span profiles over segments: the flame graph of some spans, and the spans behind a node.

Segments keep a span id per sample (:mod:`fleetprof.model.spans`; format version 4). Both
queries select segments and series like :func:`fleetprof.query.select.select_merge` (index
lookup by tenant, time, profile type and ``service_name``; the other matchers as a series
mask) and read each segment's ``node_id``, ``value``, ``series`` and ``span_id`` sample
columns; segments without span ids are skipped after their metadata is read.

* :func:`select_span_merge` — the merged profile of the samples whose span id is in a set
  (Pyroscope's ``SelectMergeSpanProfile``: an empty set selects nothing);
  :func:`span_merge` also counts the spans of the set that have samples.
* :func:`search_span_ids` — the ids of the spans a trace search matches (the spans
  themselves, not only their traces), most recent traces first, bounded.
* :func:`span_exemplars` — the spans whose samples spent time in a call-tree node (its
  total: the node and everything it calls), largest first, with the span name and trace id
  the span processor tagged the samples with.

Everything is one vectorised group-by over the selected sample rows; no Python loop per
sample or per node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from fleetprof.metastore.index import Index
from fleetprof.model.groupsum import sum_by_key
from fleetprof.model.profile import Profile
from fleetprof.model.spans import SPANS_SCHEMA, span_hex, unique_spans
from fleetprof.query.select import (
    _filters,
    _map_segments,
    _profile_of,
    _Scope,
    _scope,
    profile_type_value_types,
)
from fleetprof.query.selector import Matcher
from fleetprof.segment.format import Segment
from fleetprof.storage.objectstore import ObjectStore

_COLUMNS = ["node_id", "value", "series", "span_id"]


@dataclass(frozen=True)
class SpanSamples:
    """Selected sample rows with a span: leaf node ids, values and span ids (aligned), the
    segments they came from (for the call tree) and the spans table of those segments."""

    leaf: np.ndarray
    value: np.ndarray
    span: np.ndarray
    segments: list[Segment]
    spans: pl.DataFrame


def _meta(profile_type: str, start_ms: int, end_ms: int) -> dict[str, Any]:
    sample_type, period_type = profile_type_value_types(profile_type)
    return {
        "period_type": period_type, "default_sample_type": sample_type.type,
        "time_nanos": int(start_ms) * 1_000_000, "duration_nanos": max(0, int(end_ms) - int(start_ms)) * 1_000_000,
    }


def _segment_rows(seg: Segment, scope: _Scope, filt: list[Any], span_ids: np.ndarray | None) -> dict[str, np.ndarray]:
    """The rows of ``seg`` with a span (in ``span_ids`` when given) of the series read."""
    if not seg.has_spans:
        return {"node_id": np.zeros(0, np.uint64), "value": np.zeros(0, np.int64), "span_id": np.zeros(0, np.uint64)}
    a = seg.sample_arrays(_COLUMNS, filt)
    keep = a["span_id"] != 0 if span_ids is None else np.isin(a["span_id"], span_ids)
    mask = scope.mask(seg)
    if mask is not None:
        keep &= mask[a["series"].astype(np.int64)]
    return {"node_id": a["node_id"][keep], "value": a["value"][keep], "span_id": a["span_id"][keep]}


def span_samples(
    store: ObjectStore, index: Index, tenant: str, profile_type: str, matchers: Sequence[Matcher],
    start_ms: int, end_ms: int, span_ids: np.ndarray | None = None,
) -> SpanSamples:
    """The sample rows of the matching series in ``[start_ms, end_ms]`` that carry a span
    (one of ``span_ids`` when given)."""
    profile_type_value_types(profile_type)
    scope = _scope(store, index, tenant, start_ms, end_ms, matchers, profile_type)
    filt = _filters(profile_type, start_ms, end_ms)
    parts = _map_segments(store, scope.entries, lambda seg: _segment_rows(seg, scope, filt, span_ids))
    used = [(seg, a) for seg, a in parts if len(a["value"])]

    def cat(key: str, dtype: type) -> np.ndarray:
        return np.concatenate([a[key] for _, a in used]).astype(dtype, copy=False) if used else np.zeros(0, dtype)

    return SpanSamples(
        cat("node_id", np.uint64), cat("value", np.int64), cat("span_id", np.uint64),
        [seg for seg, _ in used], unique_spans([seg.spans() for seg, _ in used]),
    )


def span_merge(
    store: ObjectStore, index: Index, tenant: str, profile_type: str, matchers: Sequence[Matcher],
    start_ms: int, end_ms: int, span_ids: np.ndarray,
) -> tuple[Profile, int]:
    """``(profile, spans with samples)``: the merged profile (one sample type) of the
    samples of the matching series whose span id is in ``span_ids`` (u64; empty: an empty
    profile, as Pyroscope answers), and how many of those span ids the samples carry."""
    meta = _meta(profile_type, start_ms, end_ms)
    sample_type = profile_type_value_types(profile_type)[0]
    ids = np.unique(np.asarray(span_ids, dtype=np.uint64))
    if len(ids) == 0:
        return _profile_of(np.zeros(0, np.uint64), np.zeros(0, np.int64), [], (sample_type,), meta), 0
    got = span_samples(store, index, tenant, profile_type, matchers, start_ms, end_ms, ids)
    keys, sums = sum_by_key(got.leaf, got.value)
    return _profile_of(keys, sums, got.segments, (sample_type,), meta), len(np.unique(got.span))


def select_span_merge(
    store: ObjectStore, index: Index, tenant: str, profile_type: str, matchers: Sequence[Matcher],
    start_ms: int, end_ms: int, span_ids: np.ndarray,
) -> Profile:
    """Merged profile (one sample type) of the samples of the matching series whose span
    id is in ``span_ids`` (u64; empty: an empty profile, as Pyroscope answers)."""
    return span_merge(store, index, tenant, profile_type, matchers, start_ms, end_ms, span_ids)[0]


def search_span_ids(store: ObjectStore, index: Index, tenant: str, query: Any, limit: int) -> tuple[np.ndarray, bool]:
    """``(span ids (u64, sorted), truncated)`` of the spans that satisfy every condition of
    ``query`` (a :class:`fleetprof.traces.query.SearchQuery`; its ``limit`` and
    ``spans_per_set`` are replaced): the matching spans of the most recent matching traces,
    at most ``limit``; ``truncated`` when more spans match."""
    from dataclasses import replace

    from fleetprof.traces.query import search

    if limit < 1:
        raise ValueError("limit must be at least 1")
    traces = search(store, index, tenant, replace(query, limit=limit + 1, spans_per_set=limit))
    ids: list[int] = []
    truncated = len(traces) > limit
    for t in traces[:limit]:
        span_set = t.get("spanSet") or {}
        spans = span_set.get("spans") or []
        if int(span_set.get("matched", len(spans))) > len(spans):
            truncated = True
        for sp in spans:
            if len(ids) == limit:
                return np.unique(np.asarray(ids, dtype=np.uint64)), True
            ids.append(int(sp["spanID"], 16))
    return np.unique(np.asarray(ids, dtype=np.uint64)), truncated


@dataclass(frozen=True)
class Exemplar:
    """A span whose samples spent ``value`` (in the profile type's unit) in a node."""

    span_id: str
    value: int
    span_name: str
    trace_id: str


def span_exemplars(
    store: ObjectStore, index: Index, tenant: str, profile_type: str, matchers: Sequence[Matcher],
    start_ms: int, end_ms: int, *, node_id: int | None = None, path: Sequence[str] | None = None, limit: int = 20,
) -> tuple[list[Exemplar], int]:
    """``(spans, how many spans spent time there)``: the spans whose samples spent time in
    the node ``node_id`` (a model node id) or in the nodes at the root-first frame-name
    ``path`` (several nodes when frames of one name differ in file), the node's total per
    span, largest first (ties by span id), at most ``limit``."""
    from fleetprof.model.filter import resolve_path
    from fleetprof.model.paths import any_per_stack
    from fleetprof.model.profile import expand

    if (node_id is None) == (path is None):
        raise ValueError("give exactly one of node_id and path")
    got = span_samples(store, index, tenant, profile_type, matchers, start_ms, end_ms)
    if len(got.value) == 0:
        return [], 0
    meta = _meta(profile_type, start_ms, end_ms)
    leaves, sums = sum_by_key(got.leaf, got.value)
    profile = _profile_of(leaves, sums, got.segments, (profile_type_value_types(profile_type)[0],), meta)
    targets = np.array([node_id], dtype=np.uint64) if node_id is not None else resolve_path(profile, list(path or ()))
    if len(targets) == 0:
        return [], 0
    ex = expand(profile)
    under = profile.samples["node_id"].to_numpy()[any_per_stack(ex, np.isin(ex.node_ids, targets))]
    keep = np.isin(got.leaf, under)
    span, total = sum_by_key(got.span[keep], got.value[keep])
    nz = total != 0
    span, total = span[nz], total[nz]
    order = np.lexsort((span, -total))[: max(0, int(limit))]
    info = got.spans.filter(pl.col("span_id").is_in(pl.Series(span[order], dtype=pl.UInt64).implode()))
    names = dict(zip(info["span_id"].to_list(), zip(info["span_name"].to_list(), info["trace_id"].to_list(), strict=True), strict=True))
    out = []
    for sid, val in zip(span[order].tolist(), total[order].tolist(), strict=True):
        name, trace = names.get(sid, ("", ""))
        out.append(Exemplar(span_hex(sid), int(val), name, trace))
    return out, len(span)


__all__ = ["SPANS_SCHEMA", "Exemplar", "SpanSamples", "search_span_ids", "select_span_merge", "span_exemplars", "span_merge", "span_samples"]
