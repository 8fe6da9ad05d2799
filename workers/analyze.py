"""Fleet analysis job: ``python -m workers.analyze --window 2026-11-21 [--tenant T]``.

For each tenant and window it reads the window's and the previous window's live segments
(each Ray task reads its own), runs :func:`workers.analysis.analyze_dataset` and writes
``analysis/<tenant>/<window>/``: ``<table>.parquet`` for every table, ``report.html`` and
finally ``summary.json`` (its presence marks a complete window; reruns overwrite) in the
analysis store (``--analysis``/``FLEETPROF_ANALYSIS``; unset: the profile store).

Windows: ``YYYY-MM-DD`` (a UTC day), ``YYYY-MM-DDTHH`` (a UTC hour), or ``last-hour`` /
``last-day`` (the last complete UTC hour/day, for schedules); the previous window is the one
of the same length just before.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fleetprof import telemetry

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Window:
    """A named UTC time range ``[start_ms, end_ms)``."""

    name: str
    start_ms: int
    end_ms: int

    def previous(self) -> Window:
        length = self.end_ms - self.start_ms
        return window_at(self.start_ms - length, length)


def window_at(start_ms: int, length_ms: int) -> Window:
    t = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC)
    name = f"{t:%Y-%m-%d}" if length_ms == DAY_MS else f"{t:%Y-%m-%dT%H}"
    return Window(name, start_ms, start_ms + length_ms)


RELATIVE_WINDOWS = {"last-hour": HOUR_MS, "last-day": DAY_MS}
"""Relative window names: the last *complete* UTC hour or day before now."""


def parse_window(text: str, now_ms: int | None = None) -> Window:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH`` (UTC), or ``last-hour``/``last-day`` (the last
    complete UTC hour/day before ``now_ms``, default now) -> :class:`Window`;
    :class:`ValueError` otherwise."""
    if text in RELATIVE_WINDOWS:
        length = RELATIVE_WINDOWS[text]
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return window_at(now - now % length - length, length)
    for fmt, length in (("%Y-%m-%d", DAY_MS), ("%Y-%m-%dT%H", HOUR_MS)):
        try:
            t = dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return window_at(int(t.timestamp() * 1000), length)
    raise ValueError(f"bad window {text!r}: expected YYYY-MM-DD, YYYY-MM-DDTHH (UTC), last-hour or last-day")


def windows_between(start_ms: int, end_ms: int, length_ms: int = DAY_MS) -> list[Window]:
    """Consecutive windows of ``length_ms`` covering ``[start, end)`` (aligned to UTC)."""
    first = start_ms - start_ms % length_ms
    return [window_at(t, length_ms) for t in range(first, end_ms, length_ms)]


@dataclass(frozen=True)
class AnalyzeJob:
    """What an analysis task needs (small, picklable)."""

    storage_url: str
    index_url: str
    env: dict[str, str] = field(default_factory=dict)
    vcpu_hour_usd: float | None = None
    flame_graphs: bool = True
    analysis_url: str | None = None
    """Where the outputs go; ``None``: the profile store."""


def parquet_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd")
    return buf.getvalue()


def analyze_window(store: Any, index: Any, tenant: str, window: Window, *, vcpu_hour_usd: float | None = None,
                   flame_graphs: bool = True, out: Any = None) -> dict[str, Any]:
    """Analyse one (tenant, window) read from ``store`` and write its outputs to ``out``
    (default: ``store``); return the summary."""
    from fleetprof.model.prune import prune
    from workers.analysis import AnalysisConfig, analyze_dataset
    from workers.analysis_store import write_analysis_file
    from workers.dataset import to_profile
    from workers.report_html import render_report
    from workers.storage_io import read_dataset

    out = store if out is None else out
    prev_w = window.previous()
    ds = read_dataset(store, index, tenant, window.start_ms, window.end_ms)
    prev = read_dataset(store, index, tenant, prev_w.start_ms, prev_w.end_ms)
    cfg = AnalysisConfig() if vcpu_hour_usd is None else AnalysisConfig(vcpu_hour_usd=vcpu_hour_usd)
    res = analyze_dataset(ds, prev if prev.samples.height else None, tenant=tenant, window=window.name,
                          previous_window=prev_w.name, start_ms=window.start_ms, end_ms=window.end_ms, cfg=cfg)
    for name, df in res.tables.items():
        write_analysis_file(out, tenant, window.name, f"{name}.parquet", parquet_bytes(df))
    flames: dict[str, Any] = {}
    cpu = res.summary.get("cpu_profile_type")
    if flame_graphs and cpu:
        for service in res.summary["services"]:  # type: ignore[union-attr]
            prof = to_profile(ds, str(cpu), pl.col("service") == service)
            if prof.samples.height:
                flames[str(service)] = prune(prof, 0, max_nodes=2000)
    report = render_report(res.summary, res.tables, flames)
    write_analysis_file(out, tenant, window.name, "report.html", report.encode())
    write_analysis_file(out, tenant, window.name, "summary.json", json.dumps(res.summary, indent=1, default=str).encode())
    from workers.anomalies import notify_anomalies

    notify_anomalies(res.tables["anomalies"], tenant=tenant, window=window.name)  # only with FLEETPROF_ANOMALY_TOPIC_ARN set
    return res.summary


