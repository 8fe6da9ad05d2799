"""The explorer in Chromium against a real, seeded server (see conftest.py): every feature
is driven through the page and checked on what the page shows (text, table rows, and the
flame-graph canvas's data-* attributes, which describe what it drew)."""

from __future__ import annotations

import gzip
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import polars as pl
import pytest
from explorerutil import (
    CPU,
    MARSHAL,
    PAYLOAD,
    QUERY_FN,
    SERVE,
    TOTAL,
    Seeded,
    guarded_page,
    screenshot,
)

from fleetprof.formats.detect import decode
from fleetprof.storage.objectstore import open_store
from workers.analysis_store import write_analysis_file

WIDTH = 1280
FLAME = "canvas.flame-canvas"


@pytest.fixture
def page(browser: object, seeded: Seeded) -> Iterator[object]:
    with guarded_page(browser, seeded.server.url, width=WIDTH, allow_blob=True, accept_downloads=True) as p:
        yield p


def goto(page: object, seeded: Seeded, qs: str, ready: str = FLAME + "[data-nodes]") -> None:
    page.goto(f"{seeded.server.url}/?{qs}")  # type: ignore[attr-defined]
    page.wait_for_selector(ready, timeout=15_000, state="attached")  # type: ignore[attr-defined]


def state(page: object) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)  # type: ignore[attr-defined]


def flame_attr(page: object, name: str, sel: str = FLAME) -> str:
    return page.get_attribute(sel, f"data-{name}") or ""  # type: ignore[attr-defined]


def wait_flame(page: object, name: str, predicate: str, sel: str = FLAME) -> None:
    """Wait until ``canvas.dataset[name]`` satisfies the JS expression ``predicate`` on ``v``."""
    page.wait_for_function(  # type: ignore[attr-defined]
        f"() => {{ const c = document.querySelector({json.dumps(sel)}); if (!c) return false; const v = c.dataset[{json.dumps(name)}]; return {predicate}; }}",
        timeout=15_000)


def table_names(page: object, testid: str = "top-table") -> list[str]:
    return page.eval_on_selector_all(f"[data-testid={testid}] tbody tr", "rows => rows.map(r => r.dataset.name)")  # type: ignore[attr-defined]


def node_centre(page: object, name: str, graph: str = "flame") -> dict[str, float]:
    return page.evaluate(  # type: ignore[attr-defined]
        "([n, g]) => { const v = window.fleetprofExplorer.views.single[g]; return v.centre(v.find(n)); }", [name, graph])


TOTAL_NS = 18_000_000_000  # checkout, last hour: 1 s per profile-set unit x 3 (eu 2, us 1) x 6


def test_pick_service_and_profile_type(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "service=checkout")
    assert flame_attr(page, "total") == str(TOTAL_NS)
    rows = table_names(page)
    assert rows[0] == MARSHAL  # sorted by self
    first = page.inner_text("[data-testid=top-table] tbody tr:first-child")  # type: ignore[attr-defined]
    assert "7.20 s" in first and "40.00%" in first
    assert state(page)["type"] == [CPU]
    screenshot(page, tmp_path, "single")
    page.select_option("[data-testid=service]", "search")  # type: ignore[attr-defined]
    wait_flame(page, "total", "v === '3600000000'")
    assert "app/index.py:lookup" in table_names(page)
    assert state(page)["service"] == ["search"]


