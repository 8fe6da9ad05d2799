"""Security headers on every HTTP response, added by wrapping the ASGI ``send`` callable
(so the raw fast ``POST`` paths that skip FastAPI's middleware get them too).

* ``X-Content-Type-Options: nosniff`` on every response: a browser never renders JSON or
  text (which may echo request input) as HTML.
* Active documents (HTML, SVG, XML) that set no ``Content-Security-Policy`` of their own
  get :data:`SANDBOX_CSP`: their scripts (the flame graphs' zoom and search) still run, but
  in an opaque origin, so nothing in the document can read or call this server's API with
  the viewer's credentials. ``allow-modals`` keeps the SVG flame graph's search prompt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SANDBOX_CSP = "sandbox allow-scripts allow-modals"
ACTIVE_TYPES = (b"text/html", b"image/svg+xml", b"application/xhtml+xml", b"text/xml", b"application/xml")


def _with_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus the security headers they lack."""
    names = {k.lower(): v for k, v in headers}
    out = [(k, v) for k, v in headers if k.lower() != b"x-content-type-options"]
    out.append((b"x-content-type-options", b"nosniff"))
    ctype = names.get(b"content-type", b"").split(b";")[0].strip().lower()
    if ctype in ACTIVE_TYPES and b"content-security-policy" not in names:
        out.append((b"content-security-policy", SANDBOX_CSP.encode()))
    return out


def secure_send(send: Send) -> Send:
    """``send`` that adds the security headers to the response start message."""

    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": _with_headers(list(message.get("headers") or []))}
        await send(message)

    return wrapped
