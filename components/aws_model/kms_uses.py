"""Who uses a customer managed key at run time, found in the rendered graph.

Contract: :data:`FINDERS` each yield the :class:`KeyUse` records of one kind of resource
encrypted with one key (see :mod:`.kms` for the kinds and the principals); a use carries
the request context AWS sends with it and, for IAM principals, their identity statements.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from components.aws_model.graph import Graph, as_list
from components.aws_model.policy_eval import Principal, Request, decide, statements
from components.mockrun import MockResource

ASG_ROLE = "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
LOGS_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
)
PUBLISH_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
ASG_EBS_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
    "kms:CreateGrant",
)
DEPLOY_ACTIONS = (
    "kms:CreateGrant",
    "kms:DescribeKey",
    "kms:Decrypt",
    "kms:GenerateDataKeyWithoutPlaintext",
)
ADMIN = ({"Effect": "Allow", "Action": "*", "Resource": "*"},)


@dataclass(frozen=True)
class KeyUse:
    """One principal using one key for one resource; ``identity`` holds the principal's
    IAM statements (None: it has none that could apply, e.g. a service principal)."""

    key: str
    resource: str
    principal: Principal
    actions: tuple[str, ...]
    context: tuple[tuple[str, str], ...] = ()
    identity: tuple[Mapping, ...] | None = None

    def __str__(self) -> str:
        return f"{self.resource}: {self.principal.id} ({', '.join(self.actions)})"


class KeyContext:
    """One key: what refers to it, its policy, its account and region."""

    def __init__(self, graph: Graph, key: MockResource) -> None:
        self.graph, self.key = graph, key
        self.arn: str = key.outputs["arn"]
        self.account, self.region = self.arn.split(":")[4], self.arn.split(":")[3]
        aliases = [
            a
            for a in graph.of_type("aws:kms/alias:Alias")
            if a.inputs.get("targetKeyId") in (key.id, self.arn)
        ]
        self.refs = {self.arn, key.id, key.outputs.get("keyId")} | {
            x for a in aliases for x in (a.inputs.get("name"), a.outputs.get("arn"))
        }
        policy = key.inputs.get("policy")
        self.statements = statements(policy) if policy else [_root_statement(self.account)]

    def used_by(self, value: object) -> bool:
        return isinstance(value, str) and value in self.refs

    def use(
        self,
        resource: str,
        principal: Principal,
        actions: tuple[str, ...],
        identity: tuple[Mapping, ...] | None = None,
        **context: str,
    ) -> KeyUse:
        ctx = tuple(sorted(context.items()))
        return KeyUse(self.key.name, resource, principal, tuple(actions), ctx, identity)

    def deployer(self, resource: str, service: str) -> KeyUse:
        who = Principal("AWS", f"arn:aws:iam::{self.account}:role/deploying-identity")
        return self.use(resource, who, DEPLOY_ACTIONS, ADMIN, **self.caller(who, service))

    def caller(self, who: Principal, service: str) -> dict[str, str]:
        """Context keys of a call by ``who`` through ``service`` in this key's account."""
        return {
            "aws:PrincipalArn": who.id,
            "kms:CallerAccount": self.account,
            "kms:ViaService": f"{service}.{self.region}.amazonaws.com",
        }

    def role_use(
        self,
        resource: str,
        role: MockResource,
        actions: tuple[str, ...],
        service: str,
        **context: str,
    ) -> KeyUse:
        who = Principal("AWS", role.outputs["arn"])
        identity = tuple(_identity_statements(self.graph, role))
        return self.use(resource, who, actions, identity, **self.caller(who, service), **context)


