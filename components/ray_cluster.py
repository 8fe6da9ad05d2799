"""Ray cluster on EC2: a head instance and a worker Auto Scaling group.

Contract:

* Every node installs the same artifacts from the stack's artifacts bucket: the fleetprof
  wheel built from this repository and ``constraints.txt`` (keys under
  :data:`ARTIFACT_PREFIX`, each containing the file's sha256). User data copies both with
  ``aws s3 cp``, checks their sha256 and runs ``pip install -c constraints.txt
  '<wheel>[workers]'`` into ``/opt/fleetprof``; nothing comes from a public index by name, and
  a new wheel changes the user data (an explicit replacement of the head, a new launch
  template version for the workers).
* The head runs ``ray start --head`` (GCS 6379, dashboard 8265), workers ``ray start
  --address=<head>:6379``, all with ``RAY_AUTH_MODE=token`` and the token file
  ``RAY_AUTH_TOKEN_PATH``. The token is a SecureString parameter
  (``/fleetprof/<env>/ray-auth-token``, under the secrets key) that the program creates with a
  random value (deleted on destroy); nodes only read it. Raising ``token_rotation`` replaces the
  parameter (a new random value) and changes every node's user data, so the head is replaced
  and the workers roll onto the new token.
  Ray units restart on failure (``Restart=always``); the head instance recovers in place
  (EC2 auto recovery plus a ``StatusCheckFailed_System`` alarm with the ``recover``
  action), keeping its private IP, so workers keep the head address.
* Systemd timers on the head submit the scheduled jobs (:func:`scheduled_jobs`) with
  ``ray job submit`` and wait for them, so a failed job fails its unit. Each job unit
  publishes ``JobSucceeded`` after success (``ExecStartPost``) and, through
  ``OnFailure=fleetprof-job-failed@<job>.service``, ``JobFailed`` (``workers.job_metrics``).
  A job's own environment travels as the Ray job's runtime environment (``ray job submit
  --runtime-env-json``): the submitting unit's environment never reaches the job's driver,
  which the head's job server starts. With an anomaly topic, the analysis job gets
  ``FLEETPROF_ANOMALY_TOPIC_ARN`` this way (and hands it to its tasks).
* The CloudWatch agent ships cloud-init and Ray logs to the stack's KMS-encrypted log group
  ``/fleetprof/<env>/ray``.
* With ``tracing`` the jobs and their Ray tasks export their spans (:mod:`fleetprof.telemetry`)
  to the CloudWatch agent of their node, which sends them to X-Ray: the agent's configuration
  gains ``traces.traces_collected.otlp`` (gRPC ``127.0.0.1:4317``, HTTP ``127.0.0.1:4318``, the
  node's loopback only) and the environment file gains the OTEL_* variables of
  :func:`node_otel_env` (OTLP/HTTP to ``127.0.0.1:4318``, ``parentbased_traceidratio`` at
  ``traces_sampling_ratio``). Every unit reads that file, so ``ray start`` has them and Ray
  hands them to everything it starts on the node: the raylet's worker processes (tasks) and
  the head's job supervisors, whose drivers are the jobs. A task's span continues its job's
  trace (the context travels with the task) and leaves through its own node's agent. Without
  ``tracing`` neither the agent section nor any OTEL_* variable is written (the SDK stays off).
* The worker group scales on average CPU (target tracking) between ``worker_min`` and
  ``worker_max``; Pulumi leaves its desired capacity to the scaling policies. With
  ``predictive_scaling`` a predictive policy on the CPU metric pair runs next to it, and with
  ``nightly_workers`` above ``worker_min`` scheduled actions raise the minimum around each
  daily job (:func:`nightly_windows`).
* Nodes have no public IP, require IMDSv2, use encrypted EBS and a pinned AMI; the one
  security group admits only itself (plus an optional admin group). Node roles may read
  only the artifact prefix and the token parameter, publish metrics only to
  ``Fleetprof/Jobs``, write only their log group (and, with ``tracing``, X-Ray's write actions,
  which have no resource-level permissions), and hold the SSM agent's own actions
  (:data:`SSM_AGENT_ACTIONS`) instead of ``AmazonSSMManagedInstanceCore`` (which reads every
  parameter). With an anomaly topic, both node roles (an analysis task runs on any node) may
  ``sns:Publish`` to that topic and no other; the topic's key is the stack key the roles
  already use (``kms:GenerateDataKey``/``kms:Decrypt`` through the key policy's delegation).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.artifacts import Artifact
from components.common import service_role
from components.ingest_service import data_access_policy
from components.tags import asg_tags, tags
from components.telemetry import LOOPBACK, OTLP_GRPC_PORT, OTLP_HTTP_PORT, SAMPLER, xray_statement

GCS_PORT = 6379
DASHBOARD_PORT = 8265
VENV = "/opt/fleetprof"
ENV_FILE = "/etc/fleetprof/env"
TOKEN_FILE = "/etc/fleetprof/ray-token"
ARTIFACT_DIR = "/var/lib/fleetprof/artifacts"
ARTIFACT_PREFIX = "ray-nodes/"
JOB_METRICS_NAMESPACE = "Fleetprof/Jobs"
CWAGENT_CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
CWAGENT_CONFIG = "/etc/fleetprof/cloudwatch-agent.json"
LOG_FILES = {
    "cloud-init-output": "/var/log/cloud-init-output.log",
    "cloud-init": "/var/log/cloud-init.log",
    "ray": "/tmp/ray/session_latest/logs/*",
}
"""Log stream suffix -> file (glob) the CloudWatch agent ships; streams are ``<instance id>/<suffix>``."""
SUBMIT = f"{VENV}/bin/ray job submit --address http://127.0.0.1:{DASHBOARD_PORT} --"
ANOMALY_TOPIC_ENV = "FLEETPROF_ANOMALY_TOPIC_ARN"
"""The variable :func:`workers.anomalies.notify_anomalies` reads its topic from."""
UNIT_SAFE_VALUE = re.compile(r"[A-Za-z0-9:/._@+=,-]*")
"""Characters systemd leaves alone inside a quoted ``ExecStart=`` word (an ARN's, a URL's)."""
FAILED_UNIT = "fleetprof-job-failed@"
DAILY_CALENDAR = re.compile(r"(?:\*-\*-\* )?\d{1,2}:\d{2}(?::00)?")
SSM_AGENT_ACTIONS: dict[str, tuple[str, ...]] = {
    "ssm": ("ssm:UpdateInstanceInformation",),
    "ssmmessages": (
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
    ),
    "ec2messages": (
        "ec2messages:AcknowledgeMessage",
        "ec2messages:DeleteMessage",
        "ec2messages:FailMessage",
        "ec2messages:GetEndpoint",
        "ec2messages:GetMessages",
        "ec2messages:SendReply",
    ),
}
"""What the SSM agent needs for Session Manager (port forwarding) and Run Command: register
the instance, and the message channels (which have no resource-level permissions)."""


@dataclass
class RayClusterArgs:
    """Inputs of :class:`RayCluster`."""

    tags: dict[str, str]
    region: str
    account_id: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    profiles_bucket: pulumi.Input[str]
    profiles_bucket_arn: pulumi.Input[str]
    analysis_bucket: pulumi.Input[str]
    analysis_bucket_arn: pulumi.Input[str]
    artifacts_bucket: pulumi.Input[str]
    artifacts_bucket_arn: pulumi.Input[str]
    table_name: pulumi.Input[str]
    table_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    secrets_key_arn: pulumi.Input[str]
    wheel: Artifact
    constraints: Artifact
    head_instance_type: str
    worker_instance_type: str
    worker_min: int
    worker_max: int
    worker_desired: int
    volume_gb: int
    ami_id: str
    admin_security_group_id: str
    cpu_target_percent: int
    compact_schedule: str
    analyze_schedule: str
    analyze_window: str
    retention_schedule: str
    retention_days: int
    log_retention_days: int
    predictive_scaling: str = "off"
    token_rotation: int = 1
    nightly_workers: int = 0
    nightly_window_minutes: int = 120
    anomaly_topic_arn: pulumi.Input[str] | None = None
    """SNS topic the analysis job publishes anomalies to (None: no notifications)."""
    tracing: bool = False
    """Jobs and Ray tasks export spans through each node's CloudWatch agent to X-Ray."""
    traces_sampling_ratio: float = 1.0
    """Share of job traces sampled (``parentbased_traceidratio``) with ``tracing``."""


