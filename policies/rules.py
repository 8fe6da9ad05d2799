"""Policy rules as plain functions.

Props use engine (camelCase) property names, which is what CrossGuard hands to
validations and what :mod:`components.mockrun` records. A resource rule is
``check(resource_type, props, config) -> list[str]`` (violation messages); a stack rule is
``check(resources, config) -> list[tuple[urn | None, str]]`` over :class:`Res` views whose
``deps`` map a property name to the URNs it was computed from. Every rule is mandatory;
``config`` carries the per-stack requirements (defaults are the strict, prod-like ones), which
come from the stack's environment class (:mod:`policies.classes`), never from its own config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REQUIRED_TAGS: tuple[str, ...] = ("Project", "Environment", "Owner", "CostCenter")
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
WEB_PORTS = frozenset({80, 443})

T_BUCKET = "aws:s3/bucket:Bucket"
T_PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
T_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
T_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
T_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
T_TABLE = "aws:dynamodb/table:Table"
T_KEY = "aws:kms/key:Key"
T_LB = "aws:lb/loadBalancer:LoadBalancer"
T_LISTENER = "aws:lb/listener:Listener"
T_SG = "aws:ec2/securityGroup:SecurityGroup"
T_SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
T_SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
T_INSTANCE = "aws:ec2/instance:Instance"
T_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
T_SERVICE = "aws:ecs/service:Service"
T_TASK = "aws:ecs/taskDefinition:TaskDefinition"
T_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
T_WEB_ACL = "aws:wafv2/webAcl:WebAcl"
T_WEB_ACL_ASSOC = "aws:wafv2/webAclAssociation:WebAclAssociation"
T_NAT = "aws:ec2/natGateway:NatGateway"
T_SUBNET = "aws:ec2/subnet:Subnet"
T_ASG = "aws:autoscaling/group:Group"
T_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
T_WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
T_TOPIC = "aws:sns/topic:Topic"
AUTH_TOKENS_ENV = "FLEETPROF_AUTH_TOKENS"
BROAD_MANAGED_POLICIES: dict[str, str] = {
    "AdministratorAccess": "allows everything",
    "PowerUserAccess": "allows everything but IAM",
    "AmazonSSMManagedInstanceCore": "allows ssm:GetParameter(s) on every parameter of the account",
    "AmazonS3FullAccess": "allows every S3 action on every bucket",
    "AmazonDynamoDBFullAccess": "allows every DynamoDB action on every table",
    "AmazonEC2RoleforSSM": "allows ssm:GetParameter(s) and s3:* on every resource",
}
"""AWS managed policies whose grants defeat the stack's scoped statements, and why."""
IAM_POLICY_TYPES = frozenset(
    {
        "aws:iam/policy:Policy",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
    }
)

# Resource types that accept tags (checked even when ``tags`` is missing). A test keeps
# this in sync with pulumi_aws for every type the program creates.
TAGGABLE_TYPES = frozenset(
    {
        "aws:acm/certificate:Certificate",
        "aws:appautoscaling/target:Target",
        T_ASG,
        "aws:backup/plan:Plan",
        "aws:backup/vault:Vault",
        "aws:cloudtrail/trail:Trail",
        "aws:guardduty/detector:Detector",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        T_LOG_GROUP,
        T_TABLE,
        "aws:ec2/eip:Eip",
        "aws:ec2/flowLog:FlowLog",
        T_INSTANCE,
        "aws:ec2/internetGateway:InternetGateway",
        T_LAUNCH_TEMPLATE,
        T_NAT,
        "aws:ec2/routeTable:RouteTable",
        T_SG,
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        T_SG_INGRESS,
        T_SUBNET,
        "aws:ec2/vpc:Vpc",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:ecr/repository:Repository",
        "aws:ecs/cluster:Cluster",
        T_SERVICE,
        T_TASK,
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        T_KEY,
        T_LB,
        T_LISTENER,
        "aws:lb/targetGroup:TargetGroup",
        T_BUCKET,
        "aws:s3/bucketObjectv2:BucketObjectv2",
        "aws:sns/topic:Topic",
        T_WEB_ACL,
        "aws:secretsmanager/secret:Secret",
        "aws:ssm/parameter:Parameter",
    }
)


