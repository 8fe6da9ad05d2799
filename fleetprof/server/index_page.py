"""``/``: a plain HTML page listing the tenant's services with links to their flame graphs
(SVG and HTML exports over the last hour) until the explorer UI exists."""

from __future__ import annotations

import html
import json
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from fleetprof.server.queries import call as query_call
from fleetprof.server.queries import time_range
from fleetprof.server.state import get_state

router = APIRouter()


def _link(ptype: str, service: str, fmt: str) -> str:
    sel = f"{ptype}{{service_name={json.dumps(service, ensure_ascii=False)}}}"
    return f"/api/v1/export?format={fmt}&from=now-1h&until=now&query={quote(sel, safe='')}"


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    st = get_state(request)
    tenant = st.tenant(request, "read")
    start, end = time_range(request.query_params, st)
    services = sorted(await query_call("services", st, tenant, start, end))
    ptypes = sorted(await query_call("profile_types", st, tenant, start, end))
    rows = []
    for svc in services:
        links = " ".join(
            f'<li><code>{html.escape(p)}</code>: <a href="{html.escape(_link(p, svc, "svg"))}">SVG</a> · '
            f'<a href="{html.escape(_link(p, svc, "html"))}">HTML</a></li>'
            for p in ptypes
        )
        rows.append(f"<h2>{html.escape(svc)}</h2><ul>{links}</ul>")
    body = "".join(rows) or "<p>No profiles in the last hour yet. Point an agent at this server.</p>"
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>fleetprof</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}code{color:#555}</style></head>"
        f"<body><h1>fleetprof — tenant <code>{html.escape(tenant)}</code></h1>{body}"
        "<p><a href='/metrics'>metrics</a> · <a href='/readyz'>readyz</a> · <a href='/docs'>API docs</a></p></body></html>"
    )
    return HTMLResponse(page)