@dataclass(frozen=True)
class ScheduledJob:
    """One job the head runs on a systemd timer: ``python -m <command>`` as a Ray job, with
    ``env`` as its runtime environment's variables."""

    name: str
    command: str
    on_calendar: str
    env: tuple[tuple[str, str], ...] = ()


def scheduled_jobs(args: RayClusterArgs, anomaly_topic_arn: str = "") -> list[ScheduledJob]:
    """The head's scheduled jobs (compaction, analysis of the configured window, retention);
    the analysis job carries ``FLEETPROF_ANOMALY_TOPIC_ARN`` when a topic is given."""
    analyze_env = ((ANOMALY_TOPIC_ENV, anomaly_topic_arn),) if anomaly_topic_arn else ()
    return [
        ScheduledJob("compact", "python -m workers.compact", args.compact_schedule),
        ScheduledJob("analyze", f"python -m workers.analyze --window {args.analyze_window}", args.analyze_schedule,
                     analyze_env),
        ScheduledJob("retention", f"python -m workers.retention --days {args.retention_days}", args.retention_schedule),
    ]


def submit_command(job: ScheduledJob) -> str:
    """``ray job submit`` for ``job`` up to the ``--`` before its entrypoint: :data:`SUBMIT`,
    plus ``--runtime-env-json '<env_vars>'`` when the job has an environment (one quoted
    word for systemd). :class:`ValueError` for a name or value systemd would not pass through
    verbatim (values are limited to :data:`UNIT_SAFE_VALUE`: no quotes, ``$``, ``%`` or ``\\``)."""
    if not job.env:
        return SUBMIT
    for key, value in job.env:
        if not UNIT_SAFE_VALUE.fullmatch(value) or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise ValueError(f"job {job.name}: environment {key}={value!r} cannot travel in a unit file")
    runtime_env = json.dumps({"env_vars": dict(job.env)}, sort_keys=True, separators=(",", ":"))
    return SUBMIT.removesuffix(" --") + f" --runtime-env-json '{runtime_env}' --"


