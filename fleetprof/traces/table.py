"""Spans in memory, as columns: what OTLP decoding produces, the span writer batches and
a span segment holds (:mod:`fleetprof.traces.format`).

:class:`SpanTable` keeps the four id columns as native ``uint64`` arrays (trace id high
and low halves, span id, parent span id with 0 for none) and the other columns
(:data:`COLUMNS`) as a polars frame; its ``resource`` / ``scope`` columns index its
``resources`` / ``scopes`` (serialized ``ResourceSpans`` without scope spans and
``ScopeSpans`` without spans). ``extra``, ``tags`` and ``tag_types`` are described in
:mod:`fleetprof.traces.otlp`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from fleetprof.metastore.index import SERVICE_OVERHEAD_BYTES, SERVICES_BUDGET_BYTES, services_cost

__all__ = ["COLUMNS", "SERVICES_BUDGET_BYTES", "SERVICE_OVERHEAD_BYTES", "SpanTable", "concat_tables", "empty_table", "services_cost"]

COLUMNS: dict[str, Any] = {
    "name": pl.Utf8, "kind": pl.Int8, "start_ns": pl.Int64, "duration_ns": pl.Int64,
    "status_code": pl.Int8, "status_message": pl.Utf8, "service": pl.Utf8, "resource": pl.Int32,
    "scope": pl.Int32, "extra": pl.Binary, "tags": pl.List(pl.Utf8), "tag_types": pl.Utf8,
}


@dataclass
class SpanTable:
    """Spans as columns (see the module docstring)."""

    trace_hi: np.ndarray
    trace_lo: np.ndarray
    span: np.ndarray
    parent: np.ndarray
    cols: pl.DataFrame
    resources: list[bytes]
    scopes: list[bytes]

    def __len__(self) -> int:
        return len(self.span)

    def services(self) -> set[str]:
        """The distinct services of the rows."""
        return set(self.cols.get_column("service").unique().to_list())

    def sorted(self) -> SpanTable:
        """The rows ordered by (trace id, start)."""
        order = np.lexsort((self.cols.get_column("start_ns").to_numpy(), self.trace_lo, self.trace_hi))
        return self.take(order)

    def take(self, rows: np.ndarray) -> SpanTable:
        """The rows ``rows`` (indices), in that order."""
        return SpanTable(self.trace_hi[rows], self.trace_lo[rows], self.span[rows], self.parent[rows],
                         self.cols[rows], self.resources, self.scopes)


def empty_table() -> SpanTable:
    z = np.zeros(0, np.uint64)
    return SpanTable(z, z, z, z, pl.DataFrame(schema=COLUMNS), [], [])


def concat_tables(tables: Sequence[SpanTable]) -> SpanTable:
    """One table of several (resources and scopes re-indexed and de-duplicated)."""
    if not tables:
        return empty_table()
    res_ix: dict[bytes, int] = {}
    scope_ix: dict[bytes, int] = {}
    cols: list[pl.DataFrame] = []
    for t in tables:
        rmap = pl.Series([res_ix.setdefault(r, len(res_ix)) for r in t.resources] or [0], dtype=pl.Int32)
        smap = pl.Series([scope_ix.setdefault(s, len(scope_ix)) for s in t.scopes] or [0], dtype=pl.Int32)
        same = rmap.to_list() == list(range(len(t.resources))) and smap.to_list() == list(range(len(t.scopes)))
        cols.append(t.cols if same or t.cols.height == 0 else t.cols.with_columns(
            resource=rmap.gather(t.cols.get_column("resource")), scope=smap.gather(t.cols.get_column("scope"))))
    return SpanTable(
        np.concatenate([t.trace_hi for t in tables]), np.concatenate([t.trace_lo for t in tables]),
        np.concatenate([t.span for t in tables]), np.concatenate([t.parent for t in tables]),
        pl.concat(cols, rechunk=False), list(res_ix), list(scope_ix),
    )
