"""Edge layer: internet-facing ALB, its security group, listeners, target group, WAFv2 and
the certificate the ALB serves.

Contract:

- Certificate: with ``domain_name`` the stack requests an ACM certificate for that name,
  validates it by DNS in the public Route 53 zone ``hosted_zone_name`` (looked up in the
  deploying account, so a missing zone fails ``preview``), serves the *validated* certificate
  and points an alias A record for the name at the ALB; the stack's URL is then
  ``https://<domain_name>``. With ``certificate_arn`` (bring your own) the listener uses that
  certificate, which must belong to the deploying account (:func:`check_certificate_arn`;
  the region is checked by :class:`components.settings.Settings`).
- With a certificate the ALB serves HTTPS on 443 and port 80 only redirects (301) to HTTPS;
  without one a forwarding HTTP listener exists only if ``allow_plain_http``.
- The target group forwards to port 4040 (``ip`` targets, Fargate) and health-checks
  ``/readyz``. The security group admits ``allowed_cidrs`` on 443 (with HTTPS) and 80.
- WAF: the AWS common rule set (CRS) and known-bad-inputs groups. The CRS rules listed in
  :data:`INGEST_EXEMPT_CRS_RULES` (request-body rules: profiles are binary and larger than
  the 8 KB the CRS allows; and the missing-User-Agent rule: older agents send none) only
  count inside the group; a label rule right after it blocks on their labels on every path
  but :data:`INGEST_PATHS`, the server's upload routes. The Amazon IP reputation list runs
  first. Per-IP rate limits apply to the ingest paths and, separately, to every other path
  (queries, UI). The web ACL logs to the KMS-encrypted log group
  ``aws-waf-logs-fleetprof-<env>`` (retention by config) with the ``Authorization`` header
  redacted, through a log resource policy that admits the log delivery service only for
  this account.
- Target group: HTTP to the tasks inside the VPC (see the README's transport decision).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.settings import SettingsError
from components.tags import tags

APP_PORT = 4040
HEALTH_CHECK_PATH = "/readyz"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
INGEST_PATHS: tuple[str, ...] = ("/ingest", "/push.v1.PusherService/Push", "/api/v1/ingest", "/v1/traces")
"""Exact URI paths of the server's upload routes (``fleetprof.server.routes_ingest`` and
``routes_traces``): legacy Pyroscope ``/ingest``, Connect ``Push``, the native
``/api/v1/ingest`` of ``fleetprof push`` and OTLP/HTTP ``/v1/traces``."""
COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
KNOWN_BAD_INPUTS = "AWSManagedRulesKnownBadInputsRuleSet"
IP_REPUTATION = "AWSManagedRulesAmazonIpReputationList"
WAF_LOG_PREFIX = "aws-waf-logs-"
REDACTED_HEADERS: tuple[str, ...] = ("authorization",)
"""Headers kept out of WAF logs: clients' bearer tokens."""
CRS_LABEL_PREFIX = "awswaf:managed:aws:core-rule-set:"
INGEST_EXEMPT_CRS_RULES: dict[str, str] = {
    "SizeRestrictions_BODY": "SizeRestrictions_Body",
    "CrossSiteScripting_BODY": "CrossSiteScripting_Body",
    "GenericLFI_BODY": "GenericLFI_Body",
    "GenericRFI_BODY": "GenericRFI_Body",
    "EC2MetaDataSSRF_BODY": "EC2MetaDataSSRF_Body",
    "NoUserAgent_HEADER": "NoUserAgent_Header",
}
"""CRS rule name -> the label it adds (AWS Managed Rules docs, core rule set): these rules
count inside the group and block, through their labels, everywhere but :data:`INGEST_PATHS`."""
CERT_VALIDATION_TTL = 60


@dataclass
class EdgeArgs:
    """Inputs of :class:`Edge`."""

    tags: dict[str, str]
    vpc_id: pulumi.Input[str]
    public_subnet_ids: list[pulumi.Input[str]]
    allowed_cidrs: tuple[str, ...]
    certificate_arn: str
    domain_name: str
    hosted_zone_name: str
    allow_plain_http: bool
    deletion_protection: bool
    waf_enabled: bool
    waf_rate_limit: int
    access_logs_bucket: pulumi.Input[str]
    access_logs_ready: list[pulumi.Resource]
    region: str = "us-east-1"
    account_id: pulumi.Input[str] = ""
    kms_key_arn: pulumi.Input[str] = ""
    waf_query_rate_limit: int = 2000
    waf_log_retention_days: int = 90


