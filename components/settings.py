"""Typed settings for one stack, read from Pulumi config (namespace ``fleetprof``).

Contract: every key has its type, default and description in ``Pulumi.yaml`` (the single
source of defaults; the Pulumi CLI and :mod:`components.mockrun` both apply them), so
:func:`load` only uses ``require*`` and never invents a default of its own.
:func:`Settings.validate` rejects inconsistent combinations before any resource exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, get_origin, get_type_hints

import pulumi

NAMESPACE = "fleetprof"


IMAGE_DIGEST_RE = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
"""A container image reference pinned by digest."""


class SettingsError(ValueError):
    """A stack's configuration is inconsistent (raised before any resource is created)."""


@dataclass(frozen=True)
class Settings:
    """All knobs of one stack. Field names are the snake_case of the config keys."""

    environment: str
    region: str
    owner: str = "platform-team"
    cost_center: str = "apm"
    # network
    vpc_cidr: str = "10.40.0.0/16"
    az_count: int = 2
    nat_per_az: bool = True
    interface_endpoints: bool = False
    flow_log_retention_days: int = 30
    # storage
    noncurrent_version_days: int = 30
    analysis_expiry_days: int = 365
    alb_log_expiry_days: int = 90
    point_in_time_recovery: bool = True
    deletion_protection: bool = True
    # edge
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    certificate_arn: str = ""
    domain_name: str = ""
    hosted_zone_name: str = ""
    allow_plain_http: bool = False
    waf_enabled: bool = True
    waf_rate_limit: int = 2000
    # ingest service
    image_uri: str = ""
    task_cpu: int = 512
    task_memory: int = 1024
    desired_count: int = 2
    min_count: int = 2
    max_count: int = 6
    cpu_target_percent: int = 60
    log_retention_days: int = 30
    # ray
    ray_head_instance_type: str = "m7i.large"
    ray_worker_instance_type: str = "m7i.xlarge"
    ray_worker_min: int = 0
    ray_worker_max: int = 4
    ray_worker_desired: int = 1
    ray_volume_gb: int = 100
    ray_ami_id: str = ""
    ray_admin_security_group_id: str = ""
    ray_cpu_target_percent: int = 60
    compact_schedule: str = "*:0/15"
    analyze_schedule: str = "hourly"
    analyze_window: str = "last-hour"
    retention_schedule: str = "daily"
    retention_days: int = 30
    # observability
    alarm_email: str = ""
    alarm_5xx_threshold: int = 10
    alarm_latency_p99_ms: int = 2000
    alarm_cpu_percent: int = 80
    alarm_throttle_threshold: int = 5
    alarm_memory_percent: int = 80
    alarm_l0_backlog_minutes: int = 180
    anomaly_notifications: bool = False
    anomaly_emails: tuple[str, ...] = ()
    # scaling
    ingest_pushes_per_cpu_second: int = 1169
    predictive_scaling: str = "off"
    ray_nightly_workers: int = 0
    ray_nightly_window_minutes: int = 120
    # audit and compliance
    cloudtrail_enabled: bool = True
    audit_log_retention_days: int = 365
    config_recorder: bool = False
    guard_duty: bool = False
    security_hub: bool = False
    # recovery
    backup_plan: bool = True
    backup_schedule: str = "cron(0 3 * * ? *)"
    backup_retention_days: int = 35
    dr_region: str = ""
    # access
    auth_enabled: bool = True
    auth_tokens: str = ""
    ray_token_rotation: int = 1
    waf_query_rate_limit: int = 2000
    waf_log_retention_days: int = 90
    # telemetry
    otel_collector: bool = False
    otel_collector_image: str = ""
    otel_collector_cpu: int = 128
    otel_collector_memory: int = 256
    traces_sampling_ratio: float = 0.05
    xray_enabled: bool = True
    otel_collector_token: str = ""
    ray_tracing: bool = False
    ray_traces_sampling_ratio: float = 1.0
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def https(self) -> bool:
        """True when a certificate is configured, managed (``domain_name``) or brought
        (``certificate_arn``): HTTPS listener + 80→443 redirect."""
        return bool(self.certificate_arn or self.domain_name)

    @property
    def server_memory(self) -> int:
        """MiB of the task left to the server container (the collector sidecar takes its share)."""
        return self.task_memory - (self.otel_collector_memory if self.otel_collector else 0)

    @property
    def server_cpu(self) -> int:
        """CPU units of the task left to the server container."""
        return self.task_cpu - (self.otel_collector_cpu if self.otel_collector else 0)

    @property
    def nat_gateway_count(self) -> int:
        """Number of NAT gateways the network creates."""
        return self.az_count if self.nat_per_az else 1

    def pick(self, *names: str, prefix: str = "") -> dict[str, Any]:
        """``{name: self.<prefix><name>}`` for each of ``names``, to pass settings on as
        keyword arguments of a component's Args (an unknown field raises AttributeError)."""
        return {name: getattr(self, prefix + name) for name in names}

    def validate(self) -> Settings:
        """Return self, or raise :class:`SettingsError` naming the first bad combination."""
        from components.ingest_service import ingest_limits

        self._validate_telemetry()  # first: the server's memory depends on the collector's share
        self._validate_ray_tracing()
        try:
            ingest_limits(self.server_memory)
        except ValueError as e:
            keys = "taskMemory minus fleetprof:otelCollectorMemory" if self.otel_collector else "taskMemory"
            raise SettingsError(f"fleetprof:{keys}: {e}") from None
        if self.image_uri and not IMAGE_DIGEST_RE.search(self.image_uri):
            raise SettingsError(
                f"fleetprof:imageUri must be pinned by digest (<repository>@sha256:<64 hex>), got "
                f"{self.image_uri!r}: a tag is not re-resolved, so a later push would never deploy; "
                "leave it empty to build and push the image from this repository"
            )
        if not 2 <= self.az_count <= 4:
            raise SettingsError(f"azCount must be 2..4 (ALB needs 2 AZs), got {self.az_count}")
        if not self.https and not self.allow_plain_http:
            raise SettingsError(
                "no certificate configured and allowPlainHttp is false: set fleetprof:domainName and "
                "fleetprof:hostedZoneName (or fleetprof:certificateArn), or explicitly allow plain HTTP"
            )
        self._validate_certificate()
        if not self.min_count <= self.desired_count <= self.max_count:
            raise SettingsError("need minCount <= desiredCount <= maxCount")
        if not self.ray_worker_min <= self.ray_worker_desired <= self.ray_worker_max:
            raise SettingsError("need rayWorkerMin <= rayWorkerDesired <= rayWorkerMax")
        self._validate_ray()
        if not self.allowed_cidrs:
            raise SettingsError("allowedCidrs must not be empty")
        for days in (self.flow_log_retention_days, self.log_retention_days):
            if days <= 0:
                raise SettingsError("log retention must be a positive number of days")
        self._validate_observability()
        self._validate_scaling()
        self._validate_audit_and_recovery()
        self._validate_access()
        return self

    def _validate_telemetry(self) -> None:
        """The sampling ratios are probabilities; with the collector: a digest-pinned image, a
        CPU/memory share that leaves the server its own, at least one exporter; the collector's
        token only where it is used, and only a token of the table that may write."""
        from components.telemetry import MIN_COLLECTOR_MEMORY_MIB
        from fleetprof.server.auth import parse_tokens

        for key, ratio in (("tracesSamplingRatio", self.traces_sampling_ratio),
                           ("rayTracesSamplingRatio", self.ray_traces_sampling_ratio)):
            if not 0.0 <= ratio <= 1.0:
                raise SettingsError(f"fleetprof:{key} must be 0..1, got {ratio}")
        if self.otel_collector_token and not (self.otel_collector and self.auth_enabled):
            raise SettingsError(
                "fleetprof:otelCollectorToken is set but unused: it authenticates the collector's export to "
                "fleetprof, which needs fleetprof:otelCollector and fleetprof:authEnabled"
            )
        if not self.otel_collector:
            return
        if not IMAGE_DIGEST_RE.search(self.otel_collector_image):
            raise SettingsError(
                f"fleetprof:otelCollectorImage must be pinned by digest (<repository>[:<tag>]@sha256:<64 hex>), "
                f"got {self.otel_collector_image!r}"
            )
        if self.otel_collector_memory < MIN_COLLECTOR_MEMORY_MIB or self.otel_collector_memory >= self.task_memory:
            raise SettingsError(
                f"fleetprof:otelCollectorMemory must be {MIN_COLLECTOR_MEMORY_MIB}..{self.task_memory - 1} MiB "
                f"(below fleetprof:taskMemory), got {self.otel_collector_memory}"
            )
        if not 0 < self.otel_collector_cpu < self.task_cpu:
            raise SettingsError(
                f"fleetprof:otelCollectorCpu must be 1..{self.task_cpu - 1} units (below fleetprof:taskCpu), "
                f"got {self.otel_collector_cpu}"
            )
        if not self.xray_enabled and self.auth_enabled and not self.otel_collector_token:
            raise SettingsError(
                "the collector would have no exporter: fleetprof:xrayEnabled is false and the export to fleetprof "
                "needs fleetprof:otelCollectorToken where fleetprof:authEnabled is true"
            )
        if self.otel_collector_token:
            grant = parse_tokens(self.auth_tokens or "{}", "fleetprof:authTokens").get(self.otel_collector_token)
            if grant is None or "write" not in grant.scopes:
                raise SettingsError(
                    "fleetprof:otelCollectorToken must be a token of fleetprof:authTokens with the write scope "
                    "(issue one with fleetprof token new --scopes write)"
                )

    def _validate_ray_tracing(self) -> None:
        """The Ray nodes' CloudWatch agent sends traces to X-Ray only, so Ray tracing needs X-Ray."""
        if self.ray_tracing and not self.xray_enabled:
            raise SettingsError(
                "fleetprof:rayTracing sends the Ray jobs' spans to X-Ray (through the nodes' CloudWatch agent), "
                "which fleetprof:xrayEnabled false forbids"
            )

    def _validate_access(self) -> None:
        """The token table parses as the server would parse it, and only where auth is on;
        the Ray token generation and the WAF figures are positive."""
        from fleetprof.server.auth import parse_tokens

        if self.auth_tokens and not self.auth_enabled:
            raise SettingsError("fleetprof:authTokens is set but fleetprof:authEnabled is false: the table would be unused")
        try:
            parse_tokens(self.auth_tokens or "{}", "fleetprof:authTokens")
        except ValueError as e:
            raise SettingsError(f"{e} (set it with pulumi config set --secret fleetprof:authTokens)") from None
        for key, value in (("rayTokenRotation", self.ray_token_rotation), ("wafQueryRateLimit", self.waf_query_rate_limit),
                           ("wafLogRetentionDays", self.waf_log_retention_days)):
            if value < 1:
                raise SettingsError(f"fleetprof:{key} must be positive, got {value}")

    def _validate_scaling(self) -> None:
        """Predictive scaling mode, the measured ingest capacity and the nightly worker floor."""
        if self.predictive_scaling not in PREDICTIVE_MODES:
            raise SettingsError(
                f"predictiveScaling must be one of {', '.join(PREDICTIVE_MODES)}, got {self.predictive_scaling!r}"
            )
        if self.ingest_pushes_per_cpu_second <= 0:
            raise SettingsError("ingestPushesPerCpuSecond must be a positive measured figure")
        if not 0 <= self.ray_nightly_workers <= self.ray_worker_max:
            raise SettingsError(
                f"rayNightlyWorkers must be 0..rayWorkerMax ({self.ray_worker_max}), got {self.ray_nightly_workers}"
            )
        if not 1 <= self.ray_nightly_window_minutes < 1440:
            raise SettingsError("rayNightlyWindowMinutes must be 1..1439")

    def _validate_audit_and_recovery(self) -> None:
        """Security Hub needs the Config recorder; DR needs backups (the index is restored from a
        copied backup) and a second region; retention and the backup schedule must be usable."""
        if self.security_hub and not self.config_recorder:
            raise SettingsError("securityHub needs configRecorder: Security Hub controls evaluate AWS Config data")
        if self.audit_log_retention_days < 1 or self.backup_retention_days < 1:
            raise SettingsError("auditLogRetentionDays and backupRetentionDays must be positive")
        if not BACKUP_SCHEDULE.fullmatch(self.backup_schedule):
            raise SettingsError(f"backupSchedule must be cron(...) or rate(...), got {self.backup_schedule!r}")
        if self.dr_region:
            if not REGION_NAME.fullmatch(self.dr_region) or self.dr_region == self.region:
                raise SettingsError(f"drRegion must be an AWS region other than {self.region}, got {self.dr_region!r}")
            if not self.backup_plan:
                raise SettingsError("drRegion needs backupPlan: the index is restored there from a copied backup")

    @property
    def compact_interval_minutes(self) -> int:
        """Minutes between two scheduled compactions (:func:`calendar_interval_minutes` of
        ``compact_schedule``); :class:`SettingsError` naming the key when it is not derivable."""
        try:
            return calendar_interval_minutes(self.compact_schedule)
        except ValueError as e:
            raise SettingsError(f"compactSchedule: {e}") from None

    def _validate_observability(self) -> None:
        """Alarm thresholds: percentages in 1..100; the L0 backlog threshold above the age
        L0 reaches in normal operation (an hour's data waits for the hour to end and settle,
        then for the next scheduled compaction); the anomaly notification keys."""
        for key, value in (("alarmCpuPercent", self.alarm_cpu_percent), ("alarmMemoryPercent", self.alarm_memory_percent)):
            if not 1 <= value <= 100:
                raise SettingsError(f"{key} must be 1..100, got {value}")
        self._validate_anomaly_notifications()
        normal = L0_SETTLED_AGE_MINUTES + self.compact_interval_minutes
        if self.alarm_l0_backlog_minutes <= normal:
            raise SettingsError(
                f"alarmL0BacklogMinutes must exceed {normal} ({L0_SETTLED_AGE_MINUTES} minutes until an hour's L0 "
                f"is compactable plus the compactSchedule interval), got {self.alarm_l0_backlog_minutes}"
            )

    def _validate_anomaly_notifications(self) -> None:
        """Email subscriptions only where the anomaly topic exists; each an address, once."""
        if self.anomaly_emails and not self.anomaly_notifications:
            raise SettingsError(
                "fleetprof:anomalyEmails is set but fleetprof:anomalyNotifications is false: there is no topic to "
                "subscribe them to"
            )
        seen: set[str] = set()
        for email in self.anomaly_emails:
            if not isinstance(email, str) or not EMAIL.fullmatch(email.strip()):
                raise SettingsError(f"fleetprof:anomalyEmails: {email!r} is not an email address")
            if email.strip().lower() in seen:
                raise SettingsError(f"fleetprof:anomalyEmails lists {email!r} twice")
            seen.add(email.strip().lower())

    def _validate_certificate(self) -> None:
        """The edge's certificate keys: either a managed certificate for ``domainName`` in the
        Route 53 zone ``hostedZoneName``, or a brought ``certificateArn`` of this region (the
        account is checked against the caller's by :func:`components.edge.check_certificate_arn`)."""
        domain, zone, arn = self.domain_name.rstrip("."), self.hosted_zone_name.rstrip("."), self.certificate_arn
        if arn and domain:
            raise SettingsError(
                "fleetprof:certificateArn and fleetprof:domainName are both set: set fleetprof:domainName "
                "(+ fleetprof:hostedZoneName) for a certificate the stack manages, or only fleetprof:certificateArn"
            )
        if bool(domain) != bool(zone):
            raise SettingsError("fleetprof:domainName and fleetprof:hostedZoneName must be set together")
        if domain and domain != zone and not domain.endswith("." + zone):
            raise SettingsError(f"fleetprof:domainName {domain!r} is not inside fleetprof:hostedZoneName {zone!r}")
        if not arn:
            return
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn" or parts[2] not in ("acm", "iam"):
            raise SettingsError(f"fleetprof:certificateArn is not an ARN of an ACM or IAM certificate: {arn!r}")
        if parts[2] == "acm" and parts[3] != self.region:
            raise SettingsError(
                f"fleetprof:certificateArn is in region {parts[3]} but this stack deploys to {self.region} "
                f"(aws:region): set fleetprof:certificateArn to a certificate of this account and region, "
                "or set fleetprof:domainName and fleetprof:hostedZoneName"
            )

    def _validate_ray(self) -> None:
        """The Ray cluster's keys: a pinned AMI, a known analysis window, positive retention."""
        if not AMI_ID.fullmatch(self.ray_ami_id):
            raise SettingsError(
                f"rayAmiId must be a pinned AMI id (ami- and 8 or 17 hex digits), got {self.ray_ami_id!r}"
            )
        if self.analyze_window not in ANALYZE_WINDOWS:
            raise SettingsError(f"analyzeWindow must be one of {', '.join(ANALYZE_WINDOWS)}, got {self.analyze_window!r}")
        if self.retention_days <= 0:
            raise SettingsError(f"retentionDays must be a positive number of days, got {self.retention_days}")
        if not 1 <= self.ray_cpu_target_percent <= 100:
            raise SettingsError(f"rayCpuTargetPercent must be 1..100, got {self.ray_cpu_target_percent}")


