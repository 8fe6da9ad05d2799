"""Ingest/query service: ECS cluster, ECR repository, Fargate task + service, autoscaling.

Contract with the app (``shared/design.md`` "Deployment interface"): the container runs
``fleetprof serve`` on port 4040 with ``FLEETPROF_STORAGE=s3://<profiles bucket>/``,
``FLEETPROF_INDEX=dynamodb://<table>`` and ``FLEETPROF_HOST=0.0.0.0``; the ALB target group
health-checks ``/readyz``. The task role may use the profiles bucket, the index table and
the KMS key — nothing else. With ``auth_enabled`` the token table is a Secrets Manager secret
under the secrets key, injected by ECS as ``FLEETPROF_AUTH_TOKENS`` from the secret version
the program wrote (so a changed table is a new task definition and a rolling deployment);
only the execution role may read it. Without it the task serves with
``FLEETPROF_INSECURE=1``, visible to the policy pack. Both roles trust ``ecs-tasks`` only for
this account's ECS resources (``aws:SourceAccount``/``aws:SourceArn``). Unless ``image_uri`` names an image pinned by digest, the
program builds the image from this repository and pushes it to the service's ECR
repository before the task definition exists (:mod:`components.service_image`).
With ``otel_collector`` the task also runs the ADOT collector sidecar of
:mod:`components.telemetry` (its CPU and memory come out of the task's, the server keeps the
rest and sizes its ingest limits on it); the server's OTEL_* environment points at it, the task
role may write to X-Ray where ``xray_enabled``, and the collector's token for the export to
fleetprof (``otel_collector_token``) is a second secret only the execution role reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import (
    AlarmSpec,
    encrypted_log_group,
    metric_alarm,
    policy_document,
)
from components.edge import APP_PORT, HEALTH_CHECK_PATH
from components.service_image import build_and_push, pinned_reference
from components.tags import tags
from components.telemetry import (
    PLATFORM_TENANT,
    FleetprofExport,
    Telemetry,
    collector_container,
    server_otel_env,
    xray_statement,
)

CONTAINER_NAME = "fleetprof"
CONTAINER_USER = "10001:10001"
SERVE_COMMAND: tuple[str, ...] = ("fleetprof", "serve")
CPU_ARCHITECTURE = "X86_64"

S3_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
S3_BUCKET_ACTIONS = ["s3:ListBucket", "s3:GetBucketLocation"]
DYNAMODB_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
]
KMS_ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
AUTH_TOKENS_ENV = "FLEETPROF_AUTH_TOKENS"
EMPTY_TOKEN_TABLE = '{"tokens": {}}'
"""The table of a stack that has issued no token yet: auth on, every request refused."""


def ecs_tasks_trust_policy(account_id: str, region: str) -> str:
    """Trust policy of a task or execution role: ``ecs-tasks.amazonaws.com``, only on behalf of
    this account's ECS resources in this region (confused-deputy conditions ECS supports)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{region}:{account_id}:*"},
                    },
                }
            ],
        },
        sort_keys=True,
    )


def secret_reference(secret_arn: str, version_id: str) -> str:
    """ECS ``valueFrom`` of one version of a whole secret (``<arn>:<json-key>:<stage>:<version>``)."""
    return f"{secret_arn}:::{version_id}"