def check_certificate_arn(arn: str, account_id: str) -> None:
    """Raise :class:`SettingsError` unless ``arn`` belongs to ``account_id`` (an ALB listener
    can only use a certificate of its own account)."""
    owner = arn.split(":")[4] if arn.count(":") >= 5 else ""
    if owner != account_id:
        raise SettingsError(
            f"fleetprof:certificateArn is in account {owner or '?'} but this stack deploys to "
            f"{account_id}: set fleetprof:certificateArn to a certificate of this account and "
            "region, or set fleetprof:domainName and fleetprof:hostedZoneName"
        )


def _visibility(metric: str) -> dict[str, Any]:
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric,
        "sampled_requests_enabled": True,
    }


def _ingest_paths_statement() -> dict[str, Any]:
    """Matches a request whose URI path is exactly one of :data:`INGEST_PATHS`."""
    matches = [
        {
            "byte_match_statement": {
                "search_string": path,
                "positional_constraint": "EXACTLY",
                "field_to_match": {"uri_path": {}},
                "text_transformations": [{"priority": 0, "type": "NONE"}],
            }
        }
        for path in INGEST_PATHS
    ]
    return {"or_statement": {"statements": matches}}


def _managed_rule(name: str, priority: int, count_rules: tuple[str, ...] = ()) -> dict[str, Any]:
    """An AWS managed rule group; ``count_rules`` only count (and label) instead of acting."""
    statement: dict[str, Any] = {"vendor_name": "AWS", "name": name}
    if count_rules:
        statement["rule_action_overrides"] = [
            {"name": rule, "action_to_use": {"count": {}}} for rule in count_rules
        ]
    return {
        "name": name,
        "priority": priority,
        "override_action": {"none": {}},
        "statement": {"managed_rule_group_statement": statement},
        "visibility_config": _visibility(name),
    }


def _crs_outside_ingest_rule(priority: int) -> dict[str, Any]:
    """Block on the labels of :data:`INGEST_EXEMPT_CRS_RULES` unless the path is an ingest
    path (must run after the CRS group, whose labels it reads)."""
    labels = [
        {"label_match_statement": {"scope": "LABEL", "key": CRS_LABEL_PREFIX + label}}
        for label in INGEST_EXEMPT_CRS_RULES.values()
    ]
    name = "crs-body-and-agent-rules-outside-ingest"
    return {
        "name": name,
        "priority": priority,
        "action": {"block": {}},
        "statement": {
            "and_statement": {
                "statements": [
                    {"or_statement": {"statements": labels}},
                    {"not_statement": {"statement": _ingest_paths_statement()}},
                ]
            }
        },
        "visibility_config": _visibility(name),
    }


def _rate_rule(name: str, limit: int, priority: int, scope: dict[str, Any]) -> dict[str, Any]:
    """Rate-limit per source IP, scoped down to the requests ``scope`` matches."""
    return {
        "name": name,
        "priority": priority,
        "action": {"block": {}},
        "statement": {
            "rate_based_statement": {"limit": limit, "aggregate_key_type": "IP", "scope_down_statement": scope},
        },
        "visibility_config": _visibility(name),
    }


def web_acl_rules(rate_limit: int, query_rate_limit: int) -> list[dict[str, Any]]:
    """The web ACL's rules, in priority order."""
    return [
        _managed_rule(IP_REPUTATION, 5),
        _managed_rule(COMMON_RULE_SET, 10, tuple(INGEST_EXEMPT_CRS_RULES)),
        _crs_outside_ingest_rule(11),
        _managed_rule(KNOWN_BAD_INPUTS, 20),
        _rate_rule("ingest-rate-limit", rate_limit, 30, _ingest_paths_statement()),
        _rate_rule("query-rate-limit", query_rate_limit, 31, {"not_statement": {"statement": _ingest_paths_statement()}}),
    ]


