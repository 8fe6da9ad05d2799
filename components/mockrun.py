"""Render the Pulumi program of one stack under Pulumi's unit-test mocks.

Shared by :mod:`components.preview`, :mod:`policies.offline` and ``tests/infra``.
No Pulumi CLI, no cloud credentials, no network: the stack's config is read from
``Pulumi.yaml`` (schema defaults) merged with ``Pulumi.<stack>.yaml``, the program in
``__main__.py`` runs against a recording mock monitor, and every registered resource is
returned as a :class:`MockResource` with its inputs (engine/camelCase property names, the
same shape a CrossGuard policy sees), parent and property dependencies.

Mock outputs are deterministic (ids and ARNs derive from type and name), so rendering
the same stack twice yields identical results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import runpy
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

PROJECT = "fleetprof"
ACCOUNT_ID = "123456789012"
PUBLIC_HOSTED_ZONES: tuple[str, ...] = ("example.com",)
"""Public Route 53 zones the mock account holds (``route53.getZone`` fails for any other)."""
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MockResource:
    """One resource registered by the program."""

    urn: str
    type: str
    name: str
    parent: str  # parent URN ("" for children of the stack)
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    custom: bool = True
    ignore_changes: tuple[str, ...] = ()  # engine (camelCase) property names Pulumi leaves alone
    protect: bool = False  # Pulumi refuses to delete it while set

    @property
    def parent_name(self) -> str:
        """Logical name of the parent component ("" for the stack)."""
        if not self.parent or self.parent.split("::")[2].endswith("pulumi:pulumi:Stack"):
            return ""
        return self.parent.split("::")[-1]


@dataclass
class Rendering:
    """The result of running the program for one stack."""

    stack: str
    config: dict[str, Any]
    resources: list[MockResource]
    exports: dict[str, Any]
    program: dict[str, Any]  # the program module's globals (components, settings)

    def of_type(self, type_: str) -> list[MockResource]:
        """Resources of one type token, e.g. ``aws:ec2/natGateway:NatGateway``."""
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, MockResource]:
        return {r.urn: r for r in self.resources}


def _short_hash(*parts: str) -> str:
    return hashlib.blake2b("/".join(parts).encode(), digest_size=4).hexdigest()


_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/instance:Instance": "i-",
    "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/internetGateway:InternetGateway": "igw-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/eip:Eip": "eipalloc-",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
}


class FleetMocks(pulumi_mocks.Mocks):
    """Deterministic AWS-shaped mock outputs and invoke results."""

    def __init__(self, region: str) -> None:
        self.region = region

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        typ, name = args.typ, args.name
        h = _short_hash(typ, name)
        rid = _ID_PREFIX.get(typ, "") + (h if typ in _ID_PREFIX else f"{name}-{h}")
        service = typ.split(":")[1].split("/")[0]
        kind = typ.rsplit(":", 1)[-1].lower()
        outputs: dict[str, Any] = dict(args.inputs)
        region = str(outputs.get("region") or self.region)  # a resource may name its own region
        outputs.setdefault("arn", f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{kind}/{rid}")
        outputs.setdefault("name", f"{name}-{h}")
        if typ == "aws:s3/bucket:Bucket":
            outputs.setdefault("bucket", f"{name}-{h}")
            outputs["arn"] = f"arn:aws:s3:::{outputs['bucket']}"
            rid = outputs["bucket"]
        elif typ == "aws:dynamodb/table:Table":
            rid = outputs["name"]
        elif typ == "aws:lb/loadBalancer:LoadBalancer":
            outputs["arnSuffix"] = f"app/{name}/{h}"
            outputs["dnsName"] = f"{name}-{h}.{self.region}.elb.amazonaws.com"
            outputs["zoneId"] = "Z35SXDOTRQ7X7K"
        elif typ == "aws:lb/targetGroup:TargetGroup":
            outputs["arnSuffix"] = f"targetgroup/{name}/{h}"
        elif typ == "aws:ecr/repository:Repository":
            outputs["repositoryUrl"] = f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{outputs['name']}"
        elif typ == "aws:cloudtrail/trail:Trail":
            outputs["arn"] = f"arn:aws:cloudtrail:{region}:{ACCOUNT_ID}:trail/{outputs['name']}"
        elif typ == "aws:sns/topic:Topic":
            outputs["arn"] = f"arn:aws:sns:{region}:{ACCOUNT_ID}:{outputs['name']}"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            outputs["arn"] = f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{outputs['name']}"
        elif typ == "aws:secretsmanager/secret:Secret":
            secret_name = f"{outputs.get('namePrefix') or name}{h[:6]}"
            outputs["arn"] = f"arn:aws:secretsmanager:{region}:{ACCOUNT_ID}:secret:{secret_name}-{h[:6]}"
            outputs["name"] = secret_name
            rid = outputs["arn"]
        elif typ == "aws:secretsmanager/secretVersion:SecretVersion":
            # a new version per content, as AWS mints one for every changed value
            content = json.dumps([outputs.get("secretId"), outputs.get("secretString")])
            outputs["versionId"] = str(uuid.UUID(bytes=hashlib.blake2b(content.encode(), digest_size=16).digest()))
        elif typ == "aws:kms/key:Key":
            outputs["keyId"] = rid
        elif typ == "aws:ec2/instance:Instance":
            outputs["privateIp"] = f"10.0.{int(h[:2], 16) % 250}.{int(h[2:4], 16) % 250 + 4}"
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs["latestVersion"] = 1
        elif typ == "aws:acm/certificate:Certificate":
            domain = outputs["domainName"]
            outputs["domainValidationOptions"] = [
                {
                    "domainName": domain,
                    "resourceRecordName": f"_{h}.{domain}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": f"_{_short_hash(h, domain)}.acm-validations.aws.",
                }
            ]
            outputs["status"] = "PENDING_VALIDATION"
        elif typ == "aws:route53/record:Record":
            outputs["fqdn"] = str(outputs["name"]).rstrip(".")
        elif typ == "aws:ecs/cluster:Cluster":
            rid = outputs["name"]
        elif typ == "docker-build:index:Image":
            # a pushed image's digest follows its tags (which carry the build context's digest)
            digest = "sha256:" + hashlib.sha256(json.dumps(outputs.get("tags")).encode()).hexdigest()
            outputs["digest"] = digest
            outputs["ref"] = f"{outputs['tags'][0]}@{digest}" if outputs.get("tags") else ""
        return rid, outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{c}" for c in "abcdef"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)], "id": self.region}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock",
                "userId": "AIDAMOCK",
                "id": ACCOUNT_ID,
            }
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token == "aws:ssm/getParameter:getParameter":
            return {
                "name": args.args.get("name", ""),
                "value": "ami-0123456789abcdef0",
                "insecureValue": "ami-0123456789abcdef0",
                "type": "String",
                "arn": f"arn:aws:ssm:{self.region}::parameter{args.args.get('name', '')}",
                "version": 1,
                "id": args.args.get("name", ""),
            }
        if token == "aws:route53/getZone:getZone":
            return self._zone(str(args.args.get("name", "")), bool(args.args.get("privateZone")))
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            registry = f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com"
            return {
                "authorizationToken": "QVdTOm1vY2s=",
                "userName": "AWS",
                "password": "mock",
                "proxyEndpoint": f"https://{registry}",
                "expiresAt": "2100-01-01T00:00:00Z",
                "id": self.region,
            }
        if token == "aws:elb/getServiceAccount:getServiceAccount":
            return {"arn": "arn:aws:iam::127311923021:root", "id": "127311923021"}
        return {}

    @staticmethod
    def _zone(name: str, private: bool) -> dict | tuple[dict, list[tuple[str, str]]]:
        """``route53.getZone`` by name: a public zone of :data:`PUBLIC_HOSTED_ZONES`, or the
        provider's failure for a zone the account does not hold."""
        name = name.rstrip(".")
        if private or name not in PUBLIC_HOSTED_ZONES:
            return {}, [("name", "no matching Route 53 Hosted Zone found")]
        zone_id = "Z" + _short_hash("zone", name).upper() + "EXAMPLE"
        return {"id": zone_id, "zoneId": zone_id, "name": name, "privateZone": False, "nameServers": []}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also records parent, inputs and property dependencies."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.records: dict[str, MockResource] = {}
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        registration = self.resources.get(response.urn)
        deps = {k: sorted(v.urns) for k, v in request.propertyDependencies.items()}
        record = MockResource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            inputs=_plain(inputs),
            outputs=_plain(registration.state if registration else {}),
            id=response.id,
            property_dependencies=deps,
            custom=bool(request.custom),
            ignore_changes=tuple(request.ignoreChanges),
            protect=bool(request.protect),
        )
        with self._lock:
            self.records[response.urn] = record
        return response


