"""Helpers of the explorer tests: a real server seeded for them, one headless Chromium per
module (the fixtures, re-exported by conftest.py), screenshots.

Data: ``checkout`` (Go-like frames) with ``version`` 1.4 an hour or two ago and 1.5 in the
last hour, where ``encoding/json.Marshal`` grew (the known regression); ``region`` eu
carries twice the values of us. ``search`` (Python-like frames) in the last hour only;
``billing`` (Java-like frames) only between two and one hours ago.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from serverutil import (  # noqa: E402 - the server tests' helpers
    PUSH,
    PUSH_HEADERS,
    REPO,
    ServerProc,
    pprof_bytes,
    push_body,
    server_list,
    start_server,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
MS = 1_000_000  # values are nanoseconds: 1 ms of CPU each unit below

SERVE = "net/http.(*conn).serve"
TOTAL = "github.com/acme/checkout/cart.Total"
MARSHAL = "encoding/json.Marshal"
MALLOC = "runtime.mallocgc"
QUERY_FN = "github.com/acme/checkout/db.Query"
GC = "runtime.gcBgMarkWorker"

# checkout's stacks and their values per profile (ms) for each version
CHECKOUT = {
    "1.4": [(["main", SERVE, TOTAL, MARSHAL], 100), (["main", SERVE, TOTAL, MALLOC], 100),
            (["main", SERVE, QUERY_FN], 300), (["main", GC], 200)],
    "1.5": [(["main", SERVE, TOTAL, MARSHAL], 400), (["main", SERVE, TOTAL, MALLOC], 100),
            (["main", SERVE, QUERY_FN], 300), (["main", GC], 200)],
}
SEARCH = [(["main", "app/server.py:handle", "app/index.py:lookup"], 500), (["main", "app/server.py:handle", "json/encoder.py:encode"], 100)]
BILLING = [(["main", "com.acme.billing.Invoice.total", "java.util.HashMap.get"], 300)]
POINTS = 6  # profiles per range and label set, every 10 minutes
PAYLOAD = '<img src=x onerror="window.__xss=1">'
"""A label value and a frame name of the ``evil`` service: the page must show it as text."""


@dataclass
class Seeded:
    server: ServerProc
    data: Path
    now_s: float


def _push(c: httpx.Client, service: str, stacks: list[tuple[list[str], int]], t_ns: int, labels: dict[str, str], scale: int = 1) -> None:
    body = push_body(service, pprof_bytes([s for s, _ in stacks], [v * MS * scale for _, v in stacks], time_ns=t_ns), labels=labels)
    r = c.post(PUSH, content=body, headers=PUSH_HEADERS)
    assert r.status_code == 200, r.text


def seed(url: str, now_s: float) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        for k in range(POINTS):
            recent = int((now_s - 55 * 60 + k * 600) * 1e9)  # now-55m … now-5m
            older = int((now_s - 115 * 60 + k * 600) * 1e9)  # now-115m … now-65m
            for region, scale in (("eu", 2), ("us", 1)):
                _push(c, "checkout", CHECKOUT["1.5"], recent, {"version": "1.5", "region": region}, scale)
                _push(c, "checkout", CHECKOUT["1.4"], older, {"version": "1.4", "region": region}, scale)
            _push(c, "search", SEARCH, recent, {"version": "2.0"})
            _push(c, "billing", BILLING, older, {"version": "7"})
        _push(c, "evil", [(["main", PAYLOAD], 100)], int((now_s - 600) * 1e9), {"region": PAYLOAD})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # acked pushes are durable; wait for the index to list them all
            got = c.get("/api/v1/services", params={"from": "now-3h"}).json()
            if got == ["billing", "checkout", "evil", "search"]:
                return
            time.sleep(0.05)
        raise AssertionError("seeded services not listed in time")


def build_ui() -> None:
    """The explorer's assets, built when missing (``make ui`` builds them for ``make test``)."""
    if (REPO / "fleetprof" / "explorer" / "app.js").exists():
        return
    if not shutil.which("npm"):
        pytest.fail("explorer assets not built and no npm to build them (make installs both)")
    subprocess.run(["make", "ui"], cwd=REPO, check=True)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    build_ui()
    tmp = tmp_path_factory.mktemp("explorer")
    data = tmp / "data"
    for servers in server_list():
        srv = start_server(servers, data.as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.05", tmp=tmp)
        now = time.time()
        seed(srv.url, now)
        yield Seeded(srv, data, now)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("no chromium (make installs it)")
    import playwright.sync_api as sync_api  # installed by make (.[dev]); missing = failure, not a skip
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


SHOTS = REPO / "docs" / "screenshots"


def screenshot(page: object, tmp_path: Path, name: str) -> Path:
    """Save a screenshot as a test artefact; with FLEETPROF_SCREENSHOTS=1 also into
    docs/screenshots (the README's pictures)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)  # type: ignore[attr-defined]
    if os.environ.get("FLEETPROF_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / f"explorer-{name}.png")
    return path


@contextlib.contextmanager
def guarded_page(browser: object, base_url: str, *, width: int = 1280, allow_blob: bool = False,
                 **context_options: object) -> Iterator[object]:
    """A page of a fresh browser context that may load only ``base_url`` (and ``blob:`` URLs
    when ``allow_blob``); on exit, any request that tried to leave it, page error or dialog
    fails the test."""
    context = browser.new_context(viewport={"width": width, "height": 900}, **context_options)  # type: ignore[attr-defined]
    outside: list[str] = []

    def only_this_server(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(base_url + "/") or (allow_blob and url.startswith("blob:")):
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", only_this_server)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("dialog", lambda d: (errors.append("dialog " + d.message), d.dismiss()))
    yield p
    context.close()
    assert not outside, f"requests left the server: {outside}"
    assert not errors, errors
