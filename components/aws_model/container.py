"""The service container as ECS on Fargate runs it: the image's config merged with the task
definition's container.

Contract: :func:`image_config` reads the final stage of a Dockerfile (``ENV``, ``USER``,
``WORKDIR``, ``ENTRYPOINT``, ``CMD``; JSON and shell forms, line continuations) without
building it. :func:`effective_run` applies ECS's rules to one container definition:
``command`` replaces ``CMD``, ``entryPoint`` replaces ``ENTRYPOINT``, task ``environment``
entries override the image's ``ENV``, ``user`` overrides ``USER``; with
``readonlyRootFilesystem`` only the container's mount points are writable; ``secrets``
(name -> ``valueFrom``) are what the agent fetches into the environment at start.
``problems`` lists what the merged configuration alone shows would stop the container (a
read-only root without ``/tmp``, a health check of another port, no command, a name in both
``environment`` and ``secrets``); what only running it shows is left to the sandboxed run in
``tests/infra``. :func:`service_runs` merges each container with its own image's config:
the service image's from the Dockerfile, the ADOT collector's from :data:`ADOT_IMAGE` (what
its published Dockerfile records: ``/awscollector`` with a baked-in config, root, ``HOME=/root``),
every other image is the service image (the program builds no other). :func:`secret_problems` and :func:`resolve_secrets` model the agent's fetch of
Secrets Manager values: ``<secret arn>[:<json key>:<stage>:<version id>]`` names a secret the
stack creates and one of its versions (none: ``AWSCURRENT``), read with the task's execution
role, which must be allowed ``secretsmanager:GetSecretValue`` on it; otherwise the task
never starts.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from components.aws_model.graph import Graph, doc

TASK_TYPE = "aws:ecs/taskDefinition:TaskDefinition"


@dataclass(frozen=True)
class ImageConfig:
    """What ``docker build`` would record in the image's config."""

    env: dict[str, str] = field(default_factory=dict)
    user: str = "0"
    workdir: str = "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerRun:
    """One container as the runtime starts it."""

    argv: tuple[str, ...]
    env: dict[str, str]
    uid: int
    gid: int
    workdir: str
    readonly_root: bool
    writable: tuple[str, ...]
    healthcheck: tuple[str, ...]
    port: int
    secrets: dict[str, str] = field(default_factory=dict)
    execution_role: str = ""