def execution_policy(repository_arn: str, log_group_arn: str, key_arn: str, secret_arn: str | None,
                     secrets_key_arn: str, collector_token_arn: str | None = None) -> str:
    """The execution role's policy: pull the image, write the log group, decrypt image layers,
    (with auth) read the token table secret and (with a collector token) the collector's token
    secret, and decrypt them with the secrets key."""
    statements: list[dict] = [
        {"Sid": "EcrAuth", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
        {
            "Sid": "EcrPull",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": [repository_arn],
        },
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": [f"{log_group_arn}:*"]},
        {"Sid": "DecryptImageLayers", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [key_arn]},
    ]
    if secret_arn:
        statements += [
            {"Sid": "TokenTable", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [secret_arn]},
            {"Sid": "DecryptTokenTable", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [secrets_key_arn]},
        ]
    if collector_token_arn:
        statements.append(
            {"Sid": "CollectorToken", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [collector_token_arn]}
        )
        if not secret_arn:
            statements.append({"Sid": "DecryptCollectorToken", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [secrets_key_arn]})
    return policy_document(statements)


FARGATE_CPU_UNITS_PER_VCPU = 1024
PREDICTIVE_BUFFER_SECONDS = 300
"""Predictive scaling starts tasks this long before the forecast need (image pull and /readyz)."""


def requests_per_target_per_minute(pushes_per_cpu_second: int, task_cpu_units: int, target_percent: int) -> int:
    """The ALB ``RequestCountPerTarget`` (requests per target per minute) at which a task runs at
    ``target_percent`` CPU: the measured ``pushes_per_cpu_second`` of the ingest benchmark times
    the task's vCPUs (``task_cpu_units`` / 1024) times the target utilisation, times 60.

    The same utilisation as the CPU target-tracking policy, so neither policy scales out long
    before the other. :class:`ValueError` for non-positive inputs or a target outside 1..100.
    """
    if pushes_per_cpu_second <= 0 or task_cpu_units <= 0 or not 1 <= target_percent <= 100:
        raise ValueError(
            f"need positive capacity and CPU and a target of 1..100, got {pushes_per_cpu_second}, "
            f"{task_cpu_units}, {target_percent}"
        )
    per_second = pushes_per_cpu_second * task_cpu_units / FARGATE_CPU_UNITS_PER_VCPU * target_percent / 100
    return max(1, int(per_second * 60))


def predictive_cpu_configuration(mode: str, target_percent: int) -> dict:
    """Application Auto Scaling predictive configuration of an ECS service on its CPU metric
    pair (total CPU as the load, average CPU as the scaling metric) at ``target_percent``."""
    return {
        "mode": mode,
        "scheduling_buffer_time": PREDICTIVE_BUFFER_SECONDS,
        "max_capacity_breach_behavior": "HonorMaxCapacity",
        "metric_specifications": [
            {
                "target_value": str(target_percent),
                "predefined_metric_pair_specification": {"predefined_metric_type": "ECSServiceCPUUtilization"},
            }
        ],
    }


@dataclass
class IngestServiceArgs:
    """Inputs of :class:`IngestService`."""

    tags: dict[str, str]
    region: str
    account_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    alb_security_group_id: pulumi.Input[str]
    alb_arn_suffix: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    listeners: list[pulumi.Resource]
    profiles_bucket: pulumi.Input[str]
    profiles_bucket_arn: pulumi.Input[str]
    analysis_bucket: pulumi.Input[str]
    analysis_bucket_arn: pulumi.Input[str]
    table_name: pulumi.Input[str]
    table_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    secrets_key_arn: pulumi.Input[str]
    image_uri: str
    deletion_protection: bool
    cpu: int
    memory: int
    desired_count: int
    min_count: int
    max_count: int
    cpu_target_percent: int
    ingest_pushes_per_cpu_second: int
    predictive_scaling: str
    log_retention_days: int
    alarm_5xx_threshold: int
    auth_enabled: bool = True
    auth_tokens: str = ""
    otel_collector: bool = False
    otel_collector_image: str = ""
    otel_collector_cpu: int = 0
    otel_collector_memory: int = 0
    traces_sampling_ratio: float = 0.0
    xray_enabled: bool = False
    otel_collector_token: str = ""

    def telemetry(self) -> Telemetry | None:
        """The collector sidecar these args ask for (None without one). The export to
        fleetprof goes with the tenant header alone where the server runs without auth, with
        the collector token (and its tenant) where it requires auth, and not at all where it
        requires auth but no token is configured."""
        if not self.otel_collector:
            return None
        export = None
        if not self.auth_enabled:
            export = FleetprofExport(PLATFORM_TENANT, token=False)
        elif self.otel_collector_token:
            from fleetprof.server.auth import parse_tokens

            grant = parse_tokens(self.auth_tokens or "{}", "authTokens")[self.otel_collector_token]
            export = FleetprofExport(grant.tenant, token=True)
        return Telemetry(
            image=self.otel_collector_image,
            cpu=self.otel_collector_cpu,
            memory=self.otel_collector_memory,
            sampling_ratio=self.traces_sampling_ratio,
            region=self.region,
            environment=self.tags["Environment"],
            xray=self.xray_enabled,
            fleetprof=export,
        )


def data_access_policy(bucket_arns: list[str], table_arn: str, key_arn: str, *, read_only_buckets: bool = False) -> str:
    """Least-privilege policy: objects in ``bucket_arns``, the table and its indexes, the key."""
    return policy_document(
        [
            {"Sid": "Objects", "Effect": "Allow", "Action": S3_ACTIONS, "Resource": [f"{a}/*" for a in bucket_arns]},
            {"Sid": "Buckets", "Effect": "Allow", "Action": S3_BUCKET_ACTIONS, "Resource": list(bucket_arns)},
            {"Sid": "IndexTable", "Effect": "Allow", "Action": DYNAMODB_ACTIONS, "Resource": [table_arn, f"{table_arn}/index/*"]},
            {"Sid": "DataKey", "Effect": "Allow", "Action": KMS_ACTIONS, "Resource": [key_arn]},
        ]
    )


def task_data_policy(profiles_arn: str, analysis_arn: str, table_arn: str, key_arn: str, *, xray: bool = False) -> str:
    """The task's data access: :func:`data_access_policy` on the profile store, plus read-only
    access to the analysis bucket (the ``/api/v1/analysis`` routes; the Ray jobs write it), plus
    the X-Ray writes of the collector sidecar with ``xray``."""
    statements = json.loads(data_access_policy([profiles_arn], table_arn, key_arn))["Statement"]
    statements += [
        {"Sid": "AnalysisObjectsRead", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"{analysis_arn}/*"]},
        {"Sid": "AnalysisBucketList", "Effect": "Allow", "Action": S3_BUCKET_ACTIONS, "Resource": [analysis_arn]},
    ]
    if xray:
        statements.append(xray_statement())
    return policy_document(statements)


