"""``/docs``: Swagger UI for ``/openapi.json``, served entirely by this server.

Swagger UI's script, stylesheet and icon come from the ``fastapi-offline`` package (it
ships Swagger UI's distribution files) under :data:`ASSETS`, so the page works where the
server has no internet access; the online validator badge is off. The page carries its own
Content-Security-Policy (same origin only) instead of the sandbox the other HTML gets,
because Swagger UI fetches the schema from this origin.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS = "/docs/assets"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def assets_dir() -> Path:
    """Swagger UI's distribution files, as the ``fastapi-offline`` package installs them."""
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def install(app: FastAPI) -> None:
    """Serve :data:`DOCS_PATH` and its assets on ``app`` (built with ``docs_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page
