"""Network reachability of one stack, as AWS would allow it: which of the paths the platform
needs are open, which openings no needed path accounts for, and what may never be open.

Contract: :func:`analyze` places every ENI group (ALB, ECS tasks, Ray head, Ray workers,
interface endpoints) in its subnets and security groups, then checks each needed path on
both sides (the source's egress and the destination's ingress, :mod:`.secgroups`) and
along the route (:mod:`.routing`): clients -> ALB (443 with HTTPS; 80 as the redirect, or
plain HTTP where ``allowPlainHttp``); ALB -> tasks on the container port, in the target
group's protocol, which must be the one the container serves (:data:`SERVED_PROTOCOL`; a
mismatch fails every health check) and is reported per hop; tasks -> S3,
DynamoDB, ECR (api, dkr), CloudWatch Logs, SSM, Secrets Manager, and what the task's
sidecar needs (:func:`.task.egress_services`: X-Ray for a collector exporting there, ECR
Public for an image pulled from it); Ray nodes <-> Ray nodes
on Ray's ports; Ray nodes -> S3, DynamoDB, SSM and the SSM agent's services, CloudWatch
Logs and metrics, SNS where the scheduled analysis publishes anomalies and X-Ray where
their CloudWatch agent sends the jobs' traces (:func:`ray_egress_services`). An AWS service is reached through its interface endpoint when one with
private DNS exists, else through the gateway endpoint on the subnet's route table (S3,
DynamoDB), else through the internet route. Every ingress rule of every group must be accounted for by a needed path;
internet -> tasks and internet -> Ray must be closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.aws_model.graph import Graph, as_list
from components.aws_model.placement import Node, party, place
from components.aws_model.routing import Router
from components.aws_model.secgroups import (
    ALL_PORTS,
    Party,
    Rule,
    admits,
    group_rules,
    inline_conflicts,
    is_private,
    matches,
    port_text,
    rules_of,
)
from components.aws_model.task import egress_services

HTTPS = 443
SERVED_PROTOCOL = "HTTP"
"""What ``fleetprof serve`` speaks on its port: HTTP (TLS ends at the ALB; see the README)."""
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
RAY_GCS_PORT = 6379
RAY_DASHBOARD_PORT = 8265
RAY_DYNAMIC_PORTS = (1024, 65535)  # raylet, object manager, agents and worker processes
TASK_SERVICES = ("s3", "dynamodb", "ecr.api", "ecr.dkr", "logs", "ssm", "secretsmanager")
# data, the token parameter, the SSM agent (sessions), shipped logs and job metrics
RAY_SERVICES = ("s3", "dynamodb", "ssm", "ssmmessages", "ec2messages", "logs", "monitoring")
GATEWAY_SERVICES = ("s3", "dynamodb")
INSTANCE = "aws:ec2/instance:Instance"
INTERNET = "0.0.0.0/0"


@dataclass(frozen=True)
class Path:
    """One needed (or forbidden) connection and its verdict."""

    source: str
    dest: str
    protocol: str
    lo: int
    hi: int
    note: str = ""
    blocked: str = ""

    @property
    def open(self) -> bool:
        return not self.blocked

    @property
    def label(self) -> str:
        note = f" ({self.note})" if self.note else ""
        ports = (
            "all traffic"
            if self.protocol == "-1"
            else f"{self.protocol}/{port_text(self.lo, self.hi)}"
        )
        return f"{self.source} -> {self.dest} {ports}{note}"

    def __str__(self) -> str:
        return f"path {self.label}: " + ("open" if self.open else f"blocked: {self.blocked}")


@dataclass
class Report:
    """Findings: needed paths (open or not), forbidden paths, and unexplained openings."""

    paths: list[Path] = field(default_factory=list)
    forbidden: list[Path] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[Path]:
        return [p for p in self.paths if not p.open]

    def problems(self) -> list[str]:
        """Every finding that would make the platform fail or expose it (empty: healthy)."""
        exposed = [
            f"forbidden {p.label} is open: {p.blocked}" for p in self.forbidden if not p.open
        ]
        return [str(p) for p in self.missing] + exposed + list(self.unexpected)


@dataclass(frozen=True)
class _Grant:
    """An ingress permission a needed path accounts for."""

    groups: frozenset[str]
    party: Party
    protocol: str
    lo: int
    hi: int


class _Analysis:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.router = Router(graph)
        self.rules = group_rules(graph)
        self.grants: list[_Grant] = []
        self.report = Report()

    def party(self, node: Node) -> Party:
        return party(self.router, node)

    # --- one hop -----------------------------------------------------------------------

    def hop(self, src: Node | Party, dst: Node | Party, protocol: str, lo: int, hi: int) -> str:
        """Why src -> dst is refused by the groups ("" when both sides allow it)."""
        src_party = self.party(src) if isinstance(src, Node) else src
        dst_party = self.party(dst) if isinstance(dst, Node) else dst
        ports, reasons = f"{protocol}/{port_text(lo, hi)}", []
        if isinstance(src, Node) and not admits(
            rules_of(self.rules, src.groups), "egress", dst_party, protocol, lo, hi
        ):
            reasons.append(f"{src.name} egress does not allow {ports} to {dst_party.name}")
        if isinstance(dst, Node):
            if not admits(rules_of(self.rules, dst.groups), "ingress", src_party, protocol, lo, hi):
                reasons.append(f"{dst.name} ingress does not admit {src_party.name} on {ports}")
            self.grants.append(_Grant(dst.groups, src_party, protocol, lo, hi))
        return "; ".join(reasons)

    def need(
        self,
        src: Node | Party,
        dst: Node | Party,
        protocol: str,
        lo: int,
        hi: int,
        note: str = "",
        route: str = "",
    ) -> None:
        blocked = "; ".join(x for x in (route, self.hop(src, dst, protocol, lo, hi)) if x)
        self.report.paths.append(Path(src.name, dst.name, protocol, lo, hi, note, blocked))

    def service(self, node: Node, service: str, endpoints: list[Node]) -> None:
        """``node`` -> AWS ``service`` on 443, per subnet, through the route AWS would take."""
        iface = self.router.interface_endpoint(node.vpc, service)
        if iface is not None:
            ep_node = next(e for e in endpoints if e.name == f"{service} endpoint")
            blocked = self.hop(node, ep_node, "tcp", HTTPS, HTTPS)
            self.report.paths.append(
                Path(
                    node.name,
                    service,
                    "tcp",
                    HTTPS,
                    HTTPS,
                    f"interface endpoint {iface.name}",
                    blocked,
                )
            )
            return
        blocked, vias = [], set()
        for subnet in node.subnets:
            gw = (
                self.router.gateway_endpoint(subnet, service)
                if service in GATEWAY_SERVICES
                else None
            )
            if gw is not None:
                vias.add(f"gateway endpoint {gw.name}")
                pls = frozenset(x for x in [gw.outputs.get("prefixListId")] if x)
                dest = Party(service, cidrs=(INTERNET,), prefix_lists=pls)
            else:
                hop = self.router.internet(subnet, node.public_ip)
                if hop.blocked:
                    blocked.append(hop.blocked)
                else:
                    vias.add(hop.via)
                dest = Party(service, cidrs=(INTERNET,))
            why = self.hop(node, dest, "tcp", HTTPS, HTTPS)
            if why and why not in blocked:
                blocked.append(why)
        self.report.paths.append(
            Path(
                node.name,
                service,
                "tcp",
                HTTPS,
                HTTPS,
                " / ".join(sorted(vias)),
                "; ".join(blocked),
            )
        )

    # --- the platform's paths ----------------------------------------------------------

    def clients(self, alb: Node, settings: Any) -> None:
        routes = [self.router.internet(s, alb.public_ip) for s in alb.subnets]
        route = "; ".join(h.blocked for h in routes if h.blocked)
        listeners = {
            int(ln.inputs.get("port", 0)): ln
            for ln in self.graph.of_type("aws:lb/listener:Listener")
        }
        http_kind = [
            a.get("type")
            for a in as_list((listeners.get(80) or _Empty).inputs.get("defaultActions"))
        ]
        for cidr in settings.allowed_cidrs:
            client = Party(f"clients {cidr}", cidrs=(cidr,))
            if settings.https:
                self.need(
                    client,
                    alb,
                    "tcp",
                    HTTPS,
                    HTTPS,
                    "HTTPS",
                    route + _listener_gap(listeners, HTTPS),
                )
            self.need(
                client,
                alb,
                "tcp",
                80,
                80,
                "redirect" if settings.https else "plain HTTP",
                route + _listener_gap(listeners, 80),
            )
        if settings.https and "forward" in http_kind:
            self.report.unexpected.append(
                "ALB listener 80 forwards to the service although HTTPS is configured"
            )
        if not settings.https and not settings.allow_plain_http and 80 in listeners:
            self.report.unexpected.append("ALB serves plain HTTP without allowPlainHttp")

    def alb_to_tasks(self, alb: Node, tasks: Node) -> None:
        for svc in self.graph.of_type("aws:ecs/service:Service"):
            for lb in as_list(svc.inputs.get("loadBalancers")):
                port = int(lb.get("containerPort"))
                group = self.graph.ref_of_type(lb.get("targetGroupArn"), TARGET_GROUP)
                protocol = str((group.inputs if group else {}).get("protocol") or "HTTP")
                check = str(((group.inputs if group else {}).get("healthCheck") or {}).get("protocol") or protocol)
                clear = " in plaintext inside the VPC" if protocol == "HTTP" else ""
                self.need(alb, tasks, "tcp", port, port, f"traffic and health checks, {protocol}{clear}")
                for what, used in (("target group", protocol), ("health check", check)):
                    if used != SERVED_PROTOCOL:
                        self.report.unexpected.append(
                            f"ALB {what} speaks {used} to tasks that serve {SERVED_PROTOCOL} on {port}: "
                            "every request and health check fails"
                        )

    def ray(self, head: Node, workers: Node, settings: Any) -> None:
        self.need(workers, head, "tcp", RAY_GCS_PORT, RAY_GCS_PORT, "GCS")
        self.need(
            workers, head, "tcp", RAY_DASHBOARD_PORT, RAY_DASHBOARD_PORT, "dashboard, job API"
        )
        for src, dst in ((head, workers), (workers, head), (workers, workers)):
            self.need(src, dst, "tcp", *RAY_DYNAMIC_PORTS, note="raylet, object manager, workers")
        # Ray nodes form one trust domain: Ray's docs require every port between them.
        self.grants.append(
            _Grant(
                head.groups | workers.groups,
                Party("Ray", head.groups | workers.groups),
                "-1",
                *ALL_PORTS,
            )
        )
        admin = getattr(settings, "ray_admin_security_group_id", "")
        if admin:
            self.need(
                Party("admin group", frozenset({admin})),
                head,
                "tcp",
                RAY_DASHBOARD_PORT,
                RAY_DASHBOARD_PORT,
                "dashboard",
            )

    def forbid_internet(self, node: Node) -> None:
        """internet -> node must be closed: no ingress rule of its groups admits public space."""
        opened = [
            str(r)
            for r in rules_of(self.rules, node.groups)
            if r.direction == "ingress" and r.peer_kind == "cidr" and not is_private(r.peer)
        ]
        self.report.forbidden.append(
            Path("internet", node.name, "-1", *ALL_PORTS, blocked="; ".join(opened))
        )

    def account(self) -> None:
        """Every ingress rule must be covered by a grant of a needed path."""
        for _group, rules in sorted(self.rules.items()):
            for rule in rules:
                if rule.direction == "ingress" and not any(_grants(g, rule) for g in self.grants):
                    self.report.unexpected.append(f"unexpected opening: {rule}")
        self.report.unexpected += inline_conflicts(self.graph)

    def endpoints_grant(self, endpoints: list[Node]) -> None:
        """Interface endpoints accept HTTPS from anywhere inside their VPC."""
        for ep in endpoints:
            vpc = self.graph.ref(ep.vpc)
            if vpc is not None:
                self.grants.append(
                    _Grant(
                        ep.groups,
                        Party("VPC", cidrs=(vpc.inputs["cidrBlock"],)),
                        "tcp",
                        HTTPS,
                        HTTPS,
                    )
                )


class _Empty:
    inputs: dict = {}


def _listener_gap(listeners: dict, port: int) -> str:
    return "" if port in listeners else f"; the ALB has no listener on {port}"


def _grants(grant: _Grant, rule: Rule) -> bool:
    """Whether ``grant`` accounts for ingress ``rule`` (same group, narrower peer and ports)."""
    if rule.group not in grant.groups or not (
        grant.protocol == "-1" or grant.protocol == rule.protocol
    ):
        return False
    if not (grant.lo <= rule.lo and rule.hi <= grant.hi):
        return False
    if rule.peer_kind == "group":
        return rule.peer in grant.party.groups
    if rule.peer_kind == "cidr":
        return any(_within(rule.peer, c) for c in grant.party.cidrs)
    return rule.peer in grant.party.prefix_lists


def _within(inner: str, outer: str) -> bool:
    return matches(Rule("", "", "", 0, 0, "cidr", outer, ""), Party("", cidrs=(inner,)))


def ray_egress_services(graph: Graph) -> tuple[str, ...]:
    """AWS endpoints the Ray nodes need beyond :data:`RAY_SERVICES`: ``sns`` when a node's
    boot script hands the analysis job an anomaly topic, ``xray`` when the nodes' CloudWatch
    agent sends the jobs' traces (:func:`.ray_nodes.egress_services`)."""
    from components.aws_model import ray_nodes
    from components.ray_cluster import ANOMALY_TOPIC_ENV

    publishes = any(ANOMALY_TOPIC_ENV in str(i.inputs.get("userData") or "") for i in graph.of_type(INSTANCE))
    return (("sns",) if publishes else ()) + ray_nodes.egress_services(graph)


