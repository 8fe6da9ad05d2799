"""CPU time -> money: $/month per service and per function.

A CPU profile's values are CPU nanoseconds consumed during the window, so
``avg_vcpus = cpu_seconds / window_seconds`` and
``usd_month = avg_vcpus × HOURS_PER_MONTH × vcpu_hour_usd``.
The default price is an on-demand compute-optimised x86 vCPU-hour (c6i.large: $0.085/h for
2 vCPUs in us-east-1); pass ``--vcpu-hour-usd`` for your own (spot, Graviton, committed use).
"""

from __future__ import annotations

import polars as pl

DEFAULT_VCPU_HOUR_USD = 0.0425
HOURS_PER_MONTH = 730.0


def monthly_usd(cpu_ns: pl.Expr, window_s: float, vcpu_hour_usd: float) -> pl.Expr:
    """Expression: $/month of a CPU-nanoseconds column sustained over a window of ``window_s``."""
    return cpu_ns.cast(pl.Float64) / 1e9 / max(window_s, 1e-9) * HOURS_PER_MONTH * vcpu_hour_usd


def cost_tables(self_values: pl.DataFrame, *, window_s: float, vcpu_hour_usd: float = DEFAULT_VCPU_HOUR_USD) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(services, functions)`` cost tables from ``service, [version,] function, value`` (CPU ns).

    services: ``service, cpu_seconds, avg_vcpus, usd_month``;
    functions: ``service, function, cpu_seconds, avg_vcpus, usd_month, share`` (of its service)."""
    fn = self_values.group_by("service", "function").agg(pl.col("value").sum())
    cols = [
        (pl.col("value").cast(pl.Float64) / 1e9).alias("cpu_seconds"),
        (pl.col("value").cast(pl.Float64) / 1e9 / max(window_s, 1e-9)).alias("avg_vcpus"),
        monthly_usd(pl.col("value"), window_s, vcpu_hour_usd).alias("usd_month"),
    ]
    services = fn.group_by("service").agg(pl.col("value").sum()).with_columns(cols).drop("value").sort("usd_month", descending=True)
    functions = (
        fn.with_columns(*cols, (pl.col("value") / pl.col("value").sum().over("service")).alias("share"))
        .drop("value")
        .sort(["usd_month", "function"], descending=[True, False])
    )
    return services, functions