def waf_log_delivery_policy(log_group_arn: str, account_id: str, region: str) -> str:
    """CloudWatch Logs resource policy letting the log delivery service write WAF logs into
    one log group, only on behalf of this account (``aws:SourceAccount``/``aws:SourceArn``)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "WafLogDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": "delivery.logs.amazonaws.com"},
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": [f"{log_group_arn}:*"],
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{region}:{account_id}:*"},
                    },
                }
            ],
        },
        sort_keys=True,
    )


def _hosted_zone(zone_name: str, parent: pulumi.Resource) -> aws.route53.AwaitableGetZoneResult:
    """The public Route 53 zone ``zone_name`` of the deploying account (SettingsError if none)."""
    try:
        return aws.route53.get_zone(
            name=zone_name, private_zone=False, opts=pulumi.InvokeOptions(parent=parent)
        )
    except Exception as e:  # the provider's lookup failure, whatever its class
        raise SettingsError(
            f"fleetprof:hostedZoneName {zone_name!r} is not a public Route 53 hosted zone of the "
            f"deploying account ({e}): create and delegate the zone, or set "
            "fleetprof:hostedZoneName to a zone of the account that contains fleetprof:domainName"
        ) from e


class Edge(pulumi.ComponentResource):
    """The public entry point of the ingest/query service."""

    def __init__(
        self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("fleetprof:edge:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.certificate: aws.acm.Certificate | None = None
        self.alias_record: aws.route53.Record | None = None
        zone = _hosted_zone(args.hosted_zone_name, self) if args.domain_name else None
        certificate_arn = self._certificate(name, args, zone)
        https = certificate_arn is not None
        cidrs = list(args.allowed_cidrs)

        ingress = []
        if https:
            ingress.append(
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": cidrs,
                    "description": "HTTPS",
                }
            )
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

        def listener(protocol: str, port: int, action: dict, **tls: Any) -> aws.lb.Listener:
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
            self.listeners.append(
                listener(
                    "HTTPS", 443, forward, ssl_policy=TLS_POLICY, certificate_arn=certificate_arn
                )
            )
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
                description="fleetprof ALB: AWS managed rules, ingest paths exempt from body rules",
                default_action={"allow": {}},
                rules=web_acl_rules(args.waf_rate_limit, args.waf_query_rate_limit),
                visibility_config=_visibility(f"{name}-waf"),
                tags=tags(args.tags, f"{name}-waf"),
                opts=child,
            )
            aws.wafv2.WebAclAssociation(
                f"{name}-waf-association",
                resource_arn=self.alb.arn,
                web_acl_arn=self.web_acl.arn,
                opts=child,
            )
            self._waf_logging(name, args, self.web_acl)

        if zone is not None:
            self.alias_record = aws.route53.Record(
                f"{name}-alias",
                zone_id=zone.zone_id,
                name=args.domain_name,
                type="A",
                aliases=[
                    {
                        "name": self.alb.dns_name,
                        "zone_id": self.alb.zone_id,
                        "evaluate_target_health": True,
                    }
                ],
                opts=child,
            )
            self.url = self.alias_record.fqdn.apply(lambda fqdn: f"https://{fqdn}")
        else:
            scheme = "https" if https else "http"
            self.url = self.alb.dns_name.apply(lambda dns: f"{scheme}://{dns}")
        self.register_outputs(
            {"url": self.url, "albArn": self.alb.arn, "targetGroupArn": self.target_group.arn}
        )

    def _waf_logging(self, name: str, args: EdgeArgs, web_acl: aws.wafv2.WebAcl) -> None:
        """WAF logs into ``aws-waf-logs-fleetprof-<env>`` (stack key, retention), written by the
        log delivery service under this group's own resource policy, tokens redacted."""
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-waf-logs",
            name=f"{WAF_LOG_PREFIX}fleetprof-{args.tags['Environment']}",
            retention_in_days=args.waf_log_retention_days,
            kms_key_id=args.kms_key_arn,
            tags=tags(args.tags, f"{name}-waf-logs"),
            opts=child,
        )
        policy = aws.cloudwatch.LogResourcePolicy(
            f"{name}-waf-log-delivery",
            policy_name=f"fleetprof-{args.tags['Environment']}-waf-log-delivery",
            policy_document=pulumi.Output.all(log_group.arn, args.account_id).apply(
                lambda a: waf_log_delivery_policy(a[0], a[1], args.region)
            ),
            opts=child,
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-waf-logging",
            resource_arn=web_acl.arn,
            log_destination_configs=[log_group.arn],
            redacted_fields=[{"single_header": {"name": header}} for header in REDACTED_HEADERS],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    def _certificate(
        self, name: str, args: EdgeArgs, zone: aws.route53.AwaitableGetZoneResult | None
    ) -> pulumi.Input[str] | None:
        """The certificate ARN the HTTPS listener serves: the validated managed certificate
        (when ``zone``), the brought ``certificate_arn`` (checked against the caller's
        account), or None (no HTTPS)."""
        if zone is None:
            if not args.certificate_arn:
                return None
            identity = aws.get_caller_identity(opts=pulumi.InvokeOptions(parent=self))
            check_certificate_arn(args.certificate_arn, identity.account_id)
            return args.certificate_arn
        child = pulumi.ResourceOptions(parent=self)
        self.certificate = aws.acm.Certificate(
            f"{name}-cert",
            domain_name=args.domain_name,
            validation_method="DNS",
            tags=tags(args.tags, f"{name}-cert"),
            opts=child,
        )
        option = self.certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-cert-validation-record",
            zone_id=zone.zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=CERT_VALIDATION_TTL,
            allow_overwrite=True,
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-cert-validation",
            certificate_arn=self.certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )
        return validation.certificate_arn