def test_search_focus_breadcrumb_and_tooltip(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "service=checkout&layout=both")
    page.fill("[data-testid=search]", "json")  # type: ignore[attr-defined]
    wait_flame(page, "matched", "v === '40.00'")
    assert page.inner_text("[data-testid=matched]").startswith("40.00%")  # type: ignore[attr-defined]
    assert table_names(page) == [MARSHAL]  # the table follows the search
    page.fill("[data-testid=search]", "")  # type: ignore[attr-defined]
    wait_flame(page, "matched", "v === ''")
    c = node_centre(page, TOTAL)
    page.click(FLAME, position=c)  # type: ignore[attr-defined]
    wait_flame(page, "focus", f"v === {json.dumps(TOTAL)}")
    assert flame_attr(page, "focus-path") == f"main;{SERVE};{TOTAL}"
    crumbs = page.inner_text("[data-testid=breadcrumb]")  # type: ignore[attr-defined]
    assert crumbs.split() == ["total", "›", "main", "›", SERVE, "›", TOTAL] or TOTAL in crumbs
    assert state(page)["focus"] == [f"main;{SERVE};{TOTAL}"]
    # the focused node spans the width: its child Marshal is drawn 80% wide (400 of 500)
    m = node_centre(page, MARSHAL)
    page.mouse.move(0, 0)  # type: ignore[attr-defined]
    page.hover(FLAME, position=m)  # type: ignore[attr-defined]
    tip = page.wait_for_selector("[data-testid=flame-tooltip]:not([hidden])")  # type: ignore[attr-defined]
    text = tip.inner_text()
    assert MARSHAL in text and "self: 7.20 s (40.00%)" in text and "total: 7.20 s (40.00%)" in text
    screenshot(page, tmp_path, "focus-tooltip")
    page.click("[data-testid=breadcrumb] button:first-child")  # type: ignore[attr-defined]
    wait_flame(page, "focus", "v === ''")
    # a table row focuses the function's largest node
    page.click(f"[data-testid=top-table] tbody tr[data-name='{QUERY_FN}']")  # type: ignore[attr-defined]
    wait_flame(page, "focus", f"v === {json.dumps(QUERY_FN)}")
    page.keyboard.press("Escape")  # type: ignore[attr-defined]
    wait_flame(page, "focus", "v === ''")


def test_colour_modes_and_layouts(page: object, seeded: Seeded) -> None:
    goto(page, seeded, "service=checkout")
    pixels = "() => { const c = document.querySelector('canvas.flame-canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let s = 0; for (let i = 0; i < d.length; i += 4) s = (s * 31 + d[i] * 7 + d[i+1] * 3 + d[i+2]) % 1000000007; return s; }"
    before = page.evaluate(pixels)  # type: ignore[attr-defined]
    page.select_option("[data-testid=color]", "value")  # type: ignore[attr-defined]
    page.wait_for_function("() => location.search.includes('color=value')")  # type: ignore[attr-defined]
    assert page.evaluate(pixels) != before  # type: ignore[attr-defined]
    page.click("[data-testid=layout-table]")  # type: ignore[attr-defined]
    assert page.is_visible("[data-testid=top-table]") and not page.is_visible(FLAME)  # type: ignore[attr-defined]
    page.click("[data-testid=layout-flame]")  # type: ignore[attr-defined]
    assert page.is_visible(FLAME) and not page.is_visible("[data-testid=top-table]")  # type: ignore[attr-defined]


def test_sandwich_view(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "service=checkout")
    page.click(f"[data-testid=top-table] tbody tr[data-name='{TOTAL}']")  # type: ignore[attr-defined]
    page.click("[data-testid=layout-sandwich]")  # type: ignore[attr-defined]
    sw = page.wait_for_selector("[data-testid=sandwich]")  # type: ignore[attr-defined]
    assert sw.get_attribute("data-fn") == TOTAL
    callers = "[data-testid=sandwich] canvas[aria-label^=callers]"
    callees = "[data-testid=sandwich] canvas[aria-label^=callees]"
    wait_flame(page, "nodes", "v === '3'", callers)  # cart.Total <- serve <- main
    wait_flame(page, "nodes", "v === '3'", callees)  # cart.Total -> Marshal, mallocgc
    assert flame_attr(page, "total", callers) == flame_attr(page, "total", callees) == str(9_000_000_000)
    screenshot(page, tmp_path, "sandwich")


