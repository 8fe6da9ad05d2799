"""UI tests in a real Chromium (Debian /usr/bin/chromium via playwright): zoom, search with
matched %, tooltips, for the SVG and the HTML flame graphs. One browser for the module."""

from __future__ import annotations

import os
import shutil

import pytest
from render_util import profile_of

from fleetprof.render.html import render_html
from fleetprof.render.svg import render_svg

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM), reason="no chromium")

STACKS = [
    (["app.main", "app.run", "db.query.exec"], 30),
    (["app.main", "app.run", "db.query.fetch"], 10),
    (["app.main", "json.encode"], 40),
    (["app.main"], 5),
    (["gc.collect"], 15),
]  # total 100; db.* = 40 %


@pytest.fixture(scope="module")
def browser():
    import playwright.sync_api as sync_api  # installed by make (.[dev]); missing = failure, not a skip
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    pg = browser.new_page(viewport={"width": 1240, "height": 500})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, errors


def _rect(page, name):
    return page.evaluate(
        """(name) => { for (const g of document.querySelectorAll('#frames > g')) {
             const t = g.querySelector('title').textContent;
             if (t.split('\\n')[0] === name) { const r = g.querySelector('rect');
               return {x: +r.getAttribute('x'), w: +r.getAttribute('width'), shown: g.style.display !== 'none',
                       label: g.querySelector('text').textContent, title: t}; } } return null; }""",
        name,
    )


def test_svg_zoom_search_tooltip(page, tmp_path):
    path = tmp_path / "fg.svg"
    path.write_text(render_svg(profile_of(STACKS), 0, title="UI test"))
    page.goto(path.as_uri())
    before = _rect(page, "app.run")
    assert before["title"] == "app.run\n40 ns (40.00%)"
    assert abs(before["w"] - 0.4 * 1180 + 0.5) < 1
    # click app.run: it fills the width, its children are rescaled, gc.collect disappears
    box = page.locator("#frames > g", has_text="app.run").first.locator("rect").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    after = _rect(page, "app.run")
    assert after["w"] > 1170 and after["x"] == pytest.approx(10, abs=0.1)
    assert _rect(page, "db.query.exec")["w"] == pytest.approx(0.75 * 1180 - 0.5, abs=1)
    assert not _rect(page, "gc.collect")["shown"]
    assert _rect(page, "app.main")["shown"]  # ancestor stays (faded)
    assert page.is_visible("#unzoom")
    page.click("#unzoom")
    assert _rect(page, "app.run")["w"] == pytest.approx(before["w"], abs=0.01)
    assert _rect(page, "gc.collect")["shown"]
    # search through the prompt (Ctrl-F), matched share shown, matches highlighted
    page.once("dialog", lambda d: d.accept("^db\\."))
    page.keyboard.press("Control+f")
    assert page.text_content("#matched").startswith("Matched: 40.00%")
    fill = page.evaluate("() => [...document.querySelectorAll('#frames > g')].find(g => "
                         "g.querySelector('title').textContent.startsWith('db.query.exec')).querySelector('rect')"
                         ".getAttribute('fill')")
    assert fill == "rgb(230,0,230)"
    # hover: details line shows the tooltip text
    box = page.locator("#frames > g", has_text="json.encode").first.locator("rect").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    assert page.text_content("#details").startswith("json.encode")


def test_html_zoom_search_tooltip(page, tmp_path):
    path = tmp_path / "fg.html"
    text = render_html(profile_of(STACKS), 0, title="UI html")
    assert "http://" not in text and "https://" not in text
    path.write_text(text)
    page.goto(path.as_uri())
    assert page.text_content("#fg-sub").startswith("Total: 100 ns")
    canvas = page.locator("#fg-canvas").bounding_box()
    box = page.evaluate("() => window.flamegraph.frameBox('app.run')")
    width_before = box["width"]
    assert width_before == pytest.approx(0.4 * canvas["width"], rel=0.01)
    page.mouse.click(canvas["x"] + box["x"] + box["width"] / 2, canvas["y"] + box["y"] + 5)
    state = page.evaluate("() => window.flamegraph.state()")
    assert state["zoom"]["name"] == "app.run"
    assert page.evaluate("() => window.flamegraph.frameBox('app.run').width") == pytest.approx(canvas["width"], rel=0.01)
    assert page.evaluate("() => window.flamegraph.frameBox('gc.collect')") is None
    assert page.text_content("#fg-zoomed") == "Zoomed: app.run"
    page.click("#fg-reset")
    assert page.evaluate("() => window.flamegraph.frameBox('app.run').width") == pytest.approx(width_before, rel=0.01)
    page.keyboard.press("Control+f")
    page.keyboard.type("^db\\.")
    assert page.text_content("#fg-matched").startswith("Matched: 40.00%")
    box = page.evaluate("() => window.flamegraph.frameBox('json.encode')")
    page.mouse.move(canvas["x"] + box["x"] + 5, canvas["y"] + box["y"] + 5)
    assert page.is_visible("#fg-tip")
    assert page.text_content("#fg-tip").startswith("json.encode\n40 ns (40.00%)")
