"""The operator surfaces under token auth: ``/metrics``, ``/docs`` (and its assets) and
``/openapi.json``.

Without a token file they are open, like every route. With one, ``/metrics`` needs a token
with the ``metrics`` scope, and the documentation any valid token; other requests answer 401
(403 for a token without the scope) as JSON ``{code, message}``. The documentation's 401
asks for ``Basic`` credentials (user name ignored, password the token), so a browser prompts
for the token once and sends it again with the page's schema and asset requests.

:func:`admit` runs before routing (raw ASGI), so it covers the framework's own
``/openapi.json`` route and the mounted static assets too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fleetprof.server.auth import Authenticator
from fleetprof.server.docs import DOCS_PATH
from fleetprof.server.errors import ApiError

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
METRICS_PATH = "/metrics"
OPENAPI_PATH = "/openapi.json"
_ANY = ""


def needed_scope(path: str) -> str | None:
    """The scope ``path`` needs under auth: ``"metrics"``, ``""`` (any valid token) or
    ``None`` (not an operator surface)."""
    if path == METRICS_PATH:
        return "metrics"
    if path in (OPENAPI_PATH, DOCS_PATH) or path.startswith(DOCS_PATH + "/"):
        return _ANY
    return None


async def admit(auth: Authenticator, scope: MutableMapping[str, Any], send: Send) -> bool:
    """Whether the HTTP request ``scope`` may proceed; if not, its 401/403 has been sent."""
    if not auth.enabled:
        return True
    needed = needed_scope(scope["path"])
    if needed is None:
        return True
    header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
    try:
        auth.grant(header.decode("latin-1") if header is not None else None, needed or None)
    except ApiError as e:
        headers = dict(e.headers)
        if e.status == 401 and needed == _ANY:
            headers["WWW-Authenticate"] = 'Basic realm="fleetprof", charset="UTF-8"'
        await _send_error(send, e.status, e.body(), headers)
        return False
    return True


async def _send_error(send: Send, status: int, body: dict[str, str], headers: dict[str, str]) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
