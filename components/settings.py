"""Typed settings for one stack, read from Pulumi config (namespace ``fleetprof``).

Contract: every key has its type, default and description in ``Pulumi.yaml`` (the single
source of defaults; the Pulumi CLI and :mod:`components.mockrun` both apply them), so
:func:`load` only uses ``require*`` and never invents a default of its own.
:func:`Settings.validate` rejects inconsistent combinations before any resource exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

NAMESPACE = "fleetprof"


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
    l0_expiry_days: int = 7
    noncurrent_version_days: int = 30
    analysis_expiry_days: int = 365
    alb_log_expiry_days: int = 90
    point_in_time_recovery: bool = True
    deletion_protection: bool = True
    # edge
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    certificate_arn: str = ""
    allow_plain_http: bool = False
    waf_enabled: bool = True
    waf_rate_limit: int = 2000
    # ingest service
    image_uri: str = ""
    image_tag: str = "0.1.0"
    task_cpu: int = 512
    task_memory: int = 1024
    desired_count: int = 2
    min_count: int = 2
    max_count: int = 6
    cpu_target_percent: int = 60
    requests_per_target: int = 1000
    log_retention_days: int = 30
    # ray
    ray_head_instance_type: str = "m7i.large"
    ray_worker_instance_type: str = "m7i.xlarge"
    ray_worker_min: int = 0
    ray_worker_max: int = 4
    ray_worker_desired: int = 1
    ray_volume_gb: int = 100
    ray_ami_parameter: str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    ray_admin_security_group_id: str = ""
    fleetprof_pip_spec: str = "fleetprof[workers]==0.1.0"
    compact_schedule: str = "*:0/15"
    analyze_schedule: str = "hourly"
    # observability
    alarm_email: str = ""
    alarm_5xx_threshold: int = 10
    alarm_latency_p99_ms: int = 2000
    alarm_cpu_percent: int = 80
    alarm_throttle_threshold: int = 5
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def https(self) -> bool:
        """True when an ACM certificate is configured (HTTPS listener + 80→443 redirect)."""
        return bool(self.certificate_arn)

    @property
    def nat_gateway_count(self) -> int:
        """Number of NAT gateways the network creates."""
        return self.az_count if self.nat_per_az else 1

    def validate(self) -> Settings:
        """Return self, or raise :class:`SettingsError` naming the first bad combination."""
        if not 2 <= self.az_count <= 4:
            raise SettingsError(f"azCount must be 2..4 (ALB needs 2 AZs), got {self.az_count}")
        if not self.https and not self.allow_plain_http:
            raise SettingsError(
                "no certificateArn configured and allowPlainHttp is false: "
                "set fleetprof:certificateArn or explicitly allow plain HTTP"
            )
        if self.certificate_arn and not self.certificate_arn.startswith("arn:"):
            raise SettingsError(f"certificateArn is not an ARN: {self.certificate_arn!r}")
        if not self.min_count <= self.desired_count <= self.max_count:
            raise SettingsError("need minCount <= desiredCount <= maxCount")
        if not self.ray_worker_min <= self.ray_worker_desired <= self.ray_worker_max:
            raise SettingsError("need rayWorkerMin <= rayWorkerDesired <= rayWorkerMax")
        if not self.allowed_cidrs:
            raise SettingsError("allowedCidrs must not be empty")
        for days in (self.flow_log_retention_days, self.log_retention_days):
            if days <= 0:
                raise SettingsError("log retention must be a positive number of days")
        return self


def load(config: pulumi.Config | None = None, *, environment: str | None = None) -> Settings:
    """Read and validate the settings of the current stack from Pulumi config."""
    c = config or pulumi.Config(NAMESPACE)
    region = pulumi.Config("aws").require("region")
    return Settings(
        environment=environment or pulumi.get_stack(),
        region=region,
        owner=c.require("owner"),
        cost_center=c.require("costCenter"),
        vpc_cidr=c.require("vpcCidr"),
        az_count=c.require_int("azCount"),
        nat_per_az=c.require_bool("natPerAz"),
        interface_endpoints=c.require_bool("interfaceEndpoints"),
        flow_log_retention_days=c.require_int("flowLogRetentionDays"),
        l0_expiry_days=c.require_int("l0ExpiryDays"),
        noncurrent_version_days=c.require_int("noncurrentVersionDays"),
        analysis_expiry_days=c.require_int("analysisExpiryDays"),
        alb_log_expiry_days=c.require_int("albLogExpiryDays"),
        point_in_time_recovery=c.require_bool("pointInTimeRecovery"),
        deletion_protection=c.require_bool("deletionProtection"),
        allowed_cidrs=tuple(c.require_object("allowedCidrs")),
        certificate_arn=c.get("certificateArn") or "",
        allow_plain_http=c.require_bool("allowPlainHttp"),
        waf_enabled=c.require_bool("wafEnabled"),
        waf_rate_limit=c.require_int("wafRateLimit"),
        image_uri=c.get("imageUri") or "",
        image_tag=c.require("imageTag"),
        task_cpu=c.require_int("taskCpu"),
        task_memory=c.require_int("taskMemory"),
        desired_count=c.require_int("desiredCount"),
        min_count=c.require_int("minCount"),
        max_count=c.require_int("maxCount"),
        cpu_target_percent=c.require_int("cpuTargetPercent"),
        requests_per_target=c.require_int("requestsPerTarget"),
        log_retention_days=c.require_int("logRetentionDays"),
        ray_head_instance_type=c.require("rayHeadInstanceType"),
        ray_worker_instance_type=c.require("rayWorkerInstanceType"),
        ray_worker_min=c.require_int("rayWorkerMin"),
        ray_worker_max=c.require_int("rayWorkerMax"),
        ray_worker_desired=c.require_int("rayWorkerDesired"),
        ray_volume_gb=c.require_int("rayVolumeGb"),
        ray_ami_parameter=c.require("rayAmiParameter"),
        ray_admin_security_group_id=c.get("rayAdminSecurityGroupId") or "",
        fleetprof_pip_spec=c.require("fleetprofPipSpec"),
        compact_schedule=c.require("compactSchedule"),
        analyze_schedule=c.require("analyzeSchedule"),
        alarm_email=c.get("alarmEmail") or "",
        alarm_5xx_threshold=c.require_int("alarm5xxThreshold"),
        alarm_latency_p99_ms=c.require_int("alarmLatencyP99Ms"),
        alarm_cpu_percent=c.require_int("alarmCpuPercent"),
        alarm_throttle_threshold=c.require_int("alarmThrottleThreshold"),
    ).validate()
