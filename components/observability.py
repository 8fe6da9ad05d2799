"""Observability: SNS alarm topic, CloudWatch dashboard, alarms with thresholds from config.

Contract: every alarm notifies the topic (alarm and OK); the dashboard shows ALB requests,
5xx and latency, ECS CPU/memory, DynamoDB throttles and Ray node health.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.common import AlarmSpec, metric_alarm
from components.tags import tags


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


def dashboard_body(region: str, alb: str, tg: str, cluster: str, service: str, table: str, head: str, asg: str) -> str:
    """The dashboard JSON (deterministic key order)."""

    elb = "AWS/ApplicationELB"
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
            [["AWS/DynamoDB", "ReadThrottleEvents", "TableName", table], ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", table]],
            "Sum",
        ),
        (
            "Ray node health",
            [
                ["AWS/EC2", "StatusCheckFailed", "InstanceId", head],
                ["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", asg],
            ],
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
            "properties": {"title": title, "region": region, "stat": stat, "period": 60, "view": "timeSeries", "metrics": metrics},
        }
        for i, (title, metrics, stat) in enumerate(panels)
    ]
    return json.dumps({"widgets": widgets}, sort_keys=True)


class Observability(pulumi.ComponentResource):
    """Alarm topic, dashboard and alarms for one stack."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:observability:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.topic = aws.sns.Topic(
            f"{name}-alarms", kms_master_key_id=args.kms_key_arn, tags=tags(args.tags, f"{name}-alarms"), opts=child
        )
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alarms-email", topic=self.topic.arn, protocol="email", endpoint=args.alarm_email, opts=child
            )

        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"fleetprof-{args.tags['Environment']}",
            dashboard_body=pulumi.Output.all(
                args.alb_arn_suffix,
                args.target_group_arn_suffix,
                args.cluster_name,
                args.service_name,
                args.table_name,
                args.ray_head_instance_id,
                args.ray_worker_group_name,
            ).apply(lambda a: dashboard_body(args.region, *a)),
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
            AlarmSpec("ecs-memory", "fleetprof service memory", "AWS/ECS", "MemoryUtilization", ecs_dims, "Average", args.alarm_cpu_percent),
            AlarmSpec(
                "dynamodb-throttles",
                "index table throttled requests",
                "AWS/DynamoDB",
                "ThrottledRequests",
                {"TableName": args.table_name, "Operation": "PutItem"},
                "Sum",
                args.alarm_throttle_threshold,
                evaluation_periods=3,
            ),
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

        self.register_outputs({"topicArn": self.topic.arn, "dashboardUrl": self.dashboard_url})
