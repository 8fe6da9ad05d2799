"""Ray cluster on EC2: a head instance and a worker Auto Scaling group.

Contract: every node installs the fleetprof package (``fleetprof_pip_spec``) into
``/opt/fleetprof``; the head runs ``ray start --head`` (GCS 6379, dashboard 8265) and
workers ``ray start --address=<head>:6379``, all with ``RAY_AUTH_MODE=token``. The token
is generated once by the head and shared through an SSM SecureString parameter
(``/fleetprof/<env>/ray-auth-token``) encrypted with the stack key. Systemd timers on the
head submit ``python -m workers.compact`` and ``python -m workers.analyze --window 1h`` as
Ray jobs on the configured schedules. Nodes have no public IP, require IMDSv2 and use
encrypted EBS; the one security group admits only itself (plus an optional admin group).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import service_role
from components.ingest_service import data_access_policy
from components.tags import asg_tags, tags

GCS_PORT = 6379
DASHBOARD_PORT = 8265
VENV = "/opt/fleetprof"
COMPACT_COMMAND = "python -m workers.compact"
ANALYZE_COMMAND = "python -m workers.analyze --window 1h"


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
    table_name: pulumi.Input[str]
    table_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    head_instance_type: str
    worker_instance_type: str
    worker_min: int
    worker_max: int
    worker_desired: int
    volume_gb: int
    ami_parameter: str
    admin_security_group_id: str
    pip_spec: str
    compact_schedule: str
    analyze_schedule: str


@dataclass(frozen=True)
class NodeEnv:
    """Everything a node's boot script needs (resolved values)."""

    region: str
    pip_spec: str
    token_parameter: str
    kms_key_arn: str
    profiles_bucket: str
    analysis_bucket: str
    table_name: str


def _common_boot(env: NodeEnv) -> str:
    return f"""#!/bin/bash
set -euo pipefail
dnf install -y python3.11 python3.11-pip
id fleetprof >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/fleetprof fleetprof
python3.11 -m venv {VENV}
{VENV}/bin/pip install --upgrade pip '{env.pip_spec}'
install -d -m 0750 -o fleetprof -g fleetprof /etc/fleetprof
cat > /etc/fleetprof/env <<'ENV'
PATH={VENV}/bin:/usr/local/bin:/usr/bin
AWS_REGION={env.region}
RAY_AUTH_MODE=token
RAY_AUTH_TOKEN_PATH=/etc/fleetprof/ray-token
FLEETPROF_STORAGE=s3://{env.profiles_bucket}/
FLEETPROF_INDEX=dynamodb://{env.table_name}
FLEETPROF_ANALYSIS=s3://{env.analysis_bucket}/analysis/
ENV
"""


def _unit(description: str, exec_start: str, *, oneshot: bool = False) -> str:
    kind = "Type=oneshot" if oneshot else "Restart=always\nRestartSec=5"
    return f"""[Unit]
Description={description}
After=network-online.target
Wants=network-online.target

[Service]
User=fleetprof
EnvironmentFile=/etc/fleetprof/env
{kind}
ExecStart={exec_start}

[Install]
WantedBy=multi-user.target
"""


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


def head_user_data(env: NodeEnv, compact_schedule: str, analyze_schedule: str) -> str:
    """Boot script of the head: install, create/load the Ray token, start Ray, enable timers."""
    submit = f"{VENV}/bin/ray job submit --address http://127.0.0.1:{DASHBOARD_PORT} --no-wait --"
    files = {
        "ray-head.service": _unit(
            "Ray head",
            f"{VENV}/bin/ray start --head --port={GCS_PORT} --dashboard-host=0.0.0.0 --dashboard-port={DASHBOARD_PORT} --block",
        ),
        "fleetprof-compact.service": _unit("fleetprof compaction job", f"{submit} {COMPACT_COMMAND}", oneshot=True),
        "fleetprof-compact.timer": _timer("fleetprof compaction schedule", compact_schedule),
        "fleetprof-analyze.service": _unit("fleetprof fleet analysis job", f"{submit} {ANALYZE_COMMAND}", oneshot=True),
        "fleetprof-analyze.timer": _timer("fleetprof analysis schedule", analyze_schedule),
    }
    script = _common_boot(env)
    script += f"""# Ray token auth: generated once, stored as an SSM SecureString for the workers.
if ! TOKEN=$(aws ssm get-parameter --region {env.region} --name {env.token_parameter} --with-decryption --query Parameter.Value --output text 2>/dev/null); then
  TOKEN=$(python3.11 -c 'import secrets; print(secrets.token_hex(32))')
  aws ssm put-parameter --region {env.region} --name {env.token_parameter} --type SecureString --key-id {env.kms_key_arn} --value "$TOKEN"
fi
umask 077; printf '%s' "$TOKEN" > /etc/fleetprof/ray-token; chown fleetprof /etc/fleetprof/ray-token
"""
    for fname, body in files.items():
        script += f"cat > /etc/systemd/system/{fname} <<'UNIT'\n{body}UNIT\n"
    script += "systemctl daemon-reload\nsystemctl enable --now ray-head.service fleetprof-compact.timer fleetprof-analyze.timer\n"
    return script


