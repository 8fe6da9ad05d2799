"""Span ids per sample (span profiles, as ``pyroscope-otel`` produces them).

The ``pyroscope-otel`` span processor tags the samples taken while a root span runs with
``span_id`` (16 hex digits), ``span_name`` and ``trace_id`` (32 hex digits). The Pyroscope
agents ship these tags as pprof **sample labels** (``push.v1`` ``Push``) or, in older
agents, in the legacy ``/ingest`` name (``app.cpu{span_id=...}``). fleetprof keeps them
per sample and never as series labels (one series per span would explode the series
count): a span id is a ``u64`` (``0`` = no span) beside each sample, and a segment's side
table maps it to the span's name and trace id.

Everything here works per label set or per distinct span, never per sample in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from fleetprof.model.profile import Profile

SPAN_ID = "span_id"
SPAN_NAME = "span_name"
TRACE_ID = "trace_id"
SPAN_LABELS = (SPAN_ID, SPAN_NAME, TRACE_ID)
"""Label keys kept per sample, never as series labels."""
SPANS_SCHEMA = {"span_id": pl.UInt64, "span_name": pl.Utf8, "trace_id": pl.Utf8}
"""A span side table: one row per distinct span id (non-zero)."""
NO_SPAN = 0


class SpanIdError(ValueError):
    """A span id that is not 16 hexadecimal digits."""


def parse_span_id(text: str) -> int:
    """The ``u64`` of a span id written as 16 hex digits (either case); :class:`SpanIdError`
    otherwise, also for the all-zero id (OpenTelemetry's invalid span id)."""
    if not isinstance(text, str) or len(text) != 16:
        raise SpanIdError(f"invalid span id {str(text)[:40]!r}: expected 16 hexadecimal digits")
    try:
        value = int(text, 16)
    except ValueError:
        raise SpanIdError(f"invalid span id {text!r}: expected 16 hexadecimal digits") from None
    if not text.isascii() or value == NO_SPAN:
        raise SpanIdError(f"invalid span id {text!r}: expected 16 hexadecimal digits, not all zero")
    return value


def span_hex(value: int) -> str:
    """The 16-hex-digit form of a span id."""
    return format(int(value), "016x")


def parse_span_ids(texts: Iterable[str]) -> np.ndarray:
    """Sorted distinct ``u64`` span ids of hex ``texts`` (:class:`SpanIdError` on the first bad one)."""
    return np.unique(np.fromiter((parse_span_id(t.strip()) for t in texts), dtype=np.uint64))


def empty_spans() -> pl.DataFrame:
    return pl.DataFrame(schema=SPANS_SCHEMA)


def split_span_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(series labels, span labels)``: the span keys (:data:`SPAN_LABELS`) taken out."""
    series = {k: v for k, v in labels.items() if k not in SPAN_LABELS}
    span = {k: v for k, v in labels.items() if k in SPAN_LABELS}
    return series, span


def span_row(span: Mapping[str, str]) -> tuple[int, str, str] | None:
    """``(span id, span name, trace id)`` of span labels, or None without a valid span id
    (a malformed id is dropped like any other unusable tag: the sample stays, spanless)."""
    raw = span.get(SPAN_ID)
    if not raw:
        return None
    try:
        sid = parse_span_id(raw)
    except SpanIdError:
        return None
    return sid, span.get(SPAN_NAME, ""), span.get(TRACE_ID, "")


def label_set_spans(labels: pl.DataFrame) -> pl.DataFrame:
    """Span of every label set of a long-form label table (``labels: u64, key, value``):
    ``labels, span_id, span_name, trace_id`` for the sets holding a valid ``span_id``."""
    sel = labels.filter(pl.col("key").is_in(SPAN_LABELS))
    if sel.height == 0:
        return pl.DataFrame(schema={"labels": pl.UInt64, **SPANS_SCHEMA})
    wide = sel.pivot(on="key", index="labels", values="value", aggregate_function="first")
    for k in SPAN_LABELS:
        if k not in wide.columns:
            wide = wide.with_columns(pl.lit("", dtype=pl.Utf8).alias(k))
    ids = [_span_or_zero(x) for x in wide[SPAN_ID].fill_null("").to_list()]
    out = wide.select(
        pl.col("labels").cast(pl.UInt64),
        pl.Series(SPAN_ID, ids, dtype=pl.UInt64),
        pl.col(SPAN_NAME).fill_null("").cast(pl.Utf8),
        pl.col(TRACE_ID).fill_null("").cast(pl.Utf8),
    )
    return out.filter(pl.col(SPAN_ID) != NO_SPAN)


def _span_or_zero(text: str) -> int:
    try:
        return parse_span_id(text)
    except SpanIdError:
        return NO_SPAN


def spans_of_sets(set_ids: np.ndarray, labels: pl.DataFrame | None) -> tuple[np.ndarray, pl.DataFrame]:
    """``(span id per label set id in set_ids, spans table)`` (0 where a set has no span)."""
    set_ids = np.asarray(set_ids, dtype=np.uint64)
    if labels is None or labels.height == 0 or len(set_ids) == 0:
        return np.zeros(len(set_ids), dtype=np.uint64), empty_spans()
    per_set = label_set_spans(labels)
    if per_set.height == 0:
        return np.zeros(len(set_ids), dtype=np.uint64), empty_spans()
    keys = per_set["labels"].to_numpy()
    order = np.argsort(keys)
    pos = np.minimum(np.searchsorted(keys[order], set_ids), len(keys) - 1)
    hit = keys[order][pos] == set_ids
    out = np.where(hit, per_set[SPAN_ID].to_numpy()[order][pos], np.uint64(NO_SPAN)).astype(np.uint64)
    return out, unique_spans([per_set.select(list(SPANS_SCHEMA))])


def unique_spans(parts: Sequence[pl.DataFrame | None]) -> pl.DataFrame:
    """One row per span id of the given span tables (the first name/trace id seen wins)."""
    got = [p.select(list(SPANS_SCHEMA)).cast(SPANS_SCHEMA) for p in parts if p is not None and p.height]  # type: ignore[arg-type]
    if not got:
        return empty_spans()
    return pl.concat(got).filter(pl.col(SPAN_ID) != NO_SPAN).unique(SPAN_ID, keep="first", maintain_order=True)


def single_span_table(row: tuple[int, str, str] | None) -> pl.DataFrame:
    """The spans table of one span (empty for None)."""
    if row is None:
        return empty_spans()
    return pl.DataFrame([row], schema=SPANS_SCHEMA, orient="row")


def with_span(profile: Profile, row: tuple[int, str, str]) -> Profile:
    """``profile`` with the span ``row`` (``(span id, span name, trace id)``) on its samples
    that carry no labels (a span sent as series labels, e.g. the legacy ``/ingest`` name)."""
    from dataclasses import replace

    from fleetprof.model.hashing import labels_id

    pairs = [(SPAN_ID, span_hex(row[0])), (SPAN_NAME, row[1]), (TRACE_ID, row[2])]
    sid = labels_id(pairs)
    samples = profile.samples.with_columns(
        pl.when(pl.col("labels") == 0).then(pl.lit(sid, dtype=pl.UInt64)).otherwise(pl.col("labels")).alias("labels")
    )
    extra = pl.DataFrame([(sid, k, v) for k, v in pairs], schema=profile.labels.schema, orient="row")
    return replace(profile, samples=samples, labels=pl.concat([profile.labels, extra]).unique(maintain_order=True))
