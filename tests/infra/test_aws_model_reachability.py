"""Reachability of the rendered stacks as AWS would allow it, and broken variants that the
check must catch (each built by editing a copy of the rendered inputs)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import pytest
from infra_support import STACKS, rendered

from components.aws_model.graph import Graph
from components.aws_model.reachability import analyze, facts
from components.mockrun import Rendering

Edit = Callable[[dict], dict]


def variant(
    rendering: Rendering, *, drop: tuple[str, ...] = (), edit: dict[str, Edit] | None = None
) -> Graph:
    """A graph of ``rendering`` without the resources named in ``drop`` and with ``edit``
    applied to (a deep copy of) the inputs of the resources it names."""
    edit = edit or {}
    missing = (set(drop) | set(edit)) - {r.name for r in rendering.resources}
    assert not missing, f"no such resources: {sorted(missing)}"
    resources = [
        dataclasses.replace(r, inputs=edit[r.name](copy.deepcopy(r.inputs)))
        if r.name in edit
        else r
        for r in rendering.resources
        if r.name not in drop
    ]
    return Graph(dataclasses.replace(rendering, resources=resources))


def path(report, label: str):
    found = [p for p in report.paths if p.label.startswith(label)]
    assert len(found) == 1, f"{label!r}: {[p.label for p in report.paths]}"
    return found[0]


@pytest.mark.parametrize("name", STACKS)
def test_every_needed_path_is_open_and_nothing_else(name):
    report = analyze(Graph(rendered(name)))
    assert report.problems() == []
    assert path(report, "ALB -> tasks tcp/4040").open
    labels = [p.label for p in report.paths]
    for service in ("s3", "dynamodb", "ecr.api", "ecr.dkr", "logs", "ssm", "secretsmanager"):
        assert any(lbl.startswith(f"tasks -> {service} tcp/443") for lbl in labels), service
    assert path(report, "Ray workers -> Ray head tcp/6379").open
    assert {p.dest for p in report.forbidden} == {"tasks", "Ray head", "Ray workers"}


def test_client_paths_follow_the_listeners(dev, prod, staging):
    assert [p.label for p in analyze(Graph(dev)).paths if p.source.startswith("clients")] == [
        "clients 0.0.0.0/0 -> ALB tcp/80 (plain HTTP)"
    ]
    assert [p.label for p in analyze(Graph(staging)).paths if p.source.startswith("clients")] == [
        "clients 10.0.0.0/8 -> ALB tcp/443 (HTTPS)",
        "clients 10.0.0.0/8 -> ALB tcp/80 (redirect)",
        "clients 203.0.113.0/24 -> ALB tcp/443 (HTTPS)",
        "clients 203.0.113.0/24 -> ALB tcp/80 (redirect)",
    ]
    assert path(analyze(Graph(prod)), "clients 0.0.0.0/0 -> ALB tcp/443").open


def test_services_take_the_route_aws_would(dev, prod):
    dev_report, prod_report = analyze(Graph(dev)), analyze(Graph(prod))
    assert "gateway endpoint network-s3-endpoint" in path(dev_report, "tasks -> s3 ").note
    assert "NAT gateway" in path(dev_report, "tasks -> ecr.api ").note
    assert (
        path(prod_report, "tasks -> ecr.api ").note == "interface endpoint network-ecr-api-endpoint"
    )
    assert "NAT gateway" in path(prod_report, "tasks -> secretsmanager ").note


def test_alb_without_egress_to_the_tasks_cannot_reach_them(stack):
    """pulumi-aws strips the default egress: without the ALB's own egress rule no target is healthy."""
    report = analyze(variant(stack, drop=("ingest-alb-to-tasks",)))
    broken = path(report, "ALB -> tasks tcp/4040")
    assert not broken.open and "ALB egress does not allow tcp/4040" in broken.blocked
    assert [p.label for p in report.missing] == [broken.label]


def test_tasks_that_do_not_admit_the_alb_are_unreachable(prod):
    report = analyze(variant(prod, edit={"ingest-sg": lambda i: {**i, "ingress": []}}))
    assert "tasks ingress does not admit ALB" in path(report, "ALB -> tasks tcp/4040").blocked


def test_task_ingress_from_the_internet_is_an_unexpected_opening(stack):
    def open_to_world(inputs: dict) -> dict:
        inputs["ingress"].append(
            {"protocol": "tcp", "fromPort": 4040, "toPort": 4040, "cidrBlocks": ["0.0.0.0/0"]}
        )
        return inputs

    report = analyze(variant(stack, edit={"ingest-sg": open_to_world}))
    assert report.unexpected == [
        "unexpected opening: ingest-sg: ingress tcp/4040 from cidr 0.0.0.0/0"
    ]
    internet = [p for p in report.forbidden if p.dest == "tasks"]
    assert len(internet) == 1 and not internet[0].open


def test_standalone_rules_count_like_inline_ones(dev):
    graph = variant(dev, edit={"ray-sg": lambda i: {k: v for k, v in i.items() if k != "ingress"}})
    sg = graph.named("aws:ec2/securityGroup:SecurityGroup", "ray-sg")

    def rule(type_: str, name: str, inputs: dict):
        return dataclasses.replace(
            graph.resources[0], type=type_, name=name, inputs={"securityGroupId": sg.id, **inputs}
        )

    nodes = rule(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "ray-self",
        {"ipProtocol": "-1", "referencedSecurityGroupId": sg.id},
    )
    ssh = rule(
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "ray-ssh",
        {
            "type": "ingress",
            "protocol": "tcp",
            "fromPort": 22,
            "toPort": 22,
            "cidrBlocks": ["10.0.0.0/8"],
        },
    )
    without_self = analyze(graph)
    assert not path(without_self, "Ray workers -> Ray head tcp/6379").open
    report = analyze(
        Graph(dataclasses.replace(graph.rendering, resources=[*graph.resources, nodes, ssh]))
    )
    assert report.missing == []
    assert report.unexpected == ["unexpected opening: ray-ssh: ingress tcp/22 from cidr 10.0.0.0/8"]