def run_task(job: AnalyzeJob, key: tuple[str, str]) -> dict[str, Any]:
    """Ray/serial task body for ``(tenant, window name)``: returns a small summary."""
    from workers.storage_io import open_analysis_store, open_backends

    store, index = open_backends(job.storage_url, job.index_url, job.env)
    out = open_analysis_store(job.analysis_url, store)
    tenant, wname = key
    s = analyze_window(store, index, tenant, parse_window(wname), vcpu_hour_usd=job.vcpu_hour_usd,
                       flame_graphs=job.flame_graphs, out=out)
    return {"tenant": tenant, "window": wname, "samples": s["samples"], "regressions": len(s["regressions"]),  # type: ignore[arg-type]
            "leak_suspects": len(s["leak_suspects"]), "recommendations": len(s["recommendations"])}  # type: ignore[arg-type]


@telemetry.job("analyze")
def run_analysis(storage_url: str, index_url: str, windows: Sequence[Window], *, tenants: Sequence[str] | None = None,
                 mode: str = "ray", max_in_flight: int | None = None, vcpu_hour_usd: float | None = None,
                 progress: bool = True, on_result: Any = None, skip: Any = None,
                 analysis_url: str | None = None) -> list[dict[str, Any]]:
    """One task per (tenant, window); ``skip(key)`` filters keys already done (backfill).
    Outputs go to ``analysis_url``, else ``FLEETPROF_ANALYSIS``, else the profile store."""
    from workers.parallel import run_tasks
    from workers.storage_io import analysis_url as resolve_analysis_url
    from workers.storage_io import backend_env, open_backends

    _store, index = open_backends(storage_url, index_url)
    keys = [(t, w.name) for t in (tenants or index.tenants()) for w in windows]
    if skip is not None:
        keys = [k for k in keys if not skip(k)]
    job = AnalyzeJob(storage_url, index_url, backend_env(), vcpu_hour_usd, analysis_url=resolve_analysis_url(analysis_url))
    return run_tasks(run_task, job, keys, mode=mode, max_in_flight=max_in_flight, label="analyze",
                     progress=progress, on_result=on_result)


AUTO_SERIAL_MAX_SAMPLES = 2_000_000
"""``--executor auto`` runs in-process below this many samples (in the windows analysed and
the windows they compare with): a local Ray's start-up then costs more than it saves (on the
demo's data: 32 s on Ray, 6 s serial)."""


@dataclass(frozen=True)
class WorkSize:
    """What the index says one (tenant, window) task will read."""

    segments: int = 0
    bytes: int = 0
    samples: int = 0

    def __add__(self, other: WorkSize) -> WorkSize:
        return WorkSize(self.segments + other.segments, self.bytes + other.bytes, self.samples + other.samples)


def work_size(index: Any, tenant: str, window: Window) -> WorkSize:
    """Live segments, bytes and samples of ``window`` for ``tenant`` (from the index only)."""
    out = WorkSize()
    for e in index.query(tenant, window.start_ms, window.end_ms):
        out += WorkSize(1, int(e.bytes), int(e.samples))
    return out