AMI_ID = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")
"""An EC2 image id (the older 8-digit and the current 17-digit form)."""
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
"""An email address as SNS accepts one for an ``email`` subscription (local@domain.tld)."""
ANALYZE_WINDOWS: tuple[str, ...] = ("last-hour", "last-day")
"""Relative windows ``python -m workers.analyze --window`` accepts for the scheduled run."""
L0_SETTLED_AGE_MINUTES = 65
"""Age at which the oldest L0 of an hour becomes compactable: the hour plus the compactor's
settle delay (``workers.compact.HOUR_MS + SETTLE_MS[1]``)."""
_CALENDAR_SHORTHANDS = {"minutely": 1, "hourly": 60, "daily": 1440}
_CALENDAR_MINUTES = re.compile(r"(?:\*-\*-\* )?\*:(\d{1,2})(?:/(\d{1,2}))?(?::00)?")
_CALENDAR_DAILY = re.compile(r"(?:\*-\*-\* )?\d{1,2}:\d{2}(?::00)?")


def calendar_interval_minutes(expr: str) -> int:
    """Minutes between runs of a systemd ``OnCalendar`` expression of the forms the stacks use:
    ``minutely``/``hourly``/``daily``, ``*:MM`` and ``*:MM/N`` (every N minutes, N dividing 60,
    optionally prefixed ``*-*-* `` and suffixed ``:00``) and ``HH:MM`` (daily);
    :class:`ValueError` for any other form.
    """
    text = expr.strip()
    if text in _CALENDAR_SHORTHANDS:
        return _CALENDAR_SHORTHANDS[text]
    m = _CALENDAR_MINUTES.fullmatch(text)
    if m and int(m.group(1)) < 60:
        step = int(m.group(2)) if m.group(2) else 60
        if step and 60 % step == 0 and int(m.group(1)) < step:
            return step
    if _CALENDAR_DAILY.fullmatch(text):
        return 1440
    raise ValueError(
        f"cannot derive the interval of OnCalendar {expr!r}: use hourly, daily, *:MM, *:MM/N (N dividing 60) or HH:MM"
    )