NIGHTLY_LEAD_MINUTES = 15
"""Scheduled scale-out starts this long before a daily job (workers boot and join Ray)."""
WORKER_WARMUP_SECONDS = 300


def daily_minute(on_calendar: str) -> int | None:
    """Minute of the UTC day at which a daily OnCalendar expression fires (``daily``: 0,
    ``HH:MM``/``*-*-* HH:MM:00``), or None for any expression that is not once a day."""
    text = on_calendar.strip()
    if text == "daily":
        return 0
    if not DAILY_CALENDAR.fullmatch(text):
        return None
    hour, minute = text.split(" ")[-1].split(":")[:2]
    return int(hour) * 60 + int(minute) if int(hour) < 24 and int(minute) < 60 else None


@dataclass(frozen=True)
class NightlyWindow:
    """Minutes of the UTC day during which the worker group keeps a raised minimum."""

    start: int
    end: int

    @staticmethod
    def cron(minute: int) -> str:
        """Auto Scaling recurrence (UTC cron) firing daily at ``minute`` of the day."""
        minute %= 1440
        return f"{minute % 60} {minute // 60} * * *"


def nightly_windows(jobs: Sequence[ScheduledJob], window_minutes: int) -> list[NightlyWindow]:
    """One window per group of overlapping daily jobs: from :data:`NIGHTLY_LEAD_MINUTES` before
    the job until ``window_minutes`` after it (sub-daily jobs get none: target tracking and
    predictive scaling follow them)."""
    starts = sorted({m for job in jobs if (m := daily_minute(job.on_calendar)) is not None})
    windows: list[NightlyWindow] = []
    for minute in starts:
        start, end = minute - NIGHTLY_LEAD_MINUTES, minute + window_minutes
        if windows and start <= windows[-1].end:
            windows[-1] = NightlyWindow(windows[-1].start, max(windows[-1].end, end))
        else:
            windows.append(NightlyWindow(start, end))
    return windows


def predictive_cpu_configuration(mode: str, target_percent: int) -> dict:
    """EC2 Auto Scaling predictive configuration on the group's CPU metric pair, launching
    :data:`WORKER_WARMUP_SECONDS` ahead of the forecast."""
    return {
        "mode": mode,
        "scheduling_buffer_time": str(WORKER_WARMUP_SECONDS),
        "max_capacity_breach_behavior": "HonorMaxCapacity",
        "metric_specification": {
            "target_value": target_percent,
            "predefined_metric_pair_specification": {"predefined_metric_type": "ASGCPUUtilization"},
        },
    }