def choose_executor(requested: str, tasks: int, size: WorkSize, *, ray_address: str | None = None) -> tuple[str, str]:
    """``(mode, reason)``: ``requested`` unless it is ``auto``; ``auto`` picks Ray for a cluster
    address, else serial for a single task or fewer than :data:`AUTO_SERIAL_MAX_SAMPLES`
    samples (Ray only adds start-up time there), else Ray."""
    if requested != "auto":
        return requested, f"--executor {requested}"
    if ray_address or os.environ.get("RAY_ADDRESS"):
        return "ray", "auto: a Ray cluster address is given"
    what = f"{tasks} task{'s' if tasks != 1 else ''}, {size.samples:,} samples in {size.segments:,} segments ({size.bytes / 1e6:,.1f} MB)"
    if tasks <= 1:
        return "serial", f"auto: {what}; one task gains nothing from Ray's start-up"
    if size.samples < AUTO_SERIAL_MAX_SAMPLES:
        return "serial", f"auto: {what}, under {AUTO_SERIAL_MAX_SAMPLES:,} samples where Ray's start-up costs more than it saves"
    return "ray", f"auto: {what}"


def output_location(base_url: str, tenant: str, window: str, name: str) -> str:
    """Where an analysis file lands: the store URL joined with its key."""
    from workers.analysis_store import analysis_key

    return base_url.rstrip("/") + "/" + analysis_key(tenant, window, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring). Prints the executor it picked and why, one
    line per (tenant, window) with the report's location, and exit 0; with no profiles in
    the requested windows it says so in one line and exits 1 — 0 when every window is
    relative (``last-hour``/``last-day``: a schedule's empty window is no error) and the store
    holds profiles of some other time (an empty store is always an error)."""
    from workers.parallel import add_ray_args, init_ray
    from workers.storage_io import analysis_url as resolve_analysis_url
    from workers.storage_io import open_backends, storage_urls

    p = argparse.ArgumentParser(prog="python -m workers.analyze", description="Fleet-wide analysis of one window per tenant.")
    p.add_argument("--window", required=True, action="append", help="YYYY-MM-DD, YYYY-MM-DDTHH (UTC), last-hour or last-day; repeatable")
    p.add_argument("--tenant", action="append", help="only this tenant (repeatable; default: all)")
    p.add_argument("--storage"), p.add_argument("--index")
    p.add_argument("--analysis", help="analysis store URL (env FLEETPROF_ANALYSIS; default: the profile store)")
    p.add_argument("--vcpu-hour-usd", type=float, default=None, help="price of one vCPU-hour (default 0.0425)")
    p.add_argument("--executor", choices=("auto", "serial", "ray"), default="auto",
                   help=f"auto (default): serial for one task or under {AUTO_SERIAL_MAX_SAMPLES:,} samples, else Ray")
    p.add_argument("--json", action="store_true", help="also print the per-window summaries as JSON")
    add_ray_args(p)
    a = p.parse_args(argv)
    try:
        windows = [parse_window(w) for w in a.window]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    storage, index_url = storage_urls(a.storage, a.index)
    _store, index = open_backends(storage, index_url)
    tenants = a.tenant or index.tenants()
    sizes = {(t, w.name): work_size(index, t, w) for t in tenants for w in windows}
    todo = {k: v for k, v in sizes.items() if v.samples > 0}
    if not todo:
        names = ", ".join(w.name for w in windows)
        who = f"tenant(s) {', '.join(tenants)}" if tenants else "any tenant"
        print(f"nothing to analyse: no profiles for {who} in window(s) {names} in {storage}", file=sys.stderr)
        scheduled_gap = bool(index.tenants()) and all(w in RELATIVE_WINDOWS for w in a.window)
        return 0 if scheduled_gap else 1
    total = WorkSize()
    for (t, wname), v in todo.items():
        total += v + work_size(index, t, parse_window(wname).previous())
    mode, reason = choose_executor("serial" if a.serial else a.executor, len(todo), total, ray_address=a.ray_address)
    print(f"analyze: {len(todo)} window(s) on the {mode} executor ({reason})", flush=True)
    for t, wname in sorted(set(sizes) - set(todo)):
        print(f"skipped tenant {t} window {wname}: no profiles", flush=True)
    if mode == "ray":
        init_ray(a.ray_address, a.num_cpus)
    out = run_analysis(storage, index_url, windows, tenants=tenants, mode=mode, max_in_flight=a.max_in_flight,
                       vcpu_hour_usd=a.vcpu_hour_usd, analysis_url=a.analysis, skip=lambda k: k not in todo)
    base = resolve_analysis_url(a.analysis) or storage
    for r in out:
        print(f"tenant {r['tenant']} window {r['window']}: {r['samples']:,} samples, {r['recommendations']} recommendations, "
              f"{r['regressions']} regressions, {r['leak_suspects']} leak suspects -> "
              f"{output_location(base, r['tenant'], r['window'], 'report.html')}")
    if a.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
