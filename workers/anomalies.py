"""Anomalies over time (CodeGuru Profiler's anomaly reports): per service and function, a
time bucket whose self share departs from the function's recent baseline.

The analysis window is cut into ``anomaly_buckets`` equal buckets (an hour: 5 minutes), and
the same bucket width extends back over the previous window, so every bucket of the window
has up to ``anomaly_baseline`` buckets before it. For each (service, function) a bucket's
*share* is the function's self value over the service's total in that bucket (0 when the
function is absent from a bucket that has data). A bucket is **anomalous** when, against
the baseline buckets just before it (at least ``anomaly_min_baseline`` with data):

* ``|share - median| >= anomaly_min_delta`` (a floor in share points), and
* ``|share - median| >= anomaly_z × max(1.4826 × MAD, NOISE_FLOOR)`` — a robust z-score
  (median absolute deviation scaled to a normal's sigma; the floor keeps a perfectly flat
  baseline from flagging sampling noise).

Only rises are reported unless ``anomaly_drops`` is set: shares sum to one, so one function
jumping lowers every other one, and those drops are consequences, not findings.

Rows (:data:`ANOMALY_SCHEMA`) carry the bucket, the share, the baseline's median and MAD and
how many buckets it had, the robust z, the direction and a one-line evidence string, plus
an explorer link to the bucket. :func:`notify_anomalies` publishes them to an SNS topic.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import polars as pl

from fleetprof.analysis.frames import classify_frames
from workers.dataset import Dataset, concat

if TYPE_CHECKING:
    from workers.analysis import AnalysisConfig

NOISE_FLOOR = 0.01
TOPIC_ENV = "FLEETPROF_ANOMALY_TOPIC_ARN"
"""Environment variable naming the SNS topic anomaly notifications go to (unset: none sent)."""
MAX_NOTIFIED_ROWS = 50

ANOMALY_SCHEMA: dict[str, Any] = {
    "profile_type": pl.Utf8, "service": pl.Utf8, "function": pl.Utf8, "bucket_start_ms": pl.Int64,
    "bucket_end_ms": pl.Int64, "share": pl.Float64, "baseline_median": pl.Float64, "baseline_mad": pl.Float64,
    "baseline_buckets": pl.UInt32, "robust_z": pl.Float64, "delta_share": pl.Float64, "direction": pl.Utf8,
    "evidence": pl.Utf8, "flamegraph_url": pl.Utf8,
}


def bucket_shares(ds: Dataset, pt: str, origin_ms: int, width_ms: int) -> pl.DataFrame:
    """``service, bucket, function, share`` of self values per bucket (bucket = floor((t -
    origin) / width)), with zero rows for functions absent from a bucket that has data."""
    s = ds.samples.filter(pl.col("profile_type") == pt)
    if s.height == 0:
        return pl.DataFrame(schema={"service": pl.Utf8, "bucket": pl.Int64, "function": pl.Utf8, "share": pl.Float64})
    fr = classify_frames(ds.frames.select("frame_id", "name", "file")).select("frame_id", "function")
    leaf = ds.nodes.select("node_id", "frame_id").join(fr, on="frame_id").select("node_id", "function")
    rows = (
        s.join(ds.series_table(), on="series_id", how="left")
        .join(leaf, on="node_id", how="inner")
        .with_columns(((pl.col("time_ms") - origin_ms) // width_ms).alias("bucket"), pl.col("service").fill_null(""))
        .group_by("service", "bucket", "function").agg(pl.col("value").sum())
    )
    totals = rows.group_by("service", "bucket").agg(pl.col("value").sum().alias("total"))
    grid = totals.select("service", "bucket").join(rows.select("service", "function").unique(), on="service")
    return (
        grid.join(rows, on=["service", "bucket", "function"], how="left")
        .join(totals, on=["service", "bucket"])
        .with_columns((pl.col("value").fill_null(0) / pl.col("total")).alias("share"))
        .select("service", "bucket", "function", "share")
    )


def anomalies(ds: Dataset, previous: Dataset | None, pt: str, start_ms: int, end_ms: int, cfg: AnalysisConfig,
              *, tenant: str = "") -> pl.DataFrame:
    """Anomalous (service, function, bucket) rows of the window ``[start_ms, end_ms)`` (see module docstring)."""
    from workers.analysis import explorer_link

    n = max(int(cfg.anomaly_buckets), 1)
    width = max((end_ms - start_ms) // n, 1)
    both = concat([d for d in (previous, ds) if d is not None])
    both = both.filter_samples(pl.col("time_ms") >= start_ms - cfg.anomaly_baseline * width)
    shares = bucket_shares(both, pt, start_ms, width)
    out: list[pl.DataFrame] = []
    for b in range(n):
        cur = shares.filter(pl.col("bucket") == b)
        if cur.height == 0:
            continue
        base = shares.filter((pl.col("bucket") < b) & (pl.col("bucket") >= b - cfg.anomaly_baseline))
        # every function of a service has a row in each of its buckets with data (0 when absent)
        stats = (
            base.with_columns(pl.col("share").median().over("service", "function").alias("baseline_median"))
            .group_by("service", "function")
            .agg(pl.col("baseline_median").first(), (pl.col("share") - pl.col("baseline_median")).abs().median().alias("baseline_mad"),
                 pl.len().cast(pl.UInt32).alias("baseline_buckets"))
            .filter(pl.col("baseline_buckets") >= cfg.anomaly_min_baseline)
        )
        # a function first seen in this bucket has a zero baseline in its service's buckets
        nb = stats.group_by("service").agg(pl.col("baseline_buckets").max().alias("nb"))
        j = cur.join(nb, on="service").join(stats, on=["service", "function"], how="left").with_columns(
            pl.col("baseline_median").fill_null(0.0), pl.col("baseline_mad").fill_null(0.0),
            pl.col("baseline_buckets").fill_null(pl.col("nb")),
        )
        sigma = pl.max_horizontal(pl.col("baseline_mad") * 1.4826, pl.lit(NOISE_FLOOR))
        j = j.with_columns(
            (pl.col("share") - pl.col("baseline_median")).alias("delta_share"),
        ).with_columns((pl.col("delta_share") / sigma).alias("robust_z")).filter(
            (pl.col("delta_share").abs() >= cfg.anomaly_min_delta) & (pl.col("robust_z").abs() >= cfg.anomaly_z)
            & (pl.col("delta_share") > 0 if cfg.anomaly_drops is False else pl.lit(True))
        )
        if j.height == 0:
            continue
        b0, b1 = start_ms + b * width, start_ms + (b + 1) * width
        j = j.with_columns(
            pl.lit(pt).alias("profile_type"), pl.lit(b0, dtype=pl.Int64).alias("bucket_start_ms"),
            pl.lit(b1, dtype=pl.Int64).alias("bucket_end_ms"),
            pl.when(pl.col("delta_share") > 0).then(pl.lit("up")).otherwise(pl.lit("down")).alias("direction"),
        )
        j = j.with_columns(
            pl.Series("evidence", [
                f"self share {sh:.1%} vs baseline median {m:.1%} (MAD {mad:.1%}, {int(nb)} buckets before; robust z {z:+.1f})"
                for sh, m, mad, nb, z in j.select("share", "baseline_median", "baseline_mad", "baseline_buckets", "robust_z").iter_rows()
            ], dtype=pl.Utf8),
            pl.Series("flamegraph_url", [
                explorer_link(cfg.explorer_url, tenant=tenant, service=s, profile_type=pt, start_ms=b0, end_ms=b1, function=f)
                for s, f in j.select("service", "function").iter_rows()
            ], dtype=pl.Utf8),
        )
        out.append(j.select(list(ANOMALY_SCHEMA)).cast(ANOMALY_SCHEMA))
    if not out:
        return pl.DataFrame(schema=ANOMALY_SCHEMA)
    return pl.concat(out).sort(["service", "bucket_start_ms", "robust_z"], descending=[False, False, True])


def notify_anomalies(table: pl.DataFrame, *, tenant: str, window: str, topic_arn: str | None = None,
                     client: Any = None) -> str | None:
    """Publish ``table``'s anomalies to SNS (``topic_arn``, else ``$FLEETPROF_ANOMALY_TOPIC_ARN``);
    return the message id, or ``None`` when there is nothing to send or no topic. The message
    is JSON (``tenant, window, count, anomalies`` — at most :data:`MAX_NOTIFIED_ROWS` rows,
    heaviest |z| first) well under SNS's 256 KB limit."""
    arn = topic_arn or os.environ.get(TOPIC_ENV) or None
    if not arn or table.height == 0:
        return None
    if client is None:
        from fleetprof.storage.aws import client as aws_client

        client = aws_client("sns")  # region from AWS_REGION, as the stacks set it (boto3 alone reads only AWS_DEFAULT_REGION)
    rows = table.sort(pl.col("robust_z").abs(), descending=True).head(MAX_NOTIFIED_ROWS)
    body = {"tenant": tenant, "window": window, "count": table.height,
            "anomalies": rows.select("service", "function", "bucket_start_ms", "share", "baseline_median", "baseline_mad",
                                     "robust_z", "direction", "evidence", "flamegraph_url").to_dicts()}
    subject = f"fleetprof: {table.height} profile anomalies in {tenant}/{window}"
    subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:100]
    resp = client.publish(TopicArn=arn, Subject=subject, Message=json.dumps(body, default=str))
    return str(resp["MessageId"])