def test_brush_narrows_the_range(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "service=checkout")
    over = page.query_selector("[data-testid=timeline] .u-over").bounding_box()  # type: ignore[attr-defined]
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.55, y)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    page.mouse.move(over["x"] + over["width"] * 0.99, y, steps=8)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]
    page.wait_for_function("() => /from=\\d+/.test(location.search)")  # type: ignore[attr-defined]
    s = state(page)
    a, b = int(s["from"][0]), int(s["until"][0])
    assert 0 < b - a < 30 * 60_000
    wait_flame(page, "total", f"Number(v) > 0 && Number(v) < {TOTAL_NS}")
    assert page.input_value("[data-testid=range]") == "custom"  # type: ignore[attr-defined]
    screenshot(page, tmp_path, "brushed")
    page.go_back()  # type: ignore[attr-defined]
    wait_flame(page, "total", f"v === '{TOTAL_NS}'")


def test_group_by_timeline(page: object, seeded: Seeded) -> None:
    goto(page, seeded, "service=checkout&groupBy=region")
    page.wait_for_function("() => document.querySelector('[data-testid=timeline]').dataset.series === 'region=eu|region=us'")  # type: ignore[attr-defined]


def test_label_builder_autocomplete_and_regex_error(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "service=checkout&from=now-2h")
    page.click("[data-testid=labels-name]")  # type: ignore[attr-defined]
    page.wait_for_function("() => [...document.querySelectorAll('.labels datalist')[0].options].map(o => o.value).join() === 'region,version'")  # type: ignore[attr-defined]
    page.fill("[data-testid=labels-name]", "version")  # type: ignore[attr-defined]
    page.dispatch_event("[data-testid=labels-name]", "change")  # type: ignore[attr-defined]
    page.wait_for_function("() => [...document.querySelectorAll('.labels datalist')[1].options].map(o => o.value).join() === '1.4,1.5'")  # type: ignore[attr-defined]
    page.select_option("[data-testid=labels-op]", "=~")  # type: ignore[attr-defined]
    page.fill("[data-testid=labels-value]", "1\\.4")  # type: ignore[attr-defined]
    page.click("[data-testid=labels-add]")  # type: ignore[attr-defined]
    wait_flame(page, "total", "v === '12600000000'")  # 1.4 only: 700 ms x 3 x 6
    assert page.inner_text("[data-testid=labels-chips]").startswith('version=~"1\\\\.4"')  # type: ignore[attr-defined]
    page.fill("[data-testid=labels-name]", "region")  # type: ignore[attr-defined]
    page.select_option("[data-testid=labels-op]", "!~")  # type: ignore[attr-defined]
    page.fill("[data-testid=labels-value]", "(eu")  # type: ignore[attr-defined]
    page.press("[data-testid=labels-value]", "Enter")  # type: ignore[attr-defined]
    err = page.wait_for_selector("[data-testid=labels-error]:not([hidden])")  # type: ignore[attr-defined]
    assert "invalid regex for region" in err.inner_text()
    assert page.get_attribute("[data-testid=matcher]:nth-child(2)", "aria-invalid") == "true"  # type: ignore[attr-defined]
    screenshot(page, tmp_path, "regex-error")
    page.click("[data-testid=matcher]:nth-child(2) .chip-x")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=labels-error]", state="hidden")  # type: ignore[attr-defined]


def test_time_range_presets_and_absolute(page: object, seeded: Seeded) -> None:
    goto(page, seeded, "service=billing&from=now-3h")
    assert flame_attr(page, "total") == str(6 * 300_000_000)
    page.select_option("[data-testid=range]", "now-15m")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=empty]")  # type: ignore[attr-defined]
    assert page.inner_text("[data-testid=empty]") == "No data for this service in the last 15 minutes."  # type: ignore[attr-defined]
    page.select_option("[data-testid=range]", "custom")  # type: ignore[attr-defined]
    start = time.localtime(seeded.now_s - 2 * 3600)
    end = time.localtime(seeded.now_s - 3600)
    page.fill("[data-testid=from]", time.strftime("%Y-%m-%dT%H:%M:%S", start))  # type: ignore[attr-defined]
    page.fill("[data-testid=until]", time.strftime("%Y-%m-%dT%H:%M:%S", end))  # type: ignore[attr-defined]
    page.click("[data-testid=apply-range]")  # type: ignore[attr-defined]
    wait_flame(page, "total", f"v === '{6 * 300_000_000}'")
    assert re.fullmatch(r"\d+", state(page)["from"][0])
    assert page.inner_text("[data-testid=tz]")  # type: ignore[attr-defined]