def _root_statement(account: str) -> dict:
    return {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def _identity_statements(graph: Graph, role: MockResource) -> Iterator[Mapping]:
    """Inline, attached (customer managed) and role-policy statements of ``role``."""
    for p in as_list(role.inputs.get("inlinePolicies")):
        yield from statements(p.get("policy"))
    for rp in graph.of_type("aws:iam/rolePolicy:RolePolicy"):
        if graph.ref(rp.inputs.get("role")) is role:
            yield from statements(rp.inputs.get("policy"))
    for att in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        managed = graph.ref(att.inputs.get("policyArn"))
        if graph.ref(att.inputs.get("role")) is role and managed is not None:
            yield from statements(managed.inputs.get("policy"))


def _roles_allowed(graph: Graph, action: str, resource: str) -> list[MockResource]:
    out = []
    for role in graph.of_type("aws:iam/role:Role"):
        req = Request(Principal("AWS", role.outputs["arn"]), action, resource)
        if decide(_identity_statements(graph, role), req, resource_policy=False) == "allow":
            out.append(role)
    return out


def _log_groups(k: KeyContext) -> Iterator[KeyUse]:
    logs = Principal("Service", f"logs.{k.region}.amazonaws.com")
    for lg in k.graph.of_type("aws:cloudwatch/logGroup:LogGroup"):
        if k.used_by(lg.inputs.get("kmsKeyId")):
            arn = f"arn:aws:logs:{k.region}:{k.account}:log-group:{lg.inputs.get('name') or lg.outputs['name']}"
            yield k.use(
                f"log group {lg.name}",
                logs,
                LOGS_ACTIONS,
                **{"kms:EncryptionContext:aws:logs:arn": arn},
            )


def _topics(k: KeyContext) -> Iterator[KeyUse]:
    for topic in k.graph.of_type("aws:sns/topic:Topic"):
        if not k.used_by(topic.inputs.get("kmsMasterKeyId")):
            continue
        arn, label = topic.outputs["arn"], f"SNS topic {topic.name}"
        context = {"kms:EncryptionContext:aws:sns:topicArn": arn}
        alarm_actions = ("alarmActions", "okActions", "insufficientDataActions")
        alarms = [
            a
            for a in k.graph.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
            if any(arn in as_list(a.inputs.get(key)) for key in alarm_actions)
        ]
        if alarms:
            who = Principal("Service", "cloudwatch.amazonaws.com")
            yield k.use(f"{label} ({len(alarms)} alarms)", who, PUBLISH_ACTIONS, **context)
        if any(
            t.inputs.get("arn") == arn
            for t in k.graph.of_type("aws:cloudwatch/eventTarget:EventTarget")
        ):
            yield k.use(
                f"{label} (EventBridge)",
                Principal("Service", "events.amazonaws.com"),
                PUBLISH_ACTIONS,
                **context,
            )
        for role in _roles_allowed(k.graph, "sns:Publish", arn):
            yield k.role_use(label, role, PUBLISH_ACTIONS, "sns", **context)


def _volumes(k: KeyContext) -> Iterator[KeyUse]:
    g = k.graph
    for inst in g.of_type("aws:ec2/instance:Instance"):
        devices = [
            inst.inputs.get("rootBlockDevice") or {},
            *as_list(inst.inputs.get("ebsBlockDevices")),
        ]
        if any(k.used_by(d.get("kmsKeyId")) for d in devices):
            yield k.deployer(f"EBS of instance {inst.name}", "ec2")
    for lt in g.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        if not any(
            k.used_by((m.get("ebs") or {}).get("kmsKeyId"))
            for m in as_list(lt.inputs.get("blockDeviceMappings"))
        ):
            continue
        for asg in g.of_type("aws:autoscaling/group:Group"):
            if (asg.inputs.get("launchTemplate") or {}).get("id") != lt.id:
                continue
            slr = asg.inputs.get("serviceLinkedRoleArn") or f"arn:aws:iam::{k.account}:{ASG_ROLE}"
            who = Principal("AWS", slr)
            label = f"EBS of launch template {lt.name} (group {asg.name})"
            yield k.use(label, who, ASG_EBS_ACTIONS, None, **k.caller(who, "ec2"))


def _buckets(k: KeyContext) -> Iterator[KeyUse]:
    g = k.graph
    for sse in g.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ):
        rules = [
            (r.get("applyServerSideEncryptionByDefault") or {})
            for r in as_list(sse.inputs.get("rules"))
        ]
        bucket = g.ref_of_type(sse.inputs.get("bucket"), "aws:s3/bucket:Bucket")
        if bucket is None or not any(k.used_by(r.get("kmsMasterKeyId")) for r in rules):
            continue
        arn, obj = bucket.outputs["arn"], f"{bucket.outputs['arn']}/any-object"
        context = {"kms:EncryptionContext:aws:s3:arn": arn}
        for action, kms_actions in (
            ("s3:PutObject", ("kms:GenerateDataKey", "kms:Decrypt")),
            ("s3:GetObject", ("kms:Decrypt",)),
        ):
            for role in _roles_allowed(g, action, obj):
                yield k.role_use(
                    f"S3 {action} in {bucket.name}", role, kms_actions, "s3", **context
                )


_PUT = re.compile(r"put-parameter\b.*--type[ =]SecureString")
_ARG = {name: re.compile(rf"--{name}[ =](\S+)") for name in ("name", "key-id", "region")}


def _user_data(r: MockResource) -> str:
    data = r.inputs.get("userData") or ""
    if r.type == "aws:ec2/launchTemplate:LaunchTemplate":
        return base64.b64decode(data).decode(errors="replace") if data else ""
    return data


def _parameters(k: KeyContext) -> Iterator[KeyUse]:
    """SecureString parameters that node user data writes with this key, and their users."""
    g = k.graph
    names = set()
    for r in g.of_type("aws:ec2/instance:Instance") + g.of_type(
        "aws:ec2/launchTemplate:LaunchTemplate"
    ):
        for line in _user_data(r).splitlines():
            args = {n: m.group(1) for n, rx in _ARG.items() if (m := rx.search(line))}
            if _PUT.search(line) and k.used_by(args.get("key-id")) and "name" in args:
                names.add(args["name"])
    for p in g.of_type("aws:ssm/parameter:Parameter"):
        if p.inputs.get("type") == "SecureString" and k.used_by(p.inputs.get("keyId")):
            names.add(p.inputs.get("name") or p.outputs["name"])
    for name in sorted(names):
        arn = f"arn:aws:ssm:{k.region}:{k.account}:parameter{name}"
        context = {"kms:EncryptionContext:PARAMETER_ARN": arn}
        for action, kms_action in (
            ("ssm:PutParameter", "kms:Encrypt"),
            ("ssm:GetParameter", "kms:Decrypt"),
        ):
            for role in _roles_allowed(g, action, arn):
                yield k.role_use(f"SSM {action} {name}", role, (kms_action,), "ssm", **context)


