"""The ECS task's OpenTelemetry collector sidecar (AWS Distro for OpenTelemetry) and the OTEL_*
environment that points the server's own spans at it.

Contract: with a :class:`Telemetry` the task runs a second, non-essential container
``otel-collector`` from a pinned ADOT image whose whole configuration travels in the
``AOT_CONFIG_CONTENT`` environment variable (the ADOT collector reads its config from it when
set). :func:`collector_config` renders that YAML: one ``otlp`` receiver bound to the task's
loopback (``127.0.0.1:4317`` gRPC, ``127.0.0.1:4318`` HTTP; awsvpc containers of one task share
it, nothing outside the task can reach it), ``memory_limiter`` then ``batch`` processors, the
``awsxray`` exporter in the stack's region (``xray``) and an ``otlphttp`` exporter to fleetprof
itself on ``127.0.0.1:<APP_PORT>`` (``fleetprof``) with the tenant header and, where the server
requires auth, the bearer token from the ``FLEETPROF_TRACES_TOKEN`` environment variable (a
Secrets Manager secret; the token never appears in the config text). A ``health_check``
extension on loopback backs the container's ``/healthcheck`` probe; the collector's own metrics
listener is off. Sampling is the SDK's (``parentbased_traceidratio`` with the configured
ratio), so unsampled spans never leave the server process. :func:`server_otel_env` is the
server container's OTEL_* environment: the sidecar's OTLP/HTTP endpoint and the sampler with
a collector, ``OTEL_SDK_DISABLED=true`` without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from components.edge import APP_PORT

COLLECTOR_NAME = "otel-collector"
COLLECTOR_USER = "10001:10001"
"""The ADOT image sets no USER (root); the collector needs no privilege, so the task sets one."""
ADOT_REPOSITORY = "public.ecr.aws/aws-observability/aws-otel-collector"
DEFAULT_COLLECTOR_IMAGE = (
    f"{ADOT_REPOSITORY}:v0.48.0@sha256:9b28046359054b414f4ba76056ba4e8cffda2d53fbcee06171d7eeecd71326c3"
)
"""ADOT collector v0.48.0, pinned by digest (the tag is informational; ECS pulls the digest)."""
CONFIG_ENV = "AOT_CONFIG_CONTENT"
TOKEN_ENV = "FLEETPROF_TRACES_TOKEN"
LOOPBACK = "127.0.0.1"
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
HEALTH_PORT = 13133
COLLECTOR_PORTS: tuple[int, ...] = (OTLP_GRPC_PORT, OTLP_HTTP_PORT, HEALTH_PORT)
"""Every port the collector listens on (all on the task's loopback)."""
PLATFORM_TENANT = "fleetprof-platform"
"""Tenant of the platform's own spans when the server runs without auth (with auth, the
token's tenant)."""
SERVER_SERVICE_NAME = "fleetprof-server"
SAMPLER = "parentbased_traceidratio"
MEMORY_LIMIT_PERCENT = 80
SPIKE_PERCENT_OF_LIMIT = 25
MIN_COLLECTOR_MEMORY_MIB = 64


@dataclass(frozen=True)
class FleetprofExport:
    """Where the collector sends the platform's spans inside fleetprof: the tenant header, and
    whether the server needs the bearer token from :data:`TOKEN_ENV`."""

    tenant: str
    token: bool


@dataclass(frozen=True)
class Telemetry:
    """The sidecar of one task: image, its CPU/memory share, the sampling ratio and exporters."""

    image: str
    cpu: int
    memory: int
    sampling_ratio: float
    region: str
    environment: str
    xray: bool
    fleetprof: FleetprofExport | None

    @property
    def exporters(self) -> tuple[str, ...]:
        """Names of the traces pipeline's exporters, in config order."""
        return (("awsxray",) if self.xray else ()) + (("otlphttp/fleetprof",) if self.fleetprof else ())


def memory_limiter(memory_mib: int) -> dict[str, Any]:
    """``memory_limiter`` settings for a container of ``memory_mib``: refuse data at
    :data:`MEMORY_LIMIT_PERCENT` of the container's hard limit, with a spike allowance of
    :data:`SPIKE_PERCENT_OF_LIMIT` of that (so the soft limit stays well below the OOM kill)."""
    if memory_mib < MIN_COLLECTOR_MEMORY_MIB:
        raise ValueError(f"the collector needs at least {MIN_COLLECTOR_MEMORY_MIB} MiB, got {memory_mib}")
    limit = memory_mib * MEMORY_LIMIT_PERCENT // 100
    return {"check_interval": "1s", "limit_mib": limit, "spike_limit_mib": max(1, limit * SPIKE_PERCENT_OF_LIMIT // 100)}


def collector_config(t: Telemetry) -> str:
    """The collector's YAML configuration (module contract). :class:`ValueError` when the
    pipeline would have no exporter."""
    if not t.exporters:
        raise ValueError("the collector has no exporter: enable X-Ray or the export to fleetprof")
    exporters: dict[str, Any] = {}
    if t.xray:
        exporters["awsxray"] = {"region": t.region, "index_all_attributes": False}
    if t.fleetprof:
        headers = {"X-Scope-OrgID": t.fleetprof.tenant}
        if t.fleetprof.token:
            headers["Authorization"] = f"Bearer ${{env:{TOKEN_ENV}}}"
        exporters["otlphttp/fleetprof"] = {
            "endpoint": f"http://{LOOPBACK}:{APP_PORT}",
            "headers": headers,
            "compression": "gzip",
            "retry_on_failure": {"enabled": True, "max_elapsed_time": "60s"},
        }
    config = {
        "extensions": {"health_check": {"endpoint": f"{LOOPBACK}:{HEALTH_PORT}"}},
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"{LOOPBACK}:{OTLP_GRPC_PORT}"},
                    "http": {"endpoint": f"{LOOPBACK}:{OTLP_HTTP_PORT}"},
                }
            }
        },
        "processors": {
            "memory_limiter": memory_limiter(t.memory),
            "batch": {"timeout": "5s", "send_batch_size": 256, "send_batch_max_size": 512},
        },
        "exporters": exporters,
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": list(t.exporters),
                }
            },
        },
    }
    return yaml.safe_dump(config, sort_keys=True)


