"""The explorer on a server with token auth: the page asks for a token, then reads the
tenant's data with it (Bearer)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from explorerutil import CPU, build_ui
from serverutil import (  # on sys.path through explorerutil
    PUSH,
    PUSH_HEADERS,
    ServerProc,
    pprof_bytes,
    push_body,
    server_list,
    start_server,
)

TOKEN = "s3cr3t-read-write"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    build_ui()
    tmp = tmp_path_factory.mktemp("explorer-auth")
    (tmp / "tokens.json").write_text(json.dumps({"tokens": {TOKEN: {"tenant": "acme", "scopes": ["read", "write"]}}}))
    for servers in server_list():
        srv = start_server(servers, (tmp / "data").as_uri(), f"sqlite://{tmp / 'index.db'}", "--flush-max-age-s", "0.05",
                           "--auth-file", str(tmp / "tokens.json"), tmp=tmp)
        body = push_body("ledger", pprof_bytes([["main", "post"]], [40_000_000], time_ns=time.time_ns() - 60 * 10**9))
        r = httpx.post(srv.url + PUSH, content=body, headers={**PUSH_HEADERS, "Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        yield srv


def test_token_prompt_then_data(browser: object, auth_server: ServerProc) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    try:
        page.goto(auth_server.url + "/")
        page.wait_for_selector("[data-testid=token]")
        assert "needs a token" in page.inner_text("[data-testid=status]")
        page.fill("[data-testid=token]", TOKEN)
        page.click("[data-testid=status] button")
        page.wait_for_function("() => document.querySelector('canvas.flame-canvas')?.dataset.total === '40000000'", timeout=15_000)
        assert page.input_value("[data-testid=service]") == "ledger"
        assert page.input_value("[data-testid=profile-type]") == CPU
    finally:
        page.close()
