"""The Ray nodes' boot scripts as EC2 would run them: where each node's jobs send their spans,
whether the node's CloudWatch agent receives them, and whether it may write them to X-Ray.

Contract: :func:`nodes` reads the head instance's ``userData`` and the worker launch template's
(base64) ``userData``: the environment file every unit reads (``cat > <ENV_FILE> <<'ENV'``) and
the CloudWatch agent's configuration (``cat > <CWAGENT_CONFIG> <<'JSON'``), each as written.
:func:`problems` reports, per node: an environment whose OTEL_* export spans (read by
:func:`fleetprof.telemetry.config.from_env`, the code the jobs run) in a way fleetprof cannot
(not OTLP/HTTP), or to an endpoint that is not the node's loopback at the port where its
agent's ``traces.traces_collected.otlp`` receives OTLP/HTTP (the spans would go nowhere); an
agent OTLP receiver listening beyond loopback; an agent with a ``traces`` section whose node
role (instance profile -> role) may not call the X-Ray write actions; an agent configuration
that is not JSON. :func:`egress_services` is ``xray`` when a node's agent sends traces (the
reachability check then needs a route from the Ray nodes to X-Ray).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from components.aws_model.graph import Graph
from components.aws_model.task import LOOPBACK_HOSTS, XRAY_WRITE, _may

INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"
ROLE = "aws:iam/role:Role"
_HEREDOC = re.compile(r"^cat > (\S+) <<'(\w+)'\n(.*?)^\2$", re.M | re.S)


@dataclass(frozen=True)
class RayNode:
    """One kind of Ray node as its boot script sets it up."""

    name: str
    profile: str
    env: dict[str, str] = field(default_factory=dict)
    agent: dict[str, Any] | None = None
    agent_error: str = ""

    @property
    def otlp_receiver(self) -> dict[str, str]:
        """The agent's OTLP trace receiver endpoints (``grpc_endpoint``/``http_endpoint``)."""
        found = (((self.agent or {}).get("traces") or {}).get("traces_collected") or {}).get("otlp")
        return {k: str(v) for k, v in found.items() if k.endswith("_endpoint")} if isinstance(found, dict) else {}

    @property
    def sends_traces(self) -> bool:
        """Whether the agent's configuration has a traces section (it then writes to X-Ray)."""
        return bool(((self.agent or {}).get("traces") or {}).get("traces_collected"))


def _files(script: str) -> dict[str, str]:
    return {m.group(1): m.group(3) for m in _HEREDOC.finditer(script)}


def _env_file(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _node(name: str, script: str, profile: str) -> RayNode:
    from components.ray_cluster import CWAGENT_CONFIG, ENV_FILE

    files = _files(script)
    agent, error = None, ""
    if CWAGENT_CONFIG not in files:
        error = "its boot script writes no CloudWatch agent configuration"
    else:
        try:
            agent = json.loads(files[CWAGENT_CONFIG])
        except ValueError as e:
            error = f"its CloudWatch agent configuration is not JSON: {e}"
    return RayNode(name, profile, _env_file(files.get(ENV_FILE, "")), agent, error)


def nodes(graph: Graph) -> list[RayNode]:
    """The head instances and worker launch templates of the stack."""
    out = []
    for inst in graph.of_type(INSTANCE):
        if "ray start --head" in str(inst.inputs.get("userData") or ""):
            out.append(_node(f"Ray head {inst.name}", inst.inputs["userData"], str(inst.inputs.get("iamInstanceProfile"))))
    for lt in graph.of_type(LAUNCH_TEMPLATE):
        raw = lt.inputs.get("userData")
        script = base64.b64decode(raw).decode() if isinstance(raw, str) and raw else ""
        if "ray start --address" in script:
            profile = (lt.inputs.get("iamInstanceProfile") or {}).get("arn")
            out.append(_node(f"Ray workers {lt.name}", script, str(profile)))
    return out


def _role_arn(graph: Graph, node: RayNode) -> str | None:
    profile = graph.ref_of_type(node.profile, PROFILE)
    role = graph.ref_of_type((profile.inputs if profile else {}).get("role"), ROLE)
    return role.outputs.get("arn") if role is not None else None


def _span_route(node: RayNode) -> list[str]:
    from fleetprof.telemetry.config import ConfigError, from_env

    try:
        config = from_env("fleetprof-workers", node.env)
    except ConfigError as e:
        return [f"its jobs cannot export spans: {e}"]
    if config is None:
        return []
    url = urlsplit(config.endpoint)
    receiver = node.otlp_receiver.get("http_endpoint", "")
    host, _, port = receiver.rpartition(":")
    if url.scheme != "http" or url.hostname not in LOOPBACK_HOSTS or not port.isdigit() or url.port != int(port) \
            or host not in LOOPBACK_HOSTS:
        where = f"the agent receives OTLP/HTTP traces on {receiver}" if receiver else \
            "its CloudWatch agent has no OTLP traces receiver (traces.traces_collected.otlp)"
        return [f"its jobs export spans to {config.endpoint}, but {where}: the spans go nowhere"]
    return []


def node_problems(graph: Graph, node: RayNode) -> list[str]:
    """What would keep ``node``'s spans from reaching X-Ray (module contract)."""
    if node.agent_error:
        return [node.agent_error]
    out = _span_route(node)
    for key, endpoint in sorted(node.otlp_receiver.items()):
        if endpoint.rpartition(":")[0] not in LOOPBACK_HOSTS:
            out.append(f"the agent's OTLP {key} {endpoint} listens beyond the node's loopback")
    if node.sends_traces:
        role = _role_arn(graph, node)
        for action in XRAY_WRITE:
            if role is None or not _may(graph, role, action, "*"):
                out.append(f"the agent sends traces to X-Ray, but the node role may not {action}")
    return out


def problems(graph: Graph) -> list[str]:
    """Every node's problems, prefixed with the node."""
    return [f"{node.name}: {p}" for node in nodes(graph) for p in node_problems(graph, node)]


def egress_services(graph: Graph) -> tuple[str, ...]:
    """``("xray",)`` when a Ray node's agent sends traces, else nothing."""
    return ("xray",) if any(n.sends_traces for n in nodes(graph)) else ()


def facts(graph: Graph) -> list[str]:
    """One line per node: where its jobs' spans go and what its agent does with them; then
    every problem."""
    lines = []
    for node in nodes(graph):
        endpoint = node.env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        sampler = f"{node.env.get('OTEL_TRACES_SAMPLER', '')} {node.env.get('OTEL_TRACES_SAMPLER_ARG', '')}".strip()
        spans = f"spans -> {endpoint} ({sampler})" if endpoint else "no spans"
        receiver = node.otlp_receiver
        agent = (f"agent OTLP {', '.join(receiver[k] for k in sorted(receiver))} -> X-Ray "
                 f"{(node.agent or {}).get('agent', {}).get('region', '?')}") if node.sends_traces else "agent: logs only"
        lines.append(f"{node.name}: {spans}; {agent}")
    return lines + [f"problem: {p}" for p in problems(graph)]
