"""Observability: SNS alarm topic, CloudWatch dashboard, alarms with thresholds from config.

Contract: every alarm notifies the topic (alarm and OK); the dashboard shows ALB requests,
5xx and latency, ECS CPU/memory, DynamoDB throttles, Ray node health, the scheduled jobs'
outcomes and the L0 backlog.

Alarms beyond the edge and the service:

* ``dynamodb-throttles``: the sum of the table's and its GSI's ``ReadThrottleEvents`` and
  ``WriteThrottleEvents`` (metrics keyed by table or index, not by operation, so every
  operation the index issues is covered);
* ``job-failed-<job>``: any ``JobFailed`` of a scheduled job (namespace ``Fleetprof/Jobs``,
  published by ``python -m workers.job_metrics``);
* ``compact-not-succeeding``: no ``JobSucceeded`` of compaction in two consecutive schedule
  intervals (missing data breaches: a node that publishes nothing alarms too);
* ``l0-backlog``: the oldest live L0 segment (published by each compaction run) older than
  ``alarmL0BacklogMinutes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import AlarmSpec, metric_alarm
from components.storage import TABLE_GSI_NAME
from components.tags import tags
from workers.job_metrics import JOBS, L0_SEGMENTS, NAMESPACE, OLDEST_L0_AGE, STATUS_METRIC

DYNAMODB_THROTTLE_METRICS = ("ReadThrottleEvents", "WriteThrottleEvents")
"""Throttle metrics keyed by table (and by GSI): they count every operation's throttles."""
JOB_PANEL_PERIOD = 300
"""The jobs publish once per run: their panels aggregate five minutes per point."""


@dataclass
class ObservabilityArgs:
    """Inputs of :class:`Observability`."""

    tags: dict[str, str]
    region: str
    kms_key_arn: pulumi.Input[str]
    alarm_email: str
    alb_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    table_name: pulumi.Input[str]
    ray_head_instance_id: pulumi.Input[str]
    ray_worker_group_name: pulumi.Input[str]
    ray_worker_min: int
    alarm_5xx_threshold: int
    alarm_latency_p99_ms: int
    alarm_cpu_percent: int
    alarm_throttle_threshold: int
    alarm_memory_percent: int
    alarm_l0_backlog_minutes: int
    compact_interval_minutes: int


def dashboard_body(region: str, env: str, alb: str, tg: str, cluster: str, service: str, table: str, head: str,
                   asg: str) -> str:
    """The dashboard JSON (deterministic key order); ``env`` is the ``Environment`` dimension
    of the jobs' metrics."""

    elb = "AWS/ApplicationELB"
    ddb = "AWS/DynamoDB"
    panels: list[tuple[str, list, str]] = [
        ("ALB requests", [[elb, "RequestCount", "LoadBalancer", alb]], "Sum"),
        (
            "ALB 5xx",
            [[elb, "HTTPCode_ELB_5XX_Count", "LoadBalancer", alb], [elb, "HTTPCode_Target_5XX_Count", "LoadBalancer", alb, "TargetGroup", tg]],
            "Sum",
        ),
        ("Target latency p99 (s)", [[elb, "TargetResponseTime", "LoadBalancer", alb, "TargetGroup", tg]], "p99"),
        (
            "ECS CPU / memory (%)",
            [
                ["AWS/ECS", "CPUUtilization", "ClusterName", cluster, "ServiceName", service],
                ["AWS/ECS", "MemoryUtilization", "ClusterName", cluster, "ServiceName", service],
            ],
            "Average",
        ),
        (
            "DynamoDB throttles",
            [[ddb, m, "TableName", table] for m in DYNAMODB_THROTTLE_METRICS]
            + [[ddb, m, "TableName", table, "GlobalSecondaryIndexName", TABLE_GSI_NAME] for m in DYNAMODB_THROTTLE_METRICS],
            "Sum",
        ),
        (
            "Ray node health",
            [
                ["AWS/EC2", "StatusCheckFailed", "InstanceId", head],
                ["AWS/EC2", "StatusCheckFailed_System", "InstanceId", head],
                ["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", asg],
            ],
            "Maximum",
        ),
        (
            "Scheduled jobs (runs)",
            [[NAMESPACE, m, "Environment", env, "Job", job] for job in JOBS for m in STATUS_METRIC.values()],
            "Sum",
        ),
        (
            "L0 backlog (segments, oldest age s)",
            [[NAMESPACE, L0_SEGMENTS, "Environment", env], [NAMESPACE, OLDEST_L0_AGE, "Environment", env, {"yAxis": "right"}]],
            "Maximum",
        ),
    ]
    # Two 12x6 panels per row, left to right, top to bottom.
    widgets = [
        {
            "type": "metric",
            "x": 12 * (i % 2),
            "y": 6 * (i // 2),
            "width": 12,
            "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": JOB_PANEL_PERIOD if metrics[0][0] == NAMESPACE else 60,
                           "view": "timeSeries", "metrics": metrics},
        }
        for i, (title, metrics, stat) in enumerate(panels)
    ]
    return json.dumps({"widgets": widgets}, sort_keys=True)


