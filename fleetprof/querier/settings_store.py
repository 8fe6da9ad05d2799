"""Per-tenant settings of ``settings.v1.SettingsService``: one JSON object per tenant in the
profile store (``settings/<tenant>.json``: ``{name: {"value": str, "modifiedAt": ms}}``),
so every replica behind a load balancer sees the same settings."""

from __future__ import annotations

import json
import time
from typing import Any

from fleetprof.server.errors import ApiError
from fleetprof.storage.objectstore import ObjectStore

MAX_SETTINGS = 256
MAX_NAME = 256
MAX_VALUE = 64 * 1024


def _key(tenant: str) -> str:
    return f"settings/{tenant}.json"


def load(store: ObjectStore, tenant: str) -> dict[str, dict[str, Any]]:
    """The tenant's settings (empty when none were set)."""
    try:
        data = store.get(_key(tenant))
    except KeyError:  # every store's "no such object"
        return {}
    doc = json.loads(data)
    return doc if isinstance(doc, dict) else {}


def put(store: ObjectStore, tenant: str, name: str, value: str, modified_at: int) -> int:
    """Store one setting (400 for an empty or oversized name/value, 429 beyond
    :data:`MAX_SETTINGS`); its ``modifiedAt`` (ms; now when ``modified_at`` is 0)."""
    if not name or len(name) > MAX_NAME:
        raise ApiError(400, f"setting name must be 1-{MAX_NAME} characters")
    if len(value) > MAX_VALUE:
        raise ApiError(400, f"setting value exceeds {MAX_VALUE} characters")
    doc = load(store, tenant)
    if name not in doc and len(doc) >= MAX_SETTINGS:
        raise ApiError(429, f"at most {MAX_SETTINGS} settings per tenant", code="resource_exhausted")
    stamp = modified_at if modified_at > 0 else time.time_ns() // 1_000_000
    doc[name] = {"value": value, "modifiedAt": stamp}
    store.put(_key(tenant), json.dumps(doc, ensure_ascii=False, sort_keys=True).encode())
    return stamp
