"""CPU time -> money: $/month per service and per function, from *measured* durations.

A CPU profile's values are CPU nanoseconds (sample count × sampling period), so the CPU a
service burnt is their sum. The time it burnt it in is **measured from the profiles**, not
taken from the analysis window: each series (one process) pushes one profile per upload
interval; a profile stamped ``t`` covers ``[t, t + interval)``, where the interval is the
median gap between the series' consecutive profiles (a series with one profile takes its
service's median interval, else :data:`DEFAULT_INTERVAL_S`, pyroscope agents' default). The
service's ``observed_seconds`` is the length of the union of those spans, clipped to the
window. Then::

    avg_vcpus = cpu_seconds / observed_seconds
    usd_month = avg_vcpus × HOURS_PER_MONTH × vcpu_hour_usd

so a service profiled for ten minutes of an hour is priced at the rate it burnt CPU in those
ten minutes (not diluted by the 50 minutes without data), and ``complete`` says whether the
profiles covered the window (``coverage >= COMPLETE_COVERAGE``). The default price is an
on-demand x86 vCPU-hour (c6i.large: $0.085/h for 2 vCPUs in us-east-1); pass
``--vcpu-hour-usd`` for your own (spot, Graviton, committed use).
"""

from __future__ import annotations

import polars as pl

DEFAULT_VCPU_HOUR_USD = 0.0425
HOURS_PER_MONTH = 730.0
DEFAULT_INTERVAL_S = 10.0
COMPLETE_COVERAGE = 0.95
"""A window is complete when its profiles cover at least this fraction of it."""

DURATION_SCHEMA = {"service": pl.Utf8, "observed_seconds": pl.Float64, "profiles": pl.UInt32, "interval_seconds": pl.Float64}


def observed_durations(profiles: pl.DataFrame, *, start_ms: int, end_ms: int,
                       default_interval_s: float = DEFAULT_INTERVAL_S) -> pl.DataFrame:
    """Measured profile time per service (see module docstring).

    ``profiles``: ``service, series_id, time_ms`` (duplicates allowed: one row per sample
    is fine). Returns ``service, observed_seconds, profiles, interval_seconds`` (the
    service's median upload interval)."""
    p = profiles.select("service", "series_id", "time_ms").unique().sort("service", "series_id", "time_ms")
    if p.height == 0:
        return pl.DataFrame(schema=DURATION_SCHEMA)
    gaps = p.with_columns(pl.col("time_ms").diff().over("service", "series_id").alias("gap")).filter(pl.col("gap") > 0)
    per_series = gaps.group_by("service", "series_id").agg(pl.col("gap").median().alias("interval"))
    per_service = gaps.group_by("service").agg(pl.col("gap").median().alias("svc_interval"))
    fallback = float(default_interval_s) * 1000.0
    spans = (
        p.join(per_series, on=["service", "series_id"], how="left")
        .join(per_service, on="service", how="left")
        .with_columns(pl.coalesce("interval", "svc_interval", pl.lit(fallback)).alias("interval"))
        .with_columns(
            pl.col("time_ms").clip(start_ms, end_ms).cast(pl.Float64).alias("s"),
            (pl.col("time_ms") + pl.col("interval")).clip(start_ms, end_ms).cast(pl.Float64).alias("e"),
        )
        .sort("service", "s", "e")
    )
    # union of intervals per service: each span contributes what lies past the furthest end so far
    union = spans.with_columns(pl.col("e").cum_max().shift(1).over("service").alias("reach")).with_columns(
        (pl.col("e") - pl.max_horizontal("s", pl.col("reach").fill_null(float("-inf")))).clip(lower_bound=0).alias("len")
    )
    out = union.group_by("service").agg(
        (pl.col("len").sum() / 1000.0).alias("observed_seconds"),
        pl.len().cast(pl.UInt32).alias("profiles"),
        (pl.col("interval").median() / 1000.0).alias("interval_seconds"),
    )
    return out.select(list(DURATION_SCHEMA)).cast(DURATION_SCHEMA).sort("service")  # type: ignore[arg-type]


def cost_tables(self_values: pl.DataFrame, durations: pl.DataFrame, *, window_s: float,
                vcpu_hour_usd: float = DEFAULT_VCPU_HOUR_USD) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(services, functions)`` cost tables from ``service, [version,] function, value`` (CPU ns)
    and :func:`observed_durations`.

    services: ``service, cpu_seconds, observed_seconds, window_seconds, coverage, complete,
    avg_vcpus, usd_month``; functions: ``service, function, cpu_seconds, avg_vcpus, usd_month,
    share`` (of its service). A service without measured time falls back to the window."""
    fn = self_values.group_by("service", "function").agg(pl.col("value").sum())
    dur = durations.select("service", "observed_seconds")
    per_second = pl.col("value").cast(pl.Float64) / 1e9 / pl.col("observed_seconds")
    cols = [
        (pl.col("value").cast(pl.Float64) / 1e9).alias("cpu_seconds"),
        per_second.alias("avg_vcpus"),
        (per_second * HOURS_PER_MONTH * vcpu_hour_usd).alias("usd_month"),
    ]

    def timed(df: pl.DataFrame) -> pl.DataFrame:
        return df.join(dur, on="service", how="left").with_columns(
            pl.when(pl.col("observed_seconds") > 0).then(pl.col("observed_seconds")).otherwise(pl.lit(max(window_s, 1e-9)))
            .alias("observed_seconds")
        )

    services = (
        timed(fn.group_by("service").agg(pl.col("value").sum()))
        .with_columns(*cols, pl.lit(float(window_s)).alias("window_seconds"))
        .with_columns((pl.col("observed_seconds") / max(window_s, 1e-9)).clip(upper_bound=1.0).alias("coverage"))
        .with_columns((pl.col("coverage") >= COMPLETE_COVERAGE).alias("complete"))
        .select("service", "cpu_seconds", "observed_seconds", "window_seconds", "coverage", "complete", "avg_vcpus", "usd_month")
        .sort(["usd_month", "service"], descending=[True, False])
    )
    functions = (
        timed(fn)
        .with_columns(*cols, (pl.col("value") / pl.col("value").sum().over("service")).alias("share"))
        .select("service", "function", "cpu_seconds", "avg_vcpus", "usd_month", "share")
        .sort(["usd_month", "function"], descending=[True, False])
    )
    return services, functions


def cost_note(services: pl.DataFrame) -> str:
    """One sentence for the report: whether the window's profiles covered it, and how the
    monthly figures were extrapolated (empty when there is no CPU data)."""
    if services.height == 0:
        return ""
    window = float(services["window_seconds"][0])
    incomplete = services.filter(~pl.col("complete"))
    if incomplete.height == 0:
        return f"Profiles cover the whole window ({window / 60:.0f} min); $/month = measured vCPU × 730 h."
    parts = ", ".join(f"{s} {o / 60:.1f} min" for s, o in incomplete.select("service", "observed_seconds").iter_rows())
    return (f"Window incomplete: profiles cover only part of the {window / 60:.0f} min window ({parts}); "
            "$/month extrapolates the CPU rate measured while profiles were collected.")