def job_alarm_specs(env: str, compact_interval_minutes: int, l0_backlog_minutes: int) -> list[AlarmSpec]:
    """Alarms on the scheduled jobs' metrics of ``env`` (see the module docstring)."""
    specs = [
        AlarmSpec(
            f"job-failed-{job}",
            f"scheduled {job} job failed",
            NAMESPACE,
            STATUS_METRIC["failed"],
            {"Environment": env, "Job": job},
            "Sum",
            0,
            evaluation_periods=1,
            period=300,
        )
        for job in JOBS
    ]
    interval_s = compact_interval_minutes * 60
    specs.append(
        AlarmSpec(
            "compact-not-succeeding",
            f"no successful compaction in two schedule intervals ({2 * compact_interval_minutes} min)",
            NAMESPACE,
            STATUS_METRIC["succeeded"],
            {"Environment": env, "Job": "compact"},
            "Sum",
            1,
            evaluation_periods=2,
            period=interval_s,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
        )
    )
    specs.append(
        AlarmSpec(
            "l0-backlog",
            f"oldest uncompacted L0 segment older than {l0_backlog_minutes} min",
            NAMESPACE,
            OLDEST_L0_AGE,
            {"Environment": env},
            "Maximum",
            l0_backlog_minutes * 60,
            evaluation_periods=1,
            period=interval_s,
            treat_missing_data="ignore",  # published once per run; compact-not-succeeding covers no runs
        )
    )
    return specs


def throttle_alarm(name: str, table_name: pulumi.Input[str], threshold: int, base_tags: dict[str, str],
                   opts: pulumi.ResourceOptions, topic_arn: pulumi.Input[str]) -> aws.cloudwatch.MetricAlarm:
    """Alarm on the sum of every throttle event of the index table and its GSI."""
    alarm = f"{name}-dynamodb-throttles"
    queries: list[dict] = []
    for i, (metric, index) in enumerate((m, g) for g in (None, TABLE_GSI_NAME) for m in DYNAMODB_THROTTLE_METRICS):
        dims = {"TableName": table_name} | ({"GlobalSecondaryIndexName": index} if index else {})
        queries.append({
            "id": f"m{i}",
            "metric": {"namespace": "AWS/DynamoDB", "metric_name": metric, "dimensions": dims, "period": 60, "stat": "Sum"},
            "return_data": False,
        })
    ids = ", ".join(q["id"] for q in queries)
    queries.append({"id": "throttles", "expression": f"SUM([{ids}])", "label": "throttle events", "return_data": True})
    return aws.cloudwatch.MetricAlarm(
        alarm,
        alarm_description="index table throttled requests (reads and writes, table and GSI, every operation)",
        metric_queries=queries,
        evaluation_periods=3,
        threshold=threshold,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        tags=tags(base_tags, alarm),
        opts=opts,
    )


class Observability(pulumi.ComponentResource):
    """Alarm topic, dashboard and alarms for one stack."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:observability:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        env = args.tags["Environment"]

        self.topic = aws.sns.Topic(
            f"{name}-alarms", kms_master_key_id=args.kms_key_arn, tags=tags(args.tags, f"{name}-alarms"), opts=child
        )
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alarms-email", topic=self.topic.arn, protocol="email", endpoint=args.alarm_email, opts=child
            )

        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"fleetprof-{env}",
            dashboard_body=pulumi.Output.all(
                args.alb_arn_suffix,
                args.target_group_arn_suffix,
                args.cluster_name,
                args.service_name,
                args.table_name,
                args.ray_head_instance_id,
                args.ray_worker_group_name,
            ).apply(lambda a: dashboard_body(args.region, env, *a)),
            opts=child,
        )
        self.dashboard_url = self.dashboard.dashboard_name.apply(
            lambda n: f"https://{args.region}.console.aws.amazon.com/cloudwatch/home?region={args.region}#dashboards:name={n}"
        )

        alb_dims = {"LoadBalancer": args.alb_arn_suffix}
        tg_dims = {"LoadBalancer": args.alb_arn_suffix, "TargetGroup": args.target_group_arn_suffix}
        ecs_dims = {"ClusterName": args.cluster_name, "ServiceName": args.service_name}
        elb = "AWS/ApplicationELB"
        specs = [
            AlarmSpec("alb-5xx", "ALB-generated 5xx responses", elb, "HTTPCode_ELB_5XX_Count", alb_dims, "Sum", args.alarm_5xx_threshold),
            AlarmSpec("target-5xx", "fleetprof 5xx responses", elb, "HTTPCode_Target_5XX_Count", tg_dims, "Sum", args.alarm_5xx_threshold),
            AlarmSpec("latency-p99", "fleetprof p99 latency", elb, "TargetResponseTime", tg_dims, "p99", args.alarm_latency_p99_ms / 1000.0),
            AlarmSpec("ecs-cpu", "fleetprof service CPU", "AWS/ECS", "CPUUtilization", ecs_dims, "Average", args.alarm_cpu_percent),
            AlarmSpec("ecs-memory", "fleetprof service memory", "AWS/ECS", "MemoryUtilization", ecs_dims, "Average", args.alarm_memory_percent),
            AlarmSpec(
                "ray-head-status",
                "Ray head failed its EC2 status checks",
                "AWS/EC2",
                "StatusCheckFailed",
                {"InstanceId": args.ray_head_instance_id},
                "Maximum",
                0,
                evaluation_periods=3,
                treat_missing_data="breaching",
            ),
            *job_alarm_specs(env, args.compact_interval_minutes, args.alarm_l0_backlog_minutes),
        ]
        if args.ray_worker_min > 0:
            specs.append(
                AlarmSpec(
                    "ray-workers-in-service",
                    "fewer Ray workers in service than the configured minimum",
                    "AWS/AutoScaling",
                    "GroupInServiceInstances",
                    {"AutoScalingGroupName": args.ray_worker_group_name},
                    "Minimum",
                    args.ray_worker_min,
                    evaluation_periods=2,
                    period=300,
                    comparison_operator="LessThanThreshold",
                )
            )
        self.alarms = [metric_alarm(name, spec, args.tags, child, actions=[self.topic.arn]) for spec in specs]
        self.alarms.append(
            throttle_alarm(name, args.table_name, args.alarm_throttle_threshold, args.tags, child, self.topic.arn)
        )

        self.register_outputs({"topicArn": self.topic.arn, "dashboardUrl": self.dashboard_url})
