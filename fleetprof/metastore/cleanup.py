"""Garbage collection of segment objects: orphans (object without index entry) and retention.

Both cover every kind of segment (profiles and spans).

* :func:`collect_orphans` deletes ``segments/…`` objects that no index entry references and
  whose segment id is older than ``older_than_s`` (younger ones may belong to a flush whose
  ``index.add`` is still in flight). Safe to run at any time, from any process.
  Every index entry counts as a reference, whatever its time range (data stamped far in
  the future or before the epoch included).
* :func:`apply_retention` deletes a tenant's segments whose data ends before
  ``older_than_ms``: the entry is first tombstoned (queries stop seeing it), then the object
  is deleted, then the entry. A crash in between leaves a tombstone that a re-run finishes.

Retention ages a segment by the end of its data (``max_time_ms``), except for data stamped
beyond the horizon (more than ``horizon_ms``, default one day, after now): such times say
nothing about the data's age (a skewed clock, a forged request), so that segment is aged by
when it was written (``created_ms``, else its segment id's time) and is deleted once it was
written before ``older_than_ms``. When the horizon reaches its data, it is aged by its data.
"""

from __future__ import annotations

import logging
import time

from fleetprof.metastore.index import ALL_STATES, Index, SegmentEntry
from fleetprof.segment.keys import parse_segment_key, segment_id_time_ms
from fleetprof.storage.objectstore import ObjectStore

log = logging.getLogger("fleetprof.metastore.cleanup")

ALL_TIME = (-(2**63), 2**63 - 1)
"""A time range (ms) that every index entry overlaps: int64's whole range."""
HORIZON_MS = 86_400_000
"""How far past now data may be stamped and still be aged by its own times."""


def collect_orphans(store: ObjectStore, index: Index, older_than_s: float = 600.0, *, now_ms: int | None = None) -> list[str]:
    """Delete unreferenced segment objects older than ``older_than_s``; return their keys."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    by_tenant: dict[str, list[tuple[str, str]]] = {}
    for key in store.list("segments/"):
        parsed = parse_segment_key(key)
        if parsed is None:
            continue
        tenant, _level, sid = parsed
        try:
            created = segment_id_time_ms(sid)
        except ValueError:
            continue
        if now - created < older_than_s * 1000:
            continue
        by_tenant.setdefault(tenant, []).append((key, sid))
    removed: list[str] = []
    for tenant, objs in by_tenant.items():
        known = {e.key for e in index.query(tenant, *ALL_TIME, states=ALL_STATES, kind=None)}
        for key, _sid in objs:
            if key not in known:
                store.delete(key)
                removed.append(key)
                log.info("deleted orphan segment %s", key)
    return removed


def written_ms(entry: SegmentEntry) -> int:
    """When ``entry``'s segment was written: ``created_ms``, else its segment id's time."""
    if entry.created_ms > 0:
        return entry.created_ms
    try:
        return segment_id_time_ms(entry.segment_id)
    except ValueError:
        return 0


def expired(index: Index, tenant: str, older_than_ms: int, *, now_ms: int | None = None,
            horizon_ms: int = HORIZON_MS) -> list[SegmentEntry]:
    """``tenant``'s entries (any state) that retention deletes at ``older_than_ms`` (see the
    module docstring): data ending before it, and data beyond the horizon written before it."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    old = [e for e in index.query(tenant, ALL_TIME[0], older_than_ms - 1, states=ALL_STATES, kind=None)
           if e.max_time_ms < older_than_ms]
    beyond = index.query(tenant, now + horizon_ms + 1, ALL_TIME[1], states=ALL_STATES, kind=None)
    late = [e for e in beyond if e.max_time_ms > now + horizon_ms and written_ms(e) < older_than_ms]
    return list({e.segment_id: e for e in old + late}.values())


def apply_retention(store: ObjectStore, index: Index, tenant: str, older_than_ms: int, *,
                    now_ms: int | None = None, horizon_ms: int = HORIZON_MS) -> int:
    """Delete ``tenant``'s :func:`expired` segments; return how many."""
    n = 0
    for e in expired(index, tenant, older_than_ms, now_ms=now_ms, horizon_ms=horizon_ms):
        if e.state != "tombstoned" and not index.set_state(tenant, e.segment_id, e.state, "tombstoned"):
            continue  # changed under us (e.g. compacted concurrently); next run retries
        store.delete(e.key)
        index.delete(tenant, e.segment_id)
        n += 1
    return n
