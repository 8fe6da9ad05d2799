"""fleetprof on AWS — the Pulumi program.

Reads one typed :class:`components.settings.Settings` from the stack config and wires the
layers together. Stacks differ by config only (``Pulumi.<stack>.yaml``).
"""

import pulumi

from components.artifacts import constraints_file, fleetprof_wheel
from components.audit import Audit, AuditArgs
from components.backup import Recovery, RecoveryArgs, ReplicatedBucket
from components.edge import Edge, EdgeArgs
from components.ingest_service import IngestService, IngestServiceArgs
from components.network import Network, NetworkArgs
from components.notifications import AnomalyNotifications, AnomalyNotificationsArgs
from components.observability import Observability, ObservabilityArgs
from components.ray_cluster import DASHBOARD_PORT, RayCluster, RayClusterArgs
from components.settings import load
from components.storage import Storage, StorageArgs
from components.tags import base_tags

settings = load()
base = base_tags(settings.environment, settings.owner, settings.cost_center)

storage = Storage(
    "storage",
    StorageArgs(
        tags=base,
        **settings.pick(
            "region",
            "noncurrent_version_days",
            "analysis_expiry_days",
            "alb_log_expiry_days",
            "point_in_time_recovery",
            "deletion_protection",
        ),
    ),
)

network = Network(
    "network",
    NetworkArgs(
        tags=base,
        kms_key_arn=storage.key.arn,
        extra_interface_services=("xray",) if (settings.otel_collector and settings.xray_enabled) or settings.ray_tracing else (),
        **settings.pick("region", "vpc_cidr", "az_count", "nat_per_az", "interface_endpoints", "flow_log_retention_days"),
    ),
)

edge = Edge(
    "edge",
    EdgeArgs(
        tags=base,
        vpc_id=network.vpc.id,
        public_subnet_ids=[s.id for s in network.public_subnets],
        access_logs_bucket=storage.alb_logs_bucket.bucket,
        access_logs_ready=[storage.alb_logs_policy],
        account_id=storage.account_id,
        kms_key_arn=storage.key.arn,
        **settings.pick(
            "allowed_cidrs",
            "certificate_arn",
            "domain_name",
            "hosted_zone_name",
            "allow_plain_http",
            "deletion_protection",
            "waf_enabled",
            "waf_rate_limit",
            "waf_query_rate_limit",
            "waf_log_retention_days",
            "region",
        ),
    ),
)

# What the ingest service and the Ray cluster both need of the network and of storage.
data_plane = {
    "region": settings.region,
    "vpc_id": network.vpc.id,
    "private_subnet_ids": [s.id for s in network.private_subnets],
    "profiles_bucket": storage.profiles_bucket.bucket,
    "profiles_bucket_arn": storage.profiles_bucket.arn,
    "table_name": storage.table.name,
    "table_arn": storage.table.arn,
    "kms_key_arn": storage.key.arn,
}

ingest = IngestService(
    "ingest",
    IngestServiceArgs(
        tags=base,
        account_id=storage.account_id,
        secrets_key_arn=storage.secrets_key.arn,
        alb_security_group_id=edge.security_group.id,
        alb_arn_suffix=edge.alb.arn_suffix,
        target_group_arn=edge.target_group.arn,
        target_group_arn_suffix=edge.target_group.arn_suffix,
        listeners=list(edge.listeners),
        analysis_bucket=storage.analysis_bucket.bucket,
        analysis_bucket_arn=storage.analysis_bucket.arn,
        **data_plane,
        **settings.pick("cpu", "memory", prefix="task_"),
        **settings.pick(
            "image_uri",
            "deletion_protection",
            "desired_count",
            "min_count",
            "max_count",
            "cpu_target_percent",
            "ingest_pushes_per_cpu_second",
            "predictive_scaling",
            "log_retention_days",
            "alarm_5xx_threshold",
            "auth_enabled",
            "auth_tokens",
            "otel_collector",
            "otel_collector_image",
            "otel_collector_cpu",
            "otel_collector_memory",
            "traces_sampling_ratio",
            "xray_enabled",
            "otel_collector_token",
        ),
    ),
)

anomalies = (
    AnomalyNotifications(
        "notifications", AnomalyNotificationsArgs(tags=base, kms_key_arn=storage.key.arn, emails=settings.anomaly_emails)
    )
    if settings.anomaly_notifications
    else None
)