def _plain(value: Any) -> Any:
    """Drop Pulumi sentinel wrappers so values compare and serialize as plain JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _config_value(value: Any) -> str:
    """Config values reach the program as strings; structured values as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def stack_config(stack: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """Merged config of ``stack``: ``Pulumi.yaml`` defaults overlaid by ``Pulumi.<stack>.yaml``.

    Keys are fully qualified (``fleetprof:azCount``, ``aws:region``) and values are strings,
    exactly as the Pulumi CLI hands them to the program.
    """
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    if project.get("name") != PROJECT:
        raise ValueError(f"Pulumi.yaml must declare name: {PROJECT}")
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise FileNotFoundError(f"no such stack config: {stack_file.name}")
    merged: dict[str, str] = {}
    for key, spec in (project.get("config") or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            merged[full] = _config_value(spec["default"])
    for key, value in ((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}).items():
        merged[key if ":" in key else f"{PROJECT}:{key}"] = _config_value(value)
    return merged


def list_stacks(root: Path = REPO_ROOT) -> list[str]:
    """Stack names that have a ``Pulumi.<stack>.yaml`` file, sorted."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def parse_stack_command(
    argv: list[str] | None, prog: str, description: str, *, flag: str, flag_help: str
) -> argparse.Namespace | None:
    """Parse ``--stack NAME`` (default ``dev``) and one boolean ``flag`` of a stack command.

    Returns None, after an error on stderr, when the stack has no config file (exit code 2).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--stack", default="dev", help=f"one of: {', '.join(list_stacks())}")
    parser.add_argument(flag, action="store_true", help=flag_help)
    ns = parser.parse_args(argv)
    if ns.stack not in list_stacks():
        print(f"error: unknown stack {ns.stack!r} (have: {', '.join(list_stacks())})", file=sys.stderr)
        return None
    return ns


def render(
    stack: str,
    *,
    overrides: dict[str, Any] | None = None,
    root: Path = REPO_ROOT,
) -> Rendering:
    """Run ``__main__.py`` for ``stack`` under mocks and return every registered resource.

    ``overrides`` replaces config values (full keys) after the stack file is applied, for
    tests that need a variant of a stack. Resources are sorted by URN.
    """
    config = stack_config(stack, root)
    for key, value in (overrides or {}).items():
        config[key] = _config_value(value)
    pulumi.runtime.set_all_config(config, [])
    region = config.get("aws:region", "us-east-1")

    mocks = FleetMocks(region)
    monitor = RecordingMonitor(mocks)
    pulumi_settings.ROOT.set(None)  # a fresh Stack resource per render
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi_settings.SETTINGS.rpc_manager.clear()

    program: dict[str, Any] = {}

    def run_program() -> None:
        program.update(runpy.run_path(str(root / "__main__.py"), run_name="__main__"))

    _sync_await(pulumi.runtime.stack.run_pulumi_func(run_program))

    stack_resource = pulumi_settings.get_root_resource()
    exports: dict[str, Any] = {}
    for key, value in sorted(getattr(stack_resource, "outputs", {}).items()):
        exports[key] = _sync_await(pulumi.Output.from_input(value).future())
    resources = sorted(monitor.records.values(), key=lambda r: r.urn)
    return Rendering(stack=stack, config=config, resources=resources, exports=exports, program=program)