IDLE_RSS_MIB = 300
"""Resident memory of an idle ``fleetprof serve`` (``make bench``, bench_ingest_memory: 258 MiB)."""
SMALL_PUSH_HEADROOM_MIB = 128
"""Kept for the agent pushes that never wait for a decode slot."""
BYTES_PER_FRAME = 330
"""Peak memory per stack frame of the worst accepted request (bench_ingest_memory: +624 MiB
for 2M frames of deep pprof stacks)."""
MAX_FRAMES_PER_REQUEST = 2_000_000
"""The server's own default; a task never raises it."""
MIN_FRAMES_PER_REQUEST = 1_000_000
"""What a task must accept: a 10 s JFR recording of a busy JVM is about 1.2M frames."""


def ingest_limits(memory_mib: int) -> dict[str, int]:
    """Decode slots and frames per request so that the worst accepted requests fit in the
    task's memory: idle + headroom + slots x frames x bytes per frame <= memory.

    Two slots when each can still take the server's default cap, else one slot with the cap
    the memory allows. Raises ValueError when that cap is below what agents send."""
    spare = (memory_mib - IDLE_RSS_MIB - SMALL_PUSH_HEADROOM_MIB) * 1024 * 1024
    for slots in (2, 1):
        frames = min(MAX_FRAMES_PER_REQUEST, spare // (slots * BYTES_PER_FRAME))
        if frames >= MAX_FRAMES_PER_REQUEST or (slots == 1 and frames >= MIN_FRAMES_PER_REQUEST):
            return {"large_decode_slots": slots, "max_frames_per_request": int(frames)}
    raise ValueError(
        f"{memory_mib} MiB leaves room for {max(spare, 0) // BYTES_PER_FRAME:,} frames per ingest request, "
        f"below the {MIN_FRAMES_PER_REQUEST:,} agents send: raise taskMemory"
    )


def container_definitions(image: str, bucket: str, table: str, log_group: str, region: str, cpu: int, memory: int, *,
                          analysis_bucket: str, auth_secret: str | None, telemetry: Telemetry | None = None,
                          collector_token_secret: str | None = None, environment: str = "") -> str:
    """The container definitions JSON: the server first (non-root, read-only root fs, health
    check): with ``auth_secret`` (an ECS ``valueFrom``) the token table comes from it as
    ``FLEETPROF_AUTH_TOKENS``; without it the server runs with ``FLEETPROF_INSECURE=1``. With
    ``telemetry`` the collector sidecar follows; ``cpu``/``memory`` are the task's, of which the
    server gets what the sidecar leaves, and the server starts after the sidecar has started."""
    auth_env = [] if auth_secret else [{"name": "FLEETPROF_INSECURE", "value": "1"}]
    secrets = [{"name": AUTH_TOKENS_ENV, "valueFrom": auth_secret}] if auth_secret else []
    if telemetry is not None:
        cpu, memory = cpu - telemetry.cpu, memory - telemetry.memory
    sidecars = [] if telemetry is None else [collector_container(telemetry, log_group, collector_token_secret)]
    depends = [] if telemetry is None else [{"containerName": sidecars[0]["name"], "condition": "START"}]
    return json.dumps(
        [
            {
                "name": CONTAINER_NAME,
                "image": image,
                "essential": True,
                "command": list(SERVE_COMMAND),
                "user": CONTAINER_USER,
                "readonlyRootFilesystem": True,
                "cpu": cpu,
                "memory": memory,
                "portMappings": [{"containerPort": APP_PORT, "protocol": "tcp"}],
                "environment": [
                    {"name": "FLEETPROF_STORAGE", "value": f"s3://{bucket}/"},
                    {"name": "FLEETPROF_INDEX", "value": f"dynamodb://{table}"},
                    {"name": "FLEETPROF_ANALYSIS", "value": f"s3://{analysis_bucket}/"},
                    {"name": "FLEETPROF_HOST", "value": "0.0.0.0"},
                    *auth_env,
                    *(
                        {"name": f"FLEETPROF_{k.upper()}", "value": str(v)}
                        for k, v in ingest_limits(memory).items()
                    ),
                    {"name": "FLEETPROF_PORT", "value": str(APP_PORT)},
                    {"name": "AWS_REGION", "value": region},
                    *server_otel_env(telemetry, environment),
                ],
                "secrets": secrets,
                **({"dependsOn": depends} if depends else {}),
                "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],
                "healthCheck": {
                    "command": [
                        "CMD",
                        "python",
                        "-c",
                        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{APP_PORT}{HEALTH_CHECK_PATH}', timeout=3)",
                    ],
                    "interval": 15,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 20,
                },
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": "serve"},
                },
            },
            *sidecars,
        ],
        sort_keys=True,
    )