def analyze(graph: Graph) -> Report:
    """Reachability findings of one rendered stack (see the module contract)."""
    a = _Analysis(graph)
    settings = graph.rendering.program["settings"]
    nodes = place(graph, a.router)
    for role in ("alb", "tasks", "ray_head", "ray_workers"):
        if not nodes[role]:
            a.report.paths.append(
                Path(role, "anything", "-1", *ALL_PORTS, blocked="no such ENIs in the stack")
            )
    a.endpoints_grant(nodes["endpoints"])
    for alb in nodes["alb"]:
        a.clients(alb, settings)
        for tasks in nodes["tasks"]:
            a.alb_to_tasks(alb, tasks)
    for tasks in nodes["tasks"]:
        for service in TASK_SERVICES + egress_services(graph):
            a.service(tasks, service, nodes["endpoints"])
        a.forbid_internet(tasks)
    for head in nodes["ray_head"]:
        for workers in nodes["ray_workers"]:
            a.ray(head, workers, settings)
    for ray_node in nodes["ray_head"] + nodes["ray_workers"]:
        for service in RAY_SERVICES + ray_egress_services(graph):
            a.service(ray_node, service, nodes["endpoints"])
        a.forbid_internet(ray_node)
    a.account()
    return a.report


def facts(graph: Graph) -> list[str]:
    """One line per needed path and forbidden path, then the unexpected openings."""
    report = analyze(graph)
    lines = [str(p) for p in report.paths]
    lines += [
        f"forbidden {p.label}: " + ("closed" if p.open else f"OPEN: {p.blocked}")
        for p in report.forbidden
    ]
    return lines + report.unexpected
