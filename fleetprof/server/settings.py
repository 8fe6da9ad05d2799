"""Server settings: CLI flags override ``FLEETPROF_*`` environment variables override defaults.

Every field of :class:`Settings` maps to the env var ``FLEETPROF_<FIELD>`` (upper case),
e.g. ``FLEETPROF_STORAGE``, ``FLEETPROF_INDEX``, ``FLEETPROF_MAX_BODY_BYTES``. Durations
accept ``30s``, ``15m``, ``24h``, ``7d`` or plain seconds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration_s(text: str | float | int) -> float:
    """Seconds in ``text`` (``"90s"``, ``"15m"``, ``"7d"``, ``"0"``); ``ValueError`` otherwise."""
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"bad duration {text!r} (use e.g. 30s, 15m, 24h, 7d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_tenant_durations(text: str) -> dict[str, float]:
    """``"acme=7d,beta=24h"`` → ``{"acme": 604800.0, "beta": 86400.0}``."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        tenant, sep, dur = part.partition("=")
        if not sep:
            raise ValueError(f"bad per-tenant retention {part!r} (use tenant=7d)")
        out[tenant.strip()] = parse_duration_s(dur)
    return out


def default_storage_url(cwd: Path | None = None) -> str:
    return f"file://{(cwd or Path.cwd()).resolve() / '.fleetprof' / 'data'}"


def default_index_url(cwd: Path | None = None) -> str:
    return f"sqlite://{(cwd or Path.cwd()).resolve() / '.fleetprof' / 'index.db'}"