@dataclass(frozen=True)
class NodeEnv:
    """Everything a node's boot script needs (resolved values)."""

    region: str
    environment: str
    token_parameter: str
    token_generation: int
    profiles_bucket: str
    analysis_bucket: str
    table_name: str
    artifacts_bucket: str
    wheel_key: str
    wheel_sha256: str
    constraints_key: str
    constraints_sha256: str
    log_group: str
    anomaly_topic_arn: str = ""
    traces_sampling_ratio: float | None = None
    """Sampling ratio of the jobs' traces; None: no tracing (no OTEL_* and no agent traces section)."""

    @property
    def wheel_path(self) -> str:
        return f"{ARTIFACT_DIR}/{self.wheel_key.rsplit('/', 1)[-1]}"

    @property
    def constraints_path(self) -> str:
        return f"{ARTIFACT_DIR}/constraints.txt"


WORKERS_SERVICE_NAME = "fleetprof-workers"
"""``service.name`` of the jobs' and tasks' spans (:func:`fleetprof.telemetry.job`'s default)."""
AGENT_OTLP = {"grpc_endpoint": f"{LOOPBACK}:{OTLP_GRPC_PORT}", "http_endpoint": f"{LOOPBACK}:{OTLP_HTTP_PORT}"}
"""The CloudWatch agent's OTLP trace receiver on a node (loopback only: nothing else reaches it)."""


