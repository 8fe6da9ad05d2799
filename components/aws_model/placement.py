"""Where the platform's network interfaces sit: subnets, security groups, public addressing.

Contract: :func:`place` returns the ENI groups of one graph by role — ``alb`` (the load
balancer's subnets and groups), ``tasks`` (the ECS service's ``networkConfiguration``),
``ray_head`` (the EC2 instance), ``ray_workers`` (the Auto Scaling group's subnets with
its launch template's groups) and ``endpoints`` (interface endpoints, one node each,
named ``<service> endpoint``). A node's addresses may be anywhere in its subnets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.aws_model.graph import Graph, as_list
from components.aws_model.routing import Router
from components.aws_model.secgroups import Party

ROLES = ("alb", "tasks", "ray_head", "ray_workers", "endpoints")


@dataclass(frozen=True)
class Node:
    """A group of ENIs placed alike."""

    name: str
    groups: frozenset[str]
    subnets: tuple[str, ...]
    public_ip: bool = False
    vpc: str = ""


def party(router: Router, node: Node) -> Party:
    """``node`` as a connection end: its groups and its subnets' CIDRs."""
    cidrs = tuple(c for c in (router.cidr(s) for s in node.subnets) if c)
    return Party(node.name, node.groups, cidrs)


def _node(router: Router, name: str, groups: Any, subnets: Any, public_ip: bool) -> Node:
    subnet_ids = tuple(as_list(subnets))
    vpc = next((v for v in (router.vpc_of(s) for s in subnet_ids) if v), "")
    return Node(name, frozenset(as_list(groups)), subnet_ids, public_ip, vpc)


def _workers(graph: Graph, router: Router) -> list[Node]:
    out = []
    for asg in graph.of_type("aws:autoscaling/group:Group"):
        lt = graph.ref((asg.inputs.get("launchTemplate") or {}).get("id"))
        lt_inputs = lt.inputs if lt is not None else {}
        nics = as_list(lt_inputs.get("networkInterfaces"))
        groups = [sg for n in nics for sg in as_list(n.get("securityGroups"))]
        groups = groups or as_list(lt_inputs.get("vpcSecurityGroupIds"))
        public = any(str(n.get("associatePublicIpAddress")).lower() == "true" for n in nics)
        out.append(
            _node(router, "Ray workers", groups, asg.inputs.get("vpcZoneIdentifiers"), public)
        )
    return out


def place(graph: Graph, router: Router) -> dict[str, list[Node]]:
    """ENI groups by role (see the module contract)."""
    out: dict[str, list[Node]] = {role: [] for role in ROLES}
    for lb in graph.of_type("aws:lb/loadBalancer:LoadBalancer"):
        i = lb.inputs
        out["alb"].append(
            _node(router, "ALB", i.get("securityGroups"), i.get("subnets"), not i.get("internal"))
        )
    for svc in graph.of_type("aws:ecs/service:Service"):
        net = svc.inputs.get("networkConfiguration") or {}
        public = net.get("assignPublicIp") is True
        out["tasks"].append(
            _node(router, "tasks", net.get("securityGroups"), net.get("subnets"), public)
        )
    for inst in graph.of_type("aws:ec2/instance:Instance"):
        i = inst.inputs
        public = i.get("associatePublicIpAddress") is not False
        out["ray_head"].append(
            _node(router, "Ray head", i.get("vpcSecurityGroupIds"), i.get("subnetId"), public)
        )
    out["ray_workers"] = _workers(graph, router)
    for ep in graph.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"):
        if ep.inputs.get("vpcEndpointType") == "Interface":
            service = ep.inputs.get("serviceName", "").split(".", 3)[-1]
            groups, subnets = ep.inputs.get("securityGroupIds"), ep.inputs.get("subnetIds")
            out["endpoints"].append(_node(router, f"{service} endpoint", groups, subnets, False))
    return out
