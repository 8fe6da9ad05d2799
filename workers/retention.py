"""Retention job: expired segments and analyses, compacted inputs, orphan objects.

One pass per tenant (:func:`run_retention`), every step idempotent and crash-safe:

1. segments whose data ends before ``now - retention`` are tombstoned (queries stop seeing
   them), their objects deleted, then their entries; so are segments whose data lies beyond
   the horizon (more than a day after now) and that were written before ``now - retention``
   (:func:`fleetprof.metastore.cleanup.apply_retention`);
2. ``compacted`` inputs past the grace period are tombstoned and deleted
   (:func:`workers.compact.gc_compacted`);
3. analysis windows that ended before ``now - analysis_retention`` are deleted from the
   analysis store (``--analysis``/``FLEETPROF_ANALYSIS``; unset: the profile store);
4. segment objects no index entry references, older than the grace period, are deleted
   (a flush or compaction that crashed between ``put`` and the index write).

``python -m workers.retention --days 30 [--analysis-days 400] [--grace-s 600] [--analysis URL] [--dry-run]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from fleetprof import telemetry

DAY_MS = 86_400_000


def expired_analyses(store: Any, tenant: str, older_than_ms: int) -> list[str]:
    """Keys of analysis files of windows that ended before ``older_than_ms``."""
    from workers.analysis_store import PREFIX
    from workers.analyze import parse_window

    out = []
    for key in store.list(f"{PREFIX}/{tenant}/"):
        parts = key.split("/")
        if len(parts) != 4:
            continue
        try:
            w = parse_window(parts[2])
        except ValueError:
            continue
        if w.end_ms < older_than_ms:
            out.append(key)
    return out


@telemetry.job("retention")
def run_retention(store: Any, index: Any, *, retention_days: float, analysis_days: float | None = None,
                  grace_s: float = 600.0, now_ms: int | None = None, dry_run: bool = False,
                  tenants: Sequence[str] | None = None, analysis_store: Any = None) -> dict[str, Any]:
    """Apply retention to every tenant (see module docstring); analyses are expired in
    ``analysis_store`` (default: ``store``). Returns counts."""
    from fleetprof.metastore.cleanup import apply_retention, collect_orphans, expired
    from workers.compact import gc_compacted

    now = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff = now - int(retention_days * DAY_MS)
    a_cutoff = now - int((analysis_days if analysis_days is not None else retention_days) * DAY_MS)
    astore = store if analysis_store is None else analysis_store
    report: dict[str, Any] = {"cutoff_ms": cutoff, "tenants": {}}
    for tenant in tenants or index.tenants():
        if dry_run:
            doomed = expired(index, tenant, cutoff, now_ms=now)
            report["tenants"][tenant] = {"segments": len(doomed), "analysis_files": len(expired_analyses(astore, tenant, a_cutoff))}
            continue
        n = apply_retention(store, index, tenant, cutoff, now_ms=now)
        g = gc_compacted(store, index, tenant, grace_s=grace_s, now_ms=now)
        keys = expired_analyses(astore, tenant, a_cutoff)
        for k in sorted(keys, key=lambda k: k.endswith("summary.json"), reverse=True):  # summary first: window disappears
            astore.delete(k)
        report["tenants"][tenant] = {"segments": n, "compacted_removed": g, "analysis_files": len(keys)}
    if not dry_run:
        report["orphans"] = len(collect_orphans(store, index, older_than_s=grace_s, now_ms=now))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    from workers.storage_io import analysis_url, open_analysis_store, open_backends, storage_urls

    p = argparse.ArgumentParser(prog="python -m workers.retention", description="Delete expired segments and analyses.")
    p.add_argument("--days", type=float, required=True, help="keep segments whose data is younger than this")
    p.add_argument("--analysis-days", type=float, default=None, help="keep analyses this long (default: --days)")
    p.add_argument("--grace-s", type=float, default=600.0)
    p.add_argument("--tenant", action="append")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--storage"), p.add_argument("--index")
    p.add_argument("--analysis", help="analysis store URL (env FLEETPROF_ANALYSIS; default: the profile store)")
    a = p.parse_args(argv)
    store, index = open_backends(*storage_urls(a.storage, a.index))
    astore = open_analysis_store(analysis_url(a.analysis), store)
    print(json.dumps(run_retention(store, index, retention_days=a.days, analysis_days=a.analysis_days,
                                   grace_s=a.grace_s, dry_run=a.dry_run, tenants=a.tenant,
                                   analysis_store=astore), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
