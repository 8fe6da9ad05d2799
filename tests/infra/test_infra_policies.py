"""Every policy rule with a passing and a failing case, through both entry points:
the plain rule functions (offline evaluator) and the real pulumi_policy adapters."""

from __future__ import annotations

import json

import pytest
from infra_support import rendered
from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.offline import evaluate, to_res
from policies.pack import build_policies
from policies.rules import ACCOUNT_MONITORS, RULES, TAGGABLE_TYPES, Res, rule_by_name

TAGS = {"Project": "fleetprof", "Environment": "t", "Owner": "o", "CostCenter": "c"}
LOCKED_PAB = {"blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True, "restrictPublicBuckets": True}
TLS_POLICY = json.dumps(
    {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
)
TABLE_OK = {
    "serverSideEncryption": {"enabled": True, "kmsKeyArn": "arn:k"},
    "pointInTimeRecovery": {"enabled": True},
    "deletionProtectionEnabled": True,
    "tags": TAGS,
}
LB_OK = {"enableDeletionProtection": True, "dropInvalidHeaderFields": True, "accessLogs": {"enabled": True, "bucket": "b"}, "tags": TAGS}
CONTAINERS = lambda user, ro: json.dumps([{"name": "c", "user": user, "readonlyRootFilesystem": ro}])  # noqa: E731

AWSLOGS = {"logDriver": "awslogs", "options": {"awslogs-group": "g", "awslogs-region": "us-east-1"}}
ADOT = "public.ecr.aws/aws-observability/aws-otel-collector"
IMAGES = lambda image: json.dumps([{"name": "c", "image": image, "logConfiguration": AWSLOGS}])  # noqa: E731

# rule -> (type, passing props, failing props, config)
RESOURCE_CASES = {
    "ecs-image-pinned": ("aws:ecs/taskDefinition:TaskDefinition", {"containerDefinitions": IMAGES(f"{ADOT}:v0.48.0")},
                         {"containerDefinitions": IMAGES(f"{ADOT}:latest")}, {}),
    "ecs-container-logging": ("aws:ecs/taskDefinition:TaskDefinition", {"containerDefinitions": IMAGES("i@sha256:" + "0" * 64)},
                              {"containerDefinitions": json.dumps([{"name": "c", "image": "i"}])}, {}),
    "s3-public-access-block": ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", LOCKED_PAB, {**LOCKED_PAB, "ignorePublicAcls": False}, {}),
    "s3-encryption": (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "arn:k"}}]},
        {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
        {},
    ),
    "s3-tls-only": ("aws:s3/bucketPolicy:BucketPolicy", {"policy": TLS_POLICY}, {"policy": json.dumps({"Statement": []})}, {}),
    "dynamodb-encryption": ("aws:dynamodb/table:Table", TABLE_OK, {**TABLE_OK, "serverSideEncryption": {"enabled": False}}, {}),
    "dynamodb-pitr": ("aws:dynamodb/table:Table", TABLE_OK, {**TABLE_OK, "pointInTimeRecovery": {"enabled": False}}, {"required": True}),
    "deletion-protection": ("aws:lb/loadBalancer:LoadBalancer", LB_OK, {**LB_OK, "enableDeletionProtection": False}, {"required": True}),
    "kms-rotation": ("aws:kms/key:Key", {"enableKeyRotation": True, "tags": TAGS}, {"enableKeyRotation": False, "tags": TAGS}, {}),
    "alb-https": (
        "aws:lb/listener:Listener",
        {"protocol": "HTTP", "defaultActions": [{"type": "redirect", "redirect": {"protocol": "HTTPS"}}], "tags": TAGS},
        {"protocol": "HTTP", "defaultActions": [{"type": "forward"}], "tags": TAGS},
        {"allowPlainHttp": False},
    ),
    "alb-access-logs": ("aws:lb/loadBalancer:LoadBalancer", LB_OK, {**LB_OK, "accessLogs": {"enabled": False}}, {}),
    "alb-drop-invalid-headers": ("aws:lb/loadBalancer:LoadBalancer", LB_OK, {**LB_OK, "dropInvalidHeaderFields": False}, {}),
    "no-open-ingress": (
        "aws:ec2/securityGroup:SecurityGroup",
        {"ingress": [{"fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}, {"fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]}], "tags": TAGS},
        {"ingress": [{"fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}], "tags": TAGS},
        {},
    ),
    "ec2-imdsv2": (
        "aws:ec2/launchTemplate:LaunchTemplate",
        {"metadataOptions": {"httpTokens": "required"}},
        {"metadataOptions": {"httpTokens": "optional"}},
        {},
    ),
    "ec2-encrypted-volumes": (
        "aws:ec2/instance:Instance",
        {"rootBlockDevice": {"encrypted": True}},
        {"rootBlockDevice": {"encrypted": False}},
        {},
    ),
    "ec2-no-public-ip": ("aws:ec2/instance:Instance", {"associatePublicIpAddress": False}, {"associatePublicIpAddress": True}, {}),
    "ecs-no-public-ip": (
        "aws:ecs/service:Service",
        {"networkConfiguration": {"assignPublicIp": False}},
        {"networkConfiguration": {"assignPublicIp": True}},
        {},
    ),
    "ecs-task-hardening": (
        "aws:ecs/taskDefinition:TaskDefinition",
        {"containerDefinitions": CONTAINERS("10001:10001", True)},
        {"containerDefinitions": CONTAINERS("root", True)},
        {},
    ),
    "log-group-retention-kms": (
        "aws:cloudwatch/logGroup:LogGroup",
        {"retentionInDays": 30, "kmsKeyId": "arn:k"},
        {"retentionInDays": 30},
        {},
    ),
    "iam-no-star": (
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})},
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Action": ["*"], "Resource": "*"}]})},
        {},
    ),
    "required-tags": ("aws:ec2/vpc:Vpc", {"tags": TAGS}, {"tags": {k: v for k, v in TAGS.items() if k != "Owner"}}, {}),
    "iam-no-broad-managed-policy": (
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"policyArn": "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"},
        {"policyArn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"},
        {},
    ),
    "service-auth": (
        "aws:ecs/taskDefinition:TaskDefinition",
        {"containerDefinitions": json.dumps([{"name": "c", "secrets": [
            {"name": "FLEETPROF_AUTH_TOKENS", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:t-AbCdEf:::v1"}]}])},
        {"containerDefinitions": json.dumps([{"name": "c", "environment": [{"name": "FLEETPROF_INSECURE", "value": "1"}]}])},
        {"required": True},
    ),
}


def _bucket_world(*, with_pab: bool = True, versioning: str = "Enabled") -> list[Res]:
    b = "urn:b"
    out = [Res("aws:s3/bucket:Bucket", "b", b, {"tags": TAGS})]
    subs = {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": {},
        "aws:s3/bucketVersioning:BucketVersioning": {"versioningConfiguration": {"status": versioning}},
        "aws:s3/bucketPolicy:BucketPolicy": {"policy": TLS_POLICY},
    }
    if with_pab:
        subs["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"] = LOCKED_PAB
    out += [Res(t, f"s{i}", f"urn:s{i}", p, {"bucket": [b]}) for i, (t, p) in enumerate(subs.items())]
    return out


def _alb_world(*, associated: bool) -> list[Res]:
    out = [Res("aws:lb/loadBalancer:LoadBalancer", "alb", "urn:alb", LB_OK), Res("aws:wafv2/webAcl:WebAcl", "acl", "urn:acl", {})]
    if associated:
        out.append(Res("aws:wafv2/webAclAssociation:WebAclAssociation", "a", "urn:a", {}, {"resourceArn": ["urn:alb"], "webAclArn": ["urn:acl"]}))
    return out


def _nat_world(nat_azs: list[str]) -> list[Res]:
    out = [Res("aws:ec2/subnet:Subnet", f"pub-{az}", f"urn:sub-{az}", {"availabilityZone": az}) for az in ("a", "b", "c")]
    out += [Res("aws:ec2/natGateway:NatGateway", f"nat-{az}", f"urn:nat-{az}", {}, {"subnetId": [f"urn:sub-{az}"]}) for az in nat_azs]
    return out


DATA_TAGS = {**TAGS, "DataClass": "customer-data"}
DENY_DELETE = json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject"], "Resource": "*"}]})
SELECTORS = [
    {"fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]},
    {"fieldSelectors": [{"field": "eventCategory", "equals": ["Data"]}, {"field": "resources.type", "equals": ["AWS::S3::Object"]}]},
]
REPLICATION_RULE = {
    "status": "Enabled",
    "deleteMarkerReplication": {"status": "Enabled"},
    "sourceSelectionCriteria": {"sseKmsEncryptedObjects": {"status": "Enabled"}},
    "destination": {"bucket": "arn:aws:s3:::replica", "encryptionConfiguration": {"replicaKmsKeyId": "arn:k2"}},
}


def _trail_world(*, validation: bool = True) -> list[Res]:
    trail = {"enableLogFileValidation": validation, "kmsKeyId": "arn:k", "isMultiRegionTrail": True, "advancedEventSelectors": SELECTORS}
    return [
        Res("aws:s3/bucket:Bucket", "data", "urn:data", {"tags": DATA_TAGS}),
        Res("aws:s3/bucket:Bucket", "logs", "urn:logs", {"tags": TAGS}),
        Res("aws:s3/bucketPolicy:BucketPolicy", "logs-policy", "urn:lp", {"policy": DENY_DELETE}, {"bucket": ["urn:logs"]}),
        Res("aws:cloudtrail/trail:Trail", "trail", "urn:trail", trail, {"advancedEventSelectors": ["urn:data"], "s3BucketName": ["urn:logs"]}),
    ]


def _backup_world(*, selected: tuple[str, ...] = ("urn:table", "urn:data"), copy: bool = True, rule: dict = REPLICATION_RULE) -> list[Res]:
    plan = {"rules": [{"lifecycle": {"deleteAfter": 35}, "copyActions": [{"destinationVaultArn": "arn:v"}] if copy else []}]}
    return [
        Res("aws:dynamodb/table:Table", "table", "urn:table", TABLE_OK),
        Res("aws:s3/bucket:Bucket", "data", "urn:data", {"tags": DATA_TAGS}),
        Res("aws:backup/plan:Plan", "plan", "urn:plan", plan),
        Res("aws:backup/selection:Selection", "sel", "urn:sel", {}, {"planId": ["urn:plan"], "resources": list(selected)}),
        Res("aws:s3/bucketReplicationConfig:BucketReplicationConfig", "repl", "urn:repl", {"rules": [rule]}, {"bucket": ["urn:data"]}),
    ]


def _waf_log_world(*, redact: bool = True) -> list[Res]:
    group = {"name": "aws-waf-logs-fleetprof-t", "kmsKeyId": "arn:k", "retentionInDays": 90, "tags": TAGS}
    logging = {"redactedFields": [{"singleHeader": {"name": "authorization"}}] if redact else []}
    return [
        Res("aws:wafv2/webAcl:WebAcl", "acl", "urn:acl", {}),
        Res("aws:cloudwatch/logGroup:LogGroup", "waf-logs", "urn:lg", group),
        Res("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration", "log", "urn:log", logging,
            {"resourceArn": ["urn:acl"], "logDestinationConfigs": ["urn:lg"]}),
    ]


def _collector_world(*, admitted: int) -> list[Res]:
    config = "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:4318}}}}"
    defs = json.dumps([{"name": "otel", "environment": [{"name": "AOT_CONFIG_CONTENT", "value": config}]}])
    sg = {"ingress": [{"fromPort": admitted, "toPort": admitted, "securityGroups": ["sg-alb"]}], "tags": TAGS}
    return [
        Res("aws:ecs/taskDefinition:TaskDefinition", "task", "urn:task", {"containerDefinitions": defs}),
        Res("aws:ec2/securityGroup:SecurityGroup", "sg", "urn:sg", sg),
        Res("aws:ecs/service:Service", "svc", "urn:svc", {}, {"taskDefinition": ["urn:task"], "networkConfiguration": ["urn:sg"]}),
    ]


# rule -> (passing world, failing world, config)
STACK_CASES = {
    "otel-collector-private": (_collector_world(admitted=4040), _collector_world(admitted=4318), {}),
    "waf-logging": (_waf_log_world(), _waf_log_world(redact=False), {}),
    "cloudtrail-audit": (_trail_world(), _trail_world(validation=False), {"required": True}),
    "account-monitoring": (
        [Res(t, t, f"urn:{t}", {}) for _, types in ACCOUNT_MONITORS.values() for t in types],
        [Res("aws:guardduty/detector:Detector", "gd", "urn:gd", {})],
        {"config": True, "guardDuty": True, "securityHub": True},
    ),
    "backup-configured": (_backup_world(), _backup_world(selected=("urn:table",)), {"required": True}),
    "dr-replication": (
        _backup_world(),
        _backup_world(rule={**REPLICATION_RULE, "sourceSelectionCriteria": {}}),
        {"required": True},
    ),
    "s3-bucket-hardened": (_bucket_world(), _bucket_world(with_pab=False), {}),
    "waf-attached": (_alb_world(associated=True), _alb_world(associated=False), {"required": True}),
    "nat-per-az": (_nat_world(["a", "b", "c"]), _nat_world(["a"]), {"required": True}),
    "sns-topic-cmk": (
        [Res("aws:kms/key:Key", "k", "urn:k", {}),
         Res("aws:sns/topic:Topic", "t", "urn:t", {"kmsMasterKeyId": "arn:k"}, {"kmsMasterKeyId": ["urn:k"]})],
        [Res("aws:sns/topic:Topic", "t", "urn:t", {"kmsMasterKeyId": "alias/aws/sns"})],
        {},
    ),
}


def test_pack_has_at_least_15_mandatory_rules_all_covered():
    assert len(RULES) >= 15
    assert len({r.name for r in RULES}) == len(RULES)
    assert set(RESOURCE_CASES) | set(STACK_CASES) == {r.name for r in RULES}
    policies = build_policies()
    assert [p.name for p in policies] == [r.name for r in RULES]
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies)


@pytest.mark.parametrize("name", sorted(RESOURCE_CASES))
def test_resource_rule_pass_and_fail(name):
    type_, good, bad, config = RESOURCE_CASES[name]
    rule = rule_by_name(name)
    assert rule.resource_check(type_, good, config) == []
    assert rule.resource_check(type_, bad, config) != []
    # the offline evaluator reports it under this rule
    found = evaluate([Res(type_, "x", "urn:x", bad)], {name: config}, rules=[rule])
    assert [f.rule for f in found] and {f.rule for f in found} == {name}


@pytest.mark.parametrize("name", sorted(RESOURCE_CASES))
def test_resource_rule_through_pulumi_policy(name):
    type_, good, bad, config = RESOURCE_CASES[name]
    (policy,) = [p for p in build_policies() if p.name == name]
    assert isinstance(policy, ResourceValidationPolicy)
    reported: list[str] = []
    for props, expect in ((good, False), (bad, True)):
        reported.clear()
        args = ResourceValidationArgs(type_, props, "urn:x", "x", None, None, config)
        policy.validate(args, lambda message, urn=None: reported.append(message))
        assert bool(reported) is expect, (name, props, reported)


@pytest.mark.parametrize("name", sorted(STACK_CASES))
def test_stack_rule_pass_and_fail(name):
    good, bad, config = STACK_CASES[name]
    rule = rule_by_name(name)
    assert rule.stack_check(good, config) == []
    assert rule.stack_check(bad, config) != []
    (policy,) = [p for p in build_policies() if p.name == name]
    assert isinstance(policy, StackValidationPolicy)

    def as_policy_resources(world: list[Res]) -> list[PolicyResource]:
        by_urn = {r.urn: PolicyResource(r.type, r.props, r.urn, r.name, None, None, None, [], {}) for r in world}
        for r in world:
            by_urn[r.urn].property_dependencies = {k: [by_urn[u] for u in v] for k, v in r.deps.items()}
        return list(by_urn.values())

    for world, expect in ((good, False), (bad, True)):
        reported: list[str] = []
        sink = reported.append
        policy.validate(StackValidationArgs(as_policy_resources(world), config), lambda m, urn=None, sink=sink: sink(m))
        assert bool(reported) is expect, (name, reported)


def test_requirements_can_be_relaxed_by_config():
    table = {**TABLE_OK, "pointInTimeRecovery": {"enabled": False}, "deletionProtectionEnabled": False}
    assert rule_by_name("dynamodb-pitr").resource_check("aws:dynamodb/table:Table", table, {"required": False}) == []
    assert rule_by_name("deletion-protection").resource_check("aws:dynamodb/table:Table", table, {"required": False}) == []
    plain = {"protocol": "HTTP", "defaultActions": [{"type": "forward"}]}
    assert rule_by_name("alb-https").resource_check("aws:lb/listener:Listener", plain, {"allowPlainHttp": True}) == []
    assert rule_by_name("nat-per-az").stack_check(_nat_world(["a"]), {"required": False}) == []
    # strict defaults apply when no config is given
    assert rule_by_name("dynamodb-pitr").resource_check("aws:dynamodb/table:Table", table, rule_by_name("dynamodb-pitr").defaults())


def test_every_taggable_resource_is_tagged_in_every_stack():
    import importlib

    checked = 0
    for stack in ("dev", "staging", "prod"):
        for r in rendered(stack).resources:
            if not r.custom or not r.type.startswith("aws:"):
                continue
            module, cls = r.type.split(":")[1].split("/")[0], r.type.rsplit(":", 1)[1]
            resource_cls = getattr(importlib.import_module(f"pulumi_aws.{module}"), cls)
            taggable = "tags" in dir(resource_cls)
            assert taggable == (r.type in TAGGABLE_TYPES), f"TAGGABLE_TYPES out of sync for {r.type}"
            if taggable:
                found = evaluate(to_res([r]), rules=[rule_by_name("required-tags")])
                assert found == [], (stack, r.name, found)
                checked += 1
    assert checked > 150
