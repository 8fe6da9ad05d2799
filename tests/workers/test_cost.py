"""Cost from measured profile durations: a partial window is priced at the rate measured while
profiles were collected and marked incomplete; several processes are a union of spans."""

from __future__ import annotations

import polars as pl
import pytest

from workers import analysis, synth
from workers.cost import COMPLETE_COVERAGE, cost_note, observed_durations
from workers.dataset import from_items

T0 = 1_795_132_800_000
HOUR = 3_600_000


def items(service: str, start_ms: int, n: int, *, step_s: int = 10, vcpus: float = 1.2, instance: str = "i0") -> list:
    per = int(vcpus * step_s * 1e9)
    return [synth.ingest_item({"service_name": service, "instance": instance}, synth.CPU, start_ms + k * step_s * 1000,
                              synth.profile_from_stacks({"main;json.dumps": per}, synth.CPU)) for k in range(n)]


def run(its: list) -> analysis.AnalysisResult:
    return analysis.analyze_dataset(from_items(its), None, tenant="t", window="w", previous_window="p", start_ms=T0, end_ms=T0 + HOUR)


def test_partial_hour_priced_at_measured_rate() -> None:
    """1.2 vCPU for 10 minutes of the hour: ≈ $37/month, not the hour-diluted $6.2."""
    r = run(items("demo", T0 + 600_000, 60))
    s = r.tables["cost_services"].row(0, named=True)
    assert s["observed_seconds"] == pytest.approx(600.0)
    assert s["avg_vcpus"] == pytest.approx(1.2)
    assert s["usd_month"] == pytest.approx(1.2 * 730 * 0.0425)  # 37.23
    assert s["complete"] is False and s["coverage"] == pytest.approx(600 / 3600)
    assert r.summary["cost_window_complete"] is False
    assert "Window incomplete" in r.summary["cost_note"] and "demo 10.0 min" in r.summary["cost_note"]


def test_full_window_complete_and_instances_in_parallel() -> None:
    its = items("api", T0, 360, vcpus=0.5, instance="a") + items("api", T0, 360, vcpus=0.5, instance="b")
    s = run(its).tables["cost_services"].row(0, named=True)
    assert s["observed_seconds"] == pytest.approx(3600.0) and s["complete"] is True
    assert s["avg_vcpus"] == pytest.approx(1.0)


def test_union_of_instances_in_sequence() -> None:
    """One instance the first half, its replacement the second: the whole hour is covered once."""
    its = items("api", T0, 180, instance="old") + items("api", T0 + HOUR // 2, 180, instance="new")
    s = run(its).tables["cost_services"].row(0, named=True)
    assert s["observed_seconds"] == pytest.approx(3600.0) and s["avg_vcpus"] == pytest.approx(1.2)


def test_interval_from_series_and_fallbacks() -> None:
    rows = pl.DataFrame({"service": ["a", "a", "a", "b", "c", "c"], "series_id": [1, 1, 1, 2, 3, 4],
                         "time_ms": [0, 15_000, 30_000, 0, 0, 60_000]}, schema={"service": pl.Utf8, "series_id": pl.UInt64, "time_ms": pl.Int64})
    d = {r["service"]: r for r in observed_durations(rows, start_ms=0, end_ms=HOUR).iter_rows(named=True)}
    assert d["a"]["observed_seconds"] == pytest.approx(45.0) and d["a"]["interval_seconds"] == pytest.approx(15.0)
    assert d["b"]["observed_seconds"] == pytest.approx(10.0)  # one profile: the default upload interval
    assert d["c"]["observed_seconds"] == pytest.approx(20.0)
    clipped = observed_durations(rows.filter(pl.col("service") == "a"), start_ms=20_000, end_ms=40_000)
    assert clipped["observed_seconds"][0] == pytest.approx(20.0)


def test_cost_note_complete() -> None:
    r = run(items("api", T0, 360))
    assert r.tables["cost_services"]["coverage"][0] >= COMPLETE_COVERAGE
    assert cost_note(r.tables["cost_services"]).startswith("Profiles cover the whole window")
