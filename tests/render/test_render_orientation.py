"""SVG and HTML flame graphs draw the same orientation (roots at the bottom by default,
at the top with ``icicle``), checked in a real Chromium; export titles read as service,
kind, selector and range."""

from __future__ import annotations

import pytest
from render_util import profile_of

from fleetprof.query.selector import parse_query
from fleetprof.render.html import render_html
from fleetprof.render.svg import render_svg
from fleetprof.render.titles import profile_kind, selection_title, time_range_text

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
STACKS = [(["app.main", "app.run", "db.query"], 30), (["app.main", "json.encode"], 40)]


@pytest.fixture(scope="module")
def browser():
    import playwright.sync_api as sync_api  # installed by make (.[dev]); missing = failure, not a skip
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def svg_y(page, name: str) -> float:
    return page.evaluate(
        """(name) => { for (const g of document.querySelectorAll('#frames > g')) {
             if (g.querySelector('title').textContent.split('\\n')[0] === name)
               return g.querySelector('rect').getBoundingClientRect().y; } return null; }""", name)


def html_y(page, name: str) -> float:
    return page.evaluate("(n) => window.flamegraph.frameBox(n).y", name)


@pytest.mark.parametrize("icicle", [False, True])
def test_svg_and_html_share_orientation(browser, tmp_path, icicle: bool) -> None:
    prof = profile_of(STACKS)
    page = browser.new_page(viewport={"width": 1240, "height": 500})
    try:
        (tmp_path / "fg.svg").write_text(render_svg(prof, 0, title="t", icicle=icicle))
        page.goto((tmp_path / "fg.svg").as_uri())
        svg_root_below = svg_y(page, "app.main") > svg_y(page, "db.query")
        (tmp_path / "fg.html").write_text(render_html(prof, 0, title="t", icicle=icicle))
        page.goto((tmp_path / "fg.html").as_uri())
        html_root_below = html_y(page, "app.main") > html_y(page, "db.query")
        assert page.evaluate("() => window.flamegraph.state().icicle") is icicle
        # clicking where frameBox says app.run is hits app.run in either orientation
        canvas = page.locator("#fg-canvas").bounding_box()
        box = page.evaluate("() => window.flamegraph.frameBox('app.run')")
        page.mouse.click(canvas["x"] + box["x"] + 3, canvas["y"] + box["y"] + 5)
        assert page.evaluate("() => window.flamegraph.state().zoom.name") == "app.run"
    finally:
        page.close()
    assert svg_root_below is (not icicle)
    assert html_root_below is (not icicle)


def test_selection_titles_name_service_selector_and_range() -> None:
    ptype, matchers = parse_query('process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="json-api",env="prod"}')
    start = 1_796_421_600_000  # 2026-12-04 22:00 UTC
    title = selection_title(ptype, matchers, start, start + 3_600_000)
    assert title == 'json-api · CPU time · env="prod" · 2026-12-04 22:00 → 23:00 UTC'
    assert ptype not in title
    assert profile_kind("memory:inuse_space:bytes:space:bytes") == "in-use memory"
    assert profile_kind("custom:thing:widgets::") == "custom thing (widgets)"
    assert time_range_text(start, start + 86_400_000 + 1_500) == "2026-12-04 22:00:00 → 2026-12-05 22:00:01 UTC"
    ptype, matchers = parse_query('process_cpu:cpu:nanoseconds:cpu:nanoseconds{}')
    assert selection_title(ptype, matchers, start, start + 60_000).startswith("all services · CPU time · ")