def worker_user_data(env: NodeEnv, head_ip: str) -> str:
    """Boot script of a worker: install, wait for the head's token, join the head."""
    script = _common_boot(env)
    script += f"""until TOKEN=$(aws ssm get-parameter --region {env.region} --name {env.token_parameter} --with-decryption --query Parameter.Value --output text 2>/dev/null); do sleep 10; done
umask 077; printf '%s' "$TOKEN" > /etc/fleetprof/ray-token; chown fleetprof /etc/fleetprof/ray-token
cat > /etc/systemd/system/ray-worker.service <<'UNIT'
{_unit("Ray worker", f"{VENV}/bin/ray start --address={head_ip}:{GCS_PORT} --block")}UNIT
systemctl daemon-reload
systemctl enable --now ray-worker.service
"""
    return script


def node_policy(bucket_arns: list[str], table_arn: str, key_arn: str, parameter_arn: str, *, head: bool) -> str:
    """Data access (both buckets, table, key) plus the Ray token parameter."""
    doc = json.loads(data_access_policy(bucket_arns, table_arn, key_arn))
    actions = ["ssm:GetParameter", "ssm:PutParameter"] if head else ["ssm:GetParameter"]
    doc["Statement"].append({"Sid": "RayToken", "Effect": "Allow", "Action": actions, "Resource": [parameter_arn]})
    return json.dumps(doc, sort_keys=True)


class RayCluster(pulumi.ComponentResource):
    """Ray head instance + worker ASG for compaction, retention, backfill and analysis."""

    def __init__(self, name: str, args: RayClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:ray:RayCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env_name = args.tags["Environment"]
        self.token_parameter = f"/fleetprof/{env_name}/ray-auth-token"
        parameter_arn = pulumi.Output.from_input(args.account_id).apply(
            lambda acct: f"arn:aws:ssm:{args.region}:{acct}:parameter{self.token_parameter}"
        )
        ami = aws.ssm.get_parameter_output(name=args.ami_parameter, opts=pulumi.InvokeOutputOptions(parent=self))

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
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="fleetprof Ray cluster (self only)",
            ingress=ingress,
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"], "description": "pip, AWS APIs"}],
            tags=tags(args.tags, f"{name}-sg"),
            opts=child,
        )

        profiles = {}
        for role_kind in ("head", "worker"):
            role = service_role(f"{name}-{role_kind}-role", "ec2.amazonaws.com", args.tags, child)
            aws.iam.RolePolicy(
                f"{name}-{role_kind}-data-policy",
                role=role.id,
                policy=pulumi.Output.all(
                    args.profiles_bucket_arn, args.analysis_bucket_arn, args.table_arn, args.kms_key_arn, parameter_arn
                ).apply(lambda a, head=role_kind == "head": node_policy([a[0], a[1]], a[2], a[3], a[4], head=head)),
                opts=child,
            )
            aws.iam.RolePolicyAttachment(
                f"{name}-{role_kind}-ssm-core",
                role=role.name,
                policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                opts=child,
            )
            profiles[role_kind] = aws.iam.InstanceProfile(
                f"{name}-{role_kind}-profile", role=role.name, tags=tags(args.tags, f"{name}-{role_kind}-profile"), opts=child
            )

        node_env = pulumi.Output.all(args.profiles_bucket, args.analysis_bucket, args.table_name, args.kms_key_arn).apply(
            lambda a: NodeEnv(
                region=args.region,
                pip_spec=args.pip_spec,
                token_parameter=self.token_parameter,
                kms_key_arn=a[3],
                profiles_bucket=a[0],
                analysis_bucket=a[1],
                table_name=a[2],
            )
        )
        metadata = {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}

        self.head = aws.ec2.Instance(
            f"{name}-head",
            ami=ami.value,
            instance_type=args.head_instance_type,
            subnet_id=args.private_subnet_ids[0],
            vpc_security_group_ids=[self.security_group.id],
            iam_instance_profile=profiles["head"].name,
            associate_public_ip_address=False,
            metadata_options=metadata,
            root_block_device={
                "encrypted": True,
                "kms_key_id": args.kms_key_arn,
                "volume_size": args.volume_gb,
                "volume_type": "gp3",
                "delete_on_termination": True,
                "tags": tags(args.tags, f"{name}-head-root"),
            },
            user_data=node_env.apply(lambda e: head_user_data(e, args.compact_schedule, args.analyze_schedule)),
            user_data_replace_on_change=True,
            tags=tags(args.tags, f"{name}-head", Role="ray-head"),
            opts=child,
        )

        worker_script = pulumi.Output.all(node_env, self.head.private_ip).apply(
            lambda a: base64.b64encode(worker_user_data(a[0], a[1]).encode()).decode()
        )
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-worker-lt",
            image_id=ami.value,
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
            opts=child,
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
            opts=child,
        )

        self.register_outputs(
            {"headInstanceId": self.head.id, "headPrivateIp": self.head.private_ip, "workerGroupName": self.workers.name}
        )
