"""The analysis report a person reads: explained columns, readable numbers, charts sorted by
their figure, findings with $/month and explorer links, escaped strings — and a Chromium
screenshot of it (saved under the test's tmp dir)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workers import synth
from workers.analysis_store import read_analysis_file
from workers.analyze import analyze_window, parse_window
from workers.storage_io import open_backends, write_l0

CHROMIUM = "/usr/bin/chromium"
WINDOW = "2026-11-20T10"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("report")
    store, index = open_backends((root / "data").as_uri(), f"sqlite://{root / 'index.db'}")
    w = parse_window(WINDOW)
    items = synth.scenario_items(w.start_ms)
    hostile = {"main;<script>alert(1)</script>;json.dumps": 50_000_000}
    items += [synth.ingest_item({"service_name": "<b>evil</b>"}, synth.CPU, w.start_ms + 60_000 * i,
                                synth.profile_from_stacks(hostile, synth.CPU)) for i in range(3)]
    write_l0(store, index, "acme", items, per_segment=60)
    analyze_window(store, index, "acme", w, flame_graphs=True)
    return read_analysis_file(store, "acme", WINDOW, "report.html").decode()


def test_columns_explained_numbers_readable(report: str) -> None:
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", report)
    assert "self CPU %" in headers and "$/month" in headers and "vCPU" in headers
    assert not {"self_share", "normalized_share", "usd_month", "avg_vcpus"} & set(headers)
    assert re.search(r"\$[\d,]+\.\d\d</td>", report) and "vCPU</b> on average" in report
    assert "process_cpu:cpu:nanoseconds:cpu:nanoseconds</h3>" not in report


def test_charts_sorted_by_their_figure(report: str) -> None:
    for chart in re.findall(r"<svg xmlns[^>]*role=\"img\".*?</svg>", report):
        widths = [float(x) for x in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)"', chart)]
        assert widths == sorted(widths, reverse=True)


def test_strings_escaped(report: str) -> None:
    assert "<script>alert(1)" not in report and "<b>evil</b>" not in report
    assert "&lt;b&gt;evil&lt;/b&gt;" in report


def test_screenshot_in_chromium(report: str, tmp_path: Path) -> None:
    import playwright.sync_api as sync_api  # installed by make (.[dev]); missing = failure, not a skip
    page_file = tmp_path / "report.html"
    page_file.write_text(report)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page(viewport={"width": 1320, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
        page.goto(page_file.as_uri())
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert page.locator("h2", has_text="Findings and their cost").count() == 1
        b.close()
    assert not errors, errors
    assert (tmp_path / "report.png").stat().st_size > 10_000
