"""Observability: SNS alarm topic, CloudWatch dashboard, alarms with thresholds from config.

Contract: every alarm notifies the topic (alarm and OK); the dashboard shows ALB requests,
5xx and latency, ECS CPU/memory, DynamoDB throttles and Ray node health.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

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

    def widget(title: str, metrics: list, x: int, y: int, stat: str = "Sum") -> dict:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": 60, "view": "timeSeries", "metrics": metrics},
        }

    elb = "AWS/ApplicationELB"
    widgets = [
        widget("ALB requests", [[elb, "RequestCount", "LoadBalancer", alb]], 0, 0),
        widget(
            "ALB 5xx",
            [[elb, "HTTPCode_ELB_5XX_Count", "LoadBalancer", alb], [elb, "HTTPCode_Target_5XX_Count", "LoadBalancer", alb, "TargetGroup", tg]],
            12,
            0,
        ),
        widget("Target latency p99 (s)", [[elb, "TargetResponseTime", "LoadBalancer", alb, "TargetGroup", tg]], 0, 6, "p99"),
        widget(
            "ECS CPU / memory (%)",
            [
                ["AWS/ECS", "CPUUtilization", "ClusterName", cluster, "ServiceName", service],
                ["AWS/ECS", "MemoryUtilization", "ClusterName", cluster, "ServiceName", service],
            ],
            12,
            6,
            "Average",
        ),
        widget(
            "DynamoDB throttles",
            [["AWS/DynamoDB", "ReadThrottleEvents", "TableName", table], ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", table]],
            0,
            12,
        ),
        widget(
            "Ray node health",
            [
                ["AWS/EC2", "StatusCheckFailed", "InstanceId", head],
                ["AWS/AutoScaling", "GroupInServiceInstances", "AutoScalingGroupName", asg],
            ],
            12,
            12,
            "Maximum",
        ),
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

        def alarm(suffix: str, description: str, **kwargs) -> aws.cloudwatch.MetricAlarm:
            return aws.cloudwatch.MetricAlarm(
                f"{name}-{suffix}",
                alarm_description=description,
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                treat_missing_data=kwargs.pop("treat_missing_data", "notBreaching"),
                tags=tags(args.tags, f"{name}-{suffix}"),
                opts=child,
                **kwargs,
            )

        alb_dims = {"LoadBalancer": args.alb_arn_suffix}
        tg_dims = {"LoadBalancer": args.alb_arn_suffix, "TargetGroup": args.target_group_arn_suffix}
        ecs_dims = {"ClusterName": args.cluster_name, "ServiceName": args.service_name}
        self.alarms = [
            alarm(
                "alb-5xx",
                "ALB-generated 5xx responses",
                namespace="AWS/ApplicationELB",
                metric_name="HTTPCode_ELB_5XX_Count",
                dimensions=alb_dims,
                statistic="Sum",
                period=60,
                evaluation_periods=5,
                threshold=args.alarm_5xx_threshold,
                comparison_operator="GreaterThanThreshold",
            ),
            alarm(
                "target-5xx",
                "fleetprof 5xx responses",
                namespace="AWS/ApplicationELB",
                metric_name="HTTPCode_Target_5XX_Count",
                dimensions=tg_dims,
                statistic="Sum",
                period=60,
                evaluation_periods=5,
                threshold=args.alarm_5xx_threshold,
                comparison_operator="GreaterThanThreshold",
            ),
            alarm(
                "latency-p99",
                "fleetprof p99 latency",
                namespace="AWS/ApplicationELB",
                metric_name="TargetResponseTime",
                dimensions=tg_dims,
                extended_statistic="p99",
                period=60,
                evaluation_periods=5,
                threshold=args.alarm_latency_p99_ms / 1000.0,
                comparison_operator="GreaterThanThreshold",
            ),
            alarm(
                "ecs-cpu",
                "fleetprof service CPU",
                namespace="AWS/ECS",
                metric_name="CPUUtilization",
                dimensions=ecs_dims,
                statistic="Average",
                period=60,
                evaluation_periods=5,
                threshold=args.alarm_cpu_percent,
                comparison_operator="GreaterThanThreshold",
            ),
            alarm(
                "ecs-memory",
                "fleetprof service memory",
                namespace="AWS/ECS",
                metric_name="MemoryUtilization",
                dimensions=ecs_dims,
                statistic="Average",
                period=60,
                evaluation_periods=5,
                threshold=args.alarm_cpu_percent,
                comparison_operator="GreaterThanThreshold",
            ),
            alarm(
                "dynamodb-throttles",
                "index table throttled requests",
                namespace="AWS/DynamoDB",
                metric_name="ThrottledRequests",
                dimensions={"TableName": args.table_name, "Operation": "PutItem"},
                statistic="Sum",
                period=60,
                evaluation_periods=3,
                threshold=args.alarm_throttle_threshold,
                comparison_operator="GreaterThanThreshold",
            ),
            alarm(
                "ray-head-status",
                "Ray head failed its EC2 status checks",
                namespace="AWS/EC2",
                metric_name="StatusCheckFailed",
                dimensions={"InstanceId": args.ray_head_instance_id},
                statistic="Maximum",
                period=60,
                evaluation_periods=3,
                threshold=0,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="breaching",
            ),
        ]
        if args.ray_worker_min > 0:
            self.alarms.append(
                alarm(
                    "ray-workers-in-service",
                    "fewer Ray workers in service than the configured minimum",
                    namespace="AWS/AutoScaling",
                    metric_name="GroupInServiceInstances",
                    dimensions={"AutoScalingGroupName": args.ray_worker_group_name},
                    statistic="Minimum",
                    period=300,
                    evaluation_periods=2,
                    threshold=args.ray_worker_min,
                    comparison_operator="LessThanThreshold",
                )
            )

        self.register_outputs({"topicArn": self.topic.arn, "dashboardUrl": self.dashboard_url})