@dataclass(frozen=True)
class Settings:
    """Everything the server needs; immutable. Build with :meth:`load`."""

    host: str = "127.0.0.1"
    port: int = 4040
    storage: str = field(default_factory=default_storage_url)
    index: str = field(default_factory=default_index_url)
    analysis: str | None = None
    """Store of the workers' analyses (``FLEETPROF_ANALYSIS``); ``None``: the profile store."""
    auth_file: str | None = None
    auth_tokens: str | None = None
    """The token table as JSON text (``FLEETPROF_AUTH_TOKENS``, e.g. injected by ECS from
    Secrets Manager); exclusive with ``auth_file``."""
    # limits
    max_body_bytes: int = 16 * 1024 * 1024
    max_decompressed_bytes: int = 16 * 1024 * 1024
    """Everything one ingest request decompresses, all gzip layers together (413 above)."""
    max_compression_ratio: float = 100.0
    """A gzip stream may inflate to this many times its size (past 1 MiB; 413 above)."""
    max_series_per_request: int = 1000
    max_samples_per_request: int = 250_000
    """Stacks (folded/lines: lines) of all profiles of one ingest request (400 above)."""
    max_frames_per_request: int = 2_000_000
    """Stack frames (call-tree nodes) of all profiles of one ingest request (400 above)."""
    large_decode_slots: int = 2
    """Ingest requests past ``large_decode_bytes`` decoded at once (429 for more)."""
    large_decode_bytes: int = 256 * 1024
    """Body or decompressed size from which an ingest request needs a decode slot."""
    ingest_max_future_s: float = 86_400.0
    """Ingested timestamps may lie this far in the future (400 beyond; before 1970 too)."""
    max_labels_per_series: int = 64
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048
    max_stack_depth: int = 1024
    max_spans_per_request: int = 50_000
    """Spans of one OTLP trace export request (400 above)."""
    max_attributes_per_span: int = 256
    """Attributes of one span, span event, span link or resource (400 above)."""
    max_services_per_request: int = 1000
    """Distinct ``service.name`` values among the spans of one OTLP request; spans of
    further services are rejected (``partial_success``). Their names also share a byte
    budget per index entry (:data:`fleetprof.traces.table.SERVICES_BUDGET_BYTES`).
    A ``service.name`` longer than ``max_label_value_length`` characters rejects its
    resource's spans."""
    max_span_name_length: int = 2048
    """UTF-8 bytes of a span's name (longer: the span is rejected, ``partial_success``)."""
    max_attribute_key_length: int = 1024
    """UTF-8 bytes of an attribute key of a span or resource (longer: rejected)."""
    max_attribute_value_length: int = 65_536
    """UTF-8 bytes of a string attribute value of a span or resource (longer: rejected)."""
    ingest_spans_per_token: int = 100
    """Spans of an OTLP request that cost one ``ingest_rate`` token (a request costs
    ``ceil(spans / this)``, at least one)."""
    ingest_rate: float = 0.0
    """Per-tenant ingest rate in profiles per second (0 = unlimited); spans cost one token
    per ``ingest_spans_per_token``."""
    ingest_burst: float = 0.0
    """Token bucket size (0 = ``max(ingest_rate, 1)`` × 2)."""
    # write path
    flush_max_age_s: float = 1.0
    flush_max_bytes: int = 16 * 1024 * 1024
    max_queue: int = 10_000
    span_flush_max_age_s: float = 0.5
    """Span batches flush at this age or ``flush_max_age_s``, whichever is shorter (the
    OTLP ack waits for the flush; below 1 s keeps the ack's p99 under a second)."""
    span_flush_max_spans: int = 8192
    """A tenant's span batch is flushed as soon as it holds this many spans."""
    # retention
    retention_s: float = 0.0
    """Default retention (0 = keep forever)."""
    retention_tenants: dict[str, float] = field(default_factory=dict)
    retention_in_process: bool | None = None
    """Run the retention sweep in the server (default: only with ``file://`` storage)."""
    retention_interval_s: float = 300.0
    log_level: str = "info"
    default_query_range_s: float = 3600.0
    # exposure
    insecure: bool = False
    """Allow a non-loopback bind without a token table (``--insecure``)."""
    max_tracked_tenants: int = 10_000
    """Tenants whose in-memory state (rate-limit buckets) is kept; least recently seen
    evicted beyond (their next request starts a fresh bucket)."""
    metrics_tenants: int = 0
    """Tenants named as label values in ``/metrics`` (the first seen); others count as
    ``tenant="other"``. 0: no tenant name is exposed."""

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults ← ``FLEETPROF_*`` env ← non-``None`` ``overrides`` (CLI flags)."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"FLEETPROF_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw)
        for k, v in overrides.items():
            if v is not None:
                values[k] = _coerce(k, v) if isinstance(v, str) else v
        return replace(cls(), **values)

    @property
    def auth_configured(self) -> bool:
        """Whether a token table is given (file or ``FLEETPROF_AUTH_TOKENS``)."""
        return bool(self.auth_file or self.auth_tokens)

    def retention_for(self, tenant: str) -> float:
        return self.retention_tenants.get(tenant, self.retention_s)

    def retention_runs_here(self) -> bool:
        if self.retention_in_process is not None:
            return self.retention_in_process
        return self.storage.startswith("file://")


_INT_FIELDS = {
    "port", "max_body_bytes", "max_decompressed_bytes", "max_series_per_request",
    "max_labels_per_series", "max_label_name_length", "max_label_value_length",
    "max_stack_depth", "flush_max_bytes", "max_queue",
    "max_samples_per_request", "max_frames_per_request", "large_decode_slots", "large_decode_bytes",
    "max_tracked_tenants", "metrics_tenants", "max_spans_per_request", "max_attributes_per_span",
    "span_flush_max_spans", "max_services_per_request", "max_span_name_length", "max_attribute_key_length",
    "max_attribute_value_length", "ingest_spans_per_token",
}
_FLOAT_FIELDS = {"ingest_rate", "ingest_burst", "flush_max_age_s", "max_compression_ratio", "span_flush_max_age_s"}
_DURATION_FIELDS = {"retention_s", "retention_interval_s", "default_query_range_s", "ingest_max_future_s"}


def _coerce(name: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    if name in _INT_FIELDS:
        return int(raw)
    if name in _FLOAT_FIELDS:
        return float(raw)
    if name in _DURATION_FIELDS:
        return parse_duration_s(raw)
    if name == "retention_tenants":
        return parse_tenant_durations(raw)
    if name in ("retention_in_process", "insecure"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return raw
