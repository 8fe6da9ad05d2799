"""A live server against hostile input: reflected script, inputs that used to reach a 500,
security headers, and ``/docs`` without internet access.

Hostile strings are pushed through the real ingest (service names, label values, frame
and file names) and given as query parameters (titles, profile types); every page a
browser could be sent to (SVG/HTML exports, the diff SVG, the index page, JSON errors) is
loaded in Debian's Chromium, which must run none of the payloads: they set
``window.__xss``, change ``document.title`` or open a dialog. Screenshots of the pages land
in the test's tmp dir. The flame graphs' own scripts must still work under the sandbox CSP
they are served with.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from serverutil import CPU, CPU_TYPE, PUSH, PUSH_HEADERS, ServerProc, push_body, start_server

from fleetprof.formats.pprof_encode import encode_pprof
from fleetprof.model.profile import Stacks, build
from fleetprof.server import index_page

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
HAS_CHROMIUM = bool(shutil.which(CHROMIUM) or os.path.exists(CHROMIUM))

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=2">',
    "]]><script>document.title='pwned'</script>",
    "</title><svg onload=\"window.__xss=3\"></svg>",
    "</script><script>alert(1)</script>",
    "javascript:alert(2)",
    "a & b &amp; <!--",
    "line\u2028sep",
]
FRAME_ONLY = ["nul\x00byte"]  # label values refuse NUL; frame names keep it
SERVICE = PAYLOADS[0]
BASE_SERVICE = "base-" + PAYLOADS[1]
SANDBOX = "sandbox allow-scripts allow-modals"


def _pprof(frames: list[str], files: list[str], value: int) -> bytes:
    """One cpu profile: ``main`` calling each hostile frame (its file hostile too)."""
    names = ["main", *frames]
    offsets = np.arange(0, 2 * len(frames) + 1, 2)
    stack = np.array([[0, i + 1] for i in range(len(frames))]).ravel()
    st = Stacks(names=names, files=["main.go", *files], offsets=offsets, frames=stack,
                values=np.full((len(frames), 1), value, dtype=np.int64))
    return encode_pprof(build(st, [CPU], period_type=CPU, period=10_000_000, time_nanos=time.time_ns(),
                              duration_nanos=10**10))


def _wait_for(client: httpx.Client, path: str, want: set[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.get(path, params={"from": "now-1h"})
        if r.status_code == 200 and want <= set(r.json()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{want} not visible at {path} in time")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("hostile")
    started: list[ServerProc] = []
    try:
        srv = start_server(started, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}",
                           "--flush-max-age-s", "0.1", tmp=tmp)
        frames = PAYLOADS + FRAME_ONLY
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for service, value in ((SERVICE, 30_000_000), (BASE_SERVICE, 10_000_000)):
                body = push_body(service, _pprof(frames, frames, value),
                                 labels={"env": PAYLOADS[2], "region": PAYLOADS[3]})
                r = c.post(PUSH, content=body, headers=PUSH_HEADERS)
                assert r.status_code == 200, r.text
            _wait_for(c, "/api/v1/services", {SERVICE, BASE_SERVICE})
        yield srv
    finally:
        for s in started:
            s.kill()


@pytest.fixture(scope="module")
def client(server: ServerProc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    if not HAS_CHROMIUM:
        pytest.fail("no chromium (make installs it)")
    import playwright.sync_api as sync_api  # installed by make (.[dev]); missing = failure, not a skip
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _url(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}" if params else path


ALL = CPU_TYPE
SEL = CPU_TYPE + '{service_name=~".+"}'
BASE = CPU_TYPE + "{service_name=" + '"' + BASE_SERVICE.replace('"', '\\"') + '"}'
PAGES = {
    "export-svg": _url("/api/v1/export", format="svg", query=SEL, **{"from": "now-1h"}, title=PAYLOADS[4]),
    "export-svg-title": _url("/api/v1/export", format="svg", query=ALL, **{"from": "now-1h"}, title=PAYLOADS[1]),
    "export-html": _url("/api/v1/export", format="html", query=SEL, **{"from": "now-1h"}, title=PAYLOADS[3]),
    "diff-svg": _url("/api/v1/diff", format="svg", leftQuery=BASE, rightQuery=SEL, leftFrom="now-1h",
                     rightFrom="now-1h"),
    "index": _url("/", **{"from": "now-1h"}),
    # the reported attack: a script in the profile type's unit
    "unit-in-query": _url("/api/v1/export", format="svg",
                          query="process_cpu:cpu:<script>window.__xss=1</script>:cpu:nanoseconds"),
    "unit-in-diff": _url("/api/v1/diff", format="svg",
                         leftQuery="process_cpu:cpu:<svg onload=alert(1)>:cpu:nanoseconds",
                         rightQuery="process_cpu:cpu:<svg onload=alert(1)>:cpu:nanoseconds"),
    "json-error-echo": _url("/api/v1/export", format="<script>window.__xss=1</script>", query=ALL),
}
SHOWN = {  # a payload each active page shows as text
    "export-svg": PAYLOADS[0], "export-svg-title": PAYLOADS[1], "export-html": PAYLOADS[3],
    "diff-svg": PAYLOADS[0], "index": SERVICE,
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_no_payload_runs_in_chromium(server: ServerProc, browser, tmp_path: Path, name: str) -> None:
    page = browser.new_page(viewport={"width": 1240, "height": 700})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    resp = page.goto(server.url + PAGES[name], wait_until="load")
    assert resp is not None
    if name == "index":  # the explorer fills its service picker from the API
        page.wait_for_function("s => document.documentElement.textContent.includes(s)", arg=SHOWN[name], timeout=15_000)
    status = resp.status
    headers = resp.all_headers()
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    xss = page.evaluate("() => window.__xss")
    title = page.evaluate("() => document.title")
    text = page.evaluate("() => document.documentElement.textContent")
    page.close()
    assert xss is None and title != "pwned" and not dialogs, (xss, title, dialogs)
    assert headers.get("x-content-type-options") == "nosniff"
    if name in SHOWN:
        assert status == 200
        assert headers.get("content-security-policy") == (index_page.PAGE_CSP if name == "index" else SANDBOX)
        assert SHOWN[name] in text
    else:
        assert status == 400 and headers["content-type"].startswith("application/json")


def test_unit_in_profile_type_refused_naming_the_part(client: httpx.Client) -> None:
    r = client.get(PAGES["unit-in-query"])
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_argument" and "sample unit" in body["message"]
    r = client.get("/api/v1/timeline", params={"query": "process cpu:cpu:nanoseconds:cpu:nanoseconds"})
    assert r.status_code == 400 and "name of the profile type" in r.json()["message"]


def test_flame_graph_scripts_work_under_the_sandbox(server: ServerProc, browser) -> None:
    page = browser.new_page(viewport={"width": 1240, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    svg = _url("/api/v1/export", format="svg", query=SEL, **{"from": "now-1h"})
    resp = page.goto(server.url + svg)
    assert resp is not None and resp.headers.get("content-security-policy") == SANDBOX
    # zoom: click the frame of the first payload, "Reset Zoom" appears
    box = page.locator("#frames > g", has_text="window.__xss=1").first.locator("rect").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.is_visible("#unzoom")
    # search through the prompt (a modal: needs allow-modals in the sandbox)
    page.once("dialog", lambda d: d.accept("^main$"))
    page.keyboard.press("Control+f")
    assert page.text_content("#matched").startswith("Matched: 100.00%")
    html = _url("/api/v1/export", format="html", query=SEL, **{"from": "now-1h"})
    page.goto(server.url + html)
    canvas = page.locator("#fg-canvas").bounding_box()
    box = page.evaluate("() => window.flamegraph.frameBox('main')")
    page.mouse.click(canvas["x"] + box["x"] + box["width"] / 2, canvas["y"] + box["y"] + 5)
    assert page.evaluate("() => window.flamegraph.state()")["zoom"]["name"] == "main"
    page.close()
    assert not errors, errors


def test_every_response_is_nosniff(server: ServerProc, client: httpx.Client) -> None:
    gets = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css", "/nope",
            _url("/api/v1/export", format="pprof", query=ALL), _url("/pyroscope/render", query=ALL),
            _url("/api/v1/flamegraph", query="bad")]
    for path in gets:
        r = client.get(path)
        assert r.headers.get("x-content-type-options") == "nosniff", path
        if r.headers.get("content-type", "").startswith("application/json"):
            assert "content-security-policy" not in r.headers, path
    r = client.post(PUSH, content=b"\xff", headers={"content-type": "application/proto"})  # raw fast path
    assert r.status_code == 400 and r.headers.get("x-content-type-options") == "nosniff"


SELECTOR_ROUTES = [
    ("/api/v1/export", "query", {"format": "folded"}),
    ("/api/v1/timeline", "query", {}),
    ("/api/v1/flamegraph", "query", {}),
    ("/api/v1/top", "query", {}),
    ("/api/v1/diff", "leftQuery", {"rightQuery": CPU_TYPE}),
    ("/api/v1/diff", "rightQuery", {"leftQuery": CPU_TYPE}),
    ("/api/v1/labels", "query", {}),
    ("/api/v1/labels/env/values", "query", {}),
    ("/pyroscope/render", "query", {}),
    ("/pyroscope/render-diff", "leftQuery", {"rightQuery": CPU_TYPE}),
    ("/pyroscope/label-names", "query", {}),
    ("/pyroscope/label-values", "query", {"label": "env"}),
]
BAD_REGEXES = {
    "lookahead": ('env=~"(?=p)"', "look-around"),
    "lookbehind": ('env!~"(?<=a)b"', "look-around"),
    "backreference": ("env=~`(a)\\1`", "backreferences"),
}


def _assert_400(r: httpx.Response, *needles: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "message"} and body["code"] == "invalid_argument"
    for n in needles:
        assert n in body["message"], body["message"]


@pytest.mark.parametrize("regex", sorted(BAD_REGEXES))
@pytest.mark.parametrize(("path", "key", "extra"), SELECTOR_ROUTES, ids=lambda v: v if isinstance(v, str) else "")
def test_regex_polars_rejects_is_400(client: httpx.Client, path: str, key: str, extra: dict[str, str],
                                     regex: str) -> None:
    matcher, why = BAD_REGEXES[regex]
    r = client.get(path, params={**extra, key: CPU_TYPE + "{" + matcher + "}", "from": "now-1h"})
    _assert_400(r, "invalid regex for env", why)
    assert client.get("/healthz").status_code == 200


TIME_ROUTES = [(p, k, e) for p, k, e in SELECTOR_ROUTES if "diff" not in p] + [
    ("/api/v1/services", "", {}), ("/api/v1/profile-types", "", {}),
]
HUGE = "9" * 25
BAD_TIMES = {
    "beyond-int64": {"from": HUGE, "until": HUGE},
    "until-beyond-int64-ns": {"from": "0", "until": "9999999999999"},
    "negative-huge": {"from": "now-" + "9" * 23 + "d"},
    "float-overflow": {"from": "now-" + "9" * 400 + "d"},
}


@pytest.mark.parametrize("times", sorted(BAD_TIMES))
@pytest.mark.parametrize(("path", "key", "extra"), TIME_ROUTES, ids=lambda v: v if isinstance(v, str) else "")
def test_time_outside_range_is_400(client: httpx.Client, path: str, key: str, extra: dict[str, str],
                                   times: str) -> None:
    params = {**extra, **({key: CPU_TYPE} if key else {}), **BAD_TIMES[times]}
    _assert_400(client.get(path, params=params), "out of range")
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("side", ["left", "right"])
def test_diff_times_outside_range_are_400(client: httpx.Client, side: str) -> None:
    for path in ("/api/v1/diff", "/pyroscope/render-diff"):
        params = {"leftQuery": CPU_TYPE, "rightQuery": CPU_TYPE, f"{side}From": HUGE, f"{side}Until": HUGE}
        _assert_400(client.get(path, params=params), f"'{side}From' out of range")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v or "" for k, v in attrs if k in ("src", "href")]


def test_docs_reference_only_this_server(client: httpx.Client) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//", r.text), "absolute URL in /docs"
    p = _Refs()
    p.feed(r.text)
    assert p.refs and all(ref.startswith("/") for ref in p.refs), p.refs
    for ref in p.refs:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 1000, ref
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_docs_render_offline_in_chromium(server: ServerProc, browser, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1240, "height": 900})
    outside: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "fleetprof" in page.text_content(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/export']", timeout=20_000)
    page.screenshot(path=str(tmp_path / "docs.png"))
    context.close()
    assert not outside and not errors, (outside, errors)
