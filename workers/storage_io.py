"""Reading and writing segments for the workers (thin layer over the data-path modules).

* :func:`open_backends` opens the store and index from URLs (each Ray task opens its own:
  nothing large travels through the driver).
* :func:`analysis_url` / :func:`open_analysis_store`: where analyses are written and read
  (``FLEETPROF_ANALYSIS``, e.g. ``s3://analysis-bucket/``); unset, the profile store.
* :func:`read_dataset` loads the live segments of a tenant overlapping ``[start, end)`` as a
  :class:`~workers.dataset.Dataset`, keeping only samples inside the range (Parquet row
  groups are pruned by time).
* :func:`write_l0` seeds L0 segments exactly as the ingest path writes them (tests,
  notebooks, benchmarks).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from workers.dataset import Dataset, concat

DEFAULT_STORAGE = "file://" + os.path.abspath(".fleetprof/data")
DEFAULT_INDEX = "sqlite://" + os.path.abspath(".fleetprof/index.db")


def storage_urls(storage: str | None = None, index: str | None = None) -> tuple[str, str]:
    """Explicit URLs, else ``FLEETPROF_STORAGE``/``FLEETPROF_INDEX``, else the embedded default."""
    return (
        storage or os.environ.get("FLEETPROF_STORAGE") or DEFAULT_STORAGE,
        index or os.environ.get("FLEETPROF_INDEX") or DEFAULT_INDEX,
    )


def analysis_url(explicit: str | None = None) -> str | None:
    """The analysis store URL: ``explicit``, else ``FLEETPROF_ANALYSIS``, else ``None`` (the
    profile store holds the analyses)."""
    return explicit or os.environ.get("FLEETPROF_ANALYSIS") or None


def open_analysis_store(url: str | None, profile_store: Any) -> Any:
    """The store at ``url``, or ``profile_store`` when ``url`` is ``None``."""
    from fleetprof.storage.objectstore import open_store

    return profile_store if url is None else open_store(url)


def open_backends(storage_url: str, index_url: str, env: Mapping[str, str] | None = None) -> tuple[Any, Any]:
    """``(store, index)`` for URLs; ``env`` (e.g. ``AWS_ENDPOINT_URL``) is applied first so a
    Ray task on another process sees the same endpoints as the driver."""
    from fleetprof.metastore.index import open_index
    from fleetprof.storage.objectstore import open_store

    for k, v in (env or {}).items():
        os.environ[k] = v
    return open_store(storage_url), open_index(index_url)


def backend_env() -> dict[str, str]:
    """The environment variables a task needs to reach the same backends."""
    keys = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION",
            "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "FLEETPROF_STORAGE", "FLEETPROF_INDEX", "FLEETPROF_ANALYSIS", "FLEETPROF_ANOMALY_TOPIC_ARN")
    return {k: os.environ[k] for k in keys if k in os.environ}


def segment_dataset(data: bytes, start_ms: int | None = None, end_ms: int | None = None) -> Dataset:
    """Decode one segment object into a dataset (optionally only samples in ``[start, end)``)."""
    from fleetprof.segment.format import decode_segment

    seg = decode_segment(data)
    filters = None
    if start_ms is not None and end_ms is not None:
        filters = [("time_ms", ">=", int(start_ms)), ("time_ms", "<=", int(end_ms) - 1)]
    samples = seg.samples(filters=filters)
    labels = seg.labels().rename({"series_id": "labels"})
    return Dataset(samples, labels, seg.nodes(), seg.frames())


def read_dataset(store: Any, index: Any, tenant: str, start_ms: int, end_ms: int, *,
                 services: Sequence[str] | None = None) -> Dataset:
    """Live data of ``tenant`` in ``[start_ms, end_ms)`` (see module docstring)."""
    entries = index.query(tenant, start_ms, end_ms - 1, services=services)
    parts = []
    for e in entries:
        try:
            data = store.get(e.key)
        except KeyError:
            continue  # compacted and collected between the index read and the get
        ds = segment_dataset(data, start_ms, end_ms)
        if services is not None:
            keep = ds.series.filter((pl.col("key") == "service_name") & pl.col("value").is_in(list(services)))["labels"]
            ds = ds.filter_samples(pl.col("series_id").is_in(keep.implode()))
        parts.append(ds)
    return concat(parts)


def write_l0(store: Any, index: Any, tenant: str, items: Iterable[Any], *, per_segment: int = 50,
             by_time: bool = True) -> int:
    """Write items as L0 segments of ``per_segment`` items (sorted by time, like flushes);
    return the number of segments written."""
    from fleetprof.segment.writer import encode_items

    items = sorted(items, key=lambda it: it.time_ms) if by_time else list(items)
    n = 0
    for i in range(0, len(items), per_segment):
        data, entry = encode_items(tenant, items[i:i + per_segment])
        store.put(entry.key, data)
        index.add(entry)
        n += 1
    return n