def _secrets(k: KeyContext) -> Iterator[KeyUse]:
    """Secrets Manager secrets under this key: the roles allowed to read them decrypt."""
    for secret in k.graph.of_type("aws:secretsmanager/secret:Secret"):
        if k.used_by(secret.inputs.get("kmsKeyId")):
            arn = secret.outputs["arn"]
            context = {"kms:EncryptionContext:SecretARN": arn}
            for role in _roles_allowed(k.graph, "secretsmanager:GetSecretValue", arn):
                label = f"secret {secret.name}"
                yield k.role_use(label, role, ("kms:Decrypt",), "secretsmanager", **context)


def _deployed(k: KeyContext) -> Iterator[KeyUse]:
    for table in k.graph.of_type("aws:dynamodb/table:Table"):
        if k.used_by((table.inputs.get("serverSideEncryption") or {}).get("kmsKeyArn")):
            yield k.deployer(f"DynamoDB table {table.name}", "dynamodb")
    for repo in k.graph.of_type("aws:ecr/repository:Repository"):
        if any(
            k.used_by(c.get("kmsKey")) for c in as_list(repo.inputs.get("encryptionConfigurations"))
        ):
            yield k.deployer(f"ECR repository {repo.name}", "ecr")


def _trails(k: KeyContext) -> Iterator[KeyUse]:
    """CloudTrail encrypting log files for one trail: data keys in the trail's encryption
    context, and DescribeKey, both with the trail as ``aws:SourceArn``."""
    who = Principal("Service", "cloudtrail.amazonaws.com")
    for trail in k.graph.of_type("aws:cloudtrail/trail:Trail"):
        if k.used_by(trail.inputs.get("kmsKeyId")):
            arn = trail.outputs["arn"]
            source = {"aws:SourceArn": arn, "aws:SourceAccount": k.account}
            yield k.use(
                f"CloudTrail trail {trail.name}",
                who,
                ("kms:GenerateDataKey",),
                **{"kms:EncryptionContext:aws:cloudtrail:arn": arn},
                **source,
            )
            yield k.use(f"CloudTrail trail {trail.name}", who, ("kms:DescribeKey",), **source)


def _config_deliveries(k: KeyContext) -> Iterator[KeyUse]:
    """AWS Config writing snapshots and history under the delivery channel's key."""
    for channel in k.graph.of_type("aws:cfg/deliveryChannel:DeliveryChannel"):
        if k.used_by(channel.inputs.get("s3KmsKeyArn")):
            who = Principal("Service", "config.amazonaws.com")
            yield k.use(
                f"AWS Config delivery {channel.name}",
                who,
                ("kms:GenerateDataKey", "kms:Decrypt"),
                **{"aws:SourceAccount": k.account},
            )


def _replication(k: KeyContext) -> Iterator[KeyUse]:
    """S3 replication: the role decrypts source objects (S3 of the source bucket's region,
    which is this stack's) and encrypts replicas under the replica key (S3 of its region).
    The buckets use S3 bucket keys, so the encryption context is the bucket's ARN."""
    g = k.graph
    for rc in g.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig"):
        role = g.ref(rc.inputs.get("role"))
        source = g.ref_of_type(rc.inputs.get("bucket"), "aws:s3/bucket:Bucket")
        if role is None or source is None:
            continue
        if _encrypts(g, source, k):
            yield k.role_use(
                f"S3 replication from {source.name}", role, ("kms:Decrypt",), "s3",
                **{"kms:EncryptionContext:aws:s3:arn": source.outputs["arn"]},
            )
        for rule in as_list(rc.inputs.get("rules")):
            dest = rule.get("destination") or {}
            replica_key = (dest.get("encryptionConfiguration") or {}).get("replicaKmsKeyId")
            if k.used_by(replica_key):
                yield k.role_use(
                    f"S3 replication into {dest.get('bucket')}", role, ("kms:Encrypt", "kms:GenerateDataKey"), "s3",
                    **{"kms:EncryptionContext:aws:s3:arn": dest.get("bucket")},
                )


def _encrypts(g: Graph, bucket: MockResource, k: KeyContext) -> bool:
    """Whether ``bucket``'s default encryption uses ``k``'s key."""
    for sse in g.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ):
        if g.ref_of_type(sse.inputs.get("bucket"), "aws:s3/bucket:Bucket") is bucket:
            for r in as_list(sse.inputs.get("rules")):
                if k.used_by((r.get("applyServerSideEncryptionByDefault") or {}).get("kmsMasterKeyId")):
                    return True
    return False


FINDERS = (
    _log_groups,
    _topics,
    _volumes,
    _buckets,
    _parameters,
    _secrets,
    _deployed,
    _trails,
    _config_deliveries,
    _replication,
)