def test_compare_and_diff(page: object, seeded: Seeded, tmp_path: Path) -> None:
    qs = 'view=compare&service=checkout&from=now-2h&m=version%3D%221.4%22&rm=version%3D%221.5%22'
    goto(page, seeded, qs, "[data-testid=diff-table] tbody tr")
    sec = page.query_selector("section.compare")  # type: ignore[attr-defined]
    assert sec.get_attribute("data-left-ticks") == str(12_600_000_000)
    assert sec.get_attribute("data-right-ticks") == str(TOTAL_NS)
    first = page.query_selector("[data-testid=diff-table] tbody tr:first-child")  # type: ignore[attr-defined]
    assert first.get_attribute("data-name") == MARSHAL
    cells = [c.inner_text() for c in first.query_selector_all("td")]
    assert cells[1:] == ["14.29%", "40.00%", "+25.71 pp"]
    assert "shrank" in page.inner_text("[data-testid=legend]") and "grew" in page.inner_text("[data-testid=legend]")  # type: ignore[attr-defined]
    assert page.is_visible("[data-testid=left-timeline] .u-over") and page.is_visible("[data-testid=right-timeline] .u-over")  # type: ignore[attr-defined]
    screenshot(page, tmp_path, "diff")
    grew = page.eval_on_selector(".legend .swatch:last-of-type", "e => e.style.background")  # type: ignore[attr-defined]
    page.select_option("[data-testid=palette]", "cb")  # type: ignore[attr-defined]
    page.wait_for_function("() => location.search.includes('palette=cb')")  # type: ignore[attr-defined]
    assert page.eval_on_selector(".legend .swatch:last-of-type", "e => e.style.background") != grew  # type: ignore[attr-defined]
    # the comparison side has its own brush: narrowing it changes only its range
    over = page.query_selector("[data-testid=right-timeline] .u-over").bounding_box()  # type: ignore[attr-defined]
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.6, y)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    page.mouse.move(over["x"] + over["width"] * 0.98, y, steps=6)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]
    page.wait_for_function("() => /rfrom=\\d+/.test(location.search)")  # type: ignore[attr-defined]
    assert state(page)["from"] == ["now-2h"]
    page.wait_for_function(f"() => Number(document.querySelector('section.compare').dataset.rightTicks) < {TOTAL_NS}")  # type: ignore[attr-defined]


def test_tag_explorer(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "view=tags&service=checkout", "[data-testid=tag-label] option[value=region]")
    page.select_option("[data-testid=tag-label]", "region")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=tag-table] tbody tr[data-value=us]")  # type: ignore[attr-defined]
    rows = page.eval_on_selector_all("[data-testid=tag-table] tbody tr", "rs => rs.map(r => [...r.cells].slice(0, 4).map(c => c.textContent))")  # type: ignore[attr-defined]
    assert [r[0] for r in rows] == ["eu", "us"]
    assert rows[0][1] == "12.00 s" and rows[0][3] == "66.67%" and rows[1][3] == "33.33%"
    assert page.get_attribute("[data-testid=timeline]", "data-series") == "eu|us"  # type: ignore[attr-defined]
    assert page.eval_on_selector_all("[data-testid=tag-shares] .share", "s => s.map(x => x.dataset.value)") == ["eu", "us"]  # type: ignore[attr-defined]
    screenshot(page, tmp_path, "tags")
    page.click("[data-testid=tag-table] tbody tr[data-value=us] [data-testid=open-flame]")  # type: ignore[attr-defined]
    wait_flame(page, "total", "v === '6000000000'")
    assert state(page)["m"] == ['region="us"'] and "view" not in state(page)


