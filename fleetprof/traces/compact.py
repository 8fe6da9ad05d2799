"""Compaction of span segments: the inputs' spans merged into one segment of a higher level.

Same steps and crash safety as profile compaction (:func:`workers.compact.compact_inputs`):
read inputs → encode → put(new object) → re-check inputs live → ``index.swap``. Spans
stored twice (an exporter's retry landing in two segments) are kept once; rows are sorted
by trace id again, so a lookup in the output is one binary search. Inputs are grouped by
:func:`input_chunks`, so an output's services stay within the index entry's budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fleetprof.metastore.index import budget_chunks
from fleetprof.traces.format import SpanTable, concat_tables, decode
from fleetprof.traces.writer import encode_table


class InputsGone(RuntimeError):
    """An input vanished or stopped being live (a concurrent job); retry later."""


input_chunks = budget_chunks
"""Span inputs cut into runs whose services fit one index entry (:func:`~fleetprof.metastore.index.budget_chunks`)."""


def dedupe(t: SpanTable) -> SpanTable:
    """``t`` with one row per (trace id, span id), the first of each."""
    if len(t) == 0:
        return t
    keys = np.stack([t.trace_hi, t.trace_lo, t.span], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    if len(first) == len(t):
        return t
    keep = np.sort(first)
    return SpanTable(t.trace_hi[keep], t.trace_lo[keep], t.span[keep], t.parent[keep], t.cols[keep], t.resources, t.scopes)


def compact_span_inputs(store: Any, index: Any, tenant: str, level: int, inputs: Sequence[Any], *,
                        hook: Callable[[str], None], now_ms: int | None = None) -> tuple[Any, int]:
    """Merge span segment ``inputs`` into one live segment of ``level``; return
    ``(new entry, input span rows)``. Raises :class:`InputsGone` (nothing changed) when
    an input vanished or is no longer live."""
    from fleetprof.metastore.index import SwapConflict

    tables = []
    for e in inputs:
        try:
            tables.append(decode(store.get(e.key)).table())
        except KeyError:
            raise InputsGone(f"input {e.segment_id} vanished (collected by a concurrent job)") from None
    hook("read")
    data, entry = encode_table(tenant, dedupe(concat_tables(tables)), level=level, now_ms=now_ms)
    hook("encoded")
    store.put(entry.key, data)
    hook("put")
    for e in inputs:
        cur = index.get(tenant, e.segment_id)
        if cur is None or cur.state != "live":
            store.delete(entry.key)
            raise InputsGone(f"input {e.segment_id} is no longer live")
    hook("before_swap")
    try:
        index.swap(tenant, entry, [e.segment_id for e in inputs])
    except SwapConflict as e:
        store.delete(entry.key)
        raise InputsGone(str(e)) from None
    hook("swapped")
    return entry, sum(e.samples for e in inputs)