def collector_container(t: Telemetry, log_group: str, token_secret: str | None) -> dict[str, Any]:
    """The sidecar's container definition: non-essential (a telemetry outage never stops the
    service), non-root, read-only root with the task's ``tmp`` volume, its health check, its
    awslogs stream in the service's log group, and ``token_secret`` (an ECS ``valueFrom``) as
    :data:`TOKEN_ENV` when the export to fleetprof needs it."""
    if bool(t.fleetprof and t.fleetprof.token) != bool(token_secret):
        raise ValueError("the fleetprof export needs the token secret exactly when the server requires auth")
    return {
        "name": COLLECTOR_NAME,
        "image": t.image,
        "essential": False,
        "user": COLLECTOR_USER,
        "readonlyRootFilesystem": True,
        "cpu": t.cpu,
        "memory": t.memory,
        "portMappings": [],
        "environment": [
            {"name": CONFIG_ENV, "value": collector_config(t)},
            {"name": "AWS_REGION", "value": t.region},
        ],
        "secrets": [{"name": TOKEN_ENV, "valueFrom": token_secret}] if token_secret else [],
        "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],
        "healthCheck": {
            "command": ["CMD", "/healthcheck", f"--port={HEALTH_PORT}"],
            "interval": 15,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 10,
        },
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": t.region, "awslogs-stream-prefix": "otel"},
        },
    }


def server_otel_env(t: Telemetry | None, environment: str) -> list[dict[str, str]]:
    """The server container's OTEL_* environment (module contract)."""
    if t is None:
        return [{"name": "OTEL_SDK_DISABLED", "value": "true"}]
    return [
        {"name": "OTEL_SERVICE_NAME", "value": SERVER_SERVICE_NAME},
        {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": f"deployment.environment={environment}"},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": f"http://{LOOPBACK}:{OTLP_HTTP_PORT}"},
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"},
        {"name": "OTEL_TRACES_SAMPLER", "value": SAMPLER},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": format(t.sampling_ratio, "g")},
        {"name": "OTEL_METRICS_EXPORTER", "value": "none"},
        {"name": "OTEL_LOGS_EXPORTER", "value": "none"},
    ]


XRAY_ACTIONS: tuple[str, ...] = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
)
"""What the awsxray exporter (and X-Ray remote sampling) call; X-Ray has no resource-level
permissions for them, so the statement's resource is ``*``."""


def xray_statement() -> dict[str, Any]:
    """The task role's statement for :data:`XRAY_ACTIONS`."""
    return {"Sid": "XRayTraces", "Effect": "Allow", "Action": list(XRAY_ACTIONS), "Resource": "*"}
