"""Security-group rules as AWS evaluates them: one flat rule list per group, and whether a
group set admits a party on a protocol and port range.

Contract: rules come from the inline ``ingress``/``egress`` of
``aws:ec2/securityGroup:SecurityGroup`` and from the standalone rule resources
``aws:vpc/securityGroupIngressRule``, ``aws:vpc/securityGroupEgressRule`` and
``aws:ec2/securityGroupRule``. A group has no rule that is not listed: pulumi-aws removes
AWS's default allow-all egress of every group it creates, so a group without egress rules
sends nothing. Groups are stateful: a connection needs the source's egress and the
destination's ingress, and its replies need no rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from components.aws_model.graph import Graph, as_list

T_GROUP = "aws:ec2/securityGroup:SecurityGroup"
T_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
T_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
T_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"

ALL_PORTS = (0, 65535)
_PROTOCOLS = {
    "-1": "-1",
    "all": "-1",
    "6": "tcp",
    "tcp": "tcp",
    "17": "udp",
    "udp": "udp",
    "1": "icmp",
    "icmp": "icmp",
}


@dataclass(frozen=True)
class Rule:
    """One permission of one group: ``peer_kind`` is ``cidr``, ``group`` or ``prefix``."""

    group: str
    direction: str
    protocol: str
    lo: int
    hi: int
    peer_kind: str
    peer: str
    origin: str

    def __str__(self) -> str:
        ports = "all" if self.protocol == "-1" else f"{self.protocol}/{port_text(self.lo, self.hi)}"
        side = "from" if self.direction == "ingress" else "to"
        return f"{self.origin}: {self.direction} {ports} {side} {self.peer_kind} {self.peer}"


@dataclass(frozen=True)
class Party:
    """One end of a connection: the groups its ENIs carry, the CIDRs its addresses lie in
    (every address of a subnet may be used) and the prefix lists that name it."""

    name: str
    groups: frozenset[str] = frozenset()
    cidrs: tuple[str, ...] = ()
    prefix_lists: frozenset[str] = field(default_factory=frozenset)


def port_text(lo: int, hi: int) -> str:
    """``4040`` or ``1024-65535``."""
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _protocol(value: Any) -> str:
    key = str(value if value is not None else "-1").lower()
    if key not in _PROTOCOLS:
        raise ValueError(f"unsupported security group protocol {value!r}")
    return _PROTOCOLS[key]


def _ports(protocol: str, lo: Any, hi: Any) -> tuple[int, int]:
    if protocol == "-1" or lo is None:
        return ALL_PORTS
    lo_i, hi_i = int(lo), int(hi if hi is not None else lo)
    return (0, 65535) if (lo_i, hi_i) == (-1, -1) else (lo_i, hi_i)


def _peers(group: str, spec: dict, *, self_key: str = "self") -> Iterator[tuple[str, str]]:
    """(kind, peer) of every source/destination one rule spec names (pulumi input shape)."""
    for key in ("cidrBlocks", "ipv6CidrBlocks", "cidrIpv4", "cidrIpv6"):
        for cidr in as_list(spec.get(key)):
            yield "cidr", cidr
    for key in ("securityGroups", "referencedSecurityGroupId", "sourceSecurityGroupId"):
        for sg in as_list(spec.get(key)):
            yield "group", sg
    for key in ("prefixListIds", "prefixListId"):
        for pl in as_list(spec.get(key)):
            yield "prefix", pl
    if spec.get(self_key) is True:
        yield "group", group


def _expand(group: str, direction: str, spec: dict, origin: str, protocol_key: str) -> list[Rule]:
    protocol = _protocol(spec.get(protocol_key))
    lo, hi = _ports(protocol, spec.get("fromPort"), spec.get("toPort"))
    return [
        Rule(group, direction, protocol, lo, hi, kind, peer, origin)
        for kind, peer in _peers(group, spec)
    ]


def group_rules(graph: Graph) -> dict[str, list[Rule]]:
    """Every rule of every security group in the graph, keyed by group id."""
    out: dict[str, list[Rule]] = {g.id: [] for g in graph.of_type(T_GROUP)}
    for g in graph.of_type(T_GROUP):
        for direction in ("ingress", "egress"):
            for spec in as_list(g.inputs.get(direction)):
                out[g.id] += _expand(g.id, direction, spec, g.name, "protocol")
    for type_, direction in ((T_INGRESS, "ingress"), (T_EGRESS, "egress")):
        for r in graph.of_type(type_):
            out.setdefault(r.inputs["securityGroupId"], []).extend(
                _expand(r.inputs["securityGroupId"], direction, r.inputs, r.name, "ipProtocol")
            )
    for r in graph.of_type(T_RULE):
        group = r.inputs["securityGroupId"]
        out.setdefault(group, []).extend(
            _expand(group, r.inputs["type"], r.inputs, r.name, "protocol")
        )
    return out


def inline_conflicts(graph: Graph) -> list[str]:
    """Groups that declare inline rules of a direction that standalone rules also manage:
    the group resource would delete the standalone rules on its next update."""
    standalone: dict[tuple[str, str], list[str]] = {}
    for type_, direction in ((T_INGRESS, "ingress"), (T_EGRESS, "egress")):
        for r in graph.of_type(type_):
            standalone.setdefault((r.inputs["securityGroupId"], direction), []).append(r.name)
    for r in graph.of_type(T_RULE):
        standalone.setdefault((r.inputs["securityGroupId"], r.inputs["type"]), []).append(r.name)
    out = []
    for g in graph.of_type(T_GROUP):
        for direction in ("ingress", "egress"):
            names = standalone.get((g.id, direction))
            if names and g.inputs.get(direction) is not None:
                rules = sorted(names)
                out.append(
                    f"{g.name} declares inline {direction} and standalone rules {rules}: they conflict"
                )
    return out


def _cidr_within(inner: str, outer: str) -> bool:
    a, b = ipaddress.ip_network(inner, strict=False), ipaddress.ip_network(outer, strict=False)
    return a.version == b.version and a.subnet_of(b)


def matches(rule: Rule, party: Party) -> bool:
    """True when ``rule``'s peer covers every address ``party`` may use."""
    if rule.peer_kind == "group":
        return rule.peer in party.groups
    if rule.peer_kind == "prefix":
        return rule.peer in party.prefix_lists
    return bool(party.cidrs) and all(_cidr_within(c, rule.peer) for c in party.cidrs)


def _covers(intervals: Iterable[tuple[int, int]], lo: int, hi: int) -> bool:
    reach = lo - 1
    for a, b in sorted(intervals):
        if a > reach + 1:
            break
        reach = max(reach, b)
    return reach >= hi


def admits(
    rules: Iterable[Rule], direction: str, party: Party, protocol: str, lo: int, hi: int
) -> bool:
    """Whether the union of ``rules`` (one side's groups) allows every port lo..hi of
    ``protocol`` to/from ``party`` in ``direction``."""
    spans = [
        (r.lo, r.hi)
        for r in rules
        if r.direction == direction and r.protocol in ("-1", protocol) and matches(r, party)
    ]
    return _covers(spans, lo, hi)


def rules_of(all_rules: dict[str, list[Rule]], groups: Iterable[str]) -> list[Rule]:
    """The rules of the groups an ENI carries (unknown groups contribute none)."""
    return [r for g in groups for r in all_rules.get(g, [])]


def is_private(cidr: str) -> bool:
    """True for a CIDR entirely inside private (non-internet) address space."""
    return ipaddress.ip_network(cidr, strict=False).is_private