def node_otel_env(env: NodeEnv) -> dict[str, str]:
    """The OTEL_* variables of the nodes' environment file: with tracing, OTLP/HTTP (protobuf)
    to the agent's :data:`AGENT_OTLP` HTTP endpoint, the ratio sampler, the stack as
    ``deployment.environment``, no metrics or logs exporters; without, none."""
    if env.traces_sampling_ratio is None:
        return {}
    return {
        "OTEL_SERVICE_NAME": WORKERS_SERVICE_NAME,
        "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment={env.environment}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{AGENT_OTLP['http_endpoint']}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": SAMPLER,
        "OTEL_TRACES_SAMPLER_ARG": format(env.traces_sampling_ratio, "g"),
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


def cloudwatch_agent_config(env: NodeEnv) -> str:
    """CloudWatch agent configuration: :data:`LOG_FILES` into the stack's Ray log group and,
    with tracing, the OTLP trace receiver :data:`AGENT_OTLP` whose traces go to X-Ray in the
    agent's region."""
    collect = [
        {"file_path": path, "log_group_name": env.log_group, "log_stream_name": f"{{instance_id}}/{stream}"}
        for stream, path in LOG_FILES.items()
    ]
    config: dict = {"agent": {"region": env.region}, "logs": {"logs_collected": {"files": {"collect_list": collect}}}}
    if env.traces_sampling_ratio is not None:
        config["traces"] = {"traces_collected": {"otlp": dict(AGENT_OTLP)}}
    return json.dumps(config, indent=1, sort_keys=True)


def _install(env: NodeEnv) -> str:
    """Fetch the artifacts, verify their digests, create the venv and install the wheel."""
    s3 = f"aws s3 cp --region {env.region} --only-show-errors s3://{env.artifacts_bucket}"
    return f"""install -d -m 0755 {ARTIFACT_DIR}
{s3}/{env.wheel_key} {env.wheel_path}
{s3}/{env.constraints_key} {env.constraints_path}
sha256sum -c - <<'SUMS'
{env.wheel_sha256}  {env.wheel_path}
{env.constraints_sha256}  {env.constraints_path}
SUMS
python3.11 -m venv {VENV}
{VENV}/bin/pip install --disable-pip-version-check --no-cache-dir -c {env.constraints_path} '{env.wheel_path}[workers]'
"""


def _common_boot(env: NodeEnv) -> str:
    """Packages, user, log shipping (first, so a failed install is visible), install, env."""
    otel = "".join(f"{key}={value}\n" for key, value in node_otel_env(env).items())
    return f"""#!/bin/bash
set -euo pipefail
dnf install -y python3.11 python3.11-pip amazon-cloudwatch-agent
id fleetprof >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/fleetprof fleetprof
install -d -m 0750 -o fleetprof -g fleetprof /etc/fleetprof
cat > {CWAGENT_CONFIG} <<'JSON'
{cloudwatch_agent_config(env)}
JSON
{CWAGENT_CTL} -a fetch-config -m ec2 -s -c file:{CWAGENT_CONFIG}
{_install(env)}cat > {ENV_FILE} <<'ENV'
PATH={VENV}/bin:/usr/local/bin:/usr/bin
AWS_REGION={env.region}
RAY_AUTH_MODE=token
RAY_AUTH_TOKEN_PATH={TOKEN_FILE}
FLEETPROF_ENVIRONMENT={env.environment}
FLEETPROF_STORAGE=s3://{env.profiles_bucket}/
FLEETPROF_INDEX=dynamodb://{env.table_name}
FLEETPROF_ANALYSIS=s3://{env.analysis_bucket}/
{otel}ENV
"""


def _store_token() -> str:
    return f"""(umask 077; printf '%s' "$TOKEN" > {TOKEN_FILE})
chown fleetprof {TOKEN_FILE}
"""


def _unit(description: str, exec_start: str, *, unit_extra: str = "", service_extra: str = "", install: bool = True,
          oneshot: bool = False) -> str:
    kind = "Type=oneshot" if oneshot else "Restart=always\nRestartSec=5"
    return f"""[Unit]
Description={description}
After=network-online.target
Wants=network-online.target
{unit_extra}
[Service]
User=fleetprof
EnvironmentFile={ENV_FILE}
{kind}
ExecStart={exec_start}
{service_extra}""" + ("\n[Install]\nWantedBy=multi-user.target\n" if install else "")


def _timer(description: str, on_calendar: str) -> str:
    return f"""[Unit]
Description={description}

[Timer]
OnCalendar={on_calendar}
RandomizedDelaySec=60
Persistent=true

[Install]
WantedBy=timers.target
"""


def job_metrics_command(job: str, status: str) -> str:
    """The command publishing a job's outcome (``workers.job_metrics``)."""
    return f"{VENV}/bin/python -m workers.job_metrics --job {job} --status {status}"


def head_units(jobs: Sequence[ScheduledJob]) -> dict[str, str]:
    """Unit file name -> contents for the head: Ray, one service + timer per job, and the
    ``fleetprof-job-failed@`` template that reports a failed job."""
    files = {
        "ray-head.service": _unit(
            "Ray head",
            f"{VENV}/bin/ray start --head --port={GCS_PORT} --dashboard-host=0.0.0.0 "
            f"--dashboard-port={DASHBOARD_PORT} --block",
        ),
        f"{FAILED_UNIT}.service": _unit(
            "report a failed fleetprof job", job_metrics_command("%i", "failed"), oneshot=True, install=False
        ),
    }
    for job in jobs:
        files[f"fleetprof-{job.name}.service"] = _unit(
            f"fleetprof {job.name} job",
            f"{submit_command(job)} {job.command}",
            unit_extra=f"After=ray-head.service\nOnFailure={FAILED_UNIT}{job.name}.service\n",
            service_extra=f"ExecStartPost={job_metrics_command(job.name, 'succeeded')}\n",
            oneshot=True,
            install=False,
        )
        files[f"fleetprof-{job.name}.timer"] = _timer(f"fleetprof {job.name} schedule", job.on_calendar)
    return files


def _write_units(files: dict[str, str]) -> str:
    return "".join(f"cat > /etc/systemd/system/{name} <<'UNIT'\n{body}UNIT\n" for name, body in files.items())


def _read_token(env: NodeEnv) -> str:
    """Read the Ray token parameter (retrying while SSM is not reachable yet) into ``$TOKEN``;
    the generation comment makes a rotation change the user data of every node."""
    get = (f"aws ssm get-parameter --region {env.region} --name {env.token_parameter} --with-decryption "
           "--query Parameter.Value --output text")
    return f"""# Ray token auth (token generation {env.token_generation}), created by the program.
until TOKEN=$({get} 2>/dev/null); do sleep 5; done
{_store_token()}"""


def head_user_data(env: NodeEnv, jobs: Sequence[ScheduledJob]) -> str:
    """Boot script of the head: install, read the Ray token, start Ray, enable timers."""
    timers = " ".join(f"fleetprof-{job.name}.timer" for job in jobs)
    return _common_boot(env) + f"""{_read_token(env)}{_write_units(head_units(jobs))}systemctl daemon-reload
systemctl enable --now ray-head.service {timers}
"""


def worker_user_data(env: NodeEnv, head_ip: str) -> str:
    """Boot script of a worker: install, read the Ray token, join the head."""
    unit = _unit("Ray worker", f"{VENV}/bin/ray start --address={head_ip}:{GCS_PORT} --block")
    return _common_boot(env) + f"""{_read_token(env)}{_write_units({"ray-worker.service": unit})}systemctl daemon-reload
systemctl enable --now ray-worker.service
"""


def log_group_arn(region: str, account_id: str, name: str) -> str:
    """ARN of a log group's streams and events (what logs:PutLogEvents is authorised on)."""
    return f"arn:aws:logs:{region}:{account_id}:log-group:{name}:*"


@dataclass(frozen=True)
class NodeGrants:
    """Resolved ARNs a node role is granted on."""

    profiles_bucket_arn: str
    analysis_bucket_arn: str
    artifacts_bucket_arn: str
    table_arn: str
    key_arn: str
    secrets_key_arn: str
    parameter_arn: str
    log_group_arn: str
    instances_arn: str
    anomaly_topic_arn: str = ""
    xray: bool = False


def node_policy(g: NodeGrants) -> str:
    """Data access (profiles + analysis buckets, table, key), read of the artifact prefix,
    read of the Ray token parameter (and its key), job metrics, the node log group, the SSM
    agent's own actions, with an anomaly topic publishing to that topic only, and with ``xray``
    the X-Ray writes of the CloudWatch agent's trace export."""
    doc = json.loads(data_access_policy([g.profiles_bucket_arn, g.analysis_bucket_arn], g.table_arn, g.key_arn))
    doc["Statement"] += [
        {"Sid": "NodeArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{g.artifacts_bucket_arn}/{ARTIFACT_PREFIX}*"]},
        {"Sid": "RayToken", "Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": [g.parameter_arn]},
        {"Sid": "RayTokenKey", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [g.secrets_key_arn]},
        {"Sid": "SsmAgentRegistration", "Effect": "Allow", "Action": list(SSM_AGENT_ACTIONS["ssm"]),
         "Resource": [g.instances_arn]},
        {"Sid": "SsmAgentChannels", "Effect": "Allow",
         "Action": [*SSM_AGENT_ACTIONS["ssmmessages"], *SSM_AGENT_ACTIONS["ec2messages"]], "Resource": ["*"]},
        {"Sid": "JobMetrics", "Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": ["*"],
         "Condition": {"StringEquals": {"cloudwatch:namespace": JOB_METRICS_NAMESPACE}}},
        {"Sid": "NodeLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
         "Resource": [g.log_group_arn]},
    ]
    if g.anomaly_topic_arn:
        doc["Statement"].append(
            {"Sid": "AnomalyNotifications", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [g.anomaly_topic_arn]}
        )
    if g.xray:
        doc["Statement"].append(xray_statement())
    return json.dumps(doc, sort_keys=True)