class IngestService(pulumi.ComponentResource):
    """The stateless fleetprof server on Fargate behind the ALB."""

    def __init__(self, name: str, args: IngestServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:ingest:IngestService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            settings=[{"name": "containerInsights", "value": "enabled"}],
            tags=tags(args.tags, f"{name}-cluster"),
            opts=child,
        )
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
            force_delete=not args.deletion_protection,  # destroy removes the images with it
            tags=tags(args.tags, f"{name}-repo"),
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-repo-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "expire untagged images after 7 days",
                            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 7},
                            "action": {"type": "expire"},
                        },
                        {
                            "rulePriority": 2,
                            "description": "keep the newest 50 images",
                            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 50},
                            "action": {"type": "expire"},
                        },
                    ]
                },
                sort_keys=True,
            ),
            opts=child,
        )
        self.image_build = None
        if args.image_uri:
            self.image = pulumi.Output.from_input(args.image_uri)
        else:
            self.image_build = build_and_push(f"{name}-image", self.repository, CPU_ARCHITECTURE, child)
            self.image = pinned_reference(self.repository.repository_url, self.image_build)

        self.log_group = encrypted_log_group(f"{name}-logs", args.log_retention_days, args.kms_key_arn, args.tags, child)

        trust = pulumi.Output.from_input(args.account_id).apply(lambda acct: ecs_tasks_trust_policy(acct, args.region))
        self.execution_role = self._role(f"{name}-execution-role", trust, args.tags, child)
        self.token_secret, auth_secret = self._token_table(name, args, child)
        self.telemetry = args.telemetry()
        self.collector_token, collector_token_ref = self._collector_token(name, args, child)
        aws.iam.RolePolicy(
            f"{name}-execution-policy",
            role=self.execution_role.id,
            policy=pulumi.Output.all(
                self.repository.arn, self.log_group.arn, args.kms_key_arn,
                self.token_secret.arn if self.token_secret else None, args.secrets_key_arn,
                self.collector_token.arn if self.collector_token else None,
            ).apply(lambda a: execution_policy(*a)),
            opts=child,
        )

        self.task_role = self._role(f"{name}-task-role", trust, args.tags, child)
        aws.iam.RolePolicy(
            f"{name}-task-data-policy",
            role=self.task_role.id,
            policy=pulumi.Output.all(args.profiles_bucket_arn, args.analysis_bucket_arn, args.table_arn, args.kms_key_arn).apply(
                lambda a: task_data_policy(*a, xray=bool(self.telemetry and self.telemetry.xray))
            ),
            opts=child,
        )

        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"fleetprof-{args.tags['Environment']}-serve",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(args.cpu),
            memory=str(args.memory),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": CPU_ARCHITECTURE},
            volumes=[{"name": "tmp"}],
            container_definitions=pulumi.Output.all(
                self.image, args.profiles_bucket, args.table_name, self.log_group.name, args.analysis_bucket, auth_secret,
                collector_token_ref,
            ).apply(
                lambda a: container_definitions(
                    a[0], a[1], a[2], a[3], args.region, args.cpu, args.memory, analysis_bucket=a[4], auth_secret=a[5],
                    telemetry=self.telemetry, collector_token_secret=a[6], environment=args.tags["Environment"],
                )
            ),
            tags=tags(args.tags, f"{name}-task"),
            opts=child,
        )

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="fleetprof tasks: 4040 from the ALB only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": APP_PORT,
                    "to_port": APP_PORT,
                    "security_groups": [args.alb_security_group_id],
                    "description": "ALB to fleetprof",
                }
            ],
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"], "description": "AWS APIs over HTTPS"}],
            tags=tags(args.tags, f"{name}-sg"),
            opts=child,
        )
        # pulumi-aws removes the default allow-all egress of a security group that it
        # manages, so the ALB needs an explicit path to the tasks (health checks included).
        self.alb_egress = aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-tasks",
            security_group_id=args.alb_security_group_id,
            referenced_security_group_id=self.security_group.id,
            ip_protocol="tcp",
            from_port=APP_PORT,
            to_port=APP_PORT,
            description="ALB to fleetprof tasks (traffic and health checks)",
            tags=tags(args.tags, f"{name}-alb-to-tasks"),
            opts=child,
        )

        self.deploy_alarm = metric_alarm(
            name,
            AlarmSpec(
                "deploy-5xx",
                "Target 5xx during/after a deployment: rolls the ECS deployment back",
                "AWS/ApplicationELB",
                "HTTPCode_Target_5XX_Count",
                {"LoadBalancer": args.alb_arn_suffix, "TargetGroup": args.target_group_arn_suffix},
                "Sum",
                args.alarm_5xx_threshold,
                evaluation_periods=3,
            ),
            args.tags,
            child,
        )

        self.service = aws.ecs.Service(
            f"{name}-service",
            cluster=self.cluster.arn,
            task_definition=self.task_definition.arn,
            launch_type="FARGATE",
            desired_count=args.desired_count,
            health_check_grace_period_seconds=60,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            network_configuration={
                "subnets": args.private_subnet_ids,
                "security_groups": [self.security_group.id],
                "assign_public_ip": False,
            },
            load_balancers=[{"target_group_arn": args.target_group_arn, "container_name": CONTAINER_NAME, "container_port": APP_PORT}],
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            alarms={"alarm_names": [self.deploy_alarm.name], "enable": True, "rollback": True},
            tags=tags(args.tags, f"{name}-service"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.listeners, self.alb_egress], ignore_changes=["desiredCount"]),
        )

        self.scaling_target = aws.appautoscaling.Target(
            f"{name}-scaling-target",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.all(self.cluster.name, self.service.name).apply(lambda a: f"service/{a[0]}/{a[1]}"),
            min_capacity=args.min_count,
            max_capacity=args.max_count,
            tags=tags(args.tags, f"{name}-scaling-target"),
            opts=child,
        )
        resource_label = pulumi.Output.all(args.alb_arn_suffix, args.target_group_arn_suffix).apply(lambda a: f"{a[0]}/{a[1]}")
        requests_target = requests_per_target_per_minute(args.ingest_pushes_per_cpu_second, args.cpu, args.cpu_target_percent)
        for suffix, target_value, metric in (
            ("cpu", args.cpu_target_percent, {"predefined_metric_type": "ECSServiceAverageCPUUtilization"}),
            ("requests", requests_target, {"predefined_metric_type": "ALBRequestCountPerTarget", "resource_label": resource_label}),
        ):
            aws.appautoscaling.Policy(
                f"{name}-scale-{suffix}",
                policy_type="TargetTrackingScaling",
                service_namespace=self.scaling_target.service_namespace,
                scalable_dimension=self.scaling_target.scalable_dimension,
                resource_id=self.scaling_target.resource_id,
                target_tracking_scaling_policy_configuration={
                    "target_value": target_value,
                    "predefined_metric_specification": metric,
                    "scale_in_cooldown": 120,
                    "scale_out_cooldown": 60,
                },
                opts=child,
            )
        if args.predictive_scaling != "off":
            aws.appautoscaling.Policy(
                f"{name}-scale-predictive",
                policy_type="PredictiveScaling",
                service_namespace=self.scaling_target.service_namespace,
                scalable_dimension=self.scaling_target.scalable_dimension,
                resource_id=self.scaling_target.resource_id,
                predictive_scaling_policy_configuration=predictive_cpu_configuration(
                    args.predictive_scaling, args.cpu_target_percent
                ),
                opts=child,
            )

        self.register_outputs(
            {
                "tokenSecretArn": self.token_secret.arn if self.token_secret else None,
                "clusterName": self.cluster.name,
                "serviceName": self.service.name,
                "repositoryUrl": self.repository.repository_url,
                "image": self.image,
            }
        )

    @staticmethod
    def _role(name: str, trust: pulumi.Output[str], base_tags: dict[str, str], opts: pulumi.ResourceOptions) -> aws.iam.Role:
        return aws.iam.Role(name, assume_role_policy=trust, tags=tags(base_tags, name), opts=opts)

    def _token_table(self, name: str, args: IngestServiceArgs, opts: pulumi.ResourceOptions
                     ) -> tuple[aws.secretsmanager.Secret | None, pulumi.Output[str | None]]:
        """With auth: the token table secret (secrets key) and its current version, and the
        ECS ``valueFrom`` naming that version; without: ``(None, None)``."""
        if not args.auth_enabled:
            return None, pulumi.Output.from_input(None)
        return _versioned_secret(f"{name}-auth-tokens", "auth-tokens", "fleetprof service token table (FLEETPROF_AUTH_TOKENS)",
                                 args.auth_tokens or EMPTY_TOKEN_TABLE, args, opts)

    def _collector_token(self, name: str, args: IngestServiceArgs, opts: pulumi.ResourceOptions
                         ) -> tuple[aws.secretsmanager.Secret | None, pulumi.Output[str | None]]:
        """With a collector that exports to fleetprof with a token: the token's secret (secrets
        key) and the ECS ``valueFrom`` of its current version; otherwise ``(None, None)``."""
        if not (self.telemetry and self.telemetry.fleetprof and self.telemetry.fleetprof.token):
            return None, pulumi.Output.from_input(None)
        return _versioned_secret(
            f"{name}-collector-token", "collector-token",
            "token the OpenTelemetry collector sidecar exports the platform's spans to fleetprof with",
            args.otel_collector_token, args, opts)


def _versioned_secret(name: str, prefix: str, description: str, value: str, args: IngestServiceArgs,
                      opts: pulumi.ResourceOptions) -> tuple[aws.secretsmanager.Secret, pulumi.Output[str]]:
    """A Secrets Manager secret (secrets key, 7-day recovery) holding ``value``, and the ECS
    ``valueFrom`` naming its current version."""
    secret = aws.secretsmanager.Secret(
        name,
        name_prefix=f"fleetprof/{args.tags['Environment']}/{prefix}-",
        description=description,
        kms_key_id=args.secrets_key_arn,
        recovery_window_in_days=7,
        tags=tags(args.tags, name),
        opts=opts,
    )
    version = aws.secretsmanager.SecretVersion(
        f"{name}-version", secret_id=secret.id, secret_string=pulumi.Output.secret(value), opts=opts,
    )
    return secret, pulumi.Output.all(secret.arn, version.version_id).apply(lambda a: secret_reference(a[0], a[1]))
