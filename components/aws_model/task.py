"""ECS task definitions as ECS would accept and run them, and the collector sidecar in them.

Contract: :func:`task_problems` checks each task definition's containers together: the sum of
their ``cpu`` and of their ``memory`` (hard limit, else reservation) fits the task's; at least
one container is essential and the load balancer's container is; every ``dependsOn`` names
another container of the task with a known condition, without cycles, ``HEALTHY`` only on a
container with a health check, ``COMPLETE``/``SUCCESS`` never on an essential one, and an
essential container never waits for a non-essential one to be ``HEALTHY`` (the service would
hang on its telemetry); no two containers listen on one port (awsvpc containers share the
task's network namespace: port mappings, the collector's configured endpoints and
``FLEETPROF_PORT`` all count); every container logs with ``awslogs`` to a log group of the
stack that has a retention and a KMS key, in the task's region, which the execution role may
write. A container whose OTEL_* environment exports spans (no ``OTEL_SDK_DISABLED=true``) must
point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at an OTLP/HTTP receiver of a collector of the same task
and start after it.

:func:`collector_problems` reads each collector's ``AOT_CONFIG_CONTENT``: the YAML parses;
every component a pipeline or the service names is configured; every receiver and extension
endpoint is on loopback; ``memory_limiter`` comes first and its limit stays below the
container's memory; the ``awsxray`` exporter writes to the task's region and the task role may
call the X-Ray write actions; an ``otlphttp`` exporter to fleetprof goes to the server's port on
loopback; every ``${env:NAME}`` it references is in the container's environment or secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from components.aws_model.graph import Graph, as_list, doc
from components.aws_model.policy_eval import Principal, Request, decide
from components.mockrun import MockResource

TASK = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
CONFIG_ENV = "AOT_CONFIG_CONTENT"
CONDITIONS = ("START", "COMPLETE", "SUCCESS", "HEALTHY")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
XRAY_WRITE = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
PUBLIC_ECR = "public.ecr.aws"
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in as_list(container.get("environment"))}


def _secrets(container: dict[str, Any]) -> set[str]:
    return {s["name"] for s in as_list(container.get("secrets"))}


def _region(graph: Graph) -> str:
    return str(graph.rendering.config.get("aws:region", "us-east-1"))


@dataclass(frozen=True)
class Collector:
    """One collector container and its parsed configuration (None: it did not parse)."""

    name: str
    container: dict[str, Any]
    config: dict[str, Any] | None
    error: str = ""

    def endpoints(self, section: str) -> dict[str, str]:
        """``{"<component>.<protocol>": "host:port"}`` of the ``endpoint`` keys under ``section``."""
        out: dict[str, str] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "endpoint" and isinstance(value, str):
                        out[prefix] = value
                    else:
                        walk(f"{prefix}.{key}" if prefix else str(key), value)

        walk("", (self.config or {}).get(section) or {})
        return out

    def ports(self) -> list[int]:
        """Ports its receivers and extensions listen on."""
        found = []
        for section in ("receivers", "extensions"):
            for value in self.endpoints(section).values():
                port = value.rsplit(":", 1)[-1]
                if port.isdigit():
                    found.append(int(port))
        return found

    def otlp_http_ports(self) -> list[int]:
        return [
            int(v.rsplit(":", 1)[-1])
            for k, v in self.endpoints("receivers").items()
            if k.split(".")[0].split("/")[0] == "otlp" and k.endswith(".http") and v.rsplit(":", 1)[-1].isdigit()
        ]


def collectors(containers: list[dict[str, Any]]) -> list[Collector]:
    """The containers of one task that carry a collector configuration."""
    out = []
    for c in containers:
        text = _env(c).get(CONFIG_ENV)
        if text is None:
            continue
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as e:
            out.append(Collector(c["name"], c, None, f"its {CONFIG_ENV} is not YAML: {e}"))
            continue
        if not isinstance(config, dict):
            out.append(Collector(c["name"], c, None, f"its {CONFIG_ENV} is not a mapping"))
            continue
        out.append(Collector(c["name"], c, config))
    return out


def _listens(container: dict[str, Any], collector: Collector | None) -> list[int]:
    ports = [int(p["containerPort"]) for p in as_list(container.get("portMappings"))]
    if collector is not None:
        ports += collector.ports()
    port = _env(container).get("FLEETPROF_PORT", "")
    if port.isdigit():
        ports.append(int(port))
    return sorted(set(ports))


def _lb_containers(graph: Graph, task: MockResource) -> set[str]:
    names = set()
    for svc in graph.of_type(SERVICE):
        if graph.ref(svc.inputs.get("taskDefinition")) is task:
            names |= {lb.get("containerName") for lb in as_list(svc.inputs.get("loadBalancers"))}
    return names


def _may(graph: Graph, role_arn: Any, action: str, resource: str) -> bool:
    from components.aws_model.kms_uses import _identity_statements

    role = graph.ref_of_type(role_arn, ROLE)
    if role is None:
        return False
    request = Request(Principal("AWS", role.outputs["arn"]), action, resource)
    return decide(_identity_statements(graph, role), request, resource_policy=False) == "allow"


def _sizes(task: MockResource, containers: list[dict[str, Any]]) -> list[str]:
    out = []
    for key, label in (("cpu", "CPU units"), ("memory", "MiB of memory")):
        total = sum(int(c.get(key) or (c.get("memoryReservation") if key == "memory" else 0) or 0) for c in containers)
        limit = int(task.inputs.get(key) or 0)
        if limit and total > limit:
            out.append(f"its containers take {total} {label}, more than the task's {limit}")
    return out


def _depends(containers: list[dict[str, Any]]) -> list[str]:
    by_name = {c["name"]: c for c in containers}
    out = []
    for c in containers:
        for d in as_list(c.get("dependsOn")):
            target, cond = d.get("containerName"), d.get("condition")
            other = by_name.get(target)
            if other is None or target == c["name"]:
                out.append(f"{c['name']} depends on {target}, which is not another container of the task")
                continue
            if cond not in CONDITIONS:
                out.append(f"{c['name']} waits for {target} in an unknown condition {cond!r}")
            elif cond == "HEALTHY" and not other.get("healthCheck"):
                out.append(f"{c['name']} waits for {target} to be HEALTHY, but {target} has no health check")
            elif cond in ("COMPLETE", "SUCCESS") and other.get("essential", True):
                out.append(f"{c['name']} waits for the essential {target} to exit ({cond}); ECS refuses that")
            if cond == "HEALTHY" and c.get("essential", True) and not other.get("essential", True):
                out.append(f"the essential {c['name']} waits for the non-essential {target} to be HEALTHY: "
                           "the service would not start while its telemetry is down")
    # cycles
    edges = {c["name"]: [d.get("containerName") for d in as_list(c.get("dependsOn"))] for c in containers}
    state: dict[str, int] = {}

    def visit(n: str) -> bool:
        if state.get(n) == 1:
            return True
        if state.get(n) == 2 or n not in edges:
            return False
        state[n] = 1
        cyclic = any(visit(m) for m in edges[n])
        state[n] = 2
        return cyclic

    if any(visit(n) for n in list(edges)):
        out.append("the containers' dependsOn form a cycle: ECS never starts them")
    return out


def _logs(graph: Graph, task: MockResource, c: dict[str, Any]) -> list[str]:
    cfg = c.get("logConfiguration") or {}
    opts = cfg.get("options") or {}
    name = c["name"]
    if cfg.get("logDriver") != "awslogs" or not opts.get("awslogs-group"):
        return [f"{name} does not log to CloudWatch Logs (awslogs with a group)"]
    out = []
    group = graph.ref_of_type(opts["awslogs-group"], LOG_GROUP)
    if group is None:
        return [f"{name} logs to {opts['awslogs-group']}, a log group this stack does not create"]
    if not group.inputs.get("kmsKeyId") or not group.inputs.get("retentionInDays"):
        out.append(f"{name} logs to {group.name}, which lacks a KMS key or a retention")
    if opts.get("awslogs-region") != _region(graph):
        out.append(f"{name} logs to region {opts.get('awslogs-region')}, not the stack's {_region(graph)}")
    arn = f"{group.outputs['arn']}:log-stream:{opts.get('awslogs-stream-prefix', '')}/x"
    if not _may(graph, task.inputs.get("executionRoleArn"), "logs:PutLogEvents", arn):
        out.append(f"{name}: the execution role may not logs:PutLogEvents into {group.name}")
    return out


def _exports_spans(c: dict[str, Any]) -> bool:
    env = _env(c)
    return "OTEL_EXPORTER_OTLP_ENDPOINT" in env and env.get("OTEL_SDK_DISABLED", "").lower() != "true"


def _span_route(c: dict[str, Any], found: list[Collector]) -> list[str]:
    endpoint = urlsplit(_env(c)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    receivers = {port: col for col in found for port in col.otlp_http_ports()}
    if endpoint.hostname not in LOOPBACK_HOSTS or endpoint.port not in receivers:
        return [f"{c['name']} exports spans to {endpoint.geturl()}, where no collector of the task receives OTLP/HTTP"]
    col = receivers[endpoint.port]
    waits = {d.get("containerName"): d.get("condition") for d in as_list(c.get("dependsOn"))}
    if waits.get(col.name) != "START":
        return [f"{c['name']} does not start after {col.name} (dependsOn START): its first spans would be lost"]
    return []


def task_problems(graph: Graph) -> list[str]:
    """What ECS would refuse, or run badly, in each task definition (module contract)."""
    out = []
    for task in graph.of_type(TASK):
        containers = list(doc(task.inputs["containerDefinitions"]))
        found = {col.name: col for col in collectors(containers)}
        problems = _sizes(task, containers) + _depends(containers)
        if not any(c.get("essential", True) for c in containers):
            problems.append("no container is essential")
        for name in sorted(_lb_containers(graph, task)):
            c = next((c for c in containers if c["name"] == name), None)
            if c is None or not c.get("essential", True):
                problems.append(f"the load balancer's container {name} is missing or not essential")
        owners: dict[int, str] = {}
        for c in containers:
            for port in _listens(c, found.get(c["name"])):
                if port in owners:
                    problems.append(f"{c['name']} and {owners[port]} both listen on {port} in the task's namespace")
                owners.setdefault(port, c["name"])
            problems += _logs(graph, task, c)
            if _exports_spans(c):
                problems += _span_route(c, list(found.values()))
        out += [f"{task.name}: {p}" for p in problems]
    return out


def _pipeline_gaps(config: dict[str, Any]) -> list[str]:
    service = config.get("service") or {}
    out = [f"service extension {e} is not configured" for e in as_list(service.get("extensions"))
           if e not in (config.get("extensions") or {})]
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        out.append("no pipeline")
    for pname, pipe in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            names = as_list((pipe or {}).get(kind))
            if kind != "processors" and not names:
                out.append(f"pipeline {pname} has no {kind}")
            out += [f"pipeline {pname} names {kind[:-1]} {n}, which is not configured"
                    for n in names if n not in (config.get(kind) or {})]
        processors = as_list((pipe or {}).get("processors"))
        if processors and processors[0].split("/")[0] != "memory_limiter":
            out.append(f"pipeline {pname}: memory_limiter must be the first processor")
    return out


def _collector_checks(graph: Graph, task: MockResource, col: Collector, containers: list[dict[str, Any]]) -> list[str]:
    if col.config is None:
        return [col.error]
    config = col.config
    out = _pipeline_gaps(config)
    for section in ("receivers", "extensions"):
        for where, endpoint in col.endpoints(section).items():
            host = endpoint.rsplit(":", 1)[0]
            if host not in LOOPBACK_HOSTS:
                out.append(f"{section[:-1]} {where} listens on {endpoint}, beyond the task's loopback")
    for name, proc in (config.get("processors") or {}).items():
        limit = (proc or {}).get("limit_mib") if name.split("/")[0] == "memory_limiter" else None
        if limit is not None and int(limit) >= int(col.container.get("memory") or 0):
            out.append(f"{name} limit {limit} MiB is not below the container's {col.container.get('memory')} MiB")
    app_ports = {p for c in containers if c is not col.container for p in _listens(c, None)}
    for name, exp in (config.get("exporters") or {}).items():
        kind = name.split("/")[0]
        if kind == "awsxray":
            if (exp or {}).get("region") != _region(graph):
                out.append(f"exporter {name} writes to region {(exp or {}).get('region')}, not the stack's {_region(graph)}")
            for action in XRAY_WRITE:
                if not _may(graph, task.inputs.get("taskRoleArn"), action, "*"):
                    out.append(f"exporter {name}: the task role may not {action}")
        if kind == "otlphttp":
            url = urlsplit(str((exp or {}).get("endpoint", "")))
            if url.hostname not in LOOPBACK_HOSTS or url.port not in app_ports:
                out.append(f"exporter {name} sends to {url.geturl()}, not to a server of this task on loopback")
    known = set(_env(col.container)) | _secrets(col.container)
    for ref in sorted(set(_ENV_REF.findall(_env(col.container)[CONFIG_ENV]))):
        if ref not in known:
            out.append(f"the config references ${{env:{ref}}}, which the container does not have")
    return out


def collector_problems(graph: Graph) -> list[str]:
    """What would stop each collector from receiving or delivering spans (module contract)."""
    out = []
    for task in graph.of_type(TASK):
        containers = list(doc(task.inputs["containerDefinitions"]))
        for col in collectors(containers):
            out += [f"{task.name}/{col.name}: {p}" for p in _collector_checks(graph, task, col, containers)]
    return out


def egress_services(graph: Graph) -> tuple[str, ...]:
    """AWS endpoints the tasks need beyond the service's own: ``xray`` when a collector exports to
    X-Ray, :data:`PUBLIC_ECR` when a container's image comes from ECR Public (no VPC endpoint
    serves it: the pull takes the internet route)."""
    needed = set()
    for task in graph.of_type(TASK):
        containers = list(doc(task.inputs["containerDefinitions"]))
        for col in collectors(containers):
            if any(n.split("/")[0] == "awsxray" for n in ((col.config or {}).get("exporters") or {})):
                needed.add("xray")
        if any(str(c.get("image", "")).startswith(PUBLIC_ECR + "/") for c in containers):
            needed.add(PUBLIC_ECR)
    return tuple(sorted(needed))


def facts(graph: Graph) -> list[str]:
    """One line per task container (CPU, memory, essential, start order, ports, log stream) and
    per collector pipeline, then every problem."""
    lines = []
    for task in graph.of_type(TASK):
        containers = list(doc(task.inputs["containerDefinitions"]))
        found = {col.name: col for col in collectors(containers)}
        lines.append(f"task {task.name}: {task.inputs.get('cpu')} CPU units, {task.inputs.get('memory')} MiB")
        for c in containers:
            after = ", ".join(f"{d['containerName']} {d['condition']}" for d in as_list(c.get("dependsOn"))) or "nothing"
            ports = ",".join(str(p) for p in _listens(c, found.get(c["name"])))
            lines.append(
                f"  {c['name']}: {c.get('cpu')} CPU, {c.get('memory')} MiB, "
                f"{'essential' if c.get('essential', True) else 'not essential'}, after {after}, listens {ports or '-'}"
            )
        for col in found.values():
            for pname, pipe in ((col.config or {}).get("service", {}).get("pipelines") or {}).items():
                lines.append(f"  {col.name} pipeline {pname}: {' -> '.join(as_list(pipe.get('receivers')))} | "
                             f"{' -> '.join(as_list(pipe.get('processors')))} | {', '.join(as_list(pipe.get('exporters')))}")
    return lines + [f"problem: {p}" for p in task_problems(graph) + collector_problems(graph)]
