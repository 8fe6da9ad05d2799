"""Offline preview: ``python -m components.preview --stack dev|staging|prod``.

Runs ``__main__.py`` under Pulumi mocks with the stack's config (see
:mod:`components.mockrun`) and prints the resource tree — components at the top, their
children sorted by type and name — with the key settings of each resource, then what AWS
would do with it (:mod:`components.aws_model.summary`: image origin, the container as
Fargate runs it, network paths, key users, WAF decisions) and exits 1 when any check finds
a problem. The tree is deterministic; ``tests/infra/snapshots/<stack>.txt`` holds its
golden copy.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from components.aws_model.summary import problems, summary_lines
from components.mockrun import MockResource, Rendering, parse_stack_command, render

# Key settings shown per resource type: dotted paths into the inputs; ``*`` maps over a
# list; JSON-string values (policies, container definitions) are parsed on the way down.
KEY_SETTINGS: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock", "tags.Tier", "mapPublicIpOnLaunch"),
    "aws:ec2/routeTable:RouteTable": ("routes.*.cidrBlock", "routes.*.gatewayId", "routes.*.natGatewayId"),
    "aws:ec2/natGateway:NatGateway": ("subnetId",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType", "privateDnsEnabled"),
    "aws:ec2/flowLog:FlowLog": ("trafficType", "logDestinationType"),
    "aws:ec2/securityGroup:SecurityGroup": (
        "ingress.*.fromPort",
        "ingress.*.toPort",
        "ingress.*.cidrBlocks",
        "ingress.*.self",
        "egress.*.toPort",
    ),
    "aws:cloudwatch/logGroup:LogGroup": ("retentionInDays", "kmsKeyId"),
    "aws:kms/key:Key": ("enableKeyRotation", "deletionWindowInDays"),
    "aws:kms/alias:Alias": ("name",),
    "aws:s3/bucket:Bucket": ("forceDestroy",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "rules.*.applyServerSideEncryptionByDefault.sseAlgorithm",
    ),
    "aws:s3/bucketVersioning:BucketVersioning": ("versioningConfiguration.status",),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        "rules.*.id",
        "rules.*.filter.prefix",
        "rules.*.expiration.days",
        "rules.*.noncurrentVersionExpiration.noncurrentDays",
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("rule.objectOwnership",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy.Statement.*.Sid",),
    "aws:dynamodb/table:Table": (
        "billingMode",
        "hashKey",
        "rangeKey",
        "globalSecondaryIndexes.*.name",
        "ttl.attributeName",
        "pointInTimeRecovery.enabled",
        "deletionProtectionEnabled",
        "serverSideEncryption.enabled",
    ),
    "aws:lb/loadBalancer:LoadBalancer": (
        "internal",
        "enableDeletionProtection",
        "dropInvalidHeaderFields",
        "accessLogs.enabled",
    ),
    "aws:lb/targetGroup:TargetGroup": ("port", "targetType", "healthCheck.path"),
    "aws:lb/listener:Listener": ("port", "protocol", "sslPolicy", "defaultActions.*.type"),
    "aws:wafv2/webAcl:WebAcl": ("scope", "rules.*.name"),
    "aws:ecs/cluster:Cluster": ("settings.*.value",),
    "aws:ecr/repository:Repository": ("imageTagMutability", "imageScanningConfiguration.scanOnPush", "forceDelete"),
    "aws:ecs/taskDefinition:TaskDefinition": (
        "cpu",
        "memory",
        "containerDefinitions.*.command",
        "containerDefinitions.*.user",
        "containerDefinitions.*.readonlyRootFilesystem",
        "containerDefinitions.*.environment.*.name",
    ),
    "aws:ecs/service:Service": (
        "launchType",
        "desiredCount",
        "networkConfiguration.assignPublicIp",
        "deploymentCircuitBreaker.rollback",
        "alarms.rollback",
    ),
    "aws:appautoscaling/target:Target": ("minCapacity", "maxCapacity"),
    "aws:appautoscaling/policy:Policy": (
        "targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.predefinedMetricType",
        "targetTrackingScalingPolicyConfiguration.targetValue",
    ),
    "aws:ec2/instance:Instance": (
        "instanceType",
        "associatePublicIpAddress",
        "metadataOptions.httpTokens",
        "rootBlockDevice.encrypted",
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": (
        "instanceType",
        "metadataOptions.httpTokens",
        "blockDeviceMappings.*.ebs.encrypted",
        "networkInterfaces.*.associatePublicIpAddress",
    ),
    "aws:autoscaling/group:Group": ("minSize", "desiredCapacity", "maxSize"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("metricName", "threshold", "comparisonOperator"),
    "aws:sns/topicSubscription:TopicSubscription": ("protocol", "endpoint"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("policyArn",),
    "aws:iam/rolePolicy:RolePolicy": ("policy.Statement.*.Sid",),
}


def normalize(value: Any) -> Any:
    """Integral floats become ints (the wire format has only doubles); containers recurse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def pick(value: Any, path: str) -> Any:
    """Follow a dotted path (``*`` maps over lists, JSON strings are parsed); None if absent."""
    if not path:
        return value
    head, _, rest = path.partition(".")
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if head == "*":
        if not isinstance(value, list):
            return None
        picked = [pick(v, rest) for v in value]
        return [p for p in picked if p is not None] or None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict) or head not in value:
        return None
    return pick(value[head], rest)


def key_settings(resource: MockResource) -> dict[str, Any]:
    """The key settings of one resource (only paths that are present)."""
    out: dict[str, Any] = {}
    for path in KEY_SETTINGS.get(resource.type, ()):
        v = pick(resource.inputs, path)
        if v is not None:
            out[path] = normalize(v)
    return out


def _fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


def tree_lines(rendering: Rendering) -> list[str]:
    """The resource tree as lines: ``type name [parent=…] key=value …``, sorted and indented."""
    children: dict[str, list[MockResource]] = {}
    for r in rendering.resources:
        parent = "" if not r.parent_name else r.parent
        children.setdefault(parent, []).append(r)
    lines = [f"stack {rendering.stack}: {len(rendering.resources)} resources"]

    def walk(parent: str, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda x: (x.type, x.name)):
            settings = " ".join(f"{k}={_fmt(v)}" for k, v in key_settings(r).items())
            parent_note = f" parent={r.parent_name}" if r.parent_name else ""
            lines.append(f"{'  ' * depth}{r.type} {r.name}{parent_note}" + (f"  {settings}" if settings else ""))
            walk(r.urn, depth + 1)

    walk("", 0)
    lines.append("exports: " + ", ".join(sorted(rendering.exports)))
    return lines


def preview_text(stack: str) -> str:
    """Render ``stack`` and return the tree text (the golden-snapshot format)."""
    return "\n".join(tree_lines(render(stack))) + "\n"


def main(argv: list[str] | None = None) -> int:
    ns = parse_stack_command(
        argv, "python -m components.preview", __doc__.splitlines()[0], flag="--exports", flag_help="also print the stack outputs as JSON"
    )
    if ns is None:
        return 2
    rendering = render(ns.stack)
    sys.stdout.write("\n".join(tree_lines(rendering)) + "\n")
    if ns.exports:
        sys.stdout.write(json.dumps(rendering.exports, indent=2, sort_keys=True) + "\n")
    sys.stdout.write("\n" + "\n".join(summary_lines(rendering)) + "\n")
    found = problems(rendering)
    for line in found:
        sys.stdout.write(f"PROBLEM {line}\n")
    sys.stdout.write(f"{len(found)} problem(s) AWS would hit\n" if found else "no problem AWS would hit\n")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