def test_fleet_view_empty_then_analysis(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "view=fleet&service=checkout", "[data-testid=fleet-empty]")
    assert "No fleet analysis yet" in page.inner_text("[data-testid=fleet-empty]")  # type: ignore[attr-defined]
    store = open_store(seeded.data.as_uri())

    def parquet(df: pl.DataFrame) -> bytes:
        import io

        buf = io.BytesIO()
        df.write_parquet(buf)
        return buf.getvalue()

    window = "20261204T0000Z-1d"
    tables = {
        "cost_services": pl.DataFrame({"service": ["checkout"], "cpu_seconds": [18.0], "avg_vcpus": [0.005], "usd_month": [0.12]}),
        "cost_functions": pl.DataFrame({"service": ["checkout"], "function": [MARSHAL], "cpu_seconds": [7.2], "avg_vcpus": [0.002], "usd_month": [0.05], "share": [0.4]}),
        "regressions": pl.DataFrame({"kind": ["version"], "profile_type": [CPU], "service": ["checkout"], "function": [MARSHAL], "base": ["1.4"], "candidate": ["1.5"],
                                     "base_value": [1.8], "cand_value": [7.2], "base_share": [0.1429], "cand_share": [0.4], "delta_share": [0.2571], "ratio": [2.8]}),
        "recommendations": pl.DataFrame({"rule_id": ["json"], "category": ["json"], "service": ["checkout"], "profile_type": [CPU], "share": [0.4], "threshold": [0.1],
                                         "value": [7.2], "top_functions": [[MARSHAL]], "example_stack": ["main;" + MARSHAL], "advice": ["<b>use a faster encoder</b>"]}),
    }
    for name, df in tables.items():
        write_analysis_file(store, "anonymous", window, f"{name}.parquet", parquet(df))
    write_analysis_file(store, "anonymous", window, "summary.json", json.dumps({"services": ["checkout"]}).encode())
    page.reload()  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=fleet-regressions] tbody tr")  # type: ignore[attr-defined]
    assert window in page.inner_text("[data-testid=fleet-window]")  # type: ignore[attr-defined]
    assert MARSHAL in page.inner_text("[data-testid=fleet-cost_functions]")  # type: ignore[attr-defined]
    advice = page.inner_text("[data-testid=fleet-recommendations]")  # type: ignore[attr-defined]
    assert "<b>use a faster encoder</b>" in advice  # shown as text
    screenshot(page, tmp_path, "fleet")
    page.click("[data-testid=fleet-regressions] tbody tr a.open")  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=diff-table] tbody tr")  # type: ignore[attr-defined]
    s = state(page)
    assert s["view"] == ["compare"] and s["m"] == ['version="1.4"'] and s["rm"] == ['version="1.5"'] and s["search"] == [MARSHAL]


def _download(page: object, fmt: str) -> bytes:
    with page.expect_download() as info:  # type: ignore[attr-defined]
        page.click(f"[data-testid=export-{fmt}]")  # type: ignore[attr-defined]
    return Path(info.value.path()).read_bytes()


