"""Whether and where fleetprof exports its own spans, from the standard OpenTelemetry
environment variables (the SDK reads the rest: sampler, resource, batch and exporter
options).

Tracing is on when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``
is set, unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``; with nothing
configured it is off (no OpenTelemetry import, no cost). Only OTLP over HTTP with protobuf
bodies is exported (``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` unset or ``http/protobuf``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

TRACES_PATH = "v1/traces"
SUPPORTED_PROTOCOLS = ("", "http/protobuf")


@dataclass(frozen=True)
class TraceConfig:
    """Where spans go: ``endpoint`` is the full OTLP/HTTP traces URL."""

    endpoint: str
    default_service: str


class ConfigError(ValueError):
    """The environment asks for tracing fleetprof cannot do (e.g. OTLP over gRPC)."""


def traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP/HTTP traces URL the environment names, or ``None``: the signal-specific
    variable as given, else the base ``OTEL_EXPORTER_OTLP_ENDPOINT`` plus ``v1/traces``
    (the OTLP exporter specification's rule)."""
    specific = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if specific:
        return specific
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not base:
        return None
    return base if base.endswith("/" + TRACES_PATH) else base.rstrip("/") + "/" + TRACES_PATH


def from_env(default_service: str, environ: Mapping[str, str] | None = None) -> TraceConfig | None:
    """The tracing configuration of ``environ`` (default ``os.environ``), or ``None`` when
    tracing is off (module docstring); :class:`ConfigError` for a protocol not served."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = {x.strip().lower() for x in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if x.strip()}
    if "otlp" not in exporters:
        return None
    endpoint = traces_endpoint(env)
    if endpoint is None:
        return None
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "").strip().lower()
    if protocol not in SUPPORTED_PROTOCOLS:
        raise ConfigError(f"OTLP protocol {protocol!r} is not supported for fleetprof's own spans: use http/protobuf")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"OTLP traces endpoint {endpoint!r} must be an http:// or https:// URL")
    return TraceConfig(endpoint=endpoint, default_service=default_service)
