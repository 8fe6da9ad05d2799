"""The first deploy converges: the program builds and pushes the service image before the
task definition names it by digest (components.service_image, components.aws_model.images)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from infra_support import ROOT, STACKS, one, rendered

from components import service_image
from components.aws_model import images
from components.aws_model.graph import Graph
from components.mockrun import Rendering, render
from components.settings import SettingsError

TASK = "aws:ecs/taskDefinition:TaskDefinition"
DIGEST = "sha256:" + "ab" * 32


def _image(r: Rendering) -> str:
    return json.loads(one(r, TASK, "ingest-task").inputs["containerDefinitions"])[0]["image"]


@pytest.mark.parametrize("name", STACKS)
def test_task_runs_the_image_the_program_pushed(name):
    r = rendered(name)
    build = one(r, "docker-build:index:Image", "ingest-image")
    repo = one(r, "aws:ecr/repository:Repository", "ingest-repo").outputs["repositoryUrl"]
    assert build.inputs["push"] is True and build.inputs["platforms"] == ["linux/amd64"]
    assert build.inputs["context"] == {"location": "."} and build.inputs["dockerfile"] == {"location": "./Dockerfile"}
    assert [reg["address"] for reg in build.inputs["registries"]] == [repo]
    assert build.inputs["tags"] == [f"{repo}:{service_image.image_tag()}"]
    assert _image(r) == f"{repo}@{build.outputs['digest']}"
    task = one(r, TASK, "ingest-task")
    assert build.urn in task.property_dependencies["containerDefinitions"]
    assert images.image_problems(Graph(r)) == []


def _with_image(r: Rendering, image: str, *, drop_build: bool) -> Rendering:
    """A variant of ``r`` whose task definition runs ``image`` (and, optionally, no build)."""
    out = []
    for res in r.resources:
        if drop_build and res.type == "docker-build:index:Image":
            continue
        if res.type == TASK:
            defs = json.loads(res.inputs["containerDefinitions"])
            defs[0]["image"] = image
            deps = {k: [u for u in v if "docker-build" not in u] for k, v in res.property_dependencies.items()} if drop_build else res.property_dependencies
            res = dataclasses.replace(res, inputs={**res.inputs, "containerDefinitions": json.dumps(defs)}, property_dependencies=deps)
        out.append(res)
    return dataclasses.replace(r, resources=out)


def test_the_old_tag_reference_never_converges():
    r = rendered("prod")
    repo = one(r, "aws:ecr/repository:Repository", "ingest-repo").outputs["repositoryUrl"]
    old = _with_image(r, f"{repo}:0.1.0", drop_build=True)  # what the program used to deploy
    assert any("a tag" in p for p in images.image_problems(Graph(old)))
    unpushed = _with_image(r, f"{repo}@{DIGEST}", drop_build=True)
    assert any("nothing in the program pushes" in p for p in images.image_problems(Graph(unpushed)))
    build = one(r, "docker-build:index:Image", "ingest-image")
    not_waiting = _with_image(r, _image(r), drop_build=False)
    task = one(not_waiting, TASK, "ingest-task")
    cut = dataclasses.replace(task, property_dependencies={k: [u for u in v if u != build.urn] for k, v in task.property_dependencies.items()})
    racing = dataclasses.replace(not_waiting, resources=[cut if x is task else x for x in not_waiting.resources])
    assert any("does not wait" in p for p in images.image_problems(Graph(racing)))


def test_an_image_pinned_by_digest_is_used_as_is():
    pinned = f"111122223333.dkr.ecr.us-east-1.amazonaws.com/fleetprof@{DIGEST}"
    r = render("staging", overrides={"fleetprof:imageUri": pinned})
    assert _image(r) == pinned
    assert r.of_type("docker-build:index:Image") == []
    assert images.image_problems(Graph(r)) == []


def test_an_image_tag_is_refused_with_the_key_to_fix():
    with pytest.raises(SettingsError, match="fleetprof:imageUri must be pinned by digest"):
        render("dev", overrides={"fleetprof:imageUri": "111122223333.dkr.ecr.us-east-1.amazonaws.com/fleetprof:0.1.0"})


def _source_tree(tmp_path):
    """A minimal copy of the image's build context (the real top-level files, tiny packages)."""
    tree = tmp_path / "repo"
    for name in ("pyproject.toml", "README.md", "Dockerfile", "constraints.txt"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tree / name)
    for pkg in ("fleetprof", "workers"):
        (tree / pkg).mkdir()
        (tree / pkg / "__init__.py").write_text("x = 1\n")
    return tree


def test_new_sources_make_a_new_tag(tmp_path):
    tree = _source_tree(tmp_path)
    first = service_image.image_tag(tree)
    assert first.startswith(service_image.package_version(tree) + "-") and first == service_image.image_tag(tree)
    (tree / "workers" / "__init__.py").write_text("x = 2\n")
    second = service_image.image_tag(tree)
    (tree / "Dockerfile").write_text((tree / "Dockerfile").read_text() + "\n# changed\n")
    assert len({first, second, service_image.image_tag(tree)}) == 3


@pytest.mark.parametrize("name", STACKS)
def test_repository_outlives_the_stack_only_where_protected(name):
    r = rendered(name)
    repo = one(r, "aws:ecr/repository:Repository", "ingest-repo")
    assert repo.inputs["forceDelete"] is (not r.program["settings"].deletion_protection)


def test_the_tag_follows_ui_sources_not_build_outputs(tmp_path):
    tree = _source_tree(tmp_path)
    (tree / "ui" / "src").mkdir(parents=True)
    (tree / "ui" / "src" / "main.ts").write_text("export const a = 1;\n")
    first = service_image.image_tag(tree)
    (tree / "fleetprof" / "explorer").mkdir()
    (tree / "fleetprof" / "explorer" / "app.js").write_text("built();\n")  # make ui's output
    (tree / "ui" / "node_modules").mkdir()
    (tree / "ui" / "node_modules" / "dep.js").write_text("dep();\n")
    assert service_image.image_tag(tree) == first
    (tree / "ui" / "src" / "main.ts").write_text("export const a = 2;\n")
    assert service_image.image_tag(tree) != first