PREDICTIVE_MODES: tuple[str, ...] = ("off", "ForecastOnly", "ForecastAndScale")
"""``predictiveScaling``: no predictive policy, forecasts only, or forecasts that scale."""
BACKUP_SCHEDULE = re.compile(r"(cron|rate)\(.+\)")
REGION_NAME = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")

OPTIONAL_KEYS: frozenset[str] = frozenset(
    {
        "certificate_arn",
        "domain_name",
        "hosted_zone_name",
        "image_uri",
        "ray_admin_security_group_id",
        "alarm_email",
        "dr_region",
        "auth_tokens",
        "otel_collector_token",
    }
)
"""Fields whose config key may be absent (read as ``""``); every other key is required."""


def config_key(field_name: str) -> str:
    """The config key of a :class:`Settings` field: ``alarm_5xx_threshold`` -> ``alarm5xxThreshold``."""
    first, *rest = field_name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _read(c: pulumi.Config, name: str, type_: Any) -> Any:
    """One config value, read by the type of its :class:`Settings` field."""
    key = config_key(name)
    if name in OPTIONAL_KEYS:
        return c.get(key) or ""
    if type_ is int:
        return c.require_int(key)
    if type_ is float:
        return c.require_float(key)
    if type_ is bool:
        return c.require_bool(key)
    if type_ is str:
        return c.require(key)
    if get_origin(type_) is tuple:
        return tuple(c.require_object(key))
    raise TypeError(f"no config reader for field {name!r} of type {type_!r}")


def load(config: pulumi.Config | None = None, *, environment: str | None = None) -> Settings:
    """Read and validate the settings of the current stack from Pulumi config.

    Every field but ``environment``, ``region`` (``aws:region``) and ``extra`` is read from
    its :func:`config_key`, in field order, with the ``require*`` call of its type.
    """
    c = config or pulumi.Config(NAMESPACE)
    region = pulumi.Config("aws").require("region")
    stack = environment or pulumi.get_stack()
    types = get_type_hints(Settings)
    values = {
        f.name: _read(c, f.name, types[f.name])
        for f in fields(Settings)
        if f.name not in ("environment", "region", "extra")
    }
    return Settings(environment=stack, region=region, **values).validate()