def recover_action(region: str) -> str:
    """The CloudWatch alarm action that recovers an EC2 instance in place."""
    return f"arn:aws:automate:{region}:ec2:recover"


class RayCluster(pulumi.ComponentResource):
    """Ray head instance + worker ASG for compaction, retention, backfill and analysis."""

    def __init__(self, name: str, args: RayClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:ray:RayCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env_name = args.tags["Environment"]
        self.token_parameter = f"/fleetprof/{env_name}/ray-auth-token"
        self.log_group_name = f"/fleetprof/{env_name}/ray"
        self.security_group = self._security_group(name, args, child)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=self.log_group_name,
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=tags(args.tags, f"{name}-logs"),
            opts=child,
        )
        self.wheel_object = self._artifact(f"{name}-wheel", args, args.wheel, child)
        self.constraints_object = self._artifact(f"{name}-constraints", args, args.constraints, child)
        self.token = self._token_parameter(name, args, child)
        profiles = {kind: self._node_profile(name, kind, args, child) for kind in ("head", "worker")}

        node_env = pulumi.Output.all(
            args.profiles_bucket, args.analysis_bucket, args.table_name, args.artifacts_bucket,
            self.wheel_object.key, self.constraints_object.key, args.anomaly_topic_arn or "",
        ).apply(lambda a: self._node_env(args, env_name, *a))
        metadata = {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}
        jobs = scheduled_jobs(args)

        self.head = aws.ec2.Instance(
            f"{name}-head",
            ami=args.ami_id,
            instance_type=args.head_instance_type,
            subnet_id=args.private_subnet_ids[0],
            vpc_security_group_ids=[self.security_group.id],
            iam_instance_profile=profiles["head"].name,
            associate_public_ip_address=False,
            metadata_options=metadata,
            maintenance_options={"auto_recovery": "default"},
            root_block_device={
                "encrypted": True,
                "kms_key_id": args.kms_key_arn,
                "volume_size": args.volume_gb,
                "volume_type": "gp3",
                "delete_on_termination": True,
                "tags": tags(args.tags, f"{name}-head-root"),
            },
            user_data=node_env.apply(lambda e: head_user_data(e, scheduled_jobs(args, e.anomaly_topic_arn))),
            user_data_replace_on_change=True,
            tags=tags(args.tags, f"{name}-head", Role="ray-head"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.token]),
        )
        self.head_recovery = aws.cloudwatch.MetricAlarm(
            f"{name}-head-recover",
            alarm_description="Ray head failed its system status check: recover it in place (same id and IP)",
            namespace="AWS/EC2",
            metric_name="StatusCheckFailed_System",
            dimensions={"InstanceId": self.head.id},
            statistic="Maximum",
            period=60,
            evaluation_periods=2,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="missing",
            alarm_actions=[recover_action(args.region)],
            tags=tags(args.tags, f"{name}-head-recover"),
            opts=child,
        )

        worker_script = pulumi.Output.all(node_env, self.head.private_ip).apply(
            lambda a: base64.b64encode(worker_user_data(a[0], a[1]).encode()).decode()
        )
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-worker-lt",
            image_id=args.ami_id,
            instance_type=args.worker_instance_type,
            iam_instance_profile={"arn": profiles["worker"].arn},
            metadata_options=metadata,
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "encrypted": "true",
                        "kms_key_id": args.kms_key_arn,
                        "volume_size": args.volume_gb,
                        "volume_type": "gp3",
                        "delete_on_termination": "true",
                    },
                }
            ],
            network_interfaces=[
                {"associate_public_ip_address": "false", "security_groups": [self.security_group.id], "delete_on_termination": "true"}
            ],
            user_data=worker_script,
            tag_specifications=[
                {"resource_type": "instance", "tags": tags(args.tags, f"{name}-worker", Role="ray-worker")},
                {"resource_type": "volume", "tags": tags(args.tags, f"{name}-worker-root")},
            ],
            tags=tags(args.tags, f"{name}-worker-lt"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.token]),
        )
        self.workers = aws.autoscaling.Group(
            f"{name}-workers",
            vpc_zone_identifiers=args.private_subnet_ids,
            min_size=args.worker_min,
            max_size=args.worker_max,
            desired_capacity=args.worker_desired,
            launch_template={"id": self.launch_template.id, "version": self.launch_template.latest_version.apply(str)},
            health_check_type="EC2",
            enabled_metrics=["GroupDesiredCapacity", "GroupInServiceInstances"],
            metrics_granularity="1Minute",
            instance_refresh={"strategy": "Rolling", "preferences": {"min_healthy_percentage": 50}},
            tags=asg_tags(args.tags, f"{name}-worker"),
            # the scaling policy owns the desired capacity once the group exists
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )
        self.scaling_policy = aws.autoscaling.Policy(
            f"{name}-workers-cpu",
            autoscaling_group_name=self.workers.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=300,
            target_tracking_configuration={
                "predefined_metric_specification": {"predefined_metric_type": "ASGAverageCPUUtilization"},
                "target_value": args.cpu_target_percent,
            },
            opts=child,
        )
        self._extra_scaling(name, args, jobs, child)

        self.register_outputs(
            {
                "headInstanceId": self.head.id,
                "headPrivateIp": self.head.private_ip,
                "workerGroupName": self.workers.name,
                "logGroupName": self.log_group.name,
            }
        )

    def _extra_scaling(self, name: str, args: RayClusterArgs, jobs: Sequence[ScheduledJob],
                       child: pulumi.ResourceOptions) -> None:
        """Predictive scaling (when configured) and the nightly minimum around daily jobs."""
        if args.predictive_scaling != "off":
            aws.autoscaling.Policy(
                f"{name}-workers-predictive",
                autoscaling_group_name=self.workers.name,
                policy_type="PredictiveScaling",
                predictive_scaling_configuration=predictive_cpu_configuration(
                    args.predictive_scaling, args.cpu_target_percent
                ),
                opts=child,
            )
        if args.nightly_workers <= args.worker_min:
            return
        for i, window in enumerate(nightly_windows(jobs, args.nightly_window_minutes)):
            for phase, minute, floor in (("up", window.start, args.nightly_workers), ("down", window.end, args.worker_min)):
                aws.autoscaling.Schedule(
                    f"{name}-nightly-{i}-{phase}",
                    autoscaling_group_name=self.workers.name,
                    scheduled_action_name=f"fleetprof-nightly-{i}-{phase}",
                    recurrence=NightlyWindow.cron(minute),
                    time_zone="Etc/UTC",
                    min_size=floor,
                    max_size=args.worker_max,
                    opts=child,
                )

    def _node_env(self, args: RayClusterArgs, env_name: str, profiles: str, analysis: str, table: str,
                  artifacts: str, wheel_key: str, constraints_key: str, anomaly_topic_arn: str) -> NodeEnv:
        return NodeEnv(
            region=args.region,
            environment=env_name,
            token_parameter=self.token_parameter,
            token_generation=args.token_rotation,
            profiles_bucket=profiles,
            analysis_bucket=analysis,
            table_name=table,
            artifacts_bucket=artifacts,
            wheel_key=wheel_key,
            wheel_sha256=args.wheel.sha256,
            constraints_key=constraints_key,
            constraints_sha256=args.constraints.sha256,
            log_group=self.log_group_name,
            anomaly_topic_arn=anomaly_topic_arn,
            traces_sampling_ratio=args.traces_sampling_ratio if args.tracing else None,
        )

    def _security_group(self, name: str, args: RayClusterArgs, child: pulumi.ResourceOptions) -> aws.ec2.SecurityGroup:
        ingress = [{"protocol": "-1", "from_port": 0, "to_port": 0, "self": True, "description": "Ray nodes to each other"}]
        if args.admin_security_group_id:
            ingress.append(
                {
                    "protocol": "tcp",
                    "from_port": DASHBOARD_PORT,
                    "to_port": DASHBOARD_PORT,
                    "security_groups": [args.admin_security_group_id],
                    "description": "Ray dashboard/jobs API from the admin group",
                }
            )
        return aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="fleetprof Ray cluster (self only)",
            ingress=ingress,
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"], "description": "AWS APIs"}],
            tags=tags(args.tags, f"{name}-sg"),
            opts=child,
        )

    def _artifact(self, name: str, args: RayClusterArgs, artifact: Artifact,
                  child: pulumi.ResourceOptions) -> aws.s3.BucketObjectv2:
        """Upload one artifact under :data:`ARTIFACT_PREFIX` (key contains its sha256)."""
        return aws.s3.BucketObjectv2(
            name,
            bucket=args.artifacts_bucket,
            key=artifact.key(ARTIFACT_PREFIX),
            source=pulumi.FileAsset(str(artifact.path)),
            content_type="application/octet-stream",
            tags=tags(args.tags, name, Sha256=artifact.sha256),
            opts=child,
        )

    def _node_profile(self, name: str, kind: str, args: RayClusterArgs,
                      child: pulumi.ResourceOptions) -> aws.iam.InstanceProfile:
        role = service_role(f"{name}-{kind}-role", "ec2.amazonaws.com", args.tags, child)
        grants = pulumi.Output.all(
            args.profiles_bucket_arn, args.analysis_bucket_arn, args.artifacts_bucket_arn, args.table_arn,
            args.kms_key_arn, args.account_id, args.secrets_key_arn, args.anomaly_topic_arn or "",
        ).apply(
            lambda a: NodeGrants(
                profiles_bucket_arn=a[0],
                analysis_bucket_arn=a[1],
                artifacts_bucket_arn=a[2],
                table_arn=a[3],
                key_arn=a[4],
                secrets_key_arn=a[6],
                parameter_arn=f"arn:aws:ssm:{args.region}:{a[5]}:parameter{self.token_parameter}",
                log_group_arn=log_group_arn(args.region, a[5], self.log_group_name),
                instances_arn=f"arn:aws:ec2:{args.region}:{a[5]}:instance/*",
                anomaly_topic_arn=a[7],
                xray=args.tracing,
            )
        )
        aws.iam.RolePolicy(
            f"{name}-{kind}-data-policy",
            role=role.id,
            policy=grants.apply(node_policy),
            opts=child,
        )
        return aws.iam.InstanceProfile(
            f"{name}-{kind}-profile", role=role.name, tags=tags(args.tags, f"{name}-{kind}-profile"), opts=child
        )

    def _token_parameter(self, name: str, args: RayClusterArgs, child: pulumi.ResourceOptions) -> aws.ssm.Parameter:
        """The Ray token: a random SecureString under the secrets key, written once per
        ``token_rotation`` generation (later runs leave the stored value alone; a new generation
        replaces the parameter, deleting the old one first since the name is fixed)."""
        return aws.ssm.Parameter(
            f"{name}-auth-token",
            name=self.token_parameter,
            type="SecureString",
            key_id=args.secrets_key_arn,
            value=pulumi.Output.secret(secrets.token_hex(32)),
            description=f"Ray cluster auth token, generation {args.token_rotation}",
            tags=tags(args.tags, f"{name}-auth-token"),
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["value"], replace_on_changes=["description"], delete_before_replace=True
            ),
        )
