"""Tenancy and token auth.

Without a token file every request is allowed and the tenant comes from ``X-Scope-OrgID``
(default ``anonymous``). With a token file (JSON)::

    {"tokens": {"s3cr3t": {"tenant": "acme", "scopes": ["read", "write"]}}}

(or the inner mapping alone) a request must carry ``Authorization: Bearer <token>`` or
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
from dataclasses import dataclass
from pathlib import Path

from fleetprof.server.errors import ApiError

TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
"""1–64 of ``[A-Za-z0-9_.-]``, starting with a letter or digit (safe in object keys)."""
DEFAULT_TENANT = "anonymous"
SCOPES = ("read", "write", "metrics")
DEFAULT_SCOPES = ("read", "write")


@dataclass(frozen=True)
class Grant:
    tenant: str
    scopes: frozenset[str]


def load_tokens(path: str | Path) -> dict[str, Grant]:
    """Parse a token file; ``ValueError`` naming the problem if it is malformed."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read token file {path}: {e}") from None
    table = doc.get("tokens", doc) if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise ValueError(f"token file {path}: expected an object mapping tokens to grants")
    out: dict[str, Grant] = {}
    for token, g in table.items():
        if not isinstance(g, dict) or not TENANT_RE.match(str(g.get("tenant", ""))):
            raise ValueError(f"token file {path}: bad grant for a token (need a valid 'tenant')")
        scopes = frozenset(g.get("scopes", DEFAULT_SCOPES))
        if not scopes <= set(SCOPES):
            raise ValueError(f"token file {path}: scopes must be among {SCOPES}")
        out[str(token)] = Grant(str(g["tenant"]), scopes)
    return out


def tenant_from_header(value: str | None) -> str:
    """Validated tenant id from ``X-Scope-OrgID`` (400 if malformed)."""
    if value is None or value == "":
        return DEFAULT_TENANT
    if not TENANT_RE.match(value):
        raise ApiError(400, "invalid X-Scope-OrgID: use 1-64 characters of [A-Za-z0-9_.-], starting with a letter or digit")
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
