"""Analysis outputs in the object store: ``analysis/<tenant>/<window>/<name>``.

Files of one window: one Parquet file per table (``<table>.parquet``, schemas in
``workers/README.md``), ``summary.json`` (written last: a window is complete when it exists)
and ``report.html`` (self-contained). The server mounts these functions under
``/api/v1/analysis/…`` (see the README for the routes).
"""

from __future__ import annotations

import json
import re
from typing import Any

PREFIX = "analysis"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet", ".json": "application/json", ".html": "text/html; charset=utf-8"}


def _check(part: str, what: str) -> str:
    if not _NAME_RE.match(part) or ".." in part:
        raise ValueError(f"invalid {what} {part!r}")
    return part


def analysis_key(tenant: str, window: str, name: str) -> str:
    """Object key of one analysis file (components validated: no traversal)."""
    return f"{PREFIX}/{_check(tenant, 'tenant')}/{_check(window, 'window')}/{_check(name, 'file name')}"


def write_analysis_file(store: Any, tenant: str, window: str, name: str, data: bytes) -> str:
    key = analysis_key(tenant, window, name)
    store.put(key, data)
    return key


def list_analyses(store: Any, tenant: str) -> list[dict[str, Any]]:
    """Complete windows of ``tenant`` (newest first): ``{"window", "files", "summary"}`` where
    ``summary`` is the parsed ``summary.json`` minus its bulky lists (counts instead)."""
    prefix = f"{PREFIX}/{_check(tenant, 'tenant')}/"
    files: dict[str, list[str]] = {}
    for key in store.list(prefix):
        rest = key[len(prefix):].split("/")
        if len(rest) == 2:
            files.setdefault(rest[0], []).append(rest[1])
    out = []
    for window, names in files.items():
        if "summary.json" not in names:
            continue
        try:
            summary = json.loads(store.get(f"{prefix}{window}/summary.json"))
        except (KeyError, ValueError):
            continue
        brief = {k: (len(v) if isinstance(v, list) and k not in ("services", "profile_types", "shared_hotspots") else v)
                 for k, v in summary.items() if k != "thresholds"}
        out.append({"window": window, "files": sorted(names), "summary": brief})
    return sorted(out, key=lambda d: d["window"], reverse=True)


def read_analysis_file(store: Any, tenant: str, window: str, name: str) -> bytes:
    """Bytes of one analysis file; :class:`KeyError` when absent, :class:`ValueError` for a
    malformed tenant/window/name (answer 404 and 400)."""
    return store.get(analysis_key(tenant, window, name))  # type: ignore[no-any-return]


def content_type(name: str) -> str:
    for ext, ct in CONTENT_TYPES.items():
        if name.endswith(ext):
            return ct
    return "application/octet-stream"