ray = RayCluster(
    "ray",
    RayClusterArgs(
        tags=base,
        anomaly_topic_arn=anomalies.topic.arn if anomalies else None,
        secrets_key_arn=storage.secrets_key.arn,
        account_id=storage.account_id,
        analysis_bucket=storage.analysis_bucket.bucket,
        analysis_bucket_arn=storage.analysis_bucket.arn,
        artifacts_bucket=storage.artifacts_bucket.bucket,
        artifacts_bucket_arn=storage.artifacts_bucket.arn,
        wheel=fleetprof_wheel(),
        constraints=constraints_file(),
        **data_plane,
        **settings.pick(
            "head_instance_type",
            "worker_instance_type",
            "worker_min",
            "worker_max",
            "worker_desired",
            "volume_gb",
            "ami_id",
            "admin_security_group_id",
            "cpu_target_percent",
            "nightly_workers",
            "nightly_window_minutes",
            "token_rotation",
            "tracing",
            "traces_sampling_ratio",
            prefix="ray_",
        ),
        **settings.pick(
            "compact_schedule",
            "analyze_schedule",
            "analyze_window",
            "retention_schedule",
            "retention_days",
            "log_retention_days",
            "predictive_scaling",
        ),
    ),
)

observability = Observability(
    "observability",
    ObservabilityArgs(
        tags=base,
        kms_key_arn=storage.key.arn,
        alb_arn_suffix=edge.alb.arn_suffix,
        target_group_arn_suffix=edge.target_group.arn_suffix,
        cluster_name=ingest.cluster.name,
        service_name=ingest.service.name,
        table_name=storage.table.name,
        ray_head_instance_id=ray.head.id,
        ray_worker_group_name=ray.workers.name,
        **settings.pick(
            "region",
            "alarm_email",
            "ray_worker_min",
            "alarm_5xx_threshold",
            "alarm_latency_p99_ms",
            "alarm_cpu_percent",
            "alarm_throttle_threshold",
            "alarm_memory_percent",
            "alarm_l0_backlog_minutes",
            "compact_interval_minutes",
        ),
    ),
)

audit = Audit(
    "audit",
    AuditArgs(
        tags=base,
        account_id=storage.account_id,
        data_bucket_arns=[storage.profiles_bucket.arn, storage.analysis_bucket.arn],
        data_bucket_names=[storage.profiles_bucket.bucket, storage.analysis_bucket.bucket],
        **settings.pick(
            "region",
            "cloudtrail_enabled",
            "audit_log_retention_days",
            "config_recorder",
            "guard_duty",
            "security_hub",
            "deletion_protection",
            "noncurrent_version_days",
            "log_retention_days",
            "backup_plan",
            "dr_region",
        ),
    ),
)

recovery = Recovery(
    "recovery",
    RecoveryArgs(
        tags=base,
        account_id=storage.account_id,
        kms_key_arn=storage.key.arn,
        table_arn=storage.table.arn,
        data_buckets=[
            ReplicatedBucket("profiles", storage.profiles_bucket.bucket, storage.profiles_bucket.arn, None),
            ReplicatedBucket(
                "analysis", storage.analysis_bucket.bucket, storage.analysis_bucket.arn, settings.analysis_expiry_days
            ),
        ],
        ready=[storage],
        **settings.pick(
            "region",
            "backup_plan",
            "backup_schedule",
            "backup_retention_days",
            "dr_region",
            "deletion_protection",
            "noncurrent_version_days",
        ),
    ),
)

pulumi.export("url", edge.url)
pulumi.export("profilesBucket", storage.profiles_bucket.bucket)
pulumi.export("analysisBucket", storage.analysis_bucket.bucket)
pulumi.export("albLogsBucket", storage.alb_logs_bucket.bucket)
pulumi.export("indexTable", storage.table.name)
pulumi.export("ecrRepositoryUrl", ingest.repository.repository_url)
pulumi.export("image", ingest.image)
pulumi.export("rayHeadInstanceId", ray.head.id)
pulumi.export("rayAuthTokenParameter", ray.token_parameter)
pulumi.export("rayLogGroup", ray.log_group.name)
pulumi.export("artifactsBucket", storage.artifacts_bucket.bucket)
pulumi.export("rayWheelKey", ray.wheel_object.key)
pulumi.export(
    "rayPortForwardCommand",
    ray.head.id.apply(
        lambda head: (
            f"aws ssm start-session --region {settings.region} --target {head} "
            "--document-name AWS-StartPortForwardingSession "
            f"--parameters '{{\"portNumber\":[\"{DASHBOARD_PORT}\"],\"localPortNumber\":[\"{DASHBOARD_PORT}\"]}}'"
        )
    ),
)
pulumi.export("dashboardUrl", observability.dashboard_url)
pulumi.export("alarmTopicArn", observability.topic.arn)
pulumi.export("anomalyTopicArn", anomalies.topic.arn if anomalies else None)
pulumi.export("auditBucket", audit.bucket.bucket if audit.trail or audit.recorder else None)
pulumi.export("backupPlanId", recovery.plan.id if settings.backup_plan else None)
pulumi.export(
    "drReplicaBuckets", {label: r.bucket.bucket for label, r in recovery.replicas.items()} if settings.dr_region else None
)
