"""CloudWatch metrics of the scheduled jobs (namespace ``Fleetprof/Jobs``).

* Job outcome: ``JobSucceeded`` or ``JobFailed`` (value 1, unit ``Count``) with dimensions
  ``Environment`` and ``Job`` (``compact``, ``analyze`` or ``retention``). The node's systemd
  units publish it after each run::

      python -m workers.job_metrics --job compact --status succeeded

* L0 backlog, published by the compaction job after each run: ``L0Segments`` (live L0
  segments, profiles and spans, unit ``Count``) and ``OldestL0AgeSeconds`` (age of the oldest live L0 segment
  by its creation time, unit ``Seconds``; 0 when there is none) with dimension ``Environment``.

Metrics are configured by ``FLEETPROF_ENVIRONMENT`` (the stack's environment, the value of
the ``Environment`` dimension the alarms watch). When it is unset (a laptop, a test run)
nothing is published: :func:`environment` returns ``None`` and the CLI prints one line to
stderr and exits 0, because an unconfigured metrics sink is not a job failure (the alarm on
missing ``JobSucceeded`` still notices a node where it is missing). A failed ``PutMetricData``
raises (the CLI exits 1). boto3 reads the standard AWS environment (region, credentials,
``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NAMESPACE = "Fleetprof/Jobs"
ENV_VAR = "FLEETPROF_ENVIRONMENT"
JOBS = ("compact", "analyze", "retention")
STATUS_METRIC = {"succeeded": "JobSucceeded", "failed": "JobFailed"}
L0_SEGMENTS = "L0Segments"
OLDEST_L0_AGE = "OldestL0AgeSeconds"


@dataclass(frozen=True)
class Datum:
    """One CloudWatch data point."""

    metric: str
    value: float
    unit: str
    dimensions: Mapping[str, str] = field(default_factory=dict)

    def to_aws(self) -> dict[str, Any]:
        """The ``MetricData`` element of ``PutMetricData``."""
        return {
            "MetricName": self.metric,
            "Value": float(self.value),
            "Unit": self.unit,
            "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(self.dimensions.items())],
        }


def environment(env: Mapping[str, str] | None = None) -> str | None:
    """The configured environment (``FLEETPROF_ENVIRONMENT``), ``None`` when unset or empty."""
    value = (os.environ if env is None else env).get(ENV_VAR, "").strip()
    return value or None


def publish(data: Sequence[Datum], *, namespace: str = NAMESPACE, client: Any = None) -> None:
    """Send ``data`` with ``PutMetricData`` (in requests of at most 1000 data points)."""
    if client is None:
        from fleetprof.storage.aws import client as aws_client

        client = aws_client("cloudwatch")
    items = [d.to_aws() for d in data]
    for i in range(0, len(items), 1000):
        client.put_metric_data(Namespace=namespace, MetricData=items[i:i + 1000])


def publish_metric(metric: str, value: float, unit: str, dimensions: Mapping[str, str], *,
                   namespace: str = NAMESPACE, client: Any = None) -> None:
    """Send one data point."""
    publish([Datum(metric, value, unit, dict(dimensions))], namespace=namespace, client=client)


def job_status_datum(job: str, status: str, env_name: str) -> Datum:
    """``JobSucceeded``/``JobFailed`` = 1 for ``job`` in ``env_name``; :class:`ValueError`
    for an unknown job or status."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}: expected one of {', '.join(JOBS)}")
    if status not in STATUS_METRIC:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(STATUS_METRIC)}")
    return Datum(STATUS_METRIC[status], 1.0, "Count", {"Environment": env_name, "Job": job})


def l0_backlog(index: Any, now_ms: int | None = None, tenants: Sequence[str] | None = None) -> tuple[int, float]:
    """``(live L0 segments, age in seconds of the oldest one by creation time)`` over
    ``tenants`` (default: all), profile and span segments alike (compaction merges both);
    ``(0, 0.0)`` when there is none."""
    from fleetprof.metastore.index import MAX_TIME_MS

    now = int(time.time() * 1000) if now_ms is None else now_ms
    created = [e.created_ms for t in (tenants or index.tenants()) for e in index.query(t, 0, MAX_TIME_MS, level=0, kind=None)
               if e.level == 0]
    if not created:
        return 0, 0.0
    return len(created), max(0.0, (now - min(created)) / 1000.0)


def l0_backlog_data(index: Any, env_name: str, now_ms: int | None = None) -> list[Datum]:
    """The two backlog data points of ``index`` (every tenant) for ``env_name``."""
    count, age = l0_backlog(index, now_ms)
    dims = {"Environment": env_name}
    return [Datum(L0_SEGMENTS, count, "Count", dims), Datum(OLDEST_L0_AGE, age, "Seconds", dims)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m workers.job_metrics --job <job> --status <succeeded|failed>`` (see the
    module docstring): 0 when published or not configured, 1 when publishing failed,
    2 for bad arguments."""
    p = argparse.ArgumentParser(prog="python -m workers.job_metrics",
                                description="Publish a job's outcome to CloudWatch (Fleetprof/Jobs).")
    p.add_argument("--job", required=True, choices=JOBS)
    p.add_argument("--status", required=True, choices=tuple(STATUS_METRIC))
    a = p.parse_args(argv)
    env_name = environment()
    if env_name is None:
        print(f"job_metrics: {ENV_VAR} is not set; nothing published", file=sys.stderr)
        return 0
    datum = job_status_datum(a.job, a.status, env_name)
    try:
        publish([datum])
    except Exception as e:  # noqa: BLE001 - any failure to publish is reported the same way
        print(f"job_metrics: publishing {datum.metric} for {a.job} failed: {e}", file=sys.stderr)
        return 1
    print(f"job_metrics: published {datum.metric}=1 (Environment={env_name}, Job={a.job})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
