"""OpenTelemetry tracing of a demo service, set up the way an application would do it: the
SDK's ``TracerProvider`` with pyroscope-otel's ``PyroscopeSpanProcessor`` (profile samples
taken while a root span runs carry its ``span_id``/``span_name``) and a batched OTLP/HTTP
exporter to the fleetprof server's ``/v1/traces``."""

from __future__ import annotations

from typing import Any


def setup_tracing(service_name: str, server: str, tenant: str = "", attributes: dict[str, str] | None = None) -> Any:
    """Install and return the global tracer provider of this process (call ``shutdown()``
    on it at exit to export the last spans)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from pyroscope.otel import PyroscopeSpanProcessor

    resource = Resource.create({"service.name": service_name, "deployment.environment.name": "demo", **(attributes or {})})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(PyroscopeSpanProcessor())
    headers = {"X-Scope-OrgID": tenant} if tenant else None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.rstrip("/") + "/v1/traces", headers=headers)))
    trace.set_tracer_provider(provider)
    return provider
