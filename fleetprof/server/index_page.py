"""``/``: the profile explorer (TypeScript, built from ``ui/`` into ``fleetprof/explorer``).

The page is a static shell: its script and stylesheet come from :data:`ASSETS` on this
server (nothing from a CDN) and it reads everything else from the query API with the
viewer's credentials, so it carries its own same-origin Content-Security-Policy instead of
the sandbox other HTML documents get. When the assets were not built (``make ui``), the page
says so instead of failing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter()

ASSETS = "/explorer/assets"
BUILD_DIR = Path(__file__).resolve().parents[1] / "explorer"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NOT_BUILT = (
    "<!doctype html><html><head><meta charset='utf-8'><title>fleetprof</title></head><body>"
    "<h1>fleetprof</h1><p>The explorer's assets are not built: run <code>make ui</code> "
    "(Node 20+). The query API is up: <a href='/docs'>API docs</a>.</p></body></html>"
)


def _version(directory: Path) -> str:
    """A short digest of the built assets (cache busting across upgrades)."""
    h = hashlib.sha256()
    for name in ("app.js", "style.css"):
        p = directory / name
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()[:12]


def page(directory: Path = BUILD_DIR) -> str:
    """The explorer's HTML shell, or a page saying the assets are missing."""
    if not (directory / "app.js").exists():
        return NOT_BUILT
    v = _version(directory)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>fleetprof</title><link rel='icon' href='data:,'><link rel='stylesheet' href='{ASSETS}/style.css?v={v}'></head>"
        f"<body><div id='app'></div><script src='{ASSETS}/app.js?v={v}'></script></body></html>"
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(page(), headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve the explorer page and its built assets on ``app``."""
    app.mount(ASSETS, StaticFiles(directory=BUILD_DIR, check_dir=False), name="explorer-assets")
    app.include_router(router)