def test_exports_parse(page: object, seeded: Seeded) -> None:
    goto(page, seeded, "service=checkout")
    prof = decode(gzip.decompress(_download(page, "pprof")) if True else b"", "pprof")
    assert int(prof.totals()[0]) == TOTAL_NS
    folded = _download(page, "folded").decode()
    assert sum(int(line.rpartition(" ")[2]) for line in folded.splitlines() if line) == TOTAL_NS
    speed = json.loads(_download(page, "speedscope"))
    assert speed["$schema"].startswith("https://www.speedscope.app/") and speed["profiles"]
    fb = json.loads(_download(page, "flamebearer"))
    assert fb["flamebearer"]["numTicks"] == TOTAL_NS and MARSHAL in fb["flamebearer"]["names"]
    svg = ET.fromstring(_download(page, "svg"))
    assert svg.tag.endswith("svg")
    assert b"<html" in _download(page, "html").lower()
    png = _download(page, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") >= WIDTH // 2


def test_share_url_round_trip(page: object, browser: object, seeded: Seeded) -> None:
    goto(page, seeded, "service=checkout&from=now-2h")
    page.fill("[data-testid=labels-name]", "version")  # type: ignore[attr-defined]
    page.fill("[data-testid=labels-value]", "1.5")  # type: ignore[attr-defined]
    page.click("[data-testid=labels-add]")  # type: ignore[attr-defined]
    wait_flame(page, "total", f"v === '{TOTAL_NS}'")
    page.fill("[data-testid=search]", "malloc")  # type: ignore[attr-defined]
    page.click(FLAME, position=node_centre(page, TOTAL))  # type: ignore[attr-defined]
    wait_flame(page, "focus", f"v === {json.dumps(TOTAL)}")
    page.click("[data-testid=share]")  # type: ignore[attr-defined]
    url = page.wait_for_selector("[data-testid=share][data-url]").get_attribute("data-url")  # type: ignore[attr-defined]
    other = browser.new_page(viewport={"width": WIDTH, "height": 900})  # type: ignore[attr-defined]
    try:
        other.goto(url)
        other.wait_for_function(f"() => document.querySelector('{FLAME}')?.dataset.focus === {json.dumps(TOTAL)}", timeout=15_000)
        for attr in ("total", "focus-path", "matched"):
            assert flame_attr(other, attr) == flame_attr(page, attr), attr
        assert other.input_value("[data-testid=search]") == "malloc"
        assert other.inner_text("[data-testid=labels-chips]") == page.inner_text("[data-testid=labels-chips]")  # type: ignore[attr-defined]
        assert other.input_value("[data-testid=service]") == "checkout"
    finally:
        other.close()


def test_error_states(page: object, seeded: Seeded) -> None:
    goto(page, seeded, "service=checkout&m=region%3D~%22%5B%22", "[data-testid=labels-error]:not([hidden])")
    assert "invalid regex" in page.inner_text("[data-testid=labels-error]")  # type: ignore[attr-defined]
    goto(page, seeded, "service=nosuch", "[data-testid=empty]")
    assert page.inner_text("[data-testid=empty]") == "No data for this service in the last hour."  # type: ignore[attr-defined]


def test_keyboard_theme_and_width(page: object, seeded: Seeded, tmp_path: Path) -> None:
    goto(page, seeded, "service=checkout")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= WIDTH  # type: ignore[attr-defined]
    page.keyboard.press("t")  # type: ignore[attr-defined]
    assert page.get_attribute("html", "data-theme") == "dark"  # type: ignore[attr-defined]
    screenshot(page, tmp_path, "dark")
    page.keyboard.press("?")  # type: ignore[attr-defined]
    assert page.is_visible("[data-testid=shortcuts]")  # type: ignore[attr-defined]
    page.keyboard.press("?")  # type: ignore[attr-defined]
    page.keyboard.press("2")  # type: ignore[attr-defined]
    page.wait_for_function("() => location.search.includes('layout=table')")  # type: ignore[attr-defined]
    page.keyboard.press("/")  # type: ignore[attr-defined]
    assert page.evaluate("() => document.activeElement.dataset.testid") == "search"  # type: ignore[attr-defined]
    page.keyboard.press("Escape")  # type: ignore[attr-defined]
    page.keyboard.press("g")  # type: ignore[attr-defined]
    page.wait_for_function("() => location.search.includes('view=tags')")  # type: ignore[attr-defined]
    page.keyboard.press("t")  # type: ignore[attr-defined]
    assert page.get_attribute("html", "data-theme") == "light"  # type: ignore[attr-defined]


def test_server_strings_are_text(page: object, seeded: Seeded) -> None:
    goto(page, seeded, "view=tags&service=evil&groupBy=region", "[data-testid=tag-table] tbody tr")
    assert page.inner_text("[data-testid=tag-table] tbody tr td.fn") == PAYLOAD  # type: ignore[attr-defined]
    goto(page, seeded, "service=evil&search=img")
    assert table_names(page) == [PAYLOAD]
    page.hover(FLAME, position=node_centre(page, PAYLOAD))  # type: ignore[attr-defined]
    assert PAYLOAD in page.inner_text("[data-testid=flame-tooltip]")  # type: ignore[attr-defined]
    assert page.evaluate("() => window.__xss") is None and not page.query_selector("img")  # type: ignore[attr-defined]
