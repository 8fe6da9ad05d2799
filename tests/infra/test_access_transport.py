"""Encryption in transit, per hop: TLS from clients to the ALB; the ALB -> task hop is HTTP
inside the VPC (the written decision in the README), and the reachability check holds the
target group to the protocol the container serves."""

from __future__ import annotations

from infra_support import one, rendered

from components.aws_model import reachability
from components.aws_model.graph import Graph
from components.mockrun import MockResource, Rendering

TG = "aws:lb/targetGroup:TargetGroup"


def _with_target_group(r: Rendering, **changes) -> Rendering:
    out = []
    for x in r.resources:
        if x.type == TG:
            x = MockResource(**{**x.__dict__, "inputs": {**x.inputs, **changes}})
        out.append(x)
    return Rendering(r.stack, r.config, out, r.exports, r.program)


def test_each_hop_states_its_protocol():
    lines = reachability.facts(Graph(rendered("prod")))
    assert "path ALB -> tasks tcp/4040 (traffic and health checks, HTTP in plaintext inside the VPC): open" in lines
    assert any(line.startswith("path clients 0.0.0.0/0 -> ALB tcp/443 (HTTPS)") for line in lines)
    assert reachability.analyze(Graph(rendered("prod"))).problems() == []


def test_a_target_group_speaking_another_protocol_than_the_container_is_found():
    r = rendered("prod")
    health = {**one(r, TG, "edge-tg").inputs["healthCheck"], "protocol": "HTTPS"}
    for broken in (_with_target_group(r, protocol="HTTPS"), _with_target_group(r, healthCheck=health)):
        problems = reachability.analyze(Graph(broken)).problems()
        assert any("serve HTTP on 4040: every request and health check fails" in p for p in problems), problems