def test_inline_rules_would_delete_standalone_rules_of_the_same_direction(dev):
    report = analyze(variant(dev, edit={"edge-alb-sg": lambda i: {**i, "egress": []}}))
    assert report.unexpected == [
        "edge-alb-sg declares inline egress and standalone rules ['ingest-alb-to-tasks']: they conflict"
    ]


def test_private_subnets_without_nat_cannot_reach_ecr(dev):
    no_routes = {
        f"network-private-rt-us-east-1{az}": (lambda i: {**i, "routes": []}) for az in "ab"
    }
    report = analyze(variant(dev, edit=no_routes))
    missing = {p.label.split(" (")[0] for p in report.missing}
    assert "tasks -> ecr.api tcp/443" in missing and "tasks -> ecr.dkr tcp/443" in missing
    assert "no default route" in path(report, "tasks -> ecr.api ").blocked
    assert path(report, "tasks -> s3 ").open and path(report, "Ray head -> dynamodb ").open


def test_a_nat_gateway_in_a_subnet_without_internet_route_does_not_help(dev):
    report = analyze(variant(dev, edit={"network-public-rt": lambda i: {**i, "routes": []}}))
    assert (
        "network-nat-us-east-1a: its subnet network-public-us-east-1a has no route"
        in path(report, "tasks -> logs ").blocked
    )
    assert "no default route" in path(report, "clients 0.0.0.0/0 -> ALB tcp/80").blocked


def test_a_nat_gateway_without_elastic_ip_does_not_help(staging):
    report = analyze(
        variant(staging, edit={"network-nat-us-east-1b": lambda i: {**i, "allocationId": None}})
    )
    assert "has no public (Elastic IP) address" in path(report, "tasks -> logs ").blocked


def test_tasks_in_a_public_subnet_without_public_ip_have_no_internet(dev):
    public = [
        r.id for r in dev.of_type("aws:ec2/subnet:Subnet") if r.inputs["tags"]["Tier"] == "public"
    ]

    def to_public(inputs: dict) -> dict:
        inputs["networkConfiguration"]["subnets"] = public
        return inputs

    report = analyze(variant(dev, edit={"ingest-service": to_public}))
    assert "the ENI has no public IP" in path(report, "tasks -> ecr.api ").blocked


def test_interface_endpoints_must_admit_their_callers(prod):
    report = analyze(variant(prod, edit={"network-endpoints-sg": lambda i: {**i, "ingress": []}}))
    assert (
        "ecr.api endpoint ingress does not admit tasks" in path(report, "tasks -> ecr.api ").blocked
    )
    assert not path(report, "Ray workers -> ssm ").open


def test_private_dns_needs_the_vpc_dns_attributes(prod):
    report = analyze(
        variant(prod, edit={"network-vpc": lambda i: {**i, "enableDnsHostnames": False}})
    )
    assert "NAT gateway" in path(report, "tasks -> ecr.api ").note


def test_task_egress_limited_to_the_vpc_cannot_reach_aws_apis(dev):
    def vpc_only(inputs: dict) -> dict:
        inputs["egress"][0]["cidrBlocks"] = ["10.40.0.0/16"]
        return inputs

    report = analyze(variant(dev, edit={"ingest-sg": vpc_only}))
    assert "tasks egress does not allow tcp/443 to s3" in path(report, "tasks -> s3 ").blocked


def test_ray_nodes_need_each_other_on_every_ray_port(staging):
    narrow = {"protocol": "tcp", "fromPort": 6379, "toPort": 6379, "self": True}
    report = analyze(variant(staging, edit={"ray-sg": lambda i: {**i, "ingress": [narrow]}}))
    assert path(report, "Ray workers -> Ray head tcp/6379").open
    assert not path(report, "Ray workers -> Ray workers tcp/1024-65535").open
    assert not path(report, "Ray workers -> Ray head tcp/8265").open


def test_a_group_without_egress_sends_nothing(dev):
    report = analyze(
        variant(dev, edit={"ray-sg": lambda i: {k: v for k, v in i.items() if k != "egress"}})
    )
    assert "Ray head egress does not allow tcp/443 to s3" in path(report, "Ray head -> s3 ").blocked


def test_https_stack_whose_port_80_forwards_is_flagged(prod):
    forward = [{"type": "forward", "targetGroupArn": "arn:tg"}]
    report = analyze(variant(prod, edit={"edge-http": lambda i: {**i, "defaultActions": forward}}))
    assert (
        "ALB listener 80 forwards to the service although HTTPS is configured" in report.unexpected
    )


def test_a_missing_component_is_a_missing_path(dev):
    report = analyze(variant(dev, drop=("ray-workers",)))
    assert [p.label for p in report.missing] == ["ray_workers -> anything all traffic"]


def test_facts_name_every_path(dev):
    lines = facts(Graph(dev))
    assert "path ALB -> tasks tcp/4040 (traffic and health checks, HTTP in plaintext inside the VPC): open" in lines
    assert "forbidden internet -> tasks all traffic: closed" in lines
