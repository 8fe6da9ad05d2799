"""Edge layer: internet-facing ALB, its security group, listeners, target group, WAFv2.

Contract: with a certificate ARN the ALB serves HTTPS on 443 and port 80 only redirects
(301) to HTTPS; without one a forwarding HTTP listener exists only if ``allow_plain_http``.
The target group forwards to port 4040 (``ip`` targets, Fargate) and health-checks
``/readyz``. The security group admits ``allowed_cidrs`` on 443 (with HTTPS) and 80.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.tags import tags

APP_PORT = 4040
HEALTH_CHECK_PATH = "/readyz"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
INGEST_PATH_PREFIXES: tuple[str, ...] = ("/ingest", "/push.v1.PusherService/", "/api/v1/ingest")


@dataclass
class EdgeArgs:
    """Inputs of :class:`Edge`."""

    tags: dict[str, str]
    vpc_id: pulumi.Input[str]
    public_subnet_ids: list[pulumi.Input[str]]
    allowed_cidrs: tuple[str, ...]
    certificate_arn: str
    allow_plain_http: bool
    deletion_protection: bool
    waf_enabled: bool
    waf_rate_limit: int
    access_logs_bucket: pulumi.Input[str]
    access_logs_ready: list[pulumi.Resource]


def _managed_rule(name: str, priority: int) -> dict:
    return {
        "name": name,
        "priority": priority,
        "override_action": {"none": {}},
        "statement": {"managed_rule_group_statement": {"vendor_name": "AWS", "name": name}},
        "visibility_config": {"cloudwatch_metrics_enabled": True, "metric_name": name, "sampled_requests_enabled": True},
    }


def _ingest_rate_rule(limit: int, priority: int) -> dict:
    """Rate-limit per source IP, scoped down to the ingest paths."""
    matches = [
        {
            "byte_match_statement": {
                "search_string": prefix,
                "positional_constraint": "STARTS_WITH",
                "field_to_match": {"uri_path": {}},
                "text_transformations": [{"priority": 0, "type": "NONE"}],
            }
        }
        for prefix in INGEST_PATH_PREFIXES
    ]
    return {
        "name": "ingest-rate-limit",
        "priority": priority,
        "action": {"block": {}},
        "statement": {
            "rate_based_statement": {
                "limit": limit,
                "aggregate_key_type": "IP",
                "scope_down_statement": {"or_statement": {"statements": matches}},
            }
        },
        "visibility_config": {"cloudwatch_metrics_enabled": True, "metric_name": "ingest-rate-limit", "sampled_requests_enabled": True},
    }


class Edge(pulumi.ComponentResource):
    """The public entry point of the ingest/query service."""

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("fleetprof:edge:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        https = bool(args.certificate_arn)
        cidrs = list(args.allowed_cidrs)

        ingress = []
        if https:
            ingress.append({"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": cidrs, "description": "HTTPS"})
        ingress.append(
            {
                "protocol": "tcp",
                "from_port": 80,
                "to_port": 80,
                "cidr_blocks": cidrs,
                "description": "HTTP redirect to HTTPS" if https else "plain HTTP (allowPlainHttp)",
            }
        )
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-alb-sg",
            vpc_id=args.vpc_id,
            description="fleetprof ALB",
            ingress=ingress,
            tags=tags(args.tags, f"{name}-alb-sg"),
            opts=child,
        )

        self.alb = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            subnets=args.public_subnet_ids,
            security_groups=[self.security_group.id],
            drop_invalid_header_fields=True,
            enable_deletion_protection=args.deletion_protection,
            idle_timeout=60,
            access_logs={"bucket": args.access_logs_bucket, "prefix": "alb", "enabled": True},
            tags=tags(args.tags, f"{name}-alb"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.access_logs_ready),
        )

        self.target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            port=APP_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check={
                "enabled": True,
                "path": HEALTH_CHECK_PATH,
                "port": "traffic-port",
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            tags=tags(args.tags, f"{name}-tg"),
            opts=child,
        )

        def listener(protocol: str, port: int, action: dict, **tls: str) -> aws.lb.Listener:
            """Listener ``<name>-<protocol, lower case>`` on ``port`` with one default action."""
            listener_name = f"{name}-{protocol.lower()}"
            return aws.lb.Listener(
                listener_name,
                load_balancer_arn=self.alb.arn,
                port=port,
                protocol=protocol,
                default_actions=[action],
                tags=tags(args.tags, listener_name),
                opts=child,
                **tls,
            )

        forward = {"type": "forward", "target_group_arn": self.target_group.arn}
        self.listeners: list[aws.lb.Listener] = []
        if https:
            self.listeners.append(listener("HTTPS", 443, forward, ssl_policy=TLS_POLICY, certificate_arn=args.certificate_arn))
            http_action = {
                "type": "redirect",
                "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
            }
        else:
            http_action = forward
        self.listeners.append(listener("HTTP", 80, http_action))

        self.web_acl: aws.wafv2.WebAcl | None = None
        if args.waf_enabled:
            self.web_acl = aws.wafv2.WebAcl(
                f"{name}-waf",
                scope="REGIONAL",
                description="fleetprof ALB: AWS managed rules + ingest rate limit",
                default_action={"allow": {}},
                rules=[
                    _managed_rule("AWSManagedRulesCommonRuleSet", 10),
                    _managed_rule("AWSManagedRulesKnownBadInputsRuleSet", 20),
                    _ingest_rate_rule(args.waf_rate_limit, 30),
                ],
                visibility_config={"cloudwatch_metrics_enabled": True, "metric_name": f"{name}-waf", "sampled_requests_enabled": True},
                tags=tags(args.tags, f"{name}-waf"),
                opts=child,
            )
            aws.wafv2.WebAclAssociation(
                f"{name}-waf-association",
                resource_arn=self.alb.arn,
                web_acl_arn=self.web_acl.arn,
                opts=child,
            )

        scheme = "https" if https else "http"
        self.url = self.alb.dns_name.apply(lambda dns: f"{scheme}://{dns}")
        self.register_outputs({"url": self.url, "albArn": self.alb.arn, "targetGroupArn": self.target_group.arn})
