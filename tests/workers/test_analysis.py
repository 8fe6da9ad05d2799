"""Fleet analysis on constructed profiles: known hotspots, regressions, leaks found, nothing else."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
from workers_support import T0  # type: ignore[import-not-found]

from workers import analysis, synth
from workers.analysis_store import list_analyses, read_analysis_file
from workers.analyze import analyze_window, parse_window
from workers.dataset import from_items
from workers.storage_io import open_backends, write_l0

START = T0 + 10 * 3_600_000  # 2026-11-20T10


@pytest.fixture(scope="module")
def scenario():
    ds = from_items(synth.scenario_items(START))
    cur = ds.filter_samples(pl.col("time_ms") >= START)
    prev = ds.filter_samples(pl.col("time_ms") < START)
    return cur, prev


def run(cur, prev, **kw):
    return analysis.analyze_dataset(cur, prev, tenant="t", window="cur", previous_window="prev",
                                    start_ms=START, end_ms=START + 3_600_000, **kw)


def test_known_findings_and_nothing_else(scenario) -> None:
    r = run(*scenario)
    t = r.tables
    exp = synth.SCENARIO_EXPECTED
    assert set(t["regressions"].select("kind", "service", "function").iter_rows()) == exp["regressions"]
    assert set(t["leaks"].select("service", "function").iter_rows()) == exp["leaks"]
    assert set(t["contention"].filter(pl.col("hotspot")).select("service", "function").iter_rows()) == exp["contention"]
    assert set(t["recommendations"].select("rule_id", "service").iter_rows()) == exp["recommendations"]
    assert set(r.summary["shared_hotspots"]) == exp["shared_hotspots"]
    rec = t["recommendations"].filter(pl.col("rule_id") == "tls-handshakes").row(0, named=True)
    assert "crypto/tls.(*Conn).Handshake" in rec["top_functions"] and rec["share"] == pytest.approx(0.08, abs=0.005)
    assert "Handshake" in rec["example_stack"]


def test_version_regression_details(scenario) -> None:
    reg = run(*scenario).tables["regressions"].filter(pl.col("kind") == "version").row(0, named=True)
    assert (reg["base"], reg["candidate"]) == ("v1", "v2")
    assert reg["base_share"] == pytest.approx(0.30, abs=0.01) and reg["cand_share"] == pytest.approx(0.55, abs=0.01)


def test_stable_window_flags_nothing(scenario) -> None:
    _cur, prev = scenario  # the previous hour alone: one version per service, no growth
    r = analysis.analyze_dataset(prev, prev, tenant="t", window="p", previous_window="p",
                                 start_ms=START - 3_600_000, end_ms=START)
    assert r.tables["regressions"].height == 0
    assert r.tables["leaks"].height == 0


def test_noise_floor_is_configurable(scenario) -> None:
    r = run(*scenario, cfg=analysis.AnalysisConfig(regression_min_delta=0.30))
    assert r.tables["regressions"].height == 0


def test_top_functions_and_normalisation(scenario) -> None:
    t = run(*scenario).tables["top_functions"]
    cpu = synth.CPU
    fleet = t.filter((pl.col("scope") == "*") & (pl.col("profile_type") == cpu))
    row = fleet.filter(pl.col("function") == "checkout.price").row(0, named=True)
    assert row["rank"] == 1
    assert row["normalized_share"] == pytest.approx(0.80 / 3, abs=0.01)  # 80% of one service of three
    svc = t.filter((pl.col("scope") == "search") & (pl.col("profile_type") == cpu))
    assert svc["function"].to_list()[:2] == ["index.Lookup", "regexp.(*Regexp).FindAllString"]


def test_cost_per_service_and_function(scenario) -> None:
    t = run(*scenario).tables
    api = t["cost_services"].filter(pl.col("service") == "api").row(0, named=True)
    assert api["usd_month"] == pytest.approx(synth.SCENARIO_EXPECTED["api_usd_month"], rel=1e-9)
    assert api["avg_vcpus"] == pytest.approx(2.0)
    doubled = run(*scenario, cfg=analysis.AnalysisConfig(vcpu_hour_usd=0.085)).tables["cost_services"]
    assert doubled.filter(pl.col("service") == "api")["usd_month"][0] == pytest.approx(2 * api["usd_month"])
    fn = t["cost_functions"].filter(pl.col("service") == "api")
    assert fn["usd_month"].sum() == pytest.approx(api["usd_month"])


def test_hot_paths(scenario) -> None:
    hp = run(*scenario).tables["hot_paths"]
    top = hp.filter((pl.col("service") == "checkout") & (pl.col("rank") == 1)).row(0, named=True)
    assert top["path"] == "main;checkout.Pay;checkout.price" and top["share"] == pytest.approx(0.8, abs=0.01)


def test_analysis_job_outputs(backend) -> None:
    store, index = open_backends(*backend)
    write_l0(store, index, "acme", synth.scenario_items(START), per_segment=40)
    w = parse_window("2026-11-20T10")
    assert w.start_ms == START
    summary = analyze_window(store, index, "acme", w)
    assert summary["window"] == "2026-11-20T10" and summary["services"] == ["api", "checkout", "search"]
    assert {(r["kind"], r["service"], r["function"]) for r in summary["regressions"]} == synth.SCENARIO_EXPECTED["regressions"]
    listed = list_analyses(store, "acme")
    assert [x["window"] for x in listed] == ["2026-11-20T10"]
    assert {"summary.json", "report.html", "regressions.parquet", "leaks.parquet", "cost_services.parquet"} <= set(listed[0]["files"])
    leaks = pl.read_parquet(io.BytesIO(read_analysis_file(store, "acme", w.name, "leaks.parquet")))
    assert leaks["function"].to_list() == ["cache.Put"]
    report = read_analysis_file(store, "acme", w.name, "report.html").decode()
    assert report.startswith("<!doctype html>") and "<svg" in report and "<iframe" in report
    assert "http://" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "").replace("http://www.w3.org", "")
    assert json.loads(read_analysis_file(store, "acme", w.name, "summary.json"))["tenant"] == "acme"
    with pytest.raises(KeyError):
        read_analysis_file(store, "acme", w.name, "nope.parquet")
    with pytest.raises(ValueError):
        read_analysis_file(store, "acme", "..", "summary.json")
