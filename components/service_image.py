"""The service image: built from this repository's ``Dockerfile`` and pushed to the stack's
ECR repository by the program itself, so the first ``pulumi up`` converges.

Contract: :func:`context_digest` is a sha256 over everything the Dockerfile builds the image
from (the package sources of :mod:`components.artifacts`, the explorer's sources in ``ui/``,
``constraints.txt``) and the Dockerfile itself, never over build outputs. :func:`build_and_push` registers a ``docker-build`` image tagged
``<repository>:<package version>-<digest prefix>`` (ECR tags are immutable: new sources, new tag)
for the task's platform, pushed with the repository's registry credentials; the task
definition then names the pushed image by digest (``<repository>@sha256:…``), so a new
build is a new task definition and a new ECS deployment, and the service is created only
after its image exists.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from components.artifacts import REPO_ROOT, sources_digest

DOCKERFILE = "Dockerfile"
IMAGE_INPUTS = ("Dockerfile", "constraints.txt")
UI_DIR = "ui"
PLATFORMS = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}


def _ui_sources(root: Path) -> list[str]:
    """The explorer's sources the image's Node stage builds from (dependencies excluded)."""
    ui = root / UI_DIR
    if not ui.is_dir():
        return []
    files = [p for p in ui.rglob("*") if p.is_file() and "node_modules" not in p.relative_to(ui).parts]
    return sorted(str(p.relative_to(root)) for p in files)


def context_digest(root: Path = REPO_ROOT) -> str:
    """sha256 of the image's inputs: the package sources, the explorer's sources, the
    Dockerfile, the constraints."""
    h = hashlib.sha256(sources_digest(root).encode())
    for name in (*IMAGE_INPUTS, *_ui_sources(root)):
        h.update(name.encode() + b"\0" + hashlib.sha256((root / name).read_bytes()).digest())
    return h.hexdigest()


def package_version(root: Path = REPO_ROOT) -> str:
    """``[project].version`` of ``root``'s ``pyproject.toml``."""
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]


def image_tag(root: Path = REPO_ROOT) -> str:
    """``<package version>-<first 16 hex digits of the context digest>``."""
    return f"{package_version(root)}-{context_digest(root)[:16]}"


def _location(root: Path, *parts: str) -> str:
    """A build path as the provider reads it: relative to the project directory (where
    ``pulumi`` runs the program) when inside it, so state and previews do not depend on
    where the repository is checked out."""
    path = root.joinpath(*parts)
    if root == REPO_ROOT:
        return "./" + "/".join(parts) if parts else "."
    return str(path)


def build_and_push(
    name: str,
    repository: aws.ecr.Repository,
    cpu_architecture: str,
    opts: pulumi.ResourceOptions,
    root: Path = REPO_ROOT,
) -> docker_build.Image:
    """Build ``root``'s Dockerfile for the task's CPU architecture and push it to ``repository``."""
    token = aws.ecr.get_authorization_token_output(
        registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=opts.parent)
    )
    tag = image_tag(root)
    return docker_build.Image(
        name,
        context={"location": _location(root)},
        dockerfile={"location": _location(root, DOCKERFILE)},
        platforms=[PLATFORMS[cpu_architecture]],
        push=True,
        registries=[
            {"address": repository.repository_url, "username": token.user_name, "password": token.password}
        ],
        tags=[repository.repository_url.apply(lambda url: f"{url}:{tag}")],
        opts=opts,
    )


def pinned_reference(repository_url: pulumi.Input[str], image: docker_build.Image) -> pulumi.Output[str]:
    """``<repository>@<digest>`` of the pushed image (what the task definition runs)."""
    return pulumi.Output.all(repository_url, image.digest).apply(lambda a: f"{a[0]}@{a[1]}")
