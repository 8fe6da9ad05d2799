"""Tenancy and token auth.

Without a token table every request is allowed and the tenant comes from ``X-Scope-OrgID``
(default ``anonymous``). The table is JSON, read from a file (``FLEETPROF_AUTH_FILE``) or from
an environment variable holding the document itself (``FLEETPROF_AUTH_TOKENS``, the way ECS
injects a Secrets Manager secret)::

    {"tokens": {"s3cr3t": {"tenant": "acme", "scopes": ["read", "write"]}}}

(or the inner mapping alone). A tenant may hold several tokens at once, which is how a token
is rotated without downtime: add the new one, roll it out, move clients, remove the old one.
With a table a request must carry ``Authorization: Bearer <token>`` or
``Basic base64(user:<token>)`` (the user name is ignored): missing/unknown → 401; token
lacking the needed scope, or an ``X-Scope-OrgID`` naming another tenant → 403.

Scopes: ``read`` (query routes), ``write`` (ingest routes), ``metrics`` (``/metrics``); a
grant without ``scopes`` has ``read`` and ``write``. The operator surfaces (``/metrics``,
``/docs``, ``/openapi.json``) are guarded by :mod:`fleetprof.server.auth_surfaces`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetprof.server.errors import ApiError

TENANT_RE = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
"""1–64 of ``[A-Za-z0-9_.-]``, starting with a letter or digit, without ``..`` (safe in
every object key: segments and analyses)."""
DEFAULT_TENANT = "anonymous"
SCOPES = ("read", "write", "metrics")
DEFAULT_SCOPES = ("read", "write")


@dataclass(frozen=True)
class Grant:
    tenant: str
    scopes: frozenset[str]


def parse_tokens(text: str, source: str) -> dict[str, Grant]:
    """Parse a token table (JSON text); ``ValueError`` naming ``source`` and the problem."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"token table {source}: not JSON: {e}") from None
    table = doc.get("tokens", doc) if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise ValueError(f"token table {source}: expected an object mapping tokens to grants")
    out: dict[str, Grant] = {}
    for token, g in table.items():
        if not isinstance(g, dict) or not TENANT_RE.match(str(g.get("tenant", ""))):
            raise ValueError(f"token table {source}: bad grant for a token (need a valid 'tenant')")
        scopes = frozenset(g.get("scopes", DEFAULT_SCOPES))
        if not scopes <= set(SCOPES):
            raise ValueError(f"token table {source}: scopes must be among {SCOPES}")
        out[str(token)] = Grant(str(g["tenant"]), scopes)
    return out


def load_tokens(path: str | Path) -> dict[str, Grant]:
    """Parse a token file; ``ValueError`` naming the problem if it is unreadable or malformed."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"cannot read token file {path}: {e}") from None
    return parse_tokens(text, f"file {path}")


def configured_tokens(auth_file: str | None, auth_tokens: str | None) -> dict[str, Grant] | None:
    """The token table of the server's settings: the file ``auth_file`` or the JSON text
    ``auth_tokens`` (the environment variable ``FLEETPROF_AUTH_TOKENS``); ``None`` (auth off)
    when neither is given; ``ValueError`` when both are."""
    if auth_file and auth_tokens:
        raise ValueError("give either a token file (FLEETPROF_AUTH_FILE) or FLEETPROF_AUTH_TOKENS, not both")
    if auth_tokens:
        return parse_tokens(auth_tokens, "FLEETPROF_AUTH_TOKENS")
    return load_tokens(auth_file) if auth_file else None


def new_token_entry(tenant: str, scopes: Iterable[str] = DEFAULT_SCOPES) -> dict[str, Any]:
    """A fresh random token and its grant, ``{"<token>": {"tenant": ..., "scopes": [...]}}``:
    one entry to merge into a token table. ``ValueError`` for a bad tenant or scope."""
    wanted = sorted(set(scopes))
    if not TENANT_RE.match(tenant):
        raise ValueError(f"bad tenant {tenant!r}: use 1-64 characters of [A-Za-z0-9_.-], starting with a letter or digit, without '..'")
    if not wanted or not set(wanted) <= set(SCOPES):
        raise ValueError(f"scopes must be a non-empty subset of {SCOPES}, got {wanted}")
    return {f"fp_{secrets.token_urlsafe(32)}": {"tenant": tenant, "scopes": wanted}}


def tenant_from_header(value: str | None) -> str:
    """Validated tenant id from ``X-Scope-OrgID`` (400 if malformed)."""
    if value is None or value == "":
        return DEFAULT_TENANT
    if not TENANT_RE.match(value):
        raise ApiError(400, "invalid X-Scope-OrgID: use 1-64 characters of [A-Za-z0-9_.-], starting with a letter or digit, without '..'")
    return value


def _token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, cred = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return cred.strip() or None
    if scheme.lower() == "basic":
        try:
            user_pass = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "malformed Basic credentials") from None
        return user_pass.partition(":")[2] or None
    raise ApiError(401, f"unsupported authorization scheme {scheme!r} (use Bearer or Basic)")


class Authenticator:
    """Resolves (headers, needed scope) → tenant, raising :class:`ApiError` 400/401/403."""

    def __init__(self, tokens: dict[str, Grant] | None) -> None:
        self.tokens = tokens

    @property
    def enabled(self) -> bool:
        return self.tokens is not None

    def grant(self, authorization: str | None, scope: str | None) -> Grant:
        """The grant of the request's token (401 without a known token; 403 when ``scope``
        is given and the token lacks it). Only with a token file."""
        token = _token(authorization)
        if token is None:
            raise ApiError(401, "authentication required (Authorization: Bearer <token>)", headers={"WWW-Authenticate": 'Bearer realm="fleetprof"'})
        grant = (self.tokens or {}).get(token)
        if grant is None:
            raise ApiError(401, "invalid token", headers={"WWW-Authenticate": 'Bearer realm="fleetprof"'})
        if scope is not None and scope not in grant.scopes:
            raise ApiError(403, f"token lacks the {scope!r} scope")
        return grant

    def tenant(self, authorization: str | None, org_id: str | None, scope: str) -> str:
        header_tenant = tenant_from_header(org_id) if org_id else None
        if self.tokens is None:
            return header_tenant or DEFAULT_TENANT
        grant = self.grant(authorization, scope)
        if header_tenant is not None and header_tenant != grant.tenant:
            raise ApiError(403, f"token is not valid for tenant {header_tenant!r}")
        return grant.tenant