@dataclass(frozen=True)
class Res:
    """A resource as stack rules see it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    deps: Mapping[str, Sequence[str]] = field(default_factory=dict)


ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[Res], Mapping[str, Any]], list[tuple[str | None, str]]]


@dataclass(frozen=True)
class Rule:
    """One mandatory policy: exactly one of ``resource_check`` / ``stack_check`` is set."""

    name: str
    description: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """Config defaults from the schema (the strict setting)."""
        return {k: v["default"] for k, v in self.config_schema.items() if "default" in v}


# --- helpers ---------------------------------------------------------------------------


def _doc(value: Any) -> Any:
    """Policy documents arrive as JSON strings (or already parsed)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _truthy(value: Any) -> bool:
    """Booleans also arrive as strings in some schemas (launch templates)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _explicitly_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


# --- resource rules --------------------------------------------------------------------


def s3_public_access_block(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_PAB:
        return []
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    off = [f for f in flags if p.get(f) is not True]
    return [f"public access block must set {', '.join(off)} to true"] if off else []


def s3_encryption(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_SSE:
        return []
    rules = _as_list(p.get("rules"))
    algos = [(r.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for r in rules]
    if not algos or any(a not in ("aws:kms", "aws:kms:dsse", "AES256") for a in algos):
        return ["bucket default encryption must be SSE-KMS (or SSE-S3 where AWS requires it)"]
    for r in rules:
        by_default = r.get("applyServerSideEncryptionByDefault") or {}
        if by_default.get("sseAlgorithm", "").startswith("aws:kms") and not by_default.get("kmsMasterKeyId"):
            return ["SSE-KMS must name the stack's customer-managed key"]
    return []


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    cond = (statement.get("Condition") or {}).get("Bool") or {}
    return statement.get("Effect") == "Deny" and str(cond.get("aws:SecureTransport", "")).lower() == "false"


def s3_tls_only(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_BUCKET_POLICY:
        return []
    doc = _doc(p.get("policy")) or {}
    if not any(_denies_insecure_transport(s) for s in _as_list(doc.get("Statement"))):
        return ["bucket policy must deny requests with aws:SecureTransport=false"]
    return []


def dynamodb_encryption(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_TABLE:
        return []
    sse = p.get("serverSideEncryption") or {}
    if sse.get("enabled") is not True or not sse.get("kmsKeyArn"):
        return ["table must be encrypted with the stack's customer-managed KMS key"]
    return []


def dynamodb_pitr(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_TABLE or not c.get("required", True):
        return []
    if (p.get("pointInTimeRecovery") or {}).get("enabled") is not True:
        return ["point-in-time recovery is required for this stack"]
    return []


def deletion_protection(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if not c.get("required", True):
        return []
    if t == T_TABLE and p.get("deletionProtectionEnabled") is not True:
        return ["table deletion protection is required for this stack"]
    if t == T_LB and p.get("enableDeletionProtection") is not True:
        return ["load balancer deletion protection is required for this stack"]
    return []


def kms_rotation(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t == T_KEY and p.get("enableKeyRotation") is not True:
        return ["KMS key rotation must be enabled"]
    return []


def alb_https(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    """HTTPS listeners need a certificate and a TLS 1.2+ policy; plain HTTP only redirects,
    unless the stack allows plain HTTP (no certificate configured)."""
    if t != T_LISTENER:
        return []
    protocol = p.get("protocol")
    if protocol == "HTTPS":
        out = []
        if not p.get("certificateArn"):
            out.append("HTTPS listener needs an ACM certificate")
        if not str(p.get("sslPolicy", "")).startswith(("ELBSecurityPolicy-TLS13", "ELBSecurityPolicy-TLS-1-2", "ELBSecurityPolicy-FS-1-2")):
            out.append("HTTPS listener must use a TLS 1.2+ security policy")
        return out
    if protocol == "HTTP":
        actions = _as_list(p.get("defaultActions"))
        redirects = actions and all(
            a.get("type") == "redirect" and (a.get("redirect") or {}).get("protocol") == "HTTPS" for a in actions
        )
        if not redirects and not c.get("allowPlainHttp", False):
            return ["HTTP listener must only redirect to HTTPS"]
    return []


def alb_access_logs(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_LB:
        return []
    logs = p.get("accessLogs") or {}
    if logs.get("enabled") is not True or not logs.get("bucket"):
        return ["load balancer access logs must be enabled"]
    return []


def alb_drop_invalid_headers(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t == T_LB and p.get("loadBalancerType", "application") == "application" and p.get("dropInvalidHeaderFields") is not True:
        return ["ALB must drop invalid header fields"]
    return []


def _ingress_rules(t: str, p: Mapping[str, Any]) -> list[tuple[int, int, list[str]]]:
    """(from, to, cidrs) of every ingress rule the resource declares."""
    if t == T_SG:
        return [
            (int(r.get("fromPort", 0)), int(r.get("toPort", 0)), _as_list(r.get("cidrBlocks")) + _as_list(r.get("ipv6CidrBlocks")))
            for r in _as_list(p.get("ingress"))
        ]
    if t == T_SG_RULE and p.get("type") == "ingress":
        return [(int(p.get("fromPort", 0)), int(p.get("toPort", 0)), _as_list(p.get("cidrBlocks")) + _as_list(p.get("ipv6CidrBlocks")))]
    if t == T_SG_INGRESS:
        return [(int(p.get("fromPort", 0) or 0), int(p.get("toPort", 0) or 0), _as_list(p.get("cidrIpv4")) + _as_list(p.get("cidrIpv6")))]
    return []


def no_open_ingress(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    out = []
    for lo, hi, cidrs in _ingress_rules(t, p):
        if OPEN_CIDRS & set(cidrs) and not (lo == hi and lo in WEB_PORTS):
            out.append(f"ingress {lo}-{hi} from the internet; only 80/443 (ALB) may be open")
    return out


def ec2_imdsv2(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t in (T_INSTANCE, T_LAUNCH_TEMPLATE) and (p.get("metadataOptions") or {}).get("httpTokens") != "required":
        return ["IMDSv2 must be required (metadataOptions.httpTokens=required)"]
    return []


def ec2_encrypted_volumes(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t == T_INSTANCE:
        volumes = [p.get("rootBlockDevice") or {}] + _as_list(p.get("ebsBlockDevices"))
        if not all(_truthy(v.get("encrypted")) for v in volumes):
            return ["instance EBS volumes must be encrypted"]
    if t == T_LAUNCH_TEMPLATE:
        mappings = _as_list(p.get("blockDeviceMappings"))
        if not mappings or not all(_truthy((m.get("ebs") or {}).get("encrypted")) for m in mappings):
            return ["launch template EBS volumes must be encrypted"]
    return []


def ec2_no_public_ip(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t == T_INSTANCE and not _explicitly_false(p.get("associatePublicIpAddress")):
        return ["instance must not get a public IP (associatePublicIpAddress=false)"]
    if t == T_LAUNCH_TEMPLATE:
        nics = _as_list(p.get("networkInterfaces"))
        if not nics or not all(_explicitly_false(n.get("associatePublicIpAddress")) for n in nics):
            return ["launch template must set associatePublicIpAddress=false"]
    return []


def ecs_no_public_ip(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t == T_SERVICE and (p.get("networkConfiguration") or {}).get("assignPublicIp") is not False:
        return ["ECS service tasks must not get a public IP"]
    return []


def ecs_task_hardening(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_TASK:
        return []
    out = []
    for cd in _as_list(_doc(p.get("containerDefinitions"))):
        user = str(cd.get("user") or "")
        if not user or user.split(":")[0] in ("0", "root"):
            out.append(f"container {cd.get('name')} must run as a non-root user")
        if cd.get("readonlyRootFilesystem") is not True:
            out.append(f"container {cd.get('name')} must have a read-only root filesystem")
    return out


def log_group_retention_kms(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t != T_LOG_GROUP:
        return []
    out = []
    if not p.get("retentionInDays"):
        out.append("log group needs a retention period")
    if not p.get("kmsKeyId"):
        out.append("log group must be encrypted with KMS")
    return out


def iam_no_star(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    if t not in IAM_POLICY_TYPES:
        return []
    doc = _doc(p.get("policy")) or {}
    for s in _as_list(doc.get("Statement")):
        if s.get("Effect") == "Allow" and "*" in _as_list(s.get("Action")) and "*" in _as_list(s.get("Resource")):
            return ["IAM statement allows '*' actions on '*' resources"]
    return []


def iam_no_broad_managed_policy(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    """No role gets an AWS managed policy from :data:`BROAD_MANAGED_POLICIES`."""
    if t != T_ROLE_POLICY_ATTACHMENT:
        return []
    arn = str(p.get("policyArn") or "")
    name = arn.rsplit("/", 1)[-1]
    if arn.startswith("arn:aws:iam::aws:policy/") and name in BROAD_MANAGED_POLICIES:
        return [f"AWS managed policy {name} {BROAD_MANAGED_POLICIES[name]}: grant the actions the role needs on its own resources"]
    return []


def service_auth(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    """A token table never travels in plain task environment; where auth is required every
    container but a collector sidecar (``AOT_CONFIG_CONTENT``) takes it from Secrets Manager
    (``secrets``) and none sets ``FLEETPROF_INSECURE``."""
    if t != T_TASK:
        return []
    out = []
    for cd in _as_list(_doc(p.get("containerDefinitions"))):
        env = {e.get("name"): e.get("value") for e in _as_list(cd.get("environment"))}
        secrets = {x.get("name"): str(x.get("valueFrom") or "") for x in _as_list(cd.get("secrets"))}
        name = cd.get("name")
        if AUTH_TOKENS_ENV in env:
            out.append(f"container {name} carries the token table in plain environment; inject it through secrets")
        if not c.get("required", True) or COLLECTOR_CONFIG_ENV in env:
            continue  # a collector sidecar serves nothing: it is a client of the server
        if _truthy(env.get("FLEETPROF_INSECURE")) or env.get("FLEETPROF_INSECURE") == "1":
            out.append(f"container {name} serves without auth (FLEETPROF_INSECURE), which this stack's class forbids")
        if not secrets.get(AUTH_TOKENS_ENV, "").startswith("arn:aws:secretsmanager:"):
            out.append(f"container {name} has no token table from Secrets Manager (secrets {AUTH_TOKENS_ENV})")
    return out


IMAGE_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
IMAGE_VERSION_TAG = re.compile(r":v?\d+\.\d+(\.\d+)?([-.][0-9A-Za-z.-]+)?$")


def ecs_image_pinned(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    """Every container image (the service's and every sidecar's) is pinned: by digest, or by a
    release version tag (``v0.48.0``, ``1.2``); never ``latest`` or no tag (ECS would pull
    whatever the registry holds at each task start)."""
    if t != T_TASK:
        return []
    out = []
    for cd in _as_list(_doc(p.get("containerDefinitions"))):
        image = str(cd.get("image") or "")
        last = image.rsplit("/", 1)[-1]
        if IMAGE_DIGEST.search(image):
            continue
        if ":" not in last or last.endswith(":latest") or not IMAGE_VERSION_TAG.search(last):
            out.append(f"container {cd.get('name')} runs {image or 'no image'}: pin it by digest or a release version tag")
    return out


def ecs_container_logging(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    """Every container (sidecars included) ships its output with ``awslogs`` to a named group
    in a named region."""
    if t != T_TASK:
        return []
    out = []
    for cd in _as_list(_doc(p.get("containerDefinitions"))):
        cfg = cd.get("logConfiguration") or {}
        opts = cfg.get("options") or {}
        if cfg.get("logDriver") != "awslogs" or not opts.get("awslogs-group") or not opts.get("awslogs-region"):
            out.append(f"container {cd.get('name')} must log with awslogs to a log group (awslogs-group, awslogs-region)")
    return out


COLLECTOR_CONFIG_ENV = "AOT_CONFIG_CONTENT"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _collector_ports(cd: Mapping[str, Any]) -> tuple[list[int], list[str]] | None:
    """(ports, non-loopback endpoints) of a collector container's receivers and extensions;
    None when ``cd`` carries no collector configuration."""
    import yaml

    env = {e.get("name"): e.get("value") for e in _as_list(cd.get("environment"))}
    if COLLECTOR_CONFIG_ENV not in env:
        return None
    try:
        config = yaml.safe_load(str(env[COLLECTOR_CONFIG_ENV])) or {}
    except yaml.YAMLError:
        return [], ["(configuration is not YAML)"]
    ports: list[int] = []
    exposed: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "endpoint" and isinstance(value, str):
                    host, _, port = value.rpartition(":")
                    if port.isdigit():
                        ports.append(int(port))
                    if host not in LOOPBACK_HOSTS:
                        exposed.append(value)
                else:
                    walk(value)

    for section in ("receivers", "extensions"):
        walk(config.get(section) if isinstance(config, dict) else None)
    return ports, exposed


def otel_collector_private(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """A collector sidecar is reachable from its own task only: its receivers and extensions
    bind the task's loopback, it maps none of their ports, and no ingress rule of the security
    groups of a service running its task admits those ports."""
    out: list[tuple[str | None, str]] = []
    by_urn = {r.urn: r for r in resources}
    for task in resources:
        if task.type != T_TASK:
            continue
        ports: set[int] = set()
        for cd in _as_list(_doc(task.props.get("containerDefinitions"))):
            found = _collector_ports(cd)
            if found is None:
                continue
            ports |= set(found[0])
            for endpoint in found[1]:
                out.append((task.urn, f"collector {cd.get('name')} listens on {endpoint}: bind the task's loopback (127.0.0.1)"))
            mapped = sorted({int(m.get("containerPort", 0)) for m in _as_list(cd.get("portMappings"))} & set(found[0]))
            if mapped:
                out.append((task.urn, f"collector {cd.get('name')} maps its ports {mapped}: nothing outside the task may send to it"))
        if not ports:
            continue
        groups = {
            urn
            for svc in resources
            if svc.type == T_SERVICE and task.urn in svc.deps.get("taskDefinition", ())
            for urn in svc.deps.get("networkConfiguration", ())
            if urn in by_urn and by_urn[urn].type == T_SG
        }
        for r in resources:
            own = r.urn in groups
            attached = r.type in (T_SG_INGRESS, T_SG_RULE) and set(r.deps.get("securityGroupId", ())) & groups
            if not (own or attached):
                continue
            for lo, hi, _cidrs in _ingress_rules(r.type, r.props) + _group_ingress(r):
                opened = sorted(p for p in ports if lo <= p <= hi or lo == hi == 0 and r.props.get("ipProtocol") == "-1")
                if opened:
                    out.append((r.urn, f"{r.name} admits the collector ports {opened} of task {task.name}"))
    return out


def _group_ingress(r: Res) -> list[tuple[int, int, list[str]]]:
    """Inline ingress of a security group that names other groups or prefix lists (not CIDRs)."""
    if r.type != T_SG:
        return []
    return [
        (int(i.get("fromPort", 0)), int(i.get("toPort", 0)), [])
        for i in _as_list(r.props.get("ingress"))
        if not (_as_list(i.get("cidrBlocks")) or _as_list(i.get("ipv6CidrBlocks")))
    ]


def _tag_map(t: str, p: Mapping[str, Any]) -> Mapping[str, Any]:
    if t == T_ASG:
        return {x.get("key"): x.get("value") for x in _as_list(p.get("tags"))}
    return p.get("tags") or {}


def required_tags(t: str, p: Mapping[str, Any], c: Mapping[str, Any]) -> list[str]:
    """AWS resources carry the required tags (other providers' ``tags``, such as an image
    build's image tags, are not AWS tags)."""
    if not t.startswith("aws:") or (t not in TAGGABLE_TYPES and "tags" not in p):
        return []
    present = _tag_map(t, p)
    missing = [k for k in REQUIRED_TAGS if not present.get(k)]
    return [f"missing required tags: {', '.join(missing)}"] if missing else []


# --- stack rules -----------------------------------------------------------------------


def _referrers(resources: Sequence[Res], type_: str, prop: str) -> dict[str, list[Res]]:
    """URN of a referenced resource -> resources of ``type_`` whose ``prop`` depends on it."""
    out: dict[str, list[Res]] = {}
    for r in resources:
        if r.type == type_:
            for urn in r.deps.get(prop, ()):
                out.setdefault(urn, []).append(r)
    return out


def s3_bucket_hardened(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Every bucket has a public access block, default encryption, versioning and a TLS-only policy."""
    needs = {
        T_PAB: "public access block",
        T_SSE: "default encryption",
        T_VERSIONING: "versioning",
        T_BUCKET_POLICY: "TLS-only bucket policy",
    }
    attached = {t: _referrers(resources, t, "bucket") for t in needs}
    out = []
    for b in resources:
        if b.type != T_BUCKET:
            continue
        missing = [label for t, label in needs.items() if b.urn not in attached[t]]
        if T_VERSIONING in attached and b.urn in attached[T_VERSIONING]:
            status = (attached[T_VERSIONING][b.urn][0].props.get("versioningConfiguration") or {}).get("status")
            if status != "Enabled":
                missing.append("versioning (Enabled)")
        if missing:
            out.append((b.urn, f"bucket {b.name} lacks: {', '.join(missing)}"))
    return out


def waf_attached(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Where WAF is required every ALB has a web ACL association; every web ACL is attached."""
    associated = _referrers(resources, T_WEB_ACL_ASSOC, "resourceArn")
    used_acls = _referrers(resources, T_WEB_ACL_ASSOC, "webAclArn")
    out: list[tuple[str | None, str]] = []
    if c.get("required", True):
        for lb in resources:
            if lb.type == T_LB and lb.props.get("loadBalancerType", "application") == "application" and lb.urn not in associated:
                out.append((lb.urn, f"ALB {lb.name} has no WAF web ACL attached"))
    for acl in resources:
        if acl.type == T_WEB_ACL and acl.urn not in used_acls:
            out.append((acl.urn, f"web ACL {acl.name} is not attached to anything"))
    return out


WAF_LOG_PREFIX = "aws-waf-logs-"
REDACTED_HEADERS = ("authorization",)
"""Request headers a WAF log must not carry (the service's bearer tokens)."""


def _waf_log_problems(config: Res, by_urn: Mapping[str, Res]) -> list[str]:
    """What one logging configuration lacks: a KMS-encrypted, retained ``aws-waf-logs-`` log
    group as its destination, and redaction of the token-bearing headers."""
    out = []
    groups = [by_urn[u] for u in config.deps.get("logDestinationConfigs", ()) if u in by_urn and by_urn[u].type == T_LOG_GROUP]
    if not groups:
        out.append("a CloudWatch log group destination")
    for g in groups:
        if not str(g.props.get("name") or "").startswith(WAF_LOG_PREFIX):
            out.append(f"a log group named {WAF_LOG_PREFIX}… (WAF refuses {g.props.get('name')})")
        if not g.props.get("kmsKeyId") or not g.props.get("retentionInDays"):
            out.append(f"KMS encryption and retention on {g.name}")
    redacted = {str((f.get("singleHeader") or {}).get("name", "")).lower() for f in _as_list(config.props.get("redactedFields"))}
    missing = [h for h in REDACTED_HEADERS if h not in redacted]
    if missing:
        out.append(f"redaction of the {', '.join(missing)} header")
    return out


def waf_logging(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Every web ACL logs to a KMS-encrypted, retained ``aws-waf-logs-`` log group, with the
    ``Authorization`` header redacted."""
    by_urn = {r.urn: r for r in resources}
    configs = _referrers(resources, T_WAF_LOGGING, "resourceArn")
    out: list[tuple[str | None, str]] = []
    for acl in resources:
        if acl.type != T_WEB_ACL:
            continue
        found = configs.get(acl.urn, [])
        if not found:
            out.append((acl.urn, f"web ACL {acl.name} has no logging configuration"))
        for config in found:
            problems = _waf_log_problems(config, by_urn)
            if problems:
                out.append((config.urn, f"WAF logging of {acl.name} lacks: {'; '.join(problems)}"))
    return out


def nat_per_az(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Where HA is configured there is a NAT gateway in every AZ that has subnets."""
    if not c.get("required", True):
        return []
    by_urn = {r.urn: r for r in resources}
    subnet_azs = {r.props.get("availabilityZone") for r in resources if r.type == T_SUBNET}
    nat_azs = set()
    for nat in resources:
        if nat.type == T_NAT:
            for urn in nat.deps.get("subnetId", ()):
                if urn in by_urn:
                    nat_azs.add(by_urn[urn].props.get("availabilityZone"))
    missing = sorted(a for a in subnet_azs - nat_azs if a)
    return [(None, f"no NAT gateway in {', '.join(missing)} (one per AZ required)")] if missing else []


T_TRAIL = "aws:cloudtrail/trail:Trail"
T_BACKUP_PLAN = "aws:backup/plan:Plan"
T_BACKUP_SELECTION = "aws:backup/selection:Selection"
T_REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
DATA_CLASS_TAG = ("DataClass", "customer-data")
"""Tag of the buckets holding tenants' data (backed up and replicated where required)."""


def _data_stores(resources: Sequence[Res]) -> list[Res]:
    """The index tables and the buckets tagged :data:`DATA_CLASS_TAG`."""
    key, value = DATA_CLASS_TAG
    return [
        r
        for r in resources
        if r.type == T_TABLE or (r.type == T_BUCKET and (r.props.get("tags") or {}).get(key) == value)
    ]


def _trail_problems(trail: Res, data_buckets: Sequence[Res], denies_delete: set[str]) -> list[str]:
    """What one trail lacks: validation, KMS, multi-region, management and data events, a
    bucket whose policy denies log deletion."""
    p = trail.props
    out = []
    if not _truthy(p.get("enableLogFileValidation")):
        out.append("log file validation")
    if not p.get("kmsKeyId"):
        out.append("KMS encryption")
    if not _truthy(p.get("isMultiRegionTrail")):
        out.append("multi-region")
    selectors = _as_list(p.get("advancedEventSelectors"))
    categories = [
        c for s in selectors for f in _as_list(s.get("fieldSelectors")) if f.get("field") == "eventCategory"
        for c in _as_list(f.get("equals"))
    ]
    if selectors and "Management" not in categories:
        out.append("management events")
    covered = set(trail.deps.get("advancedEventSelectors", ()))
    missing = [b.name for b in data_buckets if "Data" not in categories or b.urn not in covered]
    if missing:
        out.append(f"S3 data events of {', '.join(missing)}")
    if not denies_delete & set(trail.deps.get("s3BucketName", ())):
        out.append("a log bucket whose policy denies object deletion")
    return out


def _denies_deletion(policy: Res) -> bool:
    doc = _doc(policy.props.get("policy")) or {}
    return any(
        s.get("Effect") == "Deny" and "s3:DeleteObject" in _as_list(s.get("Action"))
        for s in _as_list(doc.get("Statement"))
    )


def cloudtrail_audit(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Where required a trail exists; every trail validates log files, is KMS-encrypted and
    multi-region, records management events and the S3 data events of every data bucket, and
    delivers into a bucket whose policy denies deleting log files."""
    trails = [r for r in resources if r.type == T_TRAIL]
    if c.get("required", True) and not trails:
        return [(None, "no CloudTrail trail (audit trail required)")]
    data_buckets = [r for r in _data_stores(resources) if r.type == T_BUCKET]
    denies = {
        urn
        for r in resources
        if r.type == T_BUCKET_POLICY and _denies_deletion(r)
        for urn in r.deps.get("bucket", ())
    }
    out: list[tuple[str | None, str]] = []
    for t in trails:
        problems = _trail_problems(t, data_buckets, denies)
        if problems:
            out.append((t.urn, f"trail {t.name} lacks: {'; '.join(problems)}"))
    return out


def _backup_plans(resources: Sequence[Res]) -> dict[str, list[Res]]:
    """URN of a selected resource -> the backup plans that select it."""
    plans = {r.urn: r for r in resources if r.type == T_BACKUP_PLAN}
    out: dict[str, list[Res]] = {}
    for sel in resources:
        if sel.type != T_BACKUP_SELECTION:
            continue
        for plan_urn in sel.deps.get("planId", ()):
            if plan_urn in plans:
                for urn in sel.deps.get("resources", ()):
                    out.setdefault(urn, []).append(plans[plan_urn])
    return out


def _retains(plan: Res) -> bool:
    return any((r.get("lifecycle") or {}).get("deleteAfter") for r in _as_list(plan.props.get("rules")))


def backup_configured(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Where required every index table and data bucket is selected by an AWS Backup plan
    whose rules expire recovery points."""
    if not c.get("required", True):
        return []
    plans = _backup_plans(resources)
    return [
        (r.urn, f"{r.name} is in no AWS Backup plan with a retention")
        for r in _data_stores(resources)
        if not any(_retains(p) for p in plans.get(r.urn, ()))
    ]


def _replicates(rule: Mapping[str, Any]) -> bool:
    """An enabled rule that replicates SSE-KMS objects and delete markers under a replica key."""
    sse = ((rule.get("sourceSelectionCriteria") or {}).get("sseKmsEncryptedObjects") or {}).get("status")
    markers = (rule.get("deleteMarkerReplication") or {}).get("status")
    key = ((rule.get("destination") or {}).get("encryptionConfiguration") or {}).get("replicaKmsKeyId")
    return rule.get("status") == "Enabled" and sse == "Enabled" and markers == "Enabled" and bool(key)


def dr_replication(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Where DR is required every data bucket replicates (every object, SSE-KMS included, and
    delete markers, under a replica key) and every table's backups are copied elsewhere."""
    if not c.get("required", True):
        return []
    replicated = {
        urn
        for r in resources
        if r.type == T_REPLICATION and any(_replicates(x) for x in _as_list(r.props.get("rules")))
        for urn in r.deps.get("bucket", ())
    }
    plans = _backup_plans(resources)
    out: list[tuple[str | None, str]] = []
    for r in _data_stores(resources):
        if r.type == T_BUCKET and r.urn not in replicated:
            out.append((r.urn, f"bucket {r.name} is not replicated to the DR region"))
        copied = any(x.get("copyActions") for p in plans.get(r.urn, ()) for x in _as_list(p.props.get("rules")))
        if r.type == T_TABLE and not copied:
            out.append((r.urn, f"table {r.name} has no backup copied to the DR region"))
    return out


ACCOUNT_MONITORS = {
    "config": ("AWS Config recorder with a conformance pack", ("aws:cfg/recorder:Recorder", "aws:cfg/conformancePack:ConformancePack")),
    "guardDuty": ("GuardDuty detector", ("aws:guardduty/detector:Detector",)),
    "securityHub": (
        "Security Hub with a standard",
        ("aws:securityhub/account:Account", "aws:securityhub/standardsSubscription:StandardsSubscription"),
    ),
}
"""Config key of ``account-monitoring`` -> (what it requires, the resource types that make it)."""


def account_monitoring(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """The account-level monitors each stack is configured to own: AWS Config recording with the
    conformance pack, a GuardDuty detector, Security Hub subscribed to a standard."""
    present = {r.type for r in resources}
    return [
        (None, f"no {label} (required for this stack)")
        for key, (label, types) in ACCOUNT_MONITORS.items()
        if c.get(key, True) and not set(types) <= present
    ]


AWS_MANAGED_KEY_ALIAS = re.compile(r"(^|:)alias/aws/")
"""An alias of an AWS managed key (``alias/aws/sns``): its policy cannot be changed or audited."""


def sns_topic_cmk(resources: Sequence[Res], c: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """Every SNS topic is encrypted at rest with a customer managed key: ``kmsMasterKeyId`` is
    computed from a KMS key of the stack (unknown during a first preview, so the dependency
    decides), or names a key that is not an AWS managed alias."""
    keys = {r.urn for r in resources if r.type == T_KEY}
    out: list[tuple[str | None, str]] = []
    for t in resources:
        if t.type != T_TOPIC:
            continue
        key = t.props.get("kmsMasterKeyId")
        from_stack_key = bool(keys & set(t.deps.get("kmsMasterKeyId", ())))
        if isinstance(key, str) and AWS_MANAGED_KEY_ALIAS.search(key):
            out.append((t.urn, f"topic {t.name} is encrypted with the AWS managed key {key}; use the stack's customer managed key"))
        elif not key and not from_stack_key:
            out.append((t.urn, f"topic {t.name} is not encrypted: set kmsMasterKeyId to the stack's customer managed key"))
    return out


BOOL_REQUIRED = {"required": {"type": "boolean", "default": True, "description": "whether this stack requires it"}}

RULES: tuple[Rule, ...] = (
    Rule("s3-public-access-block", "S3 public access blocks set all four flags", s3_public_access_block),
    Rule("s3-encryption", "S3 default encryption is SSE-KMS with our key (SSE-S3 only where AWS requires)", s3_encryption),
    Rule("s3-tls-only", "S3 bucket policies deny non-TLS requests", s3_tls_only),
    Rule("s3-bucket-hardened", "Every S3 bucket has PAB, encryption, versioning and a TLS-only policy", stack_check=s3_bucket_hardened),
    Rule("dynamodb-encryption", "DynamoDB tables use the customer-managed KMS key", dynamodb_encryption),
    Rule("dynamodb-pitr", "DynamoDB point-in-time recovery where the stack requires it", dynamodb_pitr, config_schema=BOOL_REQUIRED),
    Rule("deletion-protection", "Deletion protection on the table and ALB where the stack requires it", deletion_protection, config_schema=BOOL_REQUIRED),
    Rule("kms-rotation", "KMS keys rotate", kms_rotation),
    Rule(
        "alb-https",
        "ALB serves HTTPS with TLS 1.2+ and HTTP only redirects (unless plain HTTP is allowed)",
        alb_https,
        config_schema={"allowPlainHttp": {"type": "boolean", "default": False, "description": "stack has no certificate"}},
    ),
    Rule("alb-access-logs", "ALB access logs are enabled", alb_access_logs),
    Rule("alb-drop-invalid-headers", "ALB drops invalid HTTP header fields", alb_drop_invalid_headers),
    Rule("no-open-ingress", "No security-group ingress from 0.0.0.0/0 or ::/0 except 80/443", no_open_ingress),
    Rule("ec2-imdsv2", "EC2 instances and launch templates require IMDSv2", ec2_imdsv2),
    Rule("ec2-encrypted-volumes", "EC2 EBS volumes are encrypted", ec2_encrypted_volumes),
    Rule("ec2-no-public-ip", "EC2 instances get no public IP", ec2_no_public_ip),
    Rule("ecs-no-public-ip", "ECS services assign no public IP", ecs_no_public_ip),
    Rule("ecs-task-hardening", "ECS containers run non-root with a read-only root filesystem", ecs_task_hardening),
    Rule("log-group-retention-kms", "CloudWatch log groups have retention and KMS encryption", log_group_retention_kms),
    Rule("sns-topic-cmk", "SNS topics are encrypted with a customer managed KMS key", stack_check=sns_topic_cmk),
    Rule("iam-no-star", "No IAM statement allows '*' actions on '*' resources", iam_no_star),
    Rule(
        "iam-no-broad-managed-policy",
        "No role gets an AWS managed policy that defeats the scoped statements (e.g. AmazonSSMManagedInstanceCore)",
        iam_no_broad_managed_policy,
    ),
    Rule(
        "service-auth",
        "Service tasks take their token table from Secrets Manager and never serve without auth where the class requires it",
        service_auth,
        config_schema=BOOL_REQUIRED,
    ),
    Rule("ecs-image-pinned", "ECS containers run images pinned by digest or release version tag, never latest", ecs_image_pinned),
    Rule("ecs-container-logging", "Every ECS container, sidecars included, logs with awslogs to a named group", ecs_container_logging),
    Rule(
        "otel-collector-private",
        "A collector sidecar binds the task's loopback and no security group admits its ports",
        stack_check=otel_collector_private,
    ),
    Rule("required-tags", "Taggable resources carry Project/Environment/Owner/CostCenter", required_tags),
    Rule("waf-attached", "A WAF web ACL is attached to the ALB where the stack requires it", stack_check=waf_attached, config_schema=BOOL_REQUIRED),
    Rule(
        "waf-logging",
        "Every web ACL logs to a KMS-encrypted, retained aws-waf-logs- log group with Authorization redacted",
        stack_check=waf_logging,
    ),
    Rule("nat-per-az", "A NAT gateway per AZ where HA is configured", stack_check=nat_per_az, config_schema=BOOL_REQUIRED),
    Rule(
        "cloudtrail-audit",
        "A validated, KMS-encrypted, multi-region trail with management and data-bucket events into a delete-protected bucket",
        stack_check=cloudtrail_audit,
        config_schema=BOOL_REQUIRED,
    ),
    Rule(
        "backup-configured",
        "Index tables and data buckets are in an AWS Backup plan with retention where required",
        stack_check=backup_configured,
        config_schema=BOOL_REQUIRED,
    ),
    Rule(
        "account-monitoring",
        "AWS Config with the conformance pack, GuardDuty and Security Hub where the stack owns them",
        stack_check=account_monitoring,
        config_schema={
            key: {"type": "boolean", "default": True, "description": f"whether this stack owns the {label}"}
            for key, (label, _) in ACCOUNT_MONITORS.items()
        },
    ),
    Rule(
        "dr-replication",
        "Data buckets replicate to the DR region and index backups are copied there where required",
        stack_check=dr_replication,
        config_schema=BOOL_REQUIRED,
    ),
)


def rule_by_name(name: str) -> Rule:
    for r in RULES:
        if r.name == name:
            return r
    raise KeyError(name)


def stack_policy_config(stack: str) -> dict[str, dict[str, Any]]:
    """Per-policy config of ``stack``: its environment class's requirements
    (:func:`policies.classes.class_config`), which the pack and the offline evaluator apply
    over any config they are given. ``python -m policies.offline --emit-config`` prints it for
    ``pulumi preview --policy-pack-config``.
    """
    from policies.classes import class_config

    return class_config(stack)
