"""fleetprof on AWS — the Pulumi program.

Reads one typed :class:`components.settings.Settings` from the stack config and wires the
layers together. Stacks differ by config only (``Pulumi.<stack>.yaml``).
"""

import pulumi

from components.edge import Edge, EdgeArgs
from components.ingest_service import IngestService, IngestServiceArgs
from components.network import Network, NetworkArgs
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
        region=settings.region,
        l0_expiry_days=settings.l0_expiry_days,
        noncurrent_version_days=settings.noncurrent_version_days,
        analysis_expiry_days=settings.analysis_expiry_days,
        alb_log_expiry_days=settings.alb_log_expiry_days,
        point_in_time_recovery=settings.point_in_time_recovery,
        deletion_protection=settings.deletion_protection,
    ),
)

network = Network(
    "network",
    NetworkArgs(
        tags=base,
        region=settings.region,
        vpc_cidr=settings.vpc_cidr,
        az_count=settings.az_count,
        nat_per_az=settings.nat_per_az,
        interface_endpoints=settings.interface_endpoints,
        flow_log_retention_days=settings.flow_log_retention_days,
        kms_key_arn=storage.key.arn,
    ),
)

edge = Edge(
    "edge",
    EdgeArgs(
        tags=base,
        vpc_id=network.vpc.id,
        public_subnet_ids=[s.id for s in network.public_subnets],
        allowed_cidrs=settings.allowed_cidrs,
        certificate_arn=settings.certificate_arn,
        allow_plain_http=settings.allow_plain_http,
        deletion_protection=settings.deletion_protection,
        waf_enabled=settings.waf_enabled,
        waf_rate_limit=settings.waf_rate_limit,
        access_logs_bucket=storage.alb_logs_bucket.bucket,
        access_logs_ready=[storage.alb_logs_policy],
    ),
)

ingest = IngestService(
    "ingest",
    IngestServiceArgs(
        tags=base,
        region=settings.region,
        vpc_id=network.vpc.id,
        private_subnet_ids=[s.id for s in network.private_subnets],
        alb_security_group_id=edge.security_group.id,
        alb_arn_suffix=edge.alb.arn_suffix,
        target_group_arn=edge.target_group.arn,
        target_group_arn_suffix=edge.target_group.arn_suffix,
        listeners=list(edge.listeners),
        profiles_bucket=storage.profiles_bucket.bucket,
        profiles_bucket_arn=storage.profiles_bucket.arn,
        table_name=storage.table.name,
        table_arn=storage.table.arn,
        kms_key_arn=storage.key.arn,
        image_uri=settings.image_uri,
        image_tag=settings.image_tag,
        cpu=settings.task_cpu,
        memory=settings.task_memory,
        desired_count=settings.desired_count,
        min_count=settings.min_count,
        max_count=settings.max_count,
        cpu_target_percent=settings.cpu_target_percent,
        requests_per_target=settings.requests_per_target,
        log_retention_days=settings.log_retention_days,
        alarm_5xx_threshold=settings.alarm_5xx_threshold,
    ),
)

ray = RayCluster(
    "ray",
    RayClusterArgs(
        tags=base,
        region=settings.region,
        account_id=storage.account_id,
        vpc_id=network.vpc.id,
        private_subnet_ids=[s.id for s in network.private_subnets],
        profiles_bucket=storage.profiles_bucket.bucket,
        profiles_bucket_arn=storage.profiles_bucket.arn,
        analysis_bucket=storage.analysis_bucket.bucket,
        analysis_bucket_arn=storage.analysis_bucket.arn,
        table_name=storage.table.name,
        table_arn=storage.table.arn,
        kms_key_arn=storage.key.arn,
        head_instance_type=settings.ray_head_instance_type,
        worker_instance_type=settings.ray_worker_instance_type,
        worker_min=settings.ray_worker_min,
        worker_max=settings.ray_worker_max,
        worker_desired=settings.ray_worker_desired,
        volume_gb=settings.ray_volume_gb,
        ami_parameter=settings.ray_ami_parameter,
        admin_security_group_id=settings.ray_admin_security_group_id,
        pip_spec=settings.fleetprof_pip_spec,
        compact_schedule=settings.compact_schedule,
        analyze_schedule=settings.analyze_schedule,
    ),
)

observability = Observability(
    "observability",
    ObservabilityArgs(
        tags=base,
        region=settings.region,
        kms_key_arn=storage.key.arn,
        alarm_email=settings.alarm_email,
        alb_arn_suffix=edge.alb.arn_suffix,
        target_group_arn_suffix=edge.target_group.arn_suffix,
        cluster_name=ingest.cluster.name,
        service_name=ingest.service.name,
        table_name=storage.table.name,
        ray_head_instance_id=ray.head.id,
        ray_worker_group_name=ray.workers.name,
        ray_worker_min=settings.ray_worker_min,
        alarm_5xx_threshold=settings.alarm_5xx_threshold,
        alarm_latency_p99_ms=settings.alarm_latency_p99_ms,
        alarm_cpu_percent=settings.alarm_cpu_percent,
        alarm_throttle_threshold=settings.alarm_throttle_threshold,
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
