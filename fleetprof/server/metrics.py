"""Prometheus metrics of one server process, on a private registry (so several apps can
live in one process, as in tests)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = tuple(float(1 << k) for k in range(10, 31, 2))


@dataclass
class Metrics:
    registry: CollectorRegistry
    ingest_requests: Counter
    ingest_bytes: Counter
    ingest_profiles: Counter
    ingest_samples: Counter
    ack_latency: Histogram
    flush_latency: Histogram
    flushes: Counter
    segment_bytes: Histogram
    query_latency: Histogram
    errors: Counter

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def create_metrics() -> Metrics:
    r = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=r,
        ingest_requests=Counter("fleetprof_ingest_requests", "Ingest requests by route and status", ["route", "status"], registry=r),
        ingest_bytes=Counter("fleetprof_ingest_bytes", "Ingest request body bytes (as received)", ["route"], registry=r),
        ingest_profiles=Counter("fleetprof_ingest_profiles", "Profiles (series x sample types) acknowledged", ["tenant"], registry=r),
        ingest_samples=Counter("fleetprof_ingest_samples", "Sample rows acknowledged", ["tenant"], registry=r),
        ack_latency=Histogram("fleetprof_ingest_ack_seconds", "Time from decoded request to durable ack (batching + segment flush + index)", buckets=LATENCY_BUCKETS, registry=r),
        flush_latency=Histogram("fleetprof_segment_flush_seconds", "Segment flush latency (encode + object put + index add)", buckets=LATENCY_BUCKETS, registry=r),
        flushes=Counter("fleetprof_segment_flushes", "Segment flushes by outcome", ["outcome"], registry=r),
        segment_bytes=Histogram("fleetprof_segment_bytes", "Size of written segment objects", buckets=SIZE_BUCKETS, registry=r),
        query_latency=Histogram("fleetprof_query_seconds", "Query latency by route", ["route"], buckets=LATENCY_BUCKETS, registry=r),
        errors=Counter("fleetprof_http_errors", "Error responses by status", ["status"], registry=r),
    )