def _instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, arguments)`` of the last stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    out: list[tuple[str, str]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            out = []
        out.append((keyword.upper(), rest.strip()))
    return out


def _exec_form(args: str) -> tuple[str, ...]:
    """JSON form as is; shell form as ``/bin/sh -c``, as Docker records it."""
    if args.startswith("["):
        return tuple(json.loads(args))
    return ("/bin/sh", "-c", args)


def _env_pairs(args: str, env: dict[str, str]) -> dict[str, str]:
    """``ENV k=v k2="v 2"`` (or the legacy ``ENV k v``) with ``$VAR`` expanded from ``env``."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    out: dict[str, str] = {}
    for word in words:
        key, _, value = word.partition("=")
        out[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: {**env, **out}.get(m.group(1), ""), value)
    return out


def image_config(dockerfile: Path) -> ImageConfig:
    """The image config of ``dockerfile``'s final stage (module contract)."""
    env: dict[str, str] = {}
    user, workdir = "0", "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    for keyword, args in _instructions(dockerfile.read_text()):
        if keyword == "ENV":
            env.update(_env_pairs(args, env))
        elif keyword == "USER":
            user = args
        elif keyword == "WORKDIR":
            workdir = args if args.startswith("/") else f"{workdir.rstrip('/')}/{args}"
        elif keyword == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(args), ()
        elif keyword == "CMD":
            cmd = _exec_form(args)
    return ImageConfig(env, user, workdir, entrypoint, cmd)


def _ids(user: str) -> tuple[int, int]:
    """``uid[:gid]`` (numeric, as the service image and task use) -> ``(uid, gid)``."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def effective_run(image: ImageConfig, container: dict[str, Any], volumes: dict[str, bool]) -> ContainerRun:
    """ECS's merge of ``image`` and one container definition (module contract).

    ``volumes`` maps the task's volume names to whether they exist (a mount of an unknown
    volume is not writable)."""
    entrypoint = tuple(container.get("entryPoint") or image.entrypoint)
    command = tuple(container.get("command") or image.cmd)
    env = {**image.env, **{e["name"]: e["value"] for e in container.get("environment") or []}}
    uid, gid = _ids(container.get("user") or image.user)
    writable = tuple(
        m["containerPath"]
        for m in container.get("mountPoints") or []
        if not m.get("readOnly") and volumes.get(m.get("sourceVolume", ""), False)
    )
    check = container.get("healthCheck") or {}
    probe = tuple(check.get("command") or ())
    ports = [p["containerPort"] for p in container.get("portMappings") or []]
    secrets = {x["name"]: x["valueFrom"] for x in container.get("secrets") or []}
    return ContainerRun(
        secrets=secrets,
        argv=entrypoint + command,
        env=env,
        uid=uid,
        gid=gid,
        workdir=container.get("workingDirectory") or image.workdir,
        readonly_root=bool(container.get("readonlyRootFilesystem")),
        writable=writable,
        healthcheck=probe[1:] if probe[:1] == ("CMD",) else ("/bin/sh", "-c", *probe[1:]) if probe else (),
        port=int(ports[0]) if ports else 0,
    )


ADOT_IMAGE = ImageConfig(
    env={"RUN_IN_CONTAINER": "True", "HOME": "/root"},
    entrypoint=("/awscollector",),
    cmd=("--config=/etc/otel-config.yaml",),
)
"""The config of the ADOT collector image (``cmd/awscollector/Dockerfile`` of
aws-observability/aws-otel-collector: FROM scratch, no USER)."""


def _image_of(container: dict[str, Any], service_image: ImageConfig) -> ImageConfig:
    from components.telemetry import ADOT_REPOSITORY

    ref = str(container.get("image") or "")
    if ref.startswith(ADOT_REPOSITORY + ":") or ref.startswith(ADOT_REPOSITORY + "@"):
        return ADOT_IMAGE
    return service_image


def service_runs(graph: Graph, dockerfile: Path) -> dict[str, ContainerRun]:
    """``{"<task>/<container>": ContainerRun}`` for every task definition of the stack."""
    image = image_config(dockerfile)
    runs: dict[str, ContainerRun] = {}
    for task in graph.of_type(TASK_TYPE):
        volumes = {v["name"]: True for v in task.inputs.get("volumes") or []}
        for container in doc(task.inputs["containerDefinitions"]):
            run = effective_run(_image_of(container, image), container, volumes)
            runs[f"{task.name}/{container['name']}"] = replace(run, execution_role=task.inputs.get("executionRoleArn") or "")
    return runs


def problems(run: ContainerRun) -> list[str]:
    """What would stop ``run`` before it serves (empty when nothing does)."""
    found = []
    if run.readonly_root and "/tmp" not in run.writable:
        found.append("read-only root file system without a writable /tmp")
    if run.readonly_root and run.env.get("TMPDIR") and run.env["TMPDIR"] not in run.writable:
        found.append(f"TMPDIR {run.env['TMPDIR']} is not writable")
    if run.port and run.healthcheck and f":{run.port}" not in " ".join(run.healthcheck):
        found.append(f"the health check does not probe the container port {run.port}")
    if not run.argv:
        found.append("no command: neither the task nor the image sets one")
    for name in sorted(set(run.secrets) & set(run.env)):
        found.append(f"{name} is both an environment variable and a secret")
    return found


SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
_SECRET_ARN = re.compile(r"^(arn:aws[\w-]*:secretsmanager:[^:]+:\d{12}:secret:[^:]+)(?::([^:]*):([^:]*):([^:]*))?$")


def _plain(value: Any) -> Any:
    """A secret-wrapped input (``{<sig>: ..., "value": v}``) as its value."""
    if isinstance(value, dict) and "value" in value and len(value) == 2:
        return value["value"]
    return value


def _fetch(graph: Graph, value_from: str) -> tuple[str | None, str]:
    """``(value, "")`` of one ``valueFrom``, or ``(None, why)`` when the agent could not fetch it."""
    m = _SECRET_ARN.match(value_from)
    if not m:
        return None, f"{value_from} is not a Secrets Manager ARN (Parameter Store is not modelled)"
    secret = graph.ref_of_type(m.group(1), SECRET)
    if secret is None:
        return None, f"secret {m.group(1)} is not created by this stack"
    json_key, stage, version_id = m.group(2) or "", m.group(3) or "", m.group(4) or ""
    if json_key or stage not in ("", "AWSCURRENT"):
        return None, f"{value_from}: only whole secrets at a version or AWSCURRENT are modelled"
    versions = [v for v in graph.of_type(SECRET_VERSION) if graph.ref_of_type(v.inputs.get("secretId"), SECRET) is secret]
    if version_id:
        versions = [v for v in versions if v.outputs.get("versionId") == version_id]
    if len(versions) != 1:
        return None, f"secret {secret.name} has no version {version_id or 'AWSCURRENT'} in this stack"
    return str(_plain(versions[0].inputs.get("secretString"))), ""


def _may_read(graph: Graph, role_arn: str, secret_arn: str) -> bool:
    from components.aws_model.kms_uses import _identity_statements
    from components.aws_model.policy_eval import Principal, Request, decide

    role = graph.ref_of_type(role_arn, "aws:iam/role:Role")
    if role is None:
        return False
    request = Request(Principal("AWS", role.outputs["arn"]), "secretsmanager:GetSecretValue", secret_arn)
    return decide(_identity_statements(graph, role), request, resource_policy=False) == "allow"


def secret_problems(graph: Graph, run: ContainerRun) -> list[str]:
    """Why the agent could not fetch each of ``run``'s secrets (empty when it can fetch all)."""
    out = []
    for name, value_from in sorted(run.secrets.items()):
        value, why = _fetch(graph, value_from)
        if value is None:
            out.append(f"secret {name}: {why}")
        elif not _may_read(graph, run.execution_role, value_from.split(":::")[0]):
            out.append(f"secret {name}: the execution role may not secretsmanager:GetSecretValue {value_from}")
    return out


def resolve_secrets(graph: Graph, run: ContainerRun) -> ContainerRun:
    """``run`` with its secrets' values in the environment, as the agent starts it
    (:class:`ValueError` naming the problems when it could not)."""
    problems_found = secret_problems(graph, run)
    if problems_found:
        raise ValueError("; ".join(problems_found))
    values = {name: _fetch(graph, value_from)[0] or "" for name, value_from in run.secrets.items()}
    return replace(run, env={**run.env, **values}, secrets={})


def facts(graph: Graph, dockerfile: Path) -> list[str]:
    """One line per container: what runs, as whom, with which writable paths and secrets."""
    lines = []
    for name, run in sorted(service_runs(graph, dockerfile).items()):
        root = "read-only root, writable " + ",".join(run.writable) if run.readonly_root else "writable root"
        secrets = f", secrets {','.join(sorted(run.secrets))}" if run.secrets else ""
        lines.append(f"container {name}: {' '.join(run.argv)} as {run.uid}:{run.gid}, {root}, port {run.port}{secrets}")
        lines += [f"container {name}: {p}" for p in secret_problems(graph, run)]
    return lines
