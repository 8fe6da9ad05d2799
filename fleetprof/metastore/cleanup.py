"""Garbage collection of segment objects: orphans (object without index entry) and retention.

* :func:`collect_orphans` deletes ``segments/…`` objects that no index entry references and
  whose segment id is older than ``older_than_s`` (younger ones may belong to a flush whose
  ``index.add`` is still in flight). Safe to run at any time, from any process.
* :func:`apply_retention` deletes a tenant's segments whose data ends before
  ``older_than_ms``: the entry is first tombstoned (queries stop seeing it), then the object
  is deleted, then the entry. A crash in between leaves a tombstone that a re-run finishes.
"""

from __future__ import annotations

import logging
import time

from fleetprof.metastore.index import ALL_STATES, MAX_TIME_MS, Index
from fleetprof.segment.keys import parse_segment_key, segment_id_time_ms
from fleetprof.storage.objectstore import ObjectStore

log = logging.getLogger("fleetprof.metastore.cleanup")


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
        known = {e.key for e in index.query(tenant, 0, MAX_TIME_MS, states=ALL_STATES)}
        for key, _sid in objs:
            if key not in known:
                store.delete(key)
                removed.append(key)
                log.info("deleted orphan segment %s", key)
    return removed


def apply_retention(store: ObjectStore, index: Index, tenant: str, older_than_ms: int) -> int:
    """Delete ``tenant``'s segments whose ``max_time_ms < older_than_ms``; return how many."""
    n = 0
    for e in index.query(tenant, 0, older_than_ms - 1, states=ALL_STATES):
        if e.max_time_ms >= older_than_ms:
            continue
        if e.state != "tombstoned" and not index.set_state(tenant, e.segment_id, e.state, "tombstoned"):
            continue  # changed under us (e.g. compacted concurrently); next run retries
        store.delete(e.key)
        index.delete(tenant, e.segment_id)
        n += 1
    return n
